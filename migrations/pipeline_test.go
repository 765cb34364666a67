package migrations_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/verify/pgtest"
)

// sqlCursor keeps the cursor in a table of the test database and saves it
// with one statement, as the ledger does: Backfill sends each batch as one
// statement for such a store. Every save is a row (Load reads the last), so
// a test can read back what each batch saved. failAt makes the failAt-th
// save fail on the server (division by zero) when the batch's statement
// runs.
var _ migrations.CursorStatement = (*sqlCursor)(nil)

type sqlCursor struct {
	conn   *pgx.Conn
	failAt int
	saves  int
}

func newSQLCursor(t *testing.T, dsn string, failAt int) *sqlCursor {
	t.Helper()
	conn := pgtest.Conn(t, dsn)
	if _, err := conn.Exec(context.Background(), "CREATE TABLE IF NOT EXISTS test_cursor (seq bigserial PRIMARY KEY, cursor text[], upper text[], rows bigint)"); err != nil {
		t.Fatal(err)
	}
	return &sqlCursor{conn: conn, failAt: failAt}
}

func (s *sqlCursor) Load(ctx context.Context) ([]string, []string, int64, error) {
	var cursor, upper []string
	var rows int64
	err := s.conn.QueryRow(ctx, "SELECT cursor, upper, rows FROM test_cursor ORDER BY seq DESC LIMIT 1").Scan(&cursor, &upper, &rows)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, 0, nil
	}
	return cursor, upper, rows, err
}

func (s *sqlCursor) SaveStatement(from string, key []string, keys string, upper []string, walked int64, first int) (string, []any, error) {
	s.saves++
	rows := fmt.Sprintf("$%d::bigint + %s", first+1, keys)
	if s.saves == s.failAt {
		// A division by zero when the statement runs, not when it is
		// planned: the batch's UPDATE runs in the same statement.
		rows = fmt.Sprintf("(%s) / (%s - %s)", rows, keys, keys)
	}
	return fmt.Sprintf(`INSERT INTO test_cursor (cursor, upper, rows) SELECT ARRAY[%s]::text[], $%d::text[], %s FROM %s`, strings.Join(key, ", "), first, rows, from),
		[]any{upper, walked}, nil
}

func (s *sqlCursor) Save(ctx context.Context, tx pgx.Tx, cursor, upper []string, rows int64) error {
	_, err := tx.Exec(ctx, `INSERT INTO test_cursor (cursor, upper, rows) VALUES ($1, $2, $3)`, cursor, upper, rows)
	return err
}

// cursors are the cursors saved so far, in order.
func (s *sqlCursor) cursors(t *testing.T) [][]string {
	t.Helper()
	rows, err := s.conn.Query(context.Background(), "SELECT cursor FROM test_cursor ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[[]string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBackfillTableWithUpdateRule: PostgreSQL refuses an UPDATE inside
// WITH on a table with a DO ALSO rule for UPDATE, so such a table gets the
// batch as separate statements even with a store that saves with one; the
// rule still fires for every filled row, as it would for a plain UPDATE.
func TestBackfillTableWithUpdateRule(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDB(t, "")
	conn := pgtest.Conn(t, dsn)
	if _, err := conn.Exec(ctx, `
		CREATE TABLE ruled (id int PRIMARY KEY, a int NOT NULL, b bigint);
		CREATE TABLE ruled_log (id int);
		CREATE RULE ruled_audit AS ON UPDATE TO ruled DO ALSO INSERT INTO ruled_log VALUES (NEW.id);
		INSERT INTO ruled SELECT g, g * 2 FROM generate_series(1, 2500) g;`); err != nil {
		t.Fatal(err)
	}
	step := phases.BackfillStep{
		Table: "public.ruled",
		Set:   []phases.Assignment{{Column: "b", Expr: "a::bigint", Type: "bigint"}},
		Where: "b IS DISTINCT FROM a::bigint",
	}
	store := newSQLCursor(t, dsn, 0)
	res, err := migrations.Backfill(ctx, backfillPool(t, dsn), step, store, migrations.BackfillOptions{MinBatch: 1000, MaxBatch: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows != 2500 || res.Batches != 3 || res.Remaining != 0 {
		t.Errorf("result %+v: want 2500 rows in 3 batches, 0 remaining", res)
	}
	if got := len(store.cursors(t)); got != 3 {
		t.Errorf("%d cursors saved, want 3", got)
	}
	if n := backfillCount(t, conn, "SELECT count(DISTINCT id) FROM ruled_log"); n != 2500 {
		t.Errorf("the rule logged %d rows, want 2500", n)
	}
}
