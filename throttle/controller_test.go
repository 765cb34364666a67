package throttle

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeTime is an injected clock the tests move by hand.
type fakeTime struct{ now time.Time }

func (f *fakeTime) advance(d time.Duration) time.Time {
	f.now = f.now.Add(d)
	return f.now
}

// feed gives the controller n probes of latency lat, one every 10ms, then
// asks it to decide.
func feed(c *Controller, clk *fakeTime, n int, lat time.Duration) Decision {
	for i := 0; i < n; i++ {
		c.Observe(Sample{At: clk.advance(10 * time.Millisecond), Latency: lat})
	}
	return c.Decide(clk.now, 0)
}

func testConfig() Config {
	return Config{MaxRatio: 1.5, Slack: time.Microsecond, Every: 250 * time.Millisecond, Window: 2 * time.Second,
		InitialRate: 10_000, MinRate: 500, Increase: 0.05, Decrease: 0.5, MinSamples: 10, Confirm: 1}
}

func TestLimitIsRatioOfBaselinePlusSlack(t *testing.T) {
	c := NewController(Config{MaxRatio: 2, Slack: time.Millisecond}, 3*time.Millisecond, time.Now())
	if got, want := c.Limit(), 7*time.Millisecond; got != want {
		t.Errorf("limit %s, want %s", got, want)
	}
}

// TestLimitWithAppP99: given the app's p99, the ratio's headroom is of it,
// above the probe's own baseline; a quiet window's new baseline keeps it.
func TestLimitWithAppP99(t *testing.T) {
	c := NewController(Config{MaxRatio: 1.5, Slack: 200 * time.Microsecond, AppP99: 2 * time.Millisecond}, 900*time.Microsecond, time.Now())
	if got, want := c.Limit(), 2100*time.Microsecond; got != want { // 0.9 + 0.5·2 + 0.2
		t.Errorf("limit %s, want %s", got, want)
	}
	c.setBaseline(1500 * time.Microsecond)
	if got, want := c.Limit(), 2700*time.Microsecond; got != want {
		t.Errorf("limit after a new baseline %s, want %s", got, want)
	}
}

func TestSlowStartThenAIMD(t *testing.T) {
	clk := &fakeTime{now: time.Unix(0, 0)}
	c := NewController(testConfig(), 2*time.Millisecond, clk.now) // limit 3ms + 1µs
	// Within the limit: the rate grows by half each decision.
	rate := 10_000.0
	for i := 0; i < 3; i++ {
		d := feed(c, clk, 25, 2*time.Millisecond)
		rate *= 1.5
		if d.Rate != rate || d.Pause != 0 {
			t.Fatalf("slow start step %d: %+v, want rate %.0f and no pause", i, d, rate)
		}
	}
	// Above the limit: halved, with a pause.
	d := feed(c, clk, 25, 5*time.Millisecond)
	if d.Rate != rate/2 || d.Pause != 250*time.Millisecond {
		t.Fatalf("over the limit: %+v, want rate %.0f and a 250ms pause", d, rate/2)
	}
	from := rate
	rate /= 2
	// Samples from before the decrease no longer count: a window of good
	// probes after it grows the rate additively, by 5% of the rate the
	// decrease started from.
	for i := 0; i < 4; i++ {
		d := feed(c, clk, 25, 2*time.Millisecond)
		rate += 0.05 * from
		if d.Rate != rate || d.Pause != 0 {
			t.Fatalf("additive step %d: %+v, want rate %.0f", i, d, rate)
		}
	}
	st := c.Stats()
	if st.Decreases != 1 || st.Paused != 250*time.Millisecond || st.Peak != 5*time.Millisecond || st.P99 != 2*time.Millisecond {
		t.Errorf("stats %+v", st)
	}
}

func TestDecidesOnlyEveryInterval(t *testing.T) {
	clk := &fakeTime{now: time.Unix(0, 0)}
	c := NewController(testConfig(), 2*time.Millisecond, clk.now)
	feed(c, clk, 25, 2*time.Millisecond) // decision at 250ms: 15,000
	d := feed(c, clk, 5, 9*time.Millisecond)
	if d.Rate != 15_000 || d.Pause != 0 {
		t.Fatalf("50ms after a decision: %+v, want the rate held", d)
	}
	d = feed(c, clk, 20, 9*time.Millisecond)
	if d.Rate != 7_500 {
		t.Fatalf("250ms after: %+v, want halved", d)
	}
}

