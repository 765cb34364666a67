// Package throttle is the backfill's latency guard. A probe times a tiny
// committed write on its own connection every few milliseconds, which is
// what an application's commit feels: waits for the WAL flush, for locks,
// for a busy CPU. Before the backfill starts the guard measures the probe's
// p99 alone (the baseline); while it runs, an AIMD controller sets the
// backfill's rows per second so that the probe's p99 stays within a ratio of
// that baseline: it grows the rate step by step while the probe is within
// the limit and halves it, with a pause, when the probe goes above.
//
// The application's latency also moves for reasons of its own: a busier
// hour, a neighbour on the host. When halving the rate several times in a
// row does not bring the probe back under the limit, the backfill is not
// what the probe feels, so the guard stops the backfill for a quiet window,
// measures the probe alone again and takes that as the new baseline: the
// promise is "at most the ratio above what the app would feel without the
// backfill", not "as fast as the app was at the start". A baseline raised
// that way is measured again every ten quiet windows' length while it stays
// above the first one: the app's slowdown ends, and a limit left high would
// let the backfill cost the app more than the ratio.
//
// The controller is plain arithmetic over samples and a clock, so its logic
// is tested without a database (controller_test.go); the probe and the loop
// that feeds the controller are in probe.go and guard.go.
package throttle

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"
)

