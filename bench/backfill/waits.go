package main

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// waitSampleEvery is how often the app's backends are looked at.
const waitSampleEvery = 10 * time.Millisecond

// waits counts, over a window, what the app's active backends were doing
// each time they were looked at: "CPU" when running, else their wait event
// ("LWLock:WALWrite", "IO:WALSync", "Lock:transactionid", ...).
type waits struct {
	counts  map[string]int
	samples int // backend samples: one per active app backend per look
	looks   int
}

// share is the fraction of backend samples spent in event e.
func (w waits) share(e string) float64 {
	if w.samples == 0 {
		return 0
	}
	return float64(w.counts[e]) / float64(w.samples)
}

// top returns the events by count, largest first.
func (w waits) top() []string {
	out := make([]string, 0, len(w.counts))
	for e := range w.counts {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool {
		if w.counts[out[i]] != w.counts[out[j]] {
			return w.counts[out[i]] > w.counts[out[j]]
		}
		return out[i] < out[j]
	})
	return out
}

// sampleWaits looks at pgbench's backends on db every waitSampleEvery until
// stop is called, on a connection of its own.
func sampleWaits(ctx context.Context, dsn, db string) (stop func() waits, err error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	w := waits{counts: map[string]int{}}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(waitSampleEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			rows, err := conn.Query(ctx, `SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU')
				FROM pg_stat_activity WHERE datname = $1 AND application_name = 'pgbench' AND state = 'active'`, db)
			if err != nil {
				return
			}
			for rows.Next() {
				var e string
				if rows.Scan(&e) == nil {
					w.counts[e]++
					w.samples++
				}
			}
			rows.Close()
			w.looks++
		}
	}()
	return func() waits {
		cancel()
		wg.Wait()
		conn.Close(context.Background())
		return w
	}, nil
}
