package verify

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A tag that is present is kept as it is: no debootstrap, no import.
func TestBuildImageCached(t *testing.T) {
	requireDocker(t, LocalImage)
	cli := testDockerClient(t)
	before, err := cli.ImageInspect(t.Context(), LocalImage)
	if err != nil {
		t.Fatal(err)
	}
	var log syncBuffer
	start := time.Now()
	built, err := BuildImage(t.Context(), BuildImageOptions{Tag: LocalImage, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	if built {
		t.Error("BuildImage rebuilt a present tag")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("BuildImage took %v for a present tag", d)
	}
	after, err := cli.ImageInspect(t.Context(), LocalImage)
	if err != nil {
		t.Fatal(err)
	}
	if after.ID != before.ID {
		t.Errorf("image ID changed from %s to %s", before.ID, after.ID)
	}
	if !strings.Contains(log.String(), "nothing to do") {
		t.Errorf("log does not say the image was kept:\n%s", log.String())
	}
}

func TestBuildImageBadInput(t *testing.T) {
	for _, opts := range []BuildImageOptions{
		{Tag: "Not A Tag"},
		{Tag: "UPPER/case:1"},
		{Mirror: "ftp://ftp.debian.org/debian"},
		{Mirror: "deb.debian.org/debian"},
	} {
		_, err := BuildImage(t.Context(), opts)
		if !errors.Is(err, ErrBuildInput) {
			t.Errorf("BuildImage(%+v) = %v, want ErrBuildInput", opts, err)
		}
	}
}

func TestImageMirrorFromAptSources(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"none", nil, defaultMirror},
		{"deb822, security first", map[string]string{
			"etc/apt/sources.list.d/debian.sources": "Types: deb\n# http://snapshot.debian.org/archive/debian-security/20250520T000000Z\n" +
				"URIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\nComponents: main\n\n" +
				"Types: deb deb-src\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\nComponents: main\n",
		}, "http://mirror.example/debian"},
		{"deb822 disabled and source-only stanzas skipped", map[string]string{
			"etc/apt/sources.list.d/a.sources": "Enabled: no\nTypes: deb\nURIs: http://off.example/debian\nSuites: bookworm\n\n" +
				"Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n\n" +
				"Types: deb\nURIs: https://on.example/debian\nSuites: bookworm\n",
		}, "https://on.example/debian"},
		{"one-line with options", map[string]string{
			"etc/apt/sources.list": "# comment\ndeb-src http://src.example/debian bookworm main\n" +
				"deb [arch=amd64 signed-by=/k.gpg] http://security.debian.org/debian-security bookworm-security main\n" +
				"deb [signed-by=/k.gpg] http://list.example/debian bookworm main\n",
		}, "http://list.example/debian"},
		{"deb822 wins over sources.list", map[string]string{
			"etc/apt/sources.list":                  "deb http://list.example/debian bookworm main\n",
			"etc/apt/sources.list.d/debian.sources": "Types: deb\nURIs: http://d822.example/debian\nSuites: bookworm\n",
		}, "http://d822.example/debian"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for name, content := range tt.files {
				p := filepath.Join(root, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if got := aptMirror(root); got != tt.want {
				t.Errorf("aptMirror = %q, want %q", got, tt.want)
			}
		})
	}
}

// debootstrap's hundreds of per-package lines become one line per pass.
func TestImageDebootstrapProgress(t *testing.T) {
	var log strings.Builder
	p := &debootstrapProgress{log: &log}
	in := "I: Retrieving InRelease \nI: Checking component main on http://deb.debian.org/debian...\n" +
		"I: Retrieving adduser 3.134\nI: Validating adduser 3.134\nI: Retrieving apt 2.6.1\nI: Validating apt 2.6.1\n" +
		"I: Unpacking adduser...\nI: Unpacking apt...\nI: Configuring the base system...\nI: Configuring apt...\n" +
		"W: something odd\nI: Base system installed successfully.\n"
	// Split mid-line, as pipes do.
	for _, chunk := range []string{in[:37], in[37:100], in[100:]} {
		if _, err := p.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	p.flush()
	want := "image: debootstrap: I: Retrieving InRelease\n" +
		"image: debootstrap: I: Checking component main on http://deb.debian.org/debian...\n" +
		"image: debootstrap: retrieved 2 packages\n" +
		"image: debootstrap: unpacked 2 packages\n" +
		"image: debootstrap: I: Configuring the base system...\n" +
		"image: debootstrap: configured 1 packages\n" +
		"image: debootstrap: W: something odd\n" +
		"image: debootstrap: I: Base system installed successfully.\n"
	if log.String() != want {
		t.Errorf("progress log:\n%s\nwant:\n%s", log.String(), want)
	}
}
