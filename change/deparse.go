package change

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/phasekit/phasekit/internal/pgdecode"
)

// treeVersion is the parse tree version the deparser expects; trees we build
// by hand must carry it.
var treeVersion = sync.OnceValue(func() int32 {
	r, err := pgdecode.Parse("SELECT 1")
	if err != nil {
		panic("pg_query cannot parse SELECT 1: " + err.Error())
	}
	return r.Version
})

// deparseStmt prints a statement with PostgreSQL's own deparser.
func deparseStmt(n *pg.Node) string {
	out, err := pgdecode.Deparse(&pg.ParseResult{Version: treeVersion(), Stmts: []*pg.RawStmt{{Stmt: n}}})
	if err != nil {
		// Deparse only fails on trees the parser did not make; ours came from it.
		return "/* cannot deparse: " + err.Error() + " */"
	}
	return out
}

// deparseExpr prints an expression by deparsing "SELECT expr".
func deparseExpr(n *pg.Node) string {
	sel := &pg.SelectStmt{TargetList: []*pg.Node{{Node: &pg.Node_ResTarget{ResTarget: &pg.ResTarget{Val: n}}}}}
	s := deparseStmt(&pg.Node{Node: &pg.Node_SelectStmt{SelectStmt: sel}})
	return strings.TrimPrefix(s, "SELECT ")
}

// deparseType prints a type name by deparsing "SELECT NULL::type". The
// same few types come back again and again (bigint, text, varchar(255)):
// a name with a typeKey is deparsed once a process.
func deparseType(t *pg.TypeName) string {
	if t == nil {
		return ""
	}
	key, ok := typeKey(t)
	if ok {
		if s, ok := typeNames.Load(key); ok {
			return s.(string)
		}
	}
	s := deparseTypeName(t)
	if ok && typeNamesStored.Add(1) <= maxTypeNames {
		typeNames.Store(key, s)
	}
	return s
}

// typeNames holds deparseType's results by typeKey, up to maxTypeNames.
var (
	typeNames       sync.Map
	typeNamesStored atomic.Int64
)

const maxTypeNames = 4096

// typeKey is everything of a type name the deparser reads, as a string:
// its names, its modifiers when they are integer constants (varchar(255),
// numeric(10,2)), its array bounds and flags; its location aside, which
// the deparser does not print. A name with a modifier of any other form
// has no key (ok false) and is deparsed each time. TestTypeKeyFields
// fails when pg_query adds a field to TypeName.
func typeKey(t *pg.TypeName) (key string, ok bool) {
	b := make([]byte, 0, 64)
	for _, n := range t.Names {
		s := n.GetString_()
		if s == nil {
			return "", false
		}
		b = append(b, s.Sval...)
		b = append(b, 0) // no identifier holds a NUL
	}
	b = append(b, '|')
	for _, n := range t.Typmods {
		c := n.GetAConst()
		if c == nil || c.Isnull || c.GetIval() == nil {
			return "", false
		}
		b = strconv.AppendInt(b, int64(c.GetIval().Ival), 10)
		b = append(b, ',')
	}
	b = append(b, '|')
	for _, n := range t.ArrayBounds {
		i := n.GetInteger()
		if i == nil {
			return "", false
		}
		b = strconv.AppendInt(b, int64(i.Ival), 10)
		b = append(b, ',')
	}
	b = append(b, '|')
	b = strconv.AppendUint(b, uint64(t.TypeOid), 10)
	b = append(b, '|')
	b = strconv.AppendInt(b, int64(t.Typemod), 10)
	b = strconv.AppendBool(b, t.Setof)
	b = strconv.AppendBool(b, t.PctType)
	return string(b), true
}

func deparseTypeName(t *pg.TypeName) string {
	cast := &pg.TypeCast{Arg: &pg.Node{Node: &pg.Node_AConst{AConst: &pg.A_Const{Isnull: true}}}, TypeName: t}
	s := deparseExpr(&pg.Node{Node: &pg.Node_TypeCast{TypeCast: cast}})
	return strings.TrimPrefix(s, "NULL::")
}

func deparseArgs(args []*pg.Node) string {
	parts := make([]string, 0, len(args))
	for _, a := range args {
		parts = append(parts, deparseExpr(a))
	}
	return strings.Join(parts, ", ")
}

// walk calls f on n and on every node below it, depth first, each message's
// fields in declaration order.
func walk(n *pg.Node, f func(*pg.Node)) {
	walkMessages(n, func(m any) {
		if node, ok := m.(*pg.Node); ok {
			f(node)
		}
	})
}

