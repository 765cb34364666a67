package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/phasekit/phasekit/compat/outcome"
	"github.com/phasekit/phasekit/internal/dbconn"
)

// CopyOptions says where CopyData takes the data from and what it changes on
// the way. Exactly one of Data and SourceDSN is set.
type CopyOptions struct {
	// Data is a dump file: a pg_dump archive (custom, directory or tar
	// format) restored with pg_restore, or a plain SQL script run with psql.
	Data string
	// SourceDSN is a live server whose database is copied.
	SourceDSN string
	// Jobs is how many tables are copied, or archive entries restored, at
	// once; 0 means runtime.NumCPU().
	Jobs int
	// Masks replace column values; see Mask.
	Masks []Mask
	// Subsets keep only some rows; see Subset.
	Subsets []Subset
	// MaskSalt is prefixed to values before hashing; "" means DefaultMaskSalt.
	MaskSalt string
	// Log receives one-line progress notes; nil discards them.
	Log func(string)
}

// CopyReport says what CopyData did (package outcome keeps the type, so a
// verify result can be read without the sandbox machinery).
type (
	CopyReport = outcome.CopyReport
	MaskCount  = outcome.MaskCount
)

// CopyData fills the existing, empty database dstDSN with the data opts
// names, masking and subsetting it on the way.
//
// From a live server (SourceDSN) the copy is consistent: one REPEATABLE READ,
// READ ONLY transaction exports a snapshot that pg_dump (for the schema) and
// every worker share. The schema's pre-data part is restored first; then
// Jobs workers stream the tables, largest first, each with COPY (SELECT ...)
// TO STDOUT on the source piped into COPY ... FROM STDIN (FREEZE) on the
// target, in binary format where the servers and column types allow it;
// then the sequences are set, and the post-data part (indexes, constraints,
// triggers) is restored with pg_restore -j. (A small schema is run as two
// scripts over the target connection instead: starting pg_restore twice
// would be most of the time.) Masks are applied in the SELECT
// on the source, so original values never reach the sandbox; a subset's
// condition filters there too, and the rows it leaves dangling are deleted
// before the constraints exist.
//
// From a dump file, an archive is restored with pg_restore -j Jobs (a tar
// archive serially) and a plain SQL script with psql. The data reaches the
// sandbox as it is and is masked there. An archive is then restored
// section by section: the masked columns are UPDATEd after the data section,
// before any index exists, with autovacuum kept off every table until then,
// and each masked table is rewritten with VACUUM FULL and analyzed, so that
// no row version, index entry or statistic in the database holds an original
// value (VACUUM FULL waits for older snapshots, which would keep the old row
// versions). A plain script is loaded whole and masked the same way, and
// pg_statistic is rewritten too. The originals remain in the dump file
// itself and may remain in the sandbox server's WAL until it is recycled;
// copy from SourceDSN where that matters. Subsets are applied after the
// restore: rows not matching are deleted, then rows left dangling by any
// foreign key, repeatedly until none are, with session_replication_role =
// replica so that FK triggers neither fire nor decide what goes.
//
// Masks and subsets are checked against the schema before any data is
// copied; a bad one is an ErrBadCopyOption. Owners and privileges are not
// copied: the sandbox lacks the roles. Large objects are not copied from a
// live server.
func CopyData(ctx context.Context, dstDSN string, opts CopyOptions) (*CopyReport, error) {
	start := time.Now()
	if (opts.Data == "") == (opts.SourceDSN == "") {
		return nil, errors.New("copy data: give either a dump file or a source DSN")
	}
	if opts.Jobs <= 0 {
		opts.Jobs = runtime.NumCPU()
	}
	if opts.MaskSalt == "" {
		opts.MaskSalt = DefaultMaskSalt
	}
	if opts.Log == nil {
		opts.Log = func(string) {}
	}
	dst, err := dbconn.Connect(ctx, dstDSN)
	if err != nil {
		return nil, err
	}
	defer dst.Close(context.Background())
	if err := checkEmpty(ctx, dst); err != nil {
		return nil, err
	}

	c := &copier{opts: opts, dstDSN: dstDSN, dst: dst, removed: map[relName]int64{}}
	if opts.Data != "" {
		err = c.fromDump(ctx)
	} else {
		err = c.fromSource(ctx)
	}
	if err != nil {
		return nil, err
	}
	if err := c.finish(ctx); err != nil {
		return nil, err
	}
	c.report.Duration = time.Since(start)
	return &c.report, nil
}

