// Package yamlnode reads hand-written YAML files node by node, so that every
// problem is a *change.InputError naming the file, line and column: the
// fleet and pipeline files are read with it.
package yamlnode

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/schema"
)

// Parse reads a YAML document and returns its top node. A file with no
// document is an error at 1:1 saying empty, what was expected.
func Parse(file string, data []byte, empty string) (*yaml.Node, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlError(file, err)
	}
	if len(root.Content) == 0 {
		return nil, &change.InputError{Pos: change.Pos{File: file, Line: 1, Col: 1}, Msg: empty}
	}
	return root.Content[0], nil
}

// Reader reads the nodes of one file and places its errors in it.
type Reader struct {
	File string
}

// Pos is where n stands in the file.
func (r Reader) Pos(n *yaml.Node) change.Pos {
	return change.Pos{File: r.File, Line: n.Line, Col: n.Column}
}

// Errf is an *change.InputError at n.
func (r Reader) Errf(n *yaml.Node, format string, args ...any) error {
	return &change.InputError{Pos: r.Pos(n), Msg: fmt.Sprintf(format, args...)}
}

// Mapping is a YAML mapping whose keys were checked.
type Mapping struct {
	Node *yaml.Node
	vals map[string]*yaml.Node
}

// Get returns the value of key, nil when it is absent or null.
func (m *Mapping) Get(key string) *yaml.Node {
	n := m.vals[key]
	if n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
		return nil
	}
	return n
}

// Mapping checks that n is a mapping with only known keys, each once; what
// names it in errors ("a wave").
func (r Reader) Mapping(n *yaml.Node, what string, known []string) (*Mapping, error) {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		return nil, r.Errf(n, "%s must be a mapping of %s", what, strings.Join(known, ", "))
	}
	m := &Mapping{Node: n, vals: map[string]*yaml.Node{}}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !slices.Contains(known, k.Value) {
			return nil, r.Errf(k, "unknown field %q in %s%s; known: %s", k.Value, what, DidYouMean(k.Value, known), strings.Join(known, ", "))
		}
		if _, dup := m.vals[k.Value]; dup {
			return nil, r.Errf(k, "%q appears twice in %s", k.Value, what)
		}
		m.vals[k.Value] = deref(n.Content[i+1])
	}
	return m, nil
}

// Required returns the value of a key that must be there.
func (r Reader) Required(m *Mapping, key, what string) (*yaml.Node, error) {
	if n, ok := m.vals[key]; ok && m.Get(key) == nil {
		return nil, r.Errf(n, "%s has no value", key)
	}
	n := m.Get(key)
	if n == nil {
		return nil, r.Errf(m.Node, "%s needs %q", what, key)
	}
	return n, nil
}

// Str reads a string that is not blank.
func (r Reader) Str(n *yaml.Node, key string) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", r.Errf(n, "%s must be a string", key)
	}
	if strings.TrimSpace(n.Value) == "" {
		return "", r.Errf(n, "%s must not be empty", key)
	}
	return n.Value, nil
}

// List reads a list that is not empty, its items with aliases followed.
func (r Reader) List(n *yaml.Node, key string) ([]*yaml.Node, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, r.Errf(n, "%s must be a list", key)
	}
	if len(n.Content) == 0 {
		return nil, r.Errf(n, "%s must not be empty", key)
	}
	out := make([]*yaml.Node, len(n.Content))
	for i, c := range n.Content {
		out[i] = deref(c)
	}
	return out, nil
}

// Whole reads a whole number of at least min.
func (r Reader) Whole(n *yaml.Node, key string, min int) (int, error) {
	var i int
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&i) != nil {
		return 0, r.Errf(n, "%s must be a whole number", key)
	}
	if i < min {
		return 0, r.Errf(n, "%s must be at least %d, not %d", key, min, i)
	}
	return i, nil
}

// Duration reads a Go duration; examples are shown to whoever wrote it
// wrong ("10m, 2h or 1h30m"). Its sign is the caller's to check.
func (r Reader) Duration(n *yaml.Node, key, examples string) (time.Duration, error) {
	if n.Kind != yaml.ScalarNode {
		return 0, r.Errf(n, "%s must be a duration such as %s", key, examples)
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		return 0, r.Errf(n, "%s %q is not a duration: write it as %s", key, n.Value, examples)
	}
	return d, nil
}

// DidYouMean is ` (did you mean "x"?)` for the known name closest to s, or
// "" when none is close.
func DidYouMean(s string, known []string) string {
	if sug := schema.Suggest(s, known); sug != "" {
		return fmt.Sprintf(" (did you mean %q?)", sug)
	}
	return ""
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