// walkMessages calls f with every message under n, n included: the nodes and
// the messages held directly (an INSERT's target RangeVar is no Node).
//
// It runs a walker generated for pg_query_go's types (pgdecode.Walk), which
// reads each struct's message fields directly: several times faster than
// walking them with the reflect package (walkReflect in the tests, which
// checks it visits the same messages in the same order).
func walkMessages(n *pg.Node, f func(any)) {
	pgdecode.Walk(n, f)
}

// QualifyColumns rewrites an expression so that each bare reference to one of
// cols reads qualifier.col instead (e.g. "lower(email)" -> "lower(NEW.email)"),
// through the parse tree, not the text.
func QualifyColumns(expr, qualifier string, cols []string) (string, error) {
	tree, err := pg.Parse("SELECT " + expr)
	if err != nil {
		return "", fmt.Errorf("expression %q: %w", expr, err)
	}
	want := map[string]bool{}
	for _, c := range cols {
		want[c] = true
	}
	walk(tree.Stmts[0].Stmt, func(n *pg.Node) {
		cr := n.GetColumnRef()
		if cr == nil || len(cr.Fields) != 1 {
			return
		}
		if s := cr.Fields[0].GetString_(); s != nil && want[s.Sval] {
			cr.Fields = append([]*pg.Node{pg.MakeStrNode(qualifier)}, cr.Fields...)
		}
	})
	return strings.TrimPrefix(deparseStmt(tree.Stmts[0].Stmt), "SELECT "), nil
}

// ExprColumns lists the bare column names an expression reads.
func ExprColumns(expr string) ([]string, error) {
	tree, err := pg.Parse("SELECT " + expr)
	if err != nil {
		return nil, fmt.Errorf("expression %q: %w", expr, err)
	}
	return columnRefs(tree.Stmts[0].Stmt), nil
}