// Config tunes the guard. The zero value is usable: every field has a
// default (withDefaults).
type Config struct {
	// MaxRatio is the limit on the probe's p99 during the backfill, as a
	// multiple of its p99 before it (default 1.5).
	MaxRatio float64
	// AppP99 is the application's own p99 latency, as its monitoring
	// sees it (0: unknown). When set, the latency the limit leaves above
	// the probe's baseline is (MaxRatio-1) times AppP99 instead of
	// (MaxRatio-1) times the baseline: a backfill delays the app's commits
	// and the probe's by about the same time (a CPU burst, a WAL flush),
	// so a ratio taken of a probe much faster than the app is stricter
	// than the same ratio of the app. Seen in bench/backfill: with a probe
	// baseline of 0.9 ms and the app's p99 at 1.96 ms, the guard held the
	// backfill near 2,000 rows/s while the app's p99 stayed at 1.19x.
	AppP99 time.Duration
	// App, when set, reads the application's own p99 latency from its
	// monitoring (AppLatency: a Prometheus query, say). Before the backfill,
	// after the probe's baseline, the guard takes the app's baseline from
	// it (the median over AppBaselineFor when App can read its past, else
	// one reading); it is AppP99 too when AppP99 is 0. While the backfill
	// runs it reads it every AppEvery: a reading above MaxRatio times the
	// app's baseline (plus Slack) cuts the rate as a probe above its limit
	// does, and the rate does not grow again until a reading is back under
	// it. The probe answers in milliseconds; the app's monitoring answers
	// late (a scrape interval, a rate over a range) but about what the
	// target is about: the app's own latency, whatever the probe misses.
	App AppLatency
	// AppEvery is the time between two readings of App (default 5s).
	AppEvery time.Duration
	// AppBaselineFor is the span before the backfill whose readings make
	// the app's baseline, when App can read its past (AppHistory): the
	// median of its readings over the span, so that one slow or fast
	// moment does not set the limit (default 5m).
	AppBaselineFor time.Duration
	// ProbeRatio, with App set, replaces MaxRatio in the probe's limit
	// (0: MaxRatio): the app's own readings then hold the app at MaxRatio,
	// and the probe is the fast brake for what they see too late (CLI:
	// --app-latency-probe-ratio, 2 by default). In bench/backfill, at 2M
	// rows, medians of 3: 24,441 rows/s with the app at 1.54x its baseline
	// p99, against the defaults' 8,929 at 1.47x (docs/BENCHMARKS.md).
	ProbeRatio float64
	// AppLag is how far back a reading of App looks: the range of its
	// query plus a scrape interval (default 30s). For AppLag after a cut,
	// readings still cover time before it, so another reading above the
	// limit does not cut again, only holds the rate.
	AppLag time.Duration
	// Slack is added to the limit, so that a baseline of a fraction of a
	// millisecond does not make scheduler jitter look like the backfill's
	// doing (default 200µs).
	Slack time.Duration
	// Interval is the time between the starts of two probes (default 10ms).
	Interval time.Duration
	// BaselineFor is how long the probe runs alone before the backfill
	// starts (default 5s).
	BaselineFor time.Duration
	// Window is the span of samples the p99 is computed over (default 2s).
	Window time.Duration
	// Every is how often the controller decides (default 250ms).
	Every time.Duration
	// MinSamples is the fewest samples a p99 is taken over (default 100,
	// a second of probes at the default interval): a p99 over fewer is
	// their maximum, and one scheduler hiccup would halve the rate. When
	// probes are so slow that fewer arrive, the controller decides anyway
	// once half a window has passed since the last decrease: slow probes
	// are the news.
	MinSamples int
	// InitialRate is the rate the backfill starts at, in rows/s (default
	// 10,000); until the first time the probe goes above the limit, the rate
	// grows by half each decision (a slow start), then by Increase.
	InitialRate float64
	// Increase is the additive step after the first decrease, as a share of
	// the rate the last decrease started from (default 0.05).
	Increase float64
	// Decrease multiplies the rate when the probe goes above the limit
	// (default 0.5).
	Decrease float64
	// MinRate is the floor: the backfill always makes progress, however
	// the probe fares (default 500 rows/s).
	MinRate float64
	// MaxRate caps the rate (0: no cap); the backfill's --max-rows-per-second.
	MaxRate float64
	// QuietAfter is how many decreases in a row, with no increase between
	// them, make the guard measure a new baseline (default 3).
	QuietAfter int
	// Quiet is how long the backfill stops while the new baseline is
	// measured (default BaselineFor: as long as the first baseline, and
	// measured the same way, BaselineP99 over spans of half a Window).
	// Quiet windows are at least ten times their length apart, so they
	// never take more than a tenth of the time.
	Quiet time.Duration
	// KeepRaisedBaseline keeps a baseline a quiet window raised for the
	// rest of the backfill, as the guard did before 2026-12-05, instead of
	// measuring it again every ten quiet windows' length while it stays
	// above the first one. It is there to compare the two in
	// bench/backfill; the CLI never sets it.
	KeepRaisedBaseline bool
	// Chance, when set, replaces the comparison of a window's p99 with the
	// limit by a test: the window is above the limit when more of its
	// probes are above it than a p99 at the limit would give with
	// probability Chance or more (a one-sided binomial test; at 0.1: 3 of
	// 100, 5 of 200, 9 of 500), probes weighted by the slots they took (a
	// probe of 400 ms at a 10 ms interval counts as 40). The p99 of a
	// window of 200 probes is their third slowest, and with the probe's
	// real p99 at the limit it is above the limit in a third of the
	// windows: the plain comparison cuts the rate on noise. The test was
	// tried as the default on 2026-12-06 and left off (docs/BENCHMARKS.md):
	// the backfill went 2.6-3.7x as fast, and the app's p99 was 1.52-2.83x
	// its baseline against 1.46-1.84x: the probe's slow samples the plain
	// p99 acts on were the app's tail too. It is there to compare the two
	// in bench/backfill; the CLI never sets it.
	Chance float64
	// Confirm is how many decisions in a row must find the probe above the
	// limit before the rate is cut (default 2): a p99 over a window of a
	// few hundred probes is its few slowest, and one scheduler or fsync
	// hiccup should not halve the backfill. A p99 above twice the limit
	// cuts at once.
	Confirm int
}

// Defaults.
const (
	DefaultMaxRatio    = 1.5
	DefaultInterval    = 10 * time.Millisecond
	DefaultBaselineFor = 5 * time.Second
	DefaultAppEvery    = 5 * time.Second
	DefaultAppLag      = 30 * time.Second
	// DefaultAppBaselineFor is the span of the app's past readings its
	// baseline is the median of.
	DefaultAppBaselineFor = 5 * time.Minute
)

