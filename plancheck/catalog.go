package plancheck

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/phasekit/phasekit/phases"
)

// Catalog is a database's schema as PostgreSQL itself prints it, one entry
// per object ("column public.t.c" -> "integer notnull=true default=..."), and
// its rows, one entry per table (count and digest). phasekit's own schema and
// the columns and tables it archives are left out.
type Catalog struct {
	Objects map[string]string
	// Positions are the columns' positions ("column public.t.c" -> 3),
	// compared apart: an app reading by name does not see them.
	Positions map[string]int
	// Rows are each table's row count and digest; nil when not read.
	Rows map[string]string
}

// userObjects keeps namespace alias n to the application's schemas.
const userObjects = `n.nspname NOT IN ('pg_catalog', 'information_schema', 'phasekit')
	AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'`

// notArchived leaves out what a contract archived (phases.ArchivePrefix).
const notArchived = `NOT starts_with(%s, 'phasekit_archived_')`

// catalogQueries each return (key, definition) rows.
var catalogQueries = []struct{ what, sql string }{
	{"schemas", `SELECT 'schema ' || n.nspname, '' FROM pg_namespace n WHERE ` + userObjects},
	{"relations", `SELECT 'relation ' || n.nspname || '.' || c.relname,
		'kind=' || c.relkind::text || ' persistence=' || c.relpersistence::text || ' options=' || coalesce(array_to_string(c.reloptions, ','), '') ||
		' rls=' || c.relrowsecurity || ' force_rls=' || c.relforcerowsecurity || ' replident=' || c.relreplident::text ||
		' partition=' || coalesce(pg_get_expr(c.relpartbound, c.oid), '') ||
		CASE WHEN c.relkind = 'p' THEN ' partkey=' || pg_get_partkeydef(c.oid) ELSE '' END ||
		' acl=' || coalesce(c.relacl::text, '')
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c') AND ` + userObjects + ` AND ` + fmt.Sprintf(notArchived, "c.relname")},
	{"columns", `SELECT 'column ' || n.nspname || '.' || c.relname || '.' || a.attname,
		format_type(a.atttypid, a.atttypmod) || ' notnull=' || a.attnotnull ||
		' default=' || coalesce(pg_get_expr(d.adbin, d.adrelid), '') || ' identity=' || a.attidentity::text ||
		' generated=' || a.attgenerated::text || ' collation=' || coalesce(co.collname, '') ||
		' storage=' || a.attstorage::text || ' statistics=' || coalesce(a.attstattarget::text, '') || ' acl=' || coalesce(a.attacl::text, '')
		FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		LEFT JOIN pg_collation co ON co.oid = a.attcollation AND a.attcollation <> 0 AND co.collname <> 'default'
		WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'c') AND a.attnum > 0 AND NOT a.attisdropped AND ` + userObjects +
		` AND ` + fmt.Sprintf(notArchived, "c.relname") + ` AND ` + fmt.Sprintf(notArchived, "a.attname")},
	{"constraints", `SELECT 'constraint ' || n.nspname || '.' || coalesce(c.relname, t.typname) || '.' || con.conname,
		pg_get_constraintdef(con.oid) || ' validated=' || con.convalidated || ' deferrable=' || con.condeferrable || ' deferred=' || con.condeferred
		FROM pg_constraint con JOIN pg_namespace n ON n.oid = con.connamespace
		LEFT JOIN pg_class c ON c.oid = con.conrelid LEFT JOIN pg_type t ON t.oid = con.contypid
		WHERE ` + userObjects + ` AND ` + fmt.Sprintf(notArchived, "coalesce(c.relname, t.typname)") + ` AND con.contype <> 'n'`},
	{"indexes", `SELECT 'index ' || n.nspname || '.' || ic.relname,
		pg_get_indexdef(i.indexrelid) || ' valid=' || i.indisvalid || ' clustered=' || i.indisclustered || ' replident=' || i.indisreplident
		FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class c ON c.oid = i.indrelid
		JOIN pg_namespace n ON n.oid = ic.relnamespace
		WHERE ` + userObjects + ` AND ` + fmt.Sprintf(notArchived, "c.relname")},
	{"views", `SELECT 'view ' || n.nspname || '.' || c.relname, pg_get_viewdef(c.oid, true)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('v', 'm') AND ` + userObjects},
	{"sequences", `SELECT 'sequence ' || n.nspname || '.' || c.relname,
		format_type(s.seqtypid, NULL) || ' start=' || s.seqstart || ' increment=' || s.seqincrement || ' min=' || s.seqmin ||
		' max=' || s.seqmax || ' cache=' || s.seqcache || ' cycle=' || s.seqcycle ||
		' owned_by=' || coalesce((SELECT dn.nspname || '.' || dc.relname || '.' || da.attname FROM pg_depend d
			JOIN pg_class dc ON dc.oid = d.refobjid JOIN pg_namespace dn ON dn.oid = dc.relnamespace
			JOIN pg_attribute da ON da.attrelid = d.refobjid AND da.attnum = d.refobjsubid
			WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') LIMIT 1), '')
		FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE ` + userObjects},
	{"functions", `SELECT 'function ' || n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
		CASE WHEN p.prokind IN ('f', 'p', 'w') THEN pg_get_functiondef(p.oid) ELSE p.prokind::text END || ' acl=' || coalesce(p.proacl::text, '')
		FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE ` + userObjects + ` AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')`},
	{"triggers", `SELECT 'trigger ' || n.nspname || '.' || c.relname || '.' || t.tgname, pg_get_triggerdef(t.oid) || ' enabled=' || t.tgenabled::text
		FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE NOT t.tgisinternal AND ` + userObjects + ` AND ` + fmt.Sprintf(notArchived, "c.relname")},
	{"types", `SELECT 'type ' || n.nspname || '.' || t.typname,
		CASE t.typtype
			WHEN 'e' THEN 'enum ' || (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid)
			WHEN 'd' THEN 'domain ' || format_type(t.typbasetype, t.typtypmod) || ' notnull=' || t.typnotnull || ' default=' || coalesce(t.typdefault, '')
			WHEN 'r' THEN 'range ' || (SELECT format_type(r.rngsubtype, NULL) FROM pg_range r WHERE r.rngtypid = t.oid)
			ELSE t.typtype::text END
		FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
		WHERE t.typtype IN ('e', 'd', 'r') AND ` + userObjects + ` AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')`},
	{"extensions", `SELECT 'extension ' || e.extname, n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace`},
	{"policies", `SELECT 'policy ' || schemaname || '.' || tablename || '.' || policyname,
		permissive || ' ' || cmd || ' roles=' || roles::text || ' using=' || coalesce(qual, '') || ' check=' || coalesce(with_check, '')
		FROM pg_policies WHERE schemaname NOT IN ('phasekit')`},
	{"rules", `SELECT 'rule ' || schemaname || '.' || tablename || '.' || rulename, definition FROM pg_rules WHERE schemaname NOT IN ('phasekit')`},
	{"statistics", `SELECT 'statistics ' || n.nspname || '.' || s.stxname, pg_get_statisticsobjdef(s.oid)
		FROM pg_statistic_ext s JOIN pg_namespace n ON n.oid = s.stxnamespace WHERE ` + userObjects},
	{"comments", `SELECT 'comment on ' || CASE d.classoid
			WHEN 'pg_class'::regclass THEN 'relation ' || (SELECT n.nspname || '.' || c.relname || CASE WHEN d.objsubid > 0 THEN '.' || (SELECT a.attname FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum = d.objsubid) ELSE '' END
				FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = d.objoid AND ` + userObjects + `)
			WHEN 'pg_proc'::regclass THEN 'function ' || (SELECT n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.oid = d.objoid AND ` + userObjects + `)
			WHEN 'pg_type'::regclass THEN 'type ' || (SELECT n.nspname || '.' || t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.oid = d.objoid AND ` + userObjects + `)
			WHEN 'pg_constraint'::regclass THEN 'constraint ' || (SELECT n.nspname || '.' || con.conname FROM pg_constraint con JOIN pg_namespace n ON n.oid = con.connamespace WHERE con.oid = d.objoid AND ` + userObjects + `)
			WHEN 'pg_trigger'::regclass THEN 'trigger ' || (SELECT n.nspname || '.' || c.relname || '.' || t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE t.oid = d.objoid AND ` + userObjects + `)
			WHEN 'pg_namespace'::regclass THEN 'schema ' || (SELECT n.nspname FROM pg_namespace n WHERE n.oid = d.objoid AND ` + userObjects + `)
			END, d.description
		FROM pg_description d WHERE d.objoid >= 16384`},
}

