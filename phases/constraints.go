package phases

import (
	"fmt"
	"strings"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/schema"
)

func init() {
	register(change.AddForeignKey, addForeignKey{})
	register(change.AddCheck, addCheck{})
}

// planAddForeignKey adds the key NOT VALID (new writes are checked at once,
// existing rows are not scanned under the strong lock), then validates it
// under SHARE UPDATE EXCLUSIVE, which lets reads and writes go on.
func planAddForeignKey(s *schema.Snapshot, c change.Change) (*fragment, error) {
	t, err := lookupTable(s, c, c.Table)
	if err != nil {
		return nil, err
	}
	for _, col := range c.Columns {
		if _, err := lookupColumn(c, t, col); err != nil {
			return nil, err
		}
	}
	if c.Reason != refTableCreated {
		ref, err := lookupTable(s, c, c.RefTable)
		if err != nil {
			return nil, err
		}
		for _, col := range c.RefColumns {
			if _, err := lookupColumn(c, ref, col); err != nil {
				return nil, err
			}
		}
	}
	if t.Partitioned && !c.NotValid {
		add, _, _ := enforcePhases(c)
		return asWrittenOnPartitioned(s, t, c, add, LockShareRowExclusive, enforceWhy(add), enforceDeploy(add, c), "add a NOT VALID foreign key",
			"add the key NOT VALID to each partition and VALIDATE it there first",
			fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT IF EXISTS %s", qq(t.QName()), q(c.Constraint)))
	}
	return notValidThenValidate(t.QName(), c, LockShareRowExclusive), nil
}

// enforcePhases is where a new constraint or unique index is added and
// where it is validated. A constraint on columns N writes is enforced only
// in contract, once N is gone: added earlier, every write of N that it
// forbids would fail for the whole rollout. On columns this migration adds
// without a default, N writes nothing into them, so expand and validate.
func enforcePhases(c change.Change) (add, validate Kind, why string) {
	if c.NewColumns {
		return Expand, Validate, "checks new writes now; existing rows are not scanned under this lock"
	}
	return Contract, Contract, "N is gone (it may write rows this forbids): enforce from now on; existing rows are checked next, without this lock (phasekit lint --dsn counts the rows that would fail)"
}

// planAddCheck: NOT VALID, then VALIDATE.
func planAddCheck(s *schema.Snapshot, c change.Change) (*fragment, error) {
	t, err := lookupTable(s, c, c.Table)
	if err != nil {
		return nil, err
	}
	for _, col := range c.Columns {
		if _, err := lookupColumn(c, t, col); err != nil {
			return nil, err
		}
	}
	return notValidThenValidate(t.QName(), c, LockAccessExclusive), nil
}

func notValidThenValidate(table string, c change.Change, lock string) *fragment {
	f := newFragment()
	add, validate, why := enforcePhases(c)
	drop := fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT IF EXISTS %s", qq(table), q(c.Constraint))
	f.add(add, ddl(table, lock, why, c.Definition, drop))
	if !c.NotValid {
		v := ddl(table, LockShareUpdateExclusive, "scans existing rows while reads and writes go on",
			fmt.Sprintf("ALTER TABLE %s VALIDATE CONSTRAINT %s", qq(table), q(c.Constraint)))
		v.NewTransaction = true
		f.add(validate, v)
	}
	f.deploy = enforceDeploy(add, c)
	return f
}

// enforceDeploy is what N+1 must not expect of a constraint enforced in
// phase add, for the deploy step ("" outside contract).
func enforceDeploy(add Kind, c change.Change) string {
	if add != Contract {
		return ""
	}
	return fmt.Sprintf("N+1 must not rely on %s being enforced before contract", c.Constraint)
}

// notNullCheckName names the helper CHECK (col IS NOT NULL) constraint.
func notNullCheckName(table, column string) string {
	name := "phasekit_" + strings.ReplaceAll(tableOnly(table), ".", "_") + "_" + column + "_not_null"
	if len(name) > 63 {
		name = name[:63]
	}
	return name
}

func tableOnly(q string) string {
	if i := strings.LastIndexByte(q, '.'); i >= 0 {
		return q[i+1:]
	}
	return q
}

// setNotNullSteps makes a column NOT NULL without a long ACCESS EXCLUSIVE
// scan: a NOT VALID check (new NULLs refused from then on), VALIDATE under
// SHARE UPDATE EXCLUSIVE in a transaction of its own, then SET NOT NULL, which
// PostgreSQL proves from the valid check without a scan, and the helper check
// goes.
func setNotNullSteps(f *fragment, table, column string, checkPhase, validatePhase, setPhase Kind) {
	name := notNullCheckName(table, column)
	f.add(checkPhase, ddl(table, LockAccessExclusive, "refuse new NULLs from now on; existing rows are checked next",
		fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s CHECK (%s IS NOT NULL) NOT VALID", qq(table), q(name), q(column)),
		fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT IF EXISTS %s", qq(table), q(name))))
	validate := ddl(table, LockShareUpdateExclusive, "scan existing rows while reads and writes go on",
		fmt.Sprintf("ALTER TABLE %s VALIDATE CONSTRAINT %s", qq(table), q(name)))
	validate.NewTransaction = true
	f.add(validatePhase, validate)
	set := ddl(table, LockAccessExclusive, "no scan: the valid check proves there is no NULL",
		fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET NOT NULL", qq(table), q(column)),
		fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s DROP NOT NULL", qq(table), q(column)))
	set.NewTransaction = true
	f.add(setPhase, set)
	f.add(setPhase, ddl(table, LockAccessExclusive, "the helper check is no longer needed",
		fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT %s", qq(table), q(name)),
		fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s CHECK (%s IS NOT NULL)", qq(table), q(name), q(column))))
}

// addForeignKey: ADD CONSTRAINT ... FOREIGN KEY (and a column's inline
// REFERENCES).
type addForeignKey struct{ recipe }

var _ Recipe = addForeignKey{}

func (addForeignKey) Plan(s *schema.Snapshot, c change.Change) (*fragment, error) {
	return planAddForeignKey(s, c)
}

func (addForeignKey) Lint(c change.Change) []Finding {
	if c.NotValid {
		return nil
	}
	return []Finding{lintFinding(RuleForeignKey, fmt.Sprintf("adds foreign key %s without NOT VALID", c.Constraint))}
}

func (addForeignKey) Moves(change.Change) Moves {
	return Moves{Deferrable: true, ReadsData: true, LocksTable: true}
}

func (addForeignKey) DataChecks(change.Change) []DataCheck {
	return []DataCheck{{What: DataOrphans}}
}

// addCheck: ADD CONSTRAINT ... CHECK (and a column's inline CHECK).
type addCheck struct{ recipe }

var _ Recipe = addCheck{}

func (addCheck) Plan(s *schema.Snapshot, c change.Change) (*fragment, error) {
	return planAddCheck(s, c)
}

func (addCheck) Lint(c change.Change) []Finding {
	if c.NotValid {
		return nil
	}
	return []Finding{lintFinding(RuleCheck, fmt.Sprintf("adds CHECK %s without NOT VALID", c.Constraint))}
}

func (addCheck) Moves(change.Change) Moves {
	return Moves{Deferrable: true, ReadsData: true, LocksTable: true}
}

func (addCheck) DataChecks(change.Change) []DataCheck {
	return []DataCheck{{What: DataViolations}}
}
