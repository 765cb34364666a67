package verify

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/phasekit/phasekit/internal/dbconn"
)

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
