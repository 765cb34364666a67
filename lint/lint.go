// Package lint reports the unsafe statements of migration files with their
// safe recipe, as text, JSON or SARIF, and optionally checks a live database
// for rows that would make a change fail (duplicates, NULLs, CHECK violations,
// orphans).
//
// The static rules live in package phases; this package reads the files,
// gathers and orders what the rules say, and writes it out.
package lint

import (
	"errors"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/schema"
)

// Result is what lint found in a set of files.
type Result struct {
	// Findings are the findings not silenced in the file, sorted by file,
	// line and column.
	Findings []phases.Finding `json:"findings"`
	// Silenced are the findings silenced by a "-- phasekit:allow" comment;
	// each one's Allowed holds the reason. They are not in Findings.
	Silenced []phases.Finding `json:"silenced"`
	// Data are the problems CheckData found in the live database's rows.
	Data []DataFinding `json:"data"`
	// Changes are every change Run read, in file order, for CheckData.
	Changes []change.Change `json:"-"`
}

// Run reads each file (.sql migration or .yaml/.yml change spec) and applies
// the lint rules to it. With a snapshot it also plans each file against it,
// so that a missing table or column fails with the *phases.PlanError naming
// its position. A malformed file fails with a *change.InputError (the first
// one in file order).
func Run(files []string, snap *schema.Snapshot) (*Result, error) {
	ms, err := change.ReadFiles(files, change.ReadFile)
	if err != nil {
		return nil, err
	}
	return Check(ms, snap)
}

// Check applies the lint rules to migrations already read, in file order,
// as Run does after reading them; it does not change them.
func Check(ms []*change.Migration, snap *schema.Snapshot) (*Result, error) {
	r := &Result{Findings: []phases.Finding{}, Silenced: []phases.Finding{}, Data: []DataFinding{}}
	n := 0
	for _, m := range ms {
		n += len(m.Changes)
	}
	if n > 0 {
		r.Changes = make([]change.Change, 0, n) // allocated once: a Change is large
	}
	found := findings(ms)
	for i, m := range ms {
		r.Changes = append(r.Changes, m.Changes...)
		for _, f := range found[i] {
			if f.Allowed != "" {
				r.Silenced = append(r.Silenced, f)
			} else {
				r.Findings = append(r.Findings, f)
			}
		}
	}
	if snap != nil {
		// Only the errors matter here: the static findings above are the
		// same ones the plan carries. The files are planned together, in
		// order, so a table one file creates is known to the next.
		if _, err := phases.Build(snap, ms...); err != nil {
			var pe *phases.PlanError
			if errors.As(err, &pe) {
				return nil, err
			}
			return nil, fmt.Errorf("lint: plan against the schema: %w", err)
		}
	}
	sortFindings(r.Findings)
	sortFindings(r.Silenced)
	return r, nil
}

// findings applies the rules to each migration: on a worker per CPU, since
// the rules see one file at a time (a tenth of lint's time after reading,
// and the only part of it that is not bound to run alone).
func findings(ms []*change.Migration) [][]phases.Finding {
	out := make([][]phases.Finding, len(ms))
	workers := min(runtime.GOMAXPROCS(0), len(ms))
	if workers <= 1 {
		for i, m := range ms {
			out[i] = phases.Findings(m.Changes)
		}
		return out
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(ms) {
					return
				}
				out[i] = phases.Findings(ms[i].Changes)
			}
		})
	}
	wg.Wait()
	return out
}

// HasErrors reports whether anything should fail the build: an unsilenced
// error-severity finding, or a data check that found rows.
func (r *Result) HasErrors() bool {
	for _, f := range r.Findings {
		if f.Severity == phases.Error && f.Allowed == "" {
			return true
		}
	}
	for _, d := range r.Data {
		if d.Count > 0 && d.Allowed == "" {
			return true
		}
	}
	return false
}

// sortFindings orders by position; findings at one position keep the order
// the rules gave them (lock-timeout before the statement's own rule).
func sortFindings(fs []phases.Finding) {
	sort.SliceStable(fs, func(i, j int) bool { return posLess(fs[i].Pos, fs[j].Pos) })
}

func posLess(a, b change.Pos) bool {
	if a.File != b.File {
		return a.File < b.File
	}
	if a.Line != b.Line {
		return a.Line < b.Line
	}
	return a.Col < b.Col
}
