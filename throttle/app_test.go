package throttle

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// appController is a controller with a 1ms probe baseline that watches an
// app whose p99 before the backfill was 2ms (its limit: 3ms plus 1µs), fed
// fine probes until its rate has grown past the initial 10,000 rows/s.
func appController(t *testing.T) (*Controller, *fakeTime) {
	t.Helper()
	clk := &fakeTime{now: time.Unix(0, 0)}
	cfg := testConfig()
	cfg.AppLag = 30 * time.Second
	c := NewController(cfg, time.Millisecond, clk.now)
	c.SetAppBaseline(2 * time.Millisecond)
	if got, want := c.Stats().App.Limit, 3*time.Millisecond+time.Microsecond; got != want {
		t.Fatalf("app limit %s, want %s", got, want)
	}
	for i := 0; i < 3; i++ {
		feed(c, clk, 25, time.Millisecond)
	}
	if r := c.Stats().Rate; r <= 10_000 {
		t.Fatalf("rate %.0f after fine probes, want it grown", r)
	}
	return c, clk
}

// A reading of the app above its limit halves the rate although the probe
// is fine; the rate then holds until a reading is back under the limit, and
// readings within AppLag of the cut hold without cutting again.
func TestAppAboveItsLimitCutsAndHolds(t *testing.T) {
	c, clk := appController(t)
	before := c.Stats().Rate
	c.ObserveApp(clk.now, 4*time.Millisecond, nil)
	st := c.Stats()
	if st.Rate != before/2 || st.App.Cuts != 1 || st.Decreases != 0 {
		t.Fatalf("after an app reading of 4ms: rate %.0f (from %.0f), %d cuts on the app, %d probe decreases; want half, 1, 0", st.Rate, before, st.App.Cuts, st.Decreases)
	}
	cut := st.Rate
	// Fine probes for 10s: the app's latest reading is above its limit, so
	// the rate holds.
	for i := 0; i < 40; i++ {
		feed(c, clk, 25, time.Millisecond)
	}
	if r := c.Stats().Rate; r != cut {
		t.Fatalf("rate %.0f with the app above its limit, want it held at %.0f", r, cut)
	}
	// A reading still above, within AppLag of the cut: no second cut.
	c.ObserveApp(clk.now, 5*time.Millisecond, nil)
	if st := c.Stats(); st.Rate != cut || st.App.Cuts != 1 || st.App.Peak != 5*time.Millisecond {
		t.Fatalf("second reading within AppLag: rate %.0f, %d cuts, peak %s; want %.0f, 1, 5ms", st.Rate, st.App.Cuts, st.App.Peak, cut)
	}
	// Back under the limit: the rate grows again.
	c.ObserveApp(clk.now, 2500*time.Microsecond, nil)
	feed(c, clk, 25, time.Millisecond)
	if r := c.Stats().Rate; r <= cut {
		t.Fatalf("rate %.0f after the app came back under its limit, want above %.0f", r, cut)
	}
	// Above again once AppLag has passed since the cut: cut again.
	clk.advance(30 * time.Second)
	grown := c.Stats().Rate
	c.ObserveApp(clk.now, 4*time.Millisecond, nil)
	if st := c.Stats(); st.App.Cuts != 2 || st.Rate >= grown {
		t.Fatalf("reading above the limit AppLag after the cut: %d cuts, rate %.0f (was %.0f); want 2 and lower", st.App.Cuts, st.Rate, grown)
	}
}

