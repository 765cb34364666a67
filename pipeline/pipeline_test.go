package pipeline_test

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/pipeline"
)

// example is the pipeline the docs show and later tests use.
const example = "../testdata/pipeline/pipeline.yaml"

func TestLoadExample(t *testing.T) {
	p, err := pipeline.Load(example)
	if err != nil {
		t.Fatal(err)
	}
	if p.App != "checkout" || p.Old != "v41" || p.New != "v42" {
		t.Errorf("app %q, old %q, new %q", p.App, p.Old, p.New)
	}
	var stages []string
	for _, st := range p.Stages {
		stages = append(stages, st.Name+":"+string(st.Kind)+":"+pipeline.FormatDuration(st.Bake))
	}
	if got, want := strings.Join(stages, " "), "alpha:alpha:30m beta:beta:1h gamma:gamma:1h zeta:zeta:2h prod:prod:1h"; got != want {
		t.Errorf("stages %s, want %s", got, want)
	}
	var waves []string
	for _, w := range p.ProdWaves() {
		waves = append(waves, w.Stage+"/"+w.Wave+":"+pipeline.FormatDuration(w.Bake)+":"+strings.Join(w.Targets, ","))
	}
	// one-box takes first_wave_bake, us-east-1 the stage's bake, us-west-2 its own.
	if got, want := strings.Join(waves, " "), "prod/one-box:2h:use1-onebox prod/us-east-1:1h:use1-az1,use1-az2,use1-az4 prod/us-west-2:1h30m:usw2-az1,usw2-az2,usw2-az3"; got != want {
		t.Errorf("prod waves\n got %s\nwant %s", got, want)
	}
	if len(p.Alarms) != 2 {
		t.Fatalf("%d alarms", len(p.Alarms))
	}
	a := p.Alarms[0]
	if a.Name != "api-5xx" || a.Comparison != ">" || a.Threshold != 5 || a.DatapointsToAlarm != 3 || a.EvaluationPeriods != 5 || a.Period != time.Minute {
		t.Errorf("alarm %+v", a)
	}
	if !strings.Contains(a.Query, `code=~"5.."`) {
		t.Errorf("query %q", a.Query)
	}
	if a.EvaluationWindow() != 5*time.Minute || p.Alarms[1].EvaluationWindow() != 15*time.Minute {
		t.Errorf("windows %s, %s", a.EvaluationWindow(), p.Alarms[1].EvaluationWindow())
	}
	if got := p.Stages[4].Waves[1].Pos.String(); got != example+":28:9" {
		t.Errorf("wave us-east-1 at %s", got)
	}
	if got := p.ApplicationName(p.Old); got != "checkout/v41" {
		t.Errorf("application_name %s", got)
	}
}

