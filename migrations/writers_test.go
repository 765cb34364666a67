package migrations_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/verify"
	"github.com/phasekit/phasekit/verify/pgtest"
)

const (
	writersRows  = 1_000_000
	writersCount = 4
	// writersLockTimeout is the DDL lock_timeout: a writer queued behind a
	// DDL statement waiting for its lock waits at most this long.
	writersLockTimeout = 100 * time.Millisecond
	// writersSlack is what a writer statement may take beyond it.
	writersSlack = 50 * time.Millisecond
)

// TestWritersDuringApply runs every phase of a rename and of a type change on
// a table of a million rows while writers insert, update and delete through
// the shapes the app versions of the rollout use: N (old name) until the
// plan lets N+1 in, then both, then only N+1 before contract, as a real
// rollout does. Nothing diverges, no writer statement fails, and none waits
// on a lock longer than the DDL lock_timeout plus 50ms, measured by the
// writer.
func TestWritersDuringApply(t *testing.T) {
	if testing.Short() {
		t.Skip("a million rows, twice")
	}
	l := pgtest.Cluster(t)
	tpl := writersTemplate(t, l)
	cases := []writersCase{
		{name: "rename", sql: "ALTER TABLE acct RENAME COLUMN email TO email_address;", oldEmail: "email", newEmail: "email_address",
			diverged: "SELECT count(*) FROM acct WHERE email IS DISTINCT FROM email_address", after: "email_address text NOT NULL"},
		{name: "change_type", sql: "ALTER TABLE acct ALTER COLUMN balance TYPE bigint;", oldEmail: "email", newEmail: "email", bigAfter: true,
			diverged: "SELECT count(*) FROM acct WHERE phasekit_new_balance IS DISTINCT FROM balance::bigint", after: "balance bigint NOT NULL"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("t_writers_%d", i)
			if err := l.CreateDatabase(context.Background(), name, tpl); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := l.DropDatabase(context.Background(), name); err != nil {
					t.Error(err)
				}
			})
			writersRun(t, l.DSN(name), tc)
		})
	}
}

type writersCase struct {
	name, sql string
	// oldEmail and newEmail are the names N and N+1 write the email under.
	oldEmail, newEmail string
	// bigAfter: once contract is done, writers store balances beyond int.
	bigAfter bool
	// diverged counts rows whose old and new shapes disagree, while both exist.
	diverged string
	// after is a line of the table's schema after contract.
	after string
}

// Writer stages, set by the test as the rollout moves on.
const (
	stageOld      = iota // only N runs
	stageMixed           // N+1 is deployed beside N
	stageNew             // N is retired: contract may run
	stageContract        // contract is done
)

// writersStat is one writer statement, timed by the writer.
type writersStat struct {
	took   time.Duration
	at     time.Duration // since the writers started
	period string        // the phase apply was running, or baseline/between/after
	what   string
}

// writersModel is what one writer wrote: its rows are the ids congruent to
// its number modulo writersCount, so no other writer touches them.
type writersModel struct {
	rows    map[int64]writersRow // rows it inserted or updated, as last written
	deleted map[int64]bool
	mine    []int64 // ids it inserted and has not deleted
	inserts int64
	deletes int64
}

type writersRow struct {
	email   string
	balance int64
}