// A reading at the limit is not above it; failed readings are counted and
// change nothing.
func TestAppReadingsAtTheLimitAndFailedChangeNothing(t *testing.T) {
	c, clk := appController(t)
	c.ObserveApp(clk.now, 3*time.Millisecond+time.Microsecond, nil)
	c.ObserveApp(clk.now, 0, errors.New("prometheus: connection refused"))
	before := c.Stats().Rate
	feed(c, clk, 25, time.Millisecond)
	st := c.Stats()
	if st.Rate <= before || st.App.Cuts != 0 {
		t.Fatalf("rate %.0f (was %.0f), %d cuts: want it growing, no cut", st.Rate, before, st.App.Cuts)
	}
	if st.App.Readings != 2 || st.App.Errors != 1 || st.App.LastError != "prometheus: connection refused" {
		t.Fatalf("app stats %+v, want 2 readings, 1 error named", *st.App)
	}
	if line := st.Line(); !strings.Contains(line, "app p99 3ms (limit 3ms, baseline 2ms), 0 cuts on it, 1 of 2 readings failed") {
		t.Errorf("progress line %q does not say what the guard read of the app", line)
	}
	js, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(js), `"app":{"baseline_p99_ms":2,"limit_ms":3.001,"p99_ms":3.001,"peak_p99_ms":3.001,"readings":2,"errors":1,"cuts":0,"last_error":"prometheus: connection refused"}`) {
		t.Errorf("ledger JSON %s does not hold the app's readings", js)
	}
}

// A controller that does not watch the app ignores readings and says
// nothing of the app.
func TestNoAppNoAppStats(t *testing.T) {
	clk := &fakeTime{now: time.Unix(0, 0)}
	c := NewController(testConfig(), time.Millisecond, clk.now)
	c.ObserveApp(clk.now, time.Second, nil)
	st := c.Stats()
	if st.App != nil || st.Rate != 10_000 {
		t.Fatalf("stats %+v, want no app and the rate untouched", st)
	}
	if js, _ := json.Marshal(st); strings.Contains(string(js), "app") {
		t.Errorf("ledger JSON %s mentions the app", js)
	}
}

// fakeApp is the app's monitoring: it returns the p99 stored, or err.
type fakeApp struct {
	p99   atomic.Int64
	err   atomic.Value // error
	reads atomic.Int32
}

func (a *fakeApp) P99(context.Context) (time.Duration, error) {
	a.reads.Add(1)
	if e, _ := a.err.Load().(error); e != nil {
		return 0, e
	}
	return time.Duration(a.p99.Load()), nil
}

