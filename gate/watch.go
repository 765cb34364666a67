package gate

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/phasekit/phasekit/internal/clock"
	"github.com/phasekit/phasekit/internal/dbconn"
	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/pipeline"
)

// WatchOptions say what Watch polls and for how long.
type WatchOptions struct {
	Alarms []pipeline.Alarm
	Source AlarmSource
	// From is when the bake started; datapoints before it are not looked at.
	From time.Time
	// For is the bake's length: Watch returns clean once From+For has been
	// checked.
	For time.Duration
	// Interval is the time between polls (default 15s).
	Interval time.Duration
	// Clock and Sleep stand in for time.Now and a context-aware sleep.
	Clock func() time.Time
	Sleep func(context.Context, time.Duration) error
	// Progress receives one line per poll; nil discards them.
	Progress io.Writer
}

// WatchResult is what a watch saw.
type WatchResult struct {
	Breached bool      `json:"breached"`
	From     time.Time `json:"from"`
	Until    time.Time `json:"until"`
	Polls    int       `json:"polls"`
	// Alarms are the last poll's results; a breached one carries the
	// window of datapoints that breached.
	Alarms []AlarmResult `json:"alarms"`
}

// Breaches lists the breached alarms of the last poll.
func (r *WatchResult) Breaches() []AlarmResult {
	var out []AlarmResult
	for _, a := range r.Alarms {
		if a.Breached {
			out = append(out, a)
		}
	}
	return out
}

// maxPollFailures is how many polls in a row may fail before Watch gives up:
// one failed query is noise, several mean nobody is watching.
const maxPollFailures = 3