func TestFewSamplesHoldUntilHalfAWindow(t *testing.T) {
	clk := &fakeTime{now: time.Unix(0, 0)}
	c := NewController(testConfig(), 2*time.Millisecond, clk.now)
	c.Observe(Sample{At: clk.advance(100 * time.Millisecond), Latency: 50 * time.Millisecond})
	clk.advance(500 * time.Millisecond)
	if d := c.Decide(clk.now, 0); d.Rate != 10_000 || d.Pause != 0 {
		t.Fatalf("one sample, 600ms in: %+v, want the rate held", d)
	}
	// Probes this slow arrive few and far between: half a window (1s) on,
	// the controller goes by the few it has.
	c.Observe(Sample{At: clk.advance(300 * time.Millisecond), Latency: 50 * time.Millisecond})
	clk.advance(200 * time.Millisecond)
	if d := c.Decide(clk.now, 0); d.Rate != 5_000 || d.Pause == 0 {
		t.Fatalf("two slow samples, 1.1s in: %+v, want halved", d)
	}
	// And a p99 over fewer than MinSamples fast probes is not taken.
	cfg := testConfig()
	cfg.MinSamples = 100
	c = NewController(cfg, 2*time.Millisecond, clk.now)
	if d := feed(c, clk, 30, 2*time.Millisecond); d.Rate != 10_000 {
		t.Fatalf("30 samples in 300ms with MinSamples 100: %+v, want the rate held", d)
	}
	if d := feed(c, clk, 70, 2*time.Millisecond); d.Rate != 15_000 {
		t.Fatalf("100 samples: %+v, want the slow start's first step", d)
	}
}

func TestFloorAndCap(t *testing.T) {
	clk := &fakeTime{now: time.Unix(0, 0)}
	cfg := testConfig()
	cfg.MaxRate = 12_000
	c := NewController(cfg, 2*time.Millisecond, clk.now)
	if d := feed(c, clk, 25, time.Millisecond); d.Rate != 12_000 {
		t.Fatalf("capped: %+v, want 12,000", d)
	}
	for i := 0; i < 10; i++ {
		feed(c, clk, 25, time.Second)
	}
	if d := feed(c, clk, 25, time.Second); d.Rate != 500 {
		t.Fatalf("after ten slow windows: %+v, want the 500 rows/s floor", d)
	}
}

func TestStuckProbeCountsAsSlow(t *testing.T) {
	clk := &fakeTime{now: time.Unix(0, 0)}
	c := NewController(testConfig(), 2*time.Millisecond, clk.now)
	for i := 0; i < 25; i++ {
		c.Observe(Sample{At: clk.advance(10 * time.Millisecond), Latency: time.Millisecond})
	}
	// No probe has finished slow, but the one running is 400ms old.
	clk.advance(400 * time.Millisecond)
	if d := c.Decide(clk.now, 400*time.Millisecond); d.Rate != 5_000 || d.Pause == 0 {
		t.Fatalf("probe in flight for 400ms: %+v, want halved with a pause", d)
	}
}

