package lint_test

import (
	"testing"

	"github.com/phasekit/phasekit/internal/corpus"
	"github.com/phasekit/phasekit/lint"
)

// BenchmarkLint lints the generated corpus of 1000 migration files (about
// 10,000 statements), reading the files as the CLI does, and reports
// statements per second; BenchmarkLintWithSchema also plans every file
// against the corpus schema to check table and column names.
func BenchmarkLint(b *testing.B)           { benchLint(b, false) }
func BenchmarkLintWithSchema(b *testing.B) { benchLint(b, true) }

func benchLint(b *testing.B, withSchema bool) {
	paths, total, err := corpus.Write(b.TempDir(), 1000, 10, 1)
	if err != nil {
		b.Fatal(err)
	}
	snap := corpus.Snapshot()
	if !withSchema {
		snap = nil
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := lint.Run(paths, snap); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "stmts/s")
	b.ReportMetric(float64(total), "stmts")
}
