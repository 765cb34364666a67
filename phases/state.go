package phases

import (
	"fmt"
	"slices"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/schema"
)

// migrationState is what planning one change needs to know about the others
// of the same migration: tables and columns it creates (no running code uses
// them yet), indexes dropped and created again under the same name, objects
// dropped and created again.
type migrationState struct {
	base *schema.Snapshot
	all  []change.Change
	opts Options
	// createdTables and createdColumns ("schema.table.column") are created
	// by changes planned so far.
	createdTables  map[string]bool
	createdColumns map[string]bool
	// recreatedBy maps a DROP INDEX to the later CREATE INDEX of the same
	// name; recreates maps that CREATE INDEX back to the DROP.
	recreatedBy, recreates map[int]int
	// replaced marks DROP statements whose object a later statement creates
	// again: a replacement, not a removal.
	replaced map[int]bool
	// renamedTo holds the new names of tables renamed by changes planned so
	// far, with the position of the rename.
	renamedTo map[string]change.Pos
	// droppedAt maps a change of a column's type to the later DROP
	// COLUMN of the same column.
	droppedAt map[int]change.Pos
	// keyAfterRef maps the type change of a key to an earlier type change
	// of a column whose foreign key references it, with that key's name.
	keyAfterRef map[int]refRetype
}

// refRetype is an earlier type change of a referencing column.
type refRetype struct {
	pos change.Pos
	fk  string
}

func newMigrationState(base *schema.Snapshot, all []change.Change, opts Options) *migrationState {
	st := &migrationState{base: base, all: all, opts: opts,
		createdTables: map[string]bool{}, createdColumns: map[string]bool{},
		recreatedBy: map[int]int{}, recreates: map[int]int{}, replaced: map[int]bool{}, renamedTo: map[string]change.Pos{}, droppedAt: map[int]change.Pos{}, keyAfterRef: map[int]refRetype{}}
	for i, c := range all {
		if obs := opts.observed(i); obs != nil && obs.NoOp {
			continue
		}
		switch c.Kind {
		case change.DropIndex:
			for j := i + 1; j < len(all); j++ {
				d := all[j]
				if d.Kind == change.CreateIndex && schema.QualifiedName(schemaOf(d.Table), d.Constraint) == c.Constraint {
					if _, taken := st.recreates[j]; !taken {
						st.recreatedBy[i], st.recreates[j] = j, i
					}
					break
				}
				if touchesIndexName(d, c.Constraint) {
					break
				}
			}
		case change.DropObject:
			for j := i + 1; j < len(all); j++ {
				if recreatesObject(opts.observed(j), c) {
					st.replaced[i] = true
					break
				}
			}
		case change.ChangeType:
			st.laterKeyRetypes(i)
			for j := i + 1; j < len(all); j++ {
				if d := all[j]; d.Table == c.Table && d.Column == c.Column && (d.Kind == change.DropColumn || d.Kind == change.RenameColumn) {
					if d.Kind == change.DropColumn {
						st.droppedAt[i] = d.Pos
					}
					break
				}
			}
		}
	}
	return st
}

// laterKeyRetypes records the type changes, after change i, of a key that
// a foreign key on change i's column references.
func (st *migrationState) laterKeyRetypes(i int) {
	c := st.all[i]
	t, ok := st.base.Table(c.Table)
	if !ok {
		return
	}
	for _, fk := range t.Constraints {
		if fk.Type != schema.ForeignKey || !slices.Contains(fk.Columns, c.Column) {
			continue
		}
		for j := i + 1; j < len(st.all); j++ {
			d := st.all[j]
			if d.Kind != change.ChangeType || !slices.Contains(fk.RefColumns, d.Column) {
				continue
			}
			if rt, ok := st.base.Table(d.Table); ok && rt.QName() == fk.RefTable {
				if _, seen := st.keyAfterRef[j]; !seen {
					st.keyAfterRef[j] = refRetype{pos: c.Pos, fk: fk.Name}
				}
			}
		}
	}
}

// touchesIndexName tells a change that names index name other than by
// creating it (a rename, another drop): the drop and a later create are then
// not one replacement.
func touchesIndexName(c change.Change, name string) bool {
	return (c.Kind == change.DropIndex && c.Constraint == name) || (c.Kind == change.Reindex && c.Object == name)
}

