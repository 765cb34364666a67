package fleet

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/phasekit/phasekit/internal/dbconn"
	"github.com/phasekit/phasekit/internal/yamlnode"
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
	doc, err := yamlnode.Parse(file, data, "empty fleet file: expected a mapping with 'waves'")
	if err != nil {
		return nil, err
	}
	ps := &parser{yamlnode.Reader{File: file}}
	top, err := ps.Mapping(doc, "the fleet", topKeys)
	if err != nil {
		return nil, err
	}
	n, err := ps.Required(top, "waves", "the fleet")
	if err != nil {
		return nil, err
	}
	items, err := ps.List(n, "waves")
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

type parser struct{ yamlnode.Reader }

// name reads a wave or target name: it is printed in every line about the
// wave or target, so it may not hold spaces or control characters.
func (ps *parser) name(n *yaml.Node, key string) (string, error) {
	s, err := ps.Str(n, key)
	if err != nil {
		return "", err
	}
	for _, r := range s {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return "", ps.Errf(n, "%s %q may not hold spaces or control characters", key, s)
		}
	}
	return s, nil
}

// duration reads a bake; 0 is no wait.
func (ps *parser) duration(n *yaml.Node, key string) (time.Duration, error) {
	d, err := ps.Duration(n, key, "10m, 2h or 1h30m")
	if err != nil {
		return 0, err
	}
	if d < 0 {
		return 0, ps.Errf(n, "%s must not be negative, not %s", key, n.Value)
	}
	return d, nil
}

func (ps *parser) wave(item *yaml.Node, names, targets, envs map[string]*yaml.Node) (Wave, error) {
	m, err := ps.Mapping(item, "a wave", waveKeys)
	if err != nil {
		return Wave{}, err
	}
	w := Wave{Pos: ps.Pos(m.Node), MaxParallel: 1}
	n, err := ps.Required(m, "name", "a wave")
	if err != nil {
		return w, err
	}
	if w.Name, err = ps.name(n, "name"); err != nil {
		return w, err
	}
	if first, dup := names[w.Name]; dup {
		return w, ps.Errf(n, "wave name %q is used twice (first at %s)", w.Name, ps.Pos(first))
	}
	names[w.Name] = n
	what := "wave " + w.Name
	if n := m.Get("max_parallel"); n != nil {
		if w.MaxParallel, err = ps.Whole(n, "max_parallel", 1); err != nil {
			return w, err
		}
	}
	budget := m.Get("max_failures")
	if budget != nil {
		if w.MaxFailures, err = ps.Whole(budget, "max_failures", 0); err != nil {
			return w, err
		}
	}
	if n := m.Get("bake"); n != nil {
		if w.Bake, err = ps.duration(n, "bake"); err != nil {
			return w, err
		}
	}
	if n, err = ps.Required(m, "targets", what); err != nil {
		return w, err
	}
	items, err := ps.List(n, "targets")
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
		return w, ps.Errf(budget, "max_failures %d of wave %s lets all its %d target(s) fail: the wave could never stop the rollout; at most %d", w.MaxFailures, w.Name, len(w.Targets), len(w.Targets)-1)
	}
	return w, nil
}

func (ps *parser) target(item *yaml.Node, wave string, names, envs map[string]*yaml.Node) (Target, error) {
	what := "a target of " + wave
	m, err := ps.Mapping(item, what, targetKeys)
	if err != nil {
		return Target{}, err
	}
	t := Target{Pos: ps.Pos(m.Node)}
	n, err := ps.Required(m, "name", what)
	if err != nil {
		return t, err
	}
	if t.Name, err = ps.name(n, "name"); err != nil {
		return t, err
	}
	if first, dup := names[t.Name]; dup {
		return t, ps.Errf(n, "target name %q is used twice (first at %s): each target is one database, rolled out once", t.Name, ps.Pos(first))
	}
	names[t.Name] = n
	d, err := ps.Required(m, "dsn", "target "+t.Name)
	if err != nil {
		return t, err
	}
	if t.Env, err = ps.dsn(d, t.Name); err != nil {
		return t, err
	}
	t.EnvPos = ps.Pos(d)
	if first, dup := envs[t.Env]; dup {
		return t, ps.Errf(d, "target %s reads its DSN from ${%s} like the target at %s: one database would be two targets", t.Name, t.Env, ps.Pos(first))
	}
	envs[t.Env] = d
	return t, nil
}

// dsn reads a target's dsn, which must be one environment variable
// reference: a fleet file is shared and reviewed, and a password written in
// it would be in every copy and in version control. It returns the name.
func (ps *parser) dsn(n *yaml.Node, target string) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", ps.Errf(n, "dsn of target %s must be a string: an environment variable reference such as \"${%s}\"", target, suggestEnv(target))
	}
	v := strings.TrimSpace(n.Value)
	if m := envRef.FindStringSubmatch(v); m != nil {
		return m[1], nil
	}
	want := fmt.Sprintf("write dsn: \"${%s}\" and put the DSN in that environment variable", suggestEnv(target))
	if hasPassword(v) {
		// The value is not echoed: it holds a secret.
		return "", ps.Errf(n, "dsn of target %s holds a plaintext password: a fleet file must never hold one; %s (and change that password: it has been written down)", target, want)
	}
	if strings.Contains(v, "$") {
		return "", ps.Errf(n, "dsn of target %s is %q: it must be exactly one environment variable reference ${NAME}, not a template or $NAME; %s", target, dbconn.Redact(v), want)
	}
	return "", ps.Errf(n, "dsn of target %s is a literal DSN %q: a fleet file names DSNs only by environment variable reference, so that no connection secret lives in it; %s", target, dbconn.Redact(v), want)
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
