package migrations

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/phasekit/phasekit/internal/clock"
	"github.com/phasekit/phasekit/internal/human"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/throttle"
)

// ErrNoBackfillKey is wrapped by the error Backfill refuses a table with when
// it has neither a primary key nor a unique index over NOT NULL columns that
// the step's key covers.
var ErrNoBackfillKey = errors.New("no primary key or unique index over NOT NULL columns")

// ErrBackfillIncomplete is wrapped by the error Backfill returns, together
// with its result, when the step's Verify query still counts rows.
var ErrBackfillIncomplete = errors.New("rows still differ from their expected value")

// CursorStore keeps a backfill's progress. Save runs inside the batch's
// transaction, so the cursor commits with the rows it covers: a run killed at
// any point resumes where the database says it stopped.
type CursorStore interface {
	// Load returns the last committed cursor (nil when the backfill has not
	// started), the upper bound fixed when it started and the rows walked.
	Load(ctx context.Context) (cursor []string, upper []string, rows int64, err error)
	// Save records the key of the batch's last row, the upper bound and the
	// rows walked so far (earlier runs included).
	Save(ctx context.Context, tx pgx.Tx, cursor []string, upper []string, rows int64) error
}

// guardRecorder is implemented by stores that keep what the latency guard
// did with the cursor: Backfill calls RecordGuard before each Save.
type guardRecorder interface{ RecordGuard(throttle.Stats) }

// cursorStatement is implemented by stores that save the cursor with one
// SQL statement in the batch's transaction (the ledger). Backfill then makes
// the whole batch one statement (a WITH that finds the batch's last key,
// fills the rows up to it and runs the store's statement) and sends it with
// BEGIN, the mode and COMMIT in one round trip, instead of six round trips
// and four statements. Every round trip wakes the backend and every
// statement costs it CPU; on a small machine the app's backends wait behind
// the backfill's bursts of CPU (docs/BENCHMARKS.md), so fewer and shorter is
// cheaper for the app.
type cursorStatement interface {
	// SaveStatement returns a data-modifying statement (INSERT, UPDATE or
	// DELETE, no RETURNING) that saves, for each row of the relation from
	// (one row, or none when the batch found no key), the cursor key (text
	// SQL expressions over from, one per key column), the upper bound, and
	// walked plus keys (a bigint SQL expression over from) as the rows
	// walked so far. Its parameters are numbered from $first.
	SaveStatement(from string, key []string, keys string, upper []string, walked int64, first int) (sql string, args []any, err error)
}

// backfillCommitter is implemented by stores that keep the cursor outside the
// database: Backfill calls Committed once the batch's transaction committed,
// so a failed commit never leaves such a store a batch ahead of the table.
type backfillCommitter interface{ Committed() }

// MemoryCursor is a CursorStore held in memory. It lets a run resume within
// one process (after a failed batch or a cancelled context), not after the
// process dies. The zero value is ready to use.
type MemoryCursor struct {
	mu        sync.Mutex
	saved     memoryCursorState
	staged    memoryCursorState
	hasStaged bool
}

type memoryCursorState struct {
	cursor, upper []string
	rows          int64
}

// Load returns the cursor of the last committed batch.
func (m *MemoryCursor) Load(context.Context) ([]string, []string, int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.saved.cursor), slices.Clone(m.saved.upper), m.saved.rows, nil
}

// Save stages the cursor; Load returns it only after Committed.
func (m *MemoryCursor) Save(_ context.Context, _ pgx.Tx, cursor, upper []string, rows int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.staged = memoryCursorState{slices.Clone(cursor), slices.Clone(upper), rows}
	m.hasStaged = true
	return nil
}

// Committed makes the last saved cursor the one Load returns; Backfill calls
// it after each batch's transaction commits.
func (m *MemoryCursor) Committed() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.hasStaged {
		m.saved, m.hasStaged = m.staged, false
	}
}

// BackfillOptions tune how fast a backfill goes. The zero value is usable.
type BackfillOptions struct {
	// TargetBatch is the duration each batch's transaction should take; the
	// batch size adapts toward it (default DefaultBatchTarget).
	TargetBatch time.Duration
	// MinBatch, MaxBatch and InitialBatch bound the rows per batch (defaults
	// 100, 50000, 1000).
	MinBatch, MaxBatch, InitialBatch int
	// MaxRowsPerSecond caps the rows walked per second (0: unlimited).
	MaxRowsPerSecond float64
	// MaxReplicationLag pauses the backfill while a replica lags more (0: do
	// not check). Lag columns of pg_stat_replication are NULL, so read as no
	// lag, for roles without pg_monitor.
	MaxReplicationLag time.Duration
	// LagPoll is how often the lag is checked during a pause (default 1s).
	LagPoll time.Duration
	// Lag reports the replication lag; nil queries pg_stat_replication.
	Lag func(ctx context.Context) (time.Duration, error)
	// StatementTimeout and LockTimeout are set LOCAL in each batch
	// (defaults 30s and 2s).
	StatementTimeout, LockTimeout time.Duration
	// Retries is how many times a batch is retried after a deadlock,
	// serialization failure, lock or statement timeout (default 5).
	Retries int
	// Progress receives the progress display and log lines (nil: none).
	Progress io.Writer
	// TTY draws a bar with rows/s and ETA, redrawn in place; otherwise a
	// plain line is written every few seconds.
	TTY bool
	// AsyncCommit commits each batch with synchronous_commit off: the
	// batch does not wait for its WAL to reach the disk. The cursor commits
	// in the same transaction, so a crash loses the last batches and their
	// cursor together, and the run resumes before them.
	AsyncCommit bool
	// WALCompression, when set, is the wal_compression each batch sets for
	// its own transaction (pglz, lz4, zstd or off): the full-page images a
	// batch writes the first time it touches a page since the last
	// checkpoint are most of its WAL, which every app commit queues behind.
	// Setting it takes superuser or GRANT SET ON PARAMETER wal_compression;
	// where the server refuses, the backfill says so and runs with the
	// server's setting. "": the server's setting.
	WALCompression string
	// Guard, when set, holds the backfill to what the application feels:
	// a probe times a tiny committed write every few milliseconds, and the
	// rows/s follow its p99 against the p99 measured before the backfill
	// (package throttle). nil: no guard. MaxRowsPerSecond caps its rate.
	Guard *throttle.Config
	// GuardKeepsBatchTarget keeps TargetBatch under the guard, as before
	// 2026-12-06, instead of holding batches within the guard's latency
	// headroom (throttle.Stats.Burst). bench/backfill compares the two;
	// the CLI never sets it.
	GuardKeepsBatchTarget bool
	// Probe is the guard's probe; nil is a throttle.PGProbe on a connection
	// of its own running ProbeSQL (empty: throttle.DefaultProbeSQL).
	Probe    throttle.Probe
	ProbeSQL string
	// GuardFromRows is the fewest rows left to walk (by the planner's
	// estimate) for which the guard runs: below, the backfill is over in
	// about the time the probe's baseline takes (default 100,000; -1: always).
	GuardFromRows int64
	// Clock and Sleep stand in for time.Now and a context-aware sleep.
	Clock func() time.Time
	Sleep func(context.Context, time.Duration) error
}

