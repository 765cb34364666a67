package phases

import (
	"fmt"
	"strings"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/schema"
)

// reshape is the shared recipe of change_type, split_column and
// merge_columns: new columns beside the old ones, kept in sync by a trigger,
// backfilled, and the old ones dropped in contract.
type reshape struct {
	table *schema.Table
	olds  []*schema.Column
	news  []change.Target
	down  map[string]string // old column -> expression over the new columns
	// hidden is set for a type change that keeps the column's name: the new
	// column is a shadow no app uses, renamed over the old one in contract.
	hidden bool
	// newDefault replaces the old column's default on the swapped column
	// (an enum default must name the new type).
	newDefault string
	// noArchive drops the old columns even when archiving is on (an enum's
	// old type cannot be dropped while an archived column uses it).
	noArchive bool
}

func shadowName(col string) string {
	name := "phasekit_new_" + col
	if len(name) > 63 {
		name = name[:63]
	}
	return name
}

func planReshape(s *schema.Snapshot, c change.Change, r reshape) (*fragment, error) {
	t := r.table
	tn := t.QName()
	key, err := backfillKey(c, t)
	if err != nil {
		return nil, err
	}
	var oldNames, newNames []string
	var deps dependents
	for _, p := range partitionsOf(s, tn) {
		for _, o := range r.olds {
			// An index or key a partition holds of its own is not the
			// parent's to rebuild (the snapshot holds no link between them).
			if _, err := dependentsOf(c, p, o.Name); err != nil {
				return nil, &PlanError{Pos: c.Pos, Msg: fmt.Sprintf("partition %s of %s has an index or constraint on %s: rebuilding a partition's own on a new column is not supported yet", p.QName(), tn, o.Name)}
			}
		}
	}
	for _, o := range r.olds {
		if o.Generated != "" || o.Identity != "" {
			return nil, &PlanError{Pos: c.Pos, Msg: fmt.Sprintf("column %s.%s is generated or an identity column: no app writes it, so a dual-written copy cannot stand in for it; change it in a maintenance window", tn, o.Name)}
		}
		if r.hidden {
			// A retyped column keeps its name, so what depends on it is
			// built again on the shadow and swapped with it.
			if deps, err = dependentsOf(c, t, o.Name); err != nil {
				return nil, err
			}
		} else {
			if strings.Contains(o.Default, "nextval(") {
				return nil, &PlanError{Pos: c.Pos, Msg: fmt.Sprintf("column %s.%s is a serial column: splitting or merging it is not supported", tn, o.Name)}
			}
			if err := refuseIndexedOrConstrained(c, t, o.Name); err != nil {
				return nil, err
			}
		}
		oldNames = append(oldNames, o.Name)
	}
	views := []*schema.View{}
	for _, o := range r.olds {
		for _, v := range s.ViewsUsing(tn, o.Name) {
			if !containsView(views, v) {
				views = append(views, v)
			}
		}
	}
	if len(views) > 0 && !r.hidden {
		return nil, &PlanError{Pos: c.Pos, Msg: fmt.Sprintf("views %s read %s: after contract they would read columns that are gone; change those views in the same migration or first", viewNames(views), strings.Join(oldNames, ", "))}
	}
	for _, v := range views {
		if v.Materialized {
			return nil, &PlanError{Pos: c.Pos, Msg: fmt.Sprintf("materialized view %s reads %s.%s: recreating it would rerun its query under lock; refresh plans for materialized views are not supported yet", v.QName(), tn, strings.Join(oldNames, ", "))}
		}
	}
	f := newFragment()
	up := map[string]string{}
	var set []Assignment
	for _, n := range r.news {
		if err := refuseColumnExists(c, t, n.Name); err != nil {
			return nil, err
		}
		newNames = append(newNames, n.Name)
		up[n.Name] = n.Up
		f.add(Expand, ddl(tn, LockAccessExclusive, fmt.Sprintf("new column %s, empty until the backfill", n.Name),
			fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s", qq(tn), q(n.Name), n.Type),
			fmt.Sprintf("ALTER TABLE %s DROP COLUMN IF EXISTS %s", qq(tn), q(n.Name))))
		set = append(set, Assignment{Column: n.Name, Expr: n.Up, Type: n.Type})
	}
	if !r.hidden {
		// A hidden shadow keeps the column's name: functions keep working.
		f.findings = append(f.findings, functionFindings(s, t, oldNames)...)
	}
	sy := sync{Table: tn, Olds: oldNames, News: newNames, Up: up}
	if !r.hidden {
		sy.Down = r.down
	}
	f.syncs = append(f.syncs, sy)
	f.backfills = append(f.backfills, newBackfill(tn, key, t.RowEstimate, set))

	// Contract. Views reading the column are dropped and recreated from
	// their own definitions around the swap, in one transaction.
	for i := len(views) - 1; i >= 0; i-- {
		v := views[i]
		f.add(Contract, ddl(v.QName(), LockAccessExclusive, "recreated below over the new column",
			fmt.Sprintf("DROP VIEW %s", qq(v.QName())), createView(v)))
	}
	if r.hidden {
		if err := buildDependents(f, t, deps, r.olds[0].Name, r.news[0].Name); err != nil {
			return nil, &PlanError{Pos: c.Pos, Msg: err.Error()}
		}
		releaseDependents(f, t, deps, r.olds[0], r.news[0].Name, !r.noArchive && !c.NoArchive)
	}
	if !r.noArchive && !c.NoArchive {
		for _, o := range r.olds {
			// The refill runs in backfill mode for this column only, so the
			// table's own triggers cannot touch other columns (last_update).
			// Only rows whose archived value no longer gives the new one
			// (written after contract) are refilled from the new column:
			// the others keep their archived value exactly, even where
			// the conversion loses something (timestamp to date).
			// (A merge archives several columns, brought back one at a
			// time: its up expressions cannot be read until all are, so
			// its rollback refills every row.)
			refillSQL := fmt.Sprintf("UPDATE %s SET %s = %s", qq(tn), q(o.Name), r.down[o.Name])
			if len(r.olds) == 1 {
				var changed []string
				for _, n := range r.news {
					changed = append(changed, fmt.Sprintf("%s IS DISTINCT FROM (%s)", q(n.Name), n.Up))
				}
				refillSQL += " WHERE " + strings.Join(changed, " OR ")
			}
			refill := []string{refillMode(o.Name), refillSQL}
			if err := archiveColumn(f, c, t, o, refill...); err != nil {
				return nil, err
			}
		}
	} else {
		dropOldColumns(f, tn, r)
	}
	f, err = finishReshape(f, r, tn, views)
	if err != nil || !r.hidden {
		return f, err
	}
	if err := restoreDependents(f, t, deps, r.olds[0].Name); err != nil {
		return nil, &PlanError{Pos: c.Pos, Msg: err.Error()}
	}
	validateDependents(f, t, deps)
	if !deps.empty() {
		f.touches = append(f.touches, refTables(deps)...)
	}
	return f, nil
}

