package phases

import (
	"fmt"
	"sort"
	"strings"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/schema"
)

// A plan runs each change's statements in the phases its recipe chose, so
// two changes of one file no longer run in file order when the second one's
// recipe starts in an earlier phase than the first one's ends. That is only
// harmless when they touch different objects. order keeps every pair that
// shares an object (a column, a table, an index, a constraint, a view, a
// type, a function, a trigger) in file order:
//
//   - a data statement (UPDATE, DELETE, MERGE, TRUNCATE) that prepares a
//     later change to the same object runs in the phase that change lands in,
//     right before it, so rows N writes in between get the same treatment
//     (DELETE FROM t WHERE deleted; ALTER TABLE t DROP COLUMN deleted);
//   - a change that must follow an earlier one landing in a later phase is
//     moved to that phase when nothing N+1 needs waits on it (drops,
//     constraints, indexes, data, comments), its statements in their order;
//   - otherwise the plan is refused, naming both statements.
//
// Objects come from the change itself and, when the statement was replayed
// on a scratch copy, from what it changed in the catalogue. The plan check
// (package plancheck) proves the outcome on PostgreSQL either way.

// unit is one planned change with what it touches.
type unit struct {
	idx  int
	c    change.Change
	f    *fragment
	objs []object
}

// object is something two changes may both touch. Kinds: 'r' a relation
// (table, view, sequence, index: one namespace in PostgreSQL), 'c' a column,
// 'k' a constraint, 'g' a trigger, 'f' a function, 'y' a type, 'o' anything
// else a DROP names. table is set for objects that belong to a table, so a
// change to the whole table overlaps them.
type object struct {
	kind  byte
	name  string
	table string
}

func (o object) String() string {
	switch o.kind {
	case 'c':
		return "column " + o.table + "." + o.name
	case 'k':
		return "constraint " + o.name + " on " + o.table
	case 'g':
		return "trigger " + o.name + " on " + o.table
	case 'f':
		return "function " + o.name
	case 'y':
		return "type " + o.name
	case 'r':
		if o.table != "" {
			return "index " + o.name
		}
		return o.name
	}
	return o.name
}

func overlaps(a, b object) bool {
	if a.kind == b.kind && a.name == b.name && a.table == b.table {
		return true
	}
	if a.kind == 'r' && a.table == "" && b.table == a.name {
		return true
	}
	if b.kind == 'r' && b.table == "" && a.table == b.name {
		return true
	}
	return false
}

// shared returns the first object a and b both touch.
func shared(a, b []object) (object, bool) {
	for _, x := range a {
		for _, y := range b {
			if overlaps(x, y) {
				if x.kind == 'r' && x.table == "" && y.table != "" {
					return y, true
				}
				return x, true
			}
		}
	}
	return object{}, false
}

func rel(name string) object               { return object{kind: 'r', name: name} }
func col(table, name string) object        { return object{kind: 'c', name: name, table: table} }
func constraint(table, name string) object { return object{kind: 'k', name: name, table: table} }

