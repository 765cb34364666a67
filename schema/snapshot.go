// Package schema holds a snapshot of a PostgreSQL schema (the planner's view of
// the database) and reads one from a live server through pgx and pg_catalog.
//
// A Snapshot is plain data: the planner never touches a database, it only
// reads a Snapshot.
package schema

import (
	"fmt"
	"sort"
	"strings"
)

// Snapshot is the part of a database's catalogue the planner needs.
type Snapshot struct {
	ServerVersion int                 `json:"server_version"` // server_version_num, e.g. 150018
	Tables        map[string]*Table   `json:"tables"`         // key: "schema.name"
	Views         map[string]*View    `json:"views"`          // key: "schema.name"; views and materialized views
	Enums         map[string]*Enum    `json:"enums"`          // key: "schema.name"
	Functions     map[string]Function `json:"functions"`      // key: "schema.name(identity args)"
}

// Table is an ordinary or partitioned table.
type Table struct {
	Schema      string       `json:"schema"`
	Name        string       `json:"name"`
	Columns     []Column     `json:"columns"` // in attnum order, dropped columns left out
	Constraints []Constraint `json:"constraints,omitempty"`
	Indexes     []Index      `json:"indexes,omitempty"`
	Triggers    []Trigger    `json:"triggers,omitempty"`
	RowEstimate int64        `json:"row_estimate"` // pg_class.reltuples; -1 when never analysed
	SizeBytes   int64        `json:"size_bytes"`   // pg_total_relation_size
	Partitioned bool         `json:"partitioned,omitempty"`
	PartitionOf string       `json:"partition_of,omitempty"` // "schema.parent" for a partition
	// ReferencedBy lists foreign keys on other tables that point at this one.
	ReferencedBy []Constraint `json:"referenced_by,omitempty"`
	// Comment is the table's comment (COMMENT ON TABLE).
	Comment string `json:"comment,omitempty"`
}

// Column is one column of a table.
type Column struct {
	Name      string `json:"name"`
	Type      string `json:"type"` // format_type(atttypid, atttypmod), e.g. "character varying(60)"
	NotNull   bool   `json:"not_null"`
	Default   string `json:"default,omitempty"`   // pg_get_expr(adbin), empty when none
	Identity  string `json:"identity,omitempty"`  // "a" (ALWAYS), "d" (BY DEFAULT) or ""
	Generated string `json:"generated,omitempty"` // generation expression of a STORED generated column
	Position  int    `json:"position"`            // attnum
	// Sequence is the sequence the column owns ("schema.name"): a serial's
	// (OWNED BY) or an identity's; empty when none.
	Sequence string `json:"sequence,omitempty"`
	// Comment is the column's comment (COMMENT ON COLUMN).
	Comment string `json:"comment,omitempty"`
}

// ConstraintType is the pg_constraint.contype of a constraint.
type ConstraintType string

// Constraint types, as in pg_constraint.contype.
const (
	PrimaryKey ConstraintType = "p"
	Unique     ConstraintType = "u"
	ForeignKey ConstraintType = "f"
	Check      ConstraintType = "c"
	Exclusion  ConstraintType = "x"
)

// Constraint is a table constraint.
type Constraint struct {
	Name       string         `json:"name"`
	Table      string         `json:"table"` // "schema.name" of the table that owns it
	Type       ConstraintType `json:"type"`
	Columns    []string       `json:"columns,omitempty"`
	Definition string         `json:"definition"` // pg_get_constraintdef
	RefTable   string         `json:"ref_table,omitempty"`
	RefColumns []string       `json:"ref_columns,omitempty"`
	Validated  bool           `json:"validated"`
	Index      string         `json:"index,omitempty"` // backing index of a PK/UNIQUE/EXCLUDE constraint
}

// Index is an index on a table.
type Index struct {
	Name       string   `json:"name"`
	Columns    []string `json:"columns,omitempty"` // plain key columns; empty entries for expressions
	Unique     bool     `json:"unique,omitempty"`
	Primary    bool     `json:"primary,omitempty"`
	Valid      bool     `json:"valid"`
	Definition string   `json:"definition"`           // pg_get_indexdef
	Constraint string   `json:"constraint,omitempty"` // owning constraint, if any
}

// Trigger is a user trigger on a table (internal constraint triggers are left out).
type Trigger struct {
	Name       string `json:"name"`
	Function   string `json:"function"` // "schema.name" of the function it calls
	Definition string `json:"definition"`
	Enabled    string `json:"enabled"` // pg_trigger.tgenabled: O, D, R, A
}

// View is a view or materialized view, with the table columns it reads.
type View struct {
	Schema       string      `json:"schema"`
	Name         string      `json:"name"`
	Materialized bool        `json:"materialized,omitempty"`
	Definition   string      `json:"definition"` // pg_get_viewdef(oid, true)
	Columns      []string    `json:"columns"`    // output columns, in order
	DependsOn    []ColumnRef `json:"depends_on,omitempty"`
	// DependsOnViews lists views and materialized views this one selects from.
	DependsOnViews []string `json:"depends_on_views,omitempty"`
	Options        []string `json:"options,omitempty"` // reloptions, e.g. security_barrier=true
	Indexes        []Index  `json:"indexes,omitempty"` // for materialized views
	Comment        string   `json:"comment,omitempty"`
}

