package lint_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/internal/corpus"
	"github.com/phasekit/phasekit/lint"
)

// TestReadForLintSameOutput checks that what the CLI reads for lint alone
// (change.ReadFileForLint, which skips the statements only planning prints)
// writes the same text, JSON and SARIF, byte for byte, as the full read
// (change.ReadFile): on every migration and change spec of the repository's
// test data and examples, one file at a time, and on the generated benchmark
// corpus, all files at once. bench/lint/outputs.sh compares whole binaries
// the same way on the shared lint corpus and the Kratos migrations.
func TestReadForLintSameOutput(t *testing.T) {
	var files []string
	for _, root := range []string{"../testdata", "../examples", "../plancheck/testdata", "../change/testdata", "../phases/testdata"} {
		err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			switch filepath.Ext(path) {
			case ".sql", ".yaml", ".yml":
				files = append(files, path)
			}
			return nil
		})
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	sort.Strings(files)
	if len(files) < 40 {
		t.Fatalf("found %d input files, want the repository's test data", len(files))
	}
	for _, f := range files {
		sameOutput(t, f, []string{f})
	}
	paths, _, err := corpus.Write(t.TempDir(), 200, 10, 1)
	if err != nil {
		t.Fatal(err)
	}
	sameOutput(t, "generated corpus", paths)
}

func sameOutput(t *testing.T, name string, paths []string) {
	t.Helper()
	full, errFull := lintWith(paths, change.ReadFile)
	fast, errFast := lintWith(paths, change.ReadFileForLint)
	if (errFull == nil) != (errFast == nil) || errFull != nil && errFull.Error() != errFast.Error() {
		t.Errorf("%s: reading for lint fails with %v, the full read with %v", name, errFast, errFull)
		return
	}
	for i, format := range []string{"text", "json", "sarif"} {
		if !bytes.Equal(full[i], fast[i]) {
			t.Errorf("%s: %s output differs when read for lint:\n%s", name, format, firstDiff(string(full[i]), string(fast[i])))
		}
	}
}

// lintWith lints paths read with read and returns the text, JSON and SARIF
// output.
func lintWith(paths []string, read func(string) (*change.Migration, error)) ([3][]byte, error) {
	var out [3][]byte
	ms, err := change.ReadFiles(paths, read)
	if err != nil {
		return out, err
	}
	r, err := lint.Check(ms, nil)
	if err != nil {
		return out, err
	}
	var text, js, sarif bytes.Buffer
	lint.WriteText(&text, r)
	if err := lint.WriteJSON(&js, r); err != nil {
		return out, err
	}
	if err := lint.WriteSARIF(&sarif, r); err != nil {
		return out, err
	}
	return [3][]byte{text.Bytes(), js.Bytes(), sarif.Bytes()}, nil
}

func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return fmt.Sprintf("line %d:\n  full: %s\n  lint: %s", i+1, al[i], bl[i])
		}
	}
	return "one output is longer"
}
