package change

import (
	"encoding/json"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// BodyRefs is what a function body reads and writes, found with the SQL and
// PL/pgSQL parsers.
type BodyRefs struct {
	Tables  map[string]bool // relation names (last part) the body's queries name
	Columns map[string]bool // column names (last field of every column reference)
	// RowFields are fields read or set through NEW. or OLD. (trigger rows).
	RowFields map[string]bool
}

// FunctionBodyRefs reads a function's pg_get_functiondef output. ok is false
// when the body could not be parsed (another language, or a body the parsers
// refuse); the caller should then say so rather than guess.
func FunctionBodyRefs(definition, language string) (refs BodyRefs, ok bool) {
	refs = BodyRefs{Tables: map[string]bool{}, Columns: map[string]bool{}, RowFields: map[string]bool{}}
	var queries []string
	switch language {
	case "sql":
		tree, err := pg.Parse(definition)
		if err != nil || len(tree.Stmts) != 1 || tree.Stmts[0].Stmt.GetCreateFunctionStmt() == nil {
			return refs, false
		}
		fn := tree.Stmts[0].Stmt.GetCreateFunctionStmt()
		for _, o := range fn.Options {
			if d := o.GetDefElem(); d != nil && d.Defname == "as" {
				for _, item := range d.Arg.GetList().GetItems() {
					if s := item.GetString_(); s != nil {
						queries = append(queries, s.Sval)
					}
				}
			}
		}
		if fn.SqlBody != nil {
			refs.collect(fn.SqlBody)
		}
	case "plpgsql":
		js, err := pg.ParsePlPgSqlToJSON(definition)
		if err != nil {
			return refs, false
		}
		var tree any
		if err := json.Unmarshal([]byte(js), &tree); err != nil {
			return refs, false
		}
		collectQueries(tree, &queries)
	default:
		return refs, false
	}
	for _, q := range queries {
		tree, err := pg.Parse(q)
		if err != nil {
			// PL/pgSQL keeps assignments and bare expressions as text such as
			// "NEW.x = now()"; read them as an expression.
			if tree, err = pg.Parse("SELECT " + q); err != nil {
				continue
			}
		}
		for _, st := range tree.Stmts {
			refs.collect(st.Stmt)
		}
	}
	return refs, true
}

func (r *BodyRefs) collect(n *pg.Node) {
	walk(n, func(x *pg.Node) {
		if rv := x.GetRangeVar(); rv != nil {
			r.Tables[rv.Relname] = true
		}
		if cr := x.GetColumnRef(); cr != nil {
			parts := names(cr.Fields)
			if len(parts) == 0 {
				return
			}
			r.Columns[parts[len(parts)-1]] = true
			if len(parts) == 2 && (strings.EqualFold(parts[0], "new") || strings.EqualFold(parts[0], "old")) {
				r.RowFields[parts[1]] = true
			}
		}
	})
}

// collectQueries gathers every "query" string of a PL/pgSQL parse tree.
func collectQueries(v any, out *[]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if s, ok := val.(string); ok && k == "query" {
				*out = append(*out, s)
				continue
			}
			collectQueries(val, out)
		}
	case []any:
		for _, val := range x {
			collectQueries(val, out)
		}
	}
}
