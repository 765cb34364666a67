package fleet

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/schema"
	"github.com/phasekit/phasekit/verify"
)

// The keys each mapping of a fleet file may have.
var (
	topKeys    = []string{"waves"}
	waveKeys   = []string{"name", "targets", "max_parallel", "max_failures", "bake"}
	targetKeys = []string{"name", "dsn"}
)

// envRef is the only form a dsn may take: one environment variable.
var envRef = regexp.MustCompile(`^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$`)

// Parse checks a fleet file and returns it. Every problem is a
// *change.InputError naming the file, line and column.
func Parse(file string, data []byte) (*Fleet, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlError(file, err)
	}
	if len(root.Content) == 0 {
		return nil, &change.InputError{Pos: change.Pos{File: file, Line: 1, Col: 1}, Msg: "empty fleet file: expected a mapping with 'waves'"}
	}
	ps := &parser{file: file}
	top, err := ps.mapping(root.Content[0], "the fleet", topKeys)
	if err != nil {
		return nil, err
	}
	n, err := ps.required(top, "waves", "the fleet")
	if err != nil {
		return nil, err
	}
	items, err := ps.list(n, "waves")
	if err != nil {
		return nil, err
	}
	f := &Fleet{File: file}
	waves, targets, envs := map[string]*yaml.Node{}, map[string]*yaml.Node{}, map[string]*yaml.Node{}
	for _, item := range items {
		w, err := ps.wave(item, waves, targets, envs)
		if err != nil {
			return nil, err
		}
		f.Waves = append(f.Waves, w)
	}
	return f, nil
}

type parser struct{ file string }

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

// name reads a wave or target name: it is printed in every line about the
// wave or target, so it may not hold spaces or control characters.
func (ps *parser) name(n *yaml.Node, key string) (string, error) {
	s, err := ps.str(n, key)
	if err != nil {
		return "", err
	}
	for _, r := range s {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return "", ps.errf(n, "%s %q may not hold spaces or control characters", key, s)
		}
	}
	return s, nil
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

func (ps *parser) whole(n *yaml.Node, key string, min int) (int, error) {
	var i int
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&i) != nil {
		return 0, ps.errf(n, "%s must be a whole number", key)
	}
	if i < min {
		return 0, ps.errf(n, "%s must be at least %d, not %d", key, min, i)
	}
	return i, nil
}

func (ps *parser) duration(n *yaml.Node, key string) (time.Duration, error) {
	if n.Kind != yaml.ScalarNode {
		return 0, ps.errf(n, "%s must be a duration such as 10m, 2h or 1h30m", key)
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		return 0, ps.errf(n, "%s %q is not a duration: write it as 10m, 2h or 1h30m", key, n.Value)
	}
	if d < 0 {
		return 0, ps.errf(n, "%s must not be negative, not %s", key, n.Value)
	}
	return d, nil
}

func (ps *parser) wave(item *yaml.Node, names, targets, envs map[string]*yaml.Node) (Wave, error) {
	m, err := ps.mapping(item, "a wave", waveKeys)
	if err != nil {
		return Wave{}, err
	}
	w := Wave{Pos: ps.pos(m.node), MaxParallel: 1}
	n, err := ps.required(m, "name", "a wave")
	if err != nil {
		return w, err
	}
	if w.Name, err = ps.name(n, "name"); err != nil {
		return w, err
	}
	if first, dup := names[w.Name]; dup {
		return w, ps.errf(n, "wave name %q is used twice (first at %s)", w.Name, ps.pos(first))
	}
	names[w.Name] = n
	what := "wave " + w.Name
	if n := m.get("max_parallel"); n != nil {
		if w.MaxParallel, err = ps.whole(n, "max_parallel", 1); err != nil {
			return w, err
		}
	}
	budget := m.get("max_failures")
	if budget != nil {
		if w.MaxFailures, err = ps.whole(budget, "max_failures", 0); err != nil {
			return w, err
		}
	}
	if n := m.get("bake"); n != nil {
		if w.Bake, err = ps.duration(n, "bake"); err != nil {
			return w, err
		}
	}
	if n, err = ps.required(m, "targets", what); err != nil {
		return w, err
	}
	items, err := ps.list(n, "targets")
	if err != nil {
		return w, err
	}
	for _, item := range items {
		t, err := ps.target(item, what, targets, envs)
		if err != nil {
			return w, err
		}
		w.Targets = append(w.Targets, t)
	}
	if budget != nil && w.MaxFailures >= len(w.Targets) {
		return w, ps.errf(budget, "max_failures %d of wave %s lets all its %d target(s) fail: the wave could never stop the rollout; at most %d", w.MaxFailures, w.Name, len(w.Targets), len(w.Targets)-1)
	}
	return w, nil
}