func TestFailedProbesCountAsSlow(t *testing.T) {
	clk := &fakeTime{now: time.Unix(0, 0)}
	c := NewController(testConfig(), 2*time.Millisecond, clk.now)
	for i := 0; i < 25; i++ {
		c.Observe(Sample{At: clk.advance(10 * time.Millisecond), Latency: time.Millisecond, Failed: i%2 == 0})
	}
	if d := c.Decide(clk.now, 0); d.Rate != 5_000 {
		t.Fatalf("half the probes failed: %+v, want halved", d)
	}
	if st := c.Stats(); st.Failures != 13 || st.Samples != 25 {
		t.Errorf("stats %+v", st)
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 200; i++ {
		ds = append(ds, time.Duration(201-i)*time.Millisecond)
	}
	if got := Percentile(ds, 0.99); got != 198*time.Millisecond {
		t.Errorf("p99 of 1..200ms: %s", got)
	}
	if got := Percentile(ds[:1], 0.99); got != ds[0] {
		t.Errorf("p99 of one: %s", got)
	}
	if got := Percentile(nil, 0.99); got != 0 {
		t.Errorf("p99 of none: %s", got)
	}
}

// slowProbe takes as long as its latency says, in real time.
type slowProbe struct{ latency atomic.Int64 }

func (p *slowProbe) Run(ctx context.Context) error {
	select {
	case <-time.After(time.Duration(p.latency.Load())):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// The guard measures its baseline, then slows the backfill down when the
// probe's latency rises: the loop, the lock and the controller together.
func TestGuardSlowsDownWhenProbeLatencyRises(t *testing.T) {
	p := &slowProbe{}
	p.latency.Store(int64(time.Millisecond))
	cfg := Config{Interval: 2 * time.Millisecond, BaselineFor: 150 * time.Millisecond, Every: 30 * time.Millisecond, MinSamples: 3}
	g, err := Start(context.Background(), p, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Stop()
	if st := g.Stats(); st.Baseline < time.Millisecond || st.Baseline > 100*time.Millisecond {
		t.Fatalf("baseline %s, want about 1ms", st.Baseline)
	}
	p.latency.Store(int64(60 * time.Millisecond))
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, d := g.Pace(1000, time.Millisecond); d.Pause > 0 {
			st := g.Stats()
			if st.Decreases < 1 || st.Rate >= 10_000 {
				t.Fatalf("slowed, but stats %+v", st)
			}
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("the probe went from 1ms to 60ms and the guard never slowed down: %+v", g.Stats())
}

type failingProbe struct{}

func (failingProbe) Run(context.Context) error {
	return errors.New("permission denied for schema phasekit")
}

func TestStartFailsWhenTheProbeFails(t *testing.T) {
	_, err := Start(context.Background(), failingProbe{}, Config{Interval: time.Millisecond, BaselineFor: 50 * time.Millisecond}, nil, nil)
	if !errors.Is(err, ErrProbe) {
		t.Fatalf("err %v, want ErrProbe", err)
	}
	if want := "permission denied for schema phasekit"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("err %v does not name the probe's error", err)
	}
}

// warmedUp is a controller with a 2ms baseline fed 2ms probes for ten quiet
// windows' length, so that a quiet window may be asked for.
func warmedUp(cfg Config) (*Controller, *fakeTime) {
	clk := &fakeTime{now: time.Unix(0, 0)}
	c := NewController(cfg, 2*time.Millisecond, clk.now)
	until := clk.now.Add(10 * c.Config().Quiet)
	for clk.now.Before(until) {
		feed(c, clk, 25, 2*time.Millisecond)
	}
	return c, clk
}

// quietConfig asks for a quiet window after three decreases in a row, at
// most every 5s (ten times its 500ms).
func quietConfig() Config {
	c := testConfig()
	c.QuietAfter, c.Quiet = 3, 500*time.Millisecond
	return c
}

// backOff feeds slow probes until the controller asks for a quiet window,
// and returns that decision and the rate it started from.
func backOff(t *testing.T, c *Controller, clk *fakeTime, lat time.Duration) (Decision, float64) {
	t.Helper()
	before := c.Stats().Rate
	for i := 1; i <= 3; i++ {
		d := feed(c, clk, 25, lat)
		if d.Pause == 0 {
			t.Fatalf("decrease %d: %+v, want a pause", i, d)
		}
		if d.Quiet != (i == 3) {
			t.Fatalf("decrease %d: quiet %v, want a quiet window at the third decrease in a row", i, d.Quiet)
		}
		if i == 3 {
			return d, before
		}
	}
	return Decision{}, before
}

func TestQuietWindowRaisesTheBaselineWhenTheAppSlowsOnItsOwn(t *testing.T) {
	c, clk := warmedUp(quietConfig())
	// The app gets slower on its own: 5ms whether the backfill runs or not.
	d, before := backOff(t, c, clk, 5*time.Millisecond)
	if d.Pause != 500*time.Millisecond {
		t.Fatalf("quiet window of %s, want 500ms", d.Pause)
	}
	// During the window the probe still takes 5ms.
	for i := 0; i < 50; i++ {
		c.Observe(Sample{At: clk.advance(10 * time.Millisecond), Latency: 5 * time.Millisecond})
	}
	c.Decide(clk.now, 0)
	st := c.Stats()
	if st.Quiets != 1 || st.Baseline != 5*time.Millisecond || st.FirstBaseline != 2*time.Millisecond {
		t.Fatalf("after the quiet window: %+v, want baseline 5ms (first 2ms), one quiet window", st)
	}
	if want := before * 0.5; st.Rate != want {
		t.Errorf("rate %.0f after the quiet window, want half the rate before the decreases, %.0f", st.Rate, want)
	}
	// 5ms probes are now within the limit: the rate grows again.
	if d := feed(c, clk, 25, 5*time.Millisecond); d.Pause != 0 || d.Rate <= st.Rate {
		t.Errorf("after the new baseline, 5ms probes: %+v, want growth from %.0f", d, st.Rate)
	}
}

func TestQuietWindowKeepsTheLimitWhenTheBackfillWasTheCause(t *testing.T) {
	c, clk := warmedUp(quietConfig())
	backOff(t, c, clk, 9*time.Millisecond)
	rate := c.Stats().Rate
	// Alone, the probe is as fast as before: the backfill was the cause.
	for i := 0; i < 50; i++ {
		c.Observe(Sample{At: clk.advance(10 * time.Millisecond), Latency: 2 * time.Millisecond})
	}
	c.Decide(clk.now, 0)
	st := c.Stats()
	if st.Quiets != 1 || st.Limit != 3*time.Millisecond+time.Microsecond || st.Rate != rate {
		t.Fatalf("after the quiet window: %+v, want the limit 3ms and the rate %.0f kept", st, rate)
	}
	// Three more decreases in a row, less than ten windows later: no
	// second quiet window yet.
	for i := 0; i < 3; i++ {
		if d := feed(c, clk, 25, 9*time.Millisecond); d.Quiet {
			t.Fatalf("a second quiet window %s after the first", clk.now.Sub(time.Unix(5, 0)))
		}
	}
}

func TestQuietWindowWithTooFewProbesKeepsTheBaseline(t *testing.T) {
	c, clk := warmedUp(quietConfig())
	backOff(t, c, clk, 9*time.Millisecond)
	// One probe in the window, stuck for the whole of it.
	c.Observe(Sample{At: clk.advance(300 * time.Millisecond), Latency: 200 * time.Millisecond})
	clk.advance(300 * time.Millisecond)
	c.Decide(clk.now, 0)
	if st := c.Stats(); st.Quiets != 1 || st.Baseline != 2*time.Millisecond {
		t.Fatalf("%+v, want the 2ms baseline kept", st)
	}
}

// feedWalking is feed with the backfill walking rate rows/s meanwhile, in
// batches every 10ms.
func feedWalking(c *Controller, clk *fakeTime, n int, lat time.Duration, rate float64) Decision {
	for i := 0; i < n; i++ {
		at := clk.advance(10 * time.Millisecond)
		c.Observe(Sample{At: at, Latency: lat})
		c.Walked(at, int64(rate/100))
	}
	return c.Decide(clk.now, 0)
}

func TestRateFollowsWhatTheBackfillReallyWalks(t *testing.T) {
	clk := &fakeTime{now: time.Unix(0, 0)}
	c := NewController(testConfig(), 2*time.Millisecond, clk.now)
	// The backfill cannot go faster than 30,000 rows/s: the allowance
	// stops at twice that instead of growing without bound.
	var d Decision
	for i := 0; i < 40; i++ {
		d = feedWalking(c, clk, 25, 2*time.Millisecond, 30_000)
	}
	if d.Rate > 60_000 {
		t.Fatalf("allowance %.0f rows/s while the backfill walks 30,000: want at most twice that", d.Rate)
	}
	// The app feels it: the cut is from the 30,000 really walked.
	d = feedWalking(c, clk, 25, 9*time.Millisecond, 30_000)
	if d.Pause == 0 || d.Rate != 15_000 {
		t.Fatalf("over the limit: %+v, want half of the 30,000 rows/s walked", d)
	}
}

func TestConfirmHoldsOneWindowJustAboveTheLimit(t *testing.T) {
	clk := &fakeTime{now: time.Unix(0, 0)}
	cfg := testConfig()
	cfg.Confirm = 2
	c := NewController(cfg, 2*time.Millisecond, clk.now) // limit 3ms + 1µs
	rate := feed(c, clk, 25, 2*time.Millisecond).Rate
	// 4ms, under twice the limit: the first window holds the rate.
	if d := feed(c, clk, 25, 4*time.Millisecond); d.Pause != 0 || d.Rate != rate {
		t.Fatalf("first window above the limit: %+v, want the rate %.0f held", d, rate)
	}
	// The second in a row cuts.
	if d := feed(c, clk, 25, 4*time.Millisecond); d.Pause == 0 || d.Rate != rate/2 {
		t.Fatalf("second window above the limit: %+v, want a cut to %.0f", d, rate/2)
	}
	// Back under the limit, then 7ms, above twice the limit: cut at once.
	rate = feed(c, clk, 25, 2*time.Millisecond).Rate
	if d := feed(c, clk, 25, 7*time.Millisecond); d.Pause == 0 || d.Rate != rate/2 {
		t.Fatalf("a window above twice the limit: %+v, want a cut to %.0f at once", d, rate/2)
	}
}

// TestBaselineIgnoresOneStall: a second of slow probes inside a 5 s
// baseline does not become the baseline; a slower app all along does.
func TestBaselineIgnoresOneStall(t *testing.T) {
	at := time.Unix(0, 0)
	probes := func(n int, lat func(i int) time.Duration) []Sample {
		var ss []Sample
		for i := 0; i < n; i++ {
			ss = append(ss, Sample{At: at.Add(time.Duration(i) * 10 * time.Millisecond), Latency: lat(i)})
		}
		return ss
	}
	const ms = time.Millisecond
	stall := probes(500, func(i int) time.Duration {
		if i >= 150 && i < 250 { // the second second, all of it
			return 20 * ms
		}
		return ms
	})
	if got := BaselineP99(stall, time.Second); got != ms {
		t.Errorf("baseline with a 1 s stall: %s, want 1ms", got)
	}
	if got := Percentile(sampleLatencies(stall), 0.99); got != 20*ms {
		t.Fatalf("the p99 of all samples is %s: the test's stall does not show", got)
	}
	// Each second slower than the one before: the middle second's p99.
	rising := probes(500, func(i int) time.Duration { return time.Duration(1+i/100) * ms })
	if got := BaselineP99(rising, time.Second); got != 3*ms {
		t.Errorf("baseline of 1..5 ms seconds: %s, want 3ms", got)
	}
	// Fewer probes than one span holds: the p99 of all of them.
	few := probes(8, func(i int) time.Duration { return time.Duration(i+1) * ms })
	if got := BaselineP99(few, time.Second); got != 8*ms {
		t.Errorf("baseline of 8 probes: %s, want their p99, 8ms", got)
	}
	if got := BaselineP99(nil, time.Second); got != 0 {
		t.Errorf("baseline of no probes: %s, want 0", got)
	}
}

func sampleLatencies(ss []Sample) []time.Duration {
	var ds []time.Duration
	for _, s := range ss {
		ds = append(ds, s.Latency)
	}
	return ds
}

// TestQuietWindowIgnoresOneStall: a quiet window of several seconds is
// measured as the first baseline is; one slow second inside it does not
// raise the limit.
func TestQuietWindowIgnoresOneStall(t *testing.T) {
	cfg := testConfig()
	cfg.QuietAfter, cfg.Quiet = 3, 5*time.Second
	c, clk := warmedUp(cfg)
	d, _ := backOff(t, c, clk, 9*time.Millisecond)
	if d.Pause != 5*time.Second {
		t.Fatalf("quiet window of %s, want 5s", d.Pause)
	}
	// 5 s alone: 2 ms probes, but one second stalls at 30 ms.
	for i := 0; i < 500; i++ {
		lat := 2 * time.Millisecond
		if i >= 200 && i < 300 {
			lat = 30 * time.Millisecond
		}
		c.Observe(Sample{At: clk.advance(10 * time.Millisecond), Latency: lat})
	}
	c.Decide(clk.now, 0)
	if st := c.Stats(); st.Quiets != 1 || st.Baseline != 2*time.Millisecond {
		t.Fatalf("after a quiet window with a 1 s stall: %+v, want the 2ms baseline kept", st)
	}
}

func TestQuietWindowDefaultsToTheBaselinesLength(t *testing.T) {
	if got := (Config{}).withDefaults().Quiet; got != DefaultBaselineFor {
		t.Errorf("default quiet window %s, want %s", got, DefaultBaselineFor)
	}
	if got := (Config{BaselineFor: 8 * time.Second}).withDefaults().Quiet; got != 8*time.Second {
		t.Errorf("quiet window with an 8s baseline: %s, want 8s", got)
	}
}

// raised is a controller whose first baseline, 2ms, a quiet window raised
// to 5ms (the app slowed on its own), with the time that window ended.
func raised(t *testing.T) (*Controller, *fakeTime, time.Time) {
	t.Helper()
	c, clk := warmedUp(quietConfig())
	backOff(t, c, clk, 5*time.Millisecond)
	if st := alone(c, clk, 5*time.Millisecond); st.Quiets != 1 || st.Baseline != 5*time.Millisecond {
		t.Fatalf("after the quiet window: %+v, want baseline 5ms", st)
	}
	return c, clk, clk.now
}

// alone feeds the quiet window the controller asked for 50 probes of
// latency lat, lets it decide, and returns its stats.
func alone(c *Controller, clk *fakeTime, lat time.Duration) Stats {
	for i := 0; i < 50; i++ {
		c.Observe(Sample{At: clk.advance(10 * time.Millisecond), Latency: lat})
	}
	c.Decide(clk.now, 0)
	return c.Stats()
}

// untilRecheck feeds probes of latency lat, within the raised limit, until
// the controller asks for a quiet window, and fails unless it asks for it
// as a recheck ten quiet windows (5s) after the last one ended.
func untilRecheck(t *testing.T, c *Controller, clk *fakeTime, ended time.Time, lat time.Duration) Decision {
	t.Helper()
	for clk.now.Sub(ended) < 10*time.Second {
		d := feed(c, clk, 25, lat)
		if !d.Quiet {
			continue
		}
		if after := clk.now.Sub(ended); after < 5*time.Second || !d.Recheck || d.Pause != 500*time.Millisecond {
			t.Fatalf("%s after the quiet window: %+v, want a 500ms recheck 5s after it", after, d)
		}
		return d
	}
	t.Fatalf("no recheck of the raised baseline in 10s")
	return Decision{}
}

func TestRaisedBaselineIsMeasuredAgain(t *testing.T) {
	c, clk, ended := raised(t)
	untilRecheck(t, c, clk, ended, 5*time.Millisecond)
	rate := c.Stats().Rate
	// The app is back to its first speed: the limit comes back down.
	st := alone(c, clk, 2*time.Millisecond)
	if st.Quiets != 2 || st.Baseline != 2*time.Millisecond || st.Limit != 3*time.Millisecond+time.Microsecond || st.Rate != rate {
		t.Fatalf("after the recheck: %+v, want baseline 2ms, limit 3ms, rate %.0f kept, two quiet windows", st, rate)
	}
	// What the backfill costs now counts against the first limit again.
	if d := feed(c, clk, 25, 5*time.Millisecond); d.Pause == 0 || d.Rate >= rate {
		t.Errorf("5ms probes after the baseline came down: %+v, want a cut from %.0f", d, rate)
	}
	// No further recheck: the baseline is the first one.
	for until := clk.now.Add(10 * time.Second); clk.now.Before(until); {
		if d := feed(c, clk, 25, 2*time.Millisecond); d.Quiet {
			t.Fatalf("a quiet window %s after the baseline came back down: %+v", clk.now.Sub(ended), d)
		}
	}
}

func TestRaisedBaselineStaysWhileTheAppStaysSlow(t *testing.T) {
	c, clk, ended := raised(t)
	untilRecheck(t, c, clk, ended, 5*time.Millisecond)
	rate := c.Stats().Rate
	// Still 5ms alone, then 6ms alone: the baseline follows the app, and
	// the rate is not reset by a recheck that raised it.
	st := alone(c, clk, 6*time.Millisecond)
	if st.Quiets != 2 || st.Baseline != 6*time.Millisecond || st.Rate != rate {
		t.Fatalf("after the recheck: %+v, want baseline 6ms and the rate %.0f kept", st, rate)
	}
	// And it is checked again ten quiet windows later.
	untilRecheck(t, c, clk, clk.now, 6*time.Millisecond)
}

// TestRecheckWithTooFewProbesIsTriedAgain: a recheck whose probes were stuck
// keeps the raised baseline, and the next recheck still comes.
func TestRecheckWithTooFewProbesIsTriedAgain(t *testing.T) {
	c, clk, ended := raised(t)
	untilRecheck(t, c, clk, ended, 5*time.Millisecond)
	// One probe in the window, stuck for the whole of it.
	c.Observe(Sample{At: clk.advance(300 * time.Millisecond), Latency: 200 * time.Millisecond})
	clk.advance(300 * time.Millisecond)
	c.Decide(clk.now, 0)
	if st := c.Stats(); st.Quiets != 2 || st.Baseline != 5*time.Millisecond {
		t.Fatalf("%+v, want the 5ms baseline kept after a recheck with one probe", st)
	}
	untilRecheck(t, c, clk, clk.now, 5*time.Millisecond)
}

// A batch is held within half the headroom the limit leaves above the
// baseline, never under MinBurst, and nothing is asked before a baseline.
func TestBurstIsHalfTheHeadroom(t *testing.T) {
	const ms = time.Millisecond
	tests := []struct {
		name            string
		baseline, limit time.Duration
		want            time.Duration
	}{
		{"a 4 ms baseline at 1.5x: 1 ms of the 2 ms headroom", 4 * ms, 6 * ms, ms},
		{"a 1.1 ms baseline at 1.5x plus 200µs: the floor", 1100 * time.Microsecond, 1850 * time.Microsecond, MinBurst},
		{"a 20 ms baseline at 2x", 20 * ms, 40 * ms, 10 * ms},
		{"no baseline yet", 0, 200 * time.Microsecond, 0},
	}
	for _, tc := range tests {
		if got := (Stats{Baseline: tc.baseline, Limit: tc.limit}).Burst(); got != tc.want {
			t.Errorf("%s: Burst() = %s, want %s", tc.name, got, tc.want)
		}
	}
	// From a controller: its limit, its baseline.
	c := NewController(Config{MaxRatio: 2, Slack: time.Millisecond}, 3*ms, time.Now())
	if got, want := c.Stats().Burst(), 2*ms; got != want { // limit 7 ms, headroom 4 ms
		t.Errorf("controller's burst %s, want %s", got, want)
	}
}

// Pace hands the backfill the burst of the guard's baseline.
func TestPaceCarriesTheBurst(t *testing.T) {
	p := &slowProbe{}
	p.latency.Store(int64(4 * time.Millisecond))
	cfg := Config{Interval: 2 * time.Millisecond, BaselineFor: 100 * time.Millisecond, MinSamples: 3, Slack: time.Microsecond}
	g, err := Start(context.Background(), p, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Stop()
	st := g.Stats()
	if _, d := g.Pace(100, time.Millisecond); d.Burst != st.Burst() || d.Burst < MinBurst {
		t.Errorf("Pace's burst %s, want the stats' %s (baseline %s, limit %s), at least %s", d.Burst, st.Burst(), st.Baseline, st.Limit, MinBurst)
	}
}

func TestBinomialTail(t *testing.T) {
	for _, c := range []struct {
		n, k int
		p    float64
		want float64
	}{
		{100, 0, 0.01, 1},
		{100, 101, 0.01, 0},
		{1, 1, 0.01, 0.01},
		{2, 1, 0.5, 0.75},
		{10, 5, 0.5, 0.623046875}, // 638/1024
		{100, 3, 0.01, 0.0794},    // 1 - 0.99^100 - 100·0.01·0.99^99 - 4950·0.0001·0.99^98
		{200, 2, 0.01, 0.5954},
	} {
		if got := binomialTail(c.n, c.k, c.p); math.Abs(got-c.want) > 5e-5 {
			t.Errorf("binomialTail(%d, %d, %g) = %.5f, want %.5f", c.n, c.k, c.p, got, c.want)
		}
	}
}

// TestAboveQuantileThresholds: at the default chance, how many probes of a
// window must be above the limit for its p99 to count as above it.
func TestAboveQuantileThresholds(t *testing.T) {
	limit := 3 * time.Millisecond
	window := func(n, slow int) []time.Duration {
		lat := make([]time.Duration, n)
		for i := range lat {
			lat[i] = 2 * time.Millisecond
			if spread(i, n, slow) {
				lat[i] = 4 * time.Millisecond
			}
		}
		return lat
	}
	for _, c := range []struct{ n, first int }{{100, 3}, {200, 5}, {500, 9}} {
		if aboveQuantile(window(c.n, c.first-1), limit, 10*time.Millisecond, 0.99, 0.1) {
			t.Errorf("%d of %d probes above the limit: counted as a p99 above it", c.first-1, c.n)
		}
		if !aboveQuantile(window(c.n, c.first), limit, 10*time.Millisecond, 0.99, 0.1) {
			t.Errorf("%d of %d probes above the limit: not counted as a p99 above it", c.first, c.n)
		}
	}
	if aboveQuantile(window(10, 0), limit, 10*time.Millisecond, 0.99, 0.1) {
		t.Error("no probe above the limit: counted as a p99 above it")
	}
}

// spread says whether the i-th of n probes is one of k spread evenly.
func spread(i, n, k int) bool {
	if k <= 0 {
		return false
	}
	stride := n / k
	return i%stride == 0 && i/stride < k
}

// feedSome gives the controller n probes one every 10ms, of which slow
// (spread evenly) take lat and the others 2ms, then asks it to decide.
func feedSome(c *Controller, clk *fakeTime, n, slow int, lat time.Duration) Decision {
	for i := 0; i < n; i++ {
		l := 2 * time.Millisecond
		if spread(i, n, slow) {
			l = lat
		}
		c.Observe(Sample{At: clk.advance(10 * time.Millisecond), Latency: l})
	}
	return c.Decide(clk.now, 0)
}

// TestFourSlowProbesInAWindowDoNotCutWithChance: a window of 200 probes
// with four above the limit is what a p99 at the limit gives one time in
// seven; with Chance set the guard cuts only when the window has more slow
// probes than chance explains. With the plain p99 (the default), three are
// enough to cut.
func TestFourSlowProbesInAWindowDoNotCutWithChance(t *testing.T) {
	for _, plain := range []bool{false, true} {
		clk := &fakeTime{now: time.Unix(0, 0)}
		cfg := testConfig()
		cfg.MinSamples = 100
		if !plain {
			cfg.Chance = 0.1
		}
		c := NewController(cfg, 2*time.Millisecond, clk.now) // limit 3ms + 1µs
		feedSome(c, clk, 200, 0, 0)
		// Four of the next 200 are slow (25 a decision, as the guard
		// decides every 250ms): the window of the last decision holds them.
		var d Decision
		for i := 0; i < 8 && d.Pause == 0; i++ {
			d = feedSome(c, clk, 25, map[bool]int{true: 1}[i >= 4], 9*time.Millisecond)
		}
		if cut := d.Pause != 0; cut != plain {
			t.Fatalf("plain p99 %v: four slow probes in 200: cut %v (%+v)", plain, cut, d)
		}
		if plain {
			continue
		}
		// A fifth in the window: more than chance explains; cut.
		if d = feedSome(c, clk, 25, 1, 9*time.Millisecond); d.Pause == 0 {
			t.Fatalf("five slow probes in 200: no cut (%+v)", d)
		}
	}
}
