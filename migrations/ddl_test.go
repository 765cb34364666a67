package migrations

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/verify/pgtest"
)

func TestDDLAutovacuumPolicy(t *testing.T) {
	client := Blocker{PID: 10, BackendType: "client backend", State: "idle in transaction"}
	worker := Blocker{PID: 20, BackendType: "autovacuum worker", Autovacuum: true, Query: "autovacuum: VACUUM public.customer"}
	worker2 := Blocker{PID: 21, BackendType: "autovacuum worker", Autovacuum: true, Query: "autovacuum: ANALYZE public.customer"}
	wraparound := Blocker{PID: 30, BackendType: "autovacuum worker", Autovacuum: true, Wraparound: true,
		Query: "autovacuum: VACUUM public.customer (to prevent wraparound)"}

	cases := []struct {
		name     string
		policy   AutovacuumPolicy
		blockers []Blocker
		want     ddlAVAction
		cancel   []int
	}{
		{"no blockers, cancel", AutovacuumCancel, nil, avRetry, nil},
		{"no blockers, fail", AutovacuumFail, nil, avRetry, nil},
		{"client only, cancel", AutovacuumCancel, []Blocker{client}, avRetry, nil},
		{"client only, fail", AutovacuumFail, []Blocker{client}, avRetry, nil},
		{"worker, wait", AutovacuumWait, []Blocker{worker}, avRetry, nil},
		{"worker, cancel", AutovacuumCancel, []Blocker{worker}, avCancel, []int{20}},
		{"two workers, cancel", AutovacuumCancel, []Blocker{worker, worker2}, avCancel, []int{20, 21}},
		{"worker, fail", AutovacuumFail, []Blocker{worker}, avFail, nil},
		// A cancelled vacuum is lost for nothing while someone else still holds the lock.
		{"worker and client, cancel", AutovacuumCancel, []Blocker{client, worker}, avRetry, nil},
		{"worker and client, fail", AutovacuumFail, []Blocker{client, worker}, avFail, nil},
		{"wraparound, wait", AutovacuumWait, []Blocker{wraparound}, avRetry, nil},
		{"wraparound, cancel", AutovacuumCancel, []Blocker{wraparound}, avRetry, nil},
		{"wraparound and worker, cancel", AutovacuumCancel, []Blocker{worker, wraparound}, avRetry, nil},
		{"wraparound, fail", AutovacuumFail, []Blocker{wraparound}, avFail, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, workers := autovacuumAction(c.policy, c.blockers)
			if got != c.want {
				t.Errorf("action = %d, want %d", got, c.want)
			}
			var pids []int
			for _, w := range workers {
				pids = append(pids, w.PID)
			}
			if fmt.Sprint(pids) != fmt.Sprint(c.cancel) {
				t.Errorf("workers to cancel = %v, want %v", pids, c.cancel)
			}
		})
	}
}

func TestDDLBackoff(t *testing.T) {
	const base, maxWait = 50 * time.Millisecond, 5 * time.Second
	cases := []struct {
		attempt int
		rand    float64
		want    time.Duration
	}{
		{1, 0, 25 * time.Millisecond},
		{1, 0.5, 37500 * time.Microsecond},
		{2, 0, 50 * time.Millisecond},
		{3, 0.5, 150 * time.Millisecond},
		{7, 0, 1600 * time.Millisecond},
		{8, 0, 2500 * time.Millisecond}, // 6.4s capped at 5s
		{1000, 0.5, 3750 * time.Millisecond},
	}
	for _, c := range cases {
		got := ddlBackoff(c.attempt, base, maxWait, func() float64 { return c.rand })
		if got != c.want {
			t.Errorf("ddlBackoff(%d, rand %v) = %v, want %v", c.attempt, c.rand, got, c.want)
		}
	}
}

func TestDDLOptionsRejectMisreadValues(t *testing.T) {
	cases := []struct {
		name string
		opts DDLOptions
		want string
	}{
		{"sub-millisecond lock timeout", DDLOptions{LockTimeout: 500 * time.Microsecond}, "at least 1ms"},
		{"negative lock timeout", DDLOptions{LockTimeout: -time.Second}, "at least 1ms"},
		{"unknown autovacuum policy", DDLOptions{Autovacuum: "kill"}, `autovacuum policy "kill"`},
		{"backoff upside down", DDLOptions{BaseBackoff: time.Second, MaxBackoff: time.Millisecond}, "base <= max"},
		{"negative attempts", DDLOptions{MaxAttempts: -1}, "max attempts"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.opts.withDefaults()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("withDefaults() error = %v, want one containing %q", err, c.want)
			}
		})
	}
	o, err := DDLOptions{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.LockTimeout != DefaultDDLLockTimeout || o.MaxAttempts != DefaultDDLMaxAttempts || o.Autovacuum != AutovacuumWait {
		t.Errorf("defaults = %+v", o)
	}
}

