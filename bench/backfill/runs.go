package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/internal/clock"
	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/throttle"
	"github.com/phasekit/phasekit/verify"
)

// clusterSettings override verify's throwaway defaults (fsync,
// synchronous_commit and full_page_writes off) with PostgreSQL's own: a
// backfill commits once per batch and the naive UPDATE once in all, so
// cheap commits would flatter the backfill, and the app's latency would
// miss the WAL flush every production commit waits for. The rest sizes
// memory and checkpoints so a 10M-row table stays cached and no run pays
// for a checkpoint another run caused.
var clusterSettings = map[string]string{
	"fsync":              "on",
	"synchronous_commit": "on",
	"full_page_writes":   "on",
	"shared_buffers":     "2GB",
	"max_wal_size":       "8GB",
	"checkpoint_timeout": "30min",
}

// warmup is how long pgbench runs before a measured window opens: its
// connections are made and its first transactions are not the window's.
const warmup = time.Second

const templateDB = "bench_template"

// migrationSQL is the change phasekit plans.
const migrationSQL = "ALTER TABLE big ALTER COLUMN val TYPE bigint;\n"

// outcome is one row of the table.
type outcome struct {
	// rows is the number of rows the migration covered; 0 for the baseline.
	rows int64
	// took is the time rows/s is computed over.
	took time.Duration
	// window is how long the app was measured: the whole migration.
	window time.Duration
	app    appStats
	// wal is the WAL the cluster wrote over the window (pg_stat_wal).
	wal int64
	// waits is what the app's backends waited on over the window.
	waits waits
	// duringVacuum and outsideVacuum split the app's transactions by
	// whether an autovacuum worker was at work in the run's database when
	// they were due (both zero: autovacuum was not seen).
	duringVacuum, outsideVacuum splitStats
	// guard is what phasekit's latency guard did (nil: it was off).
	guard *migrations.GuardStatus
}

// walRate is the cluster's WAL written per second over the window.
func (o outcome) walRate() float64 {
	if o.window <= 0 {
		return 0
	}
	return float64(o.wal) / o.window.Seconds()
}

func (o outcome) rate() float64 {
	if o.rows == 0 || o.took <= 0 {
		return 0
	}
	return float64(o.rows) / o.took.Seconds()
}

// results are the runs at one table size, all on one cluster: baseline,
// naive, phasekit with and without its guard and the I/O control once per
// repetition, interleaved; the sweep and the rewrite once.
type results struct {
	rows   int64
	server string
	// series holds the runs by key: "baseline", "naive", "control" and the
	// variants' keys.
	series  map[string][]outcome
	rewrite outcome
	// applyWall is how long each Apply took in all, by variant.
	applyWall map[string][]time.Duration
	// phaseTimes are the applied phases' times of the last unguarded run,
	// from the ledger.
	phaseTimes map[string]time.Duration
	// workers are the key-range worker counts run (series "parallelN").
	workers []int
}

func newResults(rows int64) *results {
	return &results{rows: rows, series: map[string][]outcome{}, applyWall: map[string][]time.Duration{}, phaseTimes: map[string]time.Duration{}}
}

type bench struct {
	cfg   config
	rows  int64 // the table size of this cluster
	l     *verify.Local
	admin *pgx.Conn
	load  *loadGen
	work  string
	logf  func(format string, args ...any)
	out   io.Writer // progress and Apply's step lines
}

func run(ctx context.Context, cfg config, stderr io.Writer) ([]*results, error) {
	began := time.Now()
	logf := func(format string, args ...any) {
		fmt.Fprintf(stderr, "[%7.1fs] %s\n", time.Since(began).Seconds(), fmt.Sprintf(format, args...))
	}
	var all []*results
	for i, rows := range cfg.rows {
		logf("table size %s rows (%d of %d)", thousands(float64(rows)), i+1, len(cfg.rows))
		var workers []int
		if i == len(cfg.rows)-1 {
			workers = cfg.workers
		}
		res, err := runSize(ctx, cfg, rows, cfg.sweep && i == 0, workers, logf, stderr)
		if err != nil {
			return nil, fmt.Errorf("%s rows: %w", thousands(float64(rows)), err)
		}
		all = append(all, res)
	}
	return all, nil
}

