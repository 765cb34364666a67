package gate

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/phasekit/phasekit/pipeline"
)

// AlarmSource evaluates alarms over a time range. Prometheus is the one
// phasekit ships; package fleet checks alarms between waves through it.
type AlarmSource interface {
	// Check returns one result per alarm, in order. An error means an alarm
	// could not be evaluated (a query failed): treat it as not healthy.
	Check(ctx context.Context, alarms []pipeline.Alarm, from, to time.Time) ([]AlarmResult, error)
}

// Datapoint is one period's value of an alarm's query.
type Datapoint struct {
	At time.Time `json:"at"`
	// Value is nil when the query gave no data for the period: missing data
	// is not breaching.
	Value     *float64 `json:"value"`
	Breaching bool     `json:"breaching"`
}

// AlarmResult is one alarm evaluated over a range, like a CloudWatch alarm:
// one datapoint per period from From to To, breached when some window of
// EvaluationPeriods consecutive datapoints holds DatapointsToAlarm breaching
// ones.
type AlarmResult struct {
	Alarm string `json:"alarm"`
	Query string `json:"query"`
	// Rule is the alarm's condition in words: "> 5 in 3 of 5 datapoints of 1s".
	Rule     string    `json:"rule"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	Breached bool      `json:"breached"`
	// Series names the series the evidence comes from when the query gave
	// several (the first that breached, else the one closest to breaching).
	Series string `json:"series,omitempty"`
	// Datapoints and Missing count the periods with and without data.
	Datapoints int `json:"datapoints"`
	Missing    int `json:"missing"`
	// MaxBreaching is the most breaching datapoints in any window.
	MaxBreaching int `json:"max_breaching"`
	// Window is the first breaching window when Breached, else the latest
	// window with MaxBreaching breaching datapoints.
	Window []Datapoint `json:"window,omitempty"`
	// Last is the latest datapoint with data.
	Last *Datapoint `json:"last,omitempty"`
}

// Summary says in one line what the alarm saw.
func (r AlarmResult) Summary() string {
	if r.Breached {
		var vals []string
		for _, d := range r.Window {
			v := "missing"
			if d.Value != nil {
				v = formatValue(*d.Value)
				if d.Breaching {
					v += "!"
				}
			}
			vals = append(vals, v)
		}
		at := r.Window[len(r.Window)-1].At.UTC().Format(time.RFC3339)
		s := fmt.Sprintf("alarm %s BREACHED at %s (%s): %d breaching datapoints in the window [%s] (! = breaching)", r.Alarm, at, r.Rule, countBreaching(r.Window), strings.Join(vals, " "))
		if r.Series != "" {
			s += " on " + r.Series
		}
		return s
	}
	last := "no data"
	if r.Last != nil {
		last = fmt.Sprintf("last %s at %s", formatValue(*r.Last.Value), r.Last.At.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("alarm %s ok (%s): at most %d breaching in any window; %d datapoints, %d missing (missing is not breaching); %s",
		r.Alarm, r.Rule, r.MaxBreaching, r.Datapoints, r.Missing, last)
}

// Rule says an alarm's condition in words.
func Rule(a pipeline.Alarm) string {
	return fmt.Sprintf("%s %s in %d of %d datapoints of %s", a.Comparison, formatValue(a.Threshold), a.DatapointsToAlarm, a.EvaluationPeriods, pipeline.FormatDuration(a.Period))
}

// Breaching reports whether a value breaches the alarm's threshold; NaN
// never does.
func Breaching(a pipeline.Alarm, v float64) bool {
	if math.IsNaN(v) {
		return false
	}
	switch a.Comparison {
	case ">":
		return v > a.Threshold
	case ">=":
		return v >= a.Threshold
	case "<":
		return v < a.Threshold
	case "<=":
		return v <= a.Threshold
	}
	return false
}

// Grid lists the datapoint times of an alarm over [from, to]: from, then one
// per period. Prometheus evaluates a range query at exactly these times.
func Grid(a pipeline.Alarm, from, to time.Time) []time.Time {
	var out []time.Time
	for t := from; !t.After(to); t = t.Add(a.Period) {
		out = append(out, t)
	}
	return out
}

// Evaluate evaluates one series of an alarm: values maps a datapoint time
// (Unix milliseconds) to the query's value; grid times without a value are
// missing. It slides a window of EvaluationPeriods datapoints over the grid
// (the whole grid when it is shorter).
func Evaluate(a pipeline.Alarm, grid []time.Time, values map[int64]float64) AlarmResult {
	r := AlarmResult{Alarm: a.Name, Query: a.Query, Rule: Rule(a)}
	if len(grid) > 0 {
		r.From, r.To = grid[0], grid[len(grid)-1]
	}
	points := make([]Datapoint, len(grid))
	for i, t := range grid {
		points[i].At = t
		v, ok := values[t.UnixMilli()]
		if !ok || math.IsNaN(v) {
			r.Missing++
			continue
		}
		r.Datapoints++
		points[i].Value = &v
		points[i].Breaching = Breaching(a, v)
		last := points[i]
		r.Last = &last
	}
	n := min(a.EvaluationPeriods, len(points))
	worst := -1
	for i := 0; i+n <= len(points) && n > 0; i++ {
		w := points[i : i+n]
		c := countBreaching(w)
		if c >= a.DatapointsToAlarm {
			r.Breached = true
			r.MaxBreaching = c
			r.Window = append([]Datapoint(nil), w...)
			return r
		}
		if c >= r.MaxBreaching {
			r.MaxBreaching, worst = c, i
		}
	}
	if worst >= 0 && r.MaxBreaching > 0 {
		r.Window = append([]Datapoint(nil), points[worst:worst+n]...)
	}
	return r
}

// worse picks the series whose result the alarm reports: the first breach,
// else the most breaching datapoints.
func worse(a, b AlarmResult) bool {
	if a.Breached != b.Breached {
		return a.Breached
	}
	if a.Breached {
		return a.Window[len(a.Window)-1].At.Before(b.Window[len(b.Window)-1].At)
	}
	return a.MaxBreaching > b.MaxBreaching
}

func countBreaching(w []Datapoint) int {
	n := 0
	for _, d := range w {
		if d.Breaching {
			n++
		}
	}
	return n
}

func formatValue(v float64) string {
	return fmt.Sprintf("%g", v)
}

// checkAlarms is the gate's alarm check over [from, to].
func checkAlarms(ctx context.Context, src AlarmSource, alarms []pipeline.Alarm, from, to time.Time) Check {
	c := Check{Name: CheckAlarms, Status: Pass}
	if len(alarms) == 0 {
		c.Summary = "the pipeline has no alarm"
		return c
	}
	results, err := src.Check(ctx, alarms, from, to)
	if err != nil {
		c.Status = Fail
		c.Summary = "the alarms could not be evaluated: " + err.Error()
		c.Evidence = []string{c.Summary}
		return c
	}
	c.Alarms = results
	var breached []string
	for _, r := range results {
		c.Evidence = append(c.Evidence, r.Summary())
		if r.Breached {
			breached = append(breached, r.Alarm)
		}
	}
	window := fmt.Sprintf("from %s to %s", from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339))
	if len(breached) > 0 {
		c.Status = Fail
		c.Summary = fmt.Sprintf("alarm %s breached %s", strings.Join(breached, ", "), window)
		return c
	}
	c.Summary = fmt.Sprintf("no alarm breached %s (%d alarm(s))", window, len(results))
	return c
}

// BreachedNow evaluates each alarm over its latest evaluation window, the
// last EvaluationPeriods datapoints up to now: the check to run between
// waves of a rollout (fleet.AlarmCheck has this shape once now is bound).
// evidence holds the breached alarms' summaries, "" when none breached.
func BreachedNow(ctx context.Context, src AlarmSource, alarms []pipeline.Alarm, now time.Time) (breached bool, evidence string, err error) {
	var lines []string
	for _, a := range alarms {
		from := now.Add(-time.Duration(a.EvaluationPeriods-1) * a.Period)
		res, err := src.Check(ctx, []pipeline.Alarm{a}, from, now)
		if err != nil {
			return false, "", err
		}
		for _, r := range res {
			if r.Breached {
				lines = append(lines, r.Summary())
			}
		}
	}
	return len(lines) > 0, strings.Join(lines, "; "), nil
}
