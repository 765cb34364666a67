// Package golden compares a test's output with a file under testdata/ and
// rewrites the file when the tests run with -update:
//
//	go test ./phases -run TestGolden -update
//
// Only tests that have golden files import it, since it defines the -update
// flag.
package golden

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// Updating reports whether the tests run with -update.
func Updating() bool { return *update }

// Check compares got with the contents of file. With -update it writes got
// to file (creating its directory) instead, and the test passes.
func Check(t testing.TB, file string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (go test -run '%s' -update writes it)", err, runPattern(t.Name()))
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -run '%s' -update rewrites it; review the diff):\n%s\n--- got\n%s",
			file, runPattern(t.Name()), FirstDiff(string(want), string(got)), got)
	}
}

// FirstDiff describes the first line where want and got differ.
func FirstDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(wl) && i < len(gl); i++ {
		if wl[i] != gl[i] {
			return "line " + strconv.Itoa(i+1) + ":\n- " + wl[i] + "\n+ " + gl[i]
		}
	}
	return "lengths differ: " + strconv.Itoa(len(wl)) + " lines want, " + strconv.Itoa(len(gl)) + " got"
}

// runPattern is the -run pattern of the test named name (subtests included).
func runPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}
