package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/phasekit/phasekit/internal/clock"
	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/phases"
)

// loopSpec is a backfill without phasekit around it: one connection runs
// phasekit's batch statement (a keyset UPDATE of the rows still different,
// committed with synchronous_commit off) over batch keys at a time, paced
// to rate rows/s by sleeping between batches. It separates what a batch's
// length and its WAL cost the app from what phasekit adds around them.
type loopSpec struct {
	batch int
	rate  float64
	// unlogged runs the loop on an unlogged copy of big instead of big:
	// the same rows, the same statement, the same CPU, no WAL at all and
	// no page the app touches. What the app still loses then is the CPU
	// (and memory) the backfill takes from it: the CPU control.
	unlogged bool
	// dualWrite runs the loop after phasekit's expand and dual-write
	// (applied before the window), filling phasekit's new column with the
	// plan's expression in backfill mode, so the dual-write trigger is on
	// the table and its WHEN skips it for the loop's rows: what the trigger
	// costs a backfill that does nothing else of phasekit's.
	dualWrite bool
}

// fill is what a loop's batch statement fills: table's col from expr.
type fill struct{ table, col, expr string }

// valNew is the loops' fill without phasekit: a plain new column.
func valNew(table string) fill { return fill{table: table, col: "val_new", expr: "val"} }

// loop runs v's loopSpec while the app runs on big.
func (b *bench) loop(ctx context.Context, res *results, v variant) error {
	spec := v.loop
	name := fmt.Sprintf("%s%d", v.key, len(res.series[v.key])+1)
	db, conn, done, err := b.runCopy(ctx, name)
	if err != nil {
		return err
	}
	defer done()
	f := valNew("big")
	switch {
	case spec.unlogged:
		f = valNew("big_unlogged")
		for _, q := range []string{
			"CREATE UNLOGGED TABLE big_unlogged AS SELECT * FROM big",
			"ALTER TABLE big_unlogged ADD PRIMARY KEY (id)",
			"VACUUM ANALYZE big_unlogged",
			"SELECT pg_prewarm('big_unlogged'), pg_prewarm('big_unlogged_pkey')",
		} {
			if _, err := conn.Exec(ctx, q); err != nil {
				return fmt.Errorf("unlogged copy: %s: %w", q, err)
			}
		}
	case spec.dualWrite:
		dir, step, err := b.writePlan(ctx, db, name)
		if err != nil {
			return err
		}
		if _, err := migrations.Apply(ctx, b.l.DSN(db), dir, migrations.ApplyOptions{
			Until: phases.DualWrite, Runner: migrations.CurrentRunner("bench"), Out: b.out,
			Log: slog.New(slog.NewTextHandler(b.out, nil)),
		}); err != nil {
			return fmt.Errorf("apply --until dual-write: %w", err)
		}
		f = fill{table: "big", col: step.Set[0].Column, expr: step.Set[0].Expr}
	}
	if !spec.dualWrite {
		if _, err := conn.Exec(ctx, "ALTER TABLE "+f.table+" ADD COLUMN "+f.col+" bigint"); err != nil {
			return fmt.Errorf("add column: %w", err)
		}
	}
	var took time.Duration
	var batches int
	out, err := b.during(ctx, name, db, func(ctx context.Context) error {
		var err error
		t0 := time.Now()
		batches, err = b.pacedFill(ctx, db, f, 0, b.rows, spec.batch, spec.rate)
		took = time.Since(t0)
		return err
	})
	if err != nil {
		return err
	}
	b.logf("%s: %d batches of %d keys filled %d rows of %s in %s", name, batches, spec.batch, b.rows, f.table, took.Round(time.Millisecond))
	out.rows, out.took = b.rows, took
	res.series[v.key] = append(res.series[v.key], out)
	return nil
}

// pacedFill fills f's ids in (from, to] in keyset batches of batch keys
// on a connection of its own, with phasekit's batch statement committed
// with synchronous_commit off, in phasekit's backfill mode (which a
// dual-write trigger's WHEN skips). With rate > 0 it sleeps after each
// batch until the rows so far fit rate since the start (so short sleeps
// and slow batches even out, as phasekit's --max-rows-per-second does). It
// returns the number of batches.
func (b *bench) pacedFill(ctx context.Context, db string, f fill, from, to int64, batch int, rate float64) (int, error) {
	conn, err := pgx.Connect(ctx, b.l.DSN(db))
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "SET synchronous_commit = off; SET "+phases.BackfillSetting+" = on"); err != nil {
		return 0, err
	}
	q := fmt.Sprintf("UPDATE %s SET %s = %s WHERE id > $1 AND id <= $2 AND %s IS DISTINCT FROM (%s)", f.table, f.col, f.expr, f.col, f.expr)
	start := time.Now()
	n := 0
	for cursor := from; cursor < to; cursor += int64(batch) {
		upper := min(cursor+int64(batch), to)
		if _, err := conn.Exec(ctx, q, cursor, upper); err != nil {
			return n, fmt.Errorf("fill (%d, %d]: %w", cursor, upper, err)
		}
		n++
		if rate > 0 {
			due := start.Add(time.Duration(float64(upper-from) / rate * float64(time.Second)))
			if err := clock.Sleep(ctx, time.Until(due)); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}