// objectsOf lists what a change touches.
func objectsOf(s *schema.Snapshot, obs *Observed, c change.Change) []object {
	var out []object
	add := func(o ...object) { out = append(out, o...) }
	cols := func(table string, names ...string) {
		for _, n := range names {
			if n != "" {
				add(col(table, n))
			}
		}
	}
	t := c.Table
	switch c.Kind {
	case change.RenameColumn:
		cols(t, c.Column, c.NewName)
	case change.RenameTable:
		add(rel(t), rel(schemaOf(t)+"."+c.NewName))
		// The view left under the old name reads every column until
		// contract drops it.
		if tb, ok := s.Table(t); ok {
			for _, cl := range tb.Columns {
				add(col(schemaOf(t)+"."+c.NewName, cl.Name))
			}
		}
	case change.ChangeType, change.DropColumn, change.SetNotNull, change.DropNotNull, change.SetDefault, change.DropDefault, change.AddColumn:
		cols(t, c.Column, c.NewName)
		if c.Kind == change.ChangeType {
			// Widening a key rebuilds the foreign keys that point at it,
			// on their own tables, until contract.
			add(referencingKeys(s, t, c.Column)...)
		}
	case change.DropTable, change.CreateTable:
		add(rel(t))
	case change.AddForeignKey:
		cols(t, c.Columns...)
		cols(c.RefTable, c.RefColumns...)
		if len(c.RefColumns) == 0 && c.RefTable != "" {
			add(rel(c.RefTable))
		}
		add(constraint(t, c.Constraint))
	case change.AddCheck:
		cols(t, c.Columns...)
		add(constraint(t, c.Constraint))
	case change.AddUnique, change.AddPrimaryKey:
		cols(t, c.Columns...)
		add(constraint(t, c.Constraint), object{kind: 'r', name: schema.QualifiedName(schemaOf(t), c.Constraint), table: t})
	case change.CreateIndex:
		cols(t, c.Columns...)
		if len(c.Columns) == 0 || strings.Contains(c.Definition, "(") && hasExpressionKey(c) {
			add(rel(t))
		}
		add(object{kind: 'r', name: schema.QualifiedName(schemaOf(t), c.Constraint), table: t})
	case change.DropIndex:
		add(indexObjects(s, c.Constraint)...)
	case change.SplitColumn, change.MergeColumns:
		cols(t, c.Column)
		cols(t, c.From...)
		for _, n := range c.Into {
			cols(t, n.Name)
		}
	case change.RenameEnumValue, change.RemoveEnumValue:
		add(object{kind: 'y', name: c.Enum})
	case change.Data:
		if t != "" {
			cols(t, c.Columns...)
		}
		for _, r := range c.Relations {
			if r != t || rowsChange(c) {
				add(rel(r))
			}
		}
	case change.DropObject:
		add(droppedObjects(s, c)...)
	case change.Reindex:
		if c.ObjectType == "TABLE" {
			add(rel(c.Object))
		} else {
			add(indexObjects(s, c.Object)...)
		}
	default: // Safe, Unknown
		if c.Constraint != "" && t != "" {
			add(constraint(t, c.Constraint))
		}
		switch c.ObjectType {
		case "COMMENT ON COLUMN":
			add(col(t, strings.TrimPrefix(c.Object, t+".")))
		case "COMMENT ON TABLE", "COMMENT ON VIEW", "COMMENT ON MATVIEW":
			add(rel(t))
		}
		if c.Enum != "" {
			add(object{kind: 'y', name: c.Enum})
		}
		if c.Kind == change.Unknown || obs == nil || obs.After == nil {
			for _, r := range c.Relations {
				add(rel(r))
			}
		}
	}
	if obs != nil && obs.Before != nil && obs.After != nil {
		add(diffObjects(obs.Before, obs.After)...)
	}
	return out
}

// referencingKeys are the foreign keys on other tables that reference
// column of table.
func referencingKeys(s *schema.Snapshot, table, column string) []object {
	tb, ok := s.Table(table)
	if !ok {
		return nil
	}
	// The constraints, not their columns: widening those too in the same
	// file is the chain the key widening plans together.
	var out []object
	for _, con := range referencedBy(tb, column) {
		out = append(out, constraint(con.Table, con.Name))
	}
	return out
}

// rowsChange tells data statements that add or remove whole rows (so every
// later change to the table sees their effect) from UPDATEs of some columns.
func rowsChange(c change.Change) bool {
	return !strings.HasPrefix(c.Reason, "updates")
}

func hasExpressionKey(c change.Change) bool {
	return strings.Contains(c.Definition, "((") || len(c.Columns) == 0
}

func schemaOf(q string) string {
	if i := strings.LastIndexByte(q, '.'); i >= 0 {
		return q[:i]
	}
	return "public"
}

// indexObjects is an index and the columns it covers, from the snapshot.
func indexObjects(s *schema.Snapshot, name string) []object {
	if s != nil {
		for _, t := range s.Tables {
			for _, ix := range t.Indexes {
				if schema.QualifiedName(t.Schema, ix.Name) == name {
					out := []object{{kind: 'r', name: name, table: t.QName()}}
					for _, c := range ix.Columns {
						if c != "" {
							out = append(out, col(t.QName(), c))
						} else {
							out = append(out, rel(t.QName()))
						}
					}
					return out
				}
			}
		}
	}
	return []object{rel(name)}
}

