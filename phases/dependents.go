package phases

import (
	"fmt"
	"slices"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/schema"
)

// dependents are what PostgreSQL rebuilds when ALTER COLUMN ... TYPE
// changes a column: its indexes, the table's constraints on it, and the
// foreign keys of other tables that reference it. A type change through a
// hidden shadow column builds each of them on the shadow before contract
// (indexes CONCURRENTLY, foreign keys NOT VALID then VALIDATE) and swaps them
// at contract, in the transaction that swaps the column.
type dependents struct {
	indexes []schema.Index      // plain indexes using the column
	keys    []schema.Constraint // PRIMARY KEY and UNIQUE constraints using it
	checks  []schema.Constraint // CHECK and FOREIGN KEY constraints of the table using it
	refs    []schema.Constraint // foreign keys of other tables referencing it
}

func (d dependents) empty() bool {
	return len(d.indexes)+len(d.keys)+len(d.checks)+len(d.refs) == 0
}

// referencedBy lists the foreign keys of other tables that reference col
// of t.
func referencedBy(t *schema.Table, col string) []schema.Constraint {
	var out []schema.Constraint
	for _, fk := range t.ReferencedBy {
		if slices.Contains(fk.RefColumns, col) {
			out = append(out, fk)
		}
	}
	return out
}

// dependentsOf lists what depends on a column, or refuses what phasekit
// cannot rebuild (exclusion constraints, a key on a partitioned table).
func dependentsOf(c change.Change, t *schema.Table, col string) (dependents, error) {
	var d dependents
	for _, con := range t.Constraints {
		uses := slices.Contains(con.Columns, col) || (con.Type == schema.ForeignKey && con.RefTable == t.QName() && slices.Contains(con.RefColumns, col))
		if !uses {
			continue
		}
		switch con.Type {
		case schema.PrimaryKey, schema.Unique:
			d.keys = append(d.keys, con)
		case schema.Check, schema.ForeignKey:
			d.checks = append(d.checks, con)
		default:
			return d, &PlanError{Pos: c.Pos, Msg: fmt.Sprintf("column %s.%s is part of exclusion constraint %s: rebuilding it on a new column is not supported; change it in a maintenance window", t.QName(), col, con.Name)}
		}
	}
	for _, ix := range t.Indexes {
		if ix.Constraint != "" {
			continue
		}
		if slices.Contains(ix.Columns, col) || indexMentions(ix, col) {
			d.indexes = append(d.indexes, ix)
		}
	}
	d.refs = referencedBy(t, col)
	if !d.empty() && (t.Partitioned || t.PartitionOf != "") {
		return d, &PlanError{Pos: c.Pos, Msg: fmt.Sprintf("table %s is partitioned or a partition: rebuilding the indexes and constraints of a retyped column there is not supported yet", t.QName())}
	}
	return d, nil
}

// indexMentions tells an expression or partial index that reads col.
func indexMentions(ix schema.Index, col string) bool {
	probe, err := change.RetargetIndex(ix.Definition, ix.Name, col, "\x00", false)
	if err != nil {
		return false
	}
	plain, err := change.RetargetIndex(ix.Definition, ix.Name, "\x00", "\x00", false)
	return err == nil && probe != plain
}

func tmpName(name string) string { return shadowName(name) }