// TestProdWavesStageWithoutWaves: a prod stage without waves is one wave
// named after the stage; labels default to N and N+1.
func TestProdWavesStageWithoutWaves(t *testing.T) {
	p, err := pipeline.Parse("p.yaml", []byte("app: a\nstages:\n  - {name: eu, kind: prod, bake: 1h}\n  - {name: us, kind: prod, bake: 2h, waves: [{name: one, targets: [x]}, {name: two, targets: [y], bake: 3h}]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range p.ProdWaves() {
		got = append(got, w.Stage+"/"+w.Wave+":"+pipeline.FormatDuration(w.Bake))
	}
	if strings.Join(got, " ") != "eu/eu:1h us/one:2h us/two:3h" {
		t.Errorf("prod waves %v", got)
	}
	if p.Old != "N" || p.New != "N+1" {
		t.Errorf("labels %q %q", p.Old, p.New)
	}
}

// valid is the smallest pipeline the error cases below start from.
const valid = `app: shop
stages:
  - name: beta
    kind: beta
    bake: 10m
  - name: prod
    kind: prod
    bake: 10m
alarms:
  - name: errors
    query: up
    comparison: ">"
    threshold: 1
    datapoints_to_alarm: 2
    evaluation_periods: 3
    period: 1m
`

// edit replaces old with new in the valid pipeline, exactly once.
func edit(t *testing.T, old, new string) string {
	t.Helper()
	if strings.Count(valid, old) != 1 {
		t.Fatalf("%q is not in the valid pipeline exactly once", old)
	}
	return strings.Replace(valid, old, new, 1)
}

func TestValidParses(t *testing.T) {
	if _, err := pipeline.Parse("p.yaml", []byte(valid)); err != nil {
		t.Fatal(err)
	}
}

// TestErrors: each bad pipeline is refused with an *change.InputError at the
// node that is wrong.
func TestErrors(t *testing.T) {
	waves := func(w string) string {
		return strings.Replace(valid, "    kind: prod\n    bake: 10m\n", "    kind: prod\n"+w, 1)
	}
	cases := []struct {
		name, src string
		pos       string // line:col
		msg       string // contained in the message
	}{
		{"invalid yaml", "app: [x\n", "1:1", "invalid YAML: did not find expected ',' or ']'"},
		{"empty file", "", "1:1", "empty pipeline file"},
		{"not a mapping", "- a\n", "1:1", "the pipeline must be a mapping of app, old, new, stages, alarms"},
		{"unknown top key", edit(t, "stages:", "stage:"), "2:1", `unknown field "stage" in the pipeline (did you mean "stages"?)`},
		{"key twice", "app: a\napp: b\n", "2:1", `"app" appears twice in the pipeline`},
		{"no app", edit(t, "app: shop\n", ""), "1:1", `the pipeline needs "app"`},
		{"app without value", edit(t, "app: shop", "app:"), "1:5", "app has no value"},
		{"app with slash", edit(t, "app: shop", "app: shop/web"), "1:6", `app "shop/web" must not contain '/'`},
		{"app with space", edit(t, "app: shop", "app: 'my shop'"), "1:6", `app "my shop" may hold only printable ASCII without spaces`},
		{"same labels", edit(t, "app: shop\n", "app: shop\nold: v1\nnew: v1\n"), "1:1", `old and new are both "v1"`},
		{"application_name too long", edit(t, "app: shop\n", "app: shop\nnew: "+strings.Repeat("9", 60)+"\n"), "2:6", "is 65 bytes: PostgreSQL cuts it to 63"},
		{"no stages", "app: a\n", "1:1", `the pipeline needs "stages"`},
		{"stages empty", "app: a\nstages: []\n", "2:9", "stages must not be empty"},
		{"stage not a mapping", "app: a\nstages: [beta]\n", "2:10", "a stage must be a mapping"},
		{"unknown stage key", edit(t, "    bake: 10m\n  - name: prod", "    bak: 10m\n  - name: prod"), "5:5", `unknown field "bak" in a stage (did you mean "bake"?)`},
		{"stage without name", edit(t, "  - name: beta\n    kind: beta", "  - kind: beta"), "3:5", `a stage needs "name"`},
		{"stage name twice", edit(t, "name: beta", "name: prod"), "6:11", `stage name "prod" is used twice (first at p.yaml:3:11)`},
		{"stage without kind", edit(t, "    kind: beta\n", ""), "3:5", `stage beta needs "kind"`},
		{"unknown kind", edit(t, "kind: prod", "kind: prd"), "7:11", `unknown stage kind "prd" (did you mean "prod"?); one of: alpha, beta, gamma, zeta, prod`},
		{"two zeta", edit(t, "  - name: prod\n", "  - {name: z1, kind: zeta, bake: 1h}\n  - {name: z2, kind: zeta, bake: 1h}\n  - name: prod\n"), "7:22", "stage z2 is a second zeta stage (the first is z1 at p.yaml:6:5): a pipeline has at most one"},
		{"zeta after prod", edit(t, "alarms:", "  - {name: late, kind: zeta, bake: 1h}\nalarms:"), "9:24", "zeta stage late comes after prod stage prod: the zeta stage must come before every prod stage"},
		{"no prod", edit(t, "kind: prod", "kind: gamma"), "3:3", "no stage of kind prod"},
		{"stage without bake", edit(t, "    kind: beta\n    bake: 10m\n", "    kind: beta\n"), "3:5", `stage beta needs "bake"`},
		{"bake not a duration", edit(t, "kind: beta\n    bake: 10m", "kind: beta\n    bake: 30"), "5:11", `bake "30" is not a duration: write it as 30m, 2h or 1h30m`},
		{"bake zero", edit(t, "kind: beta\n    bake: 10m", "kind: beta\n    bake: 0s"), "5:11", "bake must be positive, not 0s"},
		{"bake negative", edit(t, "kind: beta\n    bake: 10m", "kind: beta\n    bake: -5m"), "5:11", "bake must be positive, not -5m"},
		{"first_wave_bake without waves", edit(t, "kind: beta\n", "kind: beta\n    first_wave_bake: 1h\n"), "5:22", "first_wave_bake needs waves: stage beta has none"},
		{"waves empty", waves("    bake: 10m\n    waves: []\n"), "9:12", "waves must not be empty"},
		{"unknown wave key", waves("    bake: 10m\n    waves:\n      - name: one\n        target: [a]\n"), "11:9", `unknown field "target" in a wave of stage prod (did you mean "targets"?)`},
		{"wave without targets", waves("    bake: 10m\n    waves:\n      - name: one\n"), "10:9", `wave one needs "targets"`},
		{"wave targets empty", waves("    bake: 10m\n    waves:\n      - name: one\n        targets: []\n"), "11:18", "targets must not be empty"},
		{"wave name twice", waves("    bake: 10m\n    waves:\n      - {name: one, targets: [a]}\n      - {name: one, targets: [b]}\n"), "11:16", `wave name "one" is used twice in stage prod (first at p.yaml:10:16)`},
		{"target twice", waves("    bake: 10m\n    waves:\n      - {name: one, targets: [a]}\n      - {name: two, targets: [b, a]}\n"), "11:34", `target "a" is in two waves of stage prod (first at p.yaml:10:31)`},
		{"wave without bake", waves("    waves:\n      - {name: one, targets: [a]}\n"), "9:9", "wave one of stage prod has no bake: set bake on the wave, or bake (and first_wave_bake) on the stage"},
		{"second wave without bake", waves("    first_wave_bake: 1h\n    waves:\n      - {name: one, targets: [a]}\n      - {name: two, targets: [b]}\n"), "11:9", "wave two of stage prod has no bake"},
		{"alarms not a list", strings.Split(valid, "alarms:")[0] + "alarms: {}\n", "9:9", "alarms must be a list"},
		{"unknown alarm key", edit(t, "    period: 1m", "    periods: 1m"), "16:5", `unknown field "periods" in an alarm (did you mean "period"?)`},
		{"alarm without query", edit(t, "    query: up\n", ""), "10:5", `alarm errors needs "query"`},
		{"alarm name twice", valid + "  - {name: errors, query: up, comparison: '<', threshold: 1, datapoints_to_alarm: 1, evaluation_periods: 1, period: 1m}\n", "17:12", `alarm name "errors" is used twice (first at p.yaml:10:11)`},
		{"bad comparison", edit(t, `comparison: ">"`, `comparison: "=="`), "12:17", `comparison "==" is not one of > >= < <=`},
		{"bare >", edit(t, `comparison: ">"`, `comparison: >`), "12:17", "(quote it: YAML reads a bare > as the start of a folded block)"},
		{"threshold not a number", edit(t, "threshold: 1", "threshold: high"), "13:16", "threshold must be a number"},
		{"datapoints not a whole number", edit(t, "datapoints_to_alarm: 2", "datapoints_to_alarm: 2.5"), "14:26", "datapoints_to_alarm must be a whole number"},
		{"evaluation_periods zero", edit(t, "evaluation_periods: 3", "evaluation_periods: 0"), "15:25", "evaluation_periods must be at least 1, not 0"},
		{"datapoints above periods", edit(t, "datapoints_to_alarm: 2", "datapoints_to_alarm: 4"), "14:26", "datapoints_to_alarm 4 is more than evaluation_periods 3: the alarm could never fire"},
		{"period zero", edit(t, "period: 1m", "period: 0m"), "16:13", "period must be positive, not 0m"},
		{"period not a duration", edit(t, "period: 1m", "period: 1 minute"), "16:13", `period "1 minute" is not a duration`},
		{"stage bake shorter than window", edit(t, "kind: beta\n    bake: 10m", "kind: beta\n    bake: 2m"), "5:11",
			"bake 2m of stage beta is shorter than alarm errors's evaluation window 3m (3 evaluation periods of 1m): the alarm could not fire before the stage is called healthy"},
		{"wave bake shorter than window", waves("    bake: 10m\n    waves:\n      - {name: one, targets: [a], bake: 2m}\n"), "10:41",
			"bake 2m of wave one (stage prod) is shorter than alarm errors's evaluation window 3m (3 evaluation periods of 1m): the alarm could not fire before the wave is called healthy"},
		{"first_wave_bake shorter than window", waves("    bake: 10m\n    first_wave_bake: 150s\n    waves:\n      - {name: one, targets: [a]}\n      - {name: two, targets: [b]}\n"), "9:22",
			"bake 2m30s of wave one (first_wave_bake of stage prod) is shorter than alarm errors's evaluation window 3m"},
		{"stage bake of a later wave shorter than window", waves("    bake: 1m\n    first_wave_bake: 1h\n    waves:\n      - {name: one, targets: [a]}\n      - {name: two, targets: [b]}\n"), "8:11",
			"bake 1m of wave two (bake of stage prod) is shorter than alarm errors's evaluation window 3m"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pipeline.Parse("p.yaml", []byte(tc.src))
			var ie *change.InputError
			if !errors.As(err, &ie) {
				t.Fatalf("want *change.InputError, got %v\n%s", err, tc.src)
			}
			if want := "p.yaml:" + tc.pos + ": "; !strings.HasPrefix(err.Error(), want) || !strings.Contains(ie.Msg, tc.msg) {
				t.Errorf("got  %s\nwant %s...%s...\n%s", err, want, tc.msg, tc.src)
			}
		})
	}
}

