package change

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/phasekit/phasekit/internal/human"
	"github.com/phasekit/phasekit/internal/pgdecode"
)

// DoRewriteHint ends the reason a DO block running DDL is refused with.
const DoRewriteHint = "write these as plain statements so phasekit can plan each one"

// doSafeKinds are the kinds a DO block may run and still be planned as one
// opaque statement in expand: nothing in them breaks N or takes a lock the
// catalogue's recipes exist to avoid.
var doSafeKinds = map[Kind]bool{Data: true, Safe: true, CreateTable: true, SessionSetting: true}

// classifyDo reads a DO block's PL/pgSQL body with PostgreSQL's PL/pgSQL
// parser and classifies every statement it runs. A block that only runs
// queries (and safe statements) is a data statement; one that runs DDL the
// catalogue would plan differently is Unknown with the reason naming that
// DDL, so lint reports it and the planner refuses to run it opaquely.
func classifyDo(d *pg.DoStmt) Change {
	body, lang := "", "plpgsql"
	for _, a := range d.Args {
		de := a.GetDefElem()
		if de == nil {
			continue
		}
		switch de.Defname {
		case "as":
			body = de.Arg.GetString_().GetSval()
		case "language":
			lang = de.Arg.GetString_().GetSval()
		}
	}
	if lang != "plpgsql" {
		return Change{Kind: Unknown, Reason: fmt.Sprintf("DO block in language %s: phasekit reads only PL/pgSQL bodies", lang)}
	}
	inner, dynamic, err := doStatements(body)
	if err != nil {
		return Change{Kind: Unknown, Reason: "DO block whose body PostgreSQL's PL/pgSQL parser refuses: " + err.Error()}
	}
	var unsafe []string
	var rels []string
	for _, q := range inner {
		tree, err := pgdecode.Parse(q)
		if err != nil {
			continue
		}
		for _, st := range tree.Stmts {
			// Only the kind, table and reason are read: no statement is printed.
			for _, c := range classify(st.Stmt, q, printer{skip: true}) {
				if !doSafeKinds[c.Kind] {
					what := string(c.Kind)
					if c.Table != "" {
						what += " on " + c.Table
					}
					if c.Reason != "" && c.Kind == Unknown {
						what = c.Reason
					}
					unsafe = append(unsafe, fmt.Sprintf("%s (%s)", human.Shorten(q, 60), what))
				}
			}
			rels = append(rels, relations(st.Stmt)...)
		}
	}
	if dynamic {
		unsafe = append(unsafe, "EXECUTE of a query built at run time (it cannot be read before it runs)")
	}
	if len(unsafe) > 0 {
		return Change{Kind: Unknown, ObjectType: "DO", Relations: rels, Reason: "DO block runs " + strings.Join(unsafe, "; ") +
			": " + DoRewriteHint}
	}
	c := Change{Kind: Data, Reason: fmt.Sprintf("DO block running %d quer%s", len(inner), plural(len(inner), "y", "ies"))}
	return c
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// doStatements returns the SQL statements a PL/pgSQL body runs (EXECUTE of
// a constant string included) and whether it runs dynamic SQL.
func doStatements(body string) (stmts []string, dynamic bool, err error) {
	fn := "CREATE FUNCTION phasekit_do() RETURNS void LANGUAGE plpgsql AS " + dollarQuote(body)
	js, err := pg.ParsePlPgSqlToJSON(fn)
	if err != nil {
		return nil, false, err
	}
	var tree any
	if err := json.Unmarshal([]byte(js), &tree); err != nil {
		return nil, false, err
	}
	var visit func(v any)
	visit = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				val := x[k]
				switch k {
				case "PLpgSQL_stmt_execsql":
					if q := exprQuery(val, "sqlstmt"); q != "" {
						stmts = append(stmts, q)
					}
					continue
				case "PLpgSQL_stmt_dynexecute":
					q := exprQuery(val, "query")
					if lit, ok := constantString(q); ok {
						stmts = append(stmts, lit)
					} else {
						dynamic = true
					}
					continue
				}
				visit(val)
			}
		case []any:
			for _, e := range x {
				visit(e)
			}
		}
	}
	visit(tree)
	return stmts, dynamic, nil
}

func exprQuery(v any, key string) string {
	m, _ := v.(map[string]any)
	e, _ := m[key].(map[string]any)
	pe, _ := e["PLpgSQL_expr"].(map[string]any)
	q, _ := pe["query"].(string)
	return q
}

// constantString reads an EXECUTE argument that is one string constant.
func constantString(q string) (string, bool) {
	tree, err := pg.Parse("SELECT " + q)
	if err != nil || len(tree.Stmts) != 1 {
		return "", false
	}
	sel := tree.Stmts[0].Stmt.GetSelectStmt()
	if sel == nil || len(sel.TargetList) != 1 {
		return "", false
	}
	c := sel.TargetList[0].GetResTarget().GetVal().GetAConst()
	if c == nil || c.GetSval() == nil {
		return "", false
	}
	return c.GetSval().Sval, true
}

// dollarQuote quotes s with a dollar tag it does not contain.
func dollarQuote(s string) string {
	tag := "$phasekit$"
	for i := 0; strings.Contains(s, tag); i++ {
		tag = fmt.Sprintf("$phasekit%d$", i)
	}
	return tag + s + tag
}
