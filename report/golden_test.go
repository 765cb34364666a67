package report_test

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/phasekit/phasekit/internal/testkit/golden"
	"github.com/phasekit/phasekit/report"
)

// checkGolden compares got with testdata/golden/name.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	golden.Check(t, filepath.Join("testdata", "golden", name), got)
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
			checkGolden(t, tc.name, b.Bytes())
		})
	}
}
