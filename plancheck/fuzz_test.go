package plancheck_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/plancheck"
	"github.com/phasekit/phasekit/verify/pgtest"
)

var (
	fuzzCases   = flag.Int("fuzz.cases", 300, "differential fuzzer: how many random cases")
	fuzzSeed    = flag.Uint64("fuzz.seed", 1, "differential fuzzer: the first case's seed")
	fuzzFor     = flag.Duration("fuzz.for", 0, "differential fuzzer: run until this much time has passed (overrides -fuzz.cases)")
	fuzzWorkers = flag.Int("fuzz.workers", 2, "differential fuzzer: cases at once")
	fuzzSave    = flag.String("fuzz.save", "", "differential fuzzer: write minimized counterexamples into this directory")
	fuzzShow    = flag.Bool("fuzz.show-refusals", false, "differential fuzzer: log every refusal with its seed and migration")
)

// outcome of one case.
type outcome int

const (
	caseInvalid outcome = iota // PostgreSQL refuses the file as written
	caseRefused                // phasekit refuses it, saying why
	casePlanned                // planned, and the check proves the plan
	caseFailed                 // the property does not hold
)

// runCase plans the migration against the schema with the check and tells
// whether the property holds: the file is refused, or the plan's end state
// equals the file's and every rollback returns the start.
func runCase(ctx context.Context, t testing.TB, base, sql []string) (outcome, string) {
	d, err := plancheck.Open(ctx, plancheck.Options{DevURL: pgtest.Cluster(t).DSN("postgres")})
	if err != nil {
		return caseFailed, "open: " + err.Error()
	}
	defer d.Close()
	bm, err := change.ParseSQL("schema.sql", strings.Join(base, "\n"))
	if err != nil {
		return caseFailed, "generated schema does not parse: " + err.Error()
	}
	if err := d.LoadHistory(ctx, []*change.Migration{bm}); err != nil {
		return caseFailed, "generated schema does not load: " + err.Error()
	}
	m, err := change.ParseSQL("m.sql", strings.Join(sql, "\n"))
	if err != nil {
		return caseInvalid, err.Error()
	}
	var p *phases.Plan
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		p, _, err = d.Plan(ctx, []*change.Migration{m}, phases.Options{}, true, plancheck.CheckOptions{})
	}()
	var se *plancheck.StatementError
	var pe *phases.PlanError
	switch {
	case errors.As(err, &se):
		return caseInvalid, err.Error()
	case errors.As(err, &pe):
		return caseRefused, err.Error()
	case err != nil:
		return caseFailed, "error: " + err.Error()
	case !p.Check.OK():
		var b strings.Builder
		fmt.Fprintf(&b, "check failed: error %q", p.Check.Error)
		for _, df := range p.Check.Differences {
			fmt.Fprintf(&b, "\n  %s: file %q plan %q", df.Object, df.Want, df.Got)
		}
		for _, rb := range p.Check.Rollbacks {
			if !rb.Irreversible && (rb.Error != "" || !rb.Equal) {
				fmt.Fprintf(&b, "\n  rollback after %s: %s", rb.After, rb.Error)
				for _, df := range rb.Differences {
					fmt.Fprintf(&b, "\n    %s: start %q after %q", df.Object, df.Want, df.Got)
				}
			}
		}
		return caseFailed, b.String()
	}
	return casePlanned, ""
}

// minimize drops statements while the case still fails.
func minimize(ctx context.Context, t testing.TB, base, sql []string) []string {
	for i := 0; i < len(sql); {
		cand := append(append([]string{}, sql[:i]...), sql[i+1:]...)
		if len(cand) > 0 {
			if o, _ := runCase(ctx, t, base, cand); o == caseFailed {
				sql = cand
				continue
			}
		}
		i++
	}
	return sql
}

