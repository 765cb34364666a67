package phases

import (
	"fmt"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/schema"
)

func init() { register(change.RenameColumn, renameColumn{}) }

// planRenameColumn: N uses the old name, N+1 the new one. A new column is kept
// equal to the old one by a trigger while both run; contract drops that copy
// and renames the original, so the final column keeps its position, default,
// constraints, indexes and the views that read it, exactly as a plain RENAME.
func planRenameColumn(s *schema.Snapshot, c change.Change) (*fragment, error) {
	t, col, err := lookupTableColumn(s, c)
	if err != nil {
		return nil, err
	}
	if err := refuseColumnExists(c, t, c.NewName); err != nil {
		return nil, err
	}
	if col.Generated != "" || col.Identity != "" {
		return nil, &PlanError{Pos: c.Pos, Msg: fmt.Sprintf("column %s.%s is generated or an identity column: no running code writes it, and a dual-written copy cannot be either; rename it in a maintenance window", t.QName(), col.Name)}
	}
	key, err := backfillKey(c, t)
	if err != nil {
		return nil, err
	}
	tn, oldc, newc := t.QName(), q(col.Name), q(c.NewName)
	f := newFragment()
	addCopy := fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s", qq(tn), newc, col.Type)
	dropCopy := fmt.Sprintf("ALTER TABLE %s DROP COLUMN IF EXISTS %s", qq(tn), newc)
	f.add(Expand, ddl(tn, LockAccessExclusive, fmt.Sprintf("the new name %s, empty until the backfill", c.NewName), addCopy, dropCopy))
	f.syncs = append(f.syncs, sync{
		Table: tn, Olds: []string{col.Name}, News: []string{c.NewName},
		Up: map[string]string{c.NewName: oldc}, Down: map[string]string{col.Name: newc},
	})
	f.backfills = append(f.backfills, newBackfill(tn, key, t.RowEstimate, []Assignment{{Column: c.NewName, Expr: oldc, Type: col.Type}}))
	f.add(Contract, ddl(tn, LockAccessExclusive, "drop the dual-written copy: its data equals the original column",
		dropCopy,
		addCopy, setBackfillMode, fmt.Sprintf("UPDATE %s SET %s = %s", qq(tn), newc, oldc)))
	f.add(Contract, ddl(tn, LockAccessExclusive, "the original column takes the new name, with its data, position, constraints, indexes and dependent views",
		fmt.Sprintf("ALTER TABLE %s RENAME COLUMN %s TO %s", qq(tn), oldc, newc),
		fmt.Sprintf("ALTER TABLE %s RENAME COLUMN %s TO %s", qq(tn), newc, oldc)))
	f.deploy = fmt.Sprintf("N+1 reads and writes %s.%s", tn, c.NewName)
	f.findings = append(f.findings, functionFindings(s, t, []string{col.Name})...)
	return f, nil
}

// renameColumn: ALTER TABLE ... RENAME COLUMN.
type renameColumn struct{ recipe }

var _ Recipe = renameColumn{}

func (renameColumn) Plan(s *schema.Snapshot, c change.Change) (*fragment, error) {
	return planRenameColumn(s, c)
}

func (renameColumn) Lint(c change.Change) []Finding {
	return []Finding{lintFinding(RuleRenameColumn, fmt.Sprintf("renames %s.%s to %s", c.Table, c.Column, c.NewName))}
}

func (renameColumn) Moves(change.Change) Moves { return Moves{LocksTable: true} }

func (renameColumn) OldShapes(c change.Change) ([]Shape, []string) {
	return []Shape{{Table: c.Table, Column: c.Column}}, nil
}

func (renameColumn) Title(c change.Change) string {
	return fmt.Sprintf("Rename %s.%s to %s", c.Table, c.Column, c.NewName)
}
