package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/phasekit/phasekit/internal/dbconn"
	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/pipeline"
)

// ApplyOptions says which phase a rollout runs and how.
type ApplyOptions struct {
	// Phase is the phase rolled out; the phases before it must be done on
	// every target.
	Phase phases.Kind
	// MaxParallel, when above 0, replaces every wave's max_parallel.
	MaxParallel int
	// NoBake skips the bakes; the alarm check still runs once after each wave.
	NoBake bool
	// Alarm is checked before the first wave and during every bake; nil
	// means no alarm is checked, and the output says so.
	Alarm AlarmCheck
	// AlarmInterval is the time between alarm checks in a bake (default 1m).
	AlarmInterval time.Duration
	// Clock measures the bakes (default: the real clock).
	Clock Clock

	DDL      migrations.DDLOptions
	Backfill migrations.BackfillOptions
	Runner   migrations.Runner
	// Out receives one line per wave and target event (stdout in the CLI).
	Out io.Writer
	// Detail receives each target's own step and progress lines, prefixed
	// with the target's name (nil: dropped).
	Detail io.Writer
	Log    *slog.Logger
}

// Target states in a Report.
const (
	Applied     = "applied"      // the phase ran on the target in this rollout
	AlreadyDone = "already done" // the target's ledger had the phase done: skipped
	Failed      = "failed"
	NotStarted  = "not started" // the wave went over its failure budget before the target's turn
	Untouched   = "untouched"   // the rollout stopped before the target's wave
	Interrupted = "interrupted" // the rollout was cancelled while the target ran
)

// What happened to a failed target after its wave went over budget.
const (
	RolledBack     = "rolled back"          // the phase's done steps were undone
	NothingToUndo  = "nothing to roll back" // the apply failed before the phase started
	RollbackFailed = "rollback failed"
	// RollbackRefused: migrations.Rollback refused, e.g. an irreversible
	// phase such as contract.
	RollbackRefused = "rollback refused"
	// NotRolledBack: another phasekit holds the target, or its ledger has
	// the phase done.
	NotRolledBack = "not rolled back"
)

// Wave states in a Report.
const (
	WaveDone        = "done"
	WaveOverBudget  = "over budget"
	WaveAlarm       = "alarm"
	WaveInterrupted = "interrupted"
	WaveUntouched   = "untouched"
)

// Outcomes of a rollout.
const (
	OutcomeDone        = "done"
	OutcomeOverBudget  = "over budget"
	OutcomeAlarm       = "alarm"
	OutcomeInterrupted = "interrupted"
)

// Report is what a rollout did, target by target.
type Report struct {
	Fleet   string `json:"fleet"`
	Plan    string `json:"plan"`
	Phase   string `json:"phase"`
	Outcome string `json:"outcome"`
	// StoppedAt is the wave the rollout stopped in or after.
	StoppedAt string `json:"stopped_at,omitempty"`
	Error     string `json:"error,omitempty"`
	// AlarmCheck says whether an alarm check was configured.
	AlarmCheck bool `json:"alarm_check"`
	// Evidence is the alarm's evidence when one stopped the rollout.
	Evidence string       `json:"evidence,omitempty"`
	Waves    []WaveReport `json:"waves"`
	TookMS   int64        `json:"took_ms"`
}

// WaveReport is one wave of a Report.
type WaveReport struct {
	Name        string `json:"name"`
	State       string `json:"state"`
	MaxParallel int    `json:"max_parallel"`
	MaxFailures int    `json:"max_failures"`
	Failures    int    `json:"failures"`
	// Bake is the wave's bake; Baked how long this run waited for it (less
	// after a resume, when the wave finished earlier).
	Bake        string         `json:"bake,omitempty"`
	Baked       string         `json:"baked,omitempty"`
	AlarmChecks int            `json:"alarm_checks"`
	Targets     []TargetReport `json:"targets"`
}

// TargetReport is one target of a WaveReport.
type TargetReport struct {
	Name  string `json:"name"`
	Env   string `json:"env"`
	State string `json:"state"`
	Error string `json:"error,omitempty"`
	// Rollback says what was done about a failed target.
	Rollback      string `json:"rollback,omitempty"`
	RollbackError string `json:"rollback_error,omitempty"`
	// UndoneSteps is how many of the phase's steps the rollback undid (the
	// failed target got that far).
	UndoneSteps int   `json:"undone_steps,omitempty"`
	TookMS      int64 `json:"took_ms"`

	err      error         // the apply's error, for the rollback decision
	started  bool          // migrations.Apply was called (not only the ledger read)
	finished time.Duration // for AlreadyDone: how long ago the phase finished, by the target's clock
}

