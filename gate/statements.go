package gate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/phasekit/phasekit/internal/human"
	"github.com/phasekit/phasekit/phases"
)

// Shape is a column or table that N uses by name and that is gone (or no
// longer what N expects) once contract ran (phases.Shape: each change kind
// says which).
type Shape = phases.Shape

// OldShapes lists what the plan's contract takes away from N, by name, from
// the plan's changes; notes say what cannot be checked by name.
func OldShapes(p *phases.Plan) (shapes []Shape, notes []string) { return phases.OldShapes(p) }

// Uses parses one SQL text (a normalized query from pg_stat_statements, with
// $1 for constants) and returns the shapes its data statements (SELECT,
// INSERT, UPDATE, DELETE, MERGE, COPY, also under EXPLAIN, PREPARE and
// DECLARE) read or write. DDL is not looked at: phasekit's own phases
// name the old shapes. A column counts when the statement names its table
// and references the column unqualified or qualified by the table's name or
// alias; "*" and INSERT without a column list do not count (they survive
// the contract).
func Uses(sql string, shapes []Shape) ([]Shape, error) {
	tree, err := pg.Parse(sql)
	if err != nil {
		return nil, err
	}
	var out []Shape
	for _, raw := range tree.Stmts {
		top := dataStatement(raw.Stmt)
		if top == nil {
			continue
		}
		refs := collectRefs(top)
		for _, s := range shapes {
			if refs.uses(s) && !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out, nil
}

// dataStatement returns the data statement inside n, or nil for DDL and
// other utility statements.
func dataStatement(n *pg.Node) proto.Message {
	switch {
	case n == nil:
		return nil
	case n.GetSelectStmt() != nil:
		return n.GetSelectStmt()
	case n.GetInsertStmt() != nil:
		return n.GetInsertStmt()
	case n.GetUpdateStmt() != nil:
		return n.GetUpdateStmt()
	case n.GetDeleteStmt() != nil:
		return n.GetDeleteStmt()
	case n.GetMergeStmt() != nil:
		return n.GetMergeStmt()
	case n.GetCopyStmt() != nil:
		return n.GetCopyStmt()
	case n.GetExplainStmt() != nil:
		return dataStatement(n.GetExplainStmt().Query)
	case n.GetPrepareStmt() != nil:
		return dataStatement(n.GetPrepareStmt().Query)
	case n.GetDeclareCursorStmt() != nil:
		return dataStatement(n.GetDeclareCursorStmt().Query)
	}
	return nil
}

// refs is what one statement names.
type refs struct {
	tables  []*pg.RangeVar
	columns [][]string // column references, as their dotted parts
	// written are columns named by INSERT, UPDATE, ON CONFLICT DO UPDATE,
	// MERGE and COPY column lists, with the table they belong to.
	written []written
}

type written struct {
	rel *pg.RangeVar
	col string
}

func collectRefs(stmt proto.Message) *refs {
	r := &refs{}
	targets := func(rel *pg.RangeVar, list []*pg.Node) {
		for _, n := range list {
			if rt := n.GetResTarget(); rt != nil && rt.Name != "" {
				r.written = append(r.written, written{rel, rt.Name})
			}
		}
	}
	walkMessages(stmt.ProtoReflect(), func(m proto.Message) {
		switch x := m.(type) {
		case *pg.RangeVar:
			r.tables = append(r.tables, x)
		case *pg.ColumnRef:
			var parts []string
			for _, f := range x.Fields {
				if s := f.GetString_(); s != nil {
					parts = append(parts, s.Sval)
				}
			}
			if len(parts) == len(x.Fields) { // not a "*" reference
				r.columns = append(r.columns, parts)
			}
		case *pg.InsertStmt:
			targets(x.Relation, x.Cols)
			if x.OnConflictClause != nil {
				targets(x.Relation, x.OnConflictClause.TargetList)
			}
		case *pg.UpdateStmt:
			targets(x.Relation, x.TargetList)
		case *pg.MergeStmt:
			for _, w := range x.MergeWhenClauses {
				if mw := w.GetMergeWhenClause(); mw != nil {
					targets(x.Relation, mw.TargetList)
				}
			}
		case *pg.CopyStmt:
			for _, a := range x.Attlist {
				if s := a.GetString_(); s != nil {
					r.written = append(r.written, written{x.Relation, s.Sval})
				}
			}
		}
	})
	return r
}

// names reports whether a range variable names the shape's table; an
// unqualified name is taken to resolve to it (search_path).
func names(rv *pg.RangeVar, table string) bool {
	if rv == nil {
		return false
	}
	schema, name, ok := strings.Cut(table, ".")
	if !ok {
		schema, name = "", table
	}
	return rv.Relname == name && (rv.Schemaname == "" || rv.Schemaname == schema)
}

func (r *refs) uses(s Shape) bool {
	qualifiers := map[string]bool{}
	for _, rv := range r.tables {
		if !names(rv, s.Table) {
			continue
		}
		if s.Column == "" {
			return true
		}
		qualifiers[rv.Relname] = true
		if rv.Alias != nil {
			qualifiers[rv.Alias.Aliasname] = true
		}
	}
	if len(qualifiers) == 0 {
		return false
	}
	for _, w := range r.written {
		if w.col == s.Column && names(w.rel, s.Table) {
			return true
		}
	}
	for _, parts := range r.columns {
		n := len(parts)
		if parts[n-1] != s.Column {
			continue
		}
		switch n {
		case 1:
			return true
		case 2:
			if qualifiers[parts[0]] {
				return true
			}
		default: // schema.table.column (or database.schema.table.column)
			schema, _, _ := strings.Cut(s.Table, ".")
			if qualifiers[parts[n-2]] && parts[n-3] == schema {
				return true
			}
		}
	}
	return false
}

// walkMessages calls f on m and every message below it.
func walkMessages(m protoreflect.Message, f func(proto.Message)) {
	if !m.IsValid() {
		return
	}
	f(m.Interface())
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				walkMessages(l.Get(i).Message(), f)
			}
		case fd.Message() != nil && !fd.IsMap():
			walkMessages(v.Message(), f)
		}
		return true
	})
}