// copier holds one CopyData call's state.
type copier struct {
	opts   CopyOptions
	dstDSN string
	dst    *pgx.Conn

	masks   []maskedColumn
	subsets []subsetTable
	removed map[relName]int64 // rows removed by subsets, per table
	report  CopyReport
}

// checkEmpty refuses a target that already holds tables, views or sequences:
// the copy would fail halfway or mix with them.
func checkEmpty(ctx context.Context, conn *pgx.Conn) error {
	var n int
	if err := conn.QueryRow(ctx, `
		SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
		  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'`).Scan(&n); err != nil {
		return fmt.Errorf("copy data: check that the target is empty: %w", err)
	}
	if n > 0 {
		return fmt.Errorf("copy data: target database %s is not empty (%d tables, views or sequences): give a new database",
			conn.Config().Database, n)
	}
	return nil
}

// finish fills in the report from the target.
func (c *copier) finish(ctx context.Context) error {
	counts, err := countMasked(ctx, c.dst, c.masks)
	if err != nil {
		return err
	}
	for i, m := range c.masks {
		c.report.Masked = append(c.report.Masked, MaskCount{Mask: m.Mask, Rows: counts[i]})
	}
	if len(c.opts.Subsets) > 0 {
		if c.report.Subset, err = subsetCounts(ctx, c.dst, c.removed); err != nil {
			return err
		}
	}
	if err := c.dst.QueryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&c.report.Bytes); err != nil {
		return fmt.Errorf("copy data: size of the target: %w", err)
	}
	return nil
}