// WaveFailedError is a wave that went over its failure budget.
type WaveFailedError struct {
	Wave        string
	MaxFailures int
	Failed      []TargetReport
}

func (e *WaveFailedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "wave %s failed on %d target(s), over its budget of %d; the rollout stopped there", e.Wave, len(e.Failed), e.MaxFailures)
	for _, t := range e.Failed {
		fmt.Fprintf(&b, "; %s: %s (%s", t.Name, t.Error, t.Rollback)
		if t.RollbackError != "" {
			fmt.Fprintf(&b, ": %s", t.RollbackError)
		}
		b.WriteString(")")
	}
	return b.String()
}

// AlarmError is an alarm that breached, or could not be checked, while a
// wave baked (or before the first wave).
type AlarmError struct {
	// Wave is the wave whose bake was watched; "" before the first wave.
	Wave     string
	Evidence string
	Err      error // the check's own error, when it could not say
}

func (e *AlarmError) Error() string {
	where := "after wave " + e.Wave
	if e.Wave == "" {
		where = "before the first wave"
	}
	if e.Err != nil {
		return fmt.Sprintf("alarm check failed %s, so the fleet's health is unknown; the rollout stopped: %v", where, e.Err)
	}
	return fmt.Sprintf("alarm breached %s; the rollout stopped: %s", where, e.Evidence)
}

func (e *AlarmError) Unwrap() error { return e.Err }

// Apply rolls opts.Phase of the plan in dir out over the fleet, wave by wave
// (docs/fleet.md). Targets whose ledger has the phase done are skipped, so a
// rollout stopped at any point resumes where it stopped. It returns the
// report with a *WaveFailedError when a wave went over its failure budget,
// an *AlarmError when an alarm stopped the rollout, and the context's error
// when it was cancelled.
func Apply(ctx context.Context, f *Fleet, dir string, opts ApplyOptions) (*Report, error) {
	start := time.Now()
	plan, err := migrations.ReadCheckedPlan(dir)
	if err != nil {
		return nil, err
	}
	pi := -1
	for i, ph := range plan.Phases {
		if ph.Kind == opts.Phase {
			pi = i
		}
	}
	if pi < 0 {
		return nil, &migrations.RefusedError{Msg: fmt.Sprintf("the plan in %s has no %s phase (it has: %s)", dir, opts.Phase, strings.Join(kinds(plan), ", "))}
	}
	for _, w := range f.Waves {
		for _, t := range w.Targets {
			if t.DSN == "" {
				return nil, fmt.Errorf("target %s has no DSN: call Resolve first", t.Name)
			}
		}
	}
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
	if opts.AlarmInterval <= 0 {
		opts.AlarmInterval = time.Minute
	}
	mu := &sync.Mutex{}
	r := &rollout{f: f, dir: dir, plan: plan, pi: pi, opts: opts, out: &lines{mu: mu, w: opts.Out}}
	if opts.Detail != nil {
		r.detail = &lines{mu: mu, w: opts.Detail}
	}
	if pi > 0 {
		r.before = plan.Phases[pi-1].Kind
	}
	rep := &Report{Fleet: f.File, Plan: plan.Hash, Phase: string(opts.Phase), AlarmCheck: opts.Alarm != nil}
	for _, w := range f.Waves {
		wr := WaveReport{Name: w.Name, State: WaveUntouched, MaxParallel: r.parallel(w), MaxFailures: w.MaxFailures}
		if w.Bake > 0 {
			wr.Bake = pipeline.FormatDuration(w.Bake)
		}
		for _, t := range w.Targets {
			wr.Targets = append(wr.Targets, TargetReport{Name: t.Name, Env: t.Env, State: Untouched})
		}
		rep.Waves = append(rep.Waves, wr)
	}
	err = r.run(ctx, rep)
	rep.TookMS = time.Since(start).Milliseconds()
	if err != nil {
		rep.Error = dbconn.Redact(err.Error())
	}
	return rep, err
}

func kinds(p *phases.Plan) []string {
	var out []string
	for _, ph := range p.Phases {
		out = append(out, string(ph.Kind))
	}
	return out
}