// droppedObjects is what a DROP of a view, function, trigger, type... names.
func droppedObjects(s *schema.Snapshot, c change.Change) []object {
	switch c.ObjectType {
	case "VIEW", "MATVIEW", "SEQUENCE", "FOREIGN TABLE":
		out := []object{rel(c.Object)}
		if s != nil {
			if v, ok := s.Views[c.Object]; ok {
				for _, d := range v.DependsOn {
					out = append(out, col(d.Relation, d.Column))
				}
			}
		}
		return out
	case "FUNCTION", "PROCEDURE", "ROUTINE", "AGGREGATE":
		name, _, _ := strings.Cut(c.Object, "(")
		return []object{{kind: 'f', name: name}}
	case "TYPE", "DOMAIN":
		return []object{{kind: 'y', name: c.Object}}
	case "TRIGGER":
		return []object{{kind: 'g', name: strings.TrimPrefix(c.Object, c.Table+"."), table: c.Table}}
	}
	if c.Table != "" {
		return []object{{kind: 'o', name: c.ObjectType + " " + c.Object, table: c.Table}}
	}
	return []object{{kind: 'o', name: c.ObjectType + " " + c.Object}}
}

// sameIndexes tells two lists of indexes hold the same names and
// definitions, in any order.
func sameIndexes(a, b []schema.Index) bool {
	if len(a) != len(b) {
		return false
	}
	defs := map[string]string{}
	for _, ix := range a {
		defs[ix.Name] = ix.Definition
	}
	for _, ix := range b {
		if d, ok := defs[ix.Name]; !ok || d != ix.Definition {
			return false
		}
	}
	return true
}

// diffObjects lists what differs between two snapshots: what a replayed
// statement changed.
func diffObjects(a, b *schema.Snapshot) []object {
	var out []object
	names := map[string]bool{}
	for k := range a.Tables {
		names[k] = true
	}
	for k := range b.Tables {
		names[k] = true
	}
	for _, k := range sortedKeys(names) {
		ta, oka := a.Tables[k]
		tb, okb := b.Tables[k]
		if !oka || !okb {
			out = append(out, rel(k))
			continue
		}
		out = append(out, diffTable(ta, tb)...)
	}
	views := map[string]bool{}
	for k := range a.Views {
		views[k] = true
	}
	for k := range b.Views {
		views[k] = true
	}
	for _, k := range sortedKeys(views) {
		va, oka := a.Views[k]
		vb, okb := b.Views[k]
		if oka && okb && va.Definition == vb.Definition && va.Materialized == vb.Materialized && strings.Join(va.Columns, ",") == strings.Join(vb.Columns, ",") {
			if !sameIndexes(va.Indexes, vb.Indexes) {
				// An index of a materialized view: the view, not what it reads.
				out = append(out, rel(k))
			}
			continue
		}
		out = append(out, rel(k))
		for _, v := range []*schema.View{va, vb} {
			if v != nil {
				for _, d := range v.DependsOn {
					out = append(out, col(d.Relation, d.Column))
				}
			}
		}
	}
	for k, ea := range a.Enums {
		if eb, ok := b.Enums[k]; !ok || strings.Join(ea.Values, ",") != strings.Join(eb.Values, ",") {
			out = append(out, object{kind: 'y', name: k})
		}
	}
	for k := range b.Enums {
		if _, ok := a.Enums[k]; !ok {
			out = append(out, object{kind: 'y', name: k})
		}
	}
	fns := map[string]bool{}
	for k, fa := range a.Functions {
		if fb, ok := b.Functions[k]; !ok || fa.Definition != fb.Definition {
			fns[k] = true
		}
	}
	for k := range b.Functions {
		if _, ok := a.Functions[k]; !ok {
			fns[k] = true
		}
	}
	for _, k := range sortedKeys(fns) {
		name, _, _ := strings.Cut(k, "(")
		out = append(out, object{kind: 'f', name: name})
	}
	return out
}