// runSize runs every run at one table size on a cluster of its own.
func runSize(ctx context.Context, cfg config, rows int64, withSweep bool, workers []int, logf func(string, ...any), stderr io.Writer) (*results, error) {
	bin, err := findPgbench()
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "phasekit-bench-backfill-")
	if err != nil {
		return nil, fmt.Errorf("create work directory: %w", err)
	}
	defer os.RemoveAll(work)
	script := filepath.Join(work, "app.sql")
	if err := os.WriteFile(script, []byte(appScript), 0o644); err != nil {
		return nil, fmt.Errorf("write pgbench script: %w", err)
	}

	names := make([]string, 0, len(clusterSettings))
	for k := range clusterSettings {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		logf("setting %s = %s", k, clusterSettings[k])
	}
	l, err := verify.StartLocal(ctx, verify.LocalOptions{Settings: clusterSettings})
	if err != nil {
		return nil, fmt.Errorf("start local PostgreSQL: %w", err)
	}
	defer func() {
		if serr := l.Stop(); serr != nil {
			logf("stop local PostgreSQL: %v", serr)
		}
	}()
	admin, err := pgx.Connect(ctx, l.DSN("postgres"))
	if err != nil {
		return nil, fmt.Errorf("connect to local PostgreSQL: %w", err)
	}
	defer admin.Close(context.Background())

	res := newResults(rows)
	if err := admin.QueryRow(ctx, "SELECT version()").Scan(&res.server); err != nil {
		return nil, fmt.Errorf("read server version: %w", err)
	}
	logf("cluster up on port %d: %s", l.Port(), res.server)

	b := &bench{
		cfg: cfg, rows: rows, l: l, admin: admin, work: work, logf: logf, out: stderr,
		load: &loadGen{bin: bin, port: l.Port(), clients: cfg.clients, rate: cfg.rate, rows: rows, script: script, log: logf},
	}
	if err := b.makeTemplate(ctx); err != nil {
		return nil, err
	}
	type step struct {
		name string
		run  func(context.Context, *results) error
	}
	// The machine's noise comes and goes: each repetition measures the
	// baseline, the naive UPDATE, the backfill with and without its guard
	// and the I/O control back to back, after a warm-up that leaves pg_wal
	// full of recycled segments.
	variantStep := func(v variant) func(context.Context, *results) error {
		if v.controlOf != "" {
			return func(ctx context.Context, res *results) error { return b.controlFor(ctx, res, v.controlOf, v.key) }
		}
		if v.loop != nil {
			return func(ctx context.Context, res *results) error { return b.loop(ctx, res, v) }
		}
		if v.probeOnly {
			return func(ctx context.Context, res *results) error { return b.probeOnly(ctx, res, v) }
		}
		return func(ctx context.Context, res *results) error { return b.phasekit(ctx, res, v) }
	}
	steps := []step{{"warm-up", b.warmupWAL}}
	for i := range cfg.reps {
		steps = append(steps, step{fmt.Sprintf("baseline #%d", i+1), b.baseline})
		if len(cfg.only) > 0 {
			// -only: the baseline and the chosen variants, nothing else.
			for _, v := range cfg.only {
				steps = append(steps, step{fmt.Sprintf("%s #%d", v.label, i+1), variantStep(v)})
			}
			continue
		}
		steps = append(steps,
			step{fmt.Sprintf("naive #%d", i+1), b.naive},
			step{fmt.Sprintf("%s #%d", defaults.label, i+1), variantStep(defaults)},
			step{fmt.Sprintf("%s #%d", unguarded.label, i+1), variantStep(unguarded)},
			step{fmt.Sprintf("I/O control #%d", i+1), b.control})
	}
	if withSweep {
		for _, v := range sweep {
			steps = append(steps, step{v.label, variantStep(v)})
		}
	}
	for _, w := range workers {
		steps = append(steps, step{fmt.Sprintf("%d key-range workers", w), func(ctx context.Context, res *results) error { return b.parallel(ctx, res, w) }})
		res.workers = append(res.workers, w)
	}
	if len(cfg.only) == 0 {
		steps = append(steps, step{"rewrite", b.rewrite})
	}
	for _, s := range steps {
		if err := s.run(ctx, res); err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return res, nil
}