// rollout is one run of Apply.
type rollout struct {
	f      *Fleet
	dir    string
	plan   *phases.Plan
	pi     int         // the phase's position in the plan
	before phases.Kind // the phase before it ("" for the first): what a rollback keeps
	opts   ApplyOptions
	out    *lines
	detail *lines
}

func (r *rollout) parallel(w Wave) int {
	if r.opts.MaxParallel > 0 {
		return r.opts.MaxParallel
	}
	return w.MaxParallel
}

func (r *rollout) say(format string, args ...any) {
	// Errors in the lines are redacted where they are made; redacting
	// here would also squeeze the lines' indentation.
	r.out.line(fmt.Sprintf(format, args...))
}

func (r *rollout) run(ctx context.Context, rep *Report) error {
	kind := r.opts.Phase
	r.say("fleet %s: plan %s, phase %s, %d wave(s), %d target(s)", r.f.File, phases.ShortHash(r.plan.Hash), kind, len(r.f.Waves), r.f.TargetCount())
	if r.opts.Alarm == nil {
		r.say("no alarm check configured: bakes only wait")
	} else {
		// A rollout must not start into an ongoing incident.
		if _, err := r.checkAlarm(ctx, nil); err != nil {
			return r.stop(ctx, rep, "", err)
		}
	}
	for wi, w := range r.f.Waves {
		wr := &rep.Waves[wi]
		r.say("wave %d/%d %s: %d target(s), max_parallel %d, max_failures %d", wi+1, len(r.f.Waves), w.Name, len(w.Targets), wr.MaxParallel, w.MaxFailures)
		r.runWave(ctx, w, wr)
		if ctx.Err() != nil {
			wr.State = WaveInterrupted
			return r.stop(ctx, rep, w.Name, ctx.Err())
		}
		r.say("wave %s: %s", w.Name, tally(wr))
		if wr.Failures > w.MaxFailures {
			wr.State = WaveOverBudget
			r.say("wave %s: %d failure(s), over its budget of %d: rolling back its failed targets", w.Name, wr.Failures, w.MaxFailures)
			failed := r.rollBack(ctx, w, wr)
			return r.stop(ctx, rep, w.Name, &WaveFailedError{Wave: w.Name, MaxFailures: w.MaxFailures, Failed: failed})
		}
		if err := r.bake(ctx, w, wr); err != nil {
			wr.State = WaveAlarm
			if ctx.Err() != nil {
				wr.State = WaveInterrupted
			}
			return r.stop(ctx, rep, w.Name, err)
		}
		wr.State = WaveDone
	}
	rep.Outcome = OutcomeDone
	r.say("fleet %s: phase %s done on %d target(s)", r.f.File, kind, r.count(rep, Applied, AlreadyDone))
	return nil
}

// stop ends the rollout: it sets the outcome and says what is left as it was.
func (r *rollout) stop(ctx context.Context, rep *Report, wave string, err error) error {
	rep.StoppedAt = wave
	var alarm *AlarmError
	switch {
	case ctx.Err() != nil:
		rep.Outcome = OutcomeInterrupted
		at := "in wave " + wave
		if wave == "" {
			at = "before the first wave"
		}
		err = fmt.Errorf("rollout of %s interrupted %s: run fleet apply again to resume (targets already done are skipped): %w", r.opts.Phase, at, ctx.Err())
	case errors.As(err, &alarm):
		rep.Outcome = OutcomeAlarm
		rep.Evidence = alarm.Evidence
	default:
		rep.Outcome = OutcomeOverBudget
	}
	var later []string
	for _, w := range rep.Waves {
		if w.State == WaveUntouched {
			later = append(later, fmt.Sprintf("%s (%d target(s))", w.Name, len(w.Targets)))
		}
	}
	where := "before the first wave"
	if wave != "" {
		where = "at wave " + wave
	}
	msg := fmt.Sprintf("rollout of %s stopped %s (%s)", r.opts.Phase, where, rep.Outcome)
	if len(later) > 0 {
		msg += "; untouched: " + strings.Join(later, ", ")
	}
	r.say("%s", msg)
	return err
}

func (r *rollout) count(rep *Report, states ...string) int {
	n := 0
	for _, w := range rep.Waves {
		for _, t := range w.Targets {
			for _, s := range states {
				if t.State == s {
					n++
				}
			}
		}
	}
	return n
}