func diffTable(a, b *schema.Table) []object {
	var out []object
	tn := b.QName()
	colsA := map[string]schema.Column{}
	for _, c := range a.Columns {
		colsA[c.Name] = c
	}
	colsB := map[string]bool{}
	for _, c := range b.Columns {
		colsB[c.Name] = true
		old, ok := colsA[c.Name]
		old.Position, c.Position = 0, 0
		if !ok || old != c {
			out = append(out, col(tn, c.Name))
		}
	}
	for _, c := range a.Columns {
		if !colsB[c.Name] {
			out = append(out, col(tn, c.Name))
		}
	}
	conA := map[string]schema.Constraint{}
	for _, c := range a.Constraints {
		conA[c.Name] = c
	}
	conB := map[string]bool{}
	for _, c := range b.Constraints {
		conB[c.Name] = true
		if old, ok := conA[c.Name]; !ok || old.Definition != c.Definition || old.Validated != c.Validated {
			out = append(out, constraint(tn, c.Name))
			out = append(out, columnObjects(tn, c.Columns)...)
		}
	}
	for _, c := range a.Constraints {
		if !conB[c.Name] {
			out = append(out, constraint(tn, c.Name))
			out = append(out, columnObjects(tn, c.Columns)...)
		}
	}
	ixA := map[string]schema.Index{}
	for _, ix := range a.Indexes {
		ixA[ix.Name] = ix
	}
	ixB := map[string]bool{}
	for _, ix := range b.Indexes {
		ixB[ix.Name] = true
		if old, ok := ixA[ix.Name]; !ok || old.Definition != ix.Definition || old.Valid != ix.Valid {
			out = append(out, object{kind: 'r', name: schema.QualifiedName(b.Schema, ix.Name), table: tn})
			out = append(out, columnObjects(tn, ix.Columns)...)
		}
	}
	for _, ix := range a.Indexes {
		if !ixB[ix.Name] {
			out = append(out, object{kind: 'r', name: schema.QualifiedName(a.Schema, ix.Name), table: tn})
			out = append(out, columnObjects(tn, ix.Columns)...)
		}
	}
	trA := map[string]string{}
	for _, tr := range a.Triggers {
		trA[tr.Name] = tr.Definition + tr.Enabled
	}
	trB := map[string]bool{}
	for _, tr := range b.Triggers {
		trB[tr.Name] = true
		if trA[tr.Name] != tr.Definition+tr.Enabled {
			out = append(out, object{kind: 'g', name: tr.Name, table: tn})
		}
	}
	for _, tr := range a.Triggers {
		if !trB[tr.Name] {
			out = append(out, object{kind: 'g', name: tr.Name, table: tn})
		}
	}
	return out
}

