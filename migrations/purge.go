package migrations

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/phases"
)

// Archived is a column or table a contract archived instead of dropping.
type Archived struct {
	Kind       string    `json:"kind"`   // "column" or "table"
	Object     string    `json:"object"` // schema.table.column or schema.table, as archived
	Original   string    `json:"original"`
	ArchivedAt time.Time `json:"archived_at"`
	Purged     bool      `json:"purged"`
}

// Archives lists what contracts archived, oldest first.
func Archives(ctx context.Context, conn *pgx.Conn) ([]Archived, error) {
	rows, err := conn.Query(ctx, `
		SELECT 'column', n.nspname, c.relname, a.attname, coalesce(col_description(c.oid, a.attnum), '')
		FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p') AND starts_with(a.attname, $1)
			AND a.attinhcount = 0 -- a partition's copy goes with its parent's
		UNION ALL
		SELECT 'table', n.nspname, c.relname, '', coalesce(obj_description(c.oid, 'pg_class'), '')
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $2 AND c.relkind IN ('r', 'p') AND starts_with(c.relname, $1)`, phases.ArchivePrefix, phases.SyncSchema)
	if err != nil {
		return nil, fmt.Errorf("list archived objects: %w", err)
	}
	type row struct{ kind, schema, table, column, comment string }
	found, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		err := r.Scan(&x.kind, &x.schema, &x.table, &x.column, &x.comment)
		return x, err
	})
	if err != nil {
		return nil, fmt.Errorf("list archived objects: %w", err)
	}
	var out []Archived
	for _, x := range found {
		a := Archived{Kind: x.kind}
		a.Object = change.QuoteIdent(x.schema) + "." + change.QuoteIdent(x.table)
		if x.kind == "column" {
			a.Object += "." + change.QuoteIdent(x.column)
		}
		// "phasekit archive of NAME; archived_at_epoch=SECONDS"; an archive
		// without the stamp counts as archived now (never purged early).
		a.ArchivedAt = time.Now()
		if rest, ok := strings.CutPrefix(x.comment, phases.ArchiveStamp); ok {
			if name, epoch, ok := strings.Cut(rest, "; archived_at_epoch="); ok {
				a.Original = name
				if secs, err := strconv.ParseInt(epoch, 10, 64); err == nil {
					a.ArchivedAt = time.Unix(secs, 0)
				}
			}
		}
		out = append(out, a)
	}
	return out, nil
}

// Purge drops archived columns and tables older than olderThan, each in its
// own lock-safe transaction. With dryRun it only reports them.
func Purge(ctx context.Context, conn *pgx.Conn, olderThan time.Duration, dryRun bool, opts DDLOptions, out io.Writer) ([]Archived, error) {
	all, err := Archives(ctx, conn)
	if err != nil {
		return nil, err
	}
	cutoff := time.Now().Add(-olderThan)
	for i := range all {
		a := &all[i]
		if a.ArchivedAt.After(cutoff) {
			fmt.Fprintf(out, "keep  %s %s (archived %s ago)\n", a.Kind, a.Object, time.Since(a.ArchivedAt).Round(time.Second))
			continue
		}
		if dryRun {
			fmt.Fprintf(out, "would drop %s %s (archived %s)\n", a.Kind, a.Object, a.ArchivedAt.Format(time.RFC3339))
			continue
		}
		var stmt phases.Statement
		if a.Kind == "column" {
			i := strings.LastIndexByte(a.Object, '.')
			stmt = phases.Statement{SQL: fmt.Sprintf("ALTER TABLE %s DROP COLUMN %s", a.Object[:i], a.Object[i+1:]), Lock: phases.LockAccessExclusive, Transactional: true}
		} else {
			stmt = phases.Statement{SQL: "DROP TABLE " + a.Object, Lock: phases.LockAccessExclusive, Transactional: true}
		}
		if err := RunGroup(ctx, conn, []phases.Statement{stmt}, opts); err != nil {
			return all, fmt.Errorf("purge %s %s: %w", a.Kind, a.Object, err)
		}
		a.Purged = true
		fmt.Fprintf(out, "dropped %s %s (archived %s)\n", a.Kind, a.Object, a.ArchivedAt.Format(time.RFC3339))
	}
	return all, nil
}