// recreatesObject tells whether a replayed change creates the object a
// DropObject change drops.
func recreatesObject(obs *Observed, drop change.Change) bool {
	if obs == nil || obs.Before == nil || obs.After == nil {
		return false
	}
	switch drop.ObjectType {
	case "VIEW", "MATVIEW":
		_, before := obs.Before.Views[drop.Object]
		_, after := obs.After.Views[drop.Object]
		return !before && after
	case "FUNCTION", "PROCEDURE":
		for k, f := range obs.After.Functions {
			if _, before := obs.Before.Functions[k]; !before && sameFunction(schema.QualifiedName(f.Schema, f.Name), f.Args, drop.Object) {
				return true
			}
		}
	case "TYPE", "DOMAIN":
		_, before := obs.Before.Enums[drop.Object]
		_, after := obs.After.Enums[drop.Object]
		return !before && after
	case "TRIGGER":
		t, ok := obs.After.Tables[drop.Table]
		if !ok {
			return false
		}
		name := drop.Object[len(drop.Table)+1:]
		for _, tr := range t.Triggers {
			if tr.Name == name {
				if tb, ok := obs.Before.Tables[drop.Table]; ok {
					for _, old := range tb.Triggers {
						if old.Name == name {
							return false
						}
					}
				}
				return true
			}
		}
	}
	return false
}

// sameFunction compares a function's name and identity arguments with what
// a DROP FUNCTION named ("schema.name" or "schema.name(args)").
func sameFunction(name, args, dropped string) bool {
	return dropped == name || dropped == name+"("+args+")"
}

// after records what a planned change creates.
func (st *migrationState) after(c change.Change) {
	switch c.Kind {
	case change.CreateTable:
		st.createdTables[c.Table] = true
	case change.AddColumn:
		st.createdColumns[c.Table+"."+c.Column] = true
	case change.RenameColumn:
		if st.createdColumns[c.Table+"."+c.Column] {
			st.createdColumns[c.Table+"."+c.NewName] = true
		}
	case change.RenameTable:
		if st.createdTables[c.Table] {
			st.createdTables[schemaOf(c.Table)+"."+c.NewName] = true
		}
		st.renamedTo[schemaOf(c.Table)+"."+c.NewName] = c.Pos
	}
}

// schemaKinds are the kinds that change only the catalogue: when the replay
// shows they wrote nothing, there is nothing to plan.
func schemaKind(k change.Kind) bool {
	return k != change.Data && k != change.Unknown && k != change.SessionSetting
}

// plan plans one change against the schema before it.
func (st *migrationState) plan(s *schema.Snapshot, obs *Observed, idx int, c change.Change) (*fragment, error) {
	if obs != nil && obs.NoOp && schemaKind(c.Kind) {
		f := newFragment()
		f.findings = append(f.findings, Finding{Rule: RuleNoOp, Severity: Info,
			Message: "changes nothing on this schema (PostgreSQL wrote nothing when it ran on the scratch copy): not planned"})
		return f, nil
	}
	if c.Kind == change.Unknown && c.ObjectType == "DO" {
		// Run opaquely in expand, its DDL could take the locks and break
		// N the way the catalogue's recipes exist to avoid: only what the
		// replay saw it do may let it run as written.
		return planObservedDo(obs, c)
	}
	if j, ok := st.recreatedBy[idx]; ok {
		f := newFragment()
		f.findings = append(f.findings, Finding{Rule: RuleRecreatedIndex, Severity: Info,
			Message: fmt.Sprintf("index %s is created again at %s: planned there as one replacement (built under another name, swapped at contract)", c.Constraint, st.all[j].Pos)})
		return f, nil
	}
	if i, ok := st.recreates[idx]; ok {
		var old *schema.Snapshot = st.base
		if o := st.opts.observed(i); o != nil && o.Before != nil {
			old = o.Before
		}
		return planRecreateIndex(old, st.all[i], c)
	}
	if st.createdTables[c.Table] {
		// A table this migration creates: no running code uses it. A table
		// it references must still exist.
		if c.RefTable != "" && !st.createdTables[c.RefTable] {
			if _, err := lookupTable(s, c, c.RefTable); err != nil {
				return nil, err
			}
		}
		c.Reason = "on table " + c.Table + ", created earlier in this migration: no running code uses it yet"
		return planPassThrough(s, c)
	}
	if at, ok := st.renamedTo[c.Table]; ok && c.Kind == change.RenameTable {
		return nil, &PlanError{Pos: c.Pos, Msg: fmt.Sprintf("table %s got this name from the rename at %s: N uses the first name through a view until contract, so a second rename in the same migration cannot be planned; rename it once, to its final name", c.Table, at)}
	}
	if c.RefTable != "" && st.createdTables[c.RefTable] && (obs == nil || obs.Before == nil) {
		c.Reason = refTableCreated
	}
	if st.createdColumns[c.Table+"."+c.Column] {
		switch c.Kind {
		case change.RenameColumn, change.ChangeType, change.DropColumn, change.SetDefault, change.DropNotNull:
			c.Reason = fmt.Sprintf("on column %s.%s, added earlier in this migration: N never reads or writes it", c.Table, c.Column)
			f, err := planPassThrough(s, c)
			if err == nil && c.Kind == change.ChangeType && rewrote(obs, c.Table) {
				f.findings = append(f.findings, Finding{Rule: RuleChangeType, Severity: Warning,
					Message: fmt.Sprintf("retypes %s.%s, added earlier in this migration: PostgreSQL rewrites the table under ACCESS EXCLUSIVE; give the column its final type where it is added", c.Table, c.Column)})
			}
			return f, err
		}
	}
	if len(c.Columns) > 0 {
		c.NewColumns = st.allNew(s, c.Table, c.Columns)
	}
	if c.Kind == change.ChangeType && obs != nil && obs.After != nil && !rewrote(obs, c.Table) {
		if f, ok := planCatalogueOnlyType(s, obs, c); ok {
			return f, nil
		}
	}
	if c.Kind == change.DropObject && st.replaced[idx] {
		f := newFragment()
		f.add(Expand, Statement{SQL: c.SQL, Lock: LockAccessExclusive, Transactional: true, Table: c.Table,
			Why: fmt.Sprintf("%s %s is created again later in this migration: a replacement, run as written", c.ObjectType, c.Object)})
		return f, nil
	}
	if r, ok := st.keyAfterRef[idx]; ok {
		// Widening a key rebuilds the foreign keys that reference it; it
		// plans the referencing columns' own type changes with it when
		// they come after it, not before.
		return nil, &PlanError{Pos: c.Pos, Msg: fmt.Sprintf("%s.%s is referenced by foreign key %s, whose column changes type at %s, earlier in this migration: change the key first (move this statement before %s), so that the foreign key is rebuilt once, on the columns' final types", c.Table, c.Column, r.fk, r.pos, r.pos)}
	}
	if at, ok := st.droppedAt[idx]; ok {
		// The recipe's contract would swap in a shadow column (or validate
		// a constraint) on a column whose own contract step has already
		// archived it.
		return nil, &PlanError{Pos: c.Pos, Msg: fmt.Sprintf("%s.%s is dropped at %s, later in this migration: changing it first leaves nothing the drop keeps, and its phases would still work on the column after the drop; drop it alone (remove this statement)", c.Table, c.Column, at)}
	}
	if c.Kind == change.CreateIndex && obs != nil && obs.After != nil {
		if t, ok := s.Table(c.Table); ok && t.Partitioned {
			if f := planPartitionedIndex(s, obs.After, t, c); f != nil {
				return f, nil
			}
		}
	}
	return recipeOf(c.Kind).Plan(s, c)
}

