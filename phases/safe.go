package phases

import (
	"fmt"
	"strings"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/schema"
)

func init() {
	register(change.Safe, passThrough{})
	register(change.CreateTable, passThrough{})
	register(change.Unknown, passThrough{})
	register(change.SessionSetting, sessionSetting{})
}

// planPassThrough runs a statement as written in expand: it is already safe
// while N and N+1 share the database, or it is unknown, in which case the
// plan carries an unknown-statement finding at its position for review.
// What it creates, its rollback drops; what it replaces, its rollback puts
// back from the snapshot; where neither is known, the phase is marked as one
// rollback cannot fully undo.
func planPassThrough(s *schema.Snapshot, c change.Change) (*fragment, error) {
	f := newFragment()
	why := c.Reason
	lock := LockAccessExclusive
	if c.Kind == change.Unknown {
		why = "NOT IN THE CATALOGUE, review by hand: " + c.Reason
	}
	st := Statement{SQL: c.SQL, Lock: lock, Transactional: true, Table: c.Table, Why: why}
	if c.Kind == change.CreateIndex && c.Concurrently {
		st.Transactional, st.Lock = false, LockShareUpdateExclusive
	}
	if c.Autocommit {
		// VACUUM and the like: PostgreSQL refuses them in a transaction.
		st.Transactional = false
	}
	if c.Reason == change.VacuumReason {
		st.Lock = LockShareUpdateExclusive
	}
	rollback, ok := passThroughRollback(s, c)
	st.Rollback = rollback
	if !ok {
		f.irreversible[Expand] = true
	}
	if c.Kind == change.ChangeType {
		// A column or table this migration adds, which a view it creates
		// reads: the replay ran the file with the views dropped and created
		// again around the type change, and so does the plan.
		tn := c.Table
		if t, ok := s.Table(c.Table); ok {
			tn = t.QName()
		}
		views := s.ViewsUsing(tn, c.Column)
		for _, v := range views {
			if v.Materialized {
				return nil, &PlanError{Pos: c.Pos, Msg: fmt.Sprintf("materialized view %s reads %s.%s: PostgreSQL cannot change the column's type under it; drop the view first and create it again after", v.QName(), c.Table, c.Column)}
			}
		}
		aroundViews(f, views, st)
		return f, nil
	}
	f.add(Expand, st)
	return f, nil
}

