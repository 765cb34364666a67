package verify

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/phasekit/phasekit/compat/outcome"
)

// ErrBadCopyOption marks a --mask or --subset value that cannot be used: it
// does not parse, or names a table or column the data does not have, or its
// WHERE condition fails. It is bad input (exit 2), not a failed copy.
var ErrBadCopyOption = errors.New("invalid copy option")

// MaskStrategy says what a masked column's values are replaced with; Mask
// replaces the values of one column while data is copied into a sandbox
// (package outcome keeps the types: a copy report names its masks).
type (
	MaskStrategy = outcome.MaskStrategy
	Mask         = outcome.Mask
)

// Mask strategies. Every strategy leaves NULL as NULL: there is no value to hide.
const (
	MaskHash  = outcome.MaskHash
	MaskEmail = outcome.MaskEmail
	MaskNull  = outcome.MaskNull
	MaskFixed = outcome.MaskFixed
)

// DefaultMaskSalt is prefixed to values before hashing when
// CopyOptions.MaskSalt is empty. It is public, so whoever can guess an
// original value can confirm it from the hash; give a secret salt to prevent
// that.
const DefaultMaskSalt = "phasekit-mask-v1:"

// ParseMask parses a --mask value: [schema.]table.column=STRATEGY, where
// STRATEGY is hash, email, null or fixed:VALUE. Names follow SQL: unquoted
// ones are folded to lower case, "Quoted" ones are kept as written.
func ParseMask(s string) (Mask, error) {
	bad := func(format string, args ...any) (Mask, error) {
		return Mask{}, fmt.Errorf("%w: mask %q: %s", ErrBadCopyOption, s, fmt.Sprintf(format, args...))
	}
	target, strategy, ok := strings.Cut(s, "=")
	if !ok {
		return bad("want table.column=STRATEGY (hash, email, null or fixed:VALUE)")
	}
	parts, err := splitQualifiedName(target)
	if err != nil {
		return bad("%v", err)
	}
	m := Mask{Schema: "public"}
	switch len(parts) {
	case 2:
		m.Table, m.Column = parts[0], parts[1]
	case 3:
		m.Schema, m.Table, m.Column = parts[0], parts[1], parts[2]
	default:
		return bad("%q is not table.column or schema.table.column", target)
	}
	name, value, hasValue := strings.Cut(strings.TrimSpace(strategy), ":")
	switch MaskStrategy(strings.ToLower(name)) {
	case MaskHash, MaskEmail, MaskNull:
		if hasValue {
			return bad("strategy %s takes no value", name)
		}
		m.Strategy = MaskStrategy(strings.ToLower(name))
	case MaskFixed:
		if !hasValue {
			return bad("strategy fixed needs a value: fixed:VALUE")
		}
		m.Strategy, m.Value = MaskFixed, value
	case "":
		return bad("no strategy after '=' (want hash, email, null or fixed:VALUE)")
	default:
		return bad("unknown strategy %q (want hash, email, null or fixed:VALUE)", name)
	}
	return m, nil
}

// maskedColumn is a mask checked against the catalog of the data it applies to.
type maskedColumn struct {
	Mask
	relid   uint32 // the table's oid where it was checked
	typ     string // format_type of the column, for casts
	notNull bool
}