// makeTemplate builds big once; every run gets its own copy of it.
func (b *bench) makeTemplate(ctx context.Context) error {
	if err := b.l.CreateDatabase(ctx, templateDB, ""); err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, b.l.DSN(templateDB))
	if err != nil {
		return fmt.Errorf("connect to %s: %w", templateDB, err)
	}
	defer conn.Close(context.Background())
	b.logf("filling big with %d rows", b.rows)
	// The primary key is added after the fill: the same table as declaring
	// it up front, built in one sort instead of row by row.
	stmts := []string{
		"SET maintenance_work_mem = '1GB'",
		"CREATE EXTENSION pg_prewarm",
		"CREATE TABLE big (id bigint NOT NULL, val int NOT NULL, pad text NOT NULL)",
		fmt.Sprintf("INSERT INTO big SELECT g, (g * 7919) %% 1000000, md5(g::text) FROM generate_series(1::bigint, %d::bigint) g", b.rows),
		"ALTER TABLE big ADD PRIMARY KEY (id)",
		"VACUUM ANALYZE big",
	}
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("build %s: %s: %w", templateDB, s, err)
		}
	}
	var size string
	if err := conn.QueryRow(ctx, "SELECT pg_size_pretty(pg_table_size('big')) || ' table, ' || pg_size_pretty(pg_indexes_size('big')) || ' index'").Scan(&size); err != nil {
		return fmt.Errorf("size of big: %w", err)
	}
	b.logf("big: %s", size)
	if err := conn.Close(ctx); err != nil {
		return fmt.Errorf("disconnect from %s: %w", templateDB, err)
	}
	// No session, autovacuum included, may hold the template open while a
	// copy is made.
	if _, err := b.admin.Exec(ctx, "ALTER DATABASE "+templateDB+" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"); err != nil {
		return fmt.Errorf("close %s to connections: %w", templateDB, err)
	}
	return nil
}

// freshCopy makes database db a copy of the template, with big and its
// index read into shared buffers, so every run starts from the same state.
// FILE_COPY starts with a checkpoint: no run inherits another's dirty pages.
func (b *bench) freshCopy(ctx context.Context, db string) (*pgx.Conn, error) {
	if _, err := b.admin.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s STRATEGY FILE_COPY", db, templateDB)); err != nil {
		return nil, fmt.Errorf("copy %s to %s: %w", templateDB, db, err)
	}
	conn, err := pgx.Connect(ctx, b.l.DSN(db))
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", db, err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_prewarm('big'), pg_prewarm('big_pkey')"); err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("prewarm %s: %w", db, err)
	}
	return conn, nil
}

// runCopy is freshCopy for a run named name: its database (run_<name>), a
// connection to it, and done, which closes the connection and drops the
// database.
func (b *bench) runCopy(ctx context.Context, name string) (db string, conn *pgx.Conn, done func(), err error) {
	db = "run_" + name
	conn, err = b.freshCopy(ctx, db)
	if err != nil {
		return "", nil, nil, err
	}
	return db, conn, func() {
		conn.Close(context.Background())
		b.drop(db)
	}, nil
}

// drop removes a run's database, so the next run has the disk and the
// buffers to itself.
func (b *bench) drop(db string) {
	if err := b.l.DropDatabase(context.Background(), db); err != nil {
		b.logf("%v", err)
	}
}

// during runs migrate while pgbench plays the app on db, and returns the
// app's figures for the transactions due while the migration ran, the
// window's length and the WAL the cluster wrote in it.
func (b *bench) during(ctx context.Context, name, db string, migrate func(context.Context) error) (outcome, error) {
	return b.duringAfter(ctx, name, db, warmup, migrate)
}