// allNew tells whether every column is added by this migration without a
// default, so N never writes a value into it.
func (st *migrationState) allNew(s *schema.Snapshot, table string, cols []string) bool {
	t, ok := s.Table(table)
	for _, name := range cols {
		if !st.createdColumns[table+"."+name] {
			return false
		}
		if ok {
			if col, found := t.Column(name); found && (col.Default != "" || col.Identity != "" || col.Generated != "") {
				return false
			}
		}
	}
	return true
}

// rewrote tells whether the replay rewrote the table or one of its indexes;
// for a partitioned table (which has no storage of its own), any of its
// partitions, at any depth, or their indexes.
func rewrote(obs *Observed, table string) bool {
	if obs == nil {
		return true
	}
	idx := map[string]bool{table: true}
	for _, snap := range []*schema.Snapshot{obs.Before, obs.After} {
		if snap == nil {
			continue
		}
		tables := map[string]bool{table: true}
		for grew := true; grew; {
			grew = false
			for name, t := range snap.Tables {
				if t.PartitionOf != "" && tables[t.PartitionOf] && !tables[name] {
					tables[name], grew = true, true
				}
			}
		}
		for name := range tables {
			idx[name] = true
			if t, ok := snap.Tables[name]; ok {
				for _, ix := range t.Indexes {
					idx[schema.QualifiedName(t.Schema, ix.Name)] = true
				}
			}
		}
	}
	for _, r := range obs.Rewritten {
		if idx[r] {
			return true
		}
	}
	return false
}

// ownTriggers tells which tables have triggers of their own (phasekit's
// aside) in the schema before the migration or after any of its statements:
// their backfills need the mode that undoes what those triggers change.
func (st *migrationState) ownTriggers() map[string]bool {
	out := map[string]bool{}
	mark := func(s *schema.Snapshot) {
		if s == nil {
			return
		}
		for name, t := range s.Tables {
			out[name] = out[name] || len(t.Triggers) > 0
		}
	}
	mark(st.base)
	for _, o := range st.opts.Observed {
		if o != nil {
			mark(o.Before)
			mark(o.After)
		}
	}
	return out
}