// columnObjects lists columns; an expression column ("") stands for the
// whole table.
func columnObjects(table string, names []string) []object {
	var out []object
	for _, n := range names {
		if n == "" {
			out = append(out, rel(table))
		} else {
			out = append(out, col(table, n))
		}
	}
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// span is the first and last phase a fragment runs something in; ok is
// false for an empty fragment (a no-op).
func (f *fragment) span() (first, last int, ok bool) {
	first, last = len(Order), -1
	for i, k := range Order {
		if len(f.steps[k]) > 0 {
			first, last = min(first, i), max(last, i)
		}
	}
	if len(f.backfills) > 0 {
		b := Backfill.Index()
		first, last = min(first, b), max(last, b)
	}
	if len(f.syncs) > 0 {
		// The trigger exists from dual-write until contract drops it.
		first, last = min(first, DualWrite.Index()), max(last, Contract.Index())
	}
	if len(f.late) > 0 {
		first, last = min(first, Contract.Index()), max(last, Contract.Index())
	}
	return first, last, last >= 0
}

// shift moves every statement of phases before to into phase to, keeping
// their order and placing them before the statements already there.
func (f *fragment) shift(to int) {
	var moved []Statement
	irreversible := false
	for i := 0; i < to; i++ {
		k := Order[i]
		moved = append(moved, f.steps[k]...)
		irreversible = irreversible || f.irreversible[k]
		delete(f.steps, k)
		delete(f.irreversible, k)
	}
	if len(moved) == 0 {
		return
	}
	k := Order[to]
	f.steps[k] = append(moved, f.steps[k]...)
	f.irreversible[k] = f.irreversible[k] || irreversible
}

// deferrable tells changes that give N+1 nothing it needs before contract,
// so they may run later than their recipe's first phase: its kind says so,
// and its plan keeps no column in sync, fills none, and has no step that is
// early for N+1's sake (a dropped column's DROP NOT NULL).
func deferrable(u *unit) bool {
	if len(u.f.syncs) > 0 || len(u.f.backfills) > 0 || u.f.needsEarly {
		return false
	}
	return recipeOf(u.c.Kind).Moves(u.c).Deferrable
}

func travels(c change.Change) bool          { return recipeOf(c.Kind).Moves(c).Travels }
func readsData(c change.Change) bool        { return recipeOf(c.Kind).Moves(c).ReadsData }
func commutesWithData(c change.Change) bool { return recipeOf(c.Kind).Moves(c).CommutesWithData }

// commutesWith reports whether c may run before the earlier data statement
// d. A default is indifferent to the rows already there, but not to the
// rows d writes into its table: they take the default of the moment d runs
// (an INSERT leaving the column out, an UPDATE ... SET c = DEFAULT).
func commutesWith(c, d change.Change) bool {
	if !commutesWithData(c) {
		return false
	}
	if (c.Kind == change.SetDefault || c.Kind == change.DropDefault) && d.Table == c.Table && d.TakesDefaults {
		return false
	}
	return true
}

// order applies the rules above until nothing moves.
func order(units []*unit) error {
	for changed, rounds := true, 0; changed && rounds <= len(units)*len(Order); rounds++ {
		changed = false
		// Data statements travel with the latest later change they prepare.
		for i, u := range units {
			if !travels(u.c) {
				continue
			}
			first, _, ok := u.f.span()
			if !ok {
				continue
			}
			target, by := first, -1
			for j := i + 1; j < len(units); j++ {
				if !readsData(units[j].c) {
					continue
				}
				if _, ok := shared(u.objs, units[j].objs); !ok {
					continue
				}
				if _, last, ok := units[j].f.span(); ok && last > target {
					target, by = last, j
				}
			}
			if by >= 0 {
				u.f.shift(target)
				u.f.findings = append(u.f.findings, Finding{Rule: RuleDataTravels, Severity: Info, Pos: u.c.Pos,
					Message: fmt.Sprintf("runs in %s, right before the %s at %s it prepares, so rows N writes until then are included", Order[target], units[by].c.Kind, units[by].c.Pos)})
				changed = true
			}
		}
		// A change runs no earlier than every earlier change it shares an
		// object with.
		for j, u := range units {
			first, _, ok := u.f.span()
			if !ok {
				continue
			}
			floor, by, what := first, -1, object{}
			for i := 0; i < j; i++ {
				if units[i].c.Kind == change.Data && commutesWith(u.c, units[i].c) {
					continue
				}
				for _, x := range units[i].objs {
					for _, y := range u.objs {
						if !overlaps(x, y) {
							continue
						}
						if land, ok := units[i].landing(x); ok && land > floor {
							floor, by, what = land, i, x
						}
					}
				}
			}
			if by < 0 {
				continue
			}
			if !deferrable(u) {
				prev := units[by]
				return &PlanError{Pos: u.c.Pos, Msg: fmt.Sprintf("this %s touches %s, which the %s at %s changes too; that change is only complete in %s, and this one cannot wait that long because N+1 needs it earlier: plan them in separate migrations (this one after the first one's contract)",
					kindWords(u.c), what, kindWords(prev.c), prev.c.Pos, Order[floor])}
			}
			u.f.shift(floor)
			u.f.findings = append(u.f.findings, Finding{Rule: RuleDeferred, Severity: Info, Pos: u.c.Pos,
				Message: fmt.Sprintf("runs in %s, not %s: it touches %s, which the %s at %s changes in %s", Order[floor], Order[first], what, kindWords(units[by].c), units[by].c.Pos, Order[floor])})
			if note := deferredNote(u.c, Order[floor]); note != "" {
				u.f.deploy = note
			}
			changed = true
		}
	}
	return nil
}

// landing is the phase in which the change leaves o in its final shape:
// the last phase it runs something in, except for the new name of a renamed
// table, which is final from expand on (only the compatibility view under
// the old name waits for contract).
func (u *unit) landing(o object) (int, bool) {
	first, last, ok := u.f.span()
	if !ok {
		return 0, false
	}
	if u.c.Kind == change.RenameTable && o.kind == 'r' && o.name == schemaOf(u.c.Table)+"."+u.c.NewName {
		return first, true
	}
	return last, true
}

// deferredNote is what N+1 must know about a change that runs later than
// its recipe would have it.
func deferredNote(c change.Change, phase Kind) string {
	switch c.Kind {
	case change.DropNotNull:
		return fmt.Sprintf("N+1 may write NULL into %s.%s only after %s", c.Table, c.Column, phase)
	case change.SetDefault:
		return fmt.Sprintf("N+1 may rely on the new default of %s.%s only after %s", c.Table, c.Column, phase)
	case change.ChangeType:
		return fmt.Sprintf("N+1 may rely on %s.%s being %s only after %s", c.Table, c.Column, c.Type, phase)
	}
	return ""
}

// kindWords names a change for messages: "rename_column statement".
func kindWords(c change.Change) string {
	return strings.ReplaceAll(string(c.Kind), "_", " ") + " statement"
}

// SchemaDiff names what differs between two snapshots: the objects a
// statement replayed between them changed.
func SchemaDiff(a, b *schema.Snapshot) []string {
	var out []string
	for _, o := range diffObjects(a, b) {
		out = append(out, o.String())
	}
	return out
}
