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
	// vacuum are the stretches of the window in which an autovacuum worker
	// was at work in the run's database, and vacuumed what each worker's
	// query said it did ("autovacuum: VACUUM public.big") with how long
	// it was seen doing it.
	vacuum   []span
	vacuumed map[string]time.Duration
}

// span is a stretch of time, [from, to).
type span struct{ from, to time.Time }

// inAny reports whether t falls in one of spans.
func inAny(spans []span, t time.Time) bool {
	for _, s := range spans {
		if !t.Before(s.from) && t.Before(s.to) {
			return true
		}
	}
	return false
}

// total is the time spans cover (they do not overlap).
func total(spans []span) time.Duration {
	var d time.Duration
	for _, s := range spans {
		d += s.to.Sub(s.from)
	}
	return d
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
// stop is called, on a connection of its own, and at the autovacuum workers
// in db: the backfill leaves a dead row version behind for every row it
// fills, so autovacuum comes to the table during the backfill, and the app's
// latency while it runs tells its share of the tail.
func sampleWaits(ctx context.Context, dsn, db string) (stop func() waits, err error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	w := waits{counts: map[string]int{}, vacuumed: map[string]time.Duration{}}
	var open *span // the autovacuum stretch in progress
	last := time.Now()
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
			rows, err := conn.Query(ctx, `SELECT backend_type = 'autovacuum worker', coalesce(wait_event_type || ':' || wait_event, 'CPU'), coalesce(query, '')
				FROM pg_stat_activity
				WHERE datname = $1 AND (application_name = 'pgbench' AND state = 'active' OR backend_type = 'autovacuum worker')`, db)
			if err != nil {
				return
			}
			now := time.Now()
			vacuuming := false
			for rows.Next() {
				var av bool
				var e, q string
				if rows.Scan(&av, &e, &q) != nil {
					continue
				}
				if av {
					if q == "" {
						continue // a worker starting, not yet on a table
					}
					vacuuming = true
					w.vacuumed[q] += now.Sub(last)
					continue
				}
				w.counts[e]++
				w.samples++
			}
			rows.Close()
			switch {
			case vacuuming && open == nil:
				open = &span{from: now}
			case !vacuuming && open != nil:
				open.to = now
				w.vacuum = append(w.vacuum, *open)
				open = nil
			}
			last = now
			w.looks++
		}
	}()
	return func() waits {
		cancel()
		wg.Wait()
		if open != nil {
			open.to = time.Now()
			w.vacuum = append(w.vacuum, *open)
		}
		conn.Close(context.Background())
		return w
	}, nil
}
