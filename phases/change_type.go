package phases

import (
	"fmt"
	"strings"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/schema"
)

func init() { register(change.ChangeType, changeType{}) }

// planChangeType: a shadow column of the new type is filled by a trigger and a
// backfill, validated NOT NULL if the column was, and renamed over the old
// column in contract; views reading it are recreated around the swap. With
// new_name (change spec) the new column is visible to N+1 under that name and
// synced both ways with the down expression.
func planChangeType(s *schema.Snapshot, c change.Change) (*fragment, error) {
	t, col, err := lookupTableColumn(s, c)
	if err != nil {
		return nil, err
	}
	up := c.Up
	if up == "" {
		up = fmt.Sprintf("%s::%s", q(col.Name), c.Type)
	}
	hidden := c.NewName == ""
	name := c.NewName
	if hidden {
		name = shadowName(col.Name)
	}
	down := c.Down
	if down == "" {
		down = fmt.Sprintf("%s::%s", q(name), col.Type)
	}
	if hidden {
		// The rollback rebuilds the old column from the shadow, which then
		// carries the column's name again.
		down = fmt.Sprintf("%s::%s", q(shadowName(col.Name)), col.Type)
	}
	f, err := planReshape(s, c, reshape{
		table:  t,
		olds:   []*schema.Column{col},
		news:   []change.Target{{Name: name, Type: c.Type, Up: up}},
		down:   map[string]string{col.Name: down},
		hidden: hidden,
	})
	if err != nil {
		return nil, err
	}
	if hidden {
		f.deploy = fmt.Sprintf("N+1 may rely on %s.%s being %s only after contract: until then it holds %s values, and writing one beyond them fails", t.QName(), col.Name, c.Type, col.Type)
		f.findings = append(f.findings, Finding{Rule: RuleResultType, Severity: Warning,
			Message: fmt.Sprintf("%s.%s becomes %s at contract: statements prepared before then that return it are refused once per session", t.QName(), col.Name, c.Type)})
		if col.Sequence != "" && (col.Type == "integer" || col.Type == "smallint") && (c.Type == "bigint" || c.Type == "int8") {
			f.findings = append(f.findings, Finding{Rule: RuleChangeType, Severity: Warning,
				Message: fmt.Sprintf("%s.%s becomes bigint but its sequence %s keeps its type (ALTER COLUMN TYPE does not change it), so new ids still stop at the old maximum: add ALTER SEQUENCE %s AS bigint to the migration", t.QName(), col.Name, col.Sequence, col.Sequence)})
		}
	} else {
		f.deploy = fmt.Sprintf("N+1 reads and writes %s.%s (%s)", t.QName(), name, c.Type)
	}
	return f, nil
}

// planCatalogueOnlyType plans a type change that the replay showed
// PostgreSQL makes without rewriting the table or any of its indexes
// (varchar growth, varchar to text, numeric precision growth and the other
// binary-compatible changes it documents): one short ACCESS EXCLUSIVE in
// expand, as written. A change to or from a time zone aware type is left to
// the shadow recipe: whether it rewrites depends on the session's TimeZone.
// ok is false when the shadow recipe should plan it.
func planCatalogueOnlyType(s *schema.Snapshot, obs *Observed, c change.Change) (*fragment, bool) {
	t, ok := s.Table(c.Table)
	if !ok {
		return nil, false
	}
	before, ok := t.Column(c.Column)
	if !ok {
		return nil, false
	}
	at, ok := obs.After.Table(c.Table)
	if !ok {
		return nil, false
	}
	after, ok := at.Column(c.Column)
	if !ok {
		return nil, false
	}
	if len(diffObjects(obs.Before, obs.After)) == 0 {
		// The same type again (ORMs restate it beside NULL changes).
		f := newFragment()
		f.findings = append(f.findings, Finding{Rule: RuleNoOp, Severity: Info,
			Message: fmt.Sprintf("%s.%s is %s already: nothing to plan", c.Table, c.Column, before.Type)})
		return f, true
	}
	if strings.Contains(before.Type, "time zone") || strings.Contains(after.Type, "time zone") {
		return nil, false
	}
	tn := t.QName()
	// Views reading the column are dropped and created again around it, in
	// the same transaction (PostgreSQL refuses to retype a column a view
	// reads); N reads them again the moment the transaction commits.
	views := s.ViewsUsing(tn, c.Column)
	for _, v := range views {
		if v.Materialized {
			return nil, false
		}
	}
	f := newFragment()
	aroundViews(f, views, ddl(tn, LockAccessExclusive,
		fmt.Sprintf("catalogue only: PostgreSQL keeps the table and its indexes (no rewrite on the scratch copy); %s to %s", before.Type, after.Type),
		c.SQL, fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s TYPE %s", qq(tn), q(c.Column), before.Type)))
	f.deploy = fmt.Sprintf("N+1 may write %s into %s.%s after expand", after.Type, tn, c.Column)
	return f, true
}

// aroundViews adds a type change to expand between dropping the views that
// read the column and creating them again from their definitions, all in
// one transaction: PostgreSQL refuses to retype a column a view reads, and
// N reads the views again the moment the transaction commits.
func aroundViews(f *fragment, views []*schema.View, retype Statement) {
	for i := len(views) - 1; i >= 0; i-- {
		f.add(Expand, ddl(views[i].QName(), LockAccessExclusive, "recreated below, around the type change", fmt.Sprintf("DROP VIEW %s", qq(views[i].QName())), createView(views[i])))
	}
	f.add(Expand, retype)
	for _, v := range views {
		f.add(Expand, ddl(v.QName(), LockAccessExclusive, "the view again", createView(v), fmt.Sprintf("DROP VIEW IF EXISTS %s", qq(v.QName()))))
	}
}

// changeType: ALTER COLUMN ... TYPE, and the change spec's change_type (with
// new_name, a rename too).
type changeType struct{ recipe }

var _ Recipe = changeType{}

func (changeType) Plan(s *schema.Snapshot, c change.Change) (*fragment, error) {
	return planChangeType(s, c)
}

func (changeType) Lint(c change.Change) []Finding {
	return []Finding{lintFinding(RuleChangeType, fmt.Sprintf("changes %s.%s to %s", c.Table, c.Column, c.Type))}
}

// Moves: deferrable when it needs no shadow column (a catalogue-only
// change; the generic test in order.go leaves out the others).
func (changeType) Moves(change.Change) Moves {
	return Moves{Deferrable: true, ReadsData: true, LocksTable: true}
}

func (changeType) OldShapes(c change.Change) ([]Shape, []string) {
	if c.NewName != "" {
		return []Shape{{Table: c.Table, Column: c.Column}}, nil
	}
	return nil, []string{fmt.Sprintf("the type change of %s.%s keeps the column's name: statements of N and N+1 cannot be told apart by name", c.Table, c.Column)}
}

func (changeType) Title(c change.Change) string {
	if c.NewName != "" {
		return fmt.Sprintf("Change %s.%s to %s %s", c.Table, c.Column, c.NewName, c.Type)
	}
	return fmt.Sprintf("Change %s.%s to %s", c.Table, c.Column, c.Type)
}
