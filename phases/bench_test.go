package phases_test

import (
	"os"
	"testing"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/internal/corpus"
	"github.com/phasekit/phasekit/phases"
)

// BenchmarkPlan reads and plans the generated corpus of 1000 migration files
// (about 10,000 statements) against its 200-table schema; it reports
// statements planned per second.
func BenchmarkPlan(b *testing.B) {
	paths, total, err := corpus.Write(b.TempDir(), 1000, 10, 1)
	if err != nil {
		b.Fatal(err)
	}
	snap := corpus.Snapshot()
	// Files are read once: the benchmark measures parsing and planning, not
	// the disk.
	srcs := make([]string, len(paths))
	for i, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			panic(err)
		}
		srcs[i] = string(b)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j, p := range paths {
			m, err := change.ParseSQL(p, srcs[j])
			if err != nil {
				b.Fatal(err)
			}
			if _, err := phases.Build(snap, m); err != nil {
				b.Fatalf("%s: %v", p, err)
			}
		}
	}
	b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "stmts/s")
	b.ReportMetric(float64(total), "stmts")
}
