package gate_test

import (
	"strings"
	"testing"
	"time"

	"github.com/phasekit/phasekit/gate"
	"github.com/phasekit/phasekit/pipeline"
)

// series turns a compact string into datapoints one period apart from t0:
// a digit is a value, "." is missing data.
func series(t0 time.Time, period time.Duration, s string) ([]time.Time, map[int64]float64) {
	var grid []time.Time
	vals := map[int64]float64{}
	for i, c := range s {
		at := t0.Add(time.Duration(i) * period)
		grid = append(grid, at)
		if c != '.' {
			vals[at.UnixMilli()] = float64(c - '0')
		}
	}
	return grid, vals
}

// TestEvaluateMofN: M breaching datapoints out of a sliding window of N, as
// CloudWatch counts them; missing data never breaches.
func TestEvaluateMofN(t *testing.T) {
	a := pipeline.Alarm{Name: "errors", Query: "q", Comparison: ">", Threshold: 5, DatapointsToAlarm: 3, EvaluationPeriods: 5, Period: time.Minute}
	t0 := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		points   string
		breached bool
		max      int
		missing  int
		window   string // the reported window's first time offset in periods
	}{
		{"quiet", "0000000000", false, 0, 0, ""},
		{"two of five", "0090900000", false, 2, 0, "2"},
		{"three of five", "0090909000", true, 3, 0, "2"},
		{"three spread over six", "9009009000", false, 2, 0, "3"},
		{"three in a row", "000999", true, 3, 0, "1"},
		{"threshold itself does not breach", "5555555", false, 0, 0, ""},
		{"missing is not breaching", "9..9..9", false, 2, 4, "2"},
		{"missing between breaching ones", "9.9.9", true, 3, 2, "0"},
		{"all missing", ".......", false, 0, 7, ""},
		{"fewer points than N", "99", false, 2, 0, "0"},
		{"fewer points than N but M breaching", "999", true, 3, 0, "0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			grid, vals := series(t0, a.Period, tc.points)
			r := gate.Evaluate(a, grid, vals)
			if r.Breached != tc.breached || r.MaxBreaching != tc.max || r.Missing != tc.missing {
				t.Fatalf("breached %v max %d missing %d, want %v %d %d: %s", r.Breached, r.MaxBreaching, r.Missing, tc.breached, tc.max, tc.missing, r.Summary())
			}
			if tc.window == "" {
				if len(r.Window) != 0 {
					t.Errorf("window %v, want none", r.Window)
				}
				return
			}
			start := t0.Add(time.Duration(tc.window[0]-'0') * a.Period)
			if len(r.Window) == 0 || !r.Window[0].At.Equal(start) {
				t.Errorf("window starts %v, want %v", r.Window, start)
			}
			if tc.breached && !strings.Contains(r.Summary(), "BREACHED") {
				t.Errorf("summary: %s", r.Summary())
			}
		})
	}
}

func TestEvaluateComparisons(t *testing.T) {
	for _, tc := range []struct {
		cmp  string
		v    float64
		want bool
	}{
		{">", 5, false}, {">", 5.1, true}, {">=", 5, true}, {">=", 4.9, false},
		{"<", 5, false}, {"<", 4.9, true}, {"<=", 5, true}, {"<=", 5.1, false},
	} {
		a := pipeline.Alarm{Comparison: tc.cmp, Threshold: 5}
		if got := gate.Breaching(a, tc.v); got != tc.want {
			t.Errorf("%v %s 5: %v, want %v", tc.v, tc.cmp, got, tc.want)
		}
	}
}

func TestGridAndRule(t *testing.T) {
	a := pipeline.Alarm{Comparison: ">=", Threshold: 0.25, DatapointsToAlarm: 2, EvaluationPeriods: 3, Period: 5 * time.Minute}
	t0 := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	if g := gate.Grid(a, t0, t0.Add(15*time.Minute)); len(g) != 4 || !g[3].Equal(t0.Add(15*time.Minute)) {
		t.Errorf("grid %v", g)
	}
	if g := gate.Grid(a, t0, t0.Add(14*time.Minute)); len(g) != 3 {
		t.Errorf("grid %v", g)
	}
	if r := gate.Rule(a); r != ">= 0.25 in 2 of 3 datapoints of 5m" {
		t.Errorf("rule %q", r)
	}
}