func (ps *parser) target(item *yaml.Node, wave string, names, envs map[string]*yaml.Node) (Target, error) {
	what := "a target of " + wave
	m, err := ps.mapping(item, what, targetKeys)
	if err != nil {
		return Target{}, err
	}
	t := Target{Pos: ps.pos(m.node)}
	n, err := ps.required(m, "name", what)
	if err != nil {
		return t, err
	}
	if t.Name, err = ps.name(n, "name"); err != nil {
		return t, err
	}
	if first, dup := names[t.Name]; dup {
		return t, ps.errf(n, "target name %q is used twice (first at %s): each target is one database, rolled out once", t.Name, ps.pos(first))
	}
	names[t.Name] = n
	d, err := ps.required(m, "dsn", "target "+t.Name)
	if err != nil {
		return t, err
	}
	if t.Env, err = ps.dsn(d, t.Name); err != nil {
		return t, err
	}
	t.EnvPos = ps.pos(d)
	if first, dup := envs[t.Env]; dup {
		return t, ps.errf(d, "target %s reads its DSN from ${%s} like the target at %s: one database would be two targets", t.Name, t.Env, ps.pos(first))
	}
	envs[t.Env] = d
	return t, nil
}

// dsn reads a target's dsn, which must be one environment variable
// reference: a fleet file is shared and reviewed, and a password written in
// it would be in every copy and in version control. It returns the name.
func (ps *parser) dsn(n *yaml.Node, target string) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", ps.errf(n, "dsn of target %s must be a string: an environment variable reference such as \"${%s}\"", target, suggestEnv(target))
	}
	v := strings.TrimSpace(n.Value)
	if m := envRef.FindStringSubmatch(v); m != nil {
		return m[1], nil
	}
	want := fmt.Sprintf("write dsn: \"${%s}\" and put the DSN in that environment variable", suggestEnv(target))
	if hasPassword(v) {
		// The value is not echoed: it holds a secret.
		return "", ps.errf(n, "dsn of target %s holds a plaintext password: a fleet file must never hold one; %s (and change that password: it has been written down)", target, want)
	}
	if strings.Contains(v, "$") {
		return "", ps.errf(n, "dsn of target %s is %q: it must be exactly one environment variable reference ${NAME}, not a template or $NAME; %s", target, verify.Redact(v), want)
	}
	return "", ps.errf(n, "dsn of target %s is a literal DSN %q: a fleet file names DSNs only by environment variable reference, so that no connection secret lives in it; %s", target, verify.Redact(v), want)
}

// hasPassword reports whether a DSN, URL or key=value, carries a password.
func hasPassword(s string) bool {
	l := strings.ToLower(s)
	if strings.HasPrefix(l, "postgres://") || strings.HasPrefix(l, "postgresql://") {
		u, err := url.Parse(s)
		if err != nil {
			// Unparsable: a colon in the user part before the last @ is a password.
			rest := s[strings.Index(s, "://")+3:]
			at := strings.LastIndex(rest, "@")
			return at > 0 && strings.Contains(rest[:at], ":") || strings.Contains(l, "password=")
		}
		if _, has := u.User.Password(); has {
			return true
		}
		return u.Query().Has("password")
	}
	for _, f := range strings.Fields(l) {
		if strings.HasPrefix(f, "password=") || strings.HasPrefix(f, "password =") {
			return true
		}
	}
	return strings.Contains(l, "password")
}

// suggestEnv makes a variable name from a target name: eu1-canary becomes
// SHARD_EU1_CANARY_DSN.
func suggestEnv(target string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(target) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return "SHARD_" + b.String() + "_DSN"
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
