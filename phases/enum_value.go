package phases

import (
	"fmt"
	"sort"
	"strings"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/schema"
)

func init() {
	register(change.RenameEnumValue, enumValue{})
	register(change.RemoveEnumValue, enumValue{})
}

// planEnumValue renames or removes an enum label.
//
// Rename: RENAME VALUE is instant and keeps the type (and so every prepared
// statement that uses it), but breaks N, which writes and compares the old
// label. So it runs in contract, once N is gone; N+1 must read both labels
// and write the old one until then.
//
// Remove: PostgreSQL cannot drop a label. Expand creates the enum as it will
// be in phasekit's schema; every column of the old type gets a hidden shadow
// of the new type, kept equal through the label mapping by the dual-write
// trigger and a backfill; contract swaps each column, drops the old type and
// moves the new one into its place under the old name.
func planEnumValue(s *schema.Snapshot, c change.Change) (*fragment, error) {
	e, err := lookupEnum(s, c)
	if err != nil {
		return nil, err
	}
	if c.Kind == change.RenameEnumValue {
		return planRenameEnumValue(s, e, c)
	}
	if c.Replacement == c.Value || !contains(e.Values, c.Replacement) {
		return nil, &PlanError{Pos: c.Pos, Msg: fmt.Sprintf("replacement %q must be another value of %s (values: %s)", c.Replacement, c.Enum, strings.Join(e.Values, ", "))}
	}
	mapTo := c.Replacement
	var labels []string
	for _, v := range e.Values {
		if v != c.Value {
			labels = append(labels, v)
		}
	}
	oldType := schema.QualifiedName(e.Schema, e.Name)
	newType := schema.QualifiedName(SyncSchema, e.Name)
	if _, taken := s.Enums[newType]; taken {
		return nil, &PlanError{Pos: c.Pos, Msg: fmt.Sprintf("type %s already exists: another plan on %s is in flight", newType, oldType)}
	}
	for _, fn := range s.Functions {
		if strings.Contains(fn.Args, oldType) {
			return nil, &PlanError{Pos: c.Pos, Msg: fmt.Sprintf("function %s.%s(%s) takes %s: the old type cannot be dropped under it; change the function first", fn.Schema, fn.Name, fn.Args, oldType)}
		}
	}

	quoted := make([]string, len(labels))
	for i, l := range labels {
		quoted[i] = change.QuoteLiteral(l)
	}
	oldQuoted := make([]string, len(e.Values))
	for i, l := range e.Values {
		oldQuoted[i] = change.QuoteLiteral(l)
	}
	f := newFragment()
	f.add(Expand, ddl("", LockNone, "phasekit's own schema, home of the new type until contract",
		"CREATE SCHEMA IF NOT EXISTS "+q(SyncSchema)))
	f.add(Expand, ddl("", LockNone, "the enum as it will be, beside the old one",
		fmt.Sprintf("CREATE TYPE %s AS ENUM (%s)", qq(newType), strings.Join(quoted, ", ")),
		fmt.Sprintf("DROP TYPE IF EXISTS %s", qq(newType))))

	for _, tc := range enumColumns(s, oldType) {
		t, col := tc.table, tc.col
		if strings.HasSuffix(col.Type, "[]") {
			return nil, &PlanError{Pos: c.Pos, Msg: fmt.Sprintf("column %s.%s is an array of %s: not supported yet", t.QName(), col.Name, oldType)}
		}
		shadow := shadowName(col.Name)
		up := fmt.Sprintf("(CASE %s::text WHEN %s THEN %s ELSE %s::text END)::%s", q(col.Name), change.QuoteLiteral(c.Value), change.QuoteLiteral(mapTo), q(col.Name), qq(newType))
		down := fmt.Sprintf("%s::text::%s", q(shadow), qq(oldType))
		newDefault := ""
		if col.Default != "" {
			if newDefault, err = change.RewriteEnumLiteral(col.Default, oldType, newType, c.Value, mapTo); err != nil {
				return nil, &PlanError{Pos: c.Pos, Msg: fmt.Sprintf("default of %s.%s: %v", t.QName(), col.Name, err)}
			}
		}
		cf, err := planReshape(s, c, reshape{
			table: t, olds: []*schema.Column{col}, hidden: true, newDefault: newDefault, noArchive: true,
			news: []change.Target{{Name: shadow, Type: qq(newType), Up: up}},
			down: map[string]string{col.Name: down},
		})
		if err != nil {
			return nil, err
		}
		f.merge(cf)
	}
	f.add(Contract, ddl(oldType, LockAccessExclusive, "no column uses the old type any more",
		fmt.Sprintf("DROP TYPE %s", qq(oldType)),
		fmt.Sprintf("CREATE TYPE %s AS ENUM (%s)", qq(oldType), strings.Join(oldQuoted, ", "))))
	f.add(Contract, ddl(oldType, LockAccessExclusive, "the new type takes the old one's place and name",
		fmt.Sprintf("ALTER TYPE %s SET SCHEMA %s", qq(newType), q(e.Schema)),
		fmt.Sprintf("ALTER TYPE %s SET SCHEMA %s", qq(oldType), q(SyncSchema))))
	f.deploy = fmt.Sprintf("N+1 never writes %q to %s; at contract rows holding it hold %q", c.Value, oldType, c.Replacement)
	f.findings = append(f.findings, Finding{Rule: RuleEnumRemove, Severity: Warning,
		Message: fmt.Sprintf("contract replaces type %s with a new one: sessions that prepared statements using it must re-prepare (reconnect, or DISCARD ALL) after contract", oldType)})
	return f, nil
}

