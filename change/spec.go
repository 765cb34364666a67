package change

import (
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
	"gopkg.in/yaml.v3"

	"github.com/phasekit/phasekit/schema"
)

// SpecChange is one entry of a change spec file, before it becomes a Change.
// Its yaml tags are the spec format (docs/change-spec.md).
type SpecChange struct {
	Kind        string            `yaml:"kind" json:"kind"`
	Table       string            `yaml:"table" json:"table"`
	Column      string            `yaml:"column,omitempty" json:"column,omitempty"`
	NewName     string            `yaml:"new_name,omitempty" json:"new_name,omitempty"`
	Type        string            `yaml:"type,omitempty" json:"type,omitempty"`
	Up          string            `yaml:"up,omitempty" json:"up,omitempty"`
	Down        string            `yaml:"down,omitempty" json:"down,omitempty"`
	Fill        string            `yaml:"fill,omitempty" json:"fill,omitempty"`
	Into        []Target          `yaml:"into,omitempty" json:"into,omitempty"`
	From        []string          `yaml:"from,omitempty" json:"from,omitempty"`
	DownEach    map[string]string `yaml:"down_each,omitempty" json:"down_each,omitempty"`
	Enum        string            `yaml:"enum,omitempty" json:"enum,omitempty"`
	Value       string            `yaml:"value,omitempty" json:"value,omitempty"`
	Replacement string            `yaml:"replacement,omitempty" json:"replacement,omitempty"`
}

// Spec is a change spec file: changes SQL cannot say (split a column, merge
// columns, a type change with custom conversions, NOT NULL with a fill value).
type Spec struct {
	Changes []SpecChange `yaml:"changes" json:"changes"`
}

// SpecKinds are the kinds a spec may use, with the fields each requires.
var SpecKinds = map[Kind][]string{
	SplitColumn:     {"table", "column", "into", "down"},
	MergeColumns:    {"table", "from", "into", "down_each"},
	ChangeType:      {"table", "column", "type", "up", "down"},
	SetNotNull:      {"table", "column", "fill"},
	RenameColumn:    {"table", "column", "new_name"},
	RemoveEnumValue: {"enum", "value", "replacement"},
	RenameEnumValue: {"enum", "value", "new_name"},
}

// ReadSpecFile reads and checks a YAML change spec.
func ReadSpecFile(path string) (*Migration, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read change spec: %w", err)
	}
	return ParseSpec(path, b)
}

