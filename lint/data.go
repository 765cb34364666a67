package lint

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/phases"
)

// Data rule ids: the rows already in the database would make a change (or
// the VALIDATE of its NOT VALID form) fail.
const (
	RuleDataDuplicates      = "data-duplicates"
	RuleDataNulls           = "data-nulls"
	RuleDataCheckViolations = "data-check-violations"
	RuleDataOrphans         = "data-orphans"
)

// DataRules describes the data rules the way phases.Rules describes the
// static ones. They are all errors: the change cannot complete.
var DataRules = map[string]phases.Rule{
	RuleDataDuplicates: {ID: RuleDataDuplicates, Severity: phases.Error,
		Summary: "rows already hold duplicate keys: building the unique index fails",
		Recipe:  "resolve the duplicates (merge or delete rows, or choose a key that is unique) before the change; the sample shows duplicated keys"},
	RuleDataNulls: {ID: RuleDataNulls, Severity: phases.Error,
		Summary: "rows already hold NULLs: SET NOT NULL or ADD PRIMARY KEY fails",
		Recipe:  "backfill the NULLs first, e.g. a change spec set_not_null with a fill value; the sample shows rows by primary key"},
	RuleDataCheckViolations: {ID: RuleDataCheckViolations, Severity: phases.Error,
		Summary: "rows already violate the new CHECK: adding or validating it fails",
		Recipe:  "fix the rows (or the expression), then VALIDATE CONSTRAINT; the sample shows rows by primary key"},
	RuleDataOrphans: {ID: RuleDataOrphans, Severity: phases.Error,
		Summary: "rows reference keys missing from the referenced table: adding or validating the foreign key fails",
		Recipe:  "repair the orphans (insert the missing parents, set the reference NULL or delete the rows), then VALIDATE CONSTRAINT; the sample shows rows by primary key"},
}

// DataFinding is a problem with the rows already in the database.
type DataFinding struct {
	Rule    string     `json:"rule"`
	Pos     change.Pos `json:"pos"`
	Table   string     `json:"table"` // "schema.name" whose rows are counted
	Message string     `json:"message"`
	Count   int64      `json:"count"` // duplicated keys, or offending rows
	// SampleOf names what Sample holds: the key columns for duplicates, the
	// primary key (or ctid when the table has none) for the other rules.
	SampleOf string   `json:"sample_of,omitempty"`
	Sample   []string `json:"sample,omitempty"` // up to 5
	// Allowed is the reason given when the rule was silenced in the file.
	Allowed string `json:"allowed,omitempty"`
	// Skipped says why the check could not run, e.g. the table or column is
	// created by the migration itself; Count is 0 then.
	Skipped string `json:"skipped,omitempty"`
}

// sampleSize is how many offending keys or rows a finding shows.
const sampleSize = 5

// CheckData looks in the live database for rows that would make the changes
// fail, and sets r.Data to what it found: duplicates before a unique
// constraint, primary key or unique index; NULLs before SET NOT NULL or a
// primary key; rows violating a new CHECK; orphans of a new foreign key.
// Checks that found nothing are left out; a check that cannot run because
// its table or column does not exist yet is kept with Skipped set.
//
// Every check runs in one READ ONLY transaction, which is rolled back: a
// CHECK expression calling a function that writes fails instead of writing.
func CheckData(ctx context.Context, conn *pgx.Conn, r *Result, changes []change.Change) error {
	// REPEATABLE READ: every check sees the same snapshot of the rows.
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("data checks: begin a read-only transaction: %w", err)
	}
	// Rolled back even when ctx is cancelled, so the connection is usable after.
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	d := &dataChecker{tx: tx, found: []DataFinding{}}
	for _, c := range changes {
		if err := d.check(ctx, c); err != nil {
			return err
		}
	}
	sort.SliceStable(d.found, func(i, j int) bool { return posLess(d.found[i].Pos, d.found[j].Pos) })
	r.Data = d.found
	return nil
}

type dataChecker struct {
	tx    pgx.Tx
	found []DataFinding
}

