package report_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/phasekit/phasekit/report"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	file := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test ./report -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test ./report -run %s -update rewrites it); got:\n%s", file, t.Name(), got)
	}
}

// TestMarkdownGolden renders the pull-request Markdown of the Chinook
// rename (live sizes, pipeline, verify result) and of a Pagila retype with
// dependent views (no data, no pipeline).
func TestMarkdownGolden(t *testing.T) {
	for _, tc := range []struct {
		name   string
		review func(testing.TB) *report.Review
	}{
		{"chinook_rename.md", chinookReview},
		{"pagila_retype_views.md", pagilaReview},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.review(t).WriteMarkdown(&b); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name, b.Bytes())
		})
	}
}
