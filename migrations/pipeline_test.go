package migrations_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/verify/pgtest"
)

// sqlCursor keeps the cursor in a table of the test database and saves it
// with one statement, as the ledger does: Backfill pipelines its batches
// for such a store. failAt makes the failAt-th save a statement that fails
// on the server (division by zero), after the batch's UPDATE has run in
// the same transaction.
type sqlCursor struct {
	conn   *pgx.Conn
	failAt int
	saves  int
}

func newSQLCursor(t *testing.T, dsn string, failAt int) *sqlCursor {
	t.Helper()
	conn := pgtest.Conn(t, dsn)
	if _, err := conn.Exec(context.Background(), "CREATE TABLE IF NOT EXISTS test_cursor (id int PRIMARY KEY, cursor text[], upper text[], rows bigint)"); err != nil {
		t.Fatal(err)
	}
	return &sqlCursor{conn: conn, failAt: failAt}
}

func (s *sqlCursor) Load(ctx context.Context) ([]string, []string, int64, error) {
	var cursor, upper []string
	var rows int64
	err := s.conn.QueryRow(ctx, "SELECT cursor, upper, rows FROM test_cursor WHERE id = 1").Scan(&cursor, &upper, &rows)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, 0, nil
	}
	return cursor, upper, rows, err
}

func (s *sqlCursor) SaveStatement(cursor, upper []string, rows int64) (string, []any, error) {
	s.saves++
	if s.saves == s.failAt {
		return "SELECT 1/0", nil, nil
	}
	return `INSERT INTO test_cursor VALUES (1, $1, $2, $3)
		ON CONFLICT (id) DO UPDATE SET cursor = EXCLUDED.cursor, upper = EXCLUDED.upper, rows = EXCLUDED.rows`,
		[]any{cursor, upper, rows}, nil
}

func (s *sqlCursor) Save(ctx context.Context, tx pgx.Tx, cursor, upper []string, rows int64) error {
	q, args, err := s.SaveStatement(cursor, upper, rows)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, q, args...)
	return err
}

// A save that fails on the server takes its batch's UPDATE down with it:
// the pipelined batch never commits rows without their cursor, and the
// connection goes back to the pool usable (the resumed run on the same pool
// fills every row, and the table ends as an uninterrupted run leaves it).
func TestPipelinedBatchRollsBackWithItsCursor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const migration = "ALTER TABLE track ALTER COLUMN milliseconds TYPE bigint;"
	fixed := migrations.BackfillOptions{MinBatch: 500, MaxBatch: 500}

	cleanDSN := pgtest.NewDB(t, "chinook")
	cleanStep := planBackfill(t, cleanDSN, migration)
	if _, err := migrations.Backfill(ctx, backfillPool(t, cleanDSN), cleanStep, newSQLCursor(t, cleanDSN, 0), fixed); err != nil {
		t.Fatal(err)
	}
	want := backfillChecksum(t, pgtest.Conn(t, cleanDSN), "track", "track_id")

	dsn := pgtest.NewDB(t, "chinook")
	conn := pgtest.Conn(t, dsn)
	step := planBackfill(t, dsn, migration)
	// One connection: the resumed run reuses the one the failed batch had.
	pool := backfillPool(t, dsn+"&pool_max_conns=1")
	store := newSQLCursor(t, dsn, 4)
	_, err := migrations.Backfill(ctx, pool, step, store, fixed)
	if err == nil || !strings.Contains(err.Error(), "backfill public.track (batch 4") || !strings.Contains(err.Error(), "save cursor") || !strings.Contains(err.Error(), "22012") {
		t.Fatalf("first run: err = %v, want batch 4's save failing with division by zero", err)
	}
	if left := backfillCount(t, conn, step.Verify); left != backfillTrackRows-1500 {
		t.Fatalf("after the failed save %d rows are left, want %d: the fourth batch's UPDATE must roll back with it", left, backfillTrackRows-1500)
	}
	cursor, _, rows, err := store.Load(ctx)
	if err != nil || rows != 1500 || len(cursor) != 1 {
		t.Fatalf("saved cursor %v after %d rows (%v), want one key after 1500 rows", cursor, rows, err)
	}

	res, err := migrations.Backfill(ctx, pool, step, store, fixed)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Resumed || res.Batches != 5 || res.Rows != backfillTrackRows-1500 || res.Remaining != 0 {
		t.Errorf("resumed run %+v: want resumed, 5 batches, %d rows updated, 0 remaining", res, backfillTrackRows-1500)
	}
	if got := backfillChecksum(t, conn, "track", "track_id"); got != want {
		t.Errorf("table after the failed batch and the resume differs from an uninterrupted run")
	}
}

// A pipelined batch that waits on a row lock times out, is rolled back and
// retried on the same connection; a composite key walks the same way.
func TestPipelinedBatchRetriesLockedBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDB(t, "chinook")
	step := planBackfill(t, dsn, "ALTER TABLE track ALTER COLUMN milliseconds TYPE bigint;")
	holder, err := pgtest.Conn(t, dsn).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(ctx)
	if _, err := holder.Exec(ctx, "SELECT 1 FROM track WHERE track_id = 10 FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	var sleeps []time.Duration
	sleep := func(_ context.Context, d time.Duration) error {
		sleeps = append(sleeps, d)
		if len(sleeps) == 1 {
			return holder.Commit(ctx)
		}
		return nil
	}
	var out bytes.Buffer
	store := newSQLCursor(t, dsn, 0)
	res, err := migrations.Backfill(ctx, backfillPool(t, dsn+"&pool_max_conns=1"), step, store, migrations.BackfillOptions{
		LockTimeout: 50 * time.Millisecond, Retries: 2, Sleep: sleep, Progress: &out,
	})
	if !strings.Contains(out.String(), "(SQLSTATE 55P03)); retrying in 50ms") {
		t.Errorf("no retry logged:\n%s", out.String())
	}
	if err != nil || res.Remaining != 0 || res.Rows != backfillTrackRows || len(sleeps) != 1 {
		t.Errorf("result %+v, err %v after %v backoffs: want every row filled after one retry", res, err, sleeps)
	}
	if _, _, rows, _ := store.Load(ctx); rows != backfillTrackRows {
		t.Errorf("the cursor's store says %d rows walked, want %d", rows, backfillTrackRows)
	}
}
