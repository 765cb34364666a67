package verify

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/phasekit/phasekit/compat/outcome"
)

// Subset keeps only the rows of one table that match a condition; rows of
// other tables left pointing at removed rows through a foreign key are
// removed in turn.
type Subset struct {
	Schema string // "public" unless the flag named one
	Table  string
	Where  string // an SQL condition on the table's columns
}

// String returns the flag form, table=WHERE.
func (s Subset) String() string {
	return qualifiedName(s.Schema, s.Table) + "=" + s.Where
}

// ParseSubset parses a --subset value: [schema.]table=WHERE, e.g.
// "invoice=invoice_date >= '2025-01-01'". Rows for which WHERE is false or
// NULL are left out. The condition is checked against the data when the copy
// runs.
func ParseSubset(s string) (Subset, error) {
	bad := func(format string, args ...any) (Subset, error) {
		return Subset{}, fmt.Errorf("%w: subset %q: %s", ErrBadCopyOption, s, fmt.Sprintf(format, args...))
	}
	target, where, ok := strings.Cut(s, "=")
	if !ok {
		return bad("want table=WHERE")
	}
	where = strings.TrimSpace(where)
	if where == "" {
		return bad("no condition after '='")
	}
	parts, err := splitQualifiedName(target)
	if err != nil {
		return bad("%v", err)
	}
	sub := Subset{Schema: "public", Where: where}
	switch len(parts) {
	case 1:
		sub.Table = parts[0]
	case 2:
		sub.Schema, sub.Table = parts[0], parts[1]
	default:
		return bad("%q is not table or schema.table", target)
	}
	return sub, nil
}

// SubsetCount is how many rows a subset kept and removed from one table
// (package outcome keeps the type).
type SubsetCount = outcome.SubsetCount

// subsetTable is a subset checked against the data it applies to.
type subsetTable struct {
	Subset
	relid   uint32 // where it was checked
	removed int64  // rows not matching the condition when it was checked
}

// keepCondition is the condition on a row to keep: NULL counts as false.
func (s Subset) keepCondition() string {
	return "coalesce((" + s.Where + "), false)"
}

// checkSubsets looks each subset's table up and runs its condition, which
// also counts the rows it removes. The query goes through the
// extended protocol, which refuses a condition that smuggles in a second
// statement, so that it is safe to paste into the COPY query later.
func checkSubsets(ctx context.Context, conn *pgx.Conn, subsets []Subset) ([]subsetTable, error) {
	out := make([]subsetTable, 0, len(subsets))
	for _, s := range subsets {
		st := subsetTable{Subset: s}
		err := conn.QueryRow(ctx, `
			SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`, s.Schema, s.Table).Scan(&st.relid)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("%w: subset %s: no table %s", ErrBadCopyOption, s, qualifiedName(s.Schema, s.Table))
		}
		if err != nil {
			return nil, fmt.Errorf("subset %s: look up the table: %w", s, err)
		}
		sql := "SELECT count(*) FROM " + pgx.Identifier{s.Schema, s.Table}.Sanitize() + " WHERE NOT " + s.keepCondition()
		if err := conn.QueryRow(ctx, sql, pgx.QueryExecModeExec).Scan(&st.removed); err != nil {
			return nil, fmt.Errorf("%w: subset %s: the condition fails on table %s: %w", ErrBadCopyOption, s, qualifiedName(s.Schema, s.Table), err)
		}
		out = append(out, st)
	}
	return out, nil
}

// relName is a table's schema and name; relids differ between a source
// and its copy, names do not.
type relName [2]string

func (r relName) sanitized() string { return pgx.Identifier{r[0], r[1]}.Sanitize() }
func (r relName) String() string    { return qualifiedName(r[0], r[1]) }

// foreignKey is a foreign key as the orphan cleanup needs it.
type foreignKey struct {
	name          string
	child, parent relName
	childCols     []string
	parentCols    []string
}

// listForeignKeys returns the foreign keys of conn's database outside the
// system schemas. A partitioned table's key is listed once, on the
// partitioned table, not again on each partition.
func listForeignKeys(ctx context.Context, conn *pgx.Conn) ([]foreignKey, error) {
	rows, err := conn.Query(ctx, `
		SELECT con.conname, cn.nspname, c.relname, pn.nspname, p.relname,
		       ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(num, i)
		             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num ORDER BY k.i),
		       ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(num, i)
		             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num ORDER BY k.i)
		FROM pg_constraint con
		JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace
		JOIN pg_class p ON p.oid = con.confrelid JOIN pg_namespace pn ON pn.oid = p.relnamespace
		WHERE con.contype = 'f' AND con.conparentid = 0
		  AND cn.nspname NOT IN ('pg_catalog', 'information_schema') AND cn.nspname NOT LIKE 'pg\_%'
		ORDER BY cn.nspname, c.relname, con.conname`)
	if err != nil {
		return nil, fmt.Errorf("list foreign keys: %w", err)
	}
	var fks []foreignKey
	for rows.Next() {
		var fk foreignKey
		if err := rows.Scan(&fk.name, &fk.child[0], &fk.child[1], &fk.parent[0], &fk.parent[1], &fk.childCols, &fk.parentCols); err != nil {
			return nil, fmt.Errorf("list foreign keys: %w", err)
		}
		fks = append(fks, fk)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list foreign keys: %w", err)
	}
	return fks, nil
}