func writersRun(t *testing.T, dsn string, tc writersCase) {
	ctx := context.Background()
	dir, plan := planDir(t, dsn, tc.sql)
	conn := pgtest.Conn(t, dsn)

	var (
		stage   atomic.Int32
		period  atomic.Value // string
		stop    atomic.Bool
		seen    [writersCount]atomic.Int32 // the stage each writer's next statement uses
		wg      sync.WaitGroup
		mu      sync.Mutex
		stats   []writersStat
		errs    []string
		models  [writersCount]*writersModel
		started = time.Now()
	)
	period.Store("baseline")
	var conns []*pgx.Conn
	stopWriters := sync.OnceFunc(func() {
		stop.Store(true)
		wg.Wait()
		for _, c := range conns {
			c.Close(ctx)
		}
	})
	defer stopWriters()
	for w := range writersCount {
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			t.Fatal(err)
		}
		cfg.RuntimeParams["application_name"] = fmt.Sprintf("writer-%d", w)
		// A lock wait past lock_timeout + slack fails the writer's
		// statement (lock_not_available), and so the test; wall time
		// stretched by a disk or CPU stall of a shared machine is reported.
		cfg.RuntimeParams["lock_timeout"] = fmt.Sprintf("%dms", (writersLockTimeout + writersSlack).Milliseconds())
		wc, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, wc)
		m := &writersModel{rows: map[int64]writersRow{}, deleted: map[int64]bool{}}
		models[w] = m
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			var local []writersStat
			var localErrs []string
			for seq := int64(0); !stop.Load(); seq++ {
				st := int(stage.Load())
				seen[w].Store(int32(st))
				// Writers 2 and 3 move to N+1 once dual-write keeps both
				// shapes in step (the plan deploys N+1 later, once the new
				// shape is filled for reads; writing through it is safe
				// earlier); the others when N is retired.
				newApp := st >= stageNew || (st == stageMixed && w >= 2)
				col, version := tc.oldEmail, "N"
				if newApp {
					col, version = tc.newEmail, "N+1"
				}
				email := fmt.Sprintf("w%d-%d@example.org", w, seq)
				balance := int64(rng.Int32N(1<<30)) - 1<<29
				tag := ""
				if tc.bigAfter && st == stageContract {
					// A statement text of its own: the cached one was
					// prepared while balance was int.
					balance, tag = 1<<40+int64(rng.Int32N(1<<30)), " /* bigint */"
				}
				var (
					sql    string
					args   []any
					id     int64
					op     string
					expect int64 = 1
				)
				switch r := rng.IntN(10); {
				case r < 4:
					op = "insert"
					id = 2*writersRows + seq*writersCount + int64(w)
					sql = "INSERT INTO acct (id, " + col + ", balance) VALUES ($1, $2, $3)" + tag
					args = []any{id, email, balance}
				default:
					// An initial row of this writer's, or one it inserted.
					if len(m.mine) > 0 && rng.IntN(2) == 0 {
						id = m.mine[rng.IntN(len(m.mine))]
					} else {
						id = int64(rng.IntN(writersRows/writersCount))*writersCount + int64(w)
						if id == 0 {
							id = writersCount
						}
					}
					if m.deleted[id] {
						expect = 0
					}
					if r < 8 {
						op = "update"
						sql = "UPDATE acct SET " + col + " = $1, balance = $2 WHERE id = $3" + tag
						args = []any{email, balance, id}
					} else {
						op = "delete"
						sql = "DELETE FROM acct WHERE id = $1"
						args = []any{id}
					}
				}
				t0 := time.Now()
				res, err := wc.Exec(ctx, sql, args...)
				took := time.Since(t0)
				local = append(local, writersStat{took: took, at: t0.Sub(started), period: period.Load().(string), what: op + " by " + version})
				switch {
				case err != nil:
					localErrs = append(localErrs, fmt.Sprintf("writer %d (%s, %s): %s: %v", w, version, period.Load(), sql, err))
					continue
				case res.RowsAffected() != expect:
					localErrs = append(localErrs, fmt.Sprintf("writer %d (%s, %s): %s on id %d: %d rows, want %d", w, version, period.Load(), op, id, res.RowsAffected(), expect))
				}
				switch op {
				case "insert":
					m.rows[id] = writersRow{email, balance}
					m.mine = append(m.mine, id)
					m.inserts++
				case "update":
					if expect == 1 {
						m.rows[id] = writersRow{email, balance}
					}
				case "delete":
					if expect == 1 {
						delete(m.rows, id)
						m.deleted[id] = true
						m.mine = slices.DeleteFunc(m.mine, func(x int64) bool { return x == id })
						m.deletes++
					}
				}
				time.Sleep(2 * time.Millisecond)
			}
			mu.Lock()
			stats = append(stats, local...)
			errs = append(errs, localErrs...)
			mu.Unlock()
		}()
	}

	// Sample the writers' lock waits on the server side too, to tell a slow
	// statement that waited on a lock from one that waited for the CPU.
	sampler := writersSampleLockWaits(t, dsn, &stop)

	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	opts := migrations.ApplyOptions{
		// The DDL runner does not take Apply's logger: it is given its own.
		DDL:    migrations.DDLOptions{LockTimeout: writersLockTimeout, MaxAttempts: 200, Log: log},
		Runner: runner(),
		Out:    &logs,
		Log:    log,
	}
	time.Sleep(time.Second) // baseline: writers alone
	for i, ph := range plan.Phases {
		if ph.Kind == phases.Contract {
			// N is retired: every writer moves to N+1, and contract waits
			// until none has an N statement left in flight.
			stage.Store(stageNew)
			for w := range writersCount {
				for seen[w].Load() != stageNew {
					time.Sleep(time.Millisecond)
				}
			}
			if n := backfillCount(t, conn, tc.diverged); n != 0 {
				t.Errorf("just before contract: %d rows where the old and new shapes differ", n)
			}
		}
		period.Store(string(ph.Kind))
		o := opts
		o.Phase = ph.Kind
		if _, err := migrations.Apply(ctx, dsn, dir, o); err != nil {
			stopWriters()
			t.Fatalf("apply %s: %v\n%s", ph.Kind, err, logs.String())
		}
		period.Store("between")
		if ph.Kind == phases.DualWrite {
			stage.Store(stageMixed)
		}
		if i == len(plan.Phases)-1 {
			stage.Store(stageContract)
		}
	}
	period.Store("after")
	time.Sleep(500 * time.Millisecond)
	stopWriters()
	lockWaits := sampler()

	// Every statement succeeded and did what it meant to.
	if len(errs) > 0 {
		t.Errorf("%d writer errors, the first ones:\n%s", len(errs), strings.Join(errs[:min(len(errs), 10)], "\n"))
	}

	// Every row is as the writers left it: rows they never touched as
	// generated, their rows as they last wrote them, the deleted ones gone.
	var inserts, deletes int64
	var touched []int64
	want := map[int64]writersRow{}
	for _, m := range models {
		inserts += m.inserts
		deletes += m.deletes
		for id, r := range m.rows {
			want[id] = r
			touched = append(touched, id)
		}
		for id := range m.deleted {
			touched = append(touched, id)
		}
	}
	email := tc.newEmail
	var total, untouchedWrong int64
	if err := conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE NOT id = ANY($1) AND (`+email+` <> 'user' || id || '@example.com' OR balance <> (id * 7919) % 1000003 - 500000))
		FROM acct`, touched).Scan(&total, &untouchedWrong); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, `SELECT id, `+email+`, balance FROM acct WHERE id = ANY($1)`, touched)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64]writersRow{}
	for rows.Next() {
		var id int64
		var r writersRow
		if err := rows.Scan(&id, &r.email, &r.balance); err != nil {
			t.Fatal(err)
		}
		got[id] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	diverged := untouchedWrong
	var examples []string
	for _, id := range touched {
		w, g := want[id], got[id]
		_, inWant := want[id]
		_, inGot := got[id]
		if inWant != inGot || w != g {
			diverged++
			if len(examples) < 5 {
				examples = append(examples, fmt.Sprintf("id %d: want %+v (present %v), got %+v (present %v)", id, w, inWant, g, inGot))
			}
		}
	}
	if diverged != 0 || total != writersRows+inserts-deletes {
		t.Errorf("%d rows diverge from what the writers wrote (%d untouched rows changed); %d rows, want %d + %d inserted - %d deleted\n%s",
			diverged, untouchedWrong, total, writersRows, inserts, deletes, strings.Join(examples, "\n"))
	}
	if got, err := verify.DumpSchema(ctx, dsn); err != nil || !strings.Contains(got, tc.after) {
		t.Errorf("schema after contract has no %q (%v):\n%s", tc.after, err, got)
	}

	// No writer statement waited on a lock longer than lock_timeout + slack:
	// the writers' own lock_timeout turns such a wait into an error.
	bound := writersLockTimeout + writersSlack
	slices.SortFunc(stats, func(a, b writersStat) int { return int(b.took - a.took) })
	t.Logf("%d writer statements (%d inserts, %d deletes of %d touched rows), %d errors; DDL lock retries: %d",
		len(stats), inserts, deletes, len(touched), len(errs), strings.Count(logs.String(), "lock not available; retrying"))
	for _, line := range writersSummary(stats) {
		t.Log(line)
	}
	t.Logf("server-side lock waits of writers seen by sampling every 10ms: %s", lockWaits)
	ran := map[string]int{}
	for _, s := range stats {
		ran[s.period]++
	}
	for _, ph := range plan.Phases {
		if ran[string(ph.Kind)] == 0 {
			t.Errorf("no writer statement ran while apply ran %s", ph.Kind)
		}
	}
	if len(stats) == 0 {
		t.Fatal("no writer statement ran")
	}
	if stats[0].took > bound {
		// Lock waits past the bound are writer errors above (their
		// lock_timeout); these took longer for other reasons.
		var slow []string
		for _, s := range stats[:min(len(stats), 10)] {
			slow = append(slow, fmt.Sprintf("%s at %s during %s: %s", s.took.Round(100*time.Microsecond), s.at.Round(time.Millisecond), s.period, s.what))
		}
		t.Logf("a writer statement took %s, more than lock_timeout %s + %s, without a lock wait that long; the slowest:\n%s",
			stats[0].took.Round(100*time.Microsecond), writersLockTimeout, writersSlack, strings.Join(slow, "\n"))
	}
}

// writersSummary gives count, p50, p99 and max of the statement durations
// per period, in the order the periods came; stats is sorted slowest first.
func writersSummary(stats []writersStat) []string {
	by := map[string][]time.Duration{}
	first := map[string]time.Duration{}
	for _, s := range stats {
		by[s.period] = append(by[s.period], s.took)
		if f, ok := first[s.period]; !ok || s.at < f {
			first[s.period] = s.at
		}
	}
	var periods []string
	for p := range by {
		periods = append(periods, p)
	}
	slices.SortFunc(periods, func(a, b string) int { return int(first[a] - first[b]) })
	var out []string
	for _, p := range periods {
		d := by[p]
		slices.Sort(d)
		q := func(f float64) time.Duration {
			return d[min(len(d)-1, int(f*float64(len(d))))].Round(100 * time.Microsecond)
		}
		out = append(out, fmt.Sprintf("%-10s %6d statements: p50 %s, p99 %s, max %s", p, len(d), q(0.5), q(0.99), d[len(d)-1].Round(100*time.Microsecond)))
	}
	return out
}

// writersSampleLockWaits polls pg_stat_activity for writers waiting on a
// lock until stop; the returned function waits for the sampler and reports
// how many samples saw a lock wait and the longest one seen.
func writersSampleLockWaits(t *testing.T, dsn string, stop *atomic.Bool) func() string {
	// Its own connection, closed by the sampler: a test that stops early
	// must not close it under a running query.
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan string, 1)
	go func() {
		defer conn.Close(context.Background())
		var n int
		var longest float64
		var event string
		for !stop.Load() {
			rows, err := conn.Query(context.Background(), `SELECT wait_event, extract(epoch FROM clock_timestamp() - query_start)::float8
				FROM pg_stat_activity WHERE application_name LIKE 'writer-%' AND state = 'active' AND wait_event_type = 'Lock'`)
			if err != nil {
				done <- "sampling failed: " + err.Error()
				return
			}
			for rows.Next() {
				var ev string
				var secs float64
				if rows.Scan(&ev, &secs) == nil {
					n++
					if secs > longest {
						longest, event = secs, ev
					}
				}
			}
			rows.Close()
			time.Sleep(10 * time.Millisecond)
		}
		done <- fmt.Sprintf("%d samples waiting on a lock, the longest %s on %q", n, time.Duration(longest*float64(time.Second)).Round(time.Millisecond), event)
	}()
	return func() string { return <-done }
}

// writersTemplate creates a database with a table of a million generated
// rows, for the subtests to copy, and drops it when the test ends.
func writersTemplate(t *testing.T, l *verify.Local) string {
	return acctTemplate(t, l, "t_writers_template", writersRows)
}