func (c Config) withDefaults() Config {
	if c.MaxRatio <= 0 {
		c.MaxRatio = DefaultMaxRatio
	}
	if c.Slack <= 0 {
		c.Slack = 200 * time.Microsecond
	}
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.BaselineFor <= 0 {
		c.BaselineFor = DefaultBaselineFor
	}
	if c.Window <= 0 {
		c.Window = 2 * time.Second
	}
	if c.Every <= 0 {
		c.Every = 250 * time.Millisecond
	}
	if c.MinSamples <= 0 {
		c.MinSamples = 100
	}
	if c.InitialRate <= 0 {
		c.InitialRate = 10_000
	}
	if c.Increase <= 0 {
		c.Increase = 0.05
	}
	if c.Decrease <= 0 || c.Decrease >= 1 {
		c.Decrease = 0.5
	}
	if c.MinRate <= 0 {
		c.MinRate = 500
	}
	if c.QuietAfter <= 0 {
		c.QuietAfter = 3
	}
	if c.Quiet <= 0 {
		c.Quiet = c.BaselineFor
	}
	if c.Confirm <= 0 {
		c.Confirm = 2
	}
	if c.AppEvery <= 0 {
		c.AppEvery = DefaultAppEvery
	}
	if c.AppLag <= 0 {
		c.AppLag = DefaultAppLag
	}
	if c.AppBaselineFor <= 0 {
		c.AppBaselineFor = DefaultAppBaselineFor
	}
	if c.Chance >= 1 {
		c.Chance = 0
	}
	if c.MaxRate > 0 {
		c.MinRate = min(c.MinRate, c.MaxRate)
		c.InitialRate = min(c.InitialRate, c.MaxRate)
	}
	c.InitialRate = max(c.InitialRate, c.MinRate)
	return c
}

// Sample is one probe: when it started and how long it took. A probe that
// failed counts as taking as long as it ran, and at least the limit.
type Sample struct {
	At      time.Time
	Latency time.Duration
	Failed  bool
}

// Stats is what the guard did, for the progress lines and the ledger.
type Stats struct {
	// Baseline is the probe's p99 before the backfill; Limit is what the
	// guard holds its p99 under.
	Baseline time.Duration `json:"baseline_p99_ms"`
	Limit    time.Duration `json:"limit_ms"`
	// P99 is the probe's p99 over the latest window; Peak the highest
	// window p99 seen.
	P99  time.Duration `json:"probe_p99_ms"`
	Peak time.Duration `json:"peak_p99_ms"`
	// Rate is the rows/s the controller allows now.
	Rate float64 `json:"rate"`
	// Decreases counts the times the probe went above the limit; Paused is
	// the time spent pausing after them.
	Decreases int           `json:"decreases"`
	Paused    time.Duration `json:"paused_ms"`
	// Samples and Failures count the probes.
	Samples  int `json:"samples"`
	Failures int `json:"failures"`
	// Quiets counts the quiet windows (Paused includes them); FirstBaseline
	// is the baseline measured before the backfill, which they replaced.
	Quiets        int           `json:"quiets"`
	FirstBaseline time.Duration `json:"first_baseline_p99_ms"`
	// App is what the guard read of the app's own p99 (Config.App); nil
	// when it does not read it.
	App *AppStats `json:"app,omitempty"`
}

// AppStats is what the guard read of the application's own p99.
type AppStats struct {
	// Baseline is the app's p99 before the backfill (appBaseline); Limit
	// is MaxRatio times it plus Slack; P99 the latest reading, Peak the
	// highest.
	Baseline time.Duration
	Limit    time.Duration
	P99      time.Duration
	Peak     time.Duration
	// Readings counts the readings taken during the backfill, Errors those
	// that failed (the guard goes on with the probe alone meanwhile), Cuts
	// the rate cuts they made.
	Readings, Errors, Cuts int
	// LastError is the latest failed reading's error.
	LastError string
}

