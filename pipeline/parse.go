package pipeline

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/schema"
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
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlError(file, err)
	}
	if len(root.Content) == 0 {
		return nil, &change.InputError{Pos: change.Pos{File: file, Line: 1, Col: 1}, Msg: "empty pipeline file: expected a mapping with 'app' and 'stages'"}
	}
	ps := &parser{file: file}
	top, err := ps.mapping(root.Content[0], "the pipeline", topKeys)
	if err != nil {
		return nil, err
	}
	p := &Pipeline{File: file, Old: phases.Old, New: phases.New}
	n, err := ps.required(top, "app", "the pipeline")
	if err != nil {
		return nil, err
	}
	if p.App, err = ps.label(n, "app"); err != nil {
		return nil, err
	}
	if strings.Contains(p.App, "/") {
		return nil, ps.errf(n, "app %q must not contain '/': application_name is app/version", p.App)
	}
	for _, v := range []struct {
		key string
		dst *string
	}{{"old", &p.Old}, {"new", &p.New}} {
		n := top.get(v.key)
		if n == nil {
			continue
		}
		if *v.dst, err = ps.label(n, v.key); err != nil {
			return nil, err
		}
		if name := p.ApplicationName(*v.dst); len(name) > maxApplicationName {
			return nil, ps.errf(n, "application_name %q is %d bytes: PostgreSQL cuts it to %d, so versions could not be told apart; shorten app or %s", name, len(name), maxApplicationName, v.key)
		}
	}
	if p.Old == p.New {
		return nil, ps.errf(top.node, "old and new are both %q: N and N+1 must have different labels", p.Old)
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
	file  string
	bakes []bakeUse
}

// bakeUse is one bake a stage or wave waits, and the node that set it.
type bakeUse struct {
	d    time.Duration
	node *yaml.Node
	what string // "wave one-box (stage prod)"
	unit string // "wave" or "stage"
}

func (ps *parser) pos(n *yaml.Node) change.Pos {
	return change.Pos{File: ps.file, Line: n.Line, Col: n.Column}
}

func (ps *parser) errf(n *yaml.Node, format string, args ...any) error {
	return &change.InputError{Pos: ps.pos(n), Msg: fmt.Sprintf(format, args...)}
}

// mapping is a YAML mapping whose keys were checked.
type mapping struct {
	node *yaml.Node
	vals map[string]*yaml.Node
}

// get returns the value of key, nil when it is absent or null.
func (m *mapping) get(key string) *yaml.Node {
	n := m.vals[key]
	if n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
		return nil
	}
	return n
}

// mapping checks that n is a mapping with only known keys, each once.
func (ps *parser) mapping(n *yaml.Node, what string, known []string) (*mapping, error) {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		return nil, ps.errf(n, "%s must be a mapping of %s", what, strings.Join(known, ", "))
	}
	m := &mapping{node: n, vals: map[string]*yaml.Node{}}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !slices.Contains(known, k.Value) {
			hint := ""
			if s := schema.Suggest(k.Value, known); s != "" {
				hint = fmt.Sprintf(" (did you mean %q?)", s)
			}
			return nil, ps.errf(k, "unknown field %q in %s%s; known: %s", k.Value, what, hint, strings.Join(known, ", "))
		}
		if _, dup := m.vals[k.Value]; dup {
			return nil, ps.errf(k, "%q appears twice in %s", k.Value, what)
		}
		m.vals[k.Value] = deref(n.Content[i+1])
	}
	return m, nil
}

// required returns the value of a key that must be there.
func (ps *parser) required(m *mapping, key, what string) (*yaml.Node, error) {
	if n, ok := m.vals[key]; ok && m.get(key) == nil {
		return nil, ps.errf(n, "%s has no value", key)
	}
	n := m.get(key)
	if n == nil {
		return nil, ps.errf(m.node, "%s needs %q", what, key)
	}
	return n, nil
}

func (ps *parser) str(n *yaml.Node, key string) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", ps.errf(n, "%s must be a string", key)
	}
	if strings.TrimSpace(n.Value) == "" {
		return "", ps.errf(n, "%s must not be empty", key)
	}
	return n.Value, nil
}

// label reads an app name or version label: it becomes part of
// application_name, where PostgreSQL turns anything but printable ASCII
// into '?', and a space would blur where the version ends.
func (ps *parser) label(n *yaml.Node, key string) (string, error) {
	s, err := ps.str(n, key)
	if err != nil {
		return "", err
	}
	for _, r := range s {
		if r <= ' ' || r > '~' {
			return "", ps.errf(n, "%s %q may hold only printable ASCII without spaces: it becomes part of application_name", key, s)
		}
	}
	return s, nil
}