// duringAfter is during with pgbench running for warm before the window
// opens.
func (b *bench) duringAfter(ctx context.Context, name, db string, warm time.Duration, migrate func(context.Context) error) (outcome, error) {
	var out outcome
	if err := settle(ctx); err != nil {
		return out, err
	}
	ld, err := b.load.start(ctx, name, db, filepath.Join(b.work, name), untilStopped)
	if err != nil {
		return out, err
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = ld.stop()
		}
	}()
	if err := ld.waitConnected(ctx, b.admin, db, b.cfg.clients); err != nil {
		return out, err
	}
	if err := clock.Sleep(ctx, warm); err != nil {
		return out, err
	}
	b.logf("%s: load average %s", name, loadAverage())
	cpu0 := readCPU()
	wal0, err := b.walBytes(ctx)
	if err != nil {
		return out, err
	}
	stopWaits, err := sampleWaits(ctx, b.l.DSN("postgres"), db)
	if err != nil {
		return out, err
	}
	from := time.Now()
	if err := migrate(ctx); err != nil {
		stopWaits()
		return out, err
	}
	to := time.Now()
	out.waits = stopWaits()
	wal1, err := b.walBytes(ctx)
	if err != nil {
		return out, err
	}
	out.window, out.wal = to.Sub(from), wal1-wal0
	b.logf("%s: machine CPU over the window: %s; WAL %.1f MB/s", name, cpuUse(cpu0, readCPU()), out.walRate()/1e6)
	// Transactions due during a stall run after it: pgbench keeps going
	// until it has caught up, or the stall would be measured by the few
	// transactions that happened to be in flight.
	if err := clock.Sleep(ctx, drainTime(out.window)); err != nil {
		return out, err
	}
	stopped = true
	if err := ld.stop(); err != nil {
		return out, err
	}
	st, recs, err := ld.stats(from, to)
	if err != nil {
		return out, err
	}
	b.logf("%s: app over %.1fs: %d tx, p50 %s, p99 %s, max %s, %d failed", name, out.window.Seconds(), st.Tx, st.P50, st.P99, st.Max, st.Failed)
	if len(out.waits.vacuum) > 0 {
		out.duringVacuum, out.outsideVacuum = splitBy(recs, from, to, out.waits.vacuum)
		for _, q := range sortedKeys(out.waits.vacuumed) {
			b.logf("%s: seen for %.1fs: %s", name, out.waits.vacuumed[q].Seconds(), q)
		}
		b.logf("%s: app while autovacuum ran (%.1fs): %d tx, p99 %s; the rest: %d tx, p99 %s", name, total(out.waits.vacuum).Seconds(),
			out.duringVacuum.Tx, out.duringVacuum.P99, out.outsideVacuum.Tx, out.outsideVacuum.P99)
	}
	if st.Behind > 0 {
		b.logf("%s: warning: %d pgbench clients had not caught up when stopped; the app figures miss their latest transactions", name, st.Behind)
	}
	out.app = st
	return out, nil
}

// settleTime is how long the disk is left alone before a run.
const settleTime = 3 * time.Second

// settle flushes the file systems and waits, so a run does not start inside
// the I/O of the previous run's cleanup: dropping a database of a few GB on
// a file system mounted with discard, or the copy the run starts from, can
// stall every fsync for a while, the app's commits included.
func settle(ctx context.Context) error {
	syscall.Sync()
	return clock.Sleep(ctx, settleTime)
}

// walBytes is the WAL the cluster has written since its statistics began.
func (b *bench) walBytes(ctx context.Context) (int64, error) {
	var n int64
	if err := b.admin.QueryRow(ctx, "SELECT wal_bytes::bigint FROM pg_stat_wal").Scan(&n); err != nil {
		return 0, fmt.Errorf("read pg_stat_wal: %w", err)
	}
	return n, nil
}

// drainTime is how long pgbench runs on after a window of length d: enough
// at the app's modest rate to work off a backlog as long as the window.
func drainTime(d time.Duration) time.Duration {
	return min(2*time.Second+d/4, time.Minute)
}

// cpuTimes are the machine's CPU counters from /proc/stat, in ticks.
type cpuTimes struct{ total, idle, steal uint64 }

func readCPU() cpuTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	var t cpuTimes
	for i, v := range f[1:] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || i >= 8 {
			break // guest times are already in user and nice
		}
		t.total += n
		switch i {
		case 3, 4: // idle, iowait
			t.idle += n
		case 7:
			t.steal += n
		}
	}
	return t
}

// cpuUse says how busy both cores were between two readings, and how much
// the hypervisor took (steal): a noisy neighbour shows there.
func cpuUse(a, b cpuTimes) string {
	d := float64(b.total - a.total)
	if d <= 0 {
		return "unknown"
	}
	return fmt.Sprintf("%.0f%% busy, %.0f%% steal", 100*(d-float64(b.idle-a.idle))/d, 100*float64(b.steal-a.steal)/d)
}

// loadAverage is the machine's load average, logged because the machine is
// shared and another user's work shows in every figure.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// baseline: the app alone.
func (b *bench) baseline(ctx context.Context, res *results) error {
	out, _, err := b.besideApp(ctx, res, "baseline", func(ctx context.Context, _, _ string) error { return clock.Sleep(ctx, b.cfg.duration) })
	if err != nil {
		return err
	}
	res.series["baseline"] = append(res.series["baseline"], out)
	return nil
}

