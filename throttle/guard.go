package throttle

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/phasekit/phasekit/internal/clock"
)

// Probe is one timed round trip that stands for the application's commits.
// The guard times Run itself, from the call to its return.
type Probe interface {
	Run(ctx context.Context) error
}

// AppLatency reads the application's own p99 latency as its monitoring
// computes it (cmd/phasekit: a Prometheus query). P99 returns an error when
// there is no value to read.
type AppLatency interface {
	P99(ctx context.Context) (time.Duration, error)
}

// AppHistory is an AppLatency that can also read the app's past: the
// median of its p99 readings over the span before now. The guard takes the
// app's baseline from it when it can (Config.AppBaselineFor): one reading
// is one moment, and a 10 s p99 of an app moves by half between moments
// with nothing running beside it (docs/BENCHMARKS.md).
type AppHistory interface {
	MedianP99(ctx context.Context, span time.Duration) (time.Duration, error)
}

// ErrProbe is wrapped by Start's error when the probe fails during the
// baseline.
var ErrProbe = errors.New("the latency probe fails")

// ErrApp is wrapped by Start's error when the app's latency cannot be read
// before the backfill.
var ErrApp = errors.New("the app's latency cannot be read")

// appReadTimeout bounds one reading of the app's latency.
const appReadTimeout = 10 * time.Second

// Guard runs a probe in the background and paces a backfill with a
// Controller. Its methods are safe for concurrent use.
type Guard struct {
	probe Probe
	clock func() time.Time

	mu       sync.Mutex
	ctrl     *Controller
	baseline []Sample // collected before ctrl exists
	inflight time.Time
	lastErr  error

	stop context.CancelFunc
	done sync.WaitGroup
}

// Start measures the probe's baseline for cfg.BaselineFor (the backfill has
// not started) and keeps probing every cfg.Interval until Stop. clock and
// sleep stand in for time.Now and a context-aware sleep (nil: the real ones).
func Start(ctx context.Context, probe Probe, cfg Config, now func() time.Time, sleep func(context.Context, time.Duration) error) (*Guard, error) {
	cfg = cfg.withDefaults()
	if now == nil {
		now = time.Now
	}
	if sleep == nil {
		sleep = clock.Sleep
	}
	loopCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	g := &Guard{probe: probe, clock: now, stop: cancel}
	g.done.Add(1)
	go g.loop(loopCtx, cfg.Interval, sleep)

	if err := sleep(ctx, cfg.BaselineFor); err != nil {
		g.Stop()
		return nil, err
	}
	g.mu.Lock()
	samples, lastErr := g.baseline, g.lastErr
	g.baseline = nil
	g.mu.Unlock()
	var ok []Sample
	for _, s := range samples {
		if !s.Failed {
			ok = append(ok, s)
		}
	}
	if failed := len(samples) - len(ok); len(ok) < cfg.MinSamples || failed > len(samples)/2 {
		g.Stop()
		if lastErr != nil {
			return nil, fmt.Errorf("%w: %d of %d probes in %s failed, the last with: %v", ErrProbe, failed, len(samples), cfg.BaselineFor, lastErr)
		}
		return nil, fmt.Errorf("%w: only %d probes finished in %s", ErrProbe, len(ok), cfg.BaselineFor)
	}
	var app time.Duration
	if cfg.App != nil {
		// Read after the probe's baseline: what it covers is before the
		// backfill.
		var err error
		if app, err = appBaseline(ctx, cfg.App, cfg.AppBaselineFor); err != nil {
			g.Stop()
			return nil, fmt.Errorf("%w before the backfill: %v", ErrApp, err)
		}
		if cfg.AppP99 <= 0 {
			cfg.AppP99 = app
		}
	}
	ctrl := NewController(cfg, BaselineP99(ok, cfg.Window/2), now())
	if cfg.App != nil {
		ctrl.SetAppBaseline(app)
	}
	g.mu.Lock()
	g.ctrl = ctrl
	g.mu.Unlock()
	if cfg.App != nil {
		g.done.Add(1)
		go g.watchApp(loopCtx, cfg.App, cfg.AppEvery, sleep)
	}
	return g, nil
}