// ReadCatalog reads db's catalogue, and its rows when rows is set.
func ReadCatalog(ctx context.Context, conn *pgx.Conn, rows bool) (*Catalog, error) {
	cat := &Catalog{Objects: map[string]string{}, Positions: map[string]int{}}
	for _, q := range catalogQueries {
		r, err := conn.Query(ctx, q.sql)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", q.what, err)
		}
		var key, def *string
		if _, err := pgx.ForEachRow(r, []any{&key, &def}, func() error {
			if key == nil || strings.Contains(*key, phases.ArchivePrefix) {
				return nil // an object of a schema left out, or an archive
			}
			d := ""
			if def != nil {
				d = *def
			}
			if strings.HasPrefix(*key, "comment on ") && strings.HasPrefix(d, phases.ArchiveStamp) {
				return nil
			}
			cat.Objects[*key] = d
			return nil
		}); err != nil {
			return nil, fmt.Errorf("read %s: %w", q.what, err)
		}
	}
	r, err := conn.Query(ctx, `SELECT 'column ' || n.nspname || '.' || c.relname || '.' || a.attname,
		(SELECT count(*) FROM pg_attribute b WHERE b.attrelid = a.attrelid AND b.attnum > 0 AND b.attnum <= a.attnum AND NOT b.attisdropped AND NOT starts_with(b.attname, 'phasekit_archived_'))::int
		FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped AND `+userObjects+` AND `+fmt.Sprintf(notArchived, "a.attname"))
	if err != nil {
		return nil, fmt.Errorf("read column positions: %w", err)
	}
	var key string
	var pos int
	if _, err := pgx.ForEachRow(r, []any{&key, &pos}, func() error {
		cat.Positions[key] = pos
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read column positions: %w", err)
	}
	if rows {
		if cat.Rows, err = readRows(ctx, conn); err != nil {
			return nil, err
		}
	}
	return cat, nil
}