func (ps *parser) duration(n *yaml.Node, key string) (time.Duration, error) {
	if n.Kind != yaml.ScalarNode {
		return 0, ps.errf(n, "%s must be a duration such as 30m, 2h or 1h30m", key)
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		return 0, ps.errf(n, "%s %q is not a duration: write it as 30m, 2h or 1h30m", key, n.Value)
	}
	if d <= 0 {
		return 0, ps.errf(n, "%s must be positive, not %s", key, n.Value)
	}
	return d, nil
}

func (ps *parser) count(n *yaml.Node, key string) (int, error) {
	var i int
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&i) != nil {
		return 0, ps.errf(n, "%s must be a whole number", key)
	}
	if i < 1 {
		return 0, ps.errf(n, "%s must be at least 1, not %d", key, i)
	}
	return i, nil
}

func (ps *parser) number(n *yaml.Node, key string) (float64, error) {
	var f float64
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") || n.Decode(&f) != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, ps.errf(n, "%s must be a number", key)
	}
	return f, nil
}

func (ps *parser) list(n *yaml.Node, key string) ([]*yaml.Node, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, ps.errf(n, "%s must be a list", key)
	}
	if len(n.Content) == 0 {
		return nil, ps.errf(n, "%s must not be empty", key)
	}
	out := make([]*yaml.Node, len(n.Content))
	for i, c := range n.Content {
		out[i] = deref(c)
	}
	return out, nil
}

func (ps *parser) stages(p *Pipeline, top *mapping) error {
	n, err := ps.required(top, "stages", "the pipeline")
	if err != nil {
		return err
	}
	items, err := ps.list(n, "stages")
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
				return ps.errf(kindNode, "stage %s is a second zeta stage (the first is %s at %s): a pipeline has at most one", st.Name, zeta.Name, zeta.Pos)
			}
			if prod != nil {
				return ps.errf(kindNode, "zeta stage %s comes after prod stage %s: the zeta stage must come before every prod stage", st.Name, prod.Name)
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
		return ps.errf(n, "no stage of kind prod: the contract gate waits for N+1 to bake in prod, so a pipeline needs at least one prod stage")
	}
	return nil
}

