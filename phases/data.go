package phases

import (
	"fmt"
	"strings"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/schema"
)

func init() {
	register(change.Data, dataStatement{})
	register(change.DropObject, dropObject{})
	register(change.Reindex, reindex{})
}

// planData runs a data statement as written, in expand; order moves it to
// the phase of a later change it prepares (a DELETE before a DROP COLUMN).
func planData(_ *schema.Snapshot, c change.Change) (*fragment, error) {
	f := newFragment()
	f.add(Expand, Statement{SQL: c.SQL, Lock: LockRowExclusive, Transactional: true, Table: c.Table, Why: "data statement, as written: " + c.Reason})
	// Rows it wrote or removed cannot be given back.
	f.irreversible[Expand] = true
	return f, nil
}

// planDropObject drops a view, function, type, trigger, sequence or the like
// in contract, once N (which may still use it) is gone. Rollback recreates
// what the snapshot can describe (views, functions, triggers, enums).
func planDropObject(s *schema.Snapshot, c change.Change) (*fragment, error) {
	f := newFragment()
	rollback := recreateStatement(s, c)
	why := fmt.Sprintf("N is gone: drop %s %s", strings.ToLower(c.ObjectType), c.Object)
	st := ddl(c.Table, LockAccessExclusive, why, c.SQL)
	if rollback != "" {
		st.Rollback = []string{rollback}
	} else {
		f.irreversible[Contract] = true
	}
	f.add(Contract, st)
	f.deploy = fmt.Sprintf("N+1 no longer uses %s %s", strings.ToLower(c.ObjectType), c.Object)
	return f, nil
}

// recreateStatement is the SQL that brings a dropped object back as the
// snapshot describes it, "" when it cannot.
func recreateStatement(s *schema.Snapshot, c change.Change) string {
	if s == nil || c.Cascade {
		return ""
	}
	switch c.ObjectType {
	case "VIEW":
		if v, ok := s.Views[c.Object]; ok && !v.Materialized {
			return createView(v)
		}
	case "FUNCTION", "PROCEDURE":
		for _, fn := range s.Functions {
			if sameFunction(schema.QualifiedName(fn.Schema, fn.Name), fn.Args, c.Object) {
				return strings.TrimSpace(fn.Definition)
			}
		}
	case "TRIGGER":
		if t, ok := s.Tables[c.Table]; ok {
			for _, tr := range t.Triggers {
				if c.Table+"."+tr.Name == c.Object {
					return tr.Definition
				}
			}
		}
	case "TYPE":
		if e, ok := s.Enums[c.Object]; ok {
			labels := make([]string, len(e.Values))
			for i, v := range e.Values {
				labels[i] = change.QuoteLiteral(v)
			}
			return fmt.Sprintf("CREATE TYPE %s AS ENUM (%s)", qq(c.Object), strings.Join(labels, ", "))
		}
	}
	return ""
}

// planReindex rebuilds CONCURRENTLY, outside a transaction: the same
// indexes after, while writes go on.
func planReindex(_ *schema.Snapshot, c change.Change) (*fragment, error) {
	f := newFragment()
	f.add(Expand, concurrent(c.Table, "rebuilds while reads and writes go on", c.Definition))
	return f, nil
}

// dataStatement: INSERT, UPDATE, DELETE, MERGE, TRUNCATE, a SELECT calling
// functions, a DO block running only queries.
type dataStatement struct{ recipe }

var _ Recipe = dataStatement{}

func (dataStatement) Plan(s *schema.Snapshot, c change.Change) (*fragment, error) {
	return planData(s, c)
}

func (dataStatement) Lint(c change.Change) []Finding {
	if c.Table == "" {
		return nil
	}
	return []Finding{lintFinding(RuleData, fmt.Sprintf("%s of %s", c.Reason, c.Table))}
}

// Moves: an UPDATE or DELETE of a table travels with the later change it
// prepares; an INSERT stays (N+1 may need its rows early).
func (dataStatement) Moves(c change.Change) Moves {
	return Moves{Deferrable: true, Travels: c.Table != "" && !strings.HasPrefix(c.Reason, "inserts")}
}

// dropObject: DROP VIEW, FUNCTION, TRIGGER, TYPE, SEQUENCE and the like.
type dropObject struct{ recipe }

var _ Recipe = dropObject{}

func (dropObject) Plan(s *schema.Snapshot, c change.Change) (*fragment, error) {
	return planDropObject(s, c)
}

func (dropObject) Lint(c change.Change) []Finding {
	return []Finding{lintFinding(RuleDropObject, fmt.Sprintf("drops %s %s", strings.ToLower(c.ObjectType), c.Object))}
}

func (dropObject) Moves(change.Change) Moves { return Moves{Deferrable: true} }

func (dropObject) Title(c change.Change) string {
	return fmt.Sprintf("Drop %s %s", strings.ToLower(c.ObjectType), c.Object)
}

// reindex: REINDEX INDEX or TABLE.
type reindex struct{ recipe }

var _ Recipe = reindex{}

func (reindex) Plan(s *schema.Snapshot, c change.Change) (*fragment, error) {
	return planReindex(s, c)
}

func (reindex) Lint(c change.Change) []Finding {
	if c.Concurrently {
		return nil
	}
	return []Finding{lintFinding(RuleReindex, fmt.Sprintf("reindexes %s without CONCURRENTLY", c.Object))}
}

func (reindex) Moves(change.Change) Moves { return Moves{Deferrable: true} }

func (reindex) Title(c change.Change) string { return "Reindex " + c.Object }