// TestDifferential is the differential fuzzer: random schemas with rows and
// random migration files; every file is refused, or planned so that the
// plan, applied on PostgreSQL, ends where the file does and every rollback
// returns the start. make test runs a fixed-seed sample; make fuzz runs as
// long as asked (-fuzz.for) and saves minimized counterexamples.
func TestDifferential(t *testing.T) {
	if testing.Short() {
		t.Skip("hundreds of plans checked on PostgreSQL")
	}
	ctx := context.Background()
	pgtest.Cluster(t)
	// An interrupt (make fuzz stopped early) ends the run once the cases in
	// flight are done, with the counts and the counterexamples so far.
	interrupted, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var broken atomic.Bool
	var (
		counts   [4]atomic.Int64
		mu       sync.Mutex
		failures []string
		refusals = map[string]int{}
		next     atomic.Uint64
	)
	next.Store(*fuzzSeed)
	deadline := time.Now().Add(*fuzzFor)
	more := func(seed uint64) bool {
		if interrupted.Err() != nil || broken.Load() {
			return false
		}
		if *fuzzFor > 0 {
			return time.Now().Before(deadline)
		}
		return seed < *fuzzSeed+uint64(*fuzzCases)
	}
	var wg sync.WaitGroup
	for w := 0; w < *fuzzWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				seed := next.Add(1) - 1
				if !more(seed) {
					return
				}
				g := newSchema(seed)
				sql := g.migration()
				o, why := runCase(ctx, t, g.sql, sql)
				counts[o].Add(1)
				if o == caseRefused {
					mu.Lock()
					refusals[refusalKind(why)]++
					mu.Unlock()
					if *fuzzShow {
						t.Logf("refused, seed %d: %s\n%s", seed, why, strings.Join(sql, "\n"))
					}
				}
				if o != caseFailed {
					continue
				}
				if interrupted.Err() != nil {
					// pgtest stops the cluster on the same interrupt: a
					// case in flight fails for that, not for the plan.
					counts[o].Add(-1)
					return
				}
				if strings.Contains(why, "cannot connect") {
					// The scratch server is gone (stopped under the run):
					// not a counterexample, and every later case would fail
					// the same way.
					broken.Store(true)
					t.Errorf("seed %d: the scratch server is gone, stopping: %s", seed, why)
					return
				}
				small := minimize(ctx, t, g.sql, sql)
				_, why = runCase(ctx, t, g.sql, small)
				if interrupted.Err() != nil {
					counts[o].Add(-1)
					return
				}
				mu.Lock()
				failures = append(failures, fmt.Sprintf("seed %d:\n%s\n-- why: %s", seed, strings.Join(small, "\n"), why))
				mu.Unlock()
				if *fuzzSave != "" {
					saveCounterexample(t, *fuzzSave, seed, g.sql, small, why)
				}
			}
		}()
	}
	wg.Wait()
	total := counts[0].Load() + counts[1].Load() + counts[2].Load() + counts[3].Load()
	if interrupted.Err() != nil {
		t.Logf("interrupted: the counts cover the cases run until then")
	}
	seeds := "no seed"
	if total > 0 {
		seeds = fmt.Sprintf("seeds %d to %d", *fuzzSeed, *fuzzSeed+uint64(total)-1)
	}
	t.Logf("%d cases (%s): %d planned and proved, %d refused, %d invalid as written, %d counterexamples",
		total, seeds, counts[casePlanned].Load(), counts[caseRefused].Load(), counts[caseInvalid].Load(), counts[caseFailed].Load())
	var kinds []string
	for k, n := range refusals {
		kinds = append(kinds, fmt.Sprintf("%5d  %s", n, k))
	}
	sort.Sort(sort.Reverse(sort.StringSlice(kinds)))
	t.Logf("refusals by reason:\n%s", strings.Join(kinds, "\n"))
	sort.Strings(failures)
	for _, f := range failures {
		t.Errorf("counterexample, %s", f)
	}
	if counts[casePlanned].Load() == 0 {
		t.Errorf("no case was planned: the generator or the planner is broken")
	}
}

// refusalKind is a refusal message without its position and names, for
// counting: "this change type statement touches column ..., which the ...".
func refusalKind(why string) string {
	if i := strings.Index(why, ": "); i >= 0 {
		why = why[i+2:]
	}
	var b strings.Builder
	for _, w := range strings.Fields(why) {
		if strings.ContainsAny(w, "0123456789") {
			w = "_"
		}
		b.WriteString(w + " ")
		if b.Len() > 90 {
			break
		}
	}
	return strings.TrimSpace(b.String())
}

// saveCounterexample writes a case in the layout TestCounterexamples reads.
func saveCounterexample(t testing.TB, dir string, seed uint64, base, sql []string, why string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Error(err)
		return
	}
	body := "-- found by the differential fuzzer, seed " + fmt.Sprint(seed) + "\n-- " + strings.ReplaceAll(why, "\n", "\n-- ") + "\n" +
		strings.Join(base, "\n") + "\n-- migration\n" + strings.Join(sql, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%d.sql", seed)), []byte(body), 0o644); err != nil {
		t.Error(err)
	}
}

// TestCounterexamples replays every counterexample the fuzzer ever found,
// minimized and kept under testdata/counterexamples: each must now hold.
func TestCounterexamples(t *testing.T) {
	files, _ := filepath.Glob("testdata/counterexamples/*.sql")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			schema, migration, ok := strings.Cut(string(b), "\n-- migration\n")
			if !ok {
				t.Fatalf("%s: no \"-- migration\" line", f)
			}
			o, why := runCase(context.Background(), t, []string{schema}, []string{migration})
			if o == caseFailed || o == caseInvalid {
				t.Errorf("%s", why)
			}
		})
	}
}
