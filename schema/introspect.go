package schema

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/phasekit/phasekit/internal/dbconn"
)

// userSchema is the WHERE fragment that keeps a namespace alias n to the
// user's schemas: system schemas and phasekit's own bookkeeping schema are
// not part of the application's schema and must never be planned against.
const userSchema = `n.nspname NOT IN ('pg_catalog', 'information_schema', 'phasekit')
	AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'`

// querier is what the introspection queries run on: our own transaction, or
// the caller's connection when the caller already has one open.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Introspect reads the user schemas of the database conn is connected to.
//
// All queries run in one read-only REPEATABLE READ transaction so that they
// see the same catalogue, and with an empty search_path so that every name in
// a definition, default or type outside pg_catalog comes out schema-qualified
// (as pg_dump writes it): the snapshot then does not depend on the session's
// search_path, and SQL built from it means the same thing on any connection.
// If conn is already inside a transaction, Introspect runs in that
// transaction instead and leaves it open, with its search_path restored.
func Introspect(ctx context.Context, conn *pgx.Conn) (*Snapshot, error) {
	var q querier = conn
	switch conn.PgConn().TxStatus() {
	case 'I':
		tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
		if err != nil {
			return nil, fmt.Errorf("introspect: begin read-only transaction: %w", err)
		}
		// Nothing was written, so rolling back is the whole clean-up, and it
		// also undoes the transaction-local search_path.
		defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
		q = tx
	case 'T':
		var saved string
		if err := conn.QueryRow(ctx, `SELECT current_setting('search_path')`).Scan(&saved); err != nil {
			return nil, fmt.Errorf("introspect: read search_path: %w", err)
		}
		defer func() {
			// Best effort: if a query failed the caller's transaction is
			// aborted and will roll the setting back anyway.
			_, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT set_config('search_path', $1, true)`, saved)
		}()
	case 'E':
		return nil, errors.New("introspect: connection is in a failed transaction; roll it back first")
	default:
		return nil, fmt.Errorf("introspect: connection not ready (transaction status %q)", conn.PgConn().TxStatus())
	}
	var ignored string
	if err := q.QueryRow(ctx, `SELECT set_config('search_path', '', true)`).Scan(&ignored); err != nil {
		return nil, fmt.Errorf("introspect: clear search_path: %w", err)
	}

	s := &Snapshot{
		Tables:    map[string]*Table{},
		Views:     map[string]*View{},
		Enums:     map[string]*Enum{},
		Functions: map[string]Function{},
	}
	if err := q.QueryRow(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&s.ServerVersion); err != nil {
		return nil, fmt.Errorf("introspect: read server version: %w", err)
	}
	r := &reader{q: q, s: s, tables: map[uint32]*Table{}, views: map[uint32]*View{}}
	for _, step := range []struct {
		what string
		read func(context.Context) error
	}{
		{"tables", r.readTables},
		{"columns", r.readColumns},
		{"constraints", r.readConstraints},
		{"views", r.readViews},
		{"view dependencies", r.readViewDeps},
		{"indexes", r.readIndexes},
		{"triggers", r.readTriggers},
		{"enums", r.readEnums},
		{"functions", r.readFunctions},
	} {
		if err := step.read(ctx); err != nil {
			return nil, fmt.Errorf("introspect: read %s: %w", step.what, err)
		}
	}
	r.sort()
	sumPartitions(s)
	return s, nil
}

// sumPartitions gives a partitioned table (which holds no rows itself) the
// row estimate and size of its partitions, at every depth: what a backfill
// of it walks.
func sumPartitions(s *Snapshot) {
	var total func(name string) (rows, size int64)
	total = func(name string) (rows, size int64) {
		rows = -1 // never analysed, as PostgreSQL says
		for child, t := range s.Tables {
			if t.PartitionOf != name {
				continue
			}
			r, z := t.RowEstimate, t.SizeBytes
			if t.Partitioned {
				r, z = total(child)
			}
			if r >= 0 {
				rows = max(rows, 0) + r
			}
			size += z
		}
		return rows, size
	}
	for name, t := range s.Tables {
		if t.Partitioned && t.PartitionOf == "" {
			t.RowEstimate, t.SizeBytes = total(name)
		}
	}
}

// reader fills a Snapshot, one catalogue query per object kind, attaching
// rows to their relation by oid.
type reader struct {
	q      querier
	s      *Snapshot
	tables map[uint32]*Table
	views  map[uint32]*View
}

// each runs sql and calls fn after scanning each row into dest.
func (r *reader) each(ctx context.Context, sql string, dest []any, fn func() error) error {
	rows, err := r.q.Query(ctx, sql)
	if err != nil {
		return err
	}
	_, err = pgx.ForEachRow(rows, dest, fn)
	return err
}

func (r *reader) readTables(ctx context.Context) error {
	var (
		oid               uint32
		t                 Table
		parentNS, parent  string
		partitioned       bool
		rowEst, sizeBytes int64
	)
	return r.each(ctx, `
SELECT c.oid, n.nspname, c.relname, c.relkind = 'p',
       c.reltuples::bigint, coalesce(pg_total_relation_size(c.oid), 0),
       coalesce(pn.nspname, ''), coalesce(p.relname, ''), coalesce(obj_description(c.oid, 'pg_class'), '')
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_inherits i ON c.relispartition AND i.inhrelid = c.oid
LEFT JOIN pg_class p ON p.oid = i.inhparent
LEFT JOIN pg_namespace pn ON pn.oid = p.relnamespace
WHERE c.relkind IN ('r', 'p') AND `+userSchema,
		[]any{&oid, &t.Schema, &t.Name, &partitioned, &rowEst, &sizeBytes, &parentNS, &parent, &t.Comment},
		func() error {
			tb := &Table{Schema: t.Schema, Name: t.Name, Partitioned: partitioned, RowEstimate: rowEst, SizeBytes: sizeBytes, Comment: t.Comment}
			if parent != "" {
				tb.PartitionOf = QualifiedName(parentNS, parent)
			}
			r.tables[oid] = tb
			r.s.Tables[tb.QName()] = tb
			return nil
		})
}

func (r *reader) readColumns(ctx context.Context) error {
	var (
		oid                  uint32
		c                    Column
		expr, identity, kind string
	)
	return r.each(ctx, `
SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       coalesce(pg_get_expr(d.adbin, d.adrelid), ''), a.attidentity::text, a.attgenerated::text, a.attnum,
       coalesce((SELECT sn.nspname || '.' || sc.relname FROM pg_depend dep
                 JOIN pg_class sc ON sc.oid = dep.objid AND sc.relkind = 'S'
                 JOIN pg_namespace sn ON sn.oid = sc.relnamespace
                 WHERE dep.classid = 'pg_class'::regclass AND dep.refclassid = 'pg_class'::regclass
                   AND dep.refobjid = a.attrelid AND dep.refobjsubid = a.attnum AND dep.deptype IN ('a', 'i')
                 ORDER BY sc.oid LIMIT 1), ''),
       coalesce(col_description(a.attrelid, a.attnum), '')
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped AND `+userSchema+`
ORDER BY a.attrelid, a.attnum`,
		[]any{&oid, &c.Name, &c.Type, &c.NotNull, &expr, &identity, &kind, &c.Position, &c.Sequence, &c.Comment},
		func() error {
			t, ok := r.tables[oid]
			if !ok {
				return nil
			}
			col := Column{Name: c.Name, Type: c.Type, NotNull: c.NotNull, Identity: identity, Position: c.Position, Sequence: c.Sequence, Comment: c.Comment}
			// A generated column's expression is stored as its default;
			// it is not one, since it cannot be overridden on INSERT.
			if kind != "" {
				col.Generated = expr
			} else {
				col.Default = expr
			}
			t.Columns = append(t.Columns, col)
			return nil
		})
}

// readConstraints reads the constraints of user tables and also files each
// foreign key under the table it references. Only the five kinds the
// ConstraintType constants name are read: constraint triggers already appear
// as triggers, and the NOT NULL constraints of PostgreSQL 18 as Column.NotNull.
func (r *reader) readConstraints(ctx context.Context) error {
	var (
		oid, refOID  uint32
		c            Constraint
		typ          string
		refNS, index string
	)
	return r.each(ctx, `
SELECT c.conrelid, c.conname, c.contype::text, pg_get_constraintdef(c.oid), c.convalidated,
       array(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(num, ord)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.num ORDER BY k.ord)::text[],
       c.confrelid, coalesce(rn.nspname, ''), coalesce(r.relname, ''),
       array(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY k(num, ord)
             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.num ORDER BY k.ord)::text[],
       CASE WHEN c.contype IN ('p', 'u', 'x') THEN coalesce(i.relname, '') ELSE '' END
FROM pg_constraint c
JOIN pg_class t ON t.oid = c.conrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
LEFT JOIN pg_class r ON r.oid = c.confrelid
LEFT JOIN pg_namespace rn ON rn.oid = r.relnamespace
LEFT JOIN pg_class i ON i.oid = c.conindid
WHERE t.relkind IN ('r', 'p') AND c.contype IN ('p', 'u', 'f', 'c', 'x') AND `+userSchema,
		[]any{&oid, &c.Name, &typ, &c.Definition, &c.Validated, &c.Columns, &refOID, &refNS, &c.RefTable, &c.RefColumns, &index},
		func() error {
			t, ok := r.tables[oid]
			if !ok {
				return nil
			}
			con := Constraint{
				Name:       c.Name,
				Table:      t.QName(),
				Type:       ConstraintType(typ),
				Columns:    nilIfEmpty(c.Columns),
				Definition: c.Definition,
				RefColumns: nilIfEmpty(c.RefColumns),
				Validated:  c.Validated,
				Index:      index,
			}
			if c.RefTable != "" {
				con.RefTable = QualifiedName(refNS, c.RefTable)
			}
			t.Constraints = append(t.Constraints, con)
			// A self-referencing key is already in Constraints; ReferencedBy
			// is for keys on other tables, as its doc says.
			if con.Type == ForeignKey && refOID != oid {
				if ref, ok := r.tables[refOID]; ok {
					ref.ReferencedBy = append(ref.ReferencedBy, con)
				}
			}
			return nil
		})
}

func (r *reader) readViews(ctx context.Context) error {
	var (
		oid          uint32
		v            View
		materialized bool
	)
	return r.each(ctx, `
SELECT c.oid, n.nspname, c.relname, c.relkind = 'm', pg_get_viewdef(c.oid, true),
       array(SELECT a.attname FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum)::text[],
       c.reloptions, coalesce(obj_description(c.oid, 'pg_class'), '')
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('v', 'm') AND `+userSchema,
		[]any{&oid, &v.Schema, &v.Name, &materialized, &v.Definition, &v.Columns, &v.Options, &v.Comment},
		func() error {
			vw := &View{
				Schema:       v.Schema,
				Name:         v.Name,
				Materialized: materialized,
				Definition:   v.Definition,
				Columns:      v.Columns,
				Options:      nilIfEmpty(v.Options),
				Comment:      v.Comment,
			}
			r.views[oid] = vw
			r.s.Views[vw.QName()] = vw
			return nil
		})
}

// readViewDeps reads what each view's _RETURN rule was recorded as reading:
// a row per column it reads (refobjsubid > 0), or a whole-relation row when it
// reads a relation without naming a column (SELECT count(*) FROM t). Every
// rule also depends on its own view; that row is skipped.
func (r *reader) readViewDeps(ctx context.Context) error {
	var (
		oid             uint32
		refNS, refName  string
		refKind, column string
	)
	return r.each(ctx, `
SELECT DISTINCT rw.ev_class, rn.nspname, rc.relname, rc.relkind::text,
       coalesce(a.attname, ''), d.refobjsubid
FROM pg_depend d
JOIN pg_rewrite rw ON rw.oid = d.objid
JOIN pg_class v ON v.oid = rw.ev_class
JOIN pg_namespace n ON n.oid = v.relnamespace
JOIN pg_class rc ON rc.oid = d.refobjid
JOIN pg_namespace rn ON rn.oid = rc.relnamespace
LEFT JOIN pg_attribute a ON d.refobjsubid > 0 AND a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
  AND v.relkind IN ('v', 'm') AND d.refobjid <> rw.ev_class AND `+userSchema+`
ORDER BY rw.ev_class, rn.nspname, rc.relname, d.refobjsubid`,
		[]any{&oid, &refNS, &refName, &refKind, &column, nil},
		func() error {
			v, ok := r.views[oid]
			if !ok {
				return nil
			}
			rel := QualifiedName(refNS, refName)
			if column != "" {
				v.DependsOn = append(v.DependsOn, ColumnRef{Relation: rel, Column: column})
			}
			if (refKind == "v" || refKind == "m") && !slices.Contains(v.DependsOnViews, rel) {
				v.DependsOnViews = append(v.DependsOnViews, rel)
			}
			return nil
		})
}

// readIndexes reads the indexes of tables and materialized views.
func (r *reader) readIndexes(ctx context.Context) error {
	var (
		oid uint32
		ix  Index
	)
	return r.each(ctx, `
SELECT i.indrelid, ic.relname, i.indisunique, i.indisprimary, i.indisvalid, pg_get_indexdef(i.indexrelid),
       array(SELECT coalesce(a.attname, '') FROM unnest(i.indkey) WITH ORDINALITY k(num, ord)
             LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.num
             WHERE k.ord <= i.indnkeyatts ORDER BY k.ord)::text[],
       coalesce((SELECT con.conname FROM pg_constraint con
                 WHERE con.conindid = i.indexrelid AND con.conrelid = i.indrelid
                   AND con.contype IN ('p', 'u', 'x')), '')
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm') AND `+userSchema,
		[]any{&oid, &ix.Name, &ix.Unique, &ix.Primary, &ix.Valid, &ix.Definition, &ix.Columns, &ix.Constraint},
		func() error {
			idx := ix
			idx.Columns = nilIfEmpty(ix.Columns)
			if t, ok := r.tables[oid]; ok {
				t.Indexes = append(t.Indexes, idx)
			} else if v, ok := r.views[oid]; ok {
				v.Indexes = append(v.Indexes, idx)
			}
			return nil
		})
}

func (r *reader) readTriggers(ctx context.Context) error {
	var (
		oid       uint32
		tg        Trigger
		fnNS, fnN string
	)
	return r.each(ctx, `
SELECT tg.tgrelid, tg.tgname, fn.nspname, p.proname, pg_get_triggerdef(tg.oid), tg.tgenabled::text
FROM pg_trigger tg
JOIN pg_class c ON c.oid = tg.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_proc p ON p.oid = tg.tgfoid
JOIN pg_namespace fn ON fn.oid = p.pronamespace
WHERE NOT tg.tgisinternal AND c.relkind IN ('r', 'p') AND `+userSchema,
		[]any{&oid, &tg.Name, &fnNS, &fnN, &tg.Definition, &tg.Enabled},
		func() error {
			t, ok := r.tables[oid]
			if !ok {
				return nil
			}
			t.Triggers = append(t.Triggers, Trigger{
				Name:       tg.Name,
				Function:   QualifiedName(fnNS, fnN),
				Definition: tg.Definition,
				Enabled:    tg.Enabled,
			})
			return nil
		})
}

func (r *reader) readEnums(ctx context.Context) error {
	var e Enum
	return r.each(ctx, `
SELECT n.nspname, t.typname, array_agg(e.enumlabel::text ORDER BY e.enumsortorder)
FROM pg_type t
JOIN pg_namespace n ON n.oid = t.typnamespace
JOIN pg_enum e ON e.enumtypid = t.oid
WHERE t.typtype = 'e' AND `+userSchema+`
GROUP BY n.nspname, t.typname`,
		[]any{&e.Schema, &e.Name, &e.Values},
		func() error {
			en := &Enum{Schema: e.Schema, Name: e.Name, Values: e.Values}
			r.s.Enums[QualifiedName(en.Schema, en.Name)] = en
			return nil
		})
}

// readFunctions reads functions and procedures; aggregates and window
// functions are left out because pg_get_functiondef cannot show them.
func (r *reader) readFunctions(ctx context.Context) error {
	var f Function
	return r.each(ctx, `
SELECT n.nspname, p.proname, pg_get_function_identity_arguments(p.oid), l.lanname, pg_get_functiondef(p.oid)
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
JOIN pg_language l ON l.oid = p.prolang
WHERE p.prokind IN ('f', 'p') AND `+userSchema,
		[]any{&f.Schema, &f.Name, &f.Args, &f.Language, &f.Definition},
		func() error {
			r.s.Functions[f.Key()] = f
			return nil
		})
}

// Key is the function's key in Snapshot.Functions: "schema.name(args)".
func (f Function) Key() string {
	return QualifiedName(f.Schema, f.Name) + "(" + f.Args + ")"
}

// sort orders every slice by name so that two snapshots of the same schema
// compare and print identically whatever order the catalogue returned.
func (r *reader) sort() {
	for _, t := range r.tables {
		slices.SortFunc(t.Constraints, func(a, b Constraint) int { return cmp.Compare(a.Name, b.Name) })
		slices.SortFunc(t.Indexes, func(a, b Index) int { return cmp.Compare(a.Name, b.Name) })
		slices.SortFunc(t.Triggers, func(a, b Trigger) int { return cmp.Compare(a.Name, b.Name) })
		// Constraint names are unique per table only, hence the table first.
		slices.SortFunc(t.ReferencedBy, func(a, b Constraint) int {
			return cmp.Or(cmp.Compare(a.Table, b.Table), cmp.Compare(a.Name, b.Name))
		})
	}
	for _, v := range r.views {
		slices.SortFunc(v.Indexes, func(a, b Index) int { return cmp.Compare(a.Name, b.Name) })
		slices.Sort(v.DependsOnViews)
	}
}

// nilIfEmpty turns the empty array a query returns for "none" into nil, so
// that a snapshot read from the database equals one written by hand.
func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// ReadDSN connects to dsn and reads its schema (Introspect).
func ReadDSN(ctx context.Context, dsn string) (*Snapshot, error) {
	conn, err := dbconn.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	s, err := Introspect(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("read schema from %s: %w", dbconn.Redact(dsn), err)
	}
	return s, nil
}