func tally(wr *WaveReport) string {
	counts := map[string]int{}
	for _, t := range wr.Targets {
		counts[t.State]++
	}
	var parts []string
	for _, s := range []string{Applied, AlreadyDone, Failed, NotStarted, Interrupted} {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
		}
	}
	return strings.Join(parts, ", ")
}

// runWave applies the phase to the wave's targets, at most max_parallel at
// once, in the file's order. Once more targets failed than the budget allows,
// no further target of the wave is started; those running finish.
func (r *rollout) runWave(ctx context.Context, w Wave, wr *WaveReport) {
	slots := make(chan struct{}, wr.MaxParallel)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, t := range w.Targets {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		mu.Lock()
		over := wr.Failures > w.MaxFailures
		mu.Unlock()
		if ctx.Err() != nil {
			break
		}
		if over {
			<-slots
			wr.Targets[i].State = NotStarted
			r.say("  %s: not started: wave %s is over its failure budget", t.Name, w.Name)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			tr := r.applyTarget(ctx, t)
			mu.Lock()
			defer mu.Unlock()
			tr.Name, tr.Env = t.Name, t.Env
			wr.Targets[i] = tr
			if tr.State == Failed {
				wr.Failures++
			}
		}()
	}
	wg.Wait()
}

// applyTarget runs the phase on one target.
func (r *rollout) applyTarget(ctx context.Context, t Target) TargetReport {
	start := time.Now()
	kind := r.opts.Phase
	tr := TargetReport{}
	done := func() TargetReport {
		tr.TookMS = time.Since(start).Milliseconds()
		return tr
	}
	st, err := r.ledger(ctx, t)
	if err != nil {
		if ctx.Err() != nil {
			tr.State = Interrupted
			return done()
		}
		tr.State, tr.err, tr.Error = Failed, err, dbconn.Redact(err.Error())
		r.say("  %s: %s failed: %s", t.Name, kind, tr.Error)
		return done()
	}
	if st.phase.State == migrations.StateDone {
		tr.State, tr.finished = AlreadyDone, st.since
		r.say("  %s: %s already done: skipped", t.Name, kind)
		return done()
	}
	r.say("  %s: applying %s", t.Name, kind)
	tr.started = true
	detail := r.detailFor(t)
	bopts := r.opts.Backfill
	bopts.Progress = detail
	bopts.TTY = false
	_, err = migrations.Apply(ctx, t.DSN, r.dir, migrations.ApplyOptions{
		Phase: kind, DDL: r.opts.DDL, Backfill: bopts, Runner: r.opts.Runner,
		Out: detail, Log: r.opts.Log.With("target", t.Name),
	})
	detail.Flush()
	switch {
	case err == nil:
		tr.State = Applied
		r.say("  %s: %s done in %s", t.Name, kind, time.Since(start).Round(time.Millisecond))
	case ctx.Err() != nil:
		tr.State, tr.Error = Interrupted, dbconn.Redact(err.Error())
		r.say("  %s: %s interrupted: %s", t.Name, kind, tr.Error)
	default:
		tr.State, tr.err, tr.Error = Failed, err, dbconn.Redact(err.Error())
		r.say("  %s: %s failed: %s", t.Name, kind, tr.Error)
	}
	return done()
}

// targetLedger is the rolled-out phase's row in a target's ledger.
type targetLedger struct {
	phase migrations.PhaseStatus
	// since is how long ago the phase finished, by the target's own clock
	// (no skew between the runner's clock and the database's).
	since time.Duration
	// done of the phase's steps are recorded done.
	done, steps int
}

