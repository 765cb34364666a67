package verify

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
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

// String is the report on one line.

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

// dumpFormat is the kind of file CopyOptions.Data names.
type dumpFormat int

const (
	formatPlain dumpFormat = iota
	formatCustom
	formatDirectory
	formatTar
)

// detectDumpFormat tells pg_dump's formats apart the way pg_restore does:
// by the "PGDMP" header of a custom archive, the toc.dat of a directory
// archive, the tar header whose first member is toc.dat; anything else is
// taken as a plain SQL script.
func detectDumpFormat(path string) (dumpFormat, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, fmt.Errorf("copy data: %w", err)
	}
	if fi.IsDir() {
		if _, err := os.Stat(filepath.Join(path, "toc.dat")); err != nil {
			return 0, fmt.Errorf("copy data: directory %s is not a pg_dump directory archive: no toc.dat", path)
		}
		return formatDirectory, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("copy data: %w", err)
	}
	defer f.Close()
	head := make([]byte, 512)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("copy data: read %s: %w", path, err)
	}
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte("PGDMP")):
		return formatCustom, nil
	case len(head) >= 262 && string(head[257:262]) == "ustar" && string(bytes.TrimRight(head[:100], "\x00")) == "toc.dat":
		return formatTar, nil
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return 0, fmt.Errorf("copy data: %s is gzip-compressed: decompress it first (gunzip -k)", path)
	}
	return formatPlain, nil
}

// fromDump restores opts.Data and masks and subsets it in the target.
func (c *copier) fromDump(ctx context.Context) error {
	file := c.opts.Data
	format, err := detectDumpFormat(file)
	if err != nil {
		return err
	}
	c.report.Source = file
	if format == formatPlain {
		c.report.Method = "psql"
		if err := LoadSQLFile(ctx, c.dstDSN, file); err != nil {
			return fmt.Errorf("copy data from %s: %w", file, err)
		}
		c.opts.Log("loaded " + file + " with psql")
		if err := c.checkOnTarget(ctx); err != nil {
			return err
		}
		if len(c.subsets) > 0 {
			fks, err := listForeignKeys(ctx, c.dst)
			if err != nil {
				return err
			}
			// The script has created triggers and foreign keys already.
			if err := applySubsets(ctx, c.dst, c.subsets, fks, c.removed, true); err != nil {
				return err
			}
		}
		if len(c.masks) > 0 {
			// Autovacuum may have analyzed the tables before they were masked.
			if err := maskInPlace(ctx, c.dst, c.masks, c.opts.MaskSalt, true); err != nil {
				return err
			}
		}
		return c.countRows(ctx)
	}

	jobs := c.opts.Jobs
	if format == formatTar {
		jobs = 1 // pg_restore runs a tar archive serially
	}
	c.report.Method = "pg_restore"
	if jobs > 1 {
		c.report.Method = fmt.Sprintf("pg_restore -j %d", jobs)
	}
	if len(c.opts.Masks) == 0 && len(c.opts.Subsets) == 0 {
		// Nothing to do between the sections: one run lets pg_restore
		// overlap them.
		if err := c.restore(ctx, file, "", jobs); err != nil {
			return err
		}
		return c.countRows(ctx)
	}
	if err := c.restore(ctx, file, "pre-data", 1); err != nil {
		return err
	}
	// Masks and subsets are checked before the data is loaded, so that a
	// typo fails in a second, not after the whole restore.
	if err := c.checkOnTarget(ctx); err != nil {
		return err
	}
	var fks []foreignKey
	if len(c.subsets) > 0 {
		if fks, err = archiveForeignKeys(ctx, c.dst, file); err != nil {
			return err
		}
	}
	restoreAutovacuum, err := pauseAutovacuum(ctx, c.dst, c.masks)
	if err != nil {
		return err
	}
	if err := c.restore(ctx, file, "data", jobs); err != nil {
		return err
	}
	// Subsetting before masking lets a condition see the original values,
	// as it does on a live source, and before the post-data section no
	// trigger fires, no index is maintained and no foreign key is checked.
	if err := applySubsets(ctx, c.dst, c.subsets, fks, c.removed, false); err != nil {
		return err
	}
	if len(c.masks) > 0 {
		if err := maskInPlace(ctx, c.dst, c.masks, c.opts.MaskSalt, false); err != nil {
			return err
		}
		c.opts.Log(fmt.Sprintf("masked %d columns and rewrote their tables", len(c.masks)))
	}
	if err := restoreAutovacuum(); err != nil {
		return err
	}
	if err := c.restore(ctx, file, "post-data", jobs); err != nil {
		return err
	}
	return c.countRows(ctx)
}

