package phases

import (
	"fmt"
	"strings"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/schema"
)

func init() {
	register(change.CreateIndex, createIndex{})
	register(change.DropIndex, dropIndex{})
	register(change.AddUnique, addUnique{})
	register(change.AddPrimaryKey, addUnique{})
}

// planCreateIndex builds the index CONCURRENTLY, outside a transaction, so
// writes go on while it builds.
func planCreateIndex(s *schema.Snapshot, c change.Change) (*fragment, error) {
	if v, ok := s.MaterializedView(c.Table); ok {
		// No app writes a materialized view: even a UNIQUE index (the one
		// REFRESH ... CONCURRENTLY needs) refuses nothing N writes.
		f := newFragment()
		f.add(Expand, concurrent(v.QName(), "an index of a materialized view: builds while reads go on (a REFRESH waits for it)", c.Definition,
			fmt.Sprintf("DROP INDEX CONCURRENTLY IF EXISTS %s", qq(schema.QualifiedName(v.Schema, c.Constraint)))))
		return f, nil
	}
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
	phase, why, deploy := createIndexPhase(c)
	f.deploy = deploy
	if t.Partitioned {
		return asWrittenOnPartitioned(s, t, c, phase, LockShare, why, deploy, "build an index CONCURRENTLY",
			fmt.Sprintf("create it ON ONLY %s, build each partition's index CONCURRENTLY and ATTACH PARTITION them", t.QName()),
			fmt.Sprintf("DROP INDEX IF EXISTS %s", qq(schema.QualifiedName(t.Schema, c.Constraint))))
	}
	f.add(phase, concurrent(t.QName(), why, c.Definition,
		fmt.Sprintf("DROP INDEX CONCURRENTLY IF EXISTS %s", qq(schema.QualifiedName(t.Schema, c.Constraint)))))
	return f, nil
}

