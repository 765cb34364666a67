//go:build linux

package migrations_test

import (
	"context"
	"fmt"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/verify"
)

const crashRows = 120_000

// crashSettings keep WAL that is not flushed in shared memory for as long
// as the test needs: no background writer flushing WAL ahead of dirty
// pages, no checkpoint, WAL buffers larger than the backfill writes. The
// WAL writer, which would write asynchronous commits out within
// milliseconds, is stopped by the test itself.
var crashSettings = map[string]string{
	"synchronous_commit":    "on",
	"wal_buffers":           "64MB",
	"bgwriter_lru_maxpages": "0",
	"checkpoint_timeout":    "1h",
	"max_wal_size":          "4GB",
}

// TestServerCrashMidBackfill crashes PostgreSQL (SIGKILL to every server
// process) in the middle of a backfill, after stopping the WAL writer so that
// the batches committed since then are in shared memory only, as they are
// in the moment before a power cut. With asynchronous batch commits (apply's
// default) those batches are lost and their cursor with them; with
// --sync-batches none is. Either way, after crash recovery the table holds
// exactly the rows up to the surviving cursor filled, and a second apply
// finishes the change with every row right.
func TestServerCrashMidBackfill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and crashes two PostgreSQL clusters")
	}
	for _, async := range []bool{true, false} {
		t.Run(fmt.Sprintf("async=%v", async), func(t *testing.T) { crashMidBackfill(t, async) })
	}
}

func crashMidBackfill(t *testing.T, async bool) {
	ctx := context.Background()
	l, err := verify.StartLocal(ctx, verify.LocalOptions{Settings: crashSettings})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Stop() })
	const db = "crash"
	if err := l.CreateDatabase(ctx, db, ""); err != nil {
		t.Fatal(err)
	}
	conn := crashConn(t, l.DSN(db))
	for _, s := range []string{
		"CREATE TABLE acct (id bigint PRIMARY KEY, val int NOT NULL)",
		fmt.Sprintf("INSERT INTO acct SELECT g, (g * 7919) %% 1000003 FROM generate_series(1, %d) g", crashRows),
		"CHECKPOINT",
	} {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	dir, _ := planDir(t, l.DSN(db), "ALTER TABLE acct ALTER COLUMN val TYPE bigint;")
	opts := migrations.BackfillOptions{TargetBatch: 2 * time.Millisecond, MaxRowsPerSecond: 40_000, AsyncCommit: async}
	apply := func(dsn string, until phases.Kind) error {
		_, err := migrations.Apply(ctx, dsn, dir, migrations.ApplyOptions{
			Until: until, Backfill: opts, DDL: fastDDL(), Runner: runner(), Out: io.Discard,
		})
		return err
	}
	done := make(chan error, 1)
	go func() { done <- apply(l.DSN(db), phases.Backfill) }()

	walked := func() int64 {
		var n int64
		if err := conn.QueryRow(ctx, "SELECT coalesce(max(rows), 0) FROM phasekit.backfills").Scan(&n); err != nil && ctx.Err() == nil {
			return -1 // the ledger is not there yet
		}
		return n
	}
	waitWalked := func(atLeast int64) int64 {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case err := <-done:
				t.Fatalf("apply ended before the crash (err %v): raise crashRows", err)
			default:
			}
			if n := walked(); n >= atLeast {
				return n
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatalf("the backfill did not walk %d rows within 30s", atLeast)
		return 0
	}
	waitWalked(10_000)
	var walwriter int
	if err := conn.QueryRow(ctx, "SELECT pid FROM pg_stat_activity WHERE backend_type = 'walwriter'").Scan(&walwriter); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(walwriter, syscall.SIGSTOP); err != nil {
		t.Fatalf("stop the WAL writer: %v", err)
	}
	atStop := walked()
	seen := waitWalked(atStop + 20_000)
	if err := l.Crash(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil {
		t.Fatal("apply returned no error although the server crashed under it")
	}
	if err := l.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	dsn := l.DSN(db)
	conn = crashConn(t, dsn)

	// The ledger and the table agree: the rows up to the cursor are filled,
	// none after it.
	var shadow string
	if err := conn.QueryRow(ctx, `SELECT attname FROM pg_attribute WHERE attrelid = 'acct'::regclass
		AND attnum > 0 AND NOT attisdropped AND attname NOT IN ('id', 'val')`).Scan(&shadow); err != nil {
		t.Fatalf("the retype's new column: %v", err)
	}
	var after, cursor, unfilled, early int64
	if err := conn.QueryRow(ctx, "SELECT rows, coalesce(cursor[1], '0')::bigint FROM phasekit.backfills").Scan(&after, &cursor); err != nil {
		t.Fatal(err)
	}
	q := fmt.Sprintf("SELECT count(*) FILTER (WHERE id <= $1 AND %[1]s IS DISTINCT FROM val), count(*) FILTER (WHERE id > $1 AND %[1]s IS NOT NULL) FROM acct", pgx.Identifier{shadow}.Sanitize())
	if err := conn.QueryRow(ctx, q, cursor).Scan(&unfilled, &early); err != nil {
		t.Fatal(err)
	}
	t.Logf("walked %d when the WAL writer stopped, %d seen committed before the crash, %d after recovery (cursor %d)", atStop, seen, after, cursor)
	if unfilled != 0 || early != 0 {
		t.Fatalf("after recovery, %d rows up to the cursor %d are not filled and %d after it are: batch and cursor were not committed together", unfilled, cursor, early)
	}
	if async && after >= seen {
		t.Errorf("asynchronous batches: %d rows walked after recovery, %d before the crash: the test lost no batch and proves nothing", after, seen)
	}
	if !async && after < seen {
		t.Errorf("--sync-batches: %d rows walked after recovery, %d committed before the crash: a synchronous batch was lost", after, seen)
	}

	// The next apply resumes from the surviving cursor and finishes.
	if err := apply(dsn, phases.Contract); err != nil {
		t.Fatalf("apply after the crash: %v", err)
	}
	var typ string
	var rows, wrong int64
	if err := conn.QueryRow(ctx, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'acct'::regclass AND attname = 'val'").Scan(&typ); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT count(*), count(*) FILTER (WHERE val IS DISTINCT FROM (id * 7919) % 1000003) FROM acct").Scan(&rows, &wrong); err != nil {
		t.Fatal(err)
	}
	if typ != "bigint" || rows != crashRows || wrong != 0 {
		t.Fatalf("after the second apply: val is %s, %d rows, %d of them wrong; want bigint, %d, 0", typ, rows, wrong, crashRows)
	}
}

func crashConn(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