// checkOnTarget checks the masks and subsets against the target's schema.
func (c *copier) checkOnTarget(ctx context.Context) error {
	var err error
	if c.masks, err = checkMasks(ctx, c.dst, c.opts.Masks); err != nil {
		return err
	}
	c.subsets, err = checkSubsets(ctx, c.dst, c.opts.Subsets)
	return err
}

// archiveForeignKeys lists the foreign keys the post-data section of an
// archive creates, before the data is loaded: it runs that section on the
// empty tables inside a transaction it rolls back and reads them from the
// catalog. The subsets need them before the section can be restored for
// real, since a foreign key cannot be added while rows dangle.
func archiveForeignKeys(ctx context.Context, conn *pgx.Conn, file string) ([]foreignKey, error) {
	script, err := archiveScript(ctx, file, "post-data")
	if err != nil {
		return nil, err
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("copy data: %w", err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, script); err != nil {
		return nil, fmt.Errorf("copy data: find the foreign keys of %s (trial run of its post-data section): %w", file, err)
	}
	return listForeignKeys(ctx, tx.Conn())
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

// countRows counts the target's tables and rows for the report.
func (c *copier) countRows(ctx context.Context) error {
	tables, err := listTables(ctx, c.dst)
	if err != nil {
		return err
	}
	c.report.Tables = len(tables)
	for _, t := range tables {
		var n int64
		if err := c.dst.QueryRow(ctx, "SELECT count(*) FROM ONLY "+t.name.sanitized()).Scan(&n); err != nil {
			return fmt.Errorf("copy data: count rows of %s: %w", t.name, err)
		}
		c.report.Rows += n
	}
	return nil
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

// sessionSettings make the source sessions behave as pg_dump's do: no
// timeout ends a long copy or the idle snapshot holder, row security
// raises an error instead of hiding rows, and dates and intervals are
// printed in the forms any server reads back.
const sessionSettings = `SET statement_timeout = 0; SET lock_timeout = 0; SET idle_in_transaction_session_timeout = 0;
SET row_security = off; SET datestyle = ISO; SET intervalstyle = postgres; SET extra_float_digits = 3`

// snapshotID matches what pg_export_snapshot returns, so that it can be
// pasted into SET TRANSACTION SNAPSHOT, which takes no parameters.
var snapshotID = regexp.MustCompile(`^[0-9A-Fa-f]+(-[0-9A-Fa-f]+)+$`)

// fromSource copies a live database; see CopyData.
func (c *copier) fromSource(ctx context.Context) error {
	c.report.Source = dbconn.Redact(c.opts.SourceDSN)
	src, err := dbconn.Connect(ctx, c.opts.SourceDSN)
	if err != nil {
		return err
	}
	defer src.Close(context.Background())
	if _, err := src.Exec(ctx, sessionSettings); err != nil {
		return fmt.Errorf("copy data: set up the source session: %w", err)
	}
	if _, err := src.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"); err != nil {
		return fmt.Errorf("copy data: start the snapshot transaction: %w", err)
	}
	// The transaction holds the snapshot every worker and pg_dump import;
	// it ends with this function.
	defer func() { _, _ = src.Exec(context.Background(), "ROLLBACK") }()
	var snapshot string
	if err := src.QueryRow(ctx, "SELECT pg_export_snapshot()").Scan(&snapshot); err != nil {
		return fmt.Errorf("copy data: export a snapshot of the source: %w", err)
	}
	if !snapshotID.MatchString(snapshot) {
		return fmt.Errorf("copy data: unexpected snapshot id %q", snapshot)
	}

	tables, err := listTables(ctx, src)
	if err != nil {
		return err
	}
	var largeObjects int64
	if err := src.QueryRow(ctx, "SELECT count(*) FROM pg_largeobject_metadata").Scan(&largeObjects); err != nil {
		return fmt.Errorf("copy data: count large objects: %w", err)
	}
	if largeObjects > 0 {
		c.opts.Log(fmt.Sprintf("note: the source has %d large objects; they are not copied", largeObjects))
	}
	if len(tables) > 0 {
		// Nobody may drop or rewrite a table between here and its copy.
		names := make([]string, len(tables))
		for i, t := range tables {
			names[i] = t.name.sanitized()
		}
		if _, err := src.Exec(ctx, "LOCK TABLE "+strings.Join(names, ", ")+" IN ACCESS SHARE MODE"); err != nil {
			return fmt.Errorf("copy data: lock the source tables: %w", err)
		}
	}
	// pg_dump reads the schema while this process plans the copy and opens
	// the workers' connections: on a small database the fixed costs are
	// most of the time.
	tmp, err := os.MkdirTemp("", "phasekit-copy-")
	if err != nil {
		return fmt.Errorf("copy data: %w", err)
	}
	defer os.RemoveAll(tmp)
	schema := filepath.Join(tmp, "schema.dump")
	dumpCtx, cancelDump := context.WithCancel(ctx)
	dumped := make(chan error, 1)
	t0 := time.Now()
	go func() {
		dumped <- runClient(dumpCtx, "pg_dump", c.opts.SourceDSN, nil, "--schema-only", "--format=custom",
			"--no-owner", "--no-privileges", "--snapshot="+snapshot, "--file="+schema)
	}()
	dumpWaited := false
	waitDump := func() error {
		dumpWaited = true
		if err := <-dumped; err != nil {
			return fmt.Errorf("copy data: dump the schema of the source: %w", err)
		}
		c.opts.Log(fmt.Sprintf("dumped the schema in %s", time.Since(t0).Round(time.Millisecond)))
		return nil
	}
	defer func() {
		cancelDump()
		if !dumpWaited {
			<-dumped
		}
	}()

	if err := listColumns(ctx, src, tables); err != nil {
		return err
	}
	if c.masks, err = checkMasks(ctx, src, c.opts.Masks); err != nil {
		return err
	}
	subsets, err := checkSubsets(ctx, src, c.opts.Subsets)
	if err != nil {
		return err
	}
	var fks []foreignKey
	if len(subsets) > 0 {
		if fks, err = listForeignKeys(ctx, src); err != nil {
			return err
		}
	}
	// The binary format is only promised between servers of one major version.
	binary, err := sameMajorVersion(ctx, src, c.dst)
	if err != nil {
		return err
	}
	plans, err := planStreams(ctx, src, tables, c.masks, subsets, c.opts.MaskSalt, binary)
	if err != nil {
		return err
	}
	workers := min(c.opts.Jobs, len(plans))
	pairs, err := openStreamPairs(ctx, c.opts.SourceDSN, c.dstDSN, snapshot, workers)
	if err != nil {
		return err
	}
	defer closeStreamPairs(pairs)

	if err := waitDump(); err != nil {
		return err
	}
	var size int64
	for _, t := range tables {
		size += t.size
	}
	// A small database spends most of its copy starting pg_restore twice;
	// its schema goes over this process's connection instead.
	var postScript <-chan scriptResult
	if size < parallelPostData && len(tables) < maxScriptTables {
		preScript := startArchiveScript(ctx, schema, "pre-data")
		postScript = startArchiveScript(ctx, schema, "post-data")
		if err := c.runScript(ctx, <-preScript, "pre-data"); err != nil {
			return err
		}
	} else if err := c.restore(ctx, schema, "pre-data", 1); err != nil {
		return err
	}

	c.report.Method = fmt.Sprintf("stream: COPY from the source into COPY on the target, %d workers", workers)
	t0 = time.Now()
	if err := streamTables(ctx, pairs, plans); err != nil {
		return err
	}
	// Their snapshots would hold back the source's vacuum horizon.
	closeStreamPairs(pairs)
	var streamed int64
	for _, p := range plans {
		streamed += p.rows
	}
	c.opts.Log(fmt.Sprintf("streamed %d tables, %d rows in %s", len(plans), streamed, time.Since(t0).Round(time.Millisecond)))
	if err := copySequences(ctx, src, c.dst); err != nil {
		return err
	}

	// The constraints do not exist yet: pruning now neither fires FK
	// triggers nor maintains indexes for rows about to go.
	pruned := map[relName]int64{}
	if err := pruneOrphans(ctx, c.dst, fks, pruned); err != nil {
		return err
	}
	if _, err := src.Exec(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("copy data: end the snapshot transaction: %w", err)
	}

	if postScript != nil {
		if err := c.runScript(ctx, <-postScript, "post-data"); err != nil {
			return err
		}
	} else if err := c.restorePostData(ctx, schema, size); err != nil {
		return err
	}
	c.report.Tables = len(plans)
	c.report.Rows = streamed
	// A subset's own rows that do not match were never streamed; orphans were.
	for _, s := range subsets {
		c.removed[relName{s.Schema, s.Table}] += s.removed
	}
	for t, n := range pruned {
		c.removed[t] += n
		c.report.Rows -= n
	}
	return nil
}

// parallelPostData is the size of data from which the post-data section is
// restored with parallel jobs; below it, starting the jobs' connections
// costs more than the parallel index builds save.
const parallelPostData = 64 << 20

// maxScriptTables bounds the tables of a schema run as one script: it runs
// in one transaction, which holds a lock on every table, sequence and index
// it creates, and the server's lock table holds 6,400 by default.
const maxScriptTables = 200

// scriptResult is a section of an archive as SQL, or why not.
type scriptResult struct {
	sql string
	err error
}

// startArchiveScript runs archiveScript in the background.
func startArchiveScript(ctx context.Context, file, section string) <-chan scriptResult {
	ch := make(chan scriptResult, 1)
	go func() {
		sql, err := archiveScript(ctx, file, section)
		ch <- scriptResult{sql, err}
	}()
	return ch
}

// runScript runs a section of the schema archive over the target
// connection, in one round trip and one transaction, and then resets the
// settings the script changed (search_path and the like).
func (c *copier) runScript(ctx context.Context, script scriptResult, section string) error {
	start := time.Now()
	if script.err != nil {
		return script.err
	}
	if _, err := c.dst.Exec(ctx, script.sql); err != nil {
		return fmt.Errorf("copy data: restore the %s section of the source's schema: %w", section, err)
	}
	if _, err := c.dst.Exec(ctx, "RESET ALL"); err != nil {
		return fmt.Errorf("copy data: %w", err)
	}
	c.opts.Log(fmt.Sprintf("ran the %s section in %s", section, time.Since(start).Round(time.Millisecond)))
	return nil
}

// restorePostData restores the post-data section of the schema archive,
// with Jobs parallel jobs for dataBytes of data or more, and memory enough
// for in-memory index sorts.
func (c *copier) restorePostData(ctx context.Context, schema string, dataBytes int64) error {
	start := time.Now()
	args := []string{"--no-owner", "--no-privileges", "--exit-on-error", "--section=post-data"}
	jobs := 1
	if dataBytes >= parallelPostData {
		jobs = c.opts.Jobs
	}
	if jobs > 1 {
		args = append(args, "-j", fmt.Sprint(jobs))
	}
	if err := runClient(ctx, "pg_restore", c.dstDSN, postDataSettings(jobs), append(args, schema)...); err != nil {
		return fmt.Errorf("copy data: restore indexes and constraints: %w", err)
	}
	c.opts.Log(fmt.Sprintf("restored post-data in %s", time.Since(start).Round(time.Millisecond)))
	return nil
}

// streamPlan is one table's COPY pair.
type streamPlan struct {
	table    *sourceTable
	copyOut  string // COPY (SELECT ...) TO STDOUT on the source
	copyIn   string // COPY ... FROM STDIN on the target
	truncate string
	rows     int64 // set by the copy
}

// planStreams builds each table's COPY statements: the SELECT list masks,
// the WHERE keeps a subset's rows; binaryOK allows the binary format. Salt
// and fixed values enter the SQL as literals quoted by the source server
// (COPY takes no parameters).
func planStreams(ctx context.Context, src *pgx.Conn, tables []*sourceTable, masks []maskedColumn, subsets []subsetTable, salt string, binaryOK bool) ([]*streamPlan, error) {
	quote := func(v string) (string, error) {
		var q string
		err := src.QueryRow(ctx, "SELECT quote_literal($1::text)", v).Scan(&q)
		return q, err
	}
	saltLit, err := quote(salt)
	if err != nil {
		return nil, fmt.Errorf("copy data: quote the mask salt: %w", err)
	}
	valueLits := make([]string, len(masks))
	for i, m := range masks {
		if m.Strategy == MaskFixed {
			if valueLits[i], err = quote(m.Value); err != nil {
				return nil, fmt.Errorf("mask %s: quote the value: %w", m.Mask, err)
			}
		}
	}
	plans := make([]*streamPlan, 0, len(tables))
	for _, t := range tables {
		binary := binaryOK
		var sel, cols []string
		for _, col := range t.cols {
			binary = binary && col.binaryOK
			expr := pgx.Identifier{col.name}.Sanitize()
			cols = append(cols, expr)
			for i, m := range masks {
				if m.Column == col.name && contains(t.ancestors, m.relid) {
					expr = maskExpr(m, saltLit, valueLits[i])
				}
			}
			sel = append(sel, expr)
		}
		var where []string
		for _, s := range subsets {
			if contains(t.ancestors, s.relid) {
				where = append(where, s.keepCondition())
			}
		}
		name := t.name.sanitized()
		out := "COPY (SELECT " + strings.Join(sel, ", ") + " FROM ONLY " + name
		if len(where) > 0 {
			out += " WHERE " + strings.Join(where, " AND ")
		}
		in := "COPY " + name
		if len(cols) > 0 {
			in += " (" + strings.Join(cols, ", ") + ")"
		}
		format := "FORMAT binary"
		if !binary {
			format = "FORMAT text"
		}
		plans = append(plans, &streamPlan{
			table:    t,
			copyOut:  out + ") TO STDOUT WITH (" + format + ")",
			copyIn:   in + " FROM STDIN WITH (" + format + ", FREEZE)",
			truncate: "TRUNCATE ONLY " + name,
		})
	}
	return plans, nil
}

// sameMajorVersion reports whether two servers run the same major version.
func sameMajorVersion(ctx context.Context, a, b *pgx.Conn) (bool, error) {
	var va, vb int
	const q = "SELECT current_setting('server_version_num')::int / 10000"
	if err := a.QueryRow(ctx, q).Scan(&va); err != nil {
		return false, fmt.Errorf("copy data: server version of the source: %w", err)
	}
	if err := b.QueryRow(ctx, q).Scan(&vb); err != nil {
		return false, fmt.Errorf("copy data: server version of the target: %w", err)
	}
	return va == vb, nil
}

func contains(ids []uint32, id uint32) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// errTargetFailed tells the source side of a stream that the target gave up.
var errTargetFailed = errors.New("the target's COPY failed")

// streamPair is one worker's connections: a source session in the
// snapshot and a target session.
type streamPair struct{ src, dst *pgx.Conn }

// openStreamPairs opens n pairs at once.
func openStreamPairs(ctx context.Context, srcDSN, dstDSN, snapshot string, n int) ([]streamPair, error) {
	pairs := make([]streamPair, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range pairs {
		wg.Go(func() { pairs[i].src, pairs[i].dst, errs[i] = openStreamPair(ctx, srcDSN, dstDSN, snapshot) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		closeStreamPairs(pairs)
		return nil, err
	}
	return pairs, nil
}

func closeStreamPairs(pairs []streamPair) {
	for _, p := range pairs {
		if p.src != nil {
			p.src.Close(context.Background())
		}
		if p.dst != nil {
			p.dst.Close(context.Background())
		}
	}
}

// streamTables copies the plans, largest first, one worker per pair.
func streamTables(ctx context.Context, pairs []streamPair, plans []*streamPlan) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	queue := make(chan *streamPlan, len(plans))
	for _, p := range plans {
		queue <- p
	}
	close(queue)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for _, pair := range pairs {
		wg.Go(func() {
			for p := range queue {
				if ctx.Err() != nil {
					return
				}
				if err := streamTable(ctx, pair.src, pair.dst, p); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
						cancel()
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return firstErr
}

// openStreamPair connects a worker: a source session in the snapshot and a
// target session.
func openStreamPair(ctx context.Context, srcDSN, dstDSN, snapshot string) (src, dst *pgx.Conn, err error) {
	src, err = dbconn.Connect(ctx, srcDSN)
	if err != nil {
		return nil, nil, err
	}
	for _, sql := range []string{sessionSettings, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", "SET TRANSACTION SNAPSHOT '" + snapshot + "'"} {
		if _, err := src.Exec(ctx, sql); err != nil {
			src.Close(context.Background())
			return nil, nil, fmt.Errorf("copy data: join the source snapshot: %w", err)
		}
	}
	dst, err = dbconn.Connect(ctx, dstDSN)
	if err != nil {
		src.Close(context.Background())
		return nil, nil, err
	}
	// A sandbox loses nothing it cannot copy again if it crashes now.
	if _, err := dst.Exec(ctx, "SET synchronous_commit = off; SET datestyle = ISO; SET intervalstyle = postgres"); err != nil {
		src.Close(context.Background())
		dst.Close(context.Background())
		return nil, nil, fmt.Errorf("copy data: set up the target session: %w", err)
	}
	return src, dst, nil
}

// streamTable runs one table's COPY pair through a pipe. The target side
// truncates the table in its own transaction first, which lets COPY FREEZE
// write the rows frozen and all-visible: nothing rewrites the pages later to
// set hint bits.
func streamTable(ctx context.Context, src, dst *pgx.Conn, p *streamPlan) (err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("copy data: copy table %s: %w", p.table.name, err)
		}
	}()
	if _, err := dst.Exec(ctx, "BEGIN; "+p.truncate); err != nil {
		return err
	}
	pr, pw := io.Pipe()
	srcErr := make(chan error, 1)
	go func() {
		// CopyTo writes once per row; the buffer turns that into few pipe handoffs.
		bw := bufio.NewWriterSize(pw, 256<<10)
		_, err := src.PgConn().CopyTo(ctx, bw, p.copyOut)
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
		srcErr <- err
	}()
	tag, dstErr := dst.PgConn().CopyFrom(ctx, pr, p.copyIn)
	if dstErr != nil {
		pr.CloseWithError(errTargetFailed)
	}
	if err := <-srcErr; err != nil && !errors.Is(err, errTargetFailed) {
		return fmt.Errorf("read from the source: %w", err)
	}
	if dstErr != nil {
		return fmt.Errorf("write to the target: %w", dstErr)
	}
	if _, err := dst.Exec(ctx, "COMMIT"); err != nil {
		return err
	}
	p.rows = tag.RowsAffected()
	return nil
}

// copySequences sets each sequence of the target to where the source's is,
// as pg_dump's data section does.
func copySequences(ctx context.Context, src, dst *pgx.Conn) error {
	rows, err := src.Query(ctx, `
		SELECT format('%I.%I', n.nspname, c.relname)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'S'
		  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
		  AND NOT EXISTS (SELECT FROM pg_depend d
		                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
		ORDER BY 1`)
	if err != nil {
		return fmt.Errorf("copy data: list sequences: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("copy data: list sequences: %w", err)
	}
	if len(names) == 0 {
		return nil
	}
	read := &pgx.Batch{}
	for _, n := range names {
		read.Queue("SELECT last_value, is_called FROM " + n) // n comes quoted from format('%I')
	}
	results := src.SendBatch(ctx, read)
	write := &pgx.Batch{}
	for _, n := range names {
		var last int64
		var called bool
		if err := results.QueryRow().Scan(&last, &called); err != nil {
			results.Close()
			return fmt.Errorf("copy data: read sequence %s: %w", n, err)
		}
		write.Queue("SELECT pg_catalog.setval($1::regclass, $2, $3)", n, last, called)
	}
	if err := results.Close(); err != nil {
		return fmt.Errorf("copy data: read sequences: %w", err)
	}
	if err := dst.SendBatch(ctx, write).Close(); err != nil {
		return fmt.Errorf("copy data: set sequences: %w", err)
	}
	return nil
}
