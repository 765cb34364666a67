package pipeline

import (
	"fmt"
	"slices"
	"strings"

	"github.com/phasekit/phasekit/phases"
)

// Bind lays a plan's phases on the pipeline: every phase before contract
// runs before N+1 reaches the first stage; then N+1 is deployed to each
// stage (each wave of a stage with waves) and bakes there; then the contract
// gate; then contract. A plan without contract ends with the last bake.
// pl comes from Load or Parse (at least one stage); file names the pipeline
// in the binding (pl.File when empty). The caller stores the result in
// p.Binding; Bind changes neither argument.
func Bind(p *phases.Plan, pl *Pipeline, file string) *phases.Binding {
	if file == "" {
		file = pl.File
	}
	b := &phases.Binding{Pipeline: file, App: pl.App, Old: pl.Old, New: pl.New, Steps: []phases.BindingStep{}}
	label := func(vs ...[]string) []string {
		var out []string
		for _, list := range vs {
			for _, v := range list {
				switch v {
				case phases.Old:
					v = pl.Old
				case phases.New:
					v = pl.New
				}
				if !slices.Contains(out, v) {
					out = append(out, v)
				}
			}
		}
		return out
	}

	first := pl.Stages[0].Name
	var contract *phases.Phase
	var backfill bool
	// While N+1 rolls out, N still runs: both must work against the
	// database as the last phase before contract left it.
	var lastAfter []string
	prev := ""
	for i := range p.Phases {
		ph := &p.Phases[i]
		if ph.Kind == phases.Contract {
			contract = ph
			continue
		}
		backfill = backfill || ph.Kind == phases.Backfill
		when := fmt.Sprintf("before %s reaches %s", pl.New, first)
		if prev != "" {
			when = fmt.Sprintf("after %s, %s", prev, when)
		}
		b.Steps = append(b.Steps, phases.BindingStep{
			Kind: phases.StepPhase, Phase: ph.Kind, Title: "run " + string(ph.Kind), When: when,
			Versions: label(ph.AppsBefore, ph.AppsAfter),
		})
		prev = string(ph.Kind)
		lastAfter = ph.AppsAfter
	}
	rolling := label(lastAfter, []string{phases.Old, phases.New})

	watch := "no alarm configured: the bake only waits"
	if len(pl.Alarms) > 0 {
		var names []string
		for _, a := range pl.Alarms {
			names = append(names, a.Name)
		}
		watch = "alarms " + strings.Join(names, ", ") + " must not breach"
	}
	after := "when the release starts: no phase runs before it"
	if prev != "" {
		after = "after " + prev
	}
	for _, st := range pl.Stages {
		places := []WaveRef{{Stage: st.Name, Bake: st.Bake}}
		if len(st.Waves) > 0 {
			places = places[:0]
			for _, w := range st.Waves {
				places = append(places, WaveRef{Stage: st.Name, Wave: w.Name, Targets: w.Targets, Bake: w.Bake})
			}
		}
		for _, w := range places {
			where := st.Name
			if w.Wave != "" {
				where = fmt.Sprintf("%s wave %s", st.Name, w.Wave)
			}
			bake := FormatDuration(w.Bake)
			b.Steps = append(b.Steps,
				phases.BindingStep{
					Kind: phases.StepDeploy, Stage: w.Stage, Wave: w.Wave,
					Title: fmt.Sprintf("deploy %s to %s", pl.New, where), When: after,
					Versions: rolling,
				},
				phases.BindingStep{
					Kind: phases.StepBake, Stage: w.Stage, Wave: w.Wave,
					Title: "bake " + where, When: fmt.Sprintf("once %s runs on %s; %s", pl.New, where, watch),
					Bake: bake, Versions: rolling,
				})
			after = fmt.Sprintf("after %s baked %s", where, bake)
			if len(pl.Alarms) > 0 {
				after += " with no alarm breached"
			}
		}
	}
	if contract == nil {
		return b
	}

	var baked []string
	for _, w := range pl.ProdWaves() {
		baked = append(baked, w.Wave+" "+FormatDuration(w.Bake))
	}
	checks := []string{fmt.Sprintf("%s baked in every prod wave for its bake time (%s)", pl.New, strings.Join(baked, ", "))}
	if len(pl.Alarms) > 0 {
		checks = append(checks, "no alarm breached")
	}
	checks = append(checks, fmt.Sprintf("no %s client left (application_name %s)", pl.Old, pl.ApplicationName(pl.Old)))
	if backfill {
		checks = append(checks, "backfill verified")
	}
	b.Steps = append(b.Steps,
		phases.BindingStep{
			Kind: phases.StepGate, Title: "contract gate", When: strings.Join(checks, ", "),
			Versions: label(contract.AppsBefore),
		},
		phases.BindingStep{
			Kind: phases.StepPhase, Phase: phases.Contract, Title: "run contract", When: "after the gate opens",
			Versions: label(contract.AppsBefore, contract.AppsAfter),
		})
	return b
}