// ParseSpec checks a change spec and turns it into changes. Every problem is
// an *InputError naming the file, line and column.
func ParseSpec(file string, src []byte) (*Migration, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(src, &root); err != nil {
		return nil, yamlError(file, err)
	}
	if len(root.Content) == 0 {
		return nil, &InputError{Pos: Pos{File: file, Line: 1, Col: 1}, Msg: "empty change spec: expected a mapping with a 'changes' list"}
	}
	doc := root.Content[0]
	at := func(n *yaml.Node) Pos { return Pos{File: file, Line: n.Line, Col: n.Column} }
	if doc.Kind != yaml.MappingNode {
		return nil, &InputError{Pos: at(doc), Msg: "expected a mapping with a 'changes' list"}
	}
	if err := checkKeys(doc, reflect.TypeOf(Spec{}), at); err != nil {
		return nil, err
	}
	list := mapValue(doc, "changes")
	if list == nil || list.Kind != yaml.SequenceNode || len(list.Content) == 0 {
		return nil, &InputError{Pos: at(doc), Msg: "'changes' must be a non-empty list"}
	}
	m := &Migration{File: file}
	for _, item := range list.Content {
		if item.Kind != yaml.MappingNode {
			return nil, &InputError{Pos: at(item), Msg: "each change must be a mapping with a 'kind'"}
		}
		if err := checkKeys(item, reflect.TypeOf(SpecChange{}), at); err != nil {
			return nil, err
		}
		var sc SpecChange
		if err := item.Decode(&sc); err != nil {
			return nil, &InputError{Pos: at(item), Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
		}
		c, err := specToChange(sc, item, at)
		if err != nil {
			return nil, err
		}
		// The statement a spec change stands for is its plain SQL; a kind
		// PostgreSQL has none for (remove_enum_value) cannot be replayed.
		sql, _ := NaiveSQL(c)
		c.Stmt, c.Replay = len(m.Statements), sql
		m.Statements = append(m.Statements, Statement{Pos: c.Pos, SQL: sql})
		m.Changes = append(m.Changes, c)
	}
	return m, nil
}

func specToChange(sc SpecChange, item *yaml.Node, at func(*yaml.Node) Pos) (Change, error) {
	kind := Kind(sc.Kind)
	required, ok := SpecKinds[kind]
	if !ok {
		node := mapValue(item, "kind")
		if node == nil {
			node = item
		}
		return Change{}, &InputError{Pos: at(node), Msg: fmt.Sprintf("unknown kind %q; a spec supports: %s", sc.Kind, strings.Join(specKindNames(), ", "))}
	}
	for _, f := range required {
		if mapValue(item, f) == nil {
			return Change{}, &InputError{Pos: at(item), Msg: fmt.Sprintf("%s needs '%s'", kind, f)}
		}
	}
	// Every expression is parsed now, so a typo is reported here with its
	// position and not when the migration runs.
	exprs := map[string]string{"up": sc.Up, "down": sc.Down, "fill": sc.Fill}
	for k, v := range sc.DownEach {
		exprs["down_each."+k] = v
	}
	for i, t := range sc.Into {
		exprs[fmt.Sprintf("into[%d].up", i)] = t.Up
		if t.Type != "" {
			if err := checkType(t.Type); err != nil {
				return Change{}, &InputError{Pos: at(item), Msg: fmt.Sprintf("into[%d].type: %v", i, err)}
			}
		}
	}
	for _, k := range sortedKeys(exprs) {
		if exprs[k] == "" {
			continue
		}
		if err := checkExpr(exprs[k]); err != nil {
			node := mapValue(item, strings.SplitN(k, ".", 2)[0])
			if node == nil {
				node = item
			}
			return Change{}, &InputError{Pos: at(node), Msg: fmt.Sprintf("%s: %v", k, err)}
		}
	}
	if sc.Type != "" {
		if err := checkType(sc.Type); err != nil {
			return Change{}, &InputError{Pos: at(mapValue(item, "type")), Msg: "type: " + err.Error()}
		}
	}
	c := Change{
		Kind: kind, Pos: at(item), Table: qualify(sc.Table), Column: sc.Column, NewName: sc.NewName,
		Type: sc.Type, Up: sc.Up, Down: sc.Down, Fill: sc.Fill, Into: sc.Into, From: sc.From,
		DownEach: sc.DownEach, Value: sc.Value, Replacement: sc.Replacement, Spec: true,
	}
	if sc.Enum != "" {
		c.Enum = qualify(sc.Enum)
	}
	if kind == SplitColumn {
		c.DownEach = map[string]string{sc.Column: sc.Down}
	}
	if kind == MergeColumns && len(sc.Into) != 1 {
		return Change{}, &InputError{Pos: at(item), Msg: "merge_columns needs exactly one 'into' column"}
	}
	c.SQL = fmt.Sprintf("-- %s on %s (change spec)", kind, c.Table)
	return c, nil
}

func qualify(name string) string {
	if name == "" || strings.Contains(name, ".") {
		return name
	}
	return "public." + name
}

func checkExpr(expr string) error {
	_, err := pg.Parse("SELECT " + expr)
	if err != nil {
		return fmt.Errorf("not a valid SQL expression: %w", err)
	}
	return nil
}

func checkType(t string) error {
	_, err := pg.Parse("SELECT NULL::" + t)
	if err != nil {
		return fmt.Errorf("not a valid SQL type: %w", err)
	}
	return nil
}

func specKindNames() []string {
	var out []string
	for k := range SpecKinds {
		out = append(out, string(k))
	}
	sort.Strings(out)
	return out
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func mapValue(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// checkKeys refuses keys the struct does not have, naming where they are.
func checkKeys(m *yaml.Node, t reflect.Type, at func(*yaml.Node) Pos) error {
	known := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		known[strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]] = true
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		if !known[k.Value] {
			var names []string
			for n := range known {
				names = append(names, n)
			}
			hint := ""
			if s := schema.Suggest(k.Value, names); s != "" {
				hint = fmt.Sprintf(" (did you mean %q?)", s)
			}
			return &InputError{Pos: at(k), Msg: fmt.Sprintf("unknown field %q%s", k.Value, hint)}
		}
	}
	return nil
}

// yamlError turns a yaml.v3 error ("yaml: line 3: ...") into an InputError.
func yamlError(file string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 1
	if strings.HasPrefix(msg, "line ") {
		var n int
		if _, scanErr := fmt.Sscanf(msg, "line %d:", &n); scanErr == nil {
			line = n
			msg = strings.TrimSpace(msg[strings.Index(msg, ":")+1:])
		}
	}
	return &InputError{Pos: Pos{File: file, Line: line, Col: 1}, Msg: "invalid YAML: " + msg}
}
