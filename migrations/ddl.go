package migrations

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/internal/clock"
	"github.com/phasekit/phasekit/internal/human"
	"github.com/phasekit/phasekit/phases"
)

// Defaults of DDLOptions.
const (
	// DefaultDDLLockTimeout is short so that the queries queued behind a DDL
	// statement waiting for its lock stall for at most this long, and shorter
	// than PostgreSQL's default deadlock_timeout (1s) so that an autovacuum
	// worker in the way is never cancelled by PostgreSQL behind our back.
	DefaultDDLLockTimeout = 100 * time.Millisecond
	// DefaultDDLStatementTimeout bounds a statement that runs while the
	// transaction holds a lock that blocks writes to a table.
	DefaultDDLStatementTimeout = time.Minute
	// DefaultDDLMaxAttempts is how many times a statement or group is tried
	// before a lock that is never free is reported.
	DefaultDDLMaxAttempts = 50
	// DefaultDDLBaseBackoff and DefaultDDLMaxBackoff bound the jittered
	// exponential wait between attempts.
	DefaultDDLBaseBackoff = 50 * time.Millisecond
	DefaultDDLMaxBackoff  = 5 * time.Second
)

// AutovacuumPolicy says what to do when an autovacuum worker holds the lock a
// DDL statement needs.
//
// PostgreSQL cancels an autovacuum worker that blocks another session once
// that session has waited deadlock_timeout (unless the worker is preventing
// transaction ID wraparound). With a lock_timeout shorter than
// deadlock_timeout, which is the default here, a DDL statement gives up
// before that happens: the worker keeps its lock, and the statement retries
// until the worker finishes, which on a large table can take longer than all
// attempts together. The policy decides what happens instead.
type AutovacuumPolicy string

// Autovacuum policies.
const (
	// AutovacuumWait treats the worker like any other blocker: keep retrying
	// until it finishes or the attempts run out. The default: a vacuum is
	// never lost, at the price of a migration that may stop with a
	// *LockBlockedError naming the worker.
	AutovacuumWait AutovacuumPolicy = "wait"
	// AutovacuumCancel cancels (pg_cancel_backend) the workers holding the
	// lock, then retries, when they are the only blockers and none of them is
	// a wraparound-prevention vacuum; PostgreSQL would cancel the same workers
	// itself had the statement waited deadlock_timeout. A wraparound vacuum is
	// never cancelled: the statement waits for it as with AutovacuumWait.
	// Cancelling needs superuser or pg_signal_backend; when it is refused, the
	// statement keeps retrying and a warning is logged. Autovacuum starts the
	// vacuum again later.
	AutovacuumCancel AutovacuumPolicy = "cancel"
	// AutovacuumFail stops with a *LockBlockedError as soon as an autovacuum
	// worker is among the blockers, for operators who would rather reschedule
	// the migration than wait for or cancel a vacuum.
	AutovacuumFail AutovacuumPolicy = "fail"
)

// DDLOptions configures RunGroup and RunConcurrent. The zero value gives the
// defaults.
type DDLOptions struct {
	// LockTimeout bounds each wait for a lock (lock_timeout); default
	// DefaultDDLLockTimeout. It should be shorter than the server's
	// deadlock_timeout (see AutovacuumPolicy); a warning is logged when it
	// is not. PostgreSQL counts it in whole milliseconds, so at least 1ms.
	//
	// It applies to CONCURRENTLY statements too: CREATE INDEX CONCURRENTLY
	// also waits, under the same timeout, for transactions older than its
	// snapshot, so on a database with transactions longer than LockTimeout
	// an attempt fails late, leaves an INVALID index and the next attempt
	// rebuilds it. Raise LockTimeout for such statements: their
	// SHARE UPDATE EXCLUSIVE lock does not block reads or writes, so a long
	// wait stalls no queries.
	LockTimeout time.Duration
	// StatementTimeout (statement_timeout) bounds each statement that runs
	// while its transaction holds a lock blocking writes to a table (SHARE
	// or stronger), so that a rewrite cannot keep a table unwritable for
	// long; default DefaultDDLStatementTimeout, negative for none. Statements
	// under weaker locks (CREATE INDEX CONCURRENTLY, VALIDATE CONSTRAINT)
	// run without one: they may take hours and block nobody.
	StatementTimeout time.Duration
	// MaxAttempts is how many times a lock timeout is retried in all;
	// default DefaultDDLMaxAttempts.
	MaxAttempts int
	// BaseBackoff and MaxBackoff bound the wait between attempts: doubled on
	// each retry, capped at MaxBackoff, and the second half of it random.
	BaseBackoff, MaxBackoff time.Duration
	// Autovacuum is the AutovacuumPolicy; default AutovacuumWait.
	Autovacuum AutovacuumPolicy
	// Log receives retries, cancellations and warnings; default slog.Default().
	Log *slog.Logger
	// SessionPool accepts a connection through a pooler or proxy (which
	// apply and rollback otherwise refuse, see CheckDirect): set it when the
	// pool runs in session mode, where one client keeps one server session.
	SessionPool bool
	// Sleep waits between attempts; default a timer that stops with ctx.
	Sleep func(context.Context, time.Duration) error
	// Rand returns a number in [0, 1) for the jitter; default math/rand/v2.
	Rand func() float64
}

