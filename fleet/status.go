package fleet

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/phasekit/phasekit/internal/dbconn"
	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/phases"
)

// StatusOptions bounds how fleet status reads the targets.
type StatusOptions struct {
	// Timeout bounds reading one target (default 10s): an unreachable
	// target is shown as such, it does not hold up the others.
	Timeout time.Duration
	// Parallel is how many targets are read at once (default 8).
	Parallel int
}

// StatusReport is every target's state of one plan, read from its ledger.
type StatusReport struct {
	Fleet string `json:"fleet"`
	Plan  string `json:"plan"`
	// Phases are the plan's phase kinds, in order.
	Phases  []string       `json:"phases"`
	Targets []TargetStatus `json:"targets"`
}

// TargetStatus is one target's row of a StatusReport.
type TargetStatus struct {
	Wave   string `json:"wave"`
	Target string `json:"target"`
	Env    string `json:"env"`
	// Reachable is false when the target could not be read; Error says why.
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
	// Registered is true when the plan is in the target's ledger; a target
	// that never ran it has every phase pending.
	Registered bool                        `json:"registered"`
	Phases     []migrations.PhaseStatus    `json:"phases,omitempty"`
	Backfills  []migrations.BackfillStatus `json:"backfills,omitempty"`
}

// Status reads the plan in dir from every target's ledger. An unreachable
// target is reported in its row, never as an error: the error is for a plan
// that cannot be read.
func Status(ctx context.Context, f *Fleet, dir string, opts StatusOptions) (*StatusReport, error) {
	plan, err := migrations.ReadCheckedPlan(dir)
	if err != nil {
		return nil, err
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 8
	}
	rep := &StatusReport{Fleet: f.File, Plan: plan.Hash, Phases: kinds(plan)}
	for _, w := range f.Waves {
		for _, t := range w.Targets {
			rep.Targets = append(rep.Targets, TargetStatus{Wave: w.Name, Target: t.Name, Env: t.Env})
		}
	}
	var all []Target
	for _, w := range f.Waves {
		all = append(all, w.Targets...)
	}
	slots := make(chan struct{}, opts.Parallel)
	var wg sync.WaitGroup
	for i, t := range all {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			ts := &rep.Targets[i]
			tctx, cancel := context.WithTimeout(ctx, opts.Timeout)
			defer cancel()
			st, err := readTarget(tctx, t, plan.Hash)
			if err != nil {
				ts.Error = dbconn.Redact(err.Error())
				return
			}
			ts.Reachable = true
			if st != nil {
				ts.Registered, ts.Phases, ts.Backfills = true, st.Phases, st.Backfills
				return
			}
			for i, k := range rep.Phases {
				ts.Phases = append(ts.Phases, migrations.PhaseStatus{Position: i, Kind: k, State: migrations.StatePending})
			}
		}()
	}
	wg.Wait()
	return rep, nil
}

// readTarget returns the plan's status in the target's ledger, nil when the
// plan is not there.
func readTarget(ctx context.Context, t Target, hash string) (*migrations.PlanStatus, error) {
	if t.DSN == "" {
		return nil, fmt.Errorf("no DSN: environment variable %s is not set", t.Env)
	}
	conn, err := dbconn.Connect(ctx, t.DSN)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	all, err := migrations.Status(ctx, conn, hash)
	if err != nil {
		return nil, err
	}
	if len(all) == 0 {
		return nil, nil
	}
	return &all[0], nil
}

// WriteText writes the report as a table, one row per target, with each
// failed phase's error under its row and a count per phase at the end.
func (s *StatusReport) WriteText(w io.Writer) {
	fmt.Fprintf(w, "fleet %s, plan %s\n", s.Fleet, phases.ShortHash(s.Plan))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "WAVE\tTARGET\t%s\n", strings.ToUpper(strings.Join(s.Phases, "\t")))
	var notes []string
	counts := make([]map[string]int, len(s.Phases))
	for i := range counts {
		counts[i] = map[string]int{}
	}
	unreachable := 0
	for _, t := range s.Targets {
		if !t.Reachable {
			unreachable++
			fmt.Fprintf(tw, "%s\t%s\tunreachable: %s\n", t.Wave, t.Target, t.Error)
			continue
		}
		var cells []string
		for i, ph := range t.Phases {
			cells = append(cells, ph.State)
			if i < len(counts) {
				counts[i][ph.State]++
			}
			if ph.Error != "" {
				notes = append(notes, fmt.Sprintf("  %s %s: %s", t.Target, ph.Kind, ph.Error))
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", t.Wave, t.Target, strings.Join(cells, "\t"))
	}
	tw.Flush()
	if len(notes) > 0 {
		fmt.Fprintln(w, "errors in the ledgers:")
		for _, n := range notes {
			fmt.Fprintln(w, n)
		}
	}
	for i, k := range s.Phases {
		var parts []string
		for _, st := range []string{migrations.StateDone, migrations.StateRunning, migrations.StateFailed, migrations.StateRolledBack, migrations.StatePending} {
			if n := counts[i][st]; n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", n, st))
			}
		}
		if len(parts) > 0 {
			fmt.Fprintf(w, "%s: %s\n", k, strings.Join(parts, ", "))
		}
	}
	if unreachable > 0 {
		fmt.Fprintf(w, "%d target(s) unreachable\n", unreachable)
	}
}
