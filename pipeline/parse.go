package pipeline

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/phasekit/phasekit/internal/yamlnode"
	"github.com/phasekit/phasekit/phases"
)

// The keys each mapping of a pipeline file may have; JSONSchema uses the
// same lists, so the schema and the reader cannot disagree.
var (
	topKeys   = []string{"app", "old", "new", "stages", "alarms"}
	stageKeys = []string{"name", "kind", "bake", "first_wave_bake", "waves"}
	waveKeys  = []string{"name", "targets", "bake"}
	alarmKeys = []string{"name", "query", "comparison", "threshold", "datapoints_to_alarm", "evaluation_periods", "period"}
)

// maxApplicationName is PostgreSQL's limit on application_name (NAMEDATALEN-1);
// longer names are cut, and two versions could then look alike.
const maxApplicationName = 63

// Parse checks a pipeline file and returns it. Every problem is a
// *change.InputError naming the file, line and column.
func Parse(file string, data []byte) (*Pipeline, error) {
	doc, err := yamlnode.Parse(file, data, "empty pipeline file: expected a mapping with 'app' and 'stages'")
	if err != nil {
		return nil, err
	}
	ps := &parser{Reader: yamlnode.Reader{File: file}}
	top, err := ps.Mapping(doc, "the pipeline", topKeys)
	if err != nil {
		return nil, err
	}
	p := &Pipeline{File: file, Old: phases.Old, New: phases.New}
	n, err := ps.Required(top, "app", "the pipeline")
	if err != nil {
		return nil, err
	}
	if p.App, err = ps.label(n, "app"); err != nil {
		return nil, err
	}
	if strings.Contains(p.App, "/") {
		return nil, ps.Errf(n, "app %q must not contain '/': application_name is app/version", p.App)
	}
	for _, v := range []struct {
		key string
		dst *string
	}{{"old", &p.Old}, {"new", &p.New}} {
		n := top.Get(v.key)
		if n == nil {
			continue
		}
		if *v.dst, err = ps.label(n, v.key); err != nil {
			return nil, err
		}
		if name := p.ApplicationName(*v.dst); len(name) > maxApplicationName {
			return nil, ps.Errf(n, "application_name %q is %d bytes: PostgreSQL cuts it to %d, so versions could not be told apart; shorten app or %s", name, len(name), maxApplicationName, v.key)
		}
	}
	if p.Old == p.New {
		return nil, ps.Errf(top.Node, "old and new are both %q: N and N+1 must have different labels", p.Old)
	}
	if err := ps.stages(p, top); err != nil {
		return nil, err
	}
	if err := ps.alarms(p, top); err != nil {
		return nil, err
	}
	if err := ps.checkBakes(p); err != nil {
		return nil, err
	}
	return p, nil
}

// parser reads one file; it remembers where each bake came from, to point at
// it when the bake is too short for an alarm.
type parser struct {
	yamlnode.Reader
	bakes []bakeUse
}

// bakeUse is one bake a stage or wave waits, and the node that set it.
type bakeUse struct {
	d    time.Duration
	node *yaml.Node
	what string // "wave one-box (stage prod)"
	unit string // "wave" or "stage"
}

// label reads an app name or version label: it becomes part of
// application_name, where PostgreSQL turns anything but printable ASCII
// into '?', and a space would blur where the version ends.
func (ps *parser) label(n *yaml.Node, key string) (string, error) {
	s, err := ps.Str(n, key)
	if err != nil {
		return "", err
	}
	for _, r := range s {
		if r <= ' ' || r > '~' {
			return "", ps.Errf(n, "%s %q may hold only printable ASCII without spaces: it becomes part of application_name", key, s)
		}
	}
	return s, nil
}

func (ps *parser) duration(n *yaml.Node, key string) (time.Duration, error) {
	d, err := ps.Duration(n, key, "30m, 2h or 1h30m")
	if err != nil {
		return 0, err
	}
	if d <= 0 {
		return 0, ps.Errf(n, "%s must be positive, not %s", key, n.Value)
	}
	return d, nil
}

func (ps *parser) number(n *yaml.Node, key string) (float64, error) {
	var f float64
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") || n.Decode(&f) != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, ps.Errf(n, "%s must be a number", key)
	}
	return f, nil
}

func (ps *parser) stages(p *Pipeline, top *yamlnode.Mapping) error {
	n, err := ps.Required(top, "stages", "the pipeline")
	if err != nil {
		return err
	}
	items, err := ps.List(n, "stages")
	if err != nil {
		return err
	}
	names := map[string]*yaml.Node{}
	var zeta, prod *Stage
	for _, item := range items {
		st, kindNode, err := ps.stage(item, names)
		if err != nil {
			return err
		}
		switch st.Kind {
		case Zeta:
			if zeta != nil {
				return ps.Errf(kindNode, "stage %s is a second zeta stage (the first is %s at %s): a pipeline has at most one", st.Name, zeta.Name, zeta.Pos)
			}
			if prod != nil {
				return ps.Errf(kindNode, "zeta stage %s comes after prod stage %s: the zeta stage must come before every prod stage", st.Name, prod.Name)
			}
			zeta = &st
		case Prod:
			if prod == nil {
				prod = &st
			}
		}
		p.Stages = append(p.Stages, st)
	}
	if prod == nil {
		return ps.Errf(n, "no stage of kind prod: the contract gate waits for N+1 to bake in prod, so a pipeline needs at least one prod stage")
	}
	return nil
}

