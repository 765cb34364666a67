package verify

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestFindBinaryFallsBackToDebianDirs(t *testing.T) {
	if _, err := os.Stat(debianBinRoot); err != nil {
		t.Skipf("no %s on this system: %v", debianBinRoot, err)
	}
	// Debian and Ubuntu keep initdb off PATH; it must be found anyway.
	t.Setenv("PATH", t.TempDir())
	p, err := findBinary("initdb")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(p, debianBinRoot+"/") {
		t.Errorf("findBinary(initdb) = %s, want one under %s", p, debianBinRoot)
	}
}

func TestClientBinaryMissing(t *testing.T) {
	_, err := clientBinary("pg_no_such_tool")
	if !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("err = %v, want ErrNotInstalled", err)
	}
	for _, want := range []string{"PostgreSQL client binaries not found", "install postgresql-client-15", "pg_no_such_tool"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
}

func TestVersionLess(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"9.6", "15", true},
		{"15", "9.6", false},
		{"15", "16", true},
		{"10", "9.6", false},
		{"16", "16", false},
		{"9.5", "9.6", true},
	}
	for _, tt := range tests {
		if got := versionLess(tt.a, tt.b); got != tt.want {
			t.Errorf("versionLess(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