// MarshalJSON writes durations as milliseconds.
func (a AppStats) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Baseline  float64 `json:"baseline_p99_ms"`
		Limit     float64 `json:"limit_ms"`
		P99       float64 `json:"p99_ms"`
		Peak      float64 `json:"peak_p99_ms"`
		Readings  int     `json:"readings"`
		Errors    int     `json:"errors"`
		Cuts      int     `json:"cuts"`
		LastError string  `json:"last_error,omitempty"`
	}{msFloat(a.Baseline), msFloat(a.Limit), msFloat(a.P99), msFloat(a.Peak), a.Readings, a.Errors, a.Cuts, a.LastError})
}

func msFloat(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

// MinBurst is the shortest batch Burst asks for: below it a batch's
// round trip and commit are most of its time (bench/backfill: guarded
// 0.3 ms batches of at least 50 keys walked 65,523 rows/s where 0.5 ms
// ones walked 91,822, neither slowed by the guard; docs/BENCHMARKS.md).
const MinBurst = 500 * time.Microsecond

// Burst is the longest a backfill batch should run under the guard: half
// the latency the limit leaves above the baseline, and at least MinBurst
// (0 before a baseline is measured). A batch holds a CPU while it runs, and
// on a machine with few cores an app commit that wakes during it can wait
// for the whole of it (docs/BENCHMARKS.md: the app's p99 grew by about the
// length of a CPU burst beside it), so a batch longer than the headroom
// pushes the probe over the limit at any rate where batches run more than
// a percent of the time.
func (s Stats) Burst() time.Duration {
	if s.Baseline <= 0 || s.Limit <= s.Baseline {
		return 0
	}
	return max(MinBurst, (s.Limit-s.Baseline)/2)
}

// MarshalJSON writes durations as milliseconds.
func (s Stats) MarshalJSON() ([]byte, error) {
	ms := msFloat
	out := fmt.Sprintf(`{"baseline_p99_ms":%g,"limit_ms":%g,"probe_p99_ms":%g,"peak_p99_ms":%g,"rate":%.0f,"decreases":%d,"paused_ms":%g,"samples":%d,"failures":%d,"quiets":%d,"first_baseline_p99_ms":%g`,
		ms(s.Baseline), ms(s.Limit), ms(s.P99), ms(s.Peak), s.Rate, s.Decreases, ms(s.Paused), s.Samples, s.Failures, s.Quiets, ms(s.FirstBaseline))
	if s.App != nil {
		app, err := json.Marshal(s.App)
		if err != nil {
			return nil, err
		}
		out += `,"app":` + string(app)
	}
	return []byte(out + "}"), nil
}

// Line is the guard's part of a progress line.
func (s Stats) Line() string {
	line := fmt.Sprintf("guard %.0f rows/s, probe p99 %s (limit %s, baseline %s), %d slowdowns, paused %s",
		s.Rate, roundMs(s.P99), roundMs(s.Limit), roundMs(s.Baseline), s.Decreases, s.Paused.Round(time.Millisecond))
	if s.Quiets > 0 {
		line += fmt.Sprintf(", %d re-baselines (first baseline %s)", s.Quiets, roundMs(s.FirstBaseline))
	}
	if a := s.App; a != nil {
		line += fmt.Sprintf("; app p99 %s (limit %s, baseline %s), %d cuts on it", roundMs(a.P99), roundMs(a.Limit), roundMs(a.Baseline), a.Cuts)
		if a.Errors > 0 {
			line += fmt.Sprintf(", %d of %d readings failed", a.Errors, a.Readings)
		}
	}
	return line
}

func roundMs(d time.Duration) string {
	if d < 10*time.Millisecond {
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}

// Controller is the AIMD rate controller. It is not safe for concurrent use;
// Guard serializes access to it.
type Controller struct {
	cfg       Config
	rate      float64
	slowStart bool
	// from is the rate the last decrease started from: the additive step
	// is a share of it.
	from float64
	// decided is when the controller last decided; cut is when it last
	// decreased: samples before it do not count against the new rate.
	decided, cut time.Time
	samples      []Sample
	stats        Stats
	// inARow counts the decreases since the last increase; before is the
	// rate the first of them started from.
	inARow int
	before float64
	// quietFrom and quietTo bound the quiet window asked for (zero: none
	// pending); lastQuiet is when the latest one ended.
	quietFrom, quietTo, lastQuiet time.Time
	// rechecking says the pending quiet window measures again a raised
	// baseline (recheckDue), rather than answering slowdowns.
	rechecking bool
	// over counts the decisions in a row that found the probe above the
	// limit without cutting the rate yet.
	over int
	// walks are the batches reported by Walked over the last second: the
	// rate the backfill really goes at, which may be far below the rate
	// allowed when the backfill cannot go faster.
	walks   []walk
	started time.Time
	// app is what the controller read of the app's own p99 (appOn: it
	// watches it, SetAppBaseline); appOver says the latest reading was
	// above its limit; appHold is when a reading above it may cut again.
	app     AppStats
	appOn   bool
	appOver bool
	appHold time.Time
}

type walk struct {
	at   time.Time
	keys int64
}

// measureFor is the span the backfill's real rate is measured over.
const measureFor = time.Second

// Walked records a batch of keys walked, finished at at.
func (c *Controller) Walked(at time.Time, keys int64) {
	c.walks = append(c.walks, walk{at, keys})
}

// measured is the rate the backfill went at over the last measureFor (0:
// nothing walked yet).
func (c *Controller) measured(now time.Time) float64 {
	from := now.Add(-measureFor)
	keep := c.walks[:0]
	var keys int64
	for _, w := range c.walks {
		if w.at.After(from) {
			keep = append(keep, w)
			keys += w.keys
		}
	}
	c.walks = keep
	if keys == 0 {
		return 0
	}
	span := measureFor
	if since := now.Sub(c.started); since < span {
		span = since
	}
	if span <= 0 {
		return 0
	}
	return float64(keys) / span.Seconds()
}

// NewController starts a controller whose limit is cfg.MaxRatio times the
// baseline p99 (or the baseline plus cfg.MaxRatio-1 times cfg.AppP99),
// plus cfg.Slack.
func NewController(cfg Config, baseline time.Duration, now time.Time) *Controller {
	cfg = cfg.withDefaults()
	c := &Controller{cfg: cfg, rate: cfg.InitialRate, slowStart: true, decided: now, cut: now}
	c.stats.FirstBaseline = baseline
	c.setBaseline(baseline)
	c.stats.Rate = c.rate
	c.lastQuiet, c.started = now, now
	return c
}

func (c *Controller) setBaseline(b time.Duration) {
	c.stats.Baseline = b
	c.stats.Limit = c.cfg.limit(b)
}

// limit is the p99 the probe is held under for a baseline b: b plus the
// ratio's headroom (of AppP99 when set, else of b) plus Slack.
func (c Config) limit(b time.Duration) time.Duration {
	of := b
	if c.AppP99 > 0 {
		of = c.AppP99
	}
	return b + time.Duration(float64(of)*(c.ProbeMaxRatio()-1)) + c.Slack
}

// ProbeMaxRatio is the ratio the probe's limit is made with: ProbeRatio
// when the app is watched and it is set, else MaxRatio.
func (c Config) ProbeMaxRatio() float64 {
	if c.App != nil && c.ProbeRatio > 0 {
		return c.ProbeRatio
	}
	return c.MaxRatio
}

// Config returns the configuration with its defaults filled in.
func (c *Controller) Config() Config { return c.cfg }

// Limit is the p99 the controller holds the probe under.
func (c *Controller) Limit() time.Duration { return c.stats.Limit }

// Observe records a probe.
func (c *Controller) Observe(s Sample) {
	if s.Failed && s.Latency < c.stats.Limit {
		s.Latency = c.stats.Limit + 1
	}
	c.samples = append(c.samples, s)
	c.stats.Samples++
	if s.Failed {
		c.stats.Failures++
	}
}

// Decision is what the controller says after Decide.
type Decision struct {
	// Rate is the rows/s allowed from now on.
	Rate float64
	// Pause is how long to stop before the next batch: set when the probe
	// just went above the limit, so that it can show whether the backfill
	// was the cause.
	Pause time.Duration
	// Quiet says the pause is a quiet window: the probe runs alone and its
	// p99 becomes the new baseline.
	Quiet bool
	// Recheck says the quiet window measures again a baseline an earlier
	// one raised, rather than answering slowdowns.
	Recheck bool
	// Burst is the longest the next batch should run (Stats.Burst; set by
	// Guard.Pace, 0 from Decide).
	Burst time.Duration
}

// Decide re-evaluates the rate when cfg.Every has passed since the last
// decision. inflight is how long a probe still running has been running (0
// when none is): a probe stuck behind a lock is a slow probe before it ends.
func (c *Controller) Decide(now time.Time, inflight time.Duration) Decision {
	if now.Sub(c.decided) < c.cfg.Every {
		return Decision{Rate: c.rate}
	}
	if !c.quietTo.IsZero() {
		c.endQuiet(now)
	}
	// Keep the window's samples, and only those since the last decrease.
	from := now.Add(-c.cfg.Window)
	if c.cut.After(from) {
		from = c.cut
	}
	keep := c.samples[:0]
	for _, s := range c.samples {
		if !s.At.Before(from) {
			keep = append(keep, s)
		}
	}
	c.samples = keep
	lat := make([]time.Duration, 0, len(keep)+1)
	for _, s := range keep {
		lat = append(lat, s.Latency)
	}
	if inflight > 0 {
		lat = append(lat, inflight)
	}
	if len(lat) == 0 || len(lat) < c.cfg.MinSamples && now.Sub(from) < c.cfg.Window/2 {
		// Too few samples to say anything yet: hold the rate.
		return Decision{Rate: c.rate}
	}
	c.decided = now
	p99 := Percentile(lat, 0.99)
	c.stats.P99 = p99
	c.stats.Peak = max(c.stats.Peak, p99)
	var d Decision
	used := c.measured(now)
	above := p99 > c.stats.Limit
	if c.cfg.Chance > 0 && len(lat) >= c.cfg.MinSamples {
		// Fewer samples than MinSamples means the probes are slow: then
		// the p99 (their slowest) is the news, as it was.
		above = aboveQuantile(lat, c.stats.Limit, c.cfg.Interval, 0.99, c.cfg.Chance)
	}
	if above && p99 <= 2*c.stats.Limit && c.over+1 < c.cfg.Confirm {
		// Above the limit, but not by much and not for long yet: hold.
		c.over++
		d.Rate = c.rate
		return d
	}
	if above {
		c.over = 0
		base := c.decrease(now, used)
		if c.inARow == 0 {
			c.before = base
		}
		c.inARow++
		c.stats.Decreases++
		d.Pause = c.cfg.Every
		c.stats.Paused += d.Pause
		if c.inARow >= c.cfg.QuietAfter && now.Sub(c.lastQuiet) >= 10*c.cfg.Quiet {
			// Backing off did not help: measure the probe alone.
			c.askQuiet(now, &d)
		}
	} else if c.appOver {
		// The probe is fine, the app's own latency is not: hold the rate
		// until a reading of it is back under its limit.
		c.inARow, c.over = 0, 0
	} else {
		c.inARow, c.over = 0, 0
		if c.slowStart {
			c.rate *= 1.5
		} else {
			c.rate += c.cfg.Increase * max(c.from, c.cfg.InitialRate)
		}
		// Never allow much more than the backfill uses: an allowance far
		// above what it can do would take many cuts to bite once the app
		// feels it.
		if used > 0 {
			c.rate = min(c.rate, max(2*used, c.cfg.InitialRate))
		}
	}
	if c.cfg.MaxRate > 0 {
		c.rate = min(c.rate, c.cfg.MaxRate)
	}
	if d.Pause == 0 && c.recheckDue(now) {
		// The raised baseline's time is up: measure the probe alone again.
		c.askQuiet(now, &d)
		d.Recheck, c.rechecking = true, true
	}
	c.stats.Rate = c.rate
	d.Rate = c.rate
	return d
}

// decrease cuts the rate, from the rate the backfill really went at (used,
// from measured): when it could not reach the rate allowed, halving the
// allowance would change nothing. It returns that rate. The probes before
// now no longer count.
func (c *Controller) decrease(now time.Time, used float64) (base float64) {
	base = c.rate
	if used > 0 && used < base {
		base = used
	}
	c.from = base
	c.rate = max(c.cfg.MinRate, base*c.cfg.Decrease)
	c.slowStart = false
	c.cut = now
	c.samples = c.samples[:0]
	c.stats.Rate = c.rate
	return base
}

// SetAppBaseline starts watching the app's own p99: b is its reading before
// the backfill, and the app's limit is MaxRatio times b plus Slack.
func (c *Controller) SetAppBaseline(b time.Duration) {
	c.appOn = true
	c.app.Baseline = b
	c.app.Limit = time.Duration(float64(b)*c.cfg.MaxRatio) + c.cfg.Slack
}

// ObserveApp records a reading of the app's own p99 taken at now (err: the
// reading failed, and counts only as that). A reading above the app's limit
// cuts the rate, unless the last cut on such a reading is less than AppLag
// old (this reading still covers time before it); until a reading is back
// under the limit the rate does not grow.
func (c *Controller) ObserveApp(now time.Time, p99 time.Duration, err error) {
	if !c.appOn {
		return
	}
	c.app.Readings++
	if err != nil {
		c.app.Errors++
		c.app.LastError = err.Error()
		return
	}
	c.app.P99 = p99
	c.app.Peak = max(c.app.Peak, p99)
	c.appOver = p99 > c.app.Limit
	if !c.appOver || now.Before(c.appHold) {
		return
	}
	c.decrease(now, c.measured(now))
	c.app.Cuts++
	c.appHold = now.Add(c.cfg.AppLag)
}

// askQuiet turns d into a quiet window starting now. Its first Every is
// left out of the new baseline, so that the last batch's commit does not
// count as the app's own latency.
func (c *Controller) askQuiet(now time.Time, d *Decision) {
	c.stats.Paused -= d.Pause
	d.Pause, d.Quiet = c.cfg.Quiet, true
	c.quietFrom, c.quietTo = now.Add(c.cfg.Every), now.Add(c.cfg.Quiet)
	c.stats.Paused += d.Pause
}

// endQuiet takes the p99 of the probes that started in the quiet window
// (BaselineP99: the median of its per-span p99s) as the new baseline, up or
// down. If the limit went up, the decreases that led to the window were
// the app's doing, not the backfill's: the rate goes back to half of what
// it was before them, and while the baseline stays above the first one it
// is measured again every ten quiet windows' length. Too few probes (they
// were failing or stuck) keep the old baseline.
func (c *Controller) endQuiet(now time.Time) {
	var quiet []Sample
	for _, s := range c.samples {
		if !s.At.Before(c.quietFrom) && s.At.Before(c.quietTo) {
			quiet = append(quiet, s)
		}
	}
	recheck := c.rechecking
	c.quietFrom, c.quietTo, c.lastQuiet, c.rechecking = time.Time{}, time.Time{}, now, false
	c.stats.Quiets++
	c.inARow = 0
	if len(quiet) < max(c.cfg.MinSamples/4, 5) {
		return
	}
	old := c.stats.Limit
	// Measured as the first baseline was: one stall inside the window
	// must not become the new baseline.
	c.setBaseline(BaselineP99(quiet, c.cfg.Window/2))
	if c.stats.Limit > old && !recheck {
		c.rate = max(c.rate, c.before*c.cfg.Decrease)
		if c.cfg.MaxRate > 0 {
			c.rate = min(c.rate, c.cfg.MaxRate)
		}
		c.from = c.rate
		c.stats.Rate = c.rate
	}
	// The window's probes were the baseline's; the next decision is on
	// probes taken with the backfill running again.
	c.cut = now
	c.samples = c.samples[:0]
}

// recheckDue says a baseline a quiet window raised above the first one is
// to be measured again: the app's own slowdown that raised it (an
// autovacuum, a neighbour) ends, and a limit left high would let the
// backfill cost the app more than the ratio. It comes as the quiet windows
// that answer slowdowns do, ten windows' length after the last one, and
// after a window whose probes were too few to measure as well.
func (c *Controller) recheckDue(now time.Time) bool {
	return !c.cfg.KeepRaisedBaseline && c.stats.Baseline > c.stats.FirstBaseline && now.Sub(c.lastQuiet) >= 10*c.cfg.Quiet
}

// Stats returns what the controller did so far.
func (c *Controller) Stats() Stats {
	s := c.stats
	if c.appOn {
		a := c.app
		s.App = &a
	}
	return s
}

// BaselineP99 is the probe's p99 with the backfill stopped (before it, or in
// a quiet window): the median of the p99s of consecutive spans of span (at
// least 10 probes each), not the p99 of all the samples. One storage stall of a second inside the baseline would
// otherwise become the baseline, and the limit would let the backfill cost
// the app several times its usual p99 (seen in bench/backfill: an 11.7 ms
// baseline for an app whose p99 was 3.4 ms). With fewer than one full span,
// the p99 of all the samples.
func BaselineP99(samples []Sample, span time.Duration) time.Duration {
	const minPerSpan = 10
	var p99s, cur []time.Duration
	var from time.Time
	flush := func() {
		if len(cur) >= minPerSpan {
			p99s = append(p99s, Percentile(cur, 0.99))
		}
		cur = cur[:0]
	}
	all := make([]time.Duration, 0, len(samples))
	for _, s := range samples {
		all = append(all, s.Latency)
		if span <= 0 {
			continue
		}
		if from.IsZero() || s.At.Sub(from) >= span {
			flush()
			from = s.At
		}
		cur = append(cur, s.Latency)
	}
	flush()
	if len(p99s) == 0 {
		return Percentile(all, 0.99)
	}
	slices.Sort(p99s)
	return p99s[len(p99s)/2]
}

// aboveQuantile says the q-quantile of the latency the probes lat were
// drawn from is above limit: more of them are above limit than a q-quantile
// at limit would give with probability chance or more (a one-sided
// binomial test; the probes are taken as independent draws). A probe that
// took longer than interval, the time between the starts of two probes,
// counts as the probes it kept from starting: latency/interval of them.
func aboveQuantile(lat []time.Duration, limit, interval time.Duration, q, chance float64) bool {
	var n, k float64
	for _, l := range lat {
		w := 1.0
		if interval > 0 && l > interval {
			w = float64(l) / float64(interval)
		}
		n += w
		if l > limit {
			k += w
		}
	}
	return k > 0 && binomialTail(int(math.Round(n)), int(math.Ceil(k)), 1-q) < chance
}

// binomialTail is P(X >= k) for X the number of successes in n trials of
// probability p.
func binomialTail(n, k int, p float64) float64 {
	if k <= 0 {
		return 1
	}
	if k > n {
		return 0
	}
	// P(X < k), term by term from P(X = 0) = (1-p)^n.
	term := math.Pow(1-p, float64(n))
	below := 0.0
	for i := 0; i < k; i++ {
		below += term
		term *= float64(n-i) / float64(i+1) * p / (1 - p)
	}
	return max(0, 1-below)
}

// Percentile returns the q-quantile of ds (nearest rank; 0 for none). ds is
// sorted in place.
func Percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(math.Ceil(q*float64(len(ds)))) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}