// checkMasks looks every mask's column up in conn's database and checks that
// the strategy suits it; masks on one column twice are refused too.
func checkMasks(ctx context.Context, conn *pgx.Conn, masks []Mask) ([]maskedColumn, error) {
	out := make([]maskedColumn, 0, len(masks))
	seen := map[string]bool{}
	for _, m := range masks {
		key := m.Schema + "\x00" + m.Table + "\x00" + m.Column
		if seen[key] {
			return nil, fmt.Errorf("%w: mask %s: the column is masked twice", ErrBadCopyOption, m)
		}
		seen[key] = true
		mc := maskedColumn{Mask: m}
		var category string
		err := conn.QueryRow(ctx, `
			SELECT c.oid, coalesce(format_type(a.atttypid, a.atttypmod), ''),
			       coalesce(a.attnotnull, false), coalesce(t.typcategory::text, '')
			FROM pg_class c
			JOIN pg_namespace n ON n.oid = c.relnamespace
			LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = $3 AND a.attnum > 0 AND NOT a.attisdropped
			LEFT JOIN pg_type t ON t.oid = a.atttypid
			WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`,
			m.Schema, m.Table, m.Column).Scan(&mc.relid, &mc.typ, &mc.notNull, &category)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("%w: mask %s: no table %s", ErrBadCopyOption, m, qualifiedName(m.Schema, m.Table))
		}
		if err != nil {
			return nil, fmt.Errorf("mask %s: look up the column: %w", m, err)
		}
		switch {
		case mc.typ == "":
			return nil, fmt.Errorf("%w: mask %s: table %s has no column %q", ErrBadCopyOption, m, qualifiedName(m.Schema, m.Table), m.Column)
		case (m.Strategy == MaskHash || m.Strategy == MaskEmail) && category != "S":
			return nil, fmt.Errorf("%w: mask %s: strategy %s needs a text column, %s is %s", ErrBadCopyOption, m, m.Strategy, m.Column, mc.typ)
		case m.Strategy == MaskNull && mc.notNull:
			return nil, fmt.Errorf("%w: mask %s: column %s is NOT NULL; use fixed:VALUE", ErrBadCopyOption, m, m.Column)
		case m.Strategy == MaskFixed:
			// The cast is the one the copy will do; trying it here turns
			// a bad value into an error before anything is copied.
			var ok bool
			if err := conn.QueryRow(ctx, "SELECT CAST($1::text AS "+mc.typ+") IS NOT NULL", m.Value).Scan(&ok); err != nil {
				return nil, fmt.Errorf("%w: mask %s: %q is not a valid %s: %w", ErrBadCopyOption, m, m.Value, mc.typ, err)
			}
		}
		out = append(out, mc)
	}
	return out, nil
}

// maskExpr is the SQL expression that replaces column col of type typ. salt
// and value are SQL for the salt and the fixed value: parameters ($1) or
// literals quoted by the server, never text pasted from the user.
func maskExpr(m maskedColumn, salt, value string) string {
	col := pgx.Identifier{m.Column}.Sanitize()
	var e string
	switch m.Strategy {
	case MaskHash:
		e = "md5(" + salt + " || " + col + "::text)"
	case MaskEmail:
		e = "'user_' || left(md5(" + salt + " || " + col + "::text), 12) || '@example.invalid'"
	case MaskNull:
		return "NULL::" + m.typ
	case MaskFixed:
		e = value
	}
	return "CASE WHEN " + col + " IS NULL THEN NULL ELSE CAST(" + e + " AS " + m.typ + ") END"
}

