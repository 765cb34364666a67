package phases

import (
	"fmt"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/schema"
)

func init() { register(change.AddColumn, addColumn{}) }

// planAddColumn: a nullable column, or one with a non-volatile default, is
// catalogue-only and passes through. A volatile default is added after the
// column (new rows get it; no rewrite) and existing rows are backfilled. A
// NOT NULL column without default is added nullable; N+1 writes it; contract
// makes it NOT NULL through a validated check once N (which does not write
// it) is gone and the backfill has filled existing rows.
func planAddColumn(s *schema.Snapshot, c change.Change) (*fragment, error) {
	t, err := lookupTable(s, c, c.Table)
	if err != nil {
		return nil, err
	}
	if err := refuseColumnExists(c, t, c.Column); err != nil {
		return nil, err
	}
	tn := t.QName()
	f := newFragment()
	drop := fmt.Sprintf("ALTER TABLE %s DROP COLUMN IF EXISTS %s", qq(tn), q(c.Column))
	if !c.VolatileDefault && (!c.NotNull || c.Default != "") {
		f.add(Expand, ddl(tn, LockAccessExclusive, "catalogue only: no rewrite", c.SQL, drop))
		return f, nil
	}
	f.add(Expand, ddl(tn, LockAccessExclusive, "add the column nullable and without default: no rewrite",
		fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s", qq(tn), q(c.Column), c.Type), drop))
	fill := c.Default
	if c.Default != "" {
		f.add(Expand, ddl(tn, LockAccessExclusive, "rows inserted from now on get the default",
			fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET DEFAULT %s", qq(tn), q(c.Column), c.Default)))
	}
	if fill == "" {
		fill = c.Fill
	}
	if fill != "" {
		key, err := backfillKey(c, t)
		if err != nil {
			return nil, err
		}
		f.backfills = append(f.backfills, newBackfill(tn, key, t.RowEstimate,
			[]Assignment{{Column: c.Column, Expr: fmt.Sprintf("COALESCE(%s, %s)", q(c.Column), fill), Type: c.Type}}))
	}
	if c.NotNull {
		if fill == "" && t.RowEstimate != 0 {
			f.findings = append(f.findings, Finding{Rule: RuleRequiredColumn, Severity: Warning,
				Message: fmt.Sprintf("%s.%s is NOT NULL without a default: existing rows need a value before contract; give a DEFAULT or a fill value in a change spec", tn, c.Column)})
		}
		setNotNullSteps(f, tn, c.Column, Contract, Contract, Contract)
	}
	f.deploy = fmt.Sprintf("N+1 writes %s.%s", tn, c.Column)
	return f, nil
}

// addColumn: ALTER TABLE ... ADD COLUMN.
type addColumn struct{ recipe }

var _ Recipe = addColumn{}

func (addColumn) Plan(s *schema.Snapshot, c change.Change) (*fragment, error) {
	return planAddColumn(s, c)
}

func (addColumn) Lint(c change.Change) []Finding {
	var out []Finding
	if c.NotNull && c.Default == "" {
		out = append(out, lintFinding(RuleRequiredColumn, fmt.Sprintf("adds %s.%s NOT NULL without a default", c.Table, c.Column)))
	}
	if c.VolatileDefault {
		out = append(out, lintFinding(RuleVolatileDef, fmt.Sprintf("adds %s.%s with a volatile default", c.Table, c.Column)))
	}
	return out
}

func (addColumn) Moves(change.Change) Moves {
	return Moves{CommutesWithData: true, SnapshotShows: true, LocksTable: true}
}