// ledger reads the phase's state on the target; a target that never ran the
// plan has it pending.
func (r *rollout) ledger(ctx context.Context, t Target) (*targetLedger, error) {
	conn, err := dbconn.Connect(ctx, t.DSN)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	all, err := migrations.Status(ctx, conn, r.plan.Hash)
	if err != nil {
		return nil, err
	}
	out := &targetLedger{phase: migrations.PhaseStatus{Position: r.pi, Kind: string(r.opts.Phase), State: migrations.StatePending}}
	if len(all) == 1 && r.pi < len(all[0].Phases) {
		out.phase = all[0].Phases[r.pi]
	}
	var versions []int32
	for _, st := range migrations.Steps(r.plan) {
		if st.PhaseIndex == r.pi {
			versions = append(versions, int32(st.Version))
		}
	}
	out.steps = len(versions)
	if len(all) == 1 {
		// phasekit.steps holds each done step (docs/execution.md).
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM phasekit.steps WHERE hash = $1 AND version = ANY($2)", r.plan.Hash, versions).Scan(&out.done); err != nil {
			return nil, fmt.Errorf("read the ledger's steps: %w", err)
		}
	}
	if out.phase.FinishedAt != nil {
		var secs float64
		if err := conn.QueryRow(ctx, "SELECT extract(epoch FROM now() - $1::timestamptz)::float8", *out.phase.FinishedAt).Scan(&secs); err != nil {
			return nil, fmt.Errorf("read the target's clock: %w", err)
		}
		out.since = time.Duration(secs * float64(time.Second))
	}
	return out, nil
}

func (r *rollout) detailFor(t Target) *prefixed {
	if r.detail == nil {
		return &prefixed{}
	}
	return &prefixed{l: r.detail, prefix: "    " + t.Name + " | "}
}

// rollBack undoes the phase on the wave's failed targets that got into it;
// it returns the failed targets' reports.
func (r *rollout) rollBack(ctx context.Context, w Wave, wr *WaveReport) []TargetReport {
	var failed []TargetReport
	for i := range wr.Targets {
		tr := &wr.Targets[i]
		if tr.State != Failed {
			continue
		}
		r.rollBackTarget(ctx, w.Targets[i], tr)
		failed = append(failed, *tr)
	}
	return failed
}

func (r *rollout) rollBackTarget(ctx context.Context, t Target, tr *TargetReport) {
	kind := r.opts.Phase
	if !tr.started {
		tr.Rollback = NothingToUndo
		r.say("  %s: nothing to roll back: its ledger could not be read, so %s was not started", t.Name, kind)
		return
	}
	var held *migrations.LockHeldError
	if errors.As(tr.err, &held) {
		tr.Rollback = NotRolledBack
		tr.RollbackError = "another phasekit runs the plan on this target; it was left to that run"
		r.say("  %s: not rolled back: %s", t.Name, tr.RollbackError)
		return
	}
	st, err := r.ledger(ctx, t)
	if err != nil {
		tr.Rollback, tr.RollbackError = RollbackFailed, "read the ledger: "+dbconn.Redact(err.Error())
		r.say("  %s: rollback failed: %s", t.Name, tr.RollbackError)
		return
	}
	// Apply refuses (drift, order, privileges, lock) before it marks the
	// phase running: a phase still pending, or rolled back, changed nothing.
	switch st.phase.State {
	case migrations.StatePending, migrations.StateRolledBack:
		tr.Rollback = NothingToUndo
		r.say("  %s: nothing to roll back: the apply failed before %s started", t.Name, kind)
		return
	case migrations.StateDone:
		// Done although the apply failed: it finished the phase and lost the
		// connection after. The phase is whole; leave it.
		tr.Rollback = NotRolledBack
		tr.RollbackError = fmt.Sprintf("the ledger has %s done: the failure came after the phase finished", kind)
		r.say("  %s: not rolled back: %s", t.Name, tr.RollbackError)
		return
	}
	r.say("  %s: rolling back %s (%d of its %d step(s) done)", t.Name, kind, st.done, st.steps)
	detail := r.detailFor(t)
	_, err = migrations.Rollback(ctx, t.DSN, r.dir, migrations.RollbackOptions{
		To: r.before, DDL: r.opts.DDL, Runner: r.opts.Runner, Out: detail, Log: r.opts.Log.With("target", t.Name),
	})
	detail.Flush()
	if err != nil {
		tr.Rollback, tr.RollbackError = RollbackFailed, dbconn.Redact(err.Error())
		var refused *migrations.RefusedError
		if errors.As(err, &refused) {
			tr.Rollback = RollbackRefused
		}
		r.say("  %s: %s: %s", t.Name, tr.Rollback, tr.RollbackError)
		return
	}
	tr.Rollback, tr.UndoneSteps = RolledBack, st.done
	if st.done == 0 {
		r.say("  %s: %s rolled back: none of its steps was done, the schema is as before", t.Name, kind)
		return
	}
	r.say("  %s: %s rolled back, %d step(s) undone", t.Name, kind, st.done)
}
