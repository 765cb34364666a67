package gate

import (
	"fmt"
	"strings"

	"github.com/phasekit/phasekit/pipeline"
)

// CheckDeploy checks a deploy record against the pipeline: the stage must
// be one of its stages, the wave one of that stage's waves (and given
// exactly when the stage has waves), the version a label that fits in
// application_name. The error names the valid choices.
func CheckDeploy(pl *pipeline.Pipeline, stage, wave, version string) error {
	var st *pipeline.Stage
	var stages []string
	for i := range pl.Stages {
		stages = append(stages, pl.Stages[i].Name)
		if pl.Stages[i].Name == stage {
			st = &pl.Stages[i]
		}
	}
	if st == nil {
		return fmt.Errorf("stage %q is not in %s: its stages are %s", stage, pl.File, strings.Join(stages, ", "))
	}
	var waves []string
	found := false
	for _, w := range st.Waves {
		waves = append(waves, w.Name)
		found = found || w.Name == wave
	}
	switch {
	case len(waves) == 0 && wave != "":
		return fmt.Errorf("stage %s of %s has no waves: leave out --wave (got %q)", stage, pl.File, wave)
	case len(waves) > 0 && wave == "":
		return fmt.Errorf("stage %s of %s is deployed in waves: pass --wave, one of %s", stage, pl.File, strings.Join(waves, ", "))
	case len(waves) > 0 && !found:
		return fmt.Errorf("wave %q is not a wave of stage %s in %s: its waves are %s", wave, stage, pl.File, strings.Join(waves, ", "))
	}
	if version == "" || strings.ContainsAny(version, "/ \t\n") {
		return fmt.Errorf("version %q: want a label such as %s, without '/' or spaces (instances connect with application_name %s)", version, pl.New, pl.ApplicationName(pl.New))
	}
	return nil
}