// createIndexPhase is where an index is built: a unique index refuses N's
// duplicate writes from the moment it is built, so like a UNIQUE constraint
// it waits for contract, and N+1 must not rely on it before (deploy).
func createIndexPhase(c change.Change) (phase Kind, why, deploy string) {
	if c.NotNull && !c.NewColumns {
		return Contract, "UNIQUE: built once N (which may write duplicates) is gone, while reads and writes go on",
			fmt.Sprintf("N+1 must not rely on unique index %s before contract", c.Constraint)
	}
	return Expand, "builds while reads and writes go on", ""
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
	for _, v := range s.Views {
		for _, ix := range v.Indexes {
			if schema.QualifiedName(v.Schema, ix.Name) == c.Constraint {
				table, def = v.QName(), ix.Definition
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
	if t, ok := s.Table(table); ok && t.Partitioned {
		// PostgreSQL drops a partitioned table's index only in one
		// statement, its partitions' with it.
		drop := "DROP INDEX IF EXISTS " + qq(c.Constraint)
		if c.Cascade {
			drop += " CASCADE"
		}
		// pg_get_indexdef says ON ONLY for a partitioned table's index:
		// the rollback builds the partitions' too.
		whole, err := change.IndexVariant(def, false, false)
		if err != nil {
			return nil, &PlanError{Pos: c.Pos, Msg: err.Error()}
		}
		f.add(Contract, ddl(table, LockAccessExclusive, "N is gone; PostgreSQL cannot drop a partitioned table's index CONCURRENTLY: reads and writes of every partition wait for the drop (no scan)", drop, whole))
		return f, nil
	}
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
	build, attachIn, _ := enforcePhases(c)
	deploy := ""
	if build == Contract {
		deploy = fmt.Sprintf("N+1 must not rely on %s before contract", c.Constraint)
	}
	if t.Partitioned {
		return asWrittenOnPartitioned(s, t, c, build, LockAccessExclusive, enforceWhy(build), deploy, "attach a unique index built CONCURRENTLY as a constraint",
			"build the unique index on each partition CONCURRENTLY first, so the constraint's own build finds less to do",
			fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT IF EXISTS %s", qq(tn), q(c.Constraint)))
	}
	f := newFragment()
	idx := c.Constraint
	f.deploy = deploy
	f.add(build, concurrent(tn, "builds while reads and writes go on",
		fmt.Sprintf("CREATE UNIQUE INDEX CONCURRENTLY %s ON %s (%s)", q(idx), qq(tn), strings.Join(cols, ", ")),
		fmt.Sprintf("DROP INDEX CONCURRENTLY IF EXISTS %s", qq(schema.QualifiedName(t.Schema, idx)))))
	kind := "UNIQUE"
	if c.Kind == change.AddPrimaryKey {
		kind = "PRIMARY KEY"
		for _, name := range c.Columns {
			if col, _ := t.Column(name); !col.NotNull {
				setNotNullSteps(f, tn, name, build, attachIn, attachIn)
			}
		}
	}
	attach := ddl(tn, LockAccessExclusive, "attach the built index: no scan",
		fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s %s USING INDEX %s", qq(tn), q(c.Constraint), kind, q(idx)),
		fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT IF EXISTS %s", qq(tn), q(c.Constraint)))
	attach.NewTransaction = true
	f.add(attachIn, attach)
	return f, nil
}

// planRecreateIndex plans DROP INDEX x followed, later in the migration, by
// CREATE INDEX x with a new definition as one replacement: the new index is
// built CONCURRENTLY under a temporary name while the old one still serves
// N (in contract when it is UNIQUE, since N may write rows it refuses), and
// contract drops the old one CONCURRENTLY and gives the new one the name.
func planRecreateIndex(old *schema.Snapshot, drop, create change.Change) (*fragment, error) {
	var table *schema.Table
	var oldIx schema.Index
	for _, t := range old.Tables {
		for _, ix := range t.Indexes {
			if schema.QualifiedName(t.Schema, ix.Name) == drop.Constraint {
				table, oldIx = t, ix
			}
		}
	}
	if table == nil {
		return nil, &PlanError{Pos: drop.Pos, Msg: fmt.Sprintf("index %s does not exist", drop.Constraint)}
	}
	if oldIx.Constraint != "" {
		return nil, &PlanError{Pos: drop.Pos, Msg: fmt.Sprintf("index %s backs constraint %s: drop the constraint instead", drop.Constraint, oldIx.Constraint)}
	}
	if table.Partitioned {
		// No CONCURRENTLY there, and the partitions' indexes take names
		// from their columns, which the old ones hold until they go: as
		// the file does it, once N is gone.
		f := newFragment()
		newDef, err := change.IndexVariant(create.Definition, false, false)
		if err != nil {
			return nil, &PlanError{Pos: create.Pos, Msg: err.Error()}
		}
		oldDef, err := change.IndexVariant(oldIx.Definition, false, false)
		if err != nil {
			return nil, &PlanError{Pos: drop.Pos, Msg: err.Error()}
		}
		q := qq(drop.Constraint)
		f.add(Contract, ddl(table.QName(), LockAccessExclusive, "N is gone: the old definition goes (PostgreSQL cannot drop a partitioned table's index CONCURRENTLY)", "DROP INDEX IF EXISTS "+q, oldDef))
		f.add(Contract, ddl(table.QName(), LockShare, "the new definition (PostgreSQL cannot build a partitioned table's index CONCURRENTLY: writes to every partition wait)", newDef, "DROP INDEX IF EXISTS "+q))
		return f, nil
	}
	// Not shadowName's prefix: a retype earlier in the migration may build a
	// copy of the old index under that name.
	tmp := truncName("phasekit_re_" + create.Constraint)
	def, err := change.RenameIndex(create.Definition, tmp)
	if err != nil {
		return nil, &PlanError{Pos: create.Pos, Msg: err.Error()}
	}
	sch := schemaOf(create.Table)
	tmpQ := schema.QualifiedName(sch, tmp)
	f := newFragment()
	build := Expand
	why := "the new definition, built while reads and writes go on; N keeps the old index"
	if create.NotNull && !create.NewColumns {
		build = Contract
		why = "the new UNIQUE definition, built once N (which may write duplicates) is gone"
	}
	f.add(build, concurrent(create.Table, why, def, fmt.Sprintf("DROP INDEX CONCURRENTLY IF EXISTS %s", qq(tmpQ))))
	rebuild := strings.Replace(oldIx.Definition, " INDEX ", " INDEX CONCURRENTLY ", 1)
	f.add(Contract, concurrent(table.QName(), "the old definition goes", drop.Definition, rebuild))
	f.add(Contract, ddl(table.QName(), LockShareUpdateExclusive, "the new index takes the name",
		fmt.Sprintf("ALTER INDEX %s RENAME TO %s", qq(tmpQ), q(create.Constraint)),
		// IF EXISTS: a later change of the migration may have dropped it
		// with its column (DROP COLUMN ... CASCADE).
		fmt.Sprintf("ALTER INDEX IF EXISTS %s RENAME TO %s", qq(schema.QualifiedName(sch, create.Constraint)), q(tmp))))
	return f, nil
}

// truncName cuts a name to PostgreSQL's 63 bytes.
func truncName(n string) string {
	if len(n) > 63 {
		return n[:63]
	}
	return n
}

// createIndex: CREATE [UNIQUE] INDEX.
type createIndex struct{ recipe }

var _ Recipe = createIndex{}

func (createIndex) Plan(s *schema.Snapshot, c change.Change) (*fragment, error) {
	return planCreateIndex(s, c)
}

func (createIndex) Lint(c change.Change) []Finding {
	if c.Concurrently {
		return nil
	}
	return []Finding{lintFinding(RuleIndex, fmt.Sprintf("creates index %s without CONCURRENTLY", c.Constraint))}
}

// Moves: the classifier records UNIQUE in NotNull; a unique index reads
// the rows (duplicates fail it), a plain one does not care.
func (createIndex) Moves(c change.Change) Moves {
	return Moves{Deferrable: true, ReadsData: c.NotNull, CommutesWithData: !c.NotNull, SnapshotShows: true, LocksTable: !c.Concurrently}
}

func (createIndex) DataChecks(change.Change) []DataCheck {
	return []DataCheck{{What: DataUniqueIndex}}
}

// dropIndex: DROP INDEX.
type dropIndex struct{ recipe }

var _ Recipe = dropIndex{}

func (dropIndex) Plan(s *schema.Snapshot, c change.Change) (*fragment, error) {
	return planDropIndex(s, c)
}

func (dropIndex) Lint(c change.Change) []Finding {
	if c.Concurrently {
		return nil
	}
	return []Finding{lintFinding(RuleDropIndex, fmt.Sprintf("drops index %s without CONCURRENTLY", c.Constraint))}
}

func (dropIndex) Moves(change.Change) Moves {
	return Moves{Deferrable: true, SnapshotShows: true, LocksTable: true}
}

// addUnique: ADD CONSTRAINT ... UNIQUE and ADD PRIMARY KEY: one family,
// an index built CONCURRENTLY and attached.
type addUnique struct{ recipe }

var _ Recipe = addUnique{}

func (addUnique) Plan(s *schema.Snapshot, c change.Change) (*fragment, error) {
	return planAddUnique(s, c)
}

func (addUnique) Lint(c change.Change) []Finding {
	if c.Kind == change.AddPrimaryKey {
		return []Finding{lintFinding(RulePrimaryKey, fmt.Sprintf("adds PRIMARY KEY %s on an existing table", c.Constraint))}
	}
	return []Finding{lintFinding(RuleUnique, fmt.Sprintf("adds UNIQUE %s on an existing table", c.Constraint))}
}

func (addUnique) Moves(change.Change) Moves {
	return Moves{Deferrable: true, ReadsData: true, LocksTable: true}
}

// DataChecks: for ADD UNIQUE the classifier records NULLS NOT DISTINCT in
// NotNull; a primary key's NULLs are counted apart, so its duplicates
// leave them out.
func (addUnique) DataChecks(c change.Change) []DataCheck {
	if c.Kind == change.AddPrimaryKey {
		return []DataCheck{{What: DataNulls, Columns: c.Columns, Statement: "ADD PRIMARY KEY"}, {What: DataDuplicates, Columns: c.Columns, NullsDistinct: true}}
	}
	return []DataCheck{{What: DataDuplicates, Columns: c.Columns, NullsDistinct: !c.NotNull}}
}