// TestBakeShorterThanWindow: the example, with its last wave cut to 10m, is
// refused because db-p99-latency needs 15m of datapoints; at exactly 15m it
// is accepted.
func TestBakeShorterThanWindow(t *testing.T) {
	src, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ bake, want string }{
		{"10m", example + ":32:15: bake 10m of wave us-west-2 (stage prod) is shorter than alarm db-p99-latency's evaluation window 15m (3 evaluation periods of 5m): the alarm could not fire before the wave is called healthy"},
		{"15m", ""},
	} {
		edited := strings.Replace(string(src), "bake: 1h30m", "bake: "+tc.bake, 1)
		_, err := pipeline.Parse(example, []byte(edited))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("bake %s: %v", tc.bake, err)
		case tc.want != "" && (err == nil || err.Error() != tc.want):
			t.Errorf("bake %s:\n got %v\nwant %s", tc.bake, err, tc.want)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		2 * time.Hour: "2h", 90 * time.Minute: "1h30m", 30 * time.Minute: "30m", 45 * time.Second: "45s",
		90 * time.Second: "1m30s", time.Hour + time.Second: "1h0m1s",
	} {
		if got := pipeline.FormatDuration(d); got != want {
			t.Errorf("%v: got %s, want %s", d, got, want)
		}
		if back, err := time.ParseDuration(want); err != nil || back != d {
			t.Errorf("%s does not parse back to %v", want, d)
		}
	}
}

// FuzzParse: any input either parses or fails with a positioned error.
func FuzzParse(f *testing.F) {
	f.Add([]byte(valid))
	if b, err := os.ReadFile(example); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		p, err := pipeline.Parse("f.yaml", src)
		var ie *change.InputError
		if err != nil && (!errors.As(err, &ie) || ie.Pos.Line == 0) {
			t.Fatalf("unpositioned error: %v", err)
		}
		if err == nil && len(p.ProdWaves()) == 0 {
			t.Fatal("a pipeline without prod waves parsed")
		}
	})
}