// maskInPlace replaces the masked columns of data already in the target with
// UPDATE, then rewrites each table with VACUUM FULL, so that the row versions
// holding the originals are gone from the table files, and analyzes it, so
// that the statistics hold masked values too. VACUUM FULL keeps a dead row
// version that a snapshot older than the UPDATE might still see, so it
// waits until no session of the database holds one. With statsToo (the data
// may have been analyzed before it was masked), pg_statistic is rewritten as
// well.
func maskInPlace(ctx context.Context, conn *pgx.Conn, masks []maskedColumn, salt string, statsToo bool) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("mask: %w", err)
	}
	defer tx.Rollback(context.Background())
	// Triggers (a plain SQL load has them already) must not see or log the
	// change, and FK checks on a masked key column are not ours to make.
	if _, err := tx.Exec(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
		return fmt.Errorf("mask: %w", err)
	}
	var tables []string
	done := map[uint32]bool{}
	for _, m := range masks {
		table := pgx.Identifier{m.Schema, m.Table}.Sanitize()
		var args []any // $1: the salt or the fixed value, whichever the strategy uses
		switch m.Strategy {
		case MaskHash, MaskEmail:
			args = []any{salt}
		case MaskFixed:
			args = []any{m.Value}
		}
		sql := "UPDATE " + table + " SET " + pgx.Identifier{m.Column}.Sanitize() + " = " + maskExpr(m, "$1::text", "$1::text") +
			" WHERE " + pgx.Identifier{m.Column}.Sanitize() + " IS NOT NULL"
		if _, err := tx.Exec(ctx, sql, args...); err != nil {
			return fmt.Errorf("mask %s: %w", m.Mask, err)
		}
		if !done[m.relid] {
			done[m.relid] = true
			tables = append(tables, table)
		}
	}
	var xid string
	if err := tx.QueryRow(ctx, "SELECT pg_current_xact_id()::text").Scan(&xid); err != nil {
		return fmt.Errorf("mask: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("mask: %w", err)
	}
	if err := waitForOlderSnapshots(ctx, conn, xid, maskSnapshotWait); err != nil {
		return err
	}
	if statsToo {
		tables = append(tables, "pg_catalog.pg_statistic")
	}
	for _, t := range tables {
		if _, err := conn.Exec(ctx, "VACUUM (FULL, ANALYZE) "+t); err != nil {
			return fmt.Errorf("mask: rewrite %s without the original values: %w", t, err)
		}
	}
	return nil
}

// maskSnapshotWait bounds how long masking waits for older snapshots.
const maskSnapshotWait = 2 * time.Minute

