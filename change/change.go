// Package change reads what a team wants to change (a SQL migration or a YAML
// change spec) into typed changes that carry the position they came from.
//
// SQL is read with pg_query_go, PostgreSQL's own parser: nothing here looks at
// SQL text with regular expressions.
package change

import (
	"fmt"
)

// Kind names a change in the catalogue.
type Kind string

// The change catalogue. Each kind has a planner in package phases.
const (
	RenameColumn    Kind = "rename_column"
	RenameTable     Kind = "rename_table"
	ChangeType      Kind = "change_type"
	DropColumn      Kind = "drop_column"
	DropTable       Kind = "drop_table"
	SetNotNull      Kind = "set_not_null"
	DropNotNull     Kind = "drop_not_null"
	SetDefault      Kind = "set_default"
	DropDefault     Kind = "drop_default"
	AddColumn       Kind = "add_column"
	AddForeignKey   Kind = "add_foreign_key"
	AddCheck        Kind = "add_check"
	AddUnique       Kind = "add_unique"
	AddPrimaryKey   Kind = "add_primary_key"
	CreateIndex     Kind = "create_index"
	DropIndex       Kind = "drop_index"
	SplitColumn     Kind = "split_column"
	MergeColumns    Kind = "merge_columns"
	RenameEnumValue Kind = "rename_enum_value"
	RemoveEnumValue Kind = "remove_enum_value"
	// Data is a data statement (INSERT, UPDATE, DELETE, TRUNCATE, MERGE, a
	// SELECT calling functions, a DO block that only runs queries): it runs as
	// written, in the phase of the destructive step it prepares, if any.
	Data Kind = "data"
	// DropObject drops a view, function, trigger, type, sequence, schema or
	// the like that N may still use: contract, unless the same migration
	// creates it again (then it is a replacement and runs in expand).
	DropObject Kind = "drop_object"
	// Reindex rebuilds indexes; planned CONCURRENTLY.
	Reindex Kind = "reindex"
	// CreateTable creates a new table: no running code uses it yet, so it and
	// every later change to it in the same migration are safe.
	CreateTable Kind = "create_table"
	// Safe is a statement that is already safe to run while old and new app
	// versions share the database (CREATE TABLE, ADD COLUMN of a nullable
	// column, COMMENT, ...). It passes through unchanged.
	Safe Kind = "safe"
	// SessionSetting is a SET statement (lock_timeout, statement_timeout...).
	SessionSetting Kind = "session_setting"
	// Unknown is a statement the catalogue does not know; it is reported as a
	// finding and never dropped silently.
	Unknown Kind = "unknown"
)

// Pos is where a change was written: file, 1-based line and column.
type Pos struct {
	File   string `json:"file"`
	Line   int    `json:"line"`
	Col    int    `json:"col"`
	Offset int    `json:"-"` // byte offset in the file
}

func (p Pos) String() string { return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col) }

// Target is one new column of a split (or the single column of a merge).
type Target struct {
	Name string `json:"name" yaml:"name"`
	Type string `json:"type" yaml:"type"`
	Up   string `json:"up" yaml:"up"` // expression over the old column(s)
}