// BackfillResult says what a backfill run did.
type BackfillResult struct {
	// Rows is the number of rows this run updated.
	Rows int64
	// Walked is the number of rows the cursor has passed, earlier runs
	// included.
	Walked int64
	// Batches is the number of batches this run committed.
	Batches int
	// Elapsed is the run's wall time.
	Elapsed time.Duration
	// Remaining is the count of the step's Verify query at the end; it must
	// be 0.
	Remaining int64
	// Resumed is true when the run continued from a saved cursor.
	Resumed bool
	// Guard is what the latency guard did (nil when it was off).
	Guard *throttle.Stats
}

// DefaultBatchTarget is how long a backfill batch aims to take.
const DefaultBatchTarget = 5 * time.Millisecond

const (
	backfillPlainEvery   = 5 * time.Second
	backfillRetryBackoff = 50 * time.Millisecond
)

func (o BackfillOptions) withDefaults() BackfillOptions {
	if o.TargetBatch <= 0 {
		// A batch holds its rows' locks until it commits: an app write to
		// one of them waits up to this long. And every app commit made while
		// a batch runs must flush the WAL the batch has written so far:
		// bench/backfill on 10M rows measured an app p99 of 19-65 ms with
		// 5 ms batches against 133-156 ms with 20 ms ones, at the same
		// rows/s (docs/BENCHMARKS.md). Below about 2 ms the per-batch round
		// trips and commit flush start to cost throughput.
		o.TargetBatch = DefaultBatchTarget
	}
	if o.MinBatch <= 0 {
		o.MinBatch = 100
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 50000
	}
	if o.MaxBatch < o.MinBatch {
		o.MaxBatch = o.MinBatch
	}
	if o.InitialBatch <= 0 {
		o.InitialBatch = 1000
	}
	if o.GuardFromRows == 0 {
		o.GuardFromRows = 100_000
	}
	if o.LagPoll <= 0 {
		o.LagPoll = time.Second
	}
	if o.StatementTimeout <= 0 {
		o.StatementTimeout = 30 * time.Second
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = 2 * time.Second
	}
	if o.Retries <= 0 {
		o.Retries = 5
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Sleep == nil {
		o.Sleep = clock.Sleep
	}
	if o.MaxRowsPerSecond > 0 {
		// A batch never holds more than a second's worth of the rate, so the
		// rate is kept smoothly rather than in bursts followed by long sleeps.
		o.MaxBatch = max(o.MinBatch, min(o.MaxBatch, int(math.Ceil(o.MaxRowsPerSecond))))
	}
	o.InitialBatch = min(max(o.InitialBatch, o.MinBatch), o.MaxBatch)
	return o
}

// Backfill runs step on the pool in keyset batches over the table's key, each
// batch one transaction in backfill mode (phases.BackfillSetting) that also
// saves the cursor in store, then runs the step's Verify query. The upper
// bound is the largest key when the backfill starts, kept in the store: rows
// inserted later are the dual-write trigger's, so the run ends under any
// INSERT load. A nil store is a fresh MemoryCursor. When Verify still counts
// rows, Backfill returns the result and an error wrapping
// ErrBackfillIncomplete.
func Backfill(ctx context.Context, pool *pgxpool.Pool, step phases.BackfillStep, store CursorStore, opts BackfillOptions) (*BackfillResult, error) {
	opts = opts.withDefaults()
	if store == nil {
		store = &MemoryCursor{}
	}
	if len(step.Set) == 0 {
		return nil, fmt.Errorf("backfill %s: the step sets no column", step.Table)
	}
	start := opts.Clock()
	b := &backfiller{pool: pool, step: step, store: store, opts: opts}
	b.table = backfillQuoteTable(step.Table)
	if err := b.resolveKey(ctx); err != nil {
		return nil, err
	}
	// PostgreSQL refuses an UPDATE inside WITH on a table with rules for
	// UPDATE (DO ALSO, DO INSTEAD NOTHING, conditional): such a table gets
	// the batch as separate statements.
	if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_rewrite WHERE ev_class = $1::regclass AND ev_type = '2')`, b.table).Scan(&b.updateRules); err != nil {
		return nil, fmt.Errorf("backfill %s: look up rules: %w", step.Table, err)
	}
	b.prepareSQL()

	cursor, upper, walked, err := store.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("backfill %s: load cursor: %w", step.Table, err)
	}
	res := &BackfillResult{Resumed: cursor != nil, Walked: walked}
	if res.Resumed {
		if len(cursor) != len(b.key) || len(upper) != len(b.key) {
			return nil, fmt.Errorf("backfill %s: saved cursor has %d values and upper bound %d, but key (%s) has %d columns",
				step.Table, len(cursor), len(upper), strings.Join(b.keyNames(), ", "), len(b.key))
		}
	} else {
		walked = 0
		res.Walked = 0
		upper, err = b.upperBound(ctx)
		if err != nil {
			return nil, fmt.Errorf("backfill %s: find upper bound: %w", step.Table, err)
		}
	}

	estimate := b.estimate(ctx, walked)
	p := newBackfillProgress(opts, step.Table, estimate, walked, start)
	if opts.WALCompression != "" {
		if err := b.tryWALCompression(ctx); err != nil {
			p.logf("wal_compression %s: not set, the batches write WAL with the server's setting: %v", opts.WALCompression, err)
		} else {
			// The server took the value, so it is one of its enum's labels;
			// quoted all the same.
			b.modeSQL += ", set_config('wal_compression', '" + strings.ReplaceAll(opts.WALCompression, "'", "''") + "', true)"
		}
	}
	if upper != nil {
		if opts.Guard != nil && estimate-walked < opts.GuardFromRows {
			p.logf("guard: off, about %d rows left: fewer than %d, so done about as fast as the probe measures its baseline", estimate-walked, opts.GuardFromRows)
		} else if opts.Guard != nil {
			stop, err := b.startGuard(ctx, p)
			if err != nil {
				return nil, err
			}
			defer stop()
		}
		err := b.run(ctx, p, res, cursor, upper)
		if b.guard != nil {
			st := b.guard.Stats()
			res.Guard = &st
		}
		if err != nil {
			return nil, err
		}
	}

	if err := pool.QueryRow(ctx, b.verifySQL).Scan(&res.Remaining); err != nil {
		return nil, fmt.Errorf("backfill %s: verify: %w", step.Table, err)
	}
	res.Elapsed = opts.Clock().Sub(start)
	p.finish(res)
	if res.Remaining != 0 {
		return res, fmt.Errorf("backfill %s: verify: %d %w", step.Table, res.Remaining, ErrBackfillIncomplete)
	}
	return res, nil
}

// tryWALCompression sets wal_compression in a transaction it rolls back:
// whether the role may, and whether the server was built with the method.
func (b *backfiller) tryWALCompression(ctx context.Context) error {
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	_, err = tx.Exec(ctx, "SELECT set_config('wal_compression', $1, true)", b.opts.WALCompression)
	return err
}

// startGuard measures the probe alone, then starts the guard; stop ends the
// probe.
func (b *backfiller) startGuard(ctx context.Context, p *backfillProgress) (stop func(), err error) {
	o := b.opts
	cfg := *o.Guard
	if o.MaxRowsPerSecond > 0 && (cfg.MaxRate <= 0 || o.MaxRowsPerSecond < cfg.MaxRate) {
		cfg.MaxRate = o.MaxRowsPerSecond
	}
	probe, closeProbe := o.Probe, func() {}
	if probe == nil {
		pg, err := throttle.NewPGProbe(ctx, b.pool.Config().ConnConfig, o.ProbeSQL)
		if err != nil {
			return nil, fmt.Errorf("backfill %s: %w (--max-latency-ratio 0 runs without the guard)", b.step.Table, err)
		}
		probe, closeProbe = pg, func() { pg.Close(ctx) }
	}
	g, err := throttle.Start(ctx, probe, cfg, o.Clock, o.Sleep)
	if err != nil {
		closeProbe()
		hint := "--max-latency-ratio 0 runs without the guard"
		if errors.Is(err, throttle.ErrApp) {
			hint = "without --app-latency-query the guard runs on its probe alone"
		}
		return nil, fmt.Errorf("backfill %s: guard: %w (%s)", b.step.Table, err, hint)
	}
	b.guard = g
	p.guard = g.Stats
	st := g.Stats()
	of, gc := "", g.Config()
	if gc.AppP99 > 0 {
		from := "--app-p99"
		if o.Guard.AppP99 <= 0 {
			from = "read from --app-latency-query"
		}
		of = fmt.Sprintf(" (its baseline plus %g times the app's p99 of %s, %s)", gc.ProbeMaxRatio()-1, gc.AppP99.Round(10*time.Microsecond), from)
	}
	p.logf("guard: the probe's p99 alone is %s; holding it under %s%s while backfilling", st.Baseline.Round(10*time.Microsecond), st.Limit.Round(10*time.Microsecond), of)
	if st.App != nil {
		how := "one reading"
		if _, ok := o.Guard.App.(throttle.AppHistory); ok {
			how = fmt.Sprintf("the median of its readings over the last %s", gc.AppBaselineFor)
		}
		p.logf("guard: the app's own p99 before the backfill is %s (%s); the backfill slows down whenever it reads above %s", st.App.Baseline.Round(10*time.Microsecond), how, st.App.Limit.Round(10*time.Microsecond))
	}
	return func() { g.Stop(); closeProbe() }, nil
}

// backfillKeyColumn is a column of the keyset key and its SQL type; cursor values
// travel as text and are cast back to that type.
type backfillKeyColumn struct {
	name, typ string
}

type backfiller struct {
	pool  *pgxpool.Pool
	step  phases.BackfillStep
	store CursorStore
	opts  BackfillOptions
	table string // quoted
	key   []backfillKeyColumn
	guard *throttle.Guard // nil: off
	// updateRules: the table has rules for UPDATE, so a batch cannot be
	// one statement (WITH refuses them).
	updateRules bool

	upperSQL                  string
	nextSQL, nextFirstSQL     string // find a batch's last key: after a cursor, from the start
	updateSQL, updateFirstSQL string
	// The whole batch as one statement, for a cursorStatement store: after
	// a cursor, from the start.
	one, oneFirst              oneStatement
	oneKeyText                 []string // the last key's text columns, as the store's statement reads them
	verifySQL, modeSQL, lagSQL string
}

func (b *backfiller) keyNames() []string {
	names := make([]string, len(b.key))
	for i, k := range b.key {
		names[i] = k.name
	}
	return names
}

// resolveKey checks that the step's key (or, when it has none, the table's
// primary key or first unique NOT NULL key) identifies rows: keyset batches
// over a key that repeats or holds NULLs would skip rows.
func (b *backfiller) resolveKey(ctx context.Context) error {
	rows, err := b.pool.Query(ctx, `
		SELECT array_agg(a.attname::text ORDER BY k.ord), bool_and(a.attnotnull)
		FROM pg_index i
		CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
		WHERE i.indrelid = $1::regclass AND i.indisunique AND i.indisvalid AND i.indisready
		  AND i.indpred IS NULL AND i.indexprs IS NULL AND k.ord <= i.indnkeyatts
		GROUP BY i.indexrelid, i.indisprimary
		ORDER BY i.indisprimary DESC, count(*), i.indexrelid`, b.table)
	if err != nil {
		return fmt.Errorf("backfill %s: look up keys: %w", b.step.Table, err)
	}
	var candidates [][]string
	for rows.Next() {
		var cols []string
		var notNull bool
		if err := rows.Scan(&cols, &notNull); err != nil {
			rows.Close()
			return fmt.Errorf("backfill %s: look up keys: %w", b.step.Table, err)
		}
		if notNull {
			candidates = append(candidates, cols)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("backfill %s: look up keys: %w", b.step.Table, err)
	}

	want := b.step.Key
	if len(want) == 0 {
		if len(candidates) == 0 {
			return fmt.Errorf("backfill %s: refused: the table has %w: keyset batches cannot walk it; add a primary key first", b.step.Table, ErrNoBackfillKey)
		}
		want = candidates[0]
	} else {
		covered := false
		for _, c := range candidates {
			if backfillKeyWithin(c, want) {
				covered = true
				break
			}
		}
		if !covered {
			return fmt.Errorf("backfill %s: refused: %w lies within key (%s): keyset batches over it could skip rows; add a primary key first",
				b.step.Table, ErrNoBackfillKey, strings.Join(want, ", "))
		}
	}

	b.key = make([]backfillKeyColumn, len(want))
	for i, name := range want {
		var notNull bool
		err := b.pool.QueryRow(ctx, `
			SELECT format_type(atttypid, atttypmod), attnotnull FROM pg_attribute
			WHERE attrelid = $1::regclass AND attname = $2 AND attnum > 0 AND NOT attisdropped`,
			b.table, name).Scan(&b.key[i].typ, &notNull)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("backfill %s: key column %s does not exist", b.step.Table, name)
		}
		if err != nil {
			return fmt.Errorf("backfill %s: look up key column %s: %w", b.step.Table, name, err)
		}
		if !notNull {
			// A NULL never compares greater than a cursor: its row would be skipped.
			return fmt.Errorf("backfill %s: refused: key column %s may be NULL, and keyset batches never reach a NULL key (%w within the key alone)", b.step.Table, name, ErrNoBackfillKey)
		}
		b.key[i].name = name
	}
	return nil
}

func backfillKeyWithin(small, big []string) bool {
	for _, s := range small {
		if !slices.Contains(big, s) {
			return false
		}
	}
	return true
}

func (b *backfiller) prepareSQL() {
	cols := make([]string, len(b.key))
	texts := make([]string, len(b.key))
	desc := make([]string, len(b.key))
	for i, k := range b.key {
		cols[i] = pgx.Identifier{k.name}.Sanitize()
		// Aliased: ORDER BY a bare name would otherwise sort by the text
		// output column of that name, putting 999 after 1000.
		texts[i] = fmt.Sprintf("%s::text AS key_text_%d", cols[i], i)
		desc[i] = cols[i] + " DESC"
	}
	row := "(" + strings.Join(cols, ", ") + ")"
	// Cursor values are sent as text and cast to the column's type, so any
	// key type round-trips through the store and the comparison uses the
	// key's index.
	params := func(from int) string {
		ps := make([]string, len(b.key))
		for i, k := range b.key {
			ps[i] = fmt.Sprintf("$%d::text::%s", from+i, k.typ)
		}
		return "(" + strings.Join(ps, ", ") + ")"
	}
	n := len(b.key)
	after := row + " > " + params(1)
	upTo := func(from int) string { return row + " <= " + params(from) }

	b.upperSQL = fmt.Sprintf("SELECT %s FROM %s ORDER BY %s LIMIT 1", strings.Join(texts, ", "), b.table, strings.Join(desc, ", "))
	next := func(where string, limit int) string {
		// The inner query walks at most N keys of the index; the outer one
		// returns the last of them and how many there were.
		return fmt.Sprintf("SELECT %s, count(*) OVER () FROM (SELECT %s FROM %s WHERE %s ORDER BY %s LIMIT $%d) s ORDER BY %s LIMIT 1",
			strings.Join(texts, ", "), strings.Join(cols, ", "), b.table, where, strings.Join(cols, ", "), limit, strings.Join(desc, ", "))
	}
	b.nextSQL = next(after+" AND "+upTo(n+1), 2*n+1)
	b.nextFirstSQL = next(upTo(1), n+1)

	sets := make([]string, len(b.step.Set))
	differs := make([]string, len(b.step.Set))
	for i, a := range b.step.Set {
		sets[i] = fmt.Sprintf("%s = %s", pgx.Identifier{a.Column}.Sanitize(), a.Expr)
		differs[i] = fmt.Sprintf("%s IS DISTINCT FROM (%s)", pgx.Identifier{a.Column}.Sanitize(), a.Expr)
	}
	filter := ""
	if w := strings.TrimSpace(b.step.Where); w != "" {
		filter = " AND (" + w + ")"
	}
	update := "UPDATE " + b.table + " SET " + strings.Join(sets, ", ") + " WHERE "
	b.updateSQL = update + after + " AND " + upTo(n+1) + filter
	b.updateFirstSQL = update + upTo(1) + filter

	b.one = newOneStatement(b.table, cols, after+" AND "+upTo(n+1), 2*n+1, update+after+" AND ", filter)
	b.oneFirst = newOneStatement(b.table, cols, upTo(1), n+1, update, filter)
	b.oneKeyText = make([]string, n)
	for i := range b.oneKeyText {
		b.oneKeyText[i] = oneLast + "." + oneText(i)
	}

	b.verifySQL = b.step.Verify
	if strings.TrimSpace(b.verifySQL) == "" {
		b.verifySQL = fmt.Sprintf("SELECT count(*) FROM %s WHERE %s", b.table, strings.Join(differs, " OR "))
	}
	// jit off: a batch's one statement is planned without knowing its
	// upper bound (the last key comes from the statement itself), so on a
	// big table its estimate (0.5% of the rows) can pass jit_above_cost,
	// and compiling it took longer than running it (at 10M rows, 6-8 ms of
	// JIT for a 1,000-row batch, and the backfill at a tenth of its speed).
	b.modeSQL = "SELECT set_config($1, 'on', true), set_config('statement_timeout', $2, true), set_config('lock_timeout', $3, true), set_config('jit', 'off', true)"
	if b.opts.AsyncCommit {
		b.modeSQL += ", set_config('synchronous_commit', 'off', true)"
	}
	b.lagSQL = `SELECT coalesce(max(greatest(extract(epoch FROM write_lag), extract(epoch FROM flush_lag), extract(epoch FROM replay_lag))), 0)::float8 FROM pg_stat_replication`
}

// Names inside a batch's one statement: the batch's keys, its last key
// (typed and as text) with the number of keys, and the rows filled.
const (
	oneBatch  = "phasekit_batch"
	oneLast   = "phasekit_last"
	oneKeys   = "phasekit_keys"
	oneFilled = "phasekit_filled"
	oneSaved  = "phasekit_saved"
)

// oneTyped and oneText name the i-th key column of oneLast, typed and as
// text.
func oneTyped(i int) string { return fmt.Sprintf("phasekit_key_%d", i) }
func oneText(i int) string  { return fmt.Sprintf("phasekit_text_%d", i) }

// oneStatement is a batch as one statement around the store's statement:
// head + save + tail.
type oneStatement struct{ head, tail string }

func (o oneStatement) with(save string) string { return o.head + save + o.tail }

// newOneStatement is a batch as one statement: where and limit (a
// parameter number) pick the batch's keys in key order, update (ending in
// WHERE or AND) fills the rows up to the last of them, and the store's
// statement saves it; the statement returns the last key as text, the
// number of keys and the number of rows filled, or no row when no key is
// left. The bound of the fill is the last key itself, not its text.
func newOneStatement(table string, cols []string, where string, limit int, update, filter string) oneStatement {
	typed := make([]string, len(cols))
	texts := make([]string, len(cols))
	desc := make([]string, len(cols))
	lastTyped := make([]string, len(cols))
	lastTexts := make([]string, len(cols))
	for i, c := range cols {
		typed[i] = c + " AS " + oneTyped(i)
		texts[i] = c + "::text AS " + oneText(i)
		desc[i] = c + " DESC"
		lastTyped[i] = oneLast + "." + oneTyped(i)
		lastTexts[i] = oneLast + "." + oneText(i)
	}
	row := "(" + strings.Join(cols, ", ") + ")"
	head := fmt.Sprintf("WITH %s AS (SELECT %s FROM %s WHERE %s ORDER BY %s LIMIT $%d),\n", oneBatch, strings.Join(cols, ", "), table, where, strings.Join(cols, ", "), limit) +
		fmt.Sprintf("%s AS (SELECT %s, %s, count(*) OVER () AS %s FROM %s ORDER BY %s LIMIT 1),\n", oneLast, strings.Join(typed, ", "), strings.Join(texts, ", "), oneKeys, oneBatch, strings.Join(desc, ", ")) +
		oneFilled + " AS (" + update + row + " <= (SELECT " + strings.Join(lastTyped, ", ") + " FROM " + oneLast + ")" + filter + " RETURNING 1),\n" +
		oneSaved + " AS ("
	tail := ")\nSELECT " + strings.Join(lastTexts, ", ") + ", " + oneLast + "." + oneKeys + ", (SELECT count(*) FROM " + oneFilled + ") FROM " + oneLast
	return oneStatement{head, tail}
}

// upperBound returns the largest key now, or nil for an empty table.
func (b *backfiller) upperBound(ctx context.Context) ([]string, error) {
	vals := make([]string, len(b.key))
	ptrs := make([]any, len(vals))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	err := b.pool.QueryRow(ctx, b.upperSQL).Scan(ptrs...)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return vals, nil
}

// estimate is the step's row estimate, else the planner's, for the progress
// display; 0 when unknown.
func (b *backfiller) estimate(ctx context.Context, walked int64) int64 {
	if b.step.RowEstimate > 0 {
		return max(b.step.RowEstimate, walked)
	}
	var n float64
	if err := b.pool.QueryRow(ctx, "SELECT reltuples::float8 FROM pg_class WHERE oid = $1::regclass", b.table).Scan(&n); err != nil || n <= 0 {
		return 0
	}
	return max(int64(n), walked)
}

// vacuumNote says, for the guard's quiet-window lines, whether a VACUUM of
// the table is running: the backfill leaves a dead row version behind for
// every row it fills, so autovacuum comes to a large table during its
// backfill, and its WAL slows the app's commits whether the backfill runs
// or not (bench/backfill measured an app's p99 at 146 ms while it ran,
// 8 ms otherwise, at 10M rows). "" when none runs, or when this role may
// not see it (pg_stat_progress_vacuum hides other roles' backends from a
// role without pg_read_all_stats).
func (b *backfiller) vacuumNote(ctx context.Context) string {
	var auto bool
	var phase string
	err := b.pool.QueryRow(ctx, `SELECT a.backend_type = 'autovacuum worker', p.phase
		FROM pg_stat_progress_vacuum p JOIN pg_stat_activity a ON a.pid = p.pid
		WHERE p.relid = $1::regclass LIMIT 1`, b.table).Scan(&auto, &phase)
	if err != nil {
		return ""
	}
	who := "a VACUUM"
	if auto {
		who = "autovacuum"
	}
	return fmt.Sprintf(" (%s of %s is running, %s: its WAL slows the app's commits too)", who, b.step.Table, phase)
}

// backfillBatch is what one committed batch did.
type backfillBatch struct {
	last    []string
	keys    int64
	updated int64
}

// lastKeyDest makes br.last n columns long and returns the scan targets of
// a row that holds them, then extra.
func (br *backfillBatch) lastKeyDest(n int, extra ...any) []any {
	br.last = make([]string, n)
	dest := make([]any, 0, n+len(extra))
	for i := range br.last {
		dest = append(dest, &br.last[i])
	}
	return append(dest, extra...)
}

// run walks the batches from cursor (nil: the start) up to upper.
func (b *backfiller) run(ctx context.Context, p *backfillProgress, res *BackfillResult, cursor, upper []string) error {
	o := b.opts
	n := o.InitialBatch
	runStart := o.Clock()
	walkedAtStart := res.Walked
	for batch := 1; ; batch++ {
		if err := b.waitForLag(ctx, p); err != nil {
			return fmt.Errorf("backfill %s (batch %d): %w", b.step.Table, batch, err)
		}
		var (
			br   backfillBatch
			took time.Duration
			err  error
		)
		for attempt := 0; ; attempt++ {
			t0 := o.Clock()
			br, err = b.batch(ctx, cursor, upper, n, res.Walked)
			took = o.Clock().Sub(t0)
			if err == nil {
				break
			}
			if ctx.Err() != nil || !backfillRetryable(err) || attempt >= o.Retries {
				return fmt.Errorf("backfill %s (batch %d, %d rows after key %s): %w", b.step.Table, batch, n, backfillShowKey(cursor), err)
			}
			if backfillTimedOut(err) {
				// The batch is too big for the statement timeout: halve it.
				n = max(o.MinBatch, n/2)
			}
			wait := backfillRetryBackoff << attempt
			p.logf("batch %d failed (%v); retrying in %s", batch, err, wait)
			if err := o.Sleep(ctx, wait); err != nil {
				return fmt.Errorf("backfill %s (batch %d): %w", b.step.Table, batch, err)
			}
		}
		if br.keys == 0 {
			return nil
		}
		if c, ok := b.store.(backfillCommitter); ok {
			c.Committed()
		}
		cursor = br.last
		res.Walked += br.keys
		res.Rows += br.updated
		res.Batches++
		p.update(res.Walked)
		if br.keys < int64(n) {
			// Fewer keys than asked for: none is left up to the bound.
			return nil
		}
		// allowed is the rate the backfill is paced to (0: none).
		allowed := o.MaxRowsPerSecond
		target := o.TargetBatch
		if b.guard != nil {
			wait, d := b.guard.Pace(br.keys, took)
			allowed = d.Rate
			target = guardedTarget(target, d.Burst, o.GuardKeepsBatchTarget)
			switch {
			case d.Recheck:
				st := b.guard.Stats()
				p.logf("guard: baseline %s is above the first one (%s): pausing %s to measure the app alone again%s",
					st.Baseline.Round(10*time.Microsecond), st.FirstBaseline.Round(10*time.Microsecond), d.Pause, b.vacuumNote(ctx))
			case d.Quiet:
				st := b.guard.Stats()
				p.logf("guard: probe p99 %s still above %s after slowing down to %.0f rows/s: pausing %s to measure the app alone for a new baseline%s",
					st.P99.Round(10*time.Microsecond), st.Limit.Round(10*time.Microsecond), st.Rate, d.Pause, b.vacuumNote(ctx))
			case d.Pause > 0:
				p.slowed(b.guard.Stats())
			}
			if wait > 0 {
				if err := o.Sleep(ctx, wait); err != nil {
					return fmt.Errorf("backfill %s (batch %d): guard: %w", b.step.Table, batch, err)
				}
			}
		}
		n = backfillNextSize(n, br.keys, took, pacedTarget(target, allowed, br.keys, took), o)
		if b.guard == nil && o.MaxRowsPerSecond > 0 {
			// Sleep until the rows walked so far fit the rate since the run
			// started, so short sleeps and slow batches even out.
			due := time.Duration(float64(res.Walked-walkedAtStart) / o.MaxRowsPerSecond * float64(time.Second))
			if wait := due - o.Clock().Sub(runStart); wait > 0 {
				if err := o.Sleep(ctx, wait); err != nil {
					return fmt.Errorf("backfill %s (batch %d): throttle: %w", b.step.Table, batch, err)
				}
			}
		}
	}
}

// batch fills the rows after cursor up to the n-th key (or upper) in one
// transaction that also saves the new cursor.
func (b *backfiller) batch(ctx context.Context, cursor, upper []string, n int, walked int64) (br backfillBatch, err error) {
	if cs, ok := b.store.(cursorStatement); ok && !b.updateRules {
		return b.oneBatch(ctx, cs, cursor, upper, n, walked)
	}
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		return br, fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	if _, err := tx.Exec(ctx, b.modeSQL, b.modeArgs()...); err != nil {
		return br, fmt.Errorf("set backfill mode: %w", err)
	}

	next, update, lower := b.nextFirstSQL, b.updateFirstSQL, []any(nil)
	if cursor != nil {
		next, update, lower = b.nextSQL, b.updateSQL, backfillArgs(nil, cursor)
	}
	err = tx.QueryRow(ctx, next, append(backfillArgs(slices.Clone(lower), upper), n)...).Scan(br.lastKeyDest(len(b.key), &br.keys)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return backfillBatch{}, tx.Rollback(ctx)
	}
	if err != nil {
		return br, fmt.Errorf("find the batch's last key: %w", err)
	}

	tag, err := tx.Exec(ctx, update, backfillArgs(lower, br.last)...)
	if err != nil {
		return br, fmt.Errorf("update: %w", err)
	}
	br.updated = tag.RowsAffected()
	if r, ok := b.store.(guardRecorder); ok && b.guard != nil {
		r.RecordGuard(b.guard.Stats())
	}
	if err := b.store.Save(ctx, tx, br.last, upper, walked+br.keys); err != nil {
		return br, fmt.Errorf("save cursor: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return br, fmt.Errorf("commit: %w", err)
	}
	return br, nil
}

// oneBatch is batch in one round trip, for a store that saves the cursor
// with a statement: BEGIN, the mode, the batch as one statement (last key,
// fill, cursor) and COMMIT, pipelined. After an error PostgreSQL skips the
// rest of the pipeline, so nothing commits; the transaction is then rolled
// back.
func (b *backfiller) oneBatch(ctx context.Context, cs cursorStatement, cursor, upper []string, n int, walked int64) (br backfillBatch, err error) {
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		return br, fmt.Errorf("begin: %w", err)
	}
	defer conn.Release()
	open := false // BEGIN was sent and no COMMIT succeeded
	defer func() {
		if open {
			if _, rerr := conn.Exec(context.WithoutCancel(ctx), "ROLLBACK"); rerr != nil {
				// The connection's state is unknown: do not give it back.
				_ = conn.Conn().Close(context.WithoutCancel(ctx))
			}
		}
	}()

	stmt, args := b.oneFirst, []any{}
	if cursor != nil {
		stmt, args = b.one, backfillArgs(nil, cursor)
	}
	args = append(backfillArgs(args, upper), n)
	if r, ok := b.store.(guardRecorder); ok && b.guard != nil {
		r.RecordGuard(b.guard.Stats())
	}
	save, saveArgs, err := cs.SaveStatement(oneLast, b.oneKeyText, oneLast+"."+oneKeys, upper, walked, len(args)+1)
	if err != nil {
		return br, fmt.Errorf("save cursor: %w", err)
	}
	dest := br.lastKeyDest(len(b.key), &br.keys, &br.updated)

	// Prepared on its own first (once a connection), so that a statement
	// the server refuses says so, not "begin".
	sql := stmt.with(save)
	if _, err := conn.Conn().Prepare(ctx, sql, sql); err != nil {
		return br, fmt.Errorf("prepare the batch's statement: %w", err)
	}
	batch := &pgx.Batch{}
	batch.Queue("BEGIN")
	batch.Queue(b.modeSQL, b.modeArgs()...)
	batch.Queue(sql, append(args, saveArgs...)...)
	batch.Queue("COMMIT")
	open = true
	res := conn.SendBatch(ctx, batch)
	if err := execResults(res, "begin", "set backfill mode"); err != nil {
		return backfillBatch{}, err
	}
	if err := res.QueryRow().Scan(dest...); errors.Is(err, pgx.ErrNoRows) {
		br = backfillBatch{} // no key left; COMMIT ends the empty transaction
	} else if err != nil {
		res.Close()
		return backfillBatch{}, fmt.Errorf("batch (find the last key, update, save cursor): %w", err)
	}
	if err := execResults(res, "commit"); err != nil {
		return backfillBatch{}, err
	}
	if err := res.Close(); err != nil {
		return backfillBatch{}, fmt.Errorf("commit: %w", err)
	}
	open = false
	return br, nil
}

// execResults reads, in order, the results of a pipeline's first
// statements, each named by step. On an error it closes res and names the
// step that failed (PostgreSQL skipped the statements after it).
func execResults(res pgx.BatchResults, steps ...string) error {
	for _, step := range steps {
		if _, err := res.Exec(); err != nil {
			res.Close()
			return fmt.Errorf("%s: %w", step, err)
		}
	}
	return nil
}

// modeArgs are the arguments of modeSQL.
func (b *backfiller) modeArgs() []any {
	return []any{phases.BackfillSetting, human.Setting(b.opts.StatementTimeout), human.Setting(b.opts.LockTimeout)}
}

func backfillArgs(dst []any, vals []string) []any {
	for _, v := range vals {
		dst = append(dst, v)
	}
	return dst
}

func backfillShowKey(k []string) string {
	if k == nil {
		return "(start)"
	}
	return "(" + strings.Join(k, ", ") + ")"
}

// backfillNextSize scales the batch toward the target duration from the last
// batch's rate. Growth is at most twofold per batch, so one batch served from
// cache does not make the next one huge; shrinking is immediate, so a slow
// batch is not repeated.
func backfillNextSize(n int, keys int64, took, target time.Duration, o BackfillOptions) int {
	next := 2 * n
	if took > 0 {
		next = min(next, int(float64(keys)*float64(target)/float64(took)))
	}
	return min(max(next, o.MinBatch), o.MaxBatch)
}

// minPacedBatch is the shortest batch target pacing shrinks batches to:
// below it the per-batch round trips and commits cost more than the
// shorter bursts save.
const minPacedBatch = time.Millisecond

// pacedTarget is the batch target when the backfill is paced to allowed
// rows/s while a batch walks keys in took. A paced backfill runs a batch at
// full speed, then sleeps; every app commit made during the batch flushes
// the WAL the batch has written so far, so at the same rows/s shorter
// batches with shorter sleeps cost the app's commits less (bench/backfill
// -only cap,cap2ms,cap1ms at 2M rows, 86k rows/s: app p99 12.4 ms with 5 ms
// batches, 8.7 with 2 ms, 8.3 with 1 ms, medians of 3; docs/BENCHMARKS.md).
// The target shrinks in proportion to the share of the time the backfill
// may run, down to minPacedBatch (never below: a target under it stays).
func pacedTarget(target time.Duration, allowed float64, keys int64, took time.Duration) time.Duration {
	if allowed <= 0 || keys <= 0 || took <= 0 {
		return target
	}
	full := float64(keys) / took.Seconds()
	if allowed >= full {
		return target
	}
	paced := time.Duration(float64(target) * allowed / full)
	return max(paced, min(target, minPacedBatch))
}

// guardedTarget is the batch target under the guard: target, or the
// guard's burst when shorter (0: no baseline yet), unless keep says to
// keep target. A batch longer than the guard's headroom pushes its probe
// over the limit at any rate where batches run more than a percent of the
// time (throttle.Stats.Burst); the guard then cut the rate where shorter
// batches would have kept it: bench/backfill at 2M rows, guard 1.5x,
// medians of 3 in one run, 67,017 rows/s held this way against 14,732
// with 5 ms batches paced down to 1 ms, the app's p99 1.43x and 1.30x its
// baseline (docs/BENCHMARKS.md).
func guardedTarget(target, burst time.Duration, keep bool) time.Duration {
	if keep || burst <= 0 {
		return target
	}
	return min(target, burst)
}

// backfillRetryable reports errors after which the same batch may simply run again.
func backfillRetryable(err error) bool {
	var pg *pgconn.PgError
	if !errors.As(err, &pg) {
		return false
	}
	switch pg.Code {
	case "40001", "40P01", "55P03", "57014": // serialization, deadlock, lock_not_available, statement timeout
		return true
	}
	return false
}

func backfillTimedOut(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == "57014"
}

// waitForLag pauses while replication lag is above the limit.
func (b *backfiller) waitForLag(ctx context.Context, p *backfillProgress) error {
	o := b.opts
	if o.MaxReplicationLag <= 0 {
		return nil
	}
	var pausedAt time.Time
	for {
		lag, err := b.lag(ctx)
		if err != nil {
			return fmt.Errorf("check replication lag: %w", err)
		}
		if lag <= o.MaxReplicationLag {
			if !pausedAt.IsZero() {
				p.logf("replication lag %s, resuming after a pause of %s", lag.Round(time.Millisecond), o.Clock().Sub(pausedAt).Round(time.Millisecond))
			}
			return nil
		}
		if pausedAt.IsZero() {
			pausedAt = o.Clock()
			p.logf("paused: replication lag %s exceeds %s", lag.Round(time.Millisecond), o.MaxReplicationLag)
		}
		if err := o.Sleep(ctx, o.LagPoll); err != nil {
			return fmt.Errorf("wait for replication lag: %w", err)
		}
	}
}

func (b *backfiller) lag(ctx context.Context) (time.Duration, error) {
	if b.opts.Lag != nil {
		return b.opts.Lag(ctx)
	}
	var secs float64
	if err := b.pool.QueryRow(ctx, b.lagSQL).Scan(&secs); err != nil {
		return 0, err
	}
	return time.Duration(secs * float64(time.Second)), nil
}

func backfillQuoteTable(name string) string {
	if schema, table, ok := strings.Cut(name, "."); ok {
		return pgx.Identifier{schema, table}.Sanitize()
	}
	return pgx.Identifier{name}.Sanitize()
}

// backfillProgress writes the progress display: a bar redrawn in place on a
// terminal, a plain line every few seconds elsewhere (CI logs keep every
// line, so redrawing there would flood them).
type backfillProgress struct {
	w           io.Writer
	tty         bool
	table       string
	total       int64 // estimated rows; 0 when unknown
	clock       func() time.Time
	start, last time.Time
	fromWalked  int64 // rows walked before this run
	drawn       bool  // a bar is on the current line
	// guard reports the latency guard's state (nil: no guard).
	guard     func() throttle.Stats
	lastSlow  time.Time
	slowsSeen int
}

func newBackfillProgress(o BackfillOptions, table string, total, walked int64, start time.Time) *backfillProgress {
	p := &backfillProgress{w: o.Progress, tty: o.TTY, table: table, total: total, clock: o.Clock, start: start, last: start, fromWalked: walked}
	if p.w != nil && !p.tty {
		if walked > 0 {
			fmt.Fprintf(p.w, "backfill %s: resuming after %d rows\n", table, walked)
		} else {
			fmt.Fprintf(p.w, "backfill %s: starting\n", table)
		}
	}
	return p
}

func (p *backfillProgress) update(walked int64) {
	if p.w == nil {
		return
	}
	now := p.clock()
	if !p.tty && now.Sub(p.last) < backfillPlainEvery {
		return
	}
	p.last = now
	total := max(p.total, walked)
	rate := 0.0
	if secs := now.Sub(p.start).Seconds(); secs > 0 {
		rate = float64(walked-p.fromWalked) / secs
	}
	eta := "?"
	if rate > 0 && p.total > 0 {
		eta = (time.Duration(float64(total-walked) / rate * float64(time.Second))).Round(time.Second).String()
	}
	if p.tty {
		const width = 30
		fill := 0
		pct := 0.0
		if total > 0 {
			pct = 100 * float64(walked) / float64(total)
			fill = int(float64(width) * float64(walked) / float64(total))
		}
		bar := strings.Repeat("=", fill) + strings.Repeat(" ", width-fill)
		fmt.Fprintf(p.w, "\r%s [%s] %3.0f%% %d/%d rows %.0f rows/s ETA %s\x1b[K", p.table, bar, pct, walked, total, rate, eta)
		p.drawn = true
		return
	}
	guard := ""
	if p.guard != nil {
		guard = "; " + p.guard().Line()
	}
	if p.total > 0 {
		fmt.Fprintf(p.w, "backfill %s: %d of ~%d rows (%.0f%%), %.0f rows/s, ETA %s%s\n", p.table, walked, total, 100*float64(walked)/float64(total), rate, eta, guard)
	} else {
		fmt.Fprintf(p.w, "backfill %s: %d rows, %.0f rows/s%s\n", p.table, walked, rate, guard)
	}
}

// slowed logs that the guard slowed the backfill down, at most once per
// progress interval (the count covers the ones in between).
func (p *backfillProgress) slowed(st throttle.Stats) {
	p.slowsSeen++
	now := p.clock()
	if !p.lastSlow.IsZero() && now.Sub(p.lastSlow) < backfillPlainEvery {
		return
	}
	p.lastSlow = now
	p.logf("guard: probe p99 %s above %s: down to %.0f rows/s (%d slowdown(s) since the last line)",
		st.P99.Round(10*time.Microsecond), st.Limit.Round(10*time.Microsecond), st.Rate, p.slowsSeen)
	p.slowsSeen = 0
}

// logf writes a log line, below the bar if one is drawn.
func (p *backfillProgress) logf(format string, args ...any) {
	if p.w == nil {
		return
	}
	if p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
	fmt.Fprintf(p.w, "backfill %s: %s\n", p.table, fmt.Sprintf(format, args...))
}

func (p *backfillProgress) finish(res *BackfillResult) {
	p.logf("done: %d rows updated, %d walked, in %d batches, %s; verify: %d rows differ",
		res.Rows, res.Walked, res.Batches, res.Elapsed.Round(time.Millisecond), res.Remaining)
	if res.Guard != nil {
		g := res.Guard
		p.logf("guard: probe p99 peaked at %s (limit %s, baseline %s); %d slowdown(s), %s paused, last rate %.0f rows/s, %d probes (%d failed)",
			g.Peak.Round(10*time.Microsecond), g.Limit.Round(10*time.Microsecond), g.Baseline.Round(10*time.Microsecond), g.Decreases, g.Paused.Round(time.Millisecond), g.Rate, g.Samples, g.Failures)
		if a := g.App; a != nil {
			p.logf("guard: the app's own p99 peaked at %s (limit %s, baseline %s); %d cut(s) on it, %d readings (%d failed)",
				a.Peak.Round(10*time.Microsecond), a.Limit.Round(10*time.Microsecond), a.Baseline.Round(10*time.Microsecond), a.Cuts, a.Readings, a.Errors)
		}
	}
}