// refTables are the tables whose foreign keys a retype moves.
func refTables(d dependents) []string {
	var out []string
	for _, fk := range d.refs {
		out = append(out, fk.Table)
	}
	return out
}

// dropOldColumns drops every old column in one statement; its rollback
// re-adds them all before refilling any.
func dropOldColumns(f *fragment, tn string, r reshape) {
	var drops, adds, refills, after, oldNamesOnly []string
	for _, o := range r.olds {
		oldNamesOnly = append(oldNamesOnly, o.Name)
		drops = append(drops, "DROP COLUMN "+q(o.Name))
		adds = append(adds, fmt.Sprintf("ADD COLUMN %s %s", q(o.Name), o.Type))
		refills = append(refills, fmt.Sprintf("%s = %s", q(o.Name), r.down[o.Name]))
		if o.NotNull {
			after = append(after, fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET NOT NULL", qq(tn), q(o.Name)))
		}
		if o.Default != "" {
			after = append(after, fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET DEFAULT %s", qq(tn), q(o.Name), o.Default))
		}
	}
	rollback := append([]string{
		fmt.Sprintf("ALTER TABLE %s %s", qq(tn), strings.Join(adds, ", ")),
		// The refill must not let the table's own triggers touch other
		// columns (last_update): backfill mode for exactly these columns.
		refillMode(oldNamesOnly...),
		fmt.Sprintf("UPDATE %s SET %s", qq(tn), strings.Join(refills, ", ")),
	}, after...)
	f.add(Contract, ddl(tn, LockAccessExclusive, "N is gone: drop the old column(s)",
		fmt.Sprintf("ALTER TABLE %s %s", qq(tn), strings.Join(drops, ", ")), rollback...))
}

// finishReshape adds what follows the old columns' removal in contract: NOT
// NULL and default for the new column, the swap of a hidden shadow, views.
func finishReshape(f *fragment, r reshape, tn string, views []*schema.View) (*fragment, error) {
	if len(r.olds) == 1 && len(r.news) == 1 && r.olds[0].NotNull {
		// The trigger fills the new column on every write from N and N+1,
		// so refusing NULLs there is safe once the trigger exists.
		setNotNullSteps(f, tn, r.news[0].Name, DualWrite, Validate, Validate)
	}
	if !r.hidden && len(r.olds) == 1 && len(r.news) == 1 && r.olds[0].Default != "" {
		// Only now: earlier, a default on the new column would make N's
		// inserts look like N+1's to the trigger.
		f.add(Contract, ddl(tn, LockAccessExclusive, "the old column's default moves to the new one",
			fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET DEFAULT %s", qq(tn), q(r.news[0].Name), r.olds[0].Default),
			fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s DROP DEFAULT", qq(tn), q(r.news[0].Name))))
	}
	if r.hidden {
		o, n := r.olds[0], r.news[0]
		f.add(Contract, ddl(tn, LockAccessExclusive, "the new column takes the old name",
			fmt.Sprintf("ALTER TABLE %s RENAME COLUMN %s TO %s", qq(tn), q(n.Name), q(o.Name)),
			fmt.Sprintf("ALTER TABLE %s RENAME COLUMN %s TO %s", qq(tn), q(o.Name), q(n.Name))))
		if def := firstNonEmpty(r.newDefault, o.Default); def != "" {
			f.add(Contract, ddl(tn, LockAccessExclusive, "keep the column's default",
				fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET DEFAULT %s", qq(tn), q(o.Name), def)))
		}
		if o.Comment != "" {
			f.add(Contract, ddl(tn, LockNone, "keep the column's comment",
				fmt.Sprintf("COMMENT ON COLUMN %s.%s IS %s", qq(tn), q(o.Name), change.QuoteLiteral(o.Comment))))
		}
	}
	for _, v := range views {
		f.add(Contract, ddl(v.QName(), LockAccessExclusive, "the view again, now over the new column", createView(v),
			fmt.Sprintf("DROP VIEW IF EXISTS %s", qq(v.QName()))))
	}
	return f, nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func createView(v *schema.View) string { return CreateViewSQL(v) }

// CreateViewSQL creates a view again from its snapshot: options,
// definition and comment (one string of one or two statements).
func CreateViewSQL(v *schema.View) string {
	sql := "CREATE VIEW " + qq(v.QName())
	if len(v.Options) > 0 {
		sql += " WITH (" + strings.Join(v.Options, ", ") + ")"
	}
	sql += " AS\n" + strings.TrimSuffix(strings.TrimSpace(v.Definition), ";")
	if v.Comment != "" {
		sql += ";\nCOMMENT ON VIEW " + qq(v.QName()) + " IS " + change.QuoteLiteral(v.Comment)
	}
	return sql
}

func containsView(vs []*schema.View, v *schema.View) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}

// refuseIndexedOrConstrained refuses columns whose indexes and constraints
// would have to be rebuilt on the new column; not planned yet.
func refuseIndexedOrConstrained(c change.Change, t *schema.Table, col string) error {
	for _, con := range t.Constraints {
		for _, cc := range con.Columns {
			if cc == col {
				return &PlanError{Pos: c.Pos, Msg: fmt.Sprintf("column %s.%s is part of constraint %s: rebuilding constraints on a reshaped column is not supported yet", t.QName(), col, con.Name)}
			}
		}
	}
	for _, fk := range t.ReferencedBy {
		for _, rc := range fk.RefColumns {
			if rc == col {
				return &PlanError{Pos: c.Pos, Msg: fmt.Sprintf("column %s.%s is referenced by foreign key %s on %s: not supported yet", t.QName(), col, fk.Name, fk.Table)}
			}
		}
	}
	for _, ix := range t.Indexes {
		for _, ic := range ix.Columns {
			if ic == col {
				return &PlanError{Pos: c.Pos, Msg: fmt.Sprintf("column %s.%s is indexed by %s: rebuilding indexes on a reshaped column is not supported yet", t.QName(), col, ix.Name)}
			}
		}
	}
	return nil
}