func planRenameEnumValue(s *schema.Snapshot, e *schema.Enum, c change.Change) (*fragment, error) {
	if contains(e.Values, c.NewName) {
		return nil, &PlanError{Pos: c.Pos, Msg: fmt.Sprintf("enum %s already has a value %q", c.Enum, c.NewName)}
	}
	typ := qq(schema.QualifiedName(e.Schema, e.Name))
	f := newFragment()
	f.add(Contract, ddl(schema.QualifiedName(e.Schema, e.Name), LockAccessExclusive, "instant, catalogue only; every row holding the old label now reads the new one",
		fmt.Sprintf("ALTER TYPE %s RENAME VALUE %s TO %s", typ, change.QuoteLiteral(c.Value), change.QuoteLiteral(c.NewName)),
		fmt.Sprintf("ALTER TYPE %s RENAME VALUE %s TO %s", typ, change.QuoteLiteral(c.NewName), change.QuoteLiteral(c.Value))))
	for _, tc := range enumColumns(s, schema.QualifiedName(e.Schema, e.Name)) {
		f.touches = append(f.touches, tc.table.QName())
	}
	f.deploy = fmt.Sprintf("N+1 reads both %q and %q from %s; it writes %q until contract and %q after", c.Value, c.NewName, typ, c.Value, c.NewName)
	return f, nil
}

type tableColumn struct {
	table *schema.Table
	col   *schema.Column
}

// enumColumns lists every table column of the given type, in a stable order.
func enumColumns(s *schema.Snapshot, typ string) []tableColumn {
	var out []tableColumn
	for _, name := range s.TableNames() {
		t := s.Tables[name]
		if t.PartitionOf != "" {
			continue // a partition's columns follow its parent
		}
		for i := range t.Columns {
			if strings.TrimSuffix(t.Columns[i].Type, "[]") == typ {
				out = append(out, tableColumn{t, &t.Columns[i]})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].table.QName() < out[j].table.QName() })
	return out
}

func lookupEnum(s *schema.Snapshot, c change.Change) (*schema.Enum, error) {
	e, ok := s.Enums[c.Enum]
	if !ok {
		var names []string
		for k := range s.Enums {
			names = append(names, k)
		}
		msg := fmt.Sprintf("enum type %s does not exist", c.Enum)
		if sug := schema.Suggest(c.Enum, names); sug != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", sug)
		}
		return nil, &PlanError{Pos: c.Pos, Msg: msg}
	}
	if !contains(e.Values, c.Value) {
		return nil, &PlanError{Pos: c.Pos, Msg: fmt.Sprintf("enum %s has no value %q (values: %s)", c.Enum, c.Value, strings.Join(e.Values, ", "))}
	}
	return e, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// enumValue: ALTER TYPE ... RENAME VALUE, and the change spec's
// remove_enum_value: one family, planned by planEnumValue.
type enumValue struct{ recipe }

var _ Recipe = enumValue{}

func (enumValue) Plan(s *schema.Snapshot, c change.Change) (*fragment, error) {
	return planEnumValue(s, c)
}

func (enumValue) Lint(c change.Change) []Finding {
	if c.Kind == change.RemoveEnumValue {
		return []Finding{lintFinding(RuleEnumRemove, fmt.Sprintf("removes value %q from %s", c.Value, c.Enum))}
	}
	return []Finding{lintFinding(RuleEnumRename, fmt.Sprintf("renames value %q of %s to %q", c.Value, c.Enum, c.NewName))}
}

// Moves: a rename only runs in contract anyway; a removal has a shadow.
func (enumValue) Moves(c change.Change) Moves {
	return Moves{Deferrable: c.Kind == change.RenameEnumValue, ReadsData: true}
}

func (enumValue) OldShapes(c change.Change) ([]Shape, []string) {
	return nil, []string{fmt.Sprintf("enum value %q of %s is a literal, not a name: statements using it are not looked for", c.Value, c.Enum)}
}

func (enumValue) Title(c change.Change) string {
	if c.Kind == change.RemoveEnumValue {
		return fmt.Sprintf("Remove value %q from %s", c.Value, c.Enum)
	}
	return fmt.Sprintf("Rename value %q of %s to %q", c.Value, c.Enum, c.NewName)
}
