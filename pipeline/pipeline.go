// Package pipeline reads the deploy pipeline a release goes through (stages,
// the waves of production, bake times and the alarms watched while N+1
// bakes) and binds a plan's phases to it: the timeline of phases, deploys,
// bakes and the contract gate. Nothing in this package touches a database or
// a deploy system; it is data and the checks on it.
package pipeline

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/phasekit/phasekit/change"
)

// StageKind is the kind of a stage.
type StageKind string

// Stage kinds, in the order a release usually meets them.
const (
	Alpha StageKind = "alpha" // developers' own environment
	Beta  StageKind = "beta"  // integration with other teams' services
	Gamma StageKind = "gamma" // production-like, production configuration
	// Zeta comes before prod: the new frontend (N+1) runs against the
	// production backend (N), as it will mid-rollout (docs/verify.md).
	Zeta StageKind = "zeta"
	Prod StageKind = "prod" // customers; rolled out in waves
)

// Kinds lists the stage kinds a pipeline file may use.
var Kinds = []StageKind{Alpha, Beta, Gamma, Zeta, Prod}

// Comparisons an alarm may use: the alarm breaches when the query's value
// compares so with the threshold.
var Comparisons = []string{">", ">=", "<", "<="}

// Pipeline is a parsed, checked pipeline file (docs/pipeline.md).
type Pipeline struct {
	// File is the file it was read from.
	File string
	// App is the application's name; its instances connect with
	// application_name "App/version" (ApplicationName).
	App string
	// Old and New label N and N+1 ("N" and "N+1" when the file omits them).
	Old, New string
	Stages   []Stage
	Alarms   []Alarm
}

// Stage is one stage of the pipeline, in order.
type Stage struct {
	Name string
	Kind StageKind
	// Bake is how long N+1 bakes in the stage (in each wave, for a stage with
	// waves, unless the wave sets its own); 0 when the file leaves it out.
	Bake time.Duration
	// FirstWaveBake is the first wave's bake when the wave sets none.
	FirstWaveBake time.Duration
	Waves         []Wave
	Pos           change.Pos
}

// Wave is one wave of a stage.
type Wave struct {
	Name    string
	Targets []string
	// Bake is the wave's effective bake: its own, else the stage's
	// first_wave_bake for the first wave, else the stage's bake.
	Bake time.Duration
	Pos  change.Pos
}

// Alarm is a metric watched while N+1 bakes, evaluated like a CloudWatch
// alarm: every Period the query gives one datapoint; the alarm breaches when
// DatapointsToAlarm of the last EvaluationPeriods datapoints compare with
// Threshold as Comparison says.
type Alarm struct {
	Name string
	// Query is PromQL giving one number.
	Query             string
	Comparison        string
	Threshold         float64
	DatapointsToAlarm int
	EvaluationPeriods int
	Period            time.Duration
	Pos               change.Pos
}

// EvaluationWindow is how far back the alarm looks: EvaluationPeriods
// periods. A bake shorter than it ends before the alarm could fire.
func (a Alarm) EvaluationWindow() time.Duration {
	return time.Duration(a.EvaluationPeriods) * a.Period
}

// WaveRef is one wave with the stage it belongs to.
type WaveRef struct {
	Stage   string
	Wave    string
	Targets []string
	Bake    time.Duration
}

// ProdWaves lists every prod wave in order, across prod stages. A prod stage
// without waves counts as one wave named after the stage.
func (p *Pipeline) ProdWaves() []WaveRef {
	var out []WaveRef
	for _, st := range p.Stages {
		if st.Kind != Prod {
			continue
		}
		if len(st.Waves) == 0 {
			out = append(out, WaveRef{Stage: st.Name, Wave: st.Name, Bake: st.Bake})
			continue
		}
		for _, w := range st.Waves {
			out = append(out, WaveRef{Stage: st.Name, Wave: w.Name, Targets: w.Targets, Bake: w.Bake})
		}
	}
	return out
}

// ApplicationName is the application_name an instance of the given version
// connects with: "checkout/v42".
func (p *Pipeline) ApplicationName(version string) string {
	return p.App + "/" + version
}

// Load reads and checks a pipeline file.
func Load(file string) (*Pipeline, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read pipeline: %w", err)
	}
	return Parse(file, b)
}

// FormatDuration writes a duration the way people write it in a pipeline
// file: "2h", "1h30m", "45s" (time.Duration.String would say "2h0m0s").
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