// appBaseline is the app's p99 before the backfill: the median of its
// readings over span when app can read its past, else one reading.
func appBaseline(ctx context.Context, app AppLatency, span time.Duration) (time.Duration, error) {
	h, ok := app.(AppHistory)
	if !ok {
		return readApp(ctx, app)
	}
	median := func(ctx context.Context) (time.Duration, error) { return h.MedianP99(ctx, span) }
	return bounded(ctx, median, fmt.Sprintf("a median p99 of %%s over %s", span))
}

// readApp reads app once, within appReadTimeout; a reading of 0 or less is
// refused as none.
func readApp(ctx context.Context, app AppLatency) (time.Duration, error) {
	return bounded(ctx, app.P99, "a p99 of %s")
}

// bounded runs read within appReadTimeout and refuses a latency of 0 or
// less with none, a format naming it.
func bounded(ctx context.Context, read func(context.Context) (time.Duration, error), none string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, appReadTimeout)
	defer cancel()
	d, err := read(ctx)
	if err == nil && d <= 0 {
		err = fmt.Errorf(none, d)
	}
	return d, err
}

// watchApp reads the app's latency every every and gives each reading to
// the controller.
func (g *Guard) watchApp(ctx context.Context, app AppLatency, every time.Duration, sleep func(context.Context, time.Duration) error) {
	defer g.done.Done()
	for sleep(ctx, every) == nil {
		d, err := readApp(ctx, app)
		if ctx.Err() != nil {
			return
		}
		g.mu.Lock()
		g.ctrl.ObserveApp(g.clock(), d, err)
		g.mu.Unlock()
	}
}

func (g *Guard) loop(ctx context.Context, every time.Duration, sleep func(context.Context, time.Duration) error) {
	defer g.done.Done()
	for ctx.Err() == nil {
		start := g.clock()
		g.mu.Lock()
		g.inflight = start
		g.mu.Unlock()
		err := g.probe.Run(ctx)
		end := g.clock()
		if ctx.Err() != nil {
			return
		}
		s := Sample{At: start, Latency: end.Sub(start), Failed: err != nil}
		g.mu.Lock()
		g.inflight = time.Time{}
		if err != nil {
			g.lastErr = err
		}
		if g.ctrl != nil {
			g.ctrl.Observe(s)
		} else {
			// Samples between the baseline's end and the controller's
			// start are dropped with g.baseline: a few milliseconds' worth.
			g.baseline = append(g.baseline, s)
		}
		g.mu.Unlock()
		if wait := every - end.Sub(start); wait > 0 {
			if sleep(ctx, wait) != nil {
				return
			}
		}
	}
}

// Pace is called after each batch: keys rows were walked in took. It returns
// how long to wait before the next batch, so that the rows walked fit the
// controller's rate, plus a pause when the probe just went above the limit
// (a longer one when it is a quiet window), and the controller's decision
// with the longest the next batch should run (Decision.Burst).
func (g *Guard) Pace(keys int64, took time.Duration) (wait time.Duration, d Decision) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.clock()
	var inflight time.Duration
	if !g.inflight.IsZero() {
		inflight = now.Sub(g.inflight)
	}
	g.ctrl.Walked(now, keys)
	d = g.ctrl.Decide(now, inflight)
	if d.Rate > 0 {
		slot := time.Duration(float64(keys) / d.Rate * float64(time.Second))
		wait = max(0, slot-took)
	}
	d.Burst = g.ctrl.Stats().Burst()
	return wait + d.Pause, d
}

// Stats returns what the guard did so far.
func (g *Guard) Stats() Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ctrl == nil {
		return Stats{}
	}
	return g.ctrl.Stats()
}

// Config returns the guard's configuration with its defaults filled in.
func (g *Guard) Config() Config {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ctrl.Config()
}

// Stop ends the probing and waits for the probe in flight.
func (g *Guard) Stop() {
	g.stop()
	g.done.Wait()
}