// ColumnRef names a column of a table or view.
type ColumnRef struct {
	Relation string `json:"relation"` // "schema.name"
	Column   string `json:"column"`
}

// Enum is an enum type with its labels in sort order.
type Enum struct {
	Schema string   `json:"schema"`
	Name   string   `json:"name"`
	Values []string `json:"values"`
}

// Function is a function or procedure (trigger functions included).
type Function struct {
	Schema     string `json:"schema"`
	Name       string `json:"name"`
	Args       string `json:"args"` // pg_get_function_identity_arguments
	Language   string `json:"language"`
	Definition string `json:"definition,omitempty"` // pg_get_functiondef
}

// QualifiedName is "schema.name"; an empty schema means public.
func QualifiedName(schemaName, name string) string {
	if schemaName == "" {
		schemaName = "public"
	}
	return schemaName + "." + name
}

// Table returns the table with the given schema-qualified or bare name.
func (s *Snapshot) Table(name string) (*Table, bool) {
	if s == nil {
		return nil, false
	}
	if !strings.Contains(name, ".") {
		name = "public." + name
	}
	t, ok := s.Tables[name]
	return t, ok
}

// MaterializedView returns the materialized view with the given
// schema-qualified or bare name.
func (s *Snapshot) MaterializedView(name string) (*View, bool) {
	if s == nil {
		return nil, false
	}
	if !strings.Contains(name, ".") {
		name = "public." + name
	}
	v, ok := s.Views[name]
	return v, ok && v.Materialized
}

// QName is the table's "schema.name".
func (t *Table) QName() string { return QualifiedName(t.Schema, t.Name) }

// Column returns the named column.
func (t *Table) Column(name string) (*Column, bool) {
	for i := range t.Columns {
		if t.Columns[i].Name == name {
			return &t.Columns[i], true
		}
	}
	return nil, false
}

// PrimaryKeyColumns returns the primary key's columns, or nil.
func (t *Table) PrimaryKeyColumns() []string {
	for _, c := range t.Constraints {
		if c.Type == PrimaryKey {
			return c.Columns
		}
	}
	return nil
}

// UniqueNotNullKey returns the columns of the first valid unique index whose
// columns are all NOT NULL (no expression columns): a key a backfill can
// walk when the table has no primary key. nil when there is none.
func (t *Table) UniqueNotNullKey() []string {
	for _, ix := range t.Indexes {
		if !ix.Unique || !ix.Valid || len(ix.Columns) == 0 {
			continue
		}
		ok := true
		for _, name := range ix.Columns {
			col, found := t.Column(name)
			if name == "" || !found || !col.NotNull {
				ok = false
				break
			}
		}
		if ok {
			return ix.Columns
		}
	}
	return nil
}

// ColumnNames lists the table's column names in order.
func (t *Table) ColumnNames() []string {
	out := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		out[i] = c.Name
	}
	return out
}

// ViewsUsing lists the views that read the given table column, directly or
// through other views, ordered so that a view comes after the views it reads
// (the order to create them in; reverse it to drop them).
func (s *Snapshot) ViewsUsing(table, column string) []*View {
	direct := map[string]bool{}
	for k, v := range s.Views {
		for _, d := range v.DependsOn {
			if d.Relation == table && (column == "" || d.Column == column) {
				direct[k] = true
			}
		}
	}
	return s.closeOverViews(direct)
}

// closeOverViews adds every view that reads a view in set, and orders the
// result dependencies first.
func (s *Snapshot) closeOverViews(set map[string]bool) []*View {
	for changed := true; changed; {
		changed = false
		for k, v := range s.Views {
			if set[k] {
				continue
			}
			for _, d := range v.DependsOnViews {
				if set[d] {
					set[k] = true
					changed = true
					break
				}
			}
		}
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []*View
	done := map[string]bool{}
	var visit func(k string)
	visit = func(k string) {
		if done[k] || !set[k] {
			return
		}
		done[k] = true
		for _, d := range s.Views[k].DependsOnViews {
			visit(d)
		}
		out = append(out, s.Views[k])
	}
	for _, k := range keys {
		visit(k)
	}
	return out
}

// QName is the view's "schema.name".
func (v *View) QName() string { return QualifiedName(v.Schema, v.Name) }

// Suggest returns the candidate closest to name by edit distance, for
// "did you mean" messages, or "" when nothing is close.
func Suggest(name string, candidates []string) string {
	best, bestD := "", len(name)/2+2
	for _, c := range candidates {
		if d := levenshtein(strings.ToLower(name), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// TableNames lists every table's qualified name, sorted.
func (s *Snapshot) TableNames() []string {
	out := make([]string, 0, len(s.Tables))
	for k := range s.Tables {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// MissingTableError reports a table the change names that the schema lacks.
type MissingTableError struct {
	Name       string
	Suggestion string
}

func (e *MissingTableError) Error() string {
	if e.Suggestion != "" {
		return fmt.Sprintf("table %s does not exist (did you mean %s?)", e.Name, e.Suggestion)
	}
	return fmt.Sprintf("table %s does not exist", e.Name)
}
