package fleet

import (
	"context"
	"time"

	"github.com/phasekit/phasekit/internal/clock"
	"github.com/phasekit/phasekit/pipeline"
)

// AlarmCheck says whether an alarm breaches now, with the evidence to show
// (the alarm, its datapoints). An error means the check could not say; the
// rollout then stops, as it cannot tell the fleet is healthy.
type AlarmCheck func(ctx context.Context) (breached bool, evidence string, err error)

// Clock is the time bakes are measured in; tests pass one that does not
// really wait.
type Clock interface {
	Now() time.Time
	// Sleep waits d, or until ctx is done (then it returns ctx.Err()).
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) error { return clock.Sleep(ctx, d) }

// checkAlarm runs the alarm check once; wr is nil before the first wave.
func (r *rollout) checkAlarm(ctx context.Context, wr *WaveReport) (string, error) {
	wave := ""
	if wr != nil {
		wave = wr.Name
		wr.AlarmChecks++
	}
	breached, evidence, err := r.opts.Alarm(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", &AlarmError{Wave: wave, Err: err}
	}
	if breached {
		where := "wave " + wave
		if wave == "" {
			where = "before the first wave"
		}
		r.say("%s: ALARM: %s", where, evidence)
		return evidence, &AlarmError{Wave: wave, Evidence: evidence}
	}
	return evidence, nil
}

// bake waits the wave's bake, checking the alarm at its start, every
// AlarmInterval and at its end. A wave whose targets all had the phase done
// before this run (a resumed rollout) has been baking since the last of them
// finished: only the rest of the bake is waited, after one alarm check.
func (r *rollout) bake(ctx context.Context, w Wave, wr *WaveReport) error {
	d := w.Bake
	if r.opts.NoBake && d > 0 {
		r.say("wave %s: bake %s skipped (--no-bake)", w.Name, pipeline.FormatDuration(d))
		d = 0
	}
	if d > 0 {
		applied, since := false, time.Duration(-1)
		for _, t := range wr.Targets {
			switch t.State {
			case Applied:
				applied = true
			case AlreadyDone:
				if since < 0 || t.finished < since {
					since = t.finished
				}
			}
		}
		if !applied && since >= 0 {
			if since >= d {
				r.say("wave %s: baked already: its targets finished %s ago (bake %s)", w.Name, round(since), pipeline.FormatDuration(d))
				d = 0
			} else {
				r.say("wave %s: its targets finished %s ago: %s of the %s bake left", w.Name, round(since), round(d-since), pipeline.FormatDuration(d))
				d -= since
			}
		}
	}
	clock := r.opts.Clock
	start := clock.Now()
	if r.opts.Alarm == nil {
		if d <= 0 {
			return nil
		}
		r.say("wave %s: baking %s; no alarm check configured: the bake only waits", w.Name, round(d))
		if err := clock.Sleep(ctx, d); err != nil {
			return err
		}
		wr.Baked = round(clock.Now().Sub(start))
		r.say("wave %s: baked %s", w.Name, wr.Baked)
		return nil
	}
	if d > 0 {
		r.say("wave %s: baking %s, checking the alarm every %s", w.Name, round(d), pipeline.FormatDuration(r.opts.AlarmInterval))
	}
	deadline := start.Add(d)
	for {
		if _, err := r.checkAlarm(ctx, wr); err != nil {
			wr.Baked = round(clock.Now().Sub(start))
			return err
		}
		left := deadline.Sub(clock.Now())
		if left <= 0 {
			break
		}
		if err := clock.Sleep(ctx, min(left, r.opts.AlarmInterval)); err != nil {
			return err
		}
	}
	wr.Baked = round(clock.Now().Sub(start))
	r.say("wave %s: baked %s, alarm checked %d time(s), not breached", w.Name, wr.Baked, wr.AlarmChecks)
	return nil
}

// round shows a duration to the second, or to a tenth below a minute.
func round(d time.Duration) string {
	if d < time.Minute {
		return pipeline.FormatDuration(d.Round(100 * time.Millisecond))
	}
	return pipeline.FormatDuration(d.Round(time.Second))
}