// QuoteIdent quotes an identifier when PostgreSQL needs it quoted.
func QuoteIdent(s string) string {
	if s == "" {
		return `""`
	}
	plain := true
	for i, r := range s {
		if !(r == '_' || (r >= 'a' && r <= 'z') || (i > 0 && r >= '0' && r <= '9') || (i > 0 && r == '$')) {
			plain = false
			break
		}
	}
	if plain && !isKeyword(s) {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// isKeyword asks the real scanner whether s is a reserved or type/function
// keyword that must be quoted as an identifier.
func isKeyword(s string) bool {
	if v, ok := keywordCache.Load(s); ok {
		return v.(bool)
	}
	k := scanKeyword(s)
	keywordCache.Store(s, k)
	return k
}

// keywordCache remembers scanner answers: plans quote the same few names
// many times, and each scan is a cgo call.
var keywordCache sync.Map

func scanKeyword(s string) bool {
	res, err := pg.Scan(s)
	if err != nil || len(res.Tokens) != 1 {
		return true
	}
	k := res.Tokens[0].KeywordKind
	return k == pg.KeywordKind_RESERVED_KEYWORD || k == pg.KeywordKind_TYPE_FUNC_NAME_KEYWORD || k == pg.KeywordKind_COL_NAME_KEYWORD
}

// QuoteQualified quotes "schema.name" as schema.name with each part quoted.
func QuoteQualified(q string) string {
	parts := strings.SplitN(q, ".", 2)
	if len(parts) == 1 {
		return QuoteIdent(q)
	}
	return QuoteIdent(parts[0]) + "." + QuoteIdent(parts[1])
}

// QuoteLiteral quotes a string as an SQL literal.
func QuoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// RewriteEnumLiteral rewrites a default expression such as
// 'G'::public.mpaa_rating for a changed enum: casts to fromType become casts
// to toType, and the label from becomes to (to = "" leaves labels alone).
// It works on the parse tree, not the text.
func RewriteEnumLiteral(expr, fromType, toType, from, to string) (string, error) {
	tree, err := pg.Parse("SELECT " + expr)
	if err != nil {
		return "", fmt.Errorf("expression %q: %w", expr, err)
	}
	fromParts := strings.Split(fromType, ".")
	toParts := strings.Split(toType, ".")
	walk(tree.Stmts[0].Stmt, func(n *pg.Node) {
		tc := n.GetTypeCast()
		if tc == nil || tc.TypeName == nil {
			return
		}
		got := names(tc.TypeName.Names)
		if strings.Join(got, ".") != strings.Join(fromParts, ".") && !(len(got) == 1 && got[0] == fromParts[len(fromParts)-1]) {
			return
		}
		tc.TypeName.Names = nil
		for _, p := range toParts {
			tc.TypeName.Names = append(tc.TypeName.Names, pg.MakeStrNode(p))
		}
		if c := tc.Arg.GetAConst(); c != nil && c.GetSval() != nil && to != "" && c.GetSval().Sval == from {
			c.GetSval().Sval = to
		}
	})
	return strings.TrimPrefix(deparseStmt(tree.Stmts[0].Stmt), "SELECT "), nil
}

// RenameIndex returns a CREATE INDEX statement with the index named name.
func RenameIndex(createIndex, name string) (string, error) {
	tree, err := pg.Parse(createIndex)
	if err != nil || len(tree.Stmts) != 1 || tree.Stmts[0].Stmt.GetIndexStmt() == nil {
		return "", fmt.Errorf("not one CREATE INDEX statement: %s", createIndex)
	}
	tree.Stmts[0].Stmt.GetIndexStmt().Idxname = name
	return deparseStmt(tree.Stmts[0].Stmt), nil
}

// RetargetIndex rewrites an index definition (pg_get_indexdef) to build the
// same index (CONCURRENTLY, if asked) under another name, on column to
// instead of from: key columns, expressions and the WHERE clause alike.
func RetargetIndex(def, name, from, to string, concurrently bool) (string, error) {
	tree, err := pg.Parse(def)
	if err != nil || len(tree.Stmts) != 1 || tree.Stmts[0].Stmt.GetIndexStmt() == nil {
		return "", fmt.Errorf("not one CREATE INDEX statement: %s", def)
	}
	ix := tree.Stmts[0].Stmt.GetIndexStmt()
	ix.Idxname, ix.Concurrent, ix.IfNotExists = name, concurrently, false
	walk(tree.Stmts[0].Stmt, func(n *pg.Node) {
		if e := n.GetIndexElem(); e != nil && e.Name == from {
			e.Name = to
		}
		renameColumnRef(n, from, to)
	})
	return deparseStmt(tree.Stmts[0].Stmt), nil
}

// IndexVariant rewrites a CREATE INDEX statement or definition: with only,
// ON ONLY its table (a partitioned table's index, no partition's built),
// without, on the table and its partitions (pg_get_indexdef writes ON ONLY
// for a partitioned table's index); with concurrently, CONCURRENTLY; IF NOT
// EXISTS left out.
func IndexVariant(def string, only, concurrently bool) (string, error) {
	tree, err := pg.Parse(def)
	if err != nil || len(tree.Stmts) != 1 || tree.Stmts[0].Stmt.GetIndexStmt() == nil {
		return "", fmt.Errorf("not one CREATE INDEX statement: %s", def)
	}
	ix := tree.Stmts[0].Stmt.GetIndexStmt()
	ix.Concurrent, ix.IfNotExists = concurrently, false
	if ix.Relation != nil {
		ix.Relation.Inh = !only
	}
	return deparseStmt(tree.Stmts[0].Stmt), nil
}

// RetargetReference rewrites a foreign key's definition
// (pg_get_constraintdef) as "ALTER TABLE table ADD CONSTRAINT name ... NOT
// VALID" referencing column to instead of from.
func RetargetReference(table, name, def, from, to string) (string, error) {
	sql := "ALTER TABLE " + QuoteQualified(table) + " ADD CONSTRAINT " + QuoteIdent(name) + " " + def
	tree, err := pg.Parse(sql)
	if err != nil || len(tree.Stmts) != 1 || tree.Stmts[0].Stmt.GetAlterTableStmt() == nil {
		return "", fmt.Errorf("not a constraint definition: %s", def)
	}
	found := false
	walk(tree.Stmts[0].Stmt, func(n *pg.Node) {
		if con := n.GetConstraint(); con != nil && con.Contype == pg.ConstrType_CONSTR_FOREIGN {
			con.SkipValidation, con.InitiallyValid = true, false
			for _, a := range con.PkAttrs {
				if s := a.GetString_(); s != nil && s.Sval == from {
					s.Sval, found = to, true
				}
			}
		}
	})
	if !found {
		return "", fmt.Errorf("foreign key %s does not reference %s: %s", name, from, def)
	}
	return deparseStmt(tree.Stmts[0].Stmt), nil
}

// renameColumnRef renames a column reference's last field.
func renameColumnRef(n *pg.Node, from, to string) {
	cr := n.GetColumnRef()
	if cr == nil || len(cr.Fields) == 0 {
		return
	}
	if s := cr.Fields[len(cr.Fields)-1].GetString_(); s != nil && s.Sval == from {
		s.Sval = to
	}
}