// orphanDelete is the DELETE that removes fk's dangling rows: rows whose key
// columns are all non-NULL (a NULL satisfies a MATCH SIMPLE key) with no
// parent row.
func (fk foreignKey) orphanDelete() string {
	var notNull, match []string
	for i, c := range fk.childCols {
		cc := "c." + pgx.Identifier{c}.Sanitize()
		notNull = append(notNull, cc+" IS NOT NULL")
		match = append(match, "p."+pgx.Identifier{fk.parentCols[i]}.Sanitize()+" = "+cc)
	}
	return "DELETE FROM " + fk.child.sanitized() + " c WHERE " + strings.Join(notNull, " AND ") +
		" AND NOT EXISTS (SELECT FROM " + fk.parent.sanitized() + " p WHERE " + strings.Join(match, " AND ") + ")"
}

// pruneOrphans deletes dangling rows until none are left, adding the rows it
// removes to removed. A child can only lose its parent when the parent table
// loses rows, so after a first pass over every key, a pass checks only the
// keys whose parent table lost rows since that key was last checked. The
// caller makes sure no FK trigger fires (no constraints yet, or
// session_replication_role = replica).
func pruneOrphans(ctx context.Context, conn *pgx.Conn, fks []foreignKey, removed map[relName]int64) error {
	// Parents before children, so that one pass removes most of a chain;
	// the cap keeps a cycle of keys from counting up forever.
	rank := map[relName]int{}
	for range fks {
		for _, fk := range fks {
			if fk.child != fk.parent && rank[fk.child] <= rank[fk.parent] && rank[fk.parent] < len(fks) {
				rank[fk.child] = rank[fk.parent] + 1
			}
		}
	}
	fks = append([]foreignKey(nil), fks...)
	sort.SliceStable(fks, func(i, j int) bool { return rank[fks[i].child] < rank[fks[j].child] })

	lost := map[relName]bool{} // tables that lost rows in the pass before
	for pass := 1; ; pass++ {
		lostNow := map[relName]bool{}
		for _, fk := range fks {
			if pass > 1 && !lost[fk.parent] && !lostNow[fk.parent] {
				continue
			}
			tag, err := conn.Exec(ctx, fk.orphanDelete())
			if err != nil {
				return fmt.Errorf("subset: remove rows of %s left dangling by foreign key %s (pass %d): %w", fk.child, fk.name, pass, err)
			}
			if n := tag.RowsAffected(); n > 0 {
				removed[fk.child] += n
				lostNow[fk.child] = true
			}
		}
		if len(lostNow) == 0 {
			return nil
		}
		lost = lostNow
	}
}

// subsetCounts reports kept and removed rows for every table in removed,
// counting what is left of it in conn's database.
func subsetCounts(ctx context.Context, conn *pgx.Conn, removed map[relName]int64) ([]SubsetCount, error) {
	out := make([]SubsetCount, 0, len(removed))
	for t, n := range removed {
		sc := SubsetCount{Table: t.String(), Removed: n}
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+t.sanitized()).Scan(&sc.Kept); err != nil {
			return nil, fmt.Errorf("subset: count rows left in %s: %w", t, err)
		}
		out = append(out, sc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Table < out[j].Table })
	return out, nil
}

// applySubsets deletes the rows of each subset's table that do not match
// its condition, then the rows fks say are left dangling, in conn's
// database, adding what it removes to removed. With triggersOff, FK and
// other triggers are off meanwhile (session_replication_role = replica), so
// that the cleanup, not ON DELETE actions, decides what goes; without it the
// caller knows there are none yet.
func applySubsets(ctx context.Context, conn *pgx.Conn, subsets []subsetTable, fks []foreignKey, removed map[relName]int64, triggersOff bool) error {
	if len(subsets) == 0 {
		return nil
	}
	if triggersOff {
		if _, err := conn.Exec(ctx, "SET session_replication_role = replica"); err != nil {
			return fmt.Errorf("subset: turn off triggers: %w", err)
		}
	}
	for _, s := range subsets {
		t := relName{s.Schema, s.Table}
		// ExecParams: the extended protocol runs exactly one statement.
		tag, err := conn.PgConn().ExecParams(ctx, "DELETE FROM "+t.sanitized()+" WHERE NOT "+s.keepCondition(), nil, nil, nil, nil).Close()
		if err != nil {
			return fmt.Errorf("%w: subset %s: delete the rows not kept: %w", ErrBadCopyOption, s.Subset, err)
		}
		removed[t] += tag.RowsAffected()
	}
	if err := pruneOrphans(ctx, conn, fks, removed); err != nil {
		return err
	}
	if triggersOff {
		if _, err := conn.Exec(ctx, "RESET session_replication_role"); err != nil {
			return fmt.Errorf("subset: %w", err)
		}
	}
	return nil
}