// StatementUse is a statement in pg_stat_statements that uses an old shape.
type StatementUse struct {
	QueryID int64    `json:"queryid"`
	Query   string   `json:"query"`
	Calls   int64    `json:"calls"`
	User    string   `json:"user"`
	Uses    []string `json:"uses"`
}

// checkStatements looks in pg_stat_statements for statements that still use
// what the contract takes away. lastDeploy is the latest deploy of N+1 to
// prod: statistics reset before it may hold statements from before it.
func checkStatements(ctx context.Context, conn *pgx.Conn, p *phases.Plan, lastDeploy time.Time) (Check, error) {
	c := Check{Name: CheckStatements, Status: Pass}
	shapes, notes := OldShapes(p)
	var what []string
	for _, s := range shapes {
		what = append(what, s.String())
	}
	if len(shapes) == 0 {
		c.Summary = "the contract takes away no column or table N names"
		c.Evidence = notes
		return c, nil
	}
	var schema string
	err := conn.QueryRow(ctx, `SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'`).Scan(&schema)
	if errors.Is(err, pgx.ErrNoRows) {
		c.Summary = "pg_stat_statements is not installed in this database: statements not checked"
		c.Evidence = append([]string{c.Summary + " (to check them: shared_preload_libraries = 'pg_stat_statements', then CREATE EXTENSION pg_stat_statements)"}, notes...)
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("look for pg_stat_statements: %w", err)
	}
	view := pgx.Identifier{schema, "pg_stat_statements"}.Sanitize()
	info := pgx.Identifier{schema, "pg_stat_statements_info"}.Sanitize()
	var reset time.Time
	if err := conn.QueryRow(ctx, "SELECT stats_reset FROM "+info).Scan(&reset); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55000" {
			// Created but not in shared_preload_libraries: nothing is recorded.
			c.Summary = "pg_stat_statements is installed but not loaded (shared_preload_libraries): statements not checked"
			c.Evidence = append([]string{c.Summary}, notes...)
			return c, nil
		}
		return c, fmt.Errorf("read %s: %w", info, err)
	}
	rows, err := conn.Query(ctx, `SELECT coalesce(queryid, 0), coalesce(query, ''), calls, coalesce(userid::regrole::text, userid::text) FROM `+view+`
		WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) ORDER BY calls DESC, queryid`)
	if err != nil {
		return c, fmt.Errorf("read %s: %w", view, err)
	}
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (StatementUse, error) {
		var s StatementUse
		err := r.Scan(&s.QueryID, &s.Query, &s.Calls, &s.User)
		return s, err
	})
	if err != nil {
		return c, fmt.Errorf("read %s: %w", view, err)
	}
	var hidden, unparsed int
	for _, s := range all {
		if s.Query == "<insufficient privilege>" {
			hidden++
			continue
		}
		uses, err := Uses(s.Query, shapes)
		if err != nil {
			unparsed++
			continue
		}
		for _, u := range uses {
			s.Uses = append(s.Uses, u.String())
		}
		if len(uses) > 0 {
			c.Statements = append(c.Statements, s)
		}
	}
	c.Evidence = append(c.Evidence, fmt.Sprintf("pg_stat_statements since its reset at %s: %d statement(s) of this database read, looking for %s",
		reset.UTC().Format(time.RFC3339), len(all), strings.Join(what, ", ")))
	for _, s := range c.Statements {
		c.Evidence = append(c.Evidence, fmt.Sprintf("queryid %d (%d calls, user %s) uses %s: %s", s.QueryID, s.Calls, s.User, strings.Join(s.Uses, ", "), human.Shorten(s.Query, 300)))
	}
	if unparsed > 0 {
		c.Evidence = append(c.Evidence, fmt.Sprintf("note: %d statement(s) could not be parsed and were skipped", unparsed))
	}
	c.Evidence = append(c.Evidence, notes...)
	if hidden > 0 {
		c.Status = Fail
		c.Summary = fmt.Sprintf("%d statement(s) of other roles are hidden from this role: grant it pg_read_all_stats so the gate can read them", hidden)
		c.Evidence = append(c.Evidence, c.Summary)
	}
	if len(c.Statements) > 0 {
		c.Status = Fail
		c.Summary = fmt.Sprintf("%d statement(s) in pg_stat_statements still use %s (queryid %d first)", len(c.Statements), strings.Join(what, ", "), c.Statements[0].QueryID)
		if !lastDeploy.IsZero() && reset.Before(lastDeploy) {
			c.Evidence = append(c.Evidence, fmt.Sprintf("note: the statistics were reset at %s, before the last prod deploy of N+1 at %s: these statements may have run before it. Once no N instance runs, reset them (SELECT pg_stat_statements_reset()) and check again",
				reset.UTC().Format(time.RFC3339), lastDeploy.UTC().Format(time.RFC3339)))
		}
		return c, nil
	}
	if c.Status == Pass {
		c.Summary = fmt.Sprintf("no statement in pg_stat_statements uses %s", strings.Join(what, ", "))
	}
	return c, nil
}