// readRows digests every user table's rows, column order aside (each row as
// jsonb, whose keys print sorted) and phasekit's own columns left out.
func readRows(ctx context.Context, conn *pgx.Conn) (map[string]string, error) {
	r, err := conn.Query(ctx, `SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND `+userObjects+` AND `+fmt.Sprintf(notArchived, "c.relname"))
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	type table struct{ schema, name string }
	tables, err := pgx.CollectRows(r, func(row pgx.CollectableRow) (table, error) {
		var t table
		return t, row.Scan(&t.schema, &t.name)
	})
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	out := map[string]string{}
	if len(tables) == 0 {
		return out, nil
	}
	// One round trip for every table.
	parts := make([]string, len(tables))
	for i, t := range tables {
		parts[i] = fmt.Sprintf("SELECT %d, %s", i, rowsDigest(pgx.Identifier{t.schema, t.name}.Sanitize(), ""))
	}
	rows, err := conn.Query(ctx, strings.Join(parts, "\nUNION ALL\n"))
	if err != nil {
		return nil, fmt.Errorf("read rows: %w", err)
	}
	var i int
	var n int64
	var digest *string
	if _, err := pgx.ForEachRow(rows, []any{&i, &n, &digest}, func() error {
		out["rows of "+tables[i].schema+"."+tables[i].name] = digestText(n, digest)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read rows: %w", err)
	}
	return out, nil
}

// rowsDigest is the select list and FROM clause counting and digesting the
// rows of table (quoted), each row as jsonb (whose keys print sorted, so
// column order aside), phasekit's own columns left out, and the keys that
// also satisfy skip (an SQL condition on k, "" for none).
func rowsDigest(table, skip string) string {
	if skip != "" {
		skip = " AND " + skip
	}
	return fmt.Sprintf(`count(*), md5(string_agg(r, E'\n' ORDER BY r)) FROM (
		SELECT coalesce((SELECT jsonb_object_agg(k, v) FROM jsonb_each(to_jsonb(x)) e(k, v) WHERE NOT starts_with(k, 'phasekit_')%s), '{}')::text AS r
		FROM %s x) s`, skip, table)
}

// digestText is how a table's rows are named in a catalogue.
func digestText(n int64, digest *string) string {
	d := ""
	if digest != nil {
		d = *digest
	}
	return fmt.Sprintf("%d rows, digest %s", n, d)
}

// Compare lists what differs between want and got, sorted by object; with
// rows, the rows too. Positions are compared by PositionLimits.
func Compare(want, got *Catalog, rows bool) []phases.Difference {
	var out []phases.Difference
	diff := func(a, b map[string]string) {
		keys := map[string]bool{}
		for k := range a {
			keys[k] = true
		}
		for k := range b {
			keys[k] = true
		}
		for k := range keys {
			wa, okA := a[k]
			gb, okB := b[k]
			if okA && okB && wa == gb {
				continue
			}
			if !okA {
				wa = "(absent)"
			}
			if !okB {
				gb = "(absent)"
			}
			out = append(out, phases.Difference{Object: k, Want: wa, Got: gb})
		}
	}
	diff(want.Objects, got.Objects)
	if rows && want.Rows != nil && got.Rows != nil {
		diff(want.Rows, got.Rows)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Object < out[j].Object })
	return out
}