// withDefaults fills in the zero fields and rejects values PostgreSQL would
// read differently than meant (a lock_timeout of 0 means "wait forever").
func (o DDLOptions) withDefaults() (DDLOptions, error) {
	if o.LockTimeout == 0 {
		o.LockTimeout = DefaultDDLLockTimeout
	}
	if o.LockTimeout < time.Millisecond {
		return o, fmt.Errorf("lock timeout %v: must be at least 1ms", o.LockTimeout)
	}
	if o.StatementTimeout == 0 {
		o.StatementTimeout = DefaultDDLStatementTimeout
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = DefaultDDLMaxAttempts
	}
	if o.MaxAttempts < 0 {
		return o, fmt.Errorf("max attempts %d: must be positive", o.MaxAttempts)
	}
	if o.BaseBackoff == 0 {
		o.BaseBackoff = DefaultDDLBaseBackoff
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = max(DefaultDDLMaxBackoff, o.BaseBackoff)
	}
	if o.BaseBackoff < 0 || o.MaxBackoff < o.BaseBackoff {
		return o, fmt.Errorf("backoff %v..%v: want 0 <= base <= max", o.BaseBackoff, o.MaxBackoff)
	}
	switch o.Autovacuum {
	case "":
		o.Autovacuum = AutovacuumWait
	case AutovacuumWait, AutovacuumCancel, AutovacuumFail:
	default:
		return o, fmt.Errorf("autovacuum policy %q: want %q, %q or %q", o.Autovacuum, AutovacuumWait, AutovacuumCancel, AutovacuumFail)
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Sleep == nil {
		o.Sleep = clock.Sleep
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	return o, nil
}

// ddlBackoff is the wait before the attempt after attempt n (from 1).
func ddlBackoff(n int, base, maxWait time.Duration, rnd func() float64) time.Duration {
	d := base
	for i := 1; i < n && d < maxWait; i++ {
		d *= 2
	}
	d = min(d, maxWait)
	// Half fixed, so a retry never comes at once; half random, so retries do
	// not fall into step with a session that takes the lock periodically.
	return d/2 + time.Duration(rnd()*float64(d/2))
}

// Blocker is a session holding, or queued for, a lock on a table that
// conflicts with the lock a DDL statement needs.
type Blocker struct {
	PID         int // 0 for a prepared transaction, which has no session
	Application string
	BackendType string // "client backend", "autovacuum worker", ...
	State       string // "active", "idle in transaction", ...
	Query       string // the running or, when idle, the last query
	// Mode lists the conflicting lock modes, as pg_locks names them.
	Mode string
	// Waiting is true when the session does not hold the lock yet but is
	// queued for it; it still goes before anyone queued after it.
	Waiting    bool
	XactAge    time.Duration // since the transaction began
	QueryAge   time.Duration // since Query began
	Autovacuum bool          // an autovacuum worker
	// Wraparound marks an autovacuum preventing transaction ID wraparound,
	// which PostgreSQL never cancels for a waiting lock and neither do we.
	Wraparound bool
}

func (b Blocker) String() string {
	var s strings.Builder
	fmt.Fprintf(&s, "pid %d (%s", b.PID, b.BackendType)
	if b.Application != "" {
		fmt.Fprintf(&s, ", application %q", b.Application)
	}
	s.WriteString(")")
	if b.State != "" {
		s.WriteString(" " + b.State)
	}
	if b.Waiting {
		fmt.Fprintf(&s, ", waiting for %s", b.Mode)
	} else {
		fmt.Fprintf(&s, ", holding %s", b.Mode)
	}
	if b.XactAge > 0 {
		fmt.Fprintf(&s, ", transaction open %v", b.XactAge.Round(10*time.Millisecond))
	}
	if b.Query != "" {
		fmt.Fprintf(&s, ", query started %v ago: %s", b.QueryAge.Round(10*time.Millisecond), human.Shorten(b.Query, 200))
	}
	if b.Wraparound {
		s.WriteString(" [wraparound-prevention vacuum: cannot be cancelled]")
	}
	return s.String()
}

// LockBlockedError reports a DDL statement that could not get its lock and
// names the sessions in the way.
type LockBlockedError struct {
	Statement string
	Table     string // "schema.name", as the plan gives it
	Attempts  int
	// Reason says why the runner stopped retrying.
	Reason   string
	Blockers []Blocker
	// Err is the last attempt's error (SQLSTATE 55P03).
	Err error
}

func (e *LockBlockedError) Error() string {
	var s strings.Builder
	fmt.Fprintf(&s, "lock on %s not acquired after %d attempt(s) (%s) for: %s", e.Table, e.Attempts, e.Reason, human.Shorten(e.Statement, 120))
	if len(e.Blockers) == 0 {
		s.WriteString("; no session holds or waits for a conflicting lock on the table now: the blocker may have just finished, or the statement waited for something else (CONCURRENTLY waits for all older transactions)")
	}
	for i, b := range e.Blockers {
		if i == 0 {
			s.WriteString("; blocked by ")
		} else {
			s.WriteString("; ")
		}
		s.WriteString(b.String())
	}
	return s.String()
}

func (e *LockBlockedError) Unwrap() error { return e.Err }

// Table lock modes by strength, as phases names them; ddlPGModes gives
// pg_locks' names at the same index, and ddlConflicts the indexes each mode
// conflicts with (the table in PostgreSQL's "Explicit Locking" chapter).
var (
	ddlModes = []string{phases.LockNone, phases.LockAccessShare, "ROW SHARE", phases.LockRowExclusive,
		phases.LockShareUpdateExclusive, phases.LockShare, phases.LockShareRowExclusive, "EXCLUSIVE", phases.LockAccessExclusive}
	ddlPGModes = []string{"", "AccessShareLock", "RowShareLock", "RowExclusiveLock",
		"ShareUpdateExclusiveLock", "ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock"}
	ddlConflicts = [][]int{
		0: nil,
		1: {8},
		2: {7, 8},
		3: {5, 6, 7, 8},
		4: {4, 5, 6, 7, 8},
		5: {3, 4, 6, 7, 8},
		6: {3, 4, 5, 6, 7, 8},
		7: {2, 3, 4, 5, 6, 7, 8},
		8: {1, 2, 3, 4, 5, 6, 7, 8},
	}
)

const (
	ddlShareRank           = 5 // the weakest mode that blocks writes
	ddlAccessExclusiveRank = 8
)

// ddlLockRank is the strength of a statement's lock; a lock the plan does not
// name is taken to be the strongest, so that it gets every safeguard.
func ddlLockRank(lock string) int {
	for i, m := range ddlModes {
		if strings.EqualFold(lock, m) {
			return i
		}
	}
	return ddlAccessExclusiveRank
}

// Blockers returns the sessions that hold or wait for any lock on table
// ("schema.name", or a name found through search_path), the ones an
// ACCESS EXCLUSIVE lock would wait for, oldest transaction first. It reads
// pg_locks rather than pg_blocking_pids, which only knows while a statement
// waits: after a lock timeout nobody waits, but the holders are still there.
func Blockers(ctx context.Context, conn *pgx.Conn, table string) ([]Blocker, error) {
	return ddlBlockers(ctx, conn, table, phases.LockAccessExclusive)
}

// ddlBlockers returns the sessions holding or waiting for a lock on table
// that conflicts with lock.
func ddlBlockers(ctx context.Context, conn *pgx.Conn, table, lock string) ([]Blocker, error) {
	if table == "" {
		return nil, nil
	}
	r := ddlLockRank(lock)
	if r == 0 {
		// The statement takes no lock as planned, yet it timed out: list
		// everyone on the table rather than no one.
		r = ddlAccessExclusiveRank
	}
	var modes []string
	for _, c := range ddlConflicts[r] {
		modes = append(modes, ddlPGModes[c])
	}
	rows, err := conn.Query(ctx, `
SELECT coalesce(l.pid, 0),
       coalesce(a.application_name, ''),
       coalesce(a.backend_type, CASE WHEN l.pid IS NULL THEN 'prepared transaction' ELSE '' END),
       coalesce(a.state, ''),
       coalesce(a.query, ''),
       string_agg(DISTINCT l.mode, ','),
       bool_and(NOT l.granted),
       coalesce(extract(epoch FROM clock_timestamp() - a.xact_start), 0)::float8,
       coalesce(extract(epoch FROM clock_timestamp() - a.query_start), 0)::float8
FROM pg_locks l
LEFT JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'relation'
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.relation = to_regclass($1::text)
  AND l.mode = ANY($2)
  AND l.pid IS DISTINCT FROM pg_backend_pid()
GROUP BY l.pid, a.application_name, a.backend_type, a.state, a.query, a.xact_start, a.query_start
ORDER BY a.xact_start NULLS FIRST, 1`, change.QuoteQualified(table), modes)
	if err != nil {
		return nil, fmt.Errorf("list sessions locking %s: %w", table, err)
	}
	var out []Blocker
	for rows.Next() {
		var b Blocker
		var xact, query float64
		if err := rows.Scan(&b.PID, &b.Application, &b.BackendType, &b.State, &b.Query, &b.Mode, &b.Waiting, &xact, &query); err != nil {
			return nil, fmt.Errorf("list sessions locking %s: %w", table, err)
		}
		b.XactAge = time.Duration(xact * float64(time.Second))
		b.QueryAge = time.Duration(query * float64(time.Second))
		b.Autovacuum = b.BackendType == "autovacuum worker"
		// An autovacuum worker reports its work as its query, ending in
		// this suffix for a wraparound vacuum (PostgreSQL's autovacuum.c).
		b.Wraparound = b.Autovacuum && strings.HasSuffix(strings.TrimSpace(b.Query), "(to prevent wraparound)")
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list sessions locking %s: %w", table, err)
	}
	return out, nil
}

// ddlAVAction is what to do about autovacuum workers among the blockers.
type ddlAVAction int

const (
	avRetry  ddlAVAction = iota // back off and try again
	avCancel                    // cancel the returned workers, then retry
	avFail                      // stop now
)

// autovacuumAction applies the policy to the blockers of a failed attempt.
// Cancelling waits until the workers are the only blockers: while another
// session holds the lock, a cancelled vacuum is lost for nothing.
func autovacuumAction(p AutovacuumPolicy, blockers []Blocker) (ddlAVAction, []Blocker) {
	var workers []Blocker
	others, wraparound := false, false
	for _, b := range blockers {
		switch {
		case !b.Autovacuum:
			others = true
		case b.Wraparound:
			wraparound = true
			workers = append(workers, b)
		default:
			workers = append(workers, b)
		}
	}
	switch {
	case len(workers) == 0:
		return avRetry, nil
	case p == AutovacuumFail:
		return avFail, nil
	case p == AutovacuumCancel && !others && !wraparound:
		return avCancel, workers
	}
	return avRetry, nil
}

// cancelAutovacuum cancels the workers. The worker is looked up again by pid
// so that a pid reused since, or a worker that has turned to a wraparound
// vacuum, is left alone.
func cancelAutovacuum(ctx context.Context, conn *pgx.Conn, table string, workers []Blocker, log *slog.Logger) {
	for _, w := range workers {
		var cancelled bool
		err := conn.QueryRow(ctx, `
SELECT coalesce(bool_or(pg_cancel_backend(pid)), false)
FROM pg_stat_activity
WHERE pid = $1 AND backend_type = 'autovacuum worker' AND query NOT LIKE '%(to prevent wraparound)'`, w.PID).Scan(&cancelled)
		if err != nil {
			log.Warn("could not cancel the autovacuum worker blocking DDL; retrying anyway", "table", table, "pid", w.PID, "err", err)
			continue
		}
		log.Warn("cancelled autovacuum worker blocking DDL (autovacuum policy cancel)", "table", table, "pid", w.PID, "query", w.Query, "cancelled", cancelled)
	}
}

// ddlWarnDeadlockTimeout warns when lock timeouts are long enough for
// PostgreSQL to cancel autovacuum workers itself, bypassing the policy.
func ddlWarnDeadlockTimeout(ctx context.Context, conn *pgx.Conn, opts DDLOptions) error {
	var ms int64
	if err := conn.QueryRow(ctx, `SELECT setting::int8 FROM pg_settings WHERE name = 'deadlock_timeout'`).Scan(&ms); err != nil {
		return fmt.Errorf("read deadlock_timeout: %w", err)
	}
	if dt := time.Duration(ms) * time.Millisecond; opts.LockTimeout >= dt {
		opts.Log.Warn("lock timeout is not shorter than deadlock_timeout: a statement waiting on an autovacuum worker gets the worker cancelled by PostgreSQL whatever the autovacuum policy, and queries queue behind each waiting statement for up to the lock timeout",
			"lock_timeout", opts.LockTimeout, "deadlock_timeout", dt)
	}
	return nil
}

// ddlLockNotAvailable is SQLSTATE lock_not_available, raised by lock_timeout.
const ddlLockNotAvailable = "55P03"

func isLockTimeout(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == ddlLockNotAvailable
}

// ddlAttempt runs a statement or group once. On a lock timeout it returns
// the statement that timed out, for the blockers of its table.
type ddlAttempt func(ctx context.Context) (blocked *phases.Statement, err error)

// ddlRetry runs attempt until it succeeds, fails other than on a lock
// timeout, or the policy or the attempts say stop.
func ddlRetry(ctx context.Context, conn *pgx.Conn, opts DDLOptions, attempt ddlAttempt) error {
	for n := 1; ; n++ {
		st, err := attempt(ctx)
		if err == nil {
			return nil
		}
		if !isLockTimeout(err) || st == nil || ctx.Err() != nil {
			return err
		}
		blockers, berr := ddlBlockers(ctx, conn, st.Table, st.Lock)
		if berr != nil {
			if ctx.Err() != nil {
				return berr
			}
			// Not knowing who blocks is no reason to stop retrying.
			opts.Log.Warn("could not list the sessions blocking DDL", "table", st.Table, "err", berr)
		}
		lbe := &LockBlockedError{Statement: st.SQL, Table: st.Table, Attempts: n, Blockers: blockers, Err: err}
		action, workers := autovacuumAction(opts.Autovacuum, blockers)
		if action == avFail {
			lbe.Reason = "an autovacuum worker holds the lock and the autovacuum policy is fail"
			return lbe
		}
		if n >= opts.MaxAttempts {
			lbe.Reason = fmt.Sprintf("lock_timeout %v each, giving up", opts.LockTimeout)
			return lbe
		}
		if action == avCancel {
			cancelAutovacuum(ctx, conn, st.Table, workers, opts.Log)
		}
		wait := ddlBackoff(n, opts.BaseBackoff, opts.MaxBackoff, opts.Rand)
		attrs := []any{"table", st.Table, "attempt", n, "max_attempts", opts.MaxAttempts, "retry_in", wait}
		for _, b := range blockers {
			attrs = append(attrs, "blocker", b.String())
		}
		opts.Log.Info("lock not available; retrying", attrs...)
		if err := opts.Sleep(ctx, wait); err != nil {
			return fmt.Errorf("wait before attempt %d: %w", n+1, err)
		}
	}
}

// ddlStatementTimeout is the statement_timeout while the strongest lock held
// has strength rank.
func ddlStatementTimeout(opts DDLOptions, rank int) string {
	if rank < ddlShareRank {
		return "0"
	}
	return human.Setting(opts.StatementTimeout)
}

// RunGroup runs statements that share one transaction (all Transactional) as
// one transaction, with SET LOCAL lock_timeout and statement_timeout (see
// DDLOptions). On a lock timeout (SQLSTATE 55P03) the whole transaction is
// rolled back and retried after a jittered backoff, so a retry never leaves
// a half-applied group; after MaxAttempts it returns a *LockBlockedError
// naming the sessions in the way. Any other error is returned at once.
func RunGroup(ctx context.Context, conn *pgx.Conn, stmts []phases.Statement, opts DDLOptions) error {
	for i, st := range stmts {
		if !st.Transactional {
			return fmt.Errorf("run DDL group: statement %d of %d cannot run in a transaction, run it with RunConcurrent: %s", i+1, len(stmts), human.Shorten(st.SQL, 120))
		}
	}
	if len(stmts) == 0 {
		return nil
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return fmt.Errorf("run DDL group: %w", err)
	}
	if err := ddlWarnDeadlockTimeout(ctx, conn, opts); err != nil {
		return fmt.Errorf("run DDL group: %w", err)
	}
	err = ddlRetry(ctx, conn, opts, func(ctx context.Context) (*phases.Statement, error) {
		return runGroupOnce(ctx, conn, stmts, opts)
	})
	if err != nil {
		return fmt.Errorf("run DDL group of %d statement(s): %w", len(stmts), err)
	}
	return nil
}

func runGroupOnce(ctx context.Context, conn *pgx.Conn, stmts []phases.Statement, opts DDLOptions) (_ *phases.Statement, err error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin transaction: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(ctx)
		}
	}()
	if _, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true)`, human.Setting(opts.LockTimeout)); err != nil {
		return nil, fmt.Errorf("set lock_timeout: %w", err)
	}
	held, timeout := 0, ""
	for i := range stmts {
		// A lock is held until commit, so a statement's timeout follows the
		// strongest lock taken so far, not only its own.
		held = max(held, ddlLockRank(stmts[i].Lock))
		if t := ddlStatementTimeout(opts, held); t != timeout {
			if _, err := tx.Exec(ctx, `SELECT set_config('statement_timeout', $1, true)`, t); err != nil {
				return nil, fmt.Errorf("set statement_timeout: %w", err)
			}
			timeout = t
		}
		if _, err := tx.Exec(ctx, stmts[i].SQL); err != nil {
			return &stmts[i], fmt.Errorf("statement %d of %d (%s): %w", i+1, len(stmts), human.Shorten(stmts[i].SQL, 120), err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	return nil, nil
}

// ddlIndex is the index a CREATE INDEX CONCURRENTLY statement makes.
type ddlIndex struct {
	name  string
	table string // the table as to_regclass reads it, quoted
}

// concurrentIndex returns the index sql creates when it is a named CREATE
// INDEX CONCURRENTLY, else nil.
func concurrentIndex(sql string) (*ddlIndex, error) {
	tree, err := pg.Parse(sql)
	if err != nil {
		return nil, fmt.Errorf("parse statement: %w", err)
	}
	if len(tree.Stmts) != 1 {
		return nil, fmt.Errorf("parse statement: want one statement, got %d", len(tree.Stmts))
	}
	ix := tree.Stmts[0].GetStmt().GetIndexStmt()
	if ix == nil || !ix.Concurrent || ix.Idxname == "" || ix.Relation == nil {
		return nil, nil
	}
	table := pgx.Identifier{ix.Relation.Relname}
	if ix.Relation.Schemaname != "" {
		table = pgx.Identifier{ix.Relation.Schemaname, ix.Relation.Relname}
	}
	return &ddlIndex{name: ix.Idxname, table: table.Sanitize()}, nil
}

// ddlIndexState is what the catalog says about an index name.
type ddlIndexState struct {
	found     bool
	valid     bool
	sameTable bool   // on the statement's table
	qualified string // schema.name, quoted
}

// lookup finds the index in its table's schema, where CREATE INDEX puts it.
func (ix *ddlIndex) lookup(ctx context.Context, conn *pgx.Conn) (ddlIndexState, error) {
	var s ddlIndexState
	var schema string
	err := conn.QueryRow(ctx, `