func TestDDLStatementTimeoutFollowsLock(t *testing.T) {
	o, err := DDLOptions{StatementTimeout: 90 * time.Second}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	for lock, want := range map[string]string{
		phases.LockNone:                 "0",
		phases.LockShareUpdateExclusive: "0", // VALIDATE, CONCURRENTLY: long and harmless
		phases.LockShareRowExclusive:    "90000ms",
		phases.LockAccessExclusive:      "90000ms",
		"":                              "90000ms", // unknown: assume the worst
	} {
		if got := ddlStatementTimeout(o, ddlLockRank(lock)); got != want {
			t.Errorf("statement timeout under %q = %s, want %s", lock, got, want)
		}
	}
	o.StatementTimeout = -1
	if got := ddlStatementTimeout(o, ddlLockRank(phases.LockAccessExclusive)); got != "0" {
		t.Errorf("statement timeout with StatementTimeout < 0 = %s, want 0 (none)", got)
	}
}

func TestDDLLockBlockedErrorNamesBlockers(t *testing.T) {
	long := "SELECT " + strings.Repeat("customer_id, ", 100) + "email FROM customer"
	e := &LockBlockedError{
		Statement: "ALTER TABLE customer ADD COLUMN loyalty_points integer",
		Table:     "public.customer",
		Attempts:  50,
		Reason:    "lock_timeout 100ms each, giving up",
		Blockers: []Blocker{
			{PID: 4242, Application: "billing", BackendType: "client backend", State: "idle in transaction",
				Query: long, Mode: "AccessShareLock", XactAge: 3 * time.Second, QueryAge: 2 * time.Second},
			{PID: 777, BackendType: "autovacuum worker", State: "active", Autovacuum: true, Wraparound: true,
				Query: "autovacuum: VACUUM public.customer (to prevent wraparound)", Mode: "ShareUpdateExclusiveLock"},
		},
	}
	msg := e.Error()
	for _, want := range []string{"public.customer", "50 attempt", "pid 4242", `application "billing"`, "client backend",
		"idle in transaction", "transaction open 3s", "query started 2s ago", "SELECT customer_id,", "pid 777",
		"autovacuum worker", "wraparound"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error message lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "email FROM customer") || len(msg) > 1000 {
		t.Errorf("blocker's query not truncated (%d bytes):\n%s", len(msg), msg)
	}
}

func TestDDLConcurrentIndexFromParser(t *testing.T) {
	cases := []struct {
		sql         string
		name, table string // name "" for no index to check
	}{
		{"CREATE INDEX CONCURRENTLY track_name_idx ON track (name)", "track_name_idx", `"track"`},
		{"CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS k ON public.customer USING btree (lower(email)) WHERE email <> ''", "k", `"public"."customer"`},
		{`CREATE INDEX CONCURRENTLY "Mixed Idx" ON "Sales"."Order Lines" (id)`, "Mixed Idx", `"Sales"."Order Lines"`},
		{"CREATE INDEX track_name_idx ON track (name)", "", ""}, // not CONCURRENTLY: RunGroup's business
		{"CREATE INDEX CONCURRENTLY ON track (name)", "", ""},   // unnamed: nothing to look up
		{"DROP INDEX CONCURRENTLY track_name_idx", "", ""},
	}
	for _, c := range cases {
		ix, err := concurrentIndex(c.sql)
		if err != nil {
			t.Fatalf("%s: %v", c.sql, err)
		}
		var name, table string
		if ix != nil {
			name, table = ix.name, ix.table
		}
		if name != c.name || table != c.table {
			t.Errorf("%s: index %q on %s, want %q on %s", c.sql, name, table, c.name, c.table)
		}
	}
	if _, err := concurrentIndex("CREATE INDEX CONCURRENTLY a ON t (x); DROP TABLE t"); err == nil {
		t.Error("two statements accepted as one")
	}
}