// buildDependents adds, in validate (after the backfill), the shadow's
// indexes, unique indexes for its keys, and the referencing foreign keys
// pointed at it.
func buildDependents(f *fragment, t *schema.Table, d dependents, old, shadow string) error {
	tn := t.QName()
	for _, ix := range d.indexes {
		def, err := change.RetargetIndex(ix.Definition, tmpName(ix.Name), old, shadow, true)
		if err != nil {
			return err
		}
		f.add(Validate, concurrent(tn, fmt.Sprintf("index %s again, on the new column", ix.Name), def,
			fmt.Sprintf("DROP INDEX CONCURRENTLY IF EXISTS %s", qq(schema.QualifiedName(t.Schema, tmpName(ix.Name))))))
	}
	for _, k := range d.keys {
		def, err := keyIndexDef(t, k)
		if err != nil {
			return err
		}
		build, err := change.RetargetIndex(def, tmpName(k.Name), old, shadow, true)
		if err != nil {
			return err
		}
		f.add(Validate, concurrent(tn, fmt.Sprintf("the unique index of %s again, on the new column", k.Name), build,
			fmt.Sprintf("DROP INDEX CONCURRENTLY IF EXISTS %s", qq(schema.QualifiedName(t.Schema, tmpName(k.Name))))))
	}
	for _, fk := range d.refs {
		add, err := change.RetargetReference(fk.Table, tmpName(fk.Name), fk.Definition, old, shadow)
		if err != nil {
			return err
		}
		f.add(Validate, ddl(fk.Table, LockShareRowExclusive, fmt.Sprintf("foreign key %s again, referencing the new column: new writes are checked now", fk.Name), add,
			fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT IF EXISTS %s", qq(fk.Table), q(tmpName(fk.Name)))))
		if fk.Validated {
			v := ddl(fk.Table, LockShareUpdateExclusive, "existing rows are checked while reads and writes go on",
				fmt.Sprintf("ALTER TABLE %s VALIDATE CONSTRAINT %s", qq(fk.Table), q(tmpName(fk.Name))))
			v.NewTransaction = true
			f.add(Validate, v)
		}
	}
	return nil
}

// keyIndexDef is the definition of the index behind a key constraint.
func keyIndexDef(t *schema.Table, k schema.Constraint) (string, error) {
	for _, ix := range t.Indexes {
		if ix.Name == k.Index || ix.Constraint == k.Name {
			return ix.Definition, nil
		}
	}
	return "", fmt.Errorf("no index found behind %s on %s", k.Name, t.QName())
}

// releaseDependents adds the contract steps before the old column is
// archived or dropped: the referencing foreign keys, the table's checks and
// keys on it come off (their rollback puts them back), its indexes move out
// of the way of their names, and its sequence moves to the new column.
func releaseDependents(f *fragment, t *schema.Table, d dependents, o *schema.Column, shadow string, archive bool) {
	tn := t.QName()
	for _, fk := range d.refs {
		f.add(Contract, ddl(fk.Table, LockAccessExclusive, fmt.Sprintf("foreign key %s comes off the old column (its copy on the new one takes its name below)", fk.Name),
			fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT %s", qq(fk.Table), q(fk.Name)),
			restoreConstraint(fk)...))
	}
	for _, con := range append(append([]schema.Constraint{}, d.checks...), d.keys...) {
		f.add(Contract, ddl(tn, LockAccessExclusive, fmt.Sprintf("%s comes off the old column (added again below)", con.Name),
			fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT %s", qq(tn), q(con.Name)),
			restoreConstraint(con)...))
	}
	if archive {
		for _, ix := range d.indexes {
			f.add(Contract, ddl(tn, LockShareUpdateExclusive, fmt.Sprintf("the old column's index %s steps aside for its copy (it goes with the archive)", ix.Name),
				fmt.Sprintf("ALTER INDEX %s RENAME TO %s", qq(schema.QualifiedName(t.Schema, ix.Name)), q(archivedName(ix.Name))),
				fmt.Sprintf("ALTER INDEX IF EXISTS %s RENAME TO %s", qq(schema.QualifiedName(t.Schema, archivedName(ix.Name))), q(ix.Name))))
		}
	}
	if o.Sequence != "" && o.Identity == "" {
		f.add(Contract, ddl(tn, LockAccessExclusive, fmt.Sprintf("sequence %s belongs to the new column, so the old one's removal does not drop it", o.Sequence),
			fmt.Sprintf("ALTER SEQUENCE %s OWNED BY %s.%s", qq(o.Sequence), qq(tn), q(shadow)),
			fmt.Sprintf("ALTER SEQUENCE %s OWNED BY %s.%s", qq(o.Sequence), qq(tn), q(o.Name))))
	}
}

// restoreConstraint is a dropped constraint's rollback: added again, and
// validated when it was.
func restoreConstraint(con schema.Constraint) []string {
	add := fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s %s", qq(con.Table), q(con.Name), con.Definition)
	if con.Type == schema.PrimaryKey || con.Type == schema.Unique || !con.Validated {
		return []string{add}
	}
	return []string{add + " NOT VALID", fmt.Sprintf("ALTER TABLE %s VALIDATE CONSTRAINT %s", qq(con.Table), q(con.Name))}
}

// restoreDependents adds the contract steps after the new column took the
// old name: indexes take their names, keys are attached from their built
// indexes, checks and the table's own foreign keys are added again (NOT
// VALID, then validated in a transaction of their own), and the referencing
// foreign keys take their names.
func restoreDependents(f *fragment, t *schema.Table, d dependents, col string) error {
	tn := t.QName()
	for _, ix := range d.indexes {
		f.add(Contract, ddl(tn, LockShareUpdateExclusive, fmt.Sprintf("the copy of %s takes its name", ix.Name),
			fmt.Sprintf("ALTER INDEX %s RENAME TO %s", qq(schema.QualifiedName(t.Schema, tmpName(ix.Name))), q(ix.Name)),
			// IF EXISTS: a later change of the migration may have dropped
			// it with its column (DROP COLUMN ... CASCADE).
			fmt.Sprintf("ALTER INDEX IF EXISTS %s RENAME TO %s", qq(schema.QualifiedName(t.Schema, ix.Name)), q(tmpName(ix.Name)))))
	}
	for _, k := range d.keys {
		kind := "UNIQUE"
		if k.Type == schema.PrimaryKey {
			kind = "PRIMARY KEY"
		}
		def, err := keyIndexDef(t, k)
		if err != nil {
			return err
		}
		rebuild, err := change.RetargetIndex(def, tmpName(k.Name), col, col, false)
		if err != nil {
			return err
		}
		// Undone, the key goes with the copies of the foreign keys that
		// reference it by then; both come back as they were before contract.
		rollback := []string{fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT %s CASCADE", qq(tn), q(k.Name)), rebuild}
		for _, fk := range d.refs {
			if !slices.Equal(sortedCopy(fk.RefColumns), sortedCopy(k.Columns)) {
				continue
			}
			add, err := change.RetargetReference(fk.Table, tmpName(fk.Name), fk.Definition, col, col)
			if err != nil {
				return err
			}
			rollback = append(rollback, add)
			if fk.Validated {
				rollback = append(rollback, fmt.Sprintf("ALTER TABLE %s VALIDATE CONSTRAINT %s", qq(fk.Table), q(tmpName(fk.Name))))
			}
		}
		f.add(Contract, ddl(tn, LockAccessExclusive, fmt.Sprintf("%s again, from the index built on the new column: no scan", k.Name),
			fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s %s USING INDEX %s", qq(tn), q(k.Name), kind, q(tmpName(k.Name))),
			rollback...))
	}
	for _, con := range d.checks {
		add := ddl(tn, LockAccessExclusive, fmt.Sprintf("%s again, on the new column: new writes are checked now", con.Name),
			fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s %s NOT VALID", qq(tn), q(con.Name), con.Definition),
			fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT IF EXISTS %s", qq(tn), q(con.Name)))
		f.add(Contract, add)
	}
	for _, fk := range d.refs {
		f.add(Contract, ddl(fk.Table, LockAccessExclusive, fmt.Sprintf("the copy of foreign key %s takes its name", fk.Name),
			fmt.Sprintf("ALTER TABLE %s RENAME CONSTRAINT %s TO %s", qq(fk.Table), q(tmpName(fk.Name)), q(fk.Name)),
			fmt.Sprintf("ALTER TABLE %s RENAME CONSTRAINT %s TO %s", qq(fk.Table), q(fk.Name), q(tmpName(fk.Name)))))
	}
	return nil
}

// validateDependents validates the checks added again, each in a
// transaction of its own once the swap and the dual-write trigger's removal
// committed (fragment.late): scans that block no one.
func validateDependents(f *fragment, t *schema.Table, d dependents) {
	for _, con := range d.checks {
		if !con.Validated {
			continue
		}
		v := ddl(t.QName(), LockShareUpdateExclusive, fmt.Sprintf("existing rows checked against %s while reads and writes go on", con.Name),
			fmt.Sprintf("ALTER TABLE %s VALIDATE CONSTRAINT %s", qq(t.QName()), q(con.Name)))
		v.NewTransaction = true
		f.late = append(f.late, v)
	}
}

func sortedCopy(s []string) []string {
	out := append([]string{}, s...)
	slices.Sort(out)
	return out
}
