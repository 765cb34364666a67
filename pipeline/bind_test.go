package pipeline_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/internal/testkit/golden"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/pipeline"
	"github.com/phasekit/phasekit/schema"
)

// renamePlan is a plan shaped as the planner makes it for a column rename:
// the app windows are the ones phases.Build sets.
func renamePlan() *phases.Plan {
	N, N1 := phases.Old, phases.New
	return &phases.Plan{Version: 1, Phases: []phases.Phase{
		{Kind: phases.Expand, AppsBefore: []string{N}, AppsAfter: []string{N}},
		{Kind: phases.DualWrite, AppsBefore: []string{N}, AppsAfter: []string{N}},
		{Kind: phases.Backfill, AppsBefore: []string{N}, AppsAfter: []string{N, N1}},
		{Kind: phases.Contract, AppsBefore: []string{N1}, AppsAfter: []string{N1}},
	}}
}

func loadExample(t *testing.T) *pipeline.Pipeline {
	t.Helper()
	pl, err := pipeline.Load(example)
	if err != nil {
		t.Fatal(err)
	}
	return pl
}

// steps writes a binding's steps one per line: kind, phase or place, bake,
// versions.
func steps(b *phases.Binding) string {
	var out []string
	for _, s := range b.Steps {
		line := string(s.Kind) + " " + string(s.Phase) + s.Stage
		if s.Wave != "" {
			line += "/" + s.Wave
		}
		if s.Bake != "" {
			line += " " + s.Bake
		}
		out = append(out, line+" ["+strings.Join(s.Versions, ",")+"]")
	}
	return strings.Join(out, "\n")
}

func TestBindOrder(t *testing.T) {
	b := pipeline.Bind(renamePlan(), loadExample(t), "pipeline.yaml")
	want := `phase expand [v41]
phase dual-write [v41]
phase backfill [v41,v42]
deploy alpha [v41,v42]
bake alpha 30m [v41,v42]
deploy beta [v41,v42]
bake beta 1h [v41,v42]
deploy gamma [v41,v42]
bake gamma 1h [v41,v42]
deploy zeta [v41,v42]
bake zeta 2h [v41,v42]
deploy prod/one-box [v41,v42]
bake prod/one-box 2h [v41,v42]
deploy prod/us-east-1 [v41,v42]
bake prod/us-east-1 1h [v41,v42]
deploy prod/us-west-2 [v41,v42]
bake prod/us-west-2 1h30m [v41,v42]
gate  [v42]
phase contract [v42]`
	if got := steps(b); got != want {
		t.Errorf("steps\n%s\nwant\n%s", got, want)
	}
	if b.Pipeline != "pipeline.yaml" || b.App != "checkout" || b.Old != "v41" || b.New != "v42" {
		t.Errorf("binding header %+v", b)
	}
	if w := b.Steps[0].When; w != "before v42 reaches alpha" {
		t.Errorf("expand: %q", w)
	}
	if w := b.Steps[1].When; w != "after expand, before v42 reaches alpha" {
		t.Errorf("dual-write: %q", w)
	}
	if w := b.Steps[3].When; w != "after backfill" {
		t.Errorf("first deploy: %q", w)
	}
	if w := b.Steps[5].When; w != "after alpha baked 30m with no alarm breached" {
		t.Errorf("second deploy: %q", w)
	}
	gate := b.Steps[len(b.Steps)-2]
	if want := "v42 baked in every prod wave for its bake time (one-box 2h, us-east-1 1h, us-west-2 1h30m), no alarm breached, no v41 client left (application_name checkout/v41), backfill verified"; gate.When != want {
		t.Errorf("gate:\n got %q\nwant %q", gate.When, want)
	}
	if w := b.Steps[len(b.Steps)-1].When; w != "after the gate opens" {
		t.Errorf("contract: %q", w)
	}
}

