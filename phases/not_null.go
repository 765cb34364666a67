package phases

import (
	"fmt"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/schema"
)

func init() {
	register(change.SetNotNull, setNotNull{})
	register(change.DropNotNull, columnMetadata{})
	register(change.SetDefault, columnMetadata{})
	register(change.DropDefault, columnMetadata{})
}

// planSetNotNull: with a fill value (change spec), expand sets it as the
// default (so rows N inserts without a value get it) and a backfill replaces
// existing NULLs. N may still write an explicit NULL, so the check that
// refuses NULLs, its validation and SET NOT NULL all wait for contract, each
// in its own transaction so the validating scan holds no strong lock.
func planSetNotNull(s *schema.Snapshot, c change.Change) (*fragment, error) {
	t, col, err := lookupTableColumn(s, c)
	if err != nil {
		return nil, err
	}
	if col.NotNull {
		// PostgreSQL does nothing: neither does the plan.
		return noOp(fmt.Sprintf("%s.%s is NOT NULL already: nothing to plan", t.QName(), col.Name)), nil
	}
	f := newFragment()
	tn := t.QName()
	if c.Fill != "" {
		key, err := backfillKey(c, t)
		if err != nil {
			return nil, err
		}
		if col.Default == "" {
			f.add(Expand, ddl(tn, LockAccessExclusive, "rows N inserts without a value get the fill value",
				fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET DEFAULT %s", qq(tn), q(col.Name), c.Fill),
				fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s DROP DEFAULT", qq(tn), q(col.Name))))
		}
		f.backfills = append(f.backfills, newBackfill(tn, key, t.RowEstimate,
			[]Assignment{{Column: col.Name, Expr: fmt.Sprintf("COALESCE(%s, %s)", q(col.Name), c.Fill), Type: col.Type}}))
		// Rolling back cannot tell filled rows from rows that held the
		// fill value already.
		f.irreversible[Backfill] = true
	}
	setNotNullSteps(f, tn, col.Name, Contract, Contract, Contract)
	f.deploy = fmt.Sprintf("N+1 never writes NULL into %s.%s", tn, col.Name)
	return f, nil
}

// planColumnMetadata: DROP NOT NULL, SET DEFAULT and DROP DEFAULT change
// catalogue entries only (no scan, no rewrite) and accept everything N wrote
// before, so they run in expand with a short lock.
func planColumnMetadata(s *schema.Snapshot, c change.Change) (*fragment, error) {
	t, col, err := lookupTableColumn(s, c)
	if err != nil {
		return nil, err
	}
	tn := t.QName()
	if c.Kind == change.DropNotNull && !col.NotNull {
		return noOp(fmt.Sprintf("%s.%s is nullable already: nothing to plan", tn, col.Name)), nil
	}
	var rollback string
	switch c.Kind {
	case change.DropNotNull:
		rollback = fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET NOT NULL", qq(tn), q(col.Name))
	default:
		if col.Default == "" {
			rollback = fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s DROP DEFAULT", qq(tn), q(col.Name))
		} else {
			rollback = fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET DEFAULT %s", qq(tn), q(col.Name), col.Default)
		}
	}
	f := newFragment()
	if c.Kind == change.DropDefault && col.NotNull && col.Default != "" {
		// N may insert rows without the column, relying on the default.
		f.add(Contract, ddl(tn, LockAccessExclusive, "N is gone (it may insert without this NOT NULL column, relying on the default): catalogue only", c.SQL, rollback))
		f.deploy = fmt.Sprintf("N+1 always writes %s.%s", tn, col.Name)
		return f, nil
	}
	f.add(Expand, ddl(tn, LockAccessExclusive, "catalogue only: no scan, no rewrite", c.SQL, rollback))
	return f, nil
}

// noOp is the plan of a change that does nothing on this schema.
func noOp(why string) *fragment {
	f := newFragment()
	f.findings = append(f.findings, Finding{Rule: RuleNoOp, Severity: Info, Message: why})
	return f
}

// setNotNull: ALTER COLUMN ... SET NOT NULL (and the change spec's, with a
// fill value).
type setNotNull struct{ recipe }

var _ Recipe = setNotNull{}

func (setNotNull) Plan(s *schema.Snapshot, c change.Change) (*fragment, error) {
	return planSetNotNull(s, c)
}

func (setNotNull) Lint(c change.Change) []Finding {
	if c.Fill != "" {
		return nil
	}
	return []Finding{lintFinding(RuleSetNotNull, fmt.Sprintf("sets %s.%s NOT NULL", c.Table, c.Column))}
}

func (setNotNull) Moves(change.Change) Moves {
	return Moves{Deferrable: true, ReadsData: true, SnapshotShows: true, LocksTable: true}
}

// DataChecks: a change spec with a fill value backfills the NULLs first.
func (setNotNull) DataChecks(c change.Change) []DataCheck {
	if c.Fill != "" {
		return nil
	}
	return []DataCheck{{What: DataNulls, Columns: []string{c.Column}, Statement: "SET NOT NULL"}}
}

// columnMetadata: DROP NOT NULL, SET DEFAULT and DROP DEFAULT: one family of
// catalogue-only changes, planned by planColumnMetadata.
type columnMetadata struct{ recipe }

var _ Recipe = columnMetadata{}

func (columnMetadata) Plan(s *schema.Snapshot, c change.Change) (*fragment, error) {
	return planColumnMetadata(s, c)
}

func (columnMetadata) Lint(c change.Change) []Finding {
	if c.Kind == change.DropNotNull {
		return nil
	}
	return []Finding{lintFinding(RuleDefault, fmt.Sprintf("%s on %s.%s", c.Kind, c.Table, c.Column))}
}

// Moves: catalogue only, so deferrable with a note of when N+1 may rely on
// it (deferredNote), and indifferent to rows.
func (columnMetadata) Moves(change.Change) Moves {
	return Moves{Deferrable: true, CommutesWithData: true, SnapshotShows: true, LocksTable: true}
}