// PositionLimits names the columns that end at another place in their
// table than the file leaves them (those outside the longest common order of
// the two column lists): a stated limit of a plan (a retyped column is a new
// column, added last), not a difference an app reading by name can see.
func PositionLimits(want, got *Catalog) []string {
	order := func(c *Catalog) map[string][]string {
		byTable := map[string][]string{}
		for k := range c.Positions {
			rest := strings.TrimPrefix(k, "column ")
			i := strings.LastIndexByte(rest, '.')
			byTable[rest[:i]] = append(byTable[rest[:i]], k)
		}
		for t, cols := range byTable {
			sort.Slice(cols, func(i, j int) bool { return c.Positions[cols[i]] < c.Positions[cols[j]] })
			byTable[t] = cols
		}
		return byTable
	}
	wantOrder, gotOrder := order(want), order(got)
	var out []string
	for t, w := range wantOrder {
		g := gotOrder[t]
		inBoth := map[string]bool{}
		for _, k := range g {
			if _, ok := want.Positions[k]; ok {
				inBoth[k] = true
			}
		}
		var a, b []string
		for _, k := range w {
			if inBoth[k] {
				a = append(a, k)
			}
		}
		for _, k := range g {
			if inBoth[k] {
				b = append(b, k)
			}
		}
		kept := lcs(a, b)
		for _, k := range b {
			if !kept[k] {
				out = append(out, fmt.Sprintf("%s ends at position %d, not %d: SELECT * and INSERT without a column list see another order", strings.TrimPrefix(k, "column "), got.Positions[k], want.Positions[k]))
			}
		}
	}
	sort.Strings(out)
	return out
}

// lcs returns the elements of a longest common subsequence of a and b.
func lcs(a, b []string) map[string]bool {
	n, m := len(a), len(b)
	dp := make([][]int, n+1)
	for i := range dp {
		dp[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				dp[i][j] = dp[i+1][j+1] + 1
			} else {
				dp[i][j] = max(dp[i+1][j], dp[i][j+1])
			}
		}
	}
	out := map[string]bool{}
	for i, j := 0, 0; i < n && j < m; {
		switch {
		case a[i] == b[j]:
			out[a[i]] = true
			i, j = i+1, j+1
		case dp[i+1][j] >= dp[i][j+1]:
			i++
		default:
			j++
		}
	}
	return out
}