// check runs the data checks the change's kind asks for
// (phases.DataChecks).
func (d *dataChecker) check(ctx context.Context, c change.Change) error {
	for _, dc := range phases.DataChecks(c) {
		var err error
		switch dc.What {
		case phases.DataDuplicates:
			keys := make([]string, len(dc.Columns))
			for i, col := range dc.Columns {
				keys[i] = change.QuoteIdent(col)
			}
			err = d.duplicates(ctx, c, keys, columnList(dc.Columns), "", dc.NullsDistinct)
		case phases.DataNulls:
			err = d.nulls(ctx, c, dc.Columns, dc.Statement)
		case phases.DataUniqueIndex:
			err = d.uniqueIndex(ctx, c)
		case phases.DataViolations:
			err = d.checkViolations(ctx, c)
		case phases.DataOrphans:
			err = d.orphans(ctx, c)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// uniqueIndex checks a CREATE UNIQUE INDEX. Its key and WHERE clause are read
// from the statement's parse tree: the change's Columns leave out expression
// keys, and a partial index only needs its own rows to be unique.
func (d *dataChecker) uniqueIndex(ctx context.Context, c change.Change) error {
	if c.Definition == "" {
		return nil
	}
	tree, err := pg.Parse(c.Definition)
	if err != nil {
		return fmt.Errorf("data checks: %s: parse index definition: %w", c.Pos, err)
	}
	if len(tree.Stmts) != 1 || tree.Stmts[0].Stmt.GetIndexStmt() == nil {
		return fmt.Errorf("data checks: %s: index definition is not one CREATE INDEX: %s", c.Pos, c.Definition)
	}
	ix := tree.Stmts[0].Stmt.GetIndexStmt()
	if !ix.Unique {
		return nil
	}
	var keys, names []string
	for _, p := range ix.IndexParams {
		e := p.GetIndexElem()
		if e == nil {
			continue
		}
		n := e.Expr
		if e.Name != "" {
			n = pg.MakeColumnRefNode([]*pg.Node{pg.MakeStrNode(e.Name)}, -1)
		}
		if len(e.Collation) > 0 {
			// A nondeterministic collation changes which values are equal.
			n = &pg.Node{Node: &pg.Node_CollateClause{CollateClause: &pg.CollateClause{Arg: n, Collname: e.Collation, Location: -1}}}
		}
		s, err := deparseExpr(tree.Version, n)
		if err != nil {
			return fmt.Errorf("data checks: %s: deparse index key: %w", c.Pos, err)
		}
		keys = append(keys, "("+s+")")
		names = append(names, s)
	}
	where := ""
	if ix.WhereClause != nil {
		if where, err = deparseExpr(tree.Version, ix.WhereClause); err != nil {
			return fmt.Errorf("data checks: %s: deparse index predicate: %w", c.Pos, err)
		}
	}
	return d.duplicates(ctx, c, keys, "("+strings.Join(names, ", ")+")", where, !ix.NullsNotDistinct)
}

// deparseExpr prints an expression with PostgreSQL's own deparser.
func deparseExpr(version int32, n *pg.Node) (string, error) {
	sel := &pg.SelectStmt{TargetList: []*pg.Node{pg.MakeResTargetNodeWithVal(n, -1)}}
	out, err := pg.Deparse(&pg.ParseResult{Version: version, Stmts: []*pg.RawStmt{{Stmt: &pg.Node{Node: &pg.Node_SelectStmt{SelectStmt: sel}}}}})
	if err != nil {
		return "", err
	}
	return strings.TrimPrefix(out, "SELECT "), nil
}

// duplicates counts the key values held by more than one row. keys are SQL
// expressions over the table; where restricts the rows (a partial index);
// nullsDistinct leaves out keys with a NULL, as a unique index does.
func (d *dataChecker) duplicates(ctx context.Context, c change.Change, keys []string, keyNames, where string, nullsDistinct bool) error {
	if len(keys) == 0 {
		return nil
	}
	inner := make([]string, len(keys))
	ks := make([]string, len(keys))
	notNull := make([]string, len(keys))
	for i, k := range keys {
		ks[i] = fmt.Sprintf("s.k%d", i+1)
		inner[i] = fmt.Sprintf("%s AS k%d", k, i+1)
		notNull[i] = ks[i] + " IS NOT NULL"
	}
	label := "coalesce(" + ks[0] + "::text, 'NULL')"
	if len(ks) > 1 {
		label = "ROW(" + strings.Join(ks, ", ") + ")::text"
	}
	q := "SELECT " + strings.Join(inner, ", ") + " FROM " + change.QuoteQualified(c.Table)
	if where != "" {
		q += " WHERE " + where
	}
	q = "SELECT " + label + ", count(*) OVER () FROM (" + q + ") s"
	if nullsDistinct {
		q += " WHERE " + strings.Join(notNull, " AND ")
	}
	// The window counts the groups left after HAVING, before LIMIT.
	q += " GROUP BY " + strings.Join(ks, ", ") + " HAVING count(*) > 1 ORDER BY count(*) DESC, " + strings.Join(ks, ", ") + fmt.Sprintf(" LIMIT %d", sampleSize)
	return d.run(ctx, c, RuleDataDuplicates, c.Table, keyNames, q, func(n int64) string {
		return fmt.Sprintf("%s of %s %s held by more than one row of %s: building the unique index for %s fails", plural(n, "value"), keyNames, areIs(n), c.Table, c.Constraint)
	})
}

// nulls counts the rows with a NULL in any of cols.
func (d *dataChecker) nulls(ctx context.Context, c change.Change, cols []string, stmt string) error {
	if len(cols) == 0 {
		return nil
	}
	key, err := d.rowKey(ctx, c.Table, "")
	if err != nil {
		return err
	}
	conds := make([]string, len(cols))
	for i, col := range cols {
		conds[i] = change.QuoteIdent(col) + " IS NULL"
	}
	q := fmt.Sprintf("SELECT %s, count(*) OVER () FROM %s WHERE %s ORDER BY %s LIMIT %d",
		key.label, change.QuoteQualified(c.Table), strings.Join(conds, " OR "), key.order, sampleSize)
	what := "NULL in " + cols[0]
	if len(cols) > 1 {
		what = "a NULL in " + columnList(cols)
	}
	return d.run(ctx, c, RuleDataNulls, c.Table, key.name, q, func(n int64) string {
		return fmt.Sprintf("%s of %s %s %s: %s fails", plural(n, "row"), c.Table, haveHas(n), what, stmt)
	})
}

// checkViolations counts the rows for which the CHECK expression is false;
// NULL passes a CHECK, and NOT (NULL) selects nothing.
func (d *dataChecker) checkViolations(ctx context.Context, c change.Change) error {
	if c.Expr == "" {
		return nil
	}
	key, err := d.rowKey(ctx, c.Table, "")
	if err != nil {
		return err
	}
	// Expr was deparsed from the parse tree, so it is one whole expression.
	q := fmt.Sprintf("SELECT %s, count(*) OVER () FROM %s WHERE NOT (%s) ORDER BY %s LIMIT %d",
		key.label, change.QuoteQualified(c.Table), c.Expr, key.order, sampleSize)
	return d.run(ctx, c, RuleDataCheckViolations, c.Table, key.name, q, func(n int64) string {
		return fmt.Sprintf("%s of %s %s CHECK (%s) of %s: adding or validating it fails", plural(n, "row"), c.Table, violate(n), c.Expr, c.Constraint)
	})
}

// orphans counts the rows whose foreign key columns are all set and match
// no row of the referenced table (MATCH SIMPLE, PostgreSQL's default).
func (d *dataChecker) orphans(ctx context.Context, c change.Change) error {
	if len(c.Columns) == 0 {
		return nil
	}
	refCols := c.RefColumns
	if len(refCols) == 0 {
		// REFERENCES t without columns means t's primary key.
		pk, err := d.primaryKey(ctx, c.RefTable)
		if err != nil {
			return err
		}
		if len(pk) == 0 {
			d.skip(c, RuleDataOrphans, c.Table, fmt.Sprintf("%s has no primary key for the foreign key to reference", c.RefTable))
			return nil
		}
		refCols = pk
	}
	if len(refCols) != len(c.Columns) {
		d.skip(c, RuleDataOrphans, c.Table, fmt.Sprintf("%d referencing columns but %d referenced ones", len(c.Columns), len(refCols)))
		return nil
	}
	// Aliases keep a self-referencing key (employee.reports_to) apart.
	key, err := d.rowKey(ctx, c.Table, "c")
	if err != nil {
		return err
	}
	set := make([]string, len(c.Columns))
	match := make([]string, len(c.Columns))
	for i, col := range c.Columns {
		set[i] = "c." + change.QuoteIdent(col) + " IS NOT NULL"
		match[i] = "p." + change.QuoteIdent(refCols[i]) + " = c." + change.QuoteIdent(col)
	}
	q := fmt.Sprintf("SELECT %s, count(*) OVER () FROM %s c WHERE %s AND NOT EXISTS (SELECT FROM %s p WHERE %s) ORDER BY %s LIMIT %d",
		key.label, change.QuoteQualified(c.Table), strings.Join(set, " AND "),
		change.QuoteQualified(c.RefTable), strings.Join(match, " AND "), key.order, sampleSize)
	return d.run(ctx, c, RuleDataOrphans, c.Table, key.name, q, func(n int64) string {
		return fmt.Sprintf("%s of %s %s %s with no match in %s %s: adding or validating foreign key %s fails",
			plural(n, "row"), c.Table, haveHas(n), columnList(c.Columns), c.RefTable, columnList(refCols), c.Constraint)
	})
}

// rowKey says how a sample names a row: by primary key, else by ctid.
type rowKey struct {
	name  string // what the sample values are, e.g. "customer_id"
	label string // SQL giving the row's key as text
	order string // SQL ordering the rows by key
}

func (d *dataChecker) rowKey(ctx context.Context, table, alias string) (rowKey, error) {
	pk, err := d.primaryKey(ctx, table)
	if err != nil {
		return rowKey{}, err
	}
	prefix := ""
	if alias != "" {
		prefix = alias + "."
	}
	switch len(pk) {
	case 0:
		// A table without a primary key (the one ADD PRIMARY KEY is for)
		// still has a physical row address to look rows up by.
		return rowKey{name: "ctid", label: prefix + "ctid::text", order: prefix + "ctid"}, nil
	case 1:
		col := prefix + change.QuoteIdent(pk[0])
		return rowKey{name: pk[0], label: col + "::text", order: col}, nil
	}
	cols := make([]string, len(pk))
	for i, c := range pk {
		cols[i] = prefix + change.QuoteIdent(c)
	}
	return rowKey{name: columnList(pk), label: "ROW(" + strings.Join(cols, ", ") + ")::text", order: strings.Join(cols, ", ")}, nil
}

// primaryKey returns the table's primary key columns in key order; none
// when it has no primary key or does not exist.
func (d *dataChecker) primaryKey(ctx context.Context, table string) ([]string, error) {
	rows, err := d.tx.Query(ctx, `
		SELECT a.attname
		FROM pg_index i
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
		WHERE i.indrelid = to_regclass($1) AND i.indisprimary
		ORDER BY array_position(i.indkey::int2[], a.attnum)`, change.QuoteQualified(table))
	if err != nil {
		return nil, fmt.Errorf("data checks: read the primary key of %s: %w", table, err)
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("data checks: read the primary key of %s: %w", table, err)
	}
	return cols, nil
}

// missingObject lists the SQLSTATEs of a check over a table, column, type or
// function that does not exist yet: the migration creates it, and a new
// object has no rows to check.
var missingObject = map[string]bool{
	"42P01": true, // undefined_table
	"42703": true, // undefined_column
	"42883": true, // undefined_function
	"42704": true, // undefined_object
	"3F000": true, // invalid_schema_name
}

// run executes one check query, which returns up to sampleSize rows of
// (sample text, total count), and records a finding when the count is not 0.
func (d *dataChecker) run(ctx context.Context, c change.Change, rule, table, sampleOf, q string, message func(int64) string) error {
	// A savepoint, so that a check over a missing object does not abort
	// the transaction the remaining checks run in.
	sp, err := d.tx.Begin(ctx)
	if err != nil {
		return fmt.Errorf("data checks: %s %s at %s: savepoint: %w", rule, table, c.Pos, err)
	}
	var (
		count  int64
		sample []string
	)
	rows, err := sp.Query(ctx, q)
	if err == nil {
		for rows.Next() {
			var s string
			if err = rows.Scan(&s, &count); err != nil {
				break
			}
			sample = append(sample, s)
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	if err != nil {
		_ = sp.Rollback(ctx)
		var pe *pgconn.PgError
		if errors.As(err, &pe) && missingObject[pe.Code] {
			d.skip(c, rule, table, pe.Message)
			return nil
		}
		return fmt.Errorf("data checks: %s %s at %s: %w", rule, table, c.Pos, err)
	}
	if err := sp.Commit(ctx); err != nil {
		return fmt.Errorf("data checks: %s %s at %s: release savepoint: %w", rule, table, c.Pos, err)
	}
	if count == 0 {
		return nil
	}
	d.found = append(d.found, DataFinding{
		Rule: rule, Pos: c.Pos, Table: table, Message: message(count), Count: count,
		SampleOf: sampleOf, Sample: sample, Allowed: allowed(c, rule),
	})
	return nil
}

func (d *dataChecker) skip(c change.Change, rule, table, why string) {
	d.found = append(d.found, DataFinding{Rule: rule, Pos: c.Pos, Table: table, Skipped: why, Allowed: allowed(c, rule),
		Message: fmt.Sprintf("%s on %s not checked: %s", c.Kind, table, why)})
}

// allowed returns the reason a "-- phasekit:allow" comment gave for rule.
func allowed(c change.Change, rule string) string {
	for _, a := range c.Allowed {
		if a.Rule == rule {
			if a.Reason == "" {
				return "(no reason given)"
			}
			return a.Reason
		}
	}
	return ""
}

func columnList(cols []string) string { return "(" + strings.Join(cols, ", ") + ")" }

func plural(n int64, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func areIs(n int64) string   { return pick(n, "is", "are") }
func haveHas(n int64) string { return pick(n, "has", "have") }
func violate(n int64) string { return pick(n, "violates", "violate") }
func pick(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
