package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// parallelBatch is the keys one worker's batch covers: about phasekit's
// batch size at its 5 ms target on this machine.
const parallelBatch = 1000

// parallel answers "would key-range workers help?" without building them
// into phasekit first: workers connections each fill one slice of the key
// range with the batch statement phasekit runs (a keyset UPDATE of the
// rows still different, committed with synchronous_commit off), while the
// app runs. phasekit itself runs one worker; this is the experiment that
// says whether more would pay.
func (b *bench) parallel(ctx context.Context, res *results, workers int) error {
	key := fmt.Sprintf("parallel%d", workers)
	name := fmt.Sprintf("%s_%d", key, len(res.series[key])+1)
	db := "run_" + name
	conn, err := b.freshCopy(ctx, db)
	if err != nil {
		return err
	}
	defer b.drop(db)
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "ALTER TABLE big ADD COLUMN val_new bigint"); err != nil {
		return fmt.Errorf("add column: %w", err)
	}
	var took time.Duration
	out, err := b.during(ctx, name, db, func(ctx context.Context) error {
		t0 := time.Now()
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		per := (b.rows + int64(workers) - 1) / int64(workers)
		errs := make([]error, workers)
		var wg sync.WaitGroup
		for w := range workers {
			from, to := int64(w)*per, min(int64(w+1)*per, b.rows)
			wg.Add(1)
			go func() {
				defer wg.Done()
				if errs[w] = b.fillRange(ctx, db, from, to); errs[w] != nil {
					cancel()
				}
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
		took = time.Since(t0)
		b.logf("%s: %d workers filled %d rows in %s", name, workers, b.rows, took.Round(time.Millisecond))
		return nil
	})
	if err != nil {
		return err
	}
	out.rows, out.took = b.rows, took
	res.series[key] = append(res.series[key], out)
	return nil
}

// fillRange fills ids in (from, to] in keyset batches on a connection of
// its own.
func (b *bench) fillRange(ctx context.Context, db string, from, to int64) error {
	conn, err := pgx.Connect(ctx, b.l.DSN(db))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "SET synchronous_commit = off"); err != nil {
		return err
	}
	for cursor := from; cursor < to; cursor += parallelBatch {
		upper := min(cursor+parallelBatch, to)
		if _, err := conn.Exec(ctx, "UPDATE big SET val_new = val WHERE id > $1 AND id <= $2 AND val_new IS DISTINCT FROM val", cursor, upper); err != nil {
			return fmt.Errorf("fill (%d, %d]: %w", cursor, upper, err)
		}
	}
	return nil
}