// besideApp runs work, and no migration, while the app runs on a fresh
// copy of big; it returns the app's figures and the run's name (key and
// its number in key's series; the copy is "run_" and the name).
func (b *bench) besideApp(ctx context.Context, res *results, key string, work func(ctx context.Context, name, db string) error) (outcome, string, error) {
	name := fmt.Sprintf("%s%d", key, len(res.series[key])+1)
	db := "run_" + name
	conn, err := b.freshCopy(ctx, db)
	if err != nil {
		return outcome{}, name, err
	}
	conn.Close(context.Background())
	defer b.drop(db)
	out, err := b.during(ctx, name, db, func(ctx context.Context) error { return work(ctx, name, db) })
	return out, name, err
}

// probeOnly: the app on a fresh copy with the guard's probe beside it, as
// the guard runs it (its defaults, its table), for the baseline's duration.
func (b *bench) probeOnly(ctx context.Context, res *results, v variant) error {
	var st throttle.Stats
	out, name, err := b.besideApp(ctx, res, v.key, func(ctx context.Context, _, db string) error {
		cfg, err := pgx.ParseConfig(b.l.DSN(db))
		if err != nil {
			return err
		}
		probe, err := throttle.NewPGProbe(ctx, cfg, "")
		if err != nil {
			return err
		}
		defer probe.Close(ctx)
		// Start measures the baseline for BaselineFor: the whole window.
		g, err := throttle.Start(ctx, probe, throttle.Config{BaselineFor: b.cfg.duration}, nil, nil)
		if err != nil {
			return err
		}
		st = g.Stats()
		g.Stop()
		return nil
	})
	if err != nil {
		return err
	}
	b.logf("%s: probe p99 %s over the window", name, st.Baseline)
	res.series[v.key] = append(res.series[v.key], out)
	return nil
}

// control: the app alone on a fresh copy while another process, not
// PostgreSQL, writes to the same file system what the latest unguarded
// phasekit run wrote to its WAL, at the same rate and for as long, syncing the file as
// often as the backfill commits. Whatever the app loses here, any backfill
// that fills the column at that speed costs it on this machine: the floor
// under the phasekit row.
func (b *bench) control(ctx context.Context, res *results) error {
	return b.controlFor(ctx, res, unguarded.key, "control")
}

// controlFor is the I/O control of the last run of series of, kept as
// series key.
func (b *bench) controlFor(ctx context.Context, res *results, of, key string) error {
	runs := res.series[of]
	if len(runs) == 0 {
		return fmt.Errorf("the I/O control needs a %s run first", labelOf(of))
	}
	pk := runs[len(runs)-1]
	every := b.cfg.batchTarget
	if every <= 0 {
		every = migrations.DefaultBatchTarget
	}
	var file string
	// The file goes after the app's window: deleting a few GB is itself a
	// burst of I/O on a file system mounted with discard.
	defer func() {
		if file != "" {
			os.Remove(file)
		}
	}()
	var written int64
	out, name, err := b.besideApp(ctx, res, key, func(ctx context.Context, name, _ string) error {
		file = filepath.Join(b.work, name+".dat")
		var err error
		written, err = writeLikeWAL(ctx, file, pk.walRate(), every, pk.window)
		return err
	})
	if err != nil {
		return err
	}
	b.logf("%s: wrote %.0f MB to %s at %.1f MB/s, synced every %s", name, float64(written)/1e6, file, pk.walRate()/1e6, every)
	out.wal = written + out.wal // the app's own WAL is in out.wal
	res.series[key] = append(res.series[key], out)
	return nil
}

// naive: the like-for-like baseline of a backfill, one UPDATE of every row
// into a new column.
func (b *bench) naive(ctx context.Context, res *results) error {
	name := fmt.Sprintf("naive%d", len(res.series["naive"])+1)
	db, conn, done, err := b.runCopy(ctx, name)
	if err != nil {
		return err
	}
	defer done()
	var rows int64
	var took time.Duration
	out, err := b.during(ctx, name, db, func(ctx context.Context) error {
		var err error
		rows, took, err = naiveUpdate(ctx, conn)
		if err == nil {
			b.logf("%s: UPDATE of %d rows took %s", name, rows, took.Round(time.Millisecond))
		}
		return err
	})
	if err != nil {
		return err
	}
	out.rows, out.took = rows, took
	res.series["naive"] = append(res.series["naive"], out)
	return nil
}