// Watch polls the alarms over [From, now] every Interval until one breaches
// or From+For has passed clean.
func Watch(ctx context.Context, o WatchOptions) (*WatchResult, error) {
	if o.Source == nil || len(o.Alarms) == 0 {
		return nil, fmt.Errorf("watch: no alarm to watch")
	}
	if o.Interval <= 0 {
		o.Interval = 15 * time.Second
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Sleep == nil {
		o.Sleep = clock.Sleep
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	until := o.From.Add(o.For)
	r := &WatchResult{From: o.From, Until: until}
	failures := 0
	for {
		now := o.Clock()
		to := now
		if to.After(until) {
			to = until
		}
		res, err := o.Source.Check(ctx, o.Alarms, o.From, to)
		r.Polls++
		switch {
		case err != nil:
			failures++
			fmt.Fprintf(o.Progress, "watch: poll %d failed (%d in a row): %v\n", r.Polls, failures, err)
			if failures >= maxPollFailures {
				return r, fmt.Errorf("watch: %d polls in a row failed, the alarms are not watched: %w", failures, err)
			}
		default:
			failures = 0
			r.Alarms = res
			var line []string
			for i, a := range res {
				state := fmt.Sprintf("ok (at most %d breaching, %d fire it)", a.MaxBreaching, o.Alarms[i].DatapointsToAlarm)
				if a.Breached {
					state = "BREACHED"
				}
				line = append(line, a.Alarm+" "+state)
			}
			fmt.Fprintf(o.Progress, "watch: %s of %s: %s\n", pipeline.FormatDuration(to.Sub(o.From).Round(time.Second)), pipeline.FormatDuration(o.For), strings.Join(line, ", "))
			if len(r.Breaches()) > 0 {
				r.Breached = true
				return r, nil
			}
			if !to.Before(until) {
				return r, nil
			}
		}
		wait := min(o.Interval, until.Sub(now))
		if wait < 0 {
			wait = 0
		}
		if err := o.Sleep(ctx, wait); err != nil {
			return r, fmt.Errorf("watch: %w", err)
		}
	}
}

// PhaseWatchOptions say which phase's bake to watch and how to roll it back.
type PhaseWatchOptions struct {
	DSN string
	// Dir is the plan directory.
	Dir string
	// Phase is the phase whose bake is watched; "" is the last phase done.
	// It must be the last phase started: rolling it back must not undo a
	// later one.
	Phase    phases.Kind
	Pipeline *pipeline.Pipeline
	// Watch sets the alarm source, the bake's length and the polling;
	// From is the phase's finish time in the ledger.
	Watch WatchOptions
	// Rollback is used when an alarm breaches (To and All are set here).
	Rollback migrations.RollbackOptions
}

// PhaseWatchResult is a watched bake and what was done about it.
type PhaseWatchResult struct {
	Plan       string      `json:"plan"`
	Phase      phases.Kind `json:"phase"`
	Reversible bool        `json:"reversible"`
	WatchResult
	RolledBack bool `json:"rolled_back"`
	// Message says in one sentence what happened.
	Message string `json:"message"`
	// Status is the ledger after a rollback.
	Status *migrations.PlanStatus `json:"status,omitempty"`
}

// WatchPhase watches the alarms during the bake of a phase that is done,
// starting when the phase finished, and rolls the phase back when an alarm
// breaches, if the phase is reversible. A phase that is not the last one
// started, or not done, is refused (*migrations.RefusedError).
func WatchPhase(ctx context.Context, o PhaseWatchOptions) (*PhaseWatchResult, error) {
	p, err := migrations.ReadPlan(o.Dir)
	if err != nil {
		return nil, &migrations.RefusedError{Msg: err.Error()}
	}
	conn, err := dbconn.Connect(ctx, o.DSN)
	if err != nil {
		return nil, err
	}
	all, err := migrations.Status(ctx, conn, p.Hash)
	conn.Close(context.Background())
	if err != nil {
		return nil, err
	}
	if len(all) == 0 {
		return nil, &migrations.RefusedError{Msg: fmt.Sprintf("plan %s has not run on this database: no phase to watch", p.Hash[:12])}
	}
	st := all[0]
	pi, err := watchedPhase(p, st, o.Phase)
	if err != nil {
		return nil, err
	}
	ph := p.Phases[pi]
	r := &PhaseWatchResult{Plan: p.Hash, Phase: ph.Kind, Reversible: ph.Reversible}
	w := o.Watch
	w.Alarms = o.Pipeline.Alarms
	if st.Phases[pi].FinishedAt == nil {
		return nil, fmt.Errorf("phase %s is done but the ledger has no finish time", ph.Kind)
	}
	w.From = *st.Phases[pi].FinishedAt
	if w.Progress != nil && !ph.Reversible {
		fmt.Fprintf(w.Progress, "watch: phase %s is not reversible: a breach will be reported, not rolled back\n", ph.Kind)
	}
	wr, err := Watch(ctx, w)
	if wr != nil {
		r.WatchResult = *wr
	}
	if err != nil {
		return r, err
	}
	if !wr.Breached {
		r.Message = fmt.Sprintf("phase %s baked %s with no alarm breached", ph.Kind, pipeline.FormatDuration(w.For))
		return r, nil
	}
	var names []string
	for _, a := range wr.Breaches() {
		names = append(names, a.Alarm)
	}
	if !ph.Reversible {
		r.Message = fmt.Sprintf("alarm %s breached during the bake of phase %s, which is not reversible: not rolled back (phasekit rollback --force undoes its schema, not its data)", strings.Join(names, ", "), ph.Kind)
		return r, nil
	}
	ro := o.Rollback
	ro.To, ro.All = "", pi == 0
	if pi > 0 {
		ro.To = p.Phases[pi-1].Kind
	}
	status, err := migrations.Rollback(ctx, o.DSN, o.Dir, ro)
	if err != nil {
		r.Message = fmt.Sprintf("alarm %s breached during the bake of phase %s; rolling it back failed: %v", strings.Join(names, ", "), ph.Kind, err)
		return r, fmt.Errorf("roll back phase %s after alarm %s breached: %w", ph.Kind, strings.Join(names, ", "), err)
	}
	r.RolledBack, r.Status = true, status
	r.Message = fmt.Sprintf("alarm %s breached during the bake of phase %s: phase %s rolled back", strings.Join(names, ", "), ph.Kind, ph.Kind)
	return r, nil
}

// watchedPhase picks the phase to watch: the one asked for, or the last
// done; it must be done and no later phase may have started.
func watchedPhase(p *phases.Plan, st migrations.PlanStatus, kind phases.Kind) (int, error) {
	pi := -1
	for i, ph := range p.Phases {
		if kind == "" && st.Phases[i].State == migrations.StateDone {
			pi = i
		}
		if kind != "" && ph.Kind == kind {
			pi = i
		}
	}
	if pi < 0 {
		if kind == "" {
			return 0, &migrations.RefusedError{Msg: "no phase of the plan is done: nothing bakes yet"}
		}
		var kinds []string
		for _, ph := range p.Phases {
			kinds = append(kinds, string(ph.Kind))
		}
		return 0, &migrations.RefusedError{Msg: fmt.Sprintf("the plan has no %s phase (it has: %s)", kind, strings.Join(kinds, ", "))}
	}
	if s := st.Phases[pi].State; s != migrations.StateDone {
		return 0, &migrations.RefusedError{Msg: fmt.Sprintf("phase %s is %s, not done: only a done phase bakes", p.Phases[pi].Kind, s)}
	}
	for j := pi + 1; j < len(p.Phases); j++ {
		if s := st.Phases[j].State; s != migrations.StatePending && s != migrations.StateRolledBack {
			return 0, &migrations.RefusedError{Msg: fmt.Sprintf("phase %s is %s after %s: watch the last phase started, so a rollback undoes only it", p.Phases[j].Kind, s, p.Phases[pi].Kind)}
		}
	}
	return pi, nil
}