// TestBindShapes: a plan without contract has no gate; a plan that is only
// contract deploys first; a gate without a backfill does not ask for one;
// the default labels are N and N+1.
func TestBindShapes(t *testing.T) {
	pl, err := pipeline.Parse("p.yaml", []byte("app: shop\nstages:\n  - {name: beta, kind: beta, bake: 10m}\n  - {name: prod, kind: prod, bake: 1h}\n"))
	if err != nil {
		t.Fatal(err)
	}
	N, N1 := phases.Old, phases.New
	cases := []struct {
		name  string
		plan  []phases.Phase
		steps string
		gate  string
	}{
		{"no contract", []phases.Phase{{Kind: phases.Expand, AppsBefore: []string{N}, AppsAfter: []string{N, N1}}},
			"phase expand [N,N+1]\ndeploy beta [N,N+1]\nbake beta 10m [N,N+1]\ndeploy prod [N,N+1]\nbake prod 1h [N,N+1]", ""},
		{"contract only", []phases.Phase{{Kind: phases.Contract, AppsBefore: []string{N1}, AppsAfter: []string{N1}}},
			"deploy beta [N,N+1]\nbake beta 10m [N,N+1]\ndeploy prod [N,N+1]\nbake prod 1h [N,N+1]\ngate  [N+1]\nphase contract [N+1]",
			"N+1 baked in every prod wave for its bake time (prod 1h), no N client left (application_name shop/N)"},
		{"no phases", nil, "deploy beta [N,N+1]\nbake beta 10m [N,N+1]\ndeploy prod [N,N+1]\nbake prod 1h [N,N+1]", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := pipeline.Bind(&phases.Plan{Phases: tc.plan}, pl, "")
			if got := steps(b); got != tc.steps {
				t.Errorf("steps\n%s\nwant\n%s", got, tc.steps)
			}
			if b.Pipeline != "p.yaml" {
				t.Errorf("pipeline %q", b.Pipeline)
			}
			for _, s := range b.Steps {
				if s.Kind == phases.StepGate && s.When != tc.gate {
					t.Errorf("gate:\n got %q\nwant %q", s.When, tc.gate)
				}
			}
			if b.Steps[0].Kind == phases.StepDeploy && b.Steps[0].When != "when the release starts: no phase runs before it" {
				t.Errorf("first deploy: %q", b.Steps[0].When)
			}
		})
	}
}

// TestBindBuiltPlan binds a plan the planner made (a rename on Chinook): the
// phases keep their order and contract comes last, after the gate.
func TestBindBuiltPlan(t *testing.T) {
	raw, err := os.ReadFile("../phases/testdata/chinook.snapshot.json")
	if err != nil {
		t.Fatal(err)
	}
	var snap schema.Snapshot
	if err := json.Unmarshal(raw, &snap); err != nil {
		t.Fatal(err)
	}
	m, err := change.ParseSQL("rename.sql", "ALTER TABLE customer RENAME COLUMN email TO email_address;")
	if err != nil {
		t.Fatal(err)
	}
	p, err := phases.Build(&snap, m)
	if err != nil {
		t.Fatal(err)
	}
	hash, before := p.Hash, string(mustMarshal(t, p))
	if strings.Contains(before, `"binding"`) {
		t.Errorf("a plan without binding writes one: %s", before)
	}
	p.Binding = pipeline.Bind(p, loadExample(t), example)
	if p.ComputeHash() != hash {
		t.Errorf("binding changed the plan's hash")
	}
	var kinds []string
	for _, s := range p.Binding.Steps {
		if s.Kind == phases.StepPhase || s.Kind == phases.StepGate {
			kinds = append(kinds, string(s.Kind)+":"+string(s.Phase))
		}
	}
	if got, want := strings.Join(kinds, " "), "phase:expand phase:dual-write phase:backfill gate: phase:contract"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	// The binding travels in plan.json and comes back the same.
	var back phases.Plan
	if err := json.Unmarshal(mustMarshal(t, p), &back); err != nil {
		t.Fatal(err)
	}
	if steps(back.Binding) != steps(p.Binding) {
		t.Errorf("binding after a JSON round trip:\n%s", steps(back.Binding))
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTimelineGolden renders the rename plan on the example pipeline.
func TestTimelineGolden(t *testing.T) {
	b := pipeline.Bind(renamePlan(), loadExample(t), "testdata/pipeline/pipeline.yaml")
	for format, file := range map[string]string{"text": "timeline.txt", "markdown": "timeline.md", "json": "timeline.json"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			if err := pipeline.WriteTimeline(&buf, b, format); err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join("testdata", "golden", file), buf.Bytes())
		})
	}
	if err := pipeline.WriteTimeline(&bytes.Buffer{}, b, "yaml"); err == nil || !strings.Contains(err.Error(), "want text, markdown or json") {
		t.Errorf("unknown format: %v", err)
	}
}
