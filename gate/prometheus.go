package gate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/phasekit/phasekit/internal/dbconn"
	"github.com/phasekit/phasekit/pipeline"
)

// maxPoints bounds the datapoints of one range query: Prometheus refuses
// more than 11,000 per series.
const maxPoints = 10000

// Prometheus evaluates alarms with range queries on a Prometheus server's
// HTTP API, one datapoint per alarm period.
type Prometheus struct {
	URL string
	api v1.API
}

// NewPrometheus returns an AlarmSource for the Prometheus at url
// ("http://127.0.0.1:9090"). It does not connect until Check.
func NewPrometheus(url string) (*Prometheus, error) {
	c, err := api.NewClient(api.Config{Address: url, Client: &http.Client{Timeout: 30 * time.Second}})
	if err != nil {
		return nil, fmt.Errorf("prometheus %s: %w", dbconn.Redact(url), err)
	}
	return &Prometheus{URL: url, api: v1.NewAPI(c)}, nil
}

// Check runs each alarm's query over [from, to] at step = its period and
// evaluates M of N on every series the query gives.
func (p *Prometheus) Check(ctx context.Context, alarms []pipeline.Alarm, from, to time.Time) ([]AlarmResult, error) {
	// Millisecond times: what Prometheus returns, so the grid matches it.
	from, to = from.Truncate(time.Millisecond), to.Truncate(time.Millisecond)
	out := make([]AlarmResult, 0, len(alarms))
	for _, a := range alarms {
		grid := Grid(a, from, to)
		series := map[string]map[int64]float64{}
		var order []string
		for i := 0; i < len(grid); i += maxPoints {
			end := grid[min(i+maxPoints, len(grid))-1]
			val, _, _, err := p.api.QueryRange(ctx, a.Query, v1.Range{Start: grid[i], End: end, Step: a.Period})
			if err != nil {
				return nil, fmt.Errorf("alarm %s: query %s on %s: %w", a.Name, a.Query, dbconn.Redact(p.URL), err)
			}
			m, ok := val.(model.Matrix)
			if !ok {
				return nil, fmt.Errorf("alarm %s: query %s gives a %s, want one number per step", a.Name, a.Query, val.Type())
			}
			for _, s := range m {
				name := s.Metric.String()
				if series[name] == nil {
					series[name] = map[int64]float64{}
					order = append(order, name)
				}
				for _, v := range s.Values {
					series[name][int64(v.Timestamp)] = float64(v.Value)
				}
			}
		}
		if len(order) == 0 {
			out = append(out, Evaluate(a, grid, nil))
			continue
		}
		var best AlarmResult
		for i, name := range order {
			r := Evaluate(a, grid, series[name])
			if len(order) > 1 {
				r.Series = name
			}
			if i == 0 || worse(r, best) {
				best = r
			}
		}
		out = append(out, best)
	}
	return out, nil
}

// Value runs query as an instant query now and returns its largest value
// over the series it gives (the worst, for a latency). A query that gives
// no series, or only NaN (a histogram_quantile over no requests), has no
// value: an error saying so.
func (p *Prometheus) Value(ctx context.Context, query string) (float64, error) {
	val, _, _, err := p.api.Query(ctx, query, time.Now())
	if err != nil {
		return 0, fmt.Errorf("query %s on %s: %w", query, dbconn.Redact(p.URL), err)
	}
	var vs []float64
	switch v := val.(type) {
	case model.Vector:
		for _, s := range v {
			vs = append(vs, float64(s.Value))
		}
	case *model.Scalar:
		vs = append(vs, float64(v.Value))
	default:
		return 0, fmt.Errorf("query %s gives a %s, want an instant vector or a scalar", query, val.Type())
	}
	best, ok := math.Inf(-1), false
	for _, v := range vs {
		if finite(v) {
			best, ok = max(best, v), true
		}
	}
	if !ok {
		return 0, fmt.Errorf("query %s: %w now (%d series, none a finite number)%s", query, ErrNoValue, len(vs), noValueHint)
	}
	return best, nil
}

// noValueHint ends the error of a query with no value.
const noValueHint = ": is the app serving requests, and its latency scraped?"

// finite says f is a number a latency can be: not NaN (histogram_quantile
// over no requests) nor infinite.
func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// ErrNoValue is wrapped by Value's error when the query gives no number.
var ErrNoValue = errors.New("no value")

// BadQuery says err is Prometheus refusing a query as malformed.
func BadQuery(err error) bool {
	var e *v1.Error
	return errors.As(err, &e) && e.Type == v1.ErrBadData
}

// AppLatency reads an application's p99 latency, in seconds, from
// Prometheus: the latency guard's view of what the app feels
// (throttle.AppLatency; apply --app-latency-query).
type AppLatency struct {
	Prometheus *Prometheus
	// Query gives the p99 in seconds, e.g.
	// histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[30s]))).
	Query string
}

// P99 reads the query's value now.
func (a AppLatency) P99(ctx context.Context) (time.Duration, error) {
	v, err := a.Prometheus.Value(ctx, a.Query)
	if err != nil {
		return 0, err
	}
	return time.Duration(v * float64(time.Second)), nil
}

// MedianP99 is the median of the query's values over the span before now,
// at about 100 steps (at least a second apart), taking the largest series
// at each step: the app's usual p99 before the backfill
// (throttle.AppHistory). Steps without a finite value are left out.
func (a AppLatency) MedianP99(ctx context.Context, span time.Duration) (time.Duration, error) {
	to := time.Now().Truncate(time.Second)
	step := max(span/100, time.Second).Truncate(time.Second)
	val, _, _, err := a.Prometheus.api.QueryRange(ctx, a.Query, v1.Range{Start: to.Add(-span), End: to, Step: step})
	if err != nil {
		return 0, fmt.Errorf("query %s over the last %s on %s: %w", a.Query, span, dbconn.Redact(a.Prometheus.URL), err)
	}
	m, ok := val.(model.Matrix)
	if !ok {
		return 0, fmt.Errorf("query %s gives a %s, want one number per step", a.Query, val.Type())
	}
	worst := map[model.Time]float64{}
	for _, s := range m {
		for _, v := range s.Values {
			f := float64(v.Value)
			if !finite(f) {
				continue
			}
			if w, seen := worst[v.Timestamp]; !seen || f > w {
				worst[v.Timestamp] = f
			}
		}
	}
	if len(worst) == 0 {
		return 0, fmt.Errorf("query %s: %w over the last %s%s", a.Query, ErrNoValue, span, noValueHint)
	}
	vs := make([]float64, 0, len(worst))
	for _, f := range worst {
		vs = append(vs, f)
	}
	slices.Sort(vs)
	return time.Duration(vs[len(vs)/2] * float64(time.Second)), nil
}