// Change is one change to the schema, as written by the user.
type Change struct {
	Kind Kind   `json:"kind"`
	Pos  Pos    `json:"pos"`
	SQL  string `json:"sql"` // the statement as written (or as the spec implies)

	Table  string `json:"table,omitempty"`  // "schema.name"
	Column string `json:"column,omitempty"` // the column changed

	NewName string `json:"new_name,omitempty"` // rename target: column, table, enum value
	Type    string `json:"type,omitempty"`     // new column type, as SQL
	Up      string `json:"up,omitempty"`       // old -> new conversion, SQL over the old column
	Down    string `json:"down,omitempty"`     // new -> old conversion, SQL over the new column
	Default string `json:"default,omitempty"`  // default expression (set default, add column)
	Fill    string `json:"fill,omitempty"`     // value for existing NULLs before NOT NULL
	NotNull bool   `json:"not_null,omitempty"` // add column: NOT NULL
	// VolatileDefault marks an added column whose default must be computed
	// per row (random(), nextval(), a serial type), which rewrites the table.
	VolatileDefault bool `json:"volatile_default,omitempty"`

	Constraint string   `json:"constraint,omitempty"` // constraint or index name
	Expr       string   `json:"expr,omitempty"`       // CHECK expression
	Columns    []string `json:"columns,omitempty"`    // UNIQUE/PK/FK/index columns
	RefTable   string   `json:"ref_table,omitempty"`
	RefColumns []string `json:"ref_columns,omitempty"`
	// Definition is the clause as deparsed by PostgreSQL's own deparser, e.g.
	// "FOREIGN KEY (a) REFERENCES t (b) ON DELETE CASCADE" or a CREATE INDEX.
	Definition   string `json:"definition,omitempty"`
	Concurrently bool   `json:"concurrently,omitempty"` // index statement already CONCURRENTLY
	NotValid     bool   `json:"not_valid,omitempty"`    // constraint already NOT VALID
	Cascade      bool   `json:"cascade,omitempty"`      // DROP ... CASCADE
	IfExists     bool   `json:"if_exists,omitempty"`

	Into []Target `json:"into,omitempty"` // split: new columns
	From []string `json:"from,omitempty"` // merge: old columns
	// DownEach maps each old column of a merge (or the old column of a split)
	// to the expression that rebuilds it from the new shape.
	DownEach map[string]string `json:"down_each,omitempty"`

	Enum  string `json:"enum,omitempty"`  // "schema.name" of an enum type
	Value string `json:"value,omitempty"` // enum value renamed or removed
	// Replacement is what rows holding a removed enum value become.
	Replacement string `json:"replacement,omitempty"`

	// Setting and SettingValue are the name and value of a SET statement.
	Setting      string `json:"setting,omitempty"`
	SettingValue string `json:"setting_value,omitempty"`

	// NoArchive makes contract drop what it would archive; set by the
	// planner's options (phasekit plan --no-archive), not by input.
	NoArchive bool `json:"-"`
	// Spec is set for changes read from a change spec (no SQL text of their
	// own; phasekit runs them, always with a lock_timeout).
	Spec bool `json:"spec,omitempty"`
	// Reason says why a statement is Safe or Unknown.
	Reason string `json:"reason,omitempty"`
	// Aside marks a Safe statement that changes nothing an app version
	// relies on (a comment, a grant, statistics, storage options, a
	// constraint over an index that already enforces it): it may run in any
	// phase, so the planner may move it after a change it must follow.
	Aside bool `json:"aside,omitempty"`
	// NewColumns is set by the planner on a constraint or index whose
	// columns this migration adds, without a default: N never writes them.
	NewColumns bool `json:"-"`

	// Object names what a DropObject or Reindex statement acts on
	// ("schema.name", a trigger as "schema.table.trigger") and ObjectType
	// its kind, as PostgreSQL spells it ("VIEW", "FUNCTION", "INDEX"...).
	Object     string `json:"object,omitempty"`
	ObjectType string `json:"object_type,omitempty"`
	// Relations are every table, view or sequence the statement names,
	// "schema.name", so the planner can order statements that share them.
	Relations []string `json:"relations,omitempty"`
	// TakesDefaults: a data statement that may write a column's default
	// into Table (any INSERT, an UPDATE with SET c = DEFAULT), so a later
	// default change must not run before it.
	TakesDefaults bool `json:"-"`
	// Stmt is the index in Migration.Statements of the statement this change
	// comes from; one statement (an ALTER TABLE with several subcommands)
	// may give several changes.
	Stmt int `json:"stmt"`
	// Autocommit: the statement it comes from cannot run in a transaction
	// block (VACUUM, CREATE INDEX CONCURRENTLY...).
	Autocommit bool `json:"-"`
	// Replay is the SQL that has this change's effect alone, run on a
	// scratch copy to read the schema the next change is planned against;
	// "" for a change that is part of another's replay.
	Replay string `json:"-"`
	// Allowed lists lint rules silenced for this statement by a
	// "-- phasekit:allow rule-id reason" comment in the file.
	Allowed []Allow `json:"allowed,omitempty"`
}

// Allow is a lint rule silenced in the file, with the reason given.
type Allow struct {
	Rule   string `json:"rule"`
	Reason string `json:"reason"`
	Pos    Pos    `json:"pos"`
}

// Migration is every change read from one input file.
type Migration struct {
	File    string   `json:"file"`
	Changes []Change `json:"changes"`
	// Statements are the file's statements as written, in order; every
	// change points at its statement. A change spec has one statement per
	// change: its plain SQL equivalent (see Statement.Spec).
	Statements []Statement `json:"-"`
}

// Statement is one statement of a migration file, as written.
type Statement struct {
	Pos Pos
	SQL string
	// Autocommit marks statements PostgreSQL refuses in a transaction
	// block (CREATE INDEX CONCURRENTLY, VACUUM...): a replay runs them alone.
	Autocommit bool
	// Transaction marks BEGIN, COMMIT and the like: a replay skips them,
	// since it runs every statement in its own transaction.
	Transaction bool
}

// InputError is bad input: it names the file, line and column.
type InputError struct {
	Pos Pos
	Msg string
}

func (e *InputError) Error() string { return e.Pos.String() + ": " + e.Msg }