func TestDDLRejectsWrongRunner(t *testing.T) {
	// Checked before the connection is used, hence nil.
	err := RunGroup(t.Context(), nil, []phases.Statement{{SQL: "CREATE INDEX CONCURRENTLY i ON t (x)", Transactional: false}}, DDLOptions{})
	if err == nil || !strings.Contains(err.Error(), "RunConcurrent") {
		t.Errorf("RunGroup with a CONCURRENTLY statement: %v", err)
	}
	err = RunConcurrent(t.Context(), nil, phases.Statement{SQL: "ALTER TABLE t ADD COLUMN x int", Transactional: true}, DDLOptions{})
	if err == nil || !strings.Contains(err.Error(), "RunGroup") {
		t.Errorf("RunConcurrent with a transactional statement: %v", err)
	}
}

// ddlTestOpts keeps the runners' logs in the test output and never sleeps
// for real.
func ddlTestOpts(t *testing.T) DDLOptions {
	return DDLOptions{
		Log:   slog.New(slog.NewTextHandler(t.Output(), nil)),
		Sleep: func(context.Context, time.Duration) error { return nil },
	}
}

func ddlStmt(table, sql string) phases.Statement {
	return phases.Statement{SQL: sql, Lock: phases.LockAccessExclusive, Transactional: true, Table: table}
}

func ddlPID(t *testing.T, conn *pgx.Conn) int {
	t.Helper()
	var pid int
	if err := conn.QueryRow(t.Context(), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatalf("read backend pid: %v", err)
	}
	return pid
}

// ddlHold opens a transaction on a new connection, runs sql in it and leaves
// it open, holding whatever locks sql took.
func ddlHold(t *testing.T, dsn, sql string) (pid int, tx pgx.Tx) {
	t.Helper()
	conn := pgtest.Conn(t, dsn)
	pid = ddlPID(t, conn)
	tx, err := conn.Begin(t.Context())
	if err != nil {
		t.Fatalf("begin holder transaction: %v", err)
	}
	if _, err := tx.Exec(t.Context(), sql); err != nil {
		t.Fatalf("holder: %s: %v", sql, err)
	}
	return pid, tx
}