// stage reads one stage; it returns the node of its kind, for the checks
// on the stages' order.
func (ps *parser) stage(item *yaml.Node, names map[string]*yaml.Node) (Stage, *yaml.Node, error) {
	m, err := ps.Mapping(item, "a stage", stageKeys)
	if err != nil {
		return Stage{}, nil, err
	}
	st := Stage{Pos: ps.Pos(m.Node)}
	n, err := ps.Required(m, "name", "a stage")
	if err != nil {
		return st, nil, err
	}
	if st.Name, err = ps.Str(n, "name"); err != nil {
		return st, nil, err
	}
	if first, dup := names[st.Name]; dup {
		return st, nil, ps.Errf(n, "stage name %q is used twice (first at %s)", st.Name, ps.Pos(first))
	}
	names[st.Name] = n
	what := "stage " + st.Name
	kindNode, err := ps.Required(m, "kind", what)
	if err != nil {
		return st, nil, err
	}
	kind, err := ps.Str(kindNode, "kind")
	if err != nil {
		return st, nil, err
	}
	st.Kind = StageKind(kind)
	if !slices.Contains(Kinds, st.Kind) {
		known := kindNames()
		return st, nil, ps.Errf(kindNode, "unknown stage kind %q%s; one of: %s", kind, yamlnode.DidYouMean(kind, known), strings.Join(known, ", "))
	}
	bakeNode, firstNode := m.Get("bake"), m.Get("first_wave_bake")
	if bakeNode != nil {
		if st.Bake, err = ps.duration(bakeNode, "bake"); err != nil {
			return st, nil, err
		}
	}
	if firstNode != nil {
		if st.FirstWaveBake, err = ps.duration(firstNode, "first_wave_bake"); err != nil {
			return st, nil, err
		}
	}
	wavesNode := m.Get("waves")
	if wavesNode == nil {
		if firstNode != nil {
			return st, nil, ps.Errf(firstNode, "first_wave_bake needs waves: stage %s has none", st.Name)
		}
		if bakeNode == nil {
			return st, nil, ps.Errf(m.Node, "stage %s needs \"bake\": how long N+1 runs there, watched by the alarms, before it goes further", st.Name)
		}
		ps.bakes = append(ps.bakes, bakeUse{d: st.Bake, node: bakeNode, what: what, unit: "stage"})
		return st, kindNode, nil
	}
	items, err := ps.List(wavesNode, "waves")
	if err != nil {
		return st, nil, err
	}
	waveNames, targets := map[string]*yaml.Node{}, map[string]*yaml.Node{}
	for i, item := range items {
		w, own, err := ps.wave(item, st.Name, waveNames, targets)
		if err != nil {
			return st, nil, err
		}
		// The bake a wave waits: its own, else the first wave's default,
		// else the stage's; remember which node set it.
		use := bakeUse{d: w.Bake, node: own, what: fmt.Sprintf("wave %s (stage %s)", w.Name, st.Name), unit: "wave"}
		switch {
		case own != nil:
		case i == 0 && firstNode != nil:
			use.d, use.node = st.FirstWaveBake, firstNode
			use.what = fmt.Sprintf("wave %s (first_wave_bake of stage %s)", w.Name, st.Name)
		case bakeNode != nil:
			use.d, use.node = st.Bake, bakeNode
			use.what = fmt.Sprintf("wave %s (bake of stage %s)", w.Name, st.Name)
		default:
			return st, nil, ps.Errf(item, "wave %s of stage %s has no bake: set bake on the wave, or bake (and first_wave_bake) on the stage", w.Name, st.Name)
		}
		w.Bake = use.d
		ps.bakes = append(ps.bakes, use)
		st.Waves = append(st.Waves, w)
	}
	return st, kindNode, nil
}

