package migrations_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"

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
