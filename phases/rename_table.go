package phases

import (
	"fmt"
	"strings"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/schema"
)

func init() { register(change.RenameTable, renameTable{}) }

// planRenameTable renames the table and, in the same transaction, leaves a
// view under the old name. A view over one table with plain columns is
// automatically updatable, so N keeps reading and writing through it; contract
// drops the view once N is gone.
func planRenameTable(s *schema.Snapshot, c change.Change) (*fragment, error) {
	t, err := lookupTable(s, c, c.Table)
	if err != nil {
		return nil, err
	}
	newQ := schema.QualifiedName(t.Schema, c.NewName)
	if _, exists := s.Table(newQ); exists {
		return nil, &PlanError{Pos: c.Pos, Msg: fmt.Sprintf("table %s already exists", newQ)}
	}
	if _, exists := s.Views[newQ]; exists {
		return nil, &PlanError{Pos: c.Pos, Msg: fmt.Sprintf("a view named %s already exists", newQ)}
	}
	if t.Partitioned || t.PartitionOf != "" {
		return nil, &PlanError{Pos: c.Pos, Msg: fmt.Sprintf("table %s is partitioned or a partition: renaming it behind a view is not supported yet", t.QName())}
	}
	f := newFragment()
	oldQ := t.QName()
	// The view names the table's columns as they are now: "SELECT *" would
	// take in columns added later, which a rollback of those could then not
	// drop.
	cols := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		cols[i] = q(c.Name)
	}
	view := fmt.Sprintf("CREATE VIEW %s AS SELECT %s FROM %s", qq(oldQ), strings.Join(cols, ", "), qq(newQ))
	f.add(Expand, ddl(oldQ, LockAccessExclusive, "rename the table (metadata only)",
		fmt.Sprintf("ALTER TABLE %s RENAME TO %s", qq(oldQ), q(c.NewName)),
		fmt.Sprintf("ALTER TABLE %s RENAME TO %s", qq(newQ), q(t.Name))))
	f.add(Expand, ddl(oldQ, LockAccessExclusive, "N keeps using the old name through an updatable view",
		view, fmt.Sprintf("DROP VIEW IF EXISTS %s", qq(oldQ))))
	f.add(Contract, ddl(oldQ, LockAccessExclusive, "N is gone: drop the compatibility view",
		fmt.Sprintf("DROP VIEW %s", qq(oldQ)), view))
	f.deploy = fmt.Sprintf("N+1 uses table %s", newQ)
	return f, nil
}

// renameTable: ALTER TABLE ... RENAME TO.
type renameTable struct{ recipe }

var _ Recipe = renameTable{}

func (renameTable) Plan(s *schema.Snapshot, c change.Change) (*fragment, error) {
	return planRenameTable(s, c)
}

func (renameTable) Lint(c change.Change) []Finding {
	return []Finding{lintFinding(RuleRenameTable, fmt.Sprintf("renames %s to %s", c.Table, c.NewName))}
}

func (renameTable) Moves(change.Change) Moves { return Moves{LocksTable: true} }

func (renameTable) OldShapes(c change.Change) ([]Shape, []string) {
	return []Shape{{Table: c.Table}}, nil
}

func (renameTable) Title(c change.Change) string {
	return fmt.Sprintf("Rename %s to %s", c.Table, c.NewName)
}