func ddlColumnExists(t *testing.T, conn *pgx.Conn, table, column string) bool {
	t.Helper()
	var ok bool
	err := conn.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM information_schema.columns
		WHERE table_schema = 'public' AND table_name = $1 AND column_name = $2)`, table, column).Scan(&ok)
	if err != nil {
		t.Fatalf("look up column %s.%s: %v", table, column, err)
	}
	return ok
}

func ddlSetting(t *testing.T, conn *pgx.Conn, name string) string {
	t.Helper()
	var v string
	if err := conn.QueryRow(t.Context(), "SELECT current_setting($1)", name).Scan(&v); err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return v
}

func TestDDLRunGroupApplies(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDB(t, "chinook")
	conn := pgtest.Conn(t, dsn)
	stmts := []phases.Statement{
		ddlStmt("public.customer", "ALTER TABLE customer ADD COLUMN loyalty_points integer"),
		ddlStmt("public.customer", "ALTER TABLE customer ADD CONSTRAINT customer_points_nonneg CHECK (loyalty_points >= 0) NOT VALID"),
	}
	if err := RunGroup(t.Context(), conn, stmts, ddlTestOpts(t)); err != nil {
		t.Fatal(err)
	}
	if !ddlColumnExists(t, conn, "customer", "loyalty_points") {
		t.Error("column customer.loyalty_points missing")
	}
	var n int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_constraint WHERE conname = 'customer_points_nonneg'").Scan(&n); err != nil || n != 1 {
		t.Errorf("constraint customer_points_nonneg: %d found, err %v", n, err)
	}
	// SET LOCAL must not outlive the group on a connection the caller reuses.
	if got := ddlSetting(t, conn, "lock_timeout"); got != "0" {
		t.Errorf("lock_timeout after the group = %s, want 0", got)
	}
}

func TestDDLRunGroupFailureLeavesNothing(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDB(t, "chinook")
	conn := pgtest.Conn(t, dsn)
	opts := ddlTestOpts(t)
	sleeps := 0
	opts.Sleep = func(context.Context, time.Duration) error { sleeps++; return nil }
	stmts := []phases.Statement{
		ddlStmt("public.customer", "ALTER TABLE customer ADD COLUMN loyalty_points integer"),
		// Every customer has an email, so validating this check fails.
		ddlStmt("public.customer", "ALTER TABLE customer ADD CONSTRAINT customer_no_email CHECK (email IS NULL)"),
	}
	err := RunGroup(t.Context(), conn, stmts, opts)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "23514" {
		t.Fatalf("RunGroup error = %v, want check_violation (23514)", err)
	}
	if !strings.Contains(err.Error(), "statement 2 of 2") {
		t.Errorf("error does not say which statement failed: %v", err)
	}
	if ddlColumnExists(t, conn, "customer", "loyalty_points") {
		t.Error("first statement of the failed group was applied")
	}
	if sleeps != 0 {
		t.Errorf("a check violation was retried %d times", sleeps)
	}
}

func TestDDLRunGroupRetriesUntilLockFree(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDB(t, "chinook")
	conn := pgtest.Conn(t, dsn)
	observer := pgtest.Conn(t, dsn)
	_, holder := ddlHold(t, dsn, "LOCK TABLE customer IN ACCESS SHARE MODE")

	const releaseAfter = 3
	opts := ddlTestOpts(t)
	sleeps := 0
	opts.Sleep = func(ctx context.Context, _ time.Duration) error {
		sleeps++
		// The artist statement succeeded in the failed attempt; it must
		// have been rolled back with it.
		if ddlColumnExists(t, observer, "artist", "note") {
			t.Errorf("between attempts (sleep %d): artist.note exists, the group was half applied", sleeps)
		}
		if sleeps == releaseAfter {
			if err := holder.Commit(ctx); err != nil {
				return fmt.Errorf("release holder: %w", err)
			}
		}
		return nil
	}
	stmts := []phases.Statement{
		ddlStmt("public.artist", "ALTER TABLE artist ADD COLUMN note text"),
		ddlStmt("public.customer", "ALTER TABLE customer ADD COLUMN loyalty_points integer"),
	}
	if err := RunGroup(t.Context(), conn, stmts, opts); err != nil {
		t.Fatal(err)
	}
	if sleeps != releaseAfter {
		t.Errorf("RunGroup slept %d times, want %d (one per failed attempt)", sleeps, releaseAfter)
	}
	if !ddlColumnExists(t, conn, "artist", "note") || !ddlColumnExists(t, conn, "customer", "loyalty_points") {
		t.Error("group not applied after the lock was released")
	}
}

func TestDDLRunGroupGivesUpNamingBlocker(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDB(t, "chinook")
	conn := pgtest.Conn(t, dsn)
	const marker = "ddl_give_up_marker"
	pid, _ := ddlHold(t, dsn, "SELECT count(*) AS "+marker+" FROM customer")

	opts := ddlTestOpts(t)
	opts.MaxAttempts = 3
	sleeps := 0
	opts.Sleep = func(context.Context, time.Duration) error { sleeps++; return nil }
	err := RunGroup(t.Context(), conn, []phases.Statement{ddlStmt("public.customer", "ALTER TABLE customer ADD COLUMN loyalty_points integer")}, opts)

	var lbe *LockBlockedError
	if !errors.As(err, &lbe) {
		t.Fatalf("RunGroup error = %v, want a *LockBlockedError", err)
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "55P03" {
		t.Errorf("LockBlockedError does not wrap the lock timeout: %v", err)
	}
	if lbe.Attempts != 3 || sleeps != 2 {
		t.Errorf("attempts = %d, sleeps = %d; want 3 and 2", lbe.Attempts, sleeps)
	}
	found := false
	for _, b := range lbe.Blockers {
		if b.PID == pid && strings.Contains(b.Query, marker) {
			found = true
		}
	}
	if !found {
		t.Errorf("blockers %+v do not include the holder (pid %d)", lbe.Blockers, pid)
	}
	for _, want := range []string{fmt.Sprintf("pid %d", pid), marker, "idle in transaction"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if ddlColumnExists(t, conn, "customer", "loyalty_points") {
		t.Error("statement applied although its lock was never granted")
	}
}

// While RunGroup waits for its ACCESS EXCLUSIVE lock, every query on the
// table queues behind it; lock_timeout is what bounds that stall.
func TestDDLRetryDoesNotStallOtherQueries(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDB(t, "chinook")
	runner := pgtest.Conn(t, dsn)
	probe := pgtest.Conn(t, dsn)
	observer := pgtest.Conn(t, dsn)
	runnerPID := ddlPID(t, runner)
	// ACCESS SHARE lets the probe's reads through but not the runner's DDL.
	_, holder := ddlHold(t, dsn, "LOCK TABLE customer IN ACCESS SHARE MODE")

	const lockTimeout, margin, probes = 100 * time.Millisecond, 400 * time.Millisecond, 5
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	var (
		mu        sync.Mutex
		durations []time.Duration
		probeErr  error
	)
	probed := make(chan struct{})
	go func() {
		defer close(probed)
		for range probes {
			// Probe only while the runner is queued for its lock.
			for {
				var waiting bool
				err := observer.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = $1 AND NOT granted)", runnerPID).Scan(&waiting)
				if err != nil {
					mu.Lock()
					probeErr = fmt.Errorf("watch runner: %w", err)
					mu.Unlock()
					return
				}
				if waiting {
					break
				}
			}
			// Without lock_timeout the probe would wait for the holder,
			// which is released only after the probes: bound it.
			pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
			start := time.Now()
			_, err := probe.Exec(pctx, "SELECT count(*) FROM customer")
			d := time.Since(start)
			pcancel()
			mu.Lock()
			durations = append(durations, d)
			if err != nil {
				probeErr = fmt.Errorf("probe query: %w", err)
			}
			mu.Unlock()
			if err != nil {
				cancel() // a stuck probe means a stuck runner: stop it too
				return
			}
		}
	}()

	opts := ddlTestOpts(t)
	opts.LockTimeout = lockTimeout
	opts.MaxAttempts = 300
	released := false
	opts.Sleep = func(ctx context.Context, _ time.Duration) error {
		select {
		case <-probed:
			if !released {
				released = true
				return holder.Commit(ctx)
			}
		default:
		}
		return nil
	}
	err := RunGroup(ctx, runner, []phases.Statement{ddlStmt("public.customer", "ALTER TABLE customer ADD COLUMN loyalty_points integer")}, opts)
	cancel()
	<-probed
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if probeErr != nil {
		t.Fatal(probeErr)
	}
	t.Logf("probe durations while the runner retried: %v", durations)
	if len(durations) != probes {
		t.Fatalf("%d probes ran, want %d", len(durations), probes)
	}
	for i, d := range durations {
		if d > lockTimeout+margin {
			t.Errorf("probe %d waited %v behind the DDL, want at most lock_timeout %v + %v", i+1, d, lockTimeout, margin)
		}
	}
}

func TestDDLBlockersReportsIdleTransaction(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDB(t, "chinook")
	conn := pgtest.Conn(t, dsn)
	const marker = "ddl_blockers_marker"
	pid, _ := ddlHold(t, dsn, "SELECT count(*) AS "+marker+" FROM customer")
	bystander, _ := ddlHold(t, dsn, "SELECT count(*) FROM artist")
	self := ddlPID(t, conn)
	// A lock on our own side must not be reported as someone else's.
	tx, err := conn.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(t.Context(), "SELECT count(*) FROM customer"); err != nil {
		t.Fatal(err)
	}

	for _, table := range []string{"public.customer", "customer"} {
		blockers, err := Blockers(t.Context(), conn, table)
		if err != nil {
			t.Fatal(err)
		}
		var got *Blocker
		for i, b := range blockers {
			switch b.PID {
			case pid:
				got = &blockers[i]
			case bystander:
				t.Errorf("%s: session %d, locking only artist, reported", table, bystander)
			case self:
				t.Errorf("%s: own session reported as a blocker", table)
			}
		}
		if got == nil {
			t.Fatalf("%s: holder pid %d not among blockers %+v", table, pid, blockers)
		}
		if got.State != "idle in transaction" || !strings.Contains(got.Query, marker) || got.Mode != "AccessShareLock" ||
			got.Waiting || got.Autovacuum || got.BackendType != "client backend" || got.XactAge <= 0 {
			t.Errorf("%s: holder reported as %+v", table, *got)
		}
	}
	if blockers, err := Blockers(t.Context(), conn, "public.no_such_table"); err != nil || len(blockers) != 0 {
		t.Errorf("Blockers on a missing table = %v, %v; want none", blockers, err)
	}
}

func TestDDLWarnsLockTimeoutNotShorterThanDeadlockTimeout(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDB(t, "")
	conn := pgtest.Conn(t, dsn)
	if got := ddlSetting(t, conn, "deadlock_timeout"); got != "1s" {
		t.Skipf("deadlock_timeout is %s, this test assumes the default 1s", got)
	}
	for i, c := range []struct {
		lockTimeout time.Duration
		warn        bool
	}{{0, false}, {time.Second, true}} {
		var buf bytes.Buffer
		opts := ddlTestOpts(t)
		opts.Log = slog.New(slog.NewTextHandler(&buf, nil))
		opts.LockTimeout = c.lockTimeout
		stmt := phases.Statement{SQL: fmt.Sprintf("CREATE TABLE t%d (id int)", i), Lock: phases.LockNone, Transactional: true}
		if err := RunGroup(t.Context(), conn, []phases.Statement{stmt}, opts); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(buf.String(), "deadlock_timeout"); got != c.warn {
			t.Errorf("lock timeout %v: warned = %v, want %v; log:\n%s", c.lockTimeout, got, c.warn, buf.String())
		}
	}
}

// ddlTestIndex returns an index's oid and whether it is valid.
func ddlTestIndex(t *testing.T, conn *pgx.Conn, name string) (oid uint32, valid bool) {
	t.Helper()
	err := conn.QueryRow(t.Context(), `SELECT c.oid, i.indisvalid FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid
		WHERE c.oid = to_regclass($1)`, name).Scan(&oid, &valid)
	if err != nil {
		t.Fatalf("look up index %s: %v", name, err)
	}
	return oid, valid
}

func TestDDLRunConcurrentRebuildsInvalidIndex(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDB(t, "chinook")
	conn := pgtest.Conn(t, dsn)
	sql := "CREATE UNIQUE INDEX CONCURRENTLY customer_country_key ON customer (country)"
	// Many customers share a country: the build fails and leaves the index behind, INVALID.
	_, err := conn.Exec(t.Context(), sql)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "23505" {
		t.Fatalf("first build: %v, want unique_violation", err)
	}
	oldOID, valid := ddlTestIndex(t, conn, "customer_country_key")
	if valid {
		t.Fatal("the failed build left a valid index")
	}
	// Rows are referenced by invoices, so make the values unique rather than delete them.
	if _, err := conn.Exec(t.Context(), "UPDATE customer SET country = country || ' #' || customer_id"); err != nil {
		t.Fatal(err)
	}

	stmt := phases.Statement{SQL: sql, Lock: phases.LockShareUpdateExclusive, Table: "public.customer"}
	if err := RunConcurrent(t.Context(), conn, stmt, ddlTestOpts(t)); err != nil {
		t.Fatal(err)
	}
	newOID, valid := ddlTestIndex(t, conn, "customer_country_key")
	if !valid {
		t.Error("index still INVALID after RunConcurrent")
	}
	if newOID == oldOID {
		t.Error("INVALID index kept instead of rebuilt")
	}
	for name, want := range map[string]string{"lock_timeout": "0", "statement_timeout": "0"} {
		if got := ddlSetting(t, conn, name); got != want {
			t.Errorf("%s after RunConcurrent = %s, want it restored to %s", name, got, want)
		}
	}
}

func TestDDLRunConcurrentRerunIsNoOp(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDB(t, "chinook")
	conn := pgtest.Conn(t, dsn)
	// A session setting of the caller's that RunConcurrent must give back.
	if _, err := conn.Exec(t.Context(), "SET lock_timeout = '7s'"); err != nil {
		t.Fatal(err)
	}
	stmt := phases.Statement{SQL: "CREATE INDEX CONCURRENTLY customer_city_idx ON customer (city)", Lock: phases.LockShareUpdateExclusive, Table: "public.customer"}
	if err := RunConcurrent(t.Context(), conn, stmt, ddlTestOpts(t)); err != nil {
		t.Fatal(err)
	}
	first, valid := ddlTestIndex(t, conn, "customer_city_idx")
	if !valid {
		t.Fatal("index not valid after the first run")
	}
	if err := RunConcurrent(t.Context(), conn, stmt, ddlTestOpts(t)); err != nil {
		t.Fatalf("re-run: %v", err)
	}
	if again, _ := ddlTestIndex(t, conn, "customer_city_idx"); again != first {
		t.Errorf("re-run rebuilt the index (oid %d -> %d)", first, again)
	}
	if got := ddlSetting(t, conn, "lock_timeout"); got != "7s" {
		t.Errorf("lock_timeout after RunConcurrent = %s, want the caller's 7s", got)
	}
	// The same name on another table is a conflict, not an earlier run.
	other := phases.Statement{SQL: "CREATE INDEX CONCURRENTLY customer_city_idx ON employee (city)", Lock: phases.LockShareUpdateExclusive, Table: "public.employee"}
	err := RunConcurrent(t.Context(), conn, other, ddlTestOpts(t))
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "42P07" {
		t.Errorf("index name taken on another table: %v, want duplicate_table (42P07)", err)
	}
}
