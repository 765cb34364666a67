// Package gate decides whether a plan's contract may run: N+1 has baked in
// every prod wave for its bake time (from the deploy records in the ledger),
// no alarm breached (M of N datapoints, from Prometheus), no N client is
// connected and no statement still uses the old column or table
// (pg_stat_activity, pg_stat_statements), and every backfill verified. Each
// check carries its evidence. The package also watches alarms during a
// phase's bake and rolls the phase back when one breaches (Watch), and
// answers the gate over HTTP (NewHandler, Serve).
//
// It reads the database and Prometheus; it changes the database only to roll
// back a phase (through migrations.Rollback) or to record an override.
package gate

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/pipeline"
)

// Verdict is the gate's answer.
type Verdict string

// Verdicts. The CLI exits 0, 3 and 1 with them.
const (
	Open   Verdict = "open"    // every check passed
	NotYet Verdict = "not-yet" // no check failed, but a bake has time left
	Closed Verdict = "closed"  // a check failed
)

// Status is one check's outcome.
type Status string

// Check statuses.
const (
	Pass Status = "pass"
	Wait Status = "not-yet"
	Fail Status = "fail"
)

// Check names, in the order the gate runs them.
const (
	CheckBake       = "bake"
	CheckAlarms     = "alarms"
	CheckClients    = "old-clients"
	CheckStatements = "old-statements"
	CheckBackfill   = "backfill"
)

// Result is the gate's verdict with every check's evidence.
type Result struct {
	Gate     string  `json:"gate"` // "contract"
	Verdict  Verdict `json:"verdict"`
	Plan     string  `json:"plan"` // the plan's hash
	Pipeline string  `json:"pipeline"`
	App      string  `json:"app"`
	Old      string  `json:"old"`
	New      string  `json:"new"`
	// Now is the time the gate was checked at (--now in tests).
	Now time.Time `json:"now"`
	// TimeLeft is how long the bakes still need, when the verdict is
	// not-yet; "at least" when a wave has not received N+1 yet.
	TimeLeft        string  `json:"time_left,omitempty"`
	TimeLeftSeconds float64 `json:"time_left_seconds,omitempty"`
	// Elapsed is how long the checks took.
	Elapsed string  `json:"elapsed"`
	Checks  []Check `json:"checks"`
}

// Check is one of the gate's checks. Evidence says in sentences what was
// seen; the typed fields carry the same for programs.
type Check struct {
	Name     string   `json:"name"`
	Status   Status   `json:"status"`
	Summary  string   `json:"summary"`
	Evidence []string `json:"evidence,omitempty"`

	Waves      []WaveBake      `json:"waves,omitempty"`
	Alarms     []AlarmResult   `json:"alarms,omitempty"`
	Sessions   []Session       `json:"sessions,omitempty"`
	Versions   []LiveVersion   `json:"versions,omitempty"`
	Statements []StatementUse  `json:"statements,omitempty"`
	Backfills  []BackfillCheck `json:"backfills,omitempty"`
}

// Check returns the named check, or nil.
func (r *Result) Check(name string) *Check {
	for i := range r.Checks {
		if r.Checks[i].Name == name {
			return &r.Checks[i]
		}
	}
	return nil
}

// Options is what the contract gate checks.
type Options struct {
	Plan     *phases.Plan
	Pipeline *pipeline.Pipeline
	// Alarms evaluates the pipeline's alarms; it may be nil only when the
	// pipeline has none.
	Alarms AlarmSource
	// Now is the time to check at; zero means time.Now(). Tests move it to
	// let bakes pass.
	Now time.Time
}

// NotOpenError refuses a phase because its gate is not open.
type NotOpenError struct{ Result *Result }

func (e *NotOpenError) Error() string {
	var failed []string
	for _, c := range e.Result.Checks {
		if c.Status != Pass {
			failed = append(failed, c.Name+": "+c.Summary)
		}
	}
	what := "closed"
	if e.Result.Verdict == NotYet {
		what = "not open yet"
		if e.Result.TimeLeft != "" {
			what += " (" + e.Result.TimeLeft + " left)"
		}
	}
	return fmt.Sprintf("contract refused: the gate is %s: %s; pass --force --reason \"...\" to override (the reason is kept in the ledger)", what, strings.Join(failed, "; "))
}

// Contract checks the contract gate of opts.Plan on the database conn is
// connected to. An error means the gate could not be evaluated (the ledger
// could not be read); a check that fails on its own (Prometheus down) is a
// failed check with the error as evidence, so the gate stays closed.
func Contract(ctx context.Context, conn *pgx.Conn, opts Options) (*Result, error) {
	start := time.Now()
	p, pl := opts.Plan, opts.Pipeline
	if len(pl.Alarms) > 0 && opts.Alarms == nil {
		return nil, fmt.Errorf("pipeline %s has %d alarm(s) but no alarm source: pass --prometheus URL", pl.File, len(pl.Alarms))
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	res := &Result{Gate: "contract", Plan: p.Hash, Pipeline: pl.File, App: pl.App, Old: pl.Old, New: pl.New, Now: now}

	deploys, err := migrations.Deploys(ctx, conn, pl.App)
	if err != nil {
		return nil, err
	}
	bake, left, atLeast, since := checkBake(pl, deploys, now)
	res.Checks = append(res.Checks, bake)

	res.Checks = append(res.Checks, checkAlarms(ctx, opts.Alarms, pl.Alarms, alarmsFrom(pl, since, now), now))

	clients, err := checkClients(ctx, conn, pl)
	if err != nil {
		return nil, err
	}
	res.Checks = append(res.Checks, clients)

	stmts, err := checkStatements(ctx, conn, p, lastProdDeploy(pl, deploys, now))
	if err != nil {
		return nil, err
	}
	res.Checks = append(res.Checks, stmts)

	backfill, err := checkBackfills(ctx, conn, p)
	if err != nil {
		return nil, err
	}
	res.Checks = append(res.Checks, backfill)

	res.Verdict = Open
	for _, c := range res.Checks {
		switch {
		case c.Status == Fail:
			res.Verdict = Closed
		case c.Status == Wait && res.Verdict == Open:
			res.Verdict = NotYet
		}
	}
	if bake.Status == Wait {
		res.TimeLeft = pipeline.FormatDuration(left.Round(time.Second))
		if atLeast {
			res.TimeLeft = "at least " + res.TimeLeft
		}
		res.TimeLeftSeconds = left.Seconds()
	}
	res.Elapsed = time.Since(start).Round(time.Millisecond).String()
	return res, nil
}

// alarmsFrom is where the alarms are looked at from: N+1's first prod
// deploy (since), but no further back than the prod waves' bakes added up,
// so that an alarm months ago does not keep the gate closed for ever; when
// N+1 is not in prod yet, the longest evaluation window, so that a breach
// under way shows.
func alarmsFrom(pl *pipeline.Pipeline, since, now time.Time) time.Time {
	if since.IsZero() || !since.Before(now) {
		return now.Add(-longestWindow(pl.Alarms))
	}
	var span time.Duration
	for _, w := range prodPlaces(pl) {
		span += w.Bake
	}
	return maxTime(since, now.Add(-span))
}

// longestWindow is the longest evaluation window of the alarms.
func longestWindow(alarms []pipeline.Alarm) time.Duration {
	var w time.Duration
	for _, a := range alarms {
		w = max(w, a.EvaluationWindow())
	}
	return w
}
