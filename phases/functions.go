package phases

import (
	"fmt"
	"sort"
	"strings"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/schema"
)

// RuleDependentFunction flags functions that name a column a change renames
// or removes: PostgreSQL does not track what a function body reads, so
// neither the plain migration nor the plan changes them.
var RuleDependentFunction = rule("dependent-function", Warning,
	"a function or trigger function reads a column this change renames or removes; it will fail once the column is gone",
	"change the function in the same release (CREATE OR REPLACE FUNCTION in expand reading both names, or in contract)")

// functionFindings reads every function body with the SQL and PL/pgSQL
// parsers and reports those that use one of the table's columns: trigger
// functions of the table through NEW./OLD., others through a query naming
// the table and the column.
func functionFindings(s *schema.Snapshot, t *schema.Table, cols []string) []Finding {
	triggerFns := map[string][]string{} // "schema.name" -> trigger names on t
	for _, tr := range t.Triggers {
		triggerFns[tr.Function] = append(triggerFns[tr.Function], tr.Name)
	}
	keys := make([]string, 0, len(s.Functions))
	for k := range s.Functions {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []Finding
	for _, k := range keys {
		fn := s.Functions[k]
		refs, ok := change.FunctionBodyRefs(fn.Definition, fn.Language)
		if !ok {
			continue
		}
		name := schema.QualifiedName(fn.Schema, fn.Name)
		for _, col := range cols {
			switch {
			case len(triggerFns[name]) > 0 && refs.RowFields[col]:
				out = append(out, Finding{Rule: RuleDependentFunction, Severity: Warning,
					Message: fmt.Sprintf("trigger %s on %s calls %s, which uses NEW/OLD.%s: change the function in the same release", strings.Join(triggerFns[name], ", "), t.QName(), name, col)})
			case refs.Tables[t.Name] && refs.Columns[col]:
				out = append(out, Finding{Rule: RuleDependentFunction, Severity: Warning,
					Message: fmt.Sprintf("function %s(%s) queries %s and names a column %s: check it and change it in the same release", name, fn.Args, t.QName(), col)})
			}
		}
	}
	return out
}
