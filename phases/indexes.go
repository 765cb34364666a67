package phases

import (
	"fmt"
	"strings"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/schema"
)

func init() {
	register(change.CreateIndex, planCreateIndex)
	register(change.DropIndex, planDropIndex)
	register(change.AddUnique, planAddUnique)
	register(change.AddPrimaryKey, planAddUnique)
}

// planCreateIndex builds the index CONCURRENTLY, outside a transaction, so
// writes go on while it builds.
func planCreateIndex(s *schema.Snapshot, c change.Change) (*fragment, error) {
	t, err := lookupTable(s, c, c.Table)
	if err != nil {
		return nil, err
	}
	for _, col := range c.Columns {
		if _, err := lookupColumn(c, t, col); err != nil {
			return nil, err
		}
	}
	f := newFragment()
	f.add(Expand, concurrent(t.QName(), "builds while reads and writes go on", c.Definition,
		fmt.Sprintf("DROP INDEX CONCURRENTLY IF EXISTS %s", qq(schema.QualifiedName(t.Schema, c.Constraint)))))
	return f, nil
}

// planDropIndex drops the index CONCURRENTLY in contract (N may rely on it
// for speed until it is gone). Rollback rebuilds it concurrently.
func planDropIndex(s *schema.Snapshot, c change.Change) (*fragment, error) {
	var table, def string
	for _, t := range s.Tables {
		for _, ix := range t.Indexes {
			if schema.QualifiedName(t.Schema, ix.Name) == c.Constraint {
				table, def = t.QName(), ix.Definition
				if ix.Constraint != "" {
					return nil, &PlanError{Pos: c.Pos, Msg: fmt.Sprintf("index %s backs constraint %s: drop the constraint instead", c.Constraint, ix.Constraint)}
				}
			}
		}
	}
	if table == "" {
		if c.IfExists {
			return newFragment(), nil
		}
		return nil, &PlanError{Pos: c.Pos, Msg: fmt.Sprintf("index %s does not exist", c.Constraint)}
	}
	f := newFragment()
	rebuild := strings.Replace(def, " INDEX ", " INDEX CONCURRENTLY ", 1)
	f.add(Contract, concurrent(table, "drops without blocking reads and writes", c.Definition, rebuild))
	return f, nil
}

// planAddUnique builds the unique index CONCURRENTLY, then attaches it as the
// constraint (ADD CONSTRAINT ... USING INDEX: no scan). A primary key also
// needs its columns NOT NULL, proven by a validated check first.
func planAddUnique(s *schema.Snapshot, c change.Change) (*fragment, error) {
	t, err := lookupTable(s, c, c.Table)
	if err != nil {
		return nil, err
	}
	cols := make([]string, len(c.Columns))
	for i, name := range c.Columns {
		if _, err := lookupColumn(c, t, name); err != nil {
			return nil, err
		}
		cols[i] = q(name)
	}
	tn := t.QName()
	f := newFragment()
	idx := c.Constraint
	f.add(Expand, concurrent(tn, "builds while reads and writes go on",
		fmt.Sprintf("CREATE UNIQUE INDEX CONCURRENTLY %s ON %s (%s)", q(idx), qq(tn), strings.Join(cols, ", ")),
		fmt.Sprintf("DROP INDEX CONCURRENTLY IF EXISTS %s", qq(schema.QualifiedName(t.Schema, idx)))))
	kind := "UNIQUE"
	if c.Kind == change.AddPrimaryKey {
		kind = "PRIMARY KEY"
		for _, name := range c.Columns {
			if col, _ := t.Column(name); !col.NotNull {
				setNotNullSteps(f, tn, name, Expand, Validate, Validate)
			}
		}
	}
	attach := ddl(tn, LockAccessExclusive, "attach the built index: no scan",
		fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s %s USING INDEX %s", qq(tn), q(c.Constraint), kind, q(idx)),
		fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT IF EXISTS %s", qq(tn), q(c.Constraint)))
	attach.NewTransaction = true
	f.add(Validate, attach)
	return f, nil
}