// waitForOlderSnapshots waits until nothing the server counts when it
// decides which dead rows VACUUM may drop predates transaction xid: no
// transaction older than xid runs in any database (it would hold back the
// xmin of VACUUM's own snapshot), and no other session of conn's database
// holds an older snapshot. A lazy autovacuum does not count: the server
// leaves it out too.
func waitForOlderSnapshots(ctx context.Context, conn *pgx.Conn, xid string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		var older bool
		var who string
		err := conn.QueryRow(ctx, `
			SELECT pg_snapshot_xmin(pg_current_snapshot()) <= $1::text::xid8
			    OR EXISTS (SELECT FROM pg_stat_activity
			               WHERE datname = current_database() AND pid <> pg_backend_pid()
			                 AND age(backend_xmin) >= age($1::text::xid8::xid)
			                 AND NOT (backend_type = 'autovacuum worker' AND query LIKE 'autovacuum: VACUUM%' AND query NOT LIKE '%ANALYZE%')),
			       coalesce((SELECT format('session %s on database %s (%s)', pid, datname, backend_type)
			                 FROM pg_stat_activity WHERE pid <> pg_backend_pid()
			                   AND (age(backend_xid) >= age($1::text::xid8::xid)
			                        OR datname = current_database() AND age(backend_xmin) >= age($1::text::xid8::xid))
			                 LIMIT 1), 'a session or prepared transaction')`, xid).Scan(&older, &who)
		if err != nil {
			return fmt.Errorf("mask: look for older snapshots: %w", err)
		}
		if !older {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mask: %s has held a transaction or snapshot older than the masking for %v, "+
				"and VACUUM FULL would keep the original values for it: end it and copy again", who, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// countMasked counts, for each mask, the rows of the sandbox whose column
// holds a replacement: the non-NULL values, or every row for MaskNull.
func countMasked(ctx context.Context, conn *pgx.Conn, masks []maskedColumn) ([]int64, error) {
	counts := make([]int64, len(masks))
	for i, m := range masks {
		sql := "SELECT count(" + pgx.Identifier{m.Column}.Sanitize() + ") FROM " + pgx.Identifier{m.Schema, m.Table}.Sanitize()
		if m.Strategy == MaskNull {
			sql = "SELECT count(*) FROM " + pgx.Identifier{m.Schema, m.Table}.Sanitize()
		}
		if err := conn.QueryRow(ctx, sql).Scan(&counts[i]); err != nil {
			return nil, fmt.Errorf("count masked values of %s: %w", m.Mask, err)
		}
	}
	return counts, nil
}

// splitQualifiedName splits a dotted SQL name into its parts, folding
// unquoted parts to lower case and unescaping "quoted" ones.
func splitQualifiedName(s string) ([]string, error) {
	var parts []string
	s = strings.TrimSpace(s)
	for {
		var part string
		if strings.HasPrefix(s, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(s); i++ {
				if s[i] == '"' {
					if i+1 < len(s) && s[i+1] == '"' {
						b.WriteByte('"')
						i++
						continue
					}
					break
				}
				b.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("unterminated quoted name in %q", s)
			}
			part, s = b.String(), s[i+1:]
		} else {
			end := strings.IndexByte(s, '.')
			if end < 0 {
				end = len(s)
			}
			part, s = strings.ToLower(strings.TrimSpace(s[:end])), s[end:]
			if strings.ContainsAny(part, `" `) {
				return nil, fmt.Errorf("name %q needs double quotes", part)
			}
		}
		if part == "" {
			return nil, errors.New("empty name")
		}
		parts = append(parts, part)
		if s == "" {
			return parts, nil
		}
		if s[0] != '.' {
			return nil, fmt.Errorf("unexpected %q after name %q", s, part)
		}
		s = s[1:]
	}
}

// qualifiedName prints schema.table for messages, leaving out public.
func qualifiedName(schema, table string) string {
	if schema == "public" || schema == "" {
		return table
	}
	return schema + "." + table
}

// pauseAutovacuum keeps autovacuum off every table of the target while the
// data is loaded and masked, when there are masks: an ANALYZE of a masked
// table would copy original values into pg_statistic, and one of any table
// holds a snapshot that keeps VACUUM FULL from dropping the original row
// versions. The function it returns puts the tables' settings back.
func pauseAutovacuum(ctx context.Context, conn *pgx.Conn, masks []maskedColumn) (func() error, error) {
	if len(masks) == 0 {
		return func() error { return nil }, nil
	}
	type saved struct {
		name string
		opts []string // the table's autovacuum_enabled settings, as they were
	}
	rows, err := conn.Query(ctx, `
		SELECT format('%I.%I', n.nspname, c.relname),
		       ARRAY(SELECT o FROM unnest(coalesce(c.reloptions, '{}')) o WHERE o LIKE 'autovacuum\_enabled=%') ||
		       ARRAY(SELECT 'toast.' || o FROM unnest(coalesce(t.reloptions, '{}')) o WHERE o LIKE 'autovacuum\_enabled=%')
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
		WHERE c.relkind = 'r'
		  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'`)
	if err != nil {
		return nil, fmt.Errorf("mask: list tables: %w", err)
	}
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (saved, error) {
		var s saved
		err := r.Scan(&s.name, &s.opts)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("mask: list tables: %w", err)
	}
	for _, t := range tables {
		if _, err := conn.Exec(ctx, "ALTER TABLE "+t.name+" SET (autovacuum_enabled = false, toast.autovacuum_enabled = false)"); err != nil {
			return nil, fmt.Errorf("mask: keep autovacuum off %s until the data is masked: %w", t.name, err)
		}
	}
	return func() error {
		for _, t := range tables {
			sql := "ALTER TABLE " + t.name + " RESET (autovacuum_enabled, toast.autovacuum_enabled)"
			if len(t.opts) > 0 {
				// name=value pairs from the catalog, boolean values only.
				sql += "; ALTER TABLE " + t.name + " SET (" + strings.Join(t.opts, ", ") + ")"
			}
			if _, err := conn.Exec(ctx, sql); err != nil {
				return fmt.Errorf("mask: restore the autovacuum setting of %s: %w", t.name, err)
			}
		}
		return nil
	}, nil
}
