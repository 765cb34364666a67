// Package throttle is the backfill's latency guard. A probe times a tiny
// committed write on its own connection every few milliseconds, which is
// what an application's commit feels: waits for the WAL flush, for locks,
// for a busy CPU. Before the backfill starts the guard measures the probe's
// p99 alone (the baseline); while it runs, an AIMD controller sets the
// backfill's rows per second so that the probe's p99 stays within a ratio of
// that baseline: it grows the rate step by step while the probe is within
// the limit and halves it, with a pause, when the probe goes above.
//
// The controller is plain arithmetic over samples and a clock, so its logic
// is tested without a database (controller_test.go); the probe and the loop
// that feeds the controller are in probe.go and guard.go.
package throttle

import (
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
	// Slack is added to the limit, so that a baseline of a fraction of a
	// millisecond does not make scheduler jitter look like the backfill's
	// doing (default 200µs).
	Slack time.Duration
	// Interval is the time between the starts of two probes (default 10ms).
	Interval time.Duration
	// BaselineFor is how long the probe runs alone before the backfill
	// starts (default 3s).
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
}

// Defaults.
const (
	DefaultMaxRatio    = 1.5
	DefaultInterval    = 10 * time.Millisecond
	DefaultBaselineFor = 3 * time.Second
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
}

// MarshalJSON writes durations as milliseconds.
func (s Stats) MarshalJSON() ([]byte, error) {
	ms := func(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }
	return []byte(fmt.Sprintf(`{"baseline_p99_ms":%g,"limit_ms":%g,"probe_p99_ms":%g,"peak_p99_ms":%g,"rate":%.0f,"decreases":%d,"paused_ms":%g,"samples":%d,"failures":%d}`,
		ms(s.Baseline), ms(s.Limit), ms(s.P99), ms(s.Peak), s.Rate, s.Decreases, ms(s.Paused), s.Samples, s.Failures)), nil
}

// Line is the guard's part of a progress line.
func (s Stats) Line() string {
	return fmt.Sprintf("guard %.0f rows/s, probe p99 %s (limit %s, baseline %s), %d slowdowns, paused %s",
		s.Rate, roundMs(s.P99), roundMs(s.Limit), roundMs(s.Baseline), s.Decreases, s.Paused.Round(time.Millisecond))
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
}

// NewController starts a controller whose limit is cfg.MaxRatio times the
// baseline p99, plus cfg.Slack.
func NewController(cfg Config, baseline time.Duration, now time.Time) *Controller {
	cfg = cfg.withDefaults()
	c := &Controller{cfg: cfg, rate: cfg.InitialRate, slowStart: true, decided: now, cut: now}
	c.stats.Baseline = baseline
	c.stats.Limit = time.Duration(float64(baseline)*cfg.MaxRatio) + cfg.Slack
	c.stats.Rate = c.rate
	return c
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
}

// Decide re-evaluates the rate when cfg.Every has passed since the last
// decision. inflight is how long a probe still running has been running (0
// when none is): a probe stuck behind a lock is a slow probe before it ends.
func (c *Controller) Decide(now time.Time, inflight time.Duration) Decision {
	if now.Sub(c.decided) < c.cfg.Every {
		return Decision{Rate: c.rate}
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
	if p99 > c.stats.Limit {
		c.from = c.rate
		c.rate = max(c.cfg.MinRate, c.rate*c.cfg.Decrease)
		c.slowStart = false
		c.cut = now
		c.samples = c.samples[:0]
		c.stats.Decreases++
		d.Pause = c.cfg.Every
		c.stats.Paused += d.Pause
	} else if c.slowStart {
		c.rate *= 1.5
	} else {
		c.rate += c.cfg.Increase * max(c.from, c.cfg.InitialRate)
	}
	if c.cfg.MaxRate > 0 {
		c.rate = min(c.rate, c.cfg.MaxRate)
	}
	c.stats.Rate = c.rate
	d.Rate = c.rate
	return d
}

// Stats returns what the controller did so far.
func (c *Controller) Stats() Stats { return c.stats }

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