// passThroughRollback undoes a pass-through statement; ok is false when it
// cannot be undone from what the snapshot knows.
func passThroughRollback(s *schema.Snapshot, c change.Change) (rollback []string, ok bool) {
	drop := func(sql string) ([]string, bool) { return []string{sql}, true }
	switch c.Kind {
	case change.CreateTable:
		return drop("DROP TABLE IF EXISTS " + qq(c.Table))
	case change.CreateIndex:
		return drop("DROP INDEX IF EXISTS " + qq(schema.QualifiedName(schemaOf(c.Table), c.Constraint)))
	case change.AddColumn:
		return drop(fmt.Sprintf("ALTER TABLE %s DROP COLUMN IF EXISTS %s", qq(c.Table), q(c.Column)))
	case change.AddForeignKey, change.AddCheck, change.AddUnique, change.AddPrimaryKey:
		return drop(fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT IF EXISTS %s", qq(c.Table), q(c.Constraint)))
	case change.RenameColumn:
		// The column's (or table's) own rollback names it as it was.
		return drop(fmt.Sprintf("ALTER TABLE %s RENAME COLUMN %s TO %s", qq(c.Table), q(c.NewName), q(c.Column)))
	case change.RenameTable:
		return drop(fmt.Sprintf("ALTER TABLE %s RENAME TO %s", qq(schemaOf(c.Table)+"."+c.NewName), q(tableOnly(c.Table))))
	}
	if c.Kind == change.DropColumn {
		// A column this migration adds (or one of a table it creates): put
		// back an empty column under the name it had, so that the rollbacks
		// before it (a rename's) find it; the add's rollback, or the
		// table's, drops it again.
		if t, ok := s.Table(c.Table); ok {
			if col, ok := t.Column(c.Column); ok {
				return drop(fmt.Sprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s %s", qq(c.Table), q(c.Column), col.Type))
			}
		}
	}
	if c.Kind != change.Safe && c.Kind != change.Unknown {
		// A change on a table this migration creates: the table's own
		// rollback drops it, and this with it.
		return nil, true
	}
	name := c.Object
	switch c.ObjectType {
	case "ADD CONSTRAINT":
		// USING INDEX: the index keeps its new name; a rollback that drops
		// the constraint drops the index too, which the index's own
		// rollback tolerates (IF EXISTS).
		return drop(fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT IF EXISTS %s", qq(c.Table), q(c.Constraint)))
	case "COMMENT ON COLUMN", "COMMENT ON TABLE":
		old := ""
		t, ok := s.Table(c.Table)
		if !ok {
			return nil, false
		}
		if c.ObjectType == "COMMENT ON COLUMN" {
			col, found := t.Column(strings.TrimPrefix(name, c.Table+"."))
			if !found {
				return nil, false
			}
			old = col.Comment
		} else {
			old = t.Comment
		}
		target := strings.TrimPrefix(c.ObjectType, "COMMENT ON ") + " " + qq(c.Table)
		if c.ObjectType == "COMMENT ON COLUMN" {
			target += "." + q(strings.TrimPrefix(name, c.Table+"."))
		}
		value := "NULL"
		if old != "" {
			value = change.QuoteLiteral(old)
		}
		return drop(fmt.Sprintf("COMMENT ON %s IS %s", target, value))
	case "DROP CONSTRAINT", "VALIDATE CONSTRAINT":
		con := findConstraint(s, c.Table, c.Constraint)
		if con == nil || c.Cascade {
			return nil, con != nil || c.IfExists
		}
		def := fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s %s", qq(c.Table), q(con.Name), con.Definition)
		if c.ObjectType == "DROP CONSTRAINT" {
			return drop(def)
		}
		if con.Validated {
			return nil, true
		}
		return []string{fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT %s", qq(c.Table), q(con.Name)), def}, true
	case "SEQUENCE", "TYPE", "DOMAIN", "SCHEMA", "EXTENSION", "MATERIALIZED VIEW", "STATISTICS", "TABLE":
		qn := qq(name)
		if c.ObjectType == "SCHEMA" || c.ObjectType == "EXTENSION" {
			qn = q(name)
		}
		return drop(fmt.Sprintf("DROP %s IF EXISTS %s", c.ObjectType, qn))
	case "FUNCTION", "PROCEDURE":
		fname, args, _ := strings.Cut(strings.TrimSuffix(name, ")"), "(")
		// CREATE OR REPLACE of the one function of that name: put it back.
		var same []schema.Function
		if s != nil {
			for _, fn := range s.Functions {
				if schema.QualifiedName(fn.Schema, fn.Name) == fname {
					same = append(same, fn)
				}
			}
		}
		if len(same) == 1 {
			return drop(strings.TrimSpace(same[0].Definition))
		}
		return drop(fmt.Sprintf("DROP %s IF EXISTS %s(%s)", c.ObjectType, qq(fname), args))
	case "VIEW":
		if s != nil {
			if v, ok := s.Views[name]; ok {
				return []string{"DROP VIEW IF EXISTS " + qq(name), createView(v)}, true
			}
		}
		return drop("DROP VIEW IF EXISTS " + qq(name))
	case "TRIGGER", "POLICY":
		short := strings.TrimPrefix(name, c.Table+".")
		if c.ObjectType == "TRIGGER" && s != nil {
			if t, ok := s.Tables[c.Table]; ok {
				for _, tr := range t.Triggers {
					if tr.Name == short {
						return []string{fmt.Sprintf("DROP TRIGGER IF EXISTS %s ON %s", q(short), qq(c.Table)), tr.Definition}, true
					}
				}
			}
		}
		return drop(fmt.Sprintf("DROP %s IF EXISTS %s ON %s", c.ObjectType, q(short), qq(c.Table)))
	}
	return nil, false
}

// findConstraint finds a table's constraint in the snapshot.
func findConstraint(s *schema.Snapshot, table, name string) *schema.Constraint {
	if s == nil {
		return nil
	}
	t, ok := s.Tables[table]
	if !ok {
		return nil
	}
	for i := range t.Constraints {
		if t.Constraints[i].Name == name {
			return &t.Constraints[i]
		}
	}
	return nil
}

// passThrough: statements run as written in expand: safe ones (CREATE
// TABLE, new objects, comments, grants...) and unknown ones, which lint
// flags for review.
type passThrough struct{ recipe }

var _ Recipe = passThrough{}

func (passThrough) Plan(s *schema.Snapshot, c change.Change) (*fragment, error) {
	return planPassThrough(s, c)
}

func (passThrough) Lint(c change.Change) []Finding {
	if c.Kind != change.Unknown {
		return nil
	}
	return []Finding{lintFinding(RuleUnknown, c.Reason)}
}

// Moves: a safe statement that changes nothing an app relies on (Aside)
// may move and does not care about rows.
func (passThrough) Moves(c change.Change) Moves {
	return Moves{Deferrable: c.Kind == change.Safe && c.Aside, CommutesWithData: c.Kind == change.Safe && c.Aside}
}

func (passThrough) Title(c change.Change) string { return c.SQL }

// sessionSetting: SET and transaction control; nothing to plan (phasekit
// decides each phase's settings and transactions).
type sessionSetting struct{ recipe }

var _ Recipe = sessionSetting{}

func (sessionSetting) Title(change.Change) string { return "" }