// stage reads one stage; it returns the node of its kind, for the checks
// on the stages' order.
func (ps *parser) stage(item *yaml.Node, names map[string]*yaml.Node) (Stage, *yaml.Node, error) {
	m, err := ps.mapping(item, "a stage", stageKeys)
	if err != nil {
		return Stage{}, nil, err
	}
	st := Stage{Pos: ps.pos(m.node)}
	n, err := ps.required(m, "name", "a stage")
	if err != nil {
		return st, nil, err
	}
	if st.Name, err = ps.str(n, "name"); err != nil {
		return st, nil, err
	}
	if first, dup := names[st.Name]; dup {
		return st, nil, ps.errf(n, "stage name %q is used twice (first at %s)", st.Name, ps.pos(first))
	}
	names[st.Name] = n
	what := "stage " + st.Name
	kindNode, err := ps.required(m, "kind", what)
	if err != nil {
		return st, nil, err
	}
	kind, err := ps.str(kindNode, "kind")
	if err != nil {
		return st, nil, err
	}
	st.Kind = StageKind(kind)
	if !slices.Contains(Kinds, st.Kind) {
		known := kindNames()
		hint := ""
		if s := schema.Suggest(kind, known); s != "" {
			hint = fmt.Sprintf(" (did you mean %q?)", s)
		}
		return st, nil, ps.errf(kindNode, "unknown stage kind %q%s; one of: %s", kind, hint, strings.Join(known, ", "))
	}
	bakeNode, firstNode := m.get("bake"), m.get("first_wave_bake")
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
	wavesNode := m.get("waves")
	if wavesNode == nil {
		if firstNode != nil {
			return st, nil, ps.errf(firstNode, "first_wave_bake needs waves: stage %s has none", st.Name)
		}
		if bakeNode == nil {
			return st, nil, ps.errf(m.node, "stage %s needs \"bake\": how long N+1 runs there, watched by the alarms, before it goes further", st.Name)
		}
		ps.bakes = append(ps.bakes, bakeUse{d: st.Bake, node: bakeNode, what: what, unit: "stage"})
		return st, kindNode, nil
	}
	items, err := ps.list(wavesNode, "waves")
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
			return st, nil, ps.errf(deref(item), "wave %s of stage %s has no bake: set bake on the wave, or bake (and first_wave_bake) on the stage", w.Name, st.Name)
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
	m, err := ps.mapping(item, what, waveKeys)
	if err != nil {
		return Wave{}, nil, err
	}
	w := Wave{Pos: ps.pos(m.node)}
	n, err := ps.required(m, "name", what)
	if err != nil {
		return w, nil, err
	}
	if w.Name, err = ps.str(n, "name"); err != nil {
		return w, nil, err
	}
	if first, dup := names[w.Name]; dup {
		return w, nil, ps.errf(n, "wave name %q is used twice in stage %s (first at %s)", w.Name, stage, ps.pos(first))
	}
	names[w.Name] = n
	if n, err = ps.required(m, "targets", "wave "+w.Name); err != nil {
		return w, nil, err
	}
	items, err := ps.list(n, "targets")
	if err != nil {
		return w, nil, err
	}
	for _, t := range items {
		s, err := ps.str(t, "a target")
		if err != nil {
			return w, nil, err
		}
		if first, dup := targets[s]; dup {
			return w, nil, ps.errf(t, "target %q is in two waves of stage %s (first at %s): it would get N+1 twice", s, stage, ps.pos(first))
		}
		targets[s] = t
		w.Targets = append(w.Targets, s)
	}
	own := m.get("bake")
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

func (ps *parser) alarms(p *Pipeline, top *mapping) error {
	n := top.get("alarms")
	if n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		return ps.errf(n, "alarms must be a list")
	}
	names := map[string]*yaml.Node{}
	for _, item := range n.Content {
		m, err := ps.mapping(item, "an alarm", alarmKeys)
		if err != nil {
			return err
		}
		a := Alarm{Pos: ps.pos(m.node)}
		nameNode, err := ps.required(m, "name", "an alarm")
		if err != nil {
			return err
		}
		if a.Name, err = ps.str(nameNode, "name"); err != nil {
			return err
		}
		if first, dup := names[a.Name]; dup {
			return ps.errf(nameNode, "alarm name %q is used twice (first at %s)", a.Name, ps.pos(first))
		}
		names[a.Name] = nameNode
		what := "alarm " + a.Name
		// Every field is required: an alarm with a guessed default would
		// watch something nobody chose.
		vals := map[string]*yaml.Node{}
		for _, k := range alarmKeys[1:] {
			if vals[k], err = ps.required(m, k, what); err != nil {
				return err
			}
		}
		if a.Query, err = ps.str(vals["query"], "query"); err != nil {
			return err
		}
		c := vals["comparison"]
		if c.Kind != yaml.ScalarNode || !slices.Contains(Comparisons, c.Value) {
			hint := ""
			if c.Kind == yaml.ScalarNode && c.Style&(yaml.FoldedStyle|yaml.LiteralStyle) != 0 {
				hint = ` (quote it: YAML reads a bare > as the start of a folded block)`
			}
			return ps.errf(c, "comparison %q is not one of %s%s", c.Value, strings.Join(Comparisons, " "), hint)
		}
		a.Comparison = c.Value
		if a.Threshold, err = ps.number(vals["threshold"], "threshold"); err != nil {
			return err
		}
		if a.DatapointsToAlarm, err = ps.count(vals["datapoints_to_alarm"], "datapoints_to_alarm"); err != nil {
			return err
		}
		if a.EvaluationPeriods, err = ps.count(vals["evaluation_periods"], "evaluation_periods"); err != nil {
			return err
		}
		if a.DatapointsToAlarm > a.EvaluationPeriods {
			return ps.errf(vals["datapoints_to_alarm"], "datapoints_to_alarm %d is more than evaluation_periods %d: the alarm could never fire", a.DatapointsToAlarm, a.EvaluationPeriods)
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
			return ps.errf(b.node, "bake %s of %s is shorter than alarm %s's evaluation window %s (%d evaluation periods of %s): the alarm could not fire before the %s is called healthy",
				FormatDuration(b.d), b.what, longest.Name, FormatDuration(win), longest.EvaluationPeriods, FormatDuration(longest.Period), b.unit)
		}
	}
	return nil
}

// deref follows a YAML alias to the node it names.
func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// yamlError turns a yaml.v3 error ("yaml: line 3: ...") into an InputError.
func yamlError(file string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 1
	var n int
	if _, scanErr := fmt.Sscanf(msg, "line %d:", &n); scanErr == nil {
		line = n
		msg = strings.TrimSpace(msg[strings.Index(msg, ":")+1:])
	}
	return &change.InputError{Pos: change.Pos{File: file, Line: line, Col: 1}, Msg: "invalid YAML: " + msg}
}