// naiveUpdate adds the new column and fills it in one UPDATE, returning the
// rows updated and the UPDATE's time.
func naiveUpdate(ctx context.Context, conn *pgx.Conn) (int64, time.Duration, error) {
	if _, err := conn.Exec(ctx, "ALTER TABLE big ADD COLUMN val_new bigint"); err != nil {
		return 0, 0, fmt.Errorf("add column: %w", err)
	}
	t0 := time.Now()
	tag, err := conn.Exec(ctx, "UPDATE big SET val_new = val")
	if err != nil {
		return 0, 0, fmt.Errorf("update: %w", err)
	}
	return tag.RowsAffected(), time.Since(t0), nil
}

// warmupWAL runs the naive UPDATE once, unmeasured, then checkpoints. A
// fresh cluster has no WAL segments to reuse, so whichever run came first
// would also pay for creating (zero-filling) every segment it writes; a
// server that has been running recycles them. The checkpoint keeps the
// written segments for reuse (max_wal_size is 8GB).
func (b *bench) warmupWAL(ctx context.Context, _ *results) error {
	const db = "run_warmup"
	conn, err := b.freshCopy(ctx, db)
	if err != nil {
		return err
	}
	defer b.drop(db)
	defer conn.Close(context.Background())
	t0 := time.Now()
	if _, _, err := naiveUpdate(ctx, conn); err != nil {
		return err
	}
	if _, err := b.admin.Exec(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	b.logf("warm-up: UPDATE of every row and CHECKPOINT took %s", time.Since(t0).Round(time.Millisecond))
	return nil
}

// appWindow is the span the guardwatch variants' app p99 is taken over;
// appHistory the span before the backfill whose median p99 is the app's
// baseline (--app-latency-baseline), for which pgbench runs first.
const (
	appWindow  = 10 * time.Second
	appHistory = 30 * time.Second
)

// phasekit: the type change planned against the live schema, written as a
// plan directory and applied up to its backfill with the variant's options,
// as `phasekit plan` and `phasekit apply --until backfill` would (the
// dual-write-only variant stops before the backfill and lets the app run
// for the baseline's duration).
func (b *bench) phasekit(ctx context.Context, res *results, v variant) error {
	name := fmt.Sprintf("%s%d", strings.ReplaceAll(v.key, ".", "_"), len(res.series[v.key])+1)
	db := "run_" + name
	conn, err := b.freshCopy(ctx, db)
	if err != nil {
		return err
	}
	conn.Close(context.Background())
	defer b.drop(db)
	dsn := b.l.DSN(db)
	dir, _, err := b.writePlan(ctx, db, name)
	if err != nil {
		return err
	}
	opts := migrations.BackfillOptions{TargetBatch: b.cfg.batchTarget}
	if v.opts != nil {
		v.opts(&opts)
	}
	if base := res.series["baseline"]; v.appP99 && opts.Guard != nil && len(base) > 0 {
		opts.Guard.AppP99 = base[len(base)-1].app.P99
	}
	warm := warmup
	if v.watchApp && opts.Guard != nil {
		// duringAfter runs pgbench in this directory. It runs for the
		// history before the migration starts, so that the app's baseline
		// is the median of 30 s of its steady state, as a range query over
		// a running app's histogram gives it: in the first runs of this
		// variant a single reading took in pgbench's first second (new
		// connections, cold caches) and came out at 2.2 ms where the
		// baseline run's p99 was 1.3-1.6 ms.
		opts.Guard.App = newAppLatency(filepath.Join(b.work, name), appWindow, appHistory)
		opts.Guard.AppEvery, opts.Guard.AppLag = time.Second, appWindow+2*time.Second
		opts.Guard.AppBaselineFor = appHistory
		warm = appHistory
	}
	until := phases.Backfill
	if v.dualWriteOnly {
		until = phases.DualWrite
	}
	var status *migrations.PlanStatus
	out, err := b.duringAfter(ctx, name, db, warm, func(ctx context.Context) error {
		var err error
		status, err = migrations.Apply(ctx, dsn, dir, migrations.ApplyOptions{
			Until:    until,
			Backfill: opts,
			Runner:   migrations.CurrentRunner("bench"),
			Out:      b.out,
			Log:      slog.New(slog.NewTextHandler(b.out, nil)),
		})
		if err == nil && v.dualWriteOnly {
			err = clock.Sleep(ctx, b.cfg.duration)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("apply --until %s: %w", until, err)
	}
	res.applyWall[v.key] = append(res.applyWall[v.key], out.window)
	if v.dualWriteOnly {
		res.series[v.key] = append(res.series[v.key], out)
		return nil
	}
	times := map[string]time.Duration{}
	for _, ph := range status.Phases {
		if ph.StartedAt == nil || ph.FinishedAt == nil {
			continue
		}
		d := ph.FinishedAt.Sub(*ph.StartedAt)
		times[ph.Kind] = d
		if ph.Kind == string(phases.Backfill) {
			out.took = d
		}
	}
	if v.key == unguarded.key {
		res.phaseTimes = times
	}
	if len(status.Backfills) != 1 {
		return fmt.Errorf("ledger: want 1 backfill, found %d", len(status.Backfills))
	}
	bf := status.Backfills[0]
	if bf.Remaining == nil || *bf.Remaining != 0 {
		return fmt.Errorf("ledger: backfill of %s did not verify (remaining %v)", bf.Table, bf.Remaining)
	}
	if out.took <= 0 {
		return errors.New("ledger: the backfill phase has no start and finish time")
	}
	out.rows, out.guard = bf.Rows, bf.Guard
	b.logf("%s: backfill phase walked %d rows in %s (ledger); apply until backfill took %s", name, out.rows, out.took.Round(time.Millisecond), out.window.Round(time.Millisecond))
	if g := out.guard; g != nil {
		b.logf("%s: guard: probe p99 baseline %.2f ms, limit %.2f ms, last %.2f ms, peak %.2f ms; %d slowdowns, %.0f ms paused, %d probes", name, g.BaselineP99, g.Limit, g.ProbeP99, g.PeakP99, g.Decreases, g.Paused, g.Samples)
		if a := g.App; a != nil {
			b.logf("%s: guard: the app's own p99 baseline %.2f ms, limit %.2f ms, last %.2f ms, peak %.2f ms; %d cuts on it, %d readings (%d failed)", name, a.BaselineP99, a.Limit, a.P99, a.PeakP99, a.Cuts, a.Readings, a.Errors)
		}
	}
	res.series[v.key] = append(res.series[v.key], out)
	return nil
}

// writePlan plans the type change against db's live schema and writes the
// plan directory, as `phasekit plan --out` would; it returns the directory
// and the plan's backfill step.
func (b *bench) writePlan(ctx context.Context, db, name string) (string, phases.BackfillStep, error) {
	m, err := change.ParseSQL("migration.sql", migrationSQL)
	if err != nil {
		return "", phases.BackfillStep{}, fmt.Errorf("parse migration: %w", err)
	}
	snap, err := verify.SnapshotFromDSN(ctx, b.l.DSN(db))
	if err != nil {
		return "", phases.BackfillStep{}, err
	}
	plan, err := phases.Build(snap, m)
	if err != nil {
		return "", phases.BackfillStep{}, fmt.Errorf("plan: %w", err)
	}
	ph := plan.Phase(phases.Backfill)
	if ph == nil || len(ph.Backfills) != 1 {
		return "", phases.BackfillStep{}, errors.New("plan: the type change has no backfill phase with one backfill")
	}
	dir := filepath.Join(b.work, name+"-plan")
	if _, err := migrations.Write(dir, plan, func(*phases.Plan) string { return "" }); err != nil {
		return "", phases.BackfillStep{}, err
	}
	return dir, ph.Backfills[0], nil
}

// rewrite: ALTER TYPE in place, a table rewrite under ACCESS EXCLUSIVE, for
// reference; the app's max latency shows how long it was locked out.
func (b *bench) rewrite(ctx context.Context, res *results) error {
	const db = "run_rewrite"
	conn, err := b.freshCopy(ctx, db)
	if err != nil {
		return err
	}
	defer b.drop(db)
	defer conn.Close(context.Background())
	var took time.Duration
	out, err := b.during(ctx, "rewrite", db, func(ctx context.Context) error {
		t0 := time.Now()
		if _, err := conn.Exec(ctx, "ALTER TABLE big ALTER COLUMN val TYPE bigint"); err != nil {
			return fmt.Errorf("alter type: %w", err)
		}
		took = time.Since(t0)
		b.logf("rewrite: ALTER TYPE took %s", took.Round(time.Millisecond))
		return nil
	})
	if err != nil {
		return err
	}
	out.rows, out.took = b.rows, took
	res.rewrite = out
	return nil
}
