package phases

// Binding ties a plan's phases to a deploy pipeline: the timeline a release
// follows, from the first phase through every stage and wave of the N+1
// rollout to the contract gate and contract. It is data, like the plan;
// package pipeline builds it (pipeline.Bind) and renders it.
type Binding struct {
	// Pipeline is the pipeline file the plan was bound to.
	Pipeline string `json:"pipeline"`
	// App is the application's name; its instances connect with
	// application_name "App/version".
	App string `json:"app"`
	// Old and New are the labels of N and N+1 ("v41", "v42"); Versions in
	// the steps use them.
	Old string `json:"old"`
	New string `json:"new"`
	// Steps are the timeline, in the order they happen.
	Steps []BindingStep `json:"steps"`
}

// StepKind is the kind of a timeline step.
type StepKind string

// Timeline step kinds.
const (
	StepPhase  StepKind = "phase"  // run one phase of the plan on the database
	StepDeploy StepKind = "deploy" // roll N+1 out to a stage or a wave
	StepBake   StepKind = "bake"   // wait with the alarms watched before going on
	StepGate   StepKind = "gate"   // the checks that must pass before contract
)

// BindingStep is one step of the timeline.
type BindingStep struct {
	Kind StepKind `json:"kind"`
	// Phase is the phase a "phase" step runs.
	Phase Kind `json:"phase,omitempty"`
	// Stage and Wave say where a deploy or bake step happens (Wave is empty
	// for a stage without waves).
	Stage string `json:"stage,omitempty"`
	Wave  string `json:"wave,omitempty"`
	Title string `json:"title"`
	// When says, as a sentence, when the step may happen.
	When string `json:"when"`
	// Bake is how long a bake step waits, as a Go duration ("1h30m").
	Bake string `json:"bake,omitempty"`
	// Versions are the app versions (Old/New labels) that must work
	// against the database during the step.
	Versions []string `json:"versions"`
}
