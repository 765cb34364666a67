package migrations

import (
	"context"
	"strings"
	"testing"

	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/verify/pgtest"
)

// TestBatchStatementIsNotCompiled: a batch's one statement is planned
// without its upper bound, so on a big table its cost can pass
// jit_above_cost, and compiling it took longer than running it. With
// jit_above_cost at 0 the statement is compiled under the server's
// settings, and not under the batch's mode.
func TestBatchStatementIsNotCompiled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDB(t, "")
	conn := pgtest.Conn(t, dsn)
	if _, err := conn.Exec(ctx, `CREATE TABLE j (id bigint PRIMARY KEY, a int NOT NULL, b bigint);
		INSERT INTO j SELECT g, g FROM generate_series(1, 1000) g;
		CREATE TABLE j_cursor (cursor text[], keys bigint)`); err != nil {
		t.Fatal(err)
	}
	pool := backfillPool(t, dsn+"&jit=on&jit_above_cost=0")
	b := &backfiller{pool: pool, table: backfillQuoteTable("public.j"), key: []backfillKeyColumn{{"id", "bigint"}},
		step: phases.BackfillStep{Table: "public.j", Set: []phases.Assignment{{Column: "b", Expr: "a::bigint", Type: "bigint"}}, Where: "b IS DISTINCT FROM a::bigint"}}
	b.prepareSQL()
	stmt := "EXPLAIN (ANALYZE, FORMAT JSON) " + b.one.with("INSERT INTO j_cursor SELECT ARRAY["+oneLast+"."+oneText(0)+"], "+oneLast+"."+oneKeys+" FROM "+oneLast)
	explain := func(mode bool) string {
		t.Helper()
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if mode {
			if _, err := tx.Exec(ctx, b.modeSQL, b.modeArgs()...); err != nil {
				t.Fatal(err)
			}
		}
		var plan string
		if err := tx.QueryRow(ctx, stmt, "0", "1000", 100).Scan(&plan); err != nil {
			t.Fatal(err)
		}
		return plan
	}
	if !strings.Contains(explain(false), `"JIT"`) {
		t.Skip("this server does not compile even with jit_above_cost = 0 (no llvmjit)")
	}
	if plan := explain(true); strings.Contains(plan, `"JIT"`) {
		t.Errorf("the batch's statement was compiled under the batch's mode:\n%s", plan)
	}
}