// archiveScript returns one section of an archive as SQL, without the
// \restrict and \unrestrict lines pg_restore adds for psql; any other psql
// meta-command is an error, as it would not run over a connection.
func archiveScript(ctx context.Context, file, section string) (string, error) {
	bin, err := clientBinary("pg_restore")
	if err != nil {
		return "", err
	}
	var out, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "--no-owner", "--no-privileges", "--section="+section, "--file=-", file)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("copy data: read the %s section of %s: %w: %s", section, file, err, strings.TrimSpace(stderr.String()))
	}
	lines := strings.Split(out.String(), "\n")
	kept := lines[:0]
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, `\restrict `) || strings.HasPrefix(l, `\unrestrict `):
			continue
		case strings.HasPrefix(l, `\`):
			return "", fmt.Errorf("copy data: the %s section of %s has a psql command: %q", section, file, l)
		}
		kept = append(kept, l)
	}
	return strings.Join(kept, "\n"), nil
}

// restore runs pg_restore for one section of the archive, or all of it
// for section "".
func (c *copier) restore(ctx context.Context, file, section string, jobs int) error {
	start := time.Now()
	args := []string{"--no-owner", "--no-privileges", "--exit-on-error"}
	what := "all"
	if section != "" {
		args = append(args, "--section="+section)
		what = "the " + section + " section"
	}
	if jobs > 1 {
		args = append(args, "-j", fmt.Sprint(jobs))
	}
	var settings []string
	if section == "" || section == "post-data" {
		settings = postDataSettings(jobs)
	}
	if err := runClient(ctx, "pg_restore", c.dstDSN, settings, append(args, file)...); err != nil {
		return fmt.Errorf("copy data: restore %s of %s: %w", what, file, err)
	}
	c.opts.Log(fmt.Sprintf("restored %s of %s in %s", what, file, time.Since(start).Round(time.Millisecond)))
	return nil
}

// postDataSettings speed up the index builds of the post-data section run
// with jobs parallel jobs: a sort that fits in memory does not spill to
// disk. The jobs share 2 GB, with at least 256 MB each (measured on a
// 6.8M-row primary key: 1 GB builds it in 80% of the time 256 MB takes).
func postDataSettings(jobs int) []string {
	mb := max(256, 2048/max(jobs, 1))
	return []string{fmt.Sprintf("maintenance_work_mem=%dMB", mb)}
}

// runClient runs a PostgreSQL client program against dsn, with settings
// passed to the server session through PGOPTIONS, and returns its stderr in
// the error if it fails.
func runClient(ctx context.Context, program, dsn string, settings []string, args ...string) error {
	bin, err := clientBinary(program)
	if err != nil {
		return err
	}
	var stderr bytes.Buffer
	cmd := clientCommand(ctx, bin, dsn, args...)
	if len(settings) > 0 {
		opts := strings.TrimSpace(os.Getenv("PGOPTIONS") + " -c " + strings.Join(settings, " -c "))
		cmd.Env = append(cmd.Env, "PGOPTIONS="+opts) // the last one wins
	}
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", program, err, dbconn.Redact(strings.TrimSpace(stderr.String())))
	}
	return nil
}

// sourceTable is a table to stream from the source.
type sourceTable struct {
	relid     uint32
	name      relName
	size      int64
	ancestors []uint32 // itself and the partitioned tables above it
	cols      []sourceColumn
}

type sourceColumn struct {
	name     string
	typ      string
	binaryOK bool // binary COPY format carries it between servers
}

// listTables returns conn's tables that hold data, largest first: regular
// tables and partitions outside the system schemas, except temporary tables
// and tables that belong to an extension.
func listTables(ctx context.Context, conn *pgx.Conn) ([]*sourceTable, error) {
	rows, err := conn.Query(ctx, `
		SELECT c.oid, n.nspname, c.relname, pg_table_size(c.oid),
		       ARRAY[c.oid] || ARRAY(SELECT a.relid FROM pg_partition_ancestors(c.oid) a WHERE a.relid <> c.oid)::oid[]
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'r' AND c.relpersistence <> 't'
		  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
		  AND NOT EXISTS (SELECT FROM pg_depend d
		                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
		ORDER BY 4 DESC, 2, 3`)
	if err != nil {
		return nil, fmt.Errorf("copy data: list tables: %w", err)
	}
	var tables []*sourceTable
	for rows.Next() {
		t := &sourceTable{}
		if err := rows.Scan(&t.relid, &t.name[0], &t.name[1], &t.size, &t.ancestors); err != nil {
			return nil, fmt.Errorf("copy data: list tables: %w", err)
		}
		tables = append(tables, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("copy data: list tables: %w", err)
	}
	return tables, nil
}

// listColumns fills in the columns COPY carries: all but dropped and
// generated ones. A column may travel in binary format if its type is
// built in, an enum or a domain over a built-in type, and has binary I/O;
// other user-defined types (an extension's type may lack binary I/O, arrays
// and composites of them carry type oids that differ between databases) make
// their table go as text.
func listColumns(ctx context.Context, conn *pgx.Conn, tables []*sourceTable) error {
	byID := map[uint32]*sourceTable{}
	ids := make([]uint32, 0, len(tables))
	for _, t := range tables {
		byID[t.relid] = t
		ids = append(ids, t.relid)
	}
	rows, err := conn.Query(ctx, `
		SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod),
		       (a.atttypid < 16384 OR t.typtype = 'e' OR (t.typtype = 'd' AND t.typbasetype < 16384))
		       AND t.typsend <> 0 AND t.typreceive <> 0
		FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
		WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
		ORDER BY a.attrelid, a.attnum`, ids)
	if err != nil {
		return fmt.Errorf("copy data: list columns: %w", err)
	}
	for rows.Next() {
		var relid uint32
		var col sourceColumn
		if err := rows.Scan(&relid, &col.name, &col.typ, &col.binaryOK); err != nil {
			return fmt.Errorf("copy data: list columns: %w", err)
		}
		byID[relid].cols = append(byID[relid].cols, col)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("copy data: list columns: %w", err)
	}
	return nil
}