SELECT n.nspname, i.indisvalid, i.indrelid = to_regclass($1::text)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_index i ON i.indexrelid = c.oid
WHERE c.relname = $2
  AND c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = to_regclass($1::text))`,
		ix.table, ix.name).Scan(&schema, &s.valid, &s.sameTable)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("look up index %s: %w", ix.name, err)
	}
	s.found = true
	s.qualified = pgx.Identifier{schema, ix.name}.Sanitize()
	return s, nil
}

// RunConcurrent runs one statement that cannot run in a transaction block
// (CREATE or DROP INDEX CONCURRENTLY, REINDEX CONCURRENTLY, ...) with
// session-level lock_timeout and statement_timeout, put back as they were
// afterwards, retrying lock timeouts like RunGroup.
//
// For a named CREATE [UNIQUE] INDEX CONCURRENTLY, each attempt first looks
// the index up on the statement's table: a valid one means an earlier run
// finished, and the statement is done; an INVALID one is what a failed,
// timed-out or killed build leaves behind (it slows every write and enforces
// nothing), so it is dropped CONCURRENTLY and built again from the statement.
// An index being built by another session is INVALID too, but the drop
// waits for that session's lock, so it is retried, never dropped under it.
func RunConcurrent(ctx context.Context, conn *pgx.Conn, stmt phases.Statement, opts DDLOptions) (err error) {
	if stmt.Transactional {
		return fmt.Errorf("run concurrent DDL: statement can run in a transaction, run it with RunGroup: %s", human.Shorten(stmt.SQL, 120))
	}
	what := human.Shorten(stmt.SQL, 120)
	opts, err = opts.withDefaults()
	if err != nil {
		return fmt.Errorf("run %s: %w", what, err)
	}
	ix, err := concurrentIndex(stmt.SQL)
	if err != nil {
		return fmt.Errorf("run %s: %w", what, err)
	}
	if err := ddlWarnDeadlockTimeout(ctx, conn, opts); err != nil {
		return fmt.Errorf("run %s: %w", what, err)
	}
	restore, err := ddlSessionTimeouts(ctx, conn, opts.LockTimeout, ddlStatementTimeout(opts, ddlLockRank(stmt.Lock)))
	if err != nil {
		return fmt.Errorf("run %s: %w", what, err)
	}
	defer func() {
		if rerr := restore(); rerr != nil && err == nil {
			err = fmt.Errorf("run %s: %w", what, rerr)
		}
	}()
	err = ddlRetry(ctx, conn, opts, func(ctx context.Context) (*phases.Statement, error) {
		if ix != nil {
			s, err := ix.lookup(ctx, conn)
			if err != nil {
				return nil, err
			}
			switch {
			case s.found && s.sameTable && s.valid:
				opts.Log.Info("index already exists and is valid; nothing to do", "index", s.qualified, "table", stmt.Table)
				return nil, nil
			case s.found && s.sameTable:
				opts.Log.Warn("dropping INVALID index left by an earlier attempt, to build it again", "index", s.qualified, "table", stmt.Table)
				drop := phases.Statement{SQL: "DROP INDEX CONCURRENTLY IF EXISTS " + s.qualified, Lock: phases.LockShareUpdateExclusive, Table: stmt.Table}
				if _, err := conn.Exec(ctx, drop.SQL); err != nil {
					return &drop, fmt.Errorf("drop INVALID index %s: %w", s.qualified, err)
				}
			}
		}
		if _, err := conn.Exec(ctx, stmt.SQL); err != nil {
			return &stmt, err
		}
		return nil, nil
	})
	if err != nil {
		if ix != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("run %s (a build that started and failed leaves the index INVALID; running the statement again rebuilds it): %w", what, err)
		}
		return fmt.Errorf("run %s: %w", what, err)
	}
	return nil
}

// ddlSessionTimeouts sets the session's lock_timeout and statement_timeout
// and returns a function that puts back the values they had.
func ddlSessionTimeouts(ctx context.Context, conn *pgx.Conn, lock time.Duration, statement string) (func() error, error) {
	var oldLock, oldStatement string
	if err := conn.QueryRow(ctx, `SELECT current_setting('lock_timeout'), current_setting('statement_timeout')`).Scan(&oldLock, &oldStatement); err != nil {
		return nil, fmt.Errorf("read session timeouts: %w", err)
	}
	set := func(ctx context.Context, l, s string) error {
		_, err := conn.Exec(ctx, `SELECT set_config('lock_timeout', $1, false), set_config('statement_timeout', $2, false)`, l, s)
		return err
	}
	if err := set(ctx, human.Setting(lock), statement); err != nil {
		return nil, fmt.Errorf("set session timeouts: %w", err)
	}
	return func() error {
		// The caller's context may be what ended the statement; the session
		// must be put back all the same.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := set(rctx, oldLock, oldStatement); err != nil {
			return fmt.Errorf("restore session timeouts (lock_timeout %s, statement_timeout %s): %w", oldLock, oldStatement, err)
		}
		return nil
	}, nil
}
