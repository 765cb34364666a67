package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/phasekit/phasekit/internal/clock"
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
}

// loop runs v's loopSpec while the app runs on big.
func (b *bench) loop(ctx context.Context, res *results, v variant) error {
	spec := v.loop
	name := fmt.Sprintf("%s%d", v.key, len(res.series[v.key])+1)
	db, conn, done, err := b.runCopy(ctx, name)
	if err != nil {
		return err
	}
	defer done()
	table := "big"
	if spec.unlogged {
		table = "big_unlogged"
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
	}
	if _, err := conn.Exec(ctx, "ALTER TABLE "+table+" ADD COLUMN val_new bigint"); err != nil {
		return fmt.Errorf("add column: %w", err)
	}
	var took time.Duration
	var batches int
	out, err := b.during(ctx, name, db, func(ctx context.Context) error {
		var err error
		t0 := time.Now()
		batches, err = b.pacedFill(ctx, db, table, 0, b.rows, spec.batch, spec.rate)
		took = time.Since(t0)
		return err
	})
	if err != nil {
		return err
	}
	b.logf("%s: %d batches of %d keys filled %d rows of %s in %s", name, batches, spec.batch, b.rows, table, took.Round(time.Millisecond))
	out.rows, out.took = b.rows, took
	res.series[v.key] = append(res.series[v.key], out)
	return nil
}

// pacedFill fills table's ids in (from, to] in keyset batches of batch
// keys on a connection of its own, with phasekit's batch statement
// committed with synchronous_commit off. With rate > 0 it sleeps after each
// batch until the rows so far fit rate since the start (so short sleeps
// and slow batches even out, as phasekit's --max-rows-per-second does). It
// returns the number of batches.
func (b *bench) pacedFill(ctx context.Context, db, table string, from, to int64, batch int, rate float64) (int, error) {
	conn, err := pgx.Connect(ctx, b.l.DSN(db))
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "SET synchronous_commit = off"); err != nil {
		return 0, err
	}
	q := "UPDATE " + table + " SET val_new = val WHERE id > $1 AND id <= $2 AND val_new IS DISTINCT FROM val"
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
