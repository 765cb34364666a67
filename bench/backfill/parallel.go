package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
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
	db, conn, done, err := b.runCopy(ctx, name)
	if err != nil {
		return err
	}
	defer done()
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
				if _, errs[w] = b.pacedFill(ctx, db, valNew("big"), from, to, parallelBatch, 0); errs[w] != nil {
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