// The guard reads the app before the backfill (its reading becomes the
// probe's headroom and the app's baseline), then keeps reading it, and
// slows the backfill down when the app's latency rises while the probe's
// does not.
func TestGuardWatchesTheApp(t *testing.T) {
	p := &slowProbe{}
	p.latency.Store(int64(time.Millisecond))
	app := &fakeApp{}
	app.p99.Store(int64(4 * time.Millisecond))
	cfg := Config{Interval: 2 * time.Millisecond, BaselineFor: 100 * time.Millisecond, Every: 20 * time.Millisecond, MinSamples: 3,
		App: app, AppEvery: 20 * time.Millisecond, AppLag: time.Hour}
	g, err := Start(context.Background(), p, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Stop()
	st := g.Stats()
	if g.Config().AppP99 != 4*time.Millisecond || st.App == nil || st.App.Baseline != 4*time.Millisecond {
		t.Fatalf("AppP99 %s, app stats %+v: want the reading before the backfill, 4ms, in both", g.Config().AppP99, st.App)
	}
	if want := st.Baseline + 2*time.Millisecond + 200*time.Microsecond; st.Limit != want {
		t.Fatalf("probe limit %s, want its baseline plus half the app's 4ms plus the slack: %s", st.Limit, want)
	}
	app.p99.Store(int64(9 * time.Millisecond))
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		g.Pace(100, time.Millisecond)
		if st := g.Stats(); st.App.Cuts > 0 {
			if st.Rate >= 10_000 || st.App.P99 != 9*time.Millisecond {
				t.Fatalf("cut on the app, but stats %+v, app %+v", st, *st.App)
			}
			if st.App.Cuts != 1 {
				t.Fatalf("%d cuts within AppLag, want 1", st.App.Cuts)
			}
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("the app went from 4ms to 9ms and the guard never cut: %+v", g.Stats())
}

// An explicit AppP99 (--app-p99) stays the probe's headroom; the reading is
// the app's baseline.
func TestGuardKeepsAnExplicitAppP99(t *testing.T) {
	p := &slowProbe{}
	p.latency.Store(int64(time.Millisecond))
	app := &fakeApp{}
	app.p99.Store(int64(4 * time.Millisecond))
	cfg := Config{Interval: 2 * time.Millisecond, BaselineFor: 50 * time.Millisecond, MinSamples: 3, App: app, AppP99: 10 * time.Millisecond}
	g, err := Start(context.Background(), p, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Stop()
	if g.Config().AppP99 != 10*time.Millisecond || g.Stats().App.Baseline != 4*time.Millisecond {
		t.Fatalf("AppP99 %s, app baseline %s: want 10ms and 4ms", g.Config().AppP99, g.Stats().App.Baseline)
	}
}

// The guard does not start when the app cannot be read before the backfill,
// nor when it reads no latency at all; its error names the reading's.
func TestStartFailsWhenTheAppCannotBeRead(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		app        *fakeApp
	}{
		{"error", "query histogram_quantile(...): no series", func() *fakeApp {
			a := &fakeApp{}
			a.err.Store(errors.New("query histogram_quantile(...): no series"))
			return a
		}()},
		{"zero", "a p99 of 0s", &fakeApp{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &slowProbe{}
			p.latency.Store(int64(time.Millisecond))
			_, err := Start(context.Background(), p, Config{Interval: time.Millisecond, BaselineFor: 30 * time.Millisecond, MinSamples: 3, App: tc.app}, nil, nil)
			if !errors.Is(err, ErrApp) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want ErrApp naming %q", err, tc.want)
			}
			if tc.app.reads.Load() != 1 {
				t.Errorf("%d readings, want 1", tc.app.reads.Load())
			}
		})
	}
}

// With the app watched, ProbeRatio sets the probe's limit; the app's stays
// at MaxRatio.
func TestProbeRatioWhenTheAppIsWatched(t *testing.T) {
	cfg := Config{MaxRatio: 1.5, ProbeRatio: 2, Slack: 200 * time.Microsecond, AppP99: 2 * time.Millisecond}
	if got, want := NewController(cfg, time.Millisecond, time.Now()).Limit(), 2200*time.Microsecond; got != want {
		t.Errorf("without App: probe limit %s, want %s (ProbeRatio ignored)", got, want)
	}
	cfg.App = &fakeApp{}
	c := NewController(cfg, time.Millisecond, time.Now())
	c.SetAppBaseline(2 * time.Millisecond)
	if got, want := c.Limit(), 3200*time.Microsecond; got != want { // 1 + (2-1)·2 + 0.2
		t.Errorf("probe limit %s, want %s", got, want)
	}
	if got, want := c.Stats().App.Limit, 3200*time.Microsecond; got != want { // 1.5·2 + 0.2
		t.Errorf("app limit %s, want %s", got, want)
	}
}

// historyApp can read its past: the median over a span is 3ms whatever the
// latest reading.
type historyApp struct {
	fakeApp
	span time.Duration
}

func (h *historyApp) MedianP99(_ context.Context, span time.Duration) (time.Duration, error) {
	h.span = span
	return 3 * time.Millisecond, nil
}

// The app's baseline is the median of its past when it can be read, over
// AppBaselineFor; the latest reading does not set it.
func TestGuardTakesTheAppsBaselineFromItsPast(t *testing.T) {
	p := &slowProbe{}
	p.latency.Store(int64(time.Millisecond))
	app := &historyApp{}
	app.p99.Store(int64(9 * time.Millisecond))
	cfg := Config{Interval: 2 * time.Millisecond, BaselineFor: 50 * time.Millisecond, MinSamples: 3, App: app, AppBaselineFor: time.Minute}
	g, err := Start(context.Background(), p, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Stop()
	if b := g.Stats().App.Baseline; b != 3*time.Millisecond || app.span != time.Minute || app.reads.Load() != 0 {
		t.Fatalf("app baseline %s over %s with %d readings: want the median, 3ms, over 1m and no reading", b, app.span, app.reads.Load())
	}
}
