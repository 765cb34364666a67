package migrations

import (
	"context"
	"slices"
	"testing"

	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/verify/pgtest"
)

// TestLedgerCursorBothPaths backfills, with the ledger's own store, a table
// that takes the one-statement batch and one with a rule for UPDATE, which
// takes separate statements and the ledger's Save; both end with every row
// filled and the same cursor, upper bound and rows walked in the ledger.
func TestLedgerCursorBothPaths(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDB(t, "")
	conn := pgtest.Conn(t, dsn)
	if err := ensureLedger(ctx, conn); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `
		INSERT INTO phasekit.plans (hash, tables, plan) VALUES ('h', '{}', '{}');
		CREATE TABLE plain (id int PRIMARY KEY, a int NOT NULL, b bigint);
		CREATE TABLE ruled (id int PRIMARY KEY, a int NOT NULL, b bigint);
		CREATE TABLE ruled_log (id int);
		CREATE RULE ruled_audit AS ON UPDATE TO ruled DO ALSO INSERT INTO ruled_log VALUES (NEW.id);
		INSERT INTO plain SELECT g, g * 2 FROM generate_series(1, 2500) g;
		INSERT INTO ruled SELECT g, g * 2 FROM generate_series(1, 2500) g;`); err != nil {
		t.Fatal(err)
	}
	pool := backfillPool(t, dsn)
	for i, table := range []string{"public.plain", "public.ruled"} {
		step := phases.BackfillStep{Table: table, Set: []phases.Assignment{{Column: "b", Expr: "a::bigint", Type: "bigint"}}, Where: "b IS DISTINCT FROM a::bigint"}
		store := &ledgerCursor{conn: conn, hash: "h", idx: i, table: table}
		res, err := Backfill(ctx, pool, step, store, BackfillOptions{MinBatch: 1000, MaxBatch: 1000})
		if err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		if res.Rows != 2500 || res.Batches != 3 || res.Remaining != 0 {
			t.Errorf("%s: result %+v, want 2500 rows in 3 batches, 0 remaining", table, res)
		}
		cursor, upper, rows, err := store.Load(ctx)
		if err != nil || !slices.Equal(cursor, []string{"2500"}) || !slices.Equal(upper, []string{"2500"}) || rows != 2500 {
			t.Errorf("%s: ledger holds cursor %v, upper %v, %d rows (%v); want 2500, 2500, 2500", table, cursor, upper, rows, err)
		}
	}
}
