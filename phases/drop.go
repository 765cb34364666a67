package phases

import (
	"fmt"
	"strings"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/schema"
)

func init() {
	register(change.DropColumn, dropColumn{})
	register(change.DropTable, dropTable{})
}

// planDropColumn: N+1 stops using the column first; if the column is NOT NULL
// without a default, expand drops NOT NULL so N+1 can insert rows without it.
// Contract drops it once N is gone.
func planDropColumn(s *schema.Snapshot, c change.Change) (*fragment, error) {
	t, col, err := lookupTableColumn(s, c)
	if err != nil {
		return nil, err
	}
	if views := s.ViewsUsing(t.QName(), col.Name); len(views) > 0 && !c.Cascade {
		return nil, &PlanError{Pos: c.Pos, Msg: fmt.Sprintf("views %s read %s.%s: dropping it would break them; change or drop those views first", viewNames(views), t.QName(), col.Name)}
	}
	f := newFragment()
	tn := t.QName()
	if col.NotNull && col.Default == "" && col.Identity == "" && col.Generated == "" {
		f.needsEarly = true
		f.add(Expand, ddl(tn, LockAccessExclusive, "N+1 inserts rows without this column",
			fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s DROP NOT NULL", qq(tn), q(col.Name)),
			fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET NOT NULL", qq(tn), q(col.Name))))
	}
	f.deploy = fmt.Sprintf("N+1 no longer reads or writes %s.%s", tn, col.Name)
	f.findings = append(f.findings, functionFindings(s, t, []string{col.Name})...)
	if !c.NoArchive && !c.Cascade {
		return f, archiveColumn(f, c, t, col)
	}
	drop := fmt.Sprintf("ALTER TABLE %s DROP COLUMN %s", qq(tn), q(col.Name))
	if c.Cascade {
		drop += " CASCADE"
	}
	readd := fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s", qq(tn), q(col.Name), col.Type)
	if col.Default != "" {
		readd += " DEFAULT " + col.Default
	}
	rollback := []string{readd}
	if col.NotNull && col.Default != "" {
		rollback = []string{readd + " NOT NULL"}
	}
	f.add(Contract, ddl(tn, LockAccessExclusive, "N is gone: drop the column (rollback re-adds it empty)", drop, rollback...))
	f.irreversible[Contract] = true
	f.deploy = fmt.Sprintf("N+1 no longer reads or writes %s.%s", tn, col.Name)
	return f, nil
}

// planDropTable: N+1 stops using the table; contract drops it once N is gone.
// Views or foreign keys that need it are named and the plan refused.
func planDropTable(s *schema.Snapshot, c change.Change) (*fragment, error) {
	t, err := lookupTable(s, c, c.Table)
	if err != nil {
		if c.IfExists {
			return newFragment(), nil
		}
		return nil, err
	}
	if !c.Cascade {
		if views := s.ViewsUsing(t.QName(), ""); len(views) > 0 {
			return nil, &PlanError{Pos: c.Pos, Msg: fmt.Sprintf("views %s read %s: dropping it would break them; drop those views first", viewNames(views), t.QName())}
		}
		var fks []string
		for _, fk := range t.ReferencedBy {
			if fk.Table != t.QName() {
				fks = append(fks, fk.Table+"."+fk.Name)
			}
		}
		if len(fks) > 0 {
			return nil, &PlanError{Pos: c.Pos, Msg: fmt.Sprintf("foreign keys %s reference %s: drop them first", strings.Join(fks, ", "), t.QName())}
		}
	}
	f := newFragment()
	f.deploy = fmt.Sprintf("N+1 no longer uses table %s", t.QName())
	if !c.NoArchive && !c.Cascade {
		archiveTable(f, t)
		return f, nil
	}
	drop := fmt.Sprintf("DROP TABLE %s", qq(t.QName()))
	if c.Cascade {
		drop += " CASCADE"
	}
	f.add(Contract, ddl(t.QName(), LockAccessExclusive, "N is gone: drop the table", drop))
	f.irreversible[Contract] = true
	f.deploy = fmt.Sprintf("N+1 no longer uses table %s", t.QName())
	return f, nil
}

func viewNames(vs []*schema.View) string {
	names := make([]string, len(vs))
	for i, v := range vs {
		names[i] = v.QName()
	}
	return strings.Join(names, ", ")
}

// dropColumn: ALTER TABLE ... DROP COLUMN.
type dropColumn struct{ recipe }

var _ Recipe = dropColumn{}

func (dropColumn) Plan(s *schema.Snapshot, c change.Change) (*fragment, error) {
	return planDropColumn(s, c)
}

func (dropColumn) Lint(c change.Change) []Finding {
	return []Finding{lintFinding(RuleDropColumn, fmt.Sprintf("drops %s.%s", c.Table, c.Column))}
}

// Moves: deferrable unless its expand step (DROP NOT NULL, so N+1 can
// insert without the column) is there: the plan marks that (needsEarly).
func (dropColumn) Moves(change.Change) Moves {
	return Moves{Deferrable: true, ReadsData: true, SnapshotShows: true, LocksTable: true}
}

func (dropColumn) OldShapes(c change.Change) ([]Shape, []string) {
	return []Shape{{Table: c.Table, Column: c.Column}}, nil
}

// dropTable: DROP TABLE.
type dropTable struct{ recipe }

var _ Recipe = dropTable{}

func (dropTable) Plan(s *schema.Snapshot, c change.Change) (*fragment, error) {
	return planDropTable(s, c)
}

func (dropTable) Lint(c change.Change) []Finding {
	return []Finding{lintFinding(RuleDropTable, fmt.Sprintf("drops %s", c.Table))}
}

func (dropTable) Moves(change.Change) Moves {
	return Moves{Deferrable: true, ReadsData: true, SnapshotShows: true, LocksTable: true}
}

func (dropTable) OldShapes(c change.Change) ([]Shape, []string) {
	return []Shape{{Table: c.Table}}, nil
}