// wave reads one wave of a stage; it returns the node of the wave's own
// bake, nil when the wave takes the stage's.
func (ps *parser) wave(item *yaml.Node, stage string, names, targets map[string]*yaml.Node) (Wave, *yaml.Node, error) {
	what := "a wave of stage " + stage
	m, err := ps.Mapping(item, what, waveKeys)
	if err != nil {
		return Wave{}, nil, err
	}
	w := Wave{Pos: ps.Pos(m.Node)}
	n, err := ps.Required(m, "name", what)
	if err != nil {
		return w, nil, err
	}
	if w.Name, err = ps.Str(n, "name"); err != nil {
		return w, nil, err
	}
	if first, dup := names[w.Name]; dup {
		return w, nil, ps.Errf(n, "wave name %q is used twice in stage %s (first at %s)", w.Name, stage, ps.Pos(first))
	}
	names[w.Name] = n
	if n, err = ps.Required(m, "targets", "wave "+w.Name); err != nil {
		return w, nil, err
	}
	items, err := ps.List(n, "targets")
	if err != nil {
		return w, nil, err
	}
	for _, t := range items {
		s, err := ps.Str(t, "a target")
		if err != nil {
			return w, nil, err
		}
		if first, dup := targets[s]; dup {
			return w, nil, ps.Errf(t, "target %q is in two waves of stage %s (first at %s): it would get N+1 twice", s, stage, ps.Pos(first))
		}
		targets[s] = t
		w.Targets = append(w.Targets, s)
	}
	own := m.Get("bake")
	if own != nil {
		if w.Bake, err = ps.duration(own, "bake"); err != nil {
			return w, nil, err
		}
	}
	return w, own, nil
}

func kindNames() []string {
	out := make([]string, len(Kinds))
	for i, k := range Kinds {
		out[i] = string(k)
	}
	return out
}

func (ps *parser) alarms(p *Pipeline, top *yamlnode.Mapping) error {
	n := top.Get("alarms")
	if n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		return ps.Errf(n, "alarms must be a list")
	}
	names := map[string]*yaml.Node{}
	for _, item := range n.Content {
		m, err := ps.Mapping(item, "an alarm", alarmKeys)
		if err != nil {
			return err
		}
		a := Alarm{Pos: ps.Pos(m.Node)}
		nameNode, err := ps.Required(m, "name", "an alarm")
		if err != nil {
			return err
		}
		if a.Name, err = ps.Str(nameNode, "name"); err != nil {
			return err
		}
		if first, dup := names[a.Name]; dup {
			return ps.Errf(nameNode, "alarm name %q is used twice (first at %s)", a.Name, ps.Pos(first))
		}
		names[a.Name] = nameNode
		what := "alarm " + a.Name
		// Every field is required: an alarm with a guessed default would
		// watch something nobody chose.
		vals := map[string]*yaml.Node{}
		for _, k := range alarmKeys[1:] {
			if vals[k], err = ps.Required(m, k, what); err != nil {
				return err
			}
		}
		if a.Query, err = ps.Str(vals["query"], "query"); err != nil {
			return err
		}
		c := vals["comparison"]
		if c.Kind != yaml.ScalarNode || !slices.Contains(Comparisons, c.Value) {
			hint := ""
			if c.Kind == yaml.ScalarNode && c.Style&(yaml.FoldedStyle|yaml.LiteralStyle) != 0 {
				hint = ` (quote it: YAML reads a bare > as the start of a folded block)`
			}
			return ps.Errf(c, "comparison %q is not one of %s%s", c.Value, strings.Join(Comparisons, " "), hint)
		}
		a.Comparison = c.Value
		if a.Threshold, err = ps.number(vals["threshold"], "threshold"); err != nil {
			return err
		}
		if a.DatapointsToAlarm, err = ps.Whole(vals["datapoints_to_alarm"], "datapoints_to_alarm", 1); err != nil {
			return err
		}
		if a.EvaluationPeriods, err = ps.Whole(vals["evaluation_periods"], "evaluation_periods", 1); err != nil {
			return err
		}
		if a.DatapointsToAlarm > a.EvaluationPeriods {
			return ps.Errf(vals["datapoints_to_alarm"], "datapoints_to_alarm %d is more than evaluation_periods %d: the alarm could never fire", a.DatapointsToAlarm, a.EvaluationPeriods)
		}
		if a.Period, err = ps.duration(vals["period"], "period"); err != nil {
			return err
		}
		p.Alarms = append(p.Alarms, a)
	}
	return nil
}

// checkBakes refuses a bake shorter than an alarm's evaluation window: the
// stage or wave would be called healthy before the alarm had the datapoints
// to fire. It names the alarm with the longest window, the one to beat.
func (ps *parser) checkBakes(p *Pipeline) error {
	var longest *Alarm
	for i := range p.Alarms {
		if longest == nil || p.Alarms[i].EvaluationWindow() > longest.EvaluationWindow() {
			longest = &p.Alarms[i]
		}
	}
	if longest == nil {
		return nil
	}
	win := longest.EvaluationWindow()
	for _, b := range ps.bakes {
		if b.d < win {
			return ps.Errf(b.node, "bake %s of %s is shorter than alarm %s's evaluation window %s (%d evaluation periods of %s): the alarm could not fire before the %s is called healthy",
				FormatDuration(b.d), b.what, longest.Name, FormatDuration(win), longest.EvaluationPeriods, FormatDuration(longest.Period), b.unit)
		}
	}
	return nil
}
