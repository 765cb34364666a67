// Command sandbox measures how long phasekit takes to fill a sandbox with a
// copy of real data, against the obvious way, pg_dump -Fc SRC | pg_restore -d DST,
// on one throwaway PostgreSQL cluster:
//
//	go run ./bench/sandbox [-scale 68] [-jobs 0] [-datasets DIR]
//
// Two sources: the chinook dataset (restored from chinook/chinook.dump), and
// a pgbench database of -scale (68 is about 1 GB). For each it times the
// baseline and verify.CopyData from the live source, until the sandbox is
// ready (data, indexes, constraints); for chinook also CopyData from the
// dump file. It prints one table to stdout; progress goes to stderr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/phasekit/phasekit/verify"
)

// maxRatio is the target: phasekit's time over the baseline's.
const maxRatio = 0.8

type config struct {
	scale    int
	jobs     int
	phasekit string // with app: also time the demo verify
	app      string
	runs     int
	datasets string
}

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	fs.IntVar(&cfg.scale, "scale", 68, "pgbench scale of the big source (68 is about 1 GB)")
	fs.IntVar(&cfg.jobs, "jobs", 0, "CopyData's Jobs (0: one per CPU)")
	fs.StringVar(&cfg.phasekit, "phasekit", "", "phasekit binary: also time the demo verify (with -app)")
	fs.StringVar(&cfg.app, "app", "", "the sample app binary (go build ./examples/app)")
	fs.IntVar(&cfg.runs, "runs", 3, "runs of each method per dataset; the table shows the median")
	fs.StringVar(&cfg.datasets, "datasets", "", "the shared datasets directory (default $PHASEKIT_DATASETS, else ../shared/datasets next to the module)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "sandbox: unexpected argument %q\n", fs.Arg(0))
		return 2
	case cfg.scale < 1:
		fmt.Fprintln(stderr, "sandbox: -scale must be at least 1")
		return 2
	case cfg.runs < 1:
		fmt.Fprintln(stderr, "sandbox: -runs must be at least 1")
		return 2
	case cfg.jobs < 0:
		fmt.Fprintln(stderr, "sandbox: -jobs must not be negative")
		return 2
	}
	if cfg.datasets == "" {
		d, err := defaultDatasets()
		if err != nil {
			fmt.Fprintln(stderr, "sandbox:", err)
			return 2
		}
		cfg.datasets = d
	}
	dump := filepath.Join(cfg.datasets, "chinook", "chinook.dump")
	if _, err := os.Stat(dump); err != nil {
		fmt.Fprintf(stderr, "sandbox: %v (give -datasets)\n", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rows, err := run(ctx, cfg, dump, stderr)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "sandbox: interrupted; the cluster was stopped and removed")
			return 130
		}
		fmt.Fprintln(stderr, "sandbox:", err)
		return 1
	}
	printReport(stdout, cfg, rows)
	if cfg.phasekit != "" && cfg.app != "" {
		took, err := timeDemoVerify(cfg.phasekit, cfg.app, cfg.datasets, cfg.runs, stderr)
		if err != nil {
			fmt.Fprintln(stderr, "sandbox:", err)
			return 1
		}
		printVerify(stdout, took)
	}
	return 0
}

// result is one timed copy.
type result struct {
	dataset  string
	srcBytes int64
	method   string
	took     time.Duration // the median of runs
	runs     []time.Duration
	dstBytes int64
	baseline time.Duration // of the same dataset; 0 for the baseline itself
	note     string
}

// bench is the cluster and what the runs share.
type bench struct {
	l      *verify.Local
	cfg    config
	log    func(format string, args ...any)
	admin  *pgx.Conn
	seq    int
	pgDump string
	pgRest string
}

func run(ctx context.Context, cfg config, dump string, stderr io.Writer) (_ []result, err error) {
	start := time.Now()
	logf := func(format string, args ...any) {
		fmt.Fprintf(stderr, "%6.1fs  %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	b := &bench{cfg: cfg, log: logf}
	if b.pgDump, err = findBinary("pg_dump"); err != nil {
		return nil, err
	}
	if b.pgRest, err = findBinary("pg_restore"); err != nil {
		return nil, err
	}
	pgbench, err := findBinary("pgbench")
	if err != nil {
		return nil, err
	}
	b.l, err = verify.StartLocal(ctx, verify.LocalOptions{})
	if err != nil {
		return nil, err
	}
	defer func() {
		if serr := b.l.Stop(); serr != nil && err == nil {
			err = serr
		}
	}()
	logf("local PostgreSQL on port %d", b.l.Port())
	if b.admin, err = pgx.Connect(ctx, b.l.DSN("postgres")); err != nil {
		return nil, err
	}
	defer b.admin.Close(context.Background())

	var results []result

	// chinook: a realistic schema, small data.
	if err := b.l.CreateDatabase(ctx, "chinook_src", ""); err != nil {
		return nil, err
	}
	if err := verify.RestoreDump(ctx, b.l.DSN("chinook_src"), dump); err != nil {
		return nil, err
	}
	rs, err := b.compare(ctx, "chinook", "chinook_src", dump)
	if err != nil {
		return nil, err
	}
	results = append(results, rs...)
	if err := b.l.DropDatabase(ctx, "chinook_src"); err != nil {
		return nil, err
	}

	// pgbench: one big table, as in many real databases.
	if err := b.l.CreateDatabase(ctx, "pgbench_src", ""); err != nil {
		return nil, err
	}
	logf("pgbench -i -s %d", cfg.scale)
	t0 := time.Now()
	cmd := exec.CommandContext(ctx, pgbench, "-i", "-q", "-s", fmt.Sprint(cfg.scale), "-d", b.l.DSN("pgbench_src"))
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("pgbench -i: %w\n%s", err, out)
	}
	logf("pgbench -i took %s", time.Since(t0).Round(time.Millisecond))
	rs, err = b.compare(ctx, fmt.Sprintf("pgbench -s %d", cfg.scale), "pgbench_src", "")
	if err != nil {
		return nil, err
	}
	return append(results, rs...), nil
}

// compare times the baseline and CopyData from the live source src, and
// from dump if there is one, runs times each, interleaved so that a slow
// spell of the machine does not fall on one method only.
func (b *bench) compare(ctx context.Context, dataset, src, dump string) ([]result, error) {
	// Later readers must not pay for hint bits the first one sets, nor
	// for the checkpoint of the load.
	if _, err := b.exec(ctx, src, "VACUUM (FREEZE, ANALYZE)"); err != nil {
		return nil, err
	}
	srcBytes, err := b.size(ctx, src)
	if err != nil {
		return nil, err
	}
	b.log("%s: source is %s", dataset, mb(srcBytes))

	copyFrom := func(opts verify.CopyOptions) func(string) (string, error) {
		return func(dst string) (string, error) {
			opts.Jobs = b.cfg.jobs
			opts.Log = func(s string) { b.log("  %s", s) }
			rep, err := verify.CopyData(ctx, b.l.DSN(dst), opts)
			if err != nil {
				return "", err
			}
			return rep.Method, nil
		}
	}
	methods := []struct {
		name string
		f    func(dst string) (string, error)
	}{
		{"pg_dump -Fc \\| pg_restore", func(dst string) (string, error) {
			return "", b.dumpRestore(ctx, b.l.DSN(src), b.l.DSN(dst))
		}},
		{"phasekit CopyData from the live source", copyFrom(verify.CopyOptions{SourceDSN: b.l.DSN(src)})},
	}
	if dump != "" {
		methods = append(methods, struct {
			name string
			f    func(dst string) (string, error)
		}{"phasekit CopyData from " + filepath.Base(dump), copyFrom(verify.CopyOptions{Data: dump})})
	}
	out := make([]result, len(methods))
	for run := 1; run <= b.cfg.runs; run++ {
		for i, m := range methods {
			r, err := b.timed(ctx, fmt.Sprintf("%s, run %d", dataset, run), m.name, m.f)
			if err != nil {
				return nil, err
			}
			out[i].dataset, out[i].srcBytes, out[i].method = dataset, srcBytes, m.name
			out[i].runs = append(out[i].runs, r.took)
			out[i].dstBytes, out[i].note = r.dstBytes, r.note
		}
	}
	for i := range out {
		out[i].took = median(out[i].runs)
		if i > 0 {
			out[i].baseline = out[0].took
		}
	}
	return out, nil
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// timed runs f into a new database after a checkpoint and a sync, so that
// one run's dirty pages are not written on the next one's time, and drops
// the database afterwards.
func (b *bench) timed(ctx context.Context, label, method string, f func(dst string) (string, error)) (result, error) {
	b.seq++
	dst := fmt.Sprintf("dst_%d", b.seq)
	if err := b.l.CreateDatabase(ctx, dst, ""); err != nil {
		return result{}, err
	}
	defer func() { _ = b.l.DropDatabase(context.Background(), dst) }()
	if _, err := b.admin.Exec(ctx, "CHECKPOINT"); err != nil {
		return result{}, err
	}
	// The cluster runs with fsync off: without a sync the kernel would
	// write the previous run's pages back during this one.
	syscall.Sync()
	b.log("%s: %s ...", label, method)
	t0 := time.Now()
	note, err := f(dst)
	took := time.Since(t0)
	if err != nil {
		return result{}, fmt.Errorf("%s, %s: %w", label, method, err)
	}
	size, err := b.size(ctx, dst)
	if err != nil {
		return result{}, err
	}
	b.log("%s: %s took %s, target %s", label, method, took.Round(time.Millisecond), mb(size))
	return result{method: method, took: took, dstBytes: size, note: note}, nil
}

// dumpRestore is the baseline: pg_dump -Fc SRC | pg_restore -d DST.
func (b *bench) dumpRestore(ctx context.Context, src, dst string) error {
	dumpCmd := exec.CommandContext(ctx, b.pgDump, "-Fc", "-d", src)
	restoreCmd := exec.CommandContext(ctx, b.pgRest, "-d", dst)
	pipe, err := dumpCmd.StdoutPipe()
	if err != nil {
		return err
	}
	restoreCmd.Stdin = pipe
	var dumpErr, restoreErr strings.Builder
	dumpCmd.Stderr, restoreCmd.Stderr = &dumpErr, &restoreErr
	if err := dumpCmd.Start(); err != nil {
		return err
	}
	if err := restoreCmd.Run(); err != nil {
		_ = dumpCmd.Process.Kill()
		_ = dumpCmd.Wait()
		return fmt.Errorf("pg_restore: %w: %s", err, restoreErr.String())
	}
	if err := dumpCmd.Wait(); err != nil {
		return fmt.Errorf("pg_dump: %w: %s", err, dumpErr.String())
	}
	return nil
}

func (b *bench) exec(ctx context.Context, db, sql string) (int64, error) {
	conn, err := pgx.Connect(ctx, b.l.DSN(db))
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	tag, err := conn.Exec(ctx, sql)
	return tag.RowsAffected(), err
}

func (b *bench) size(ctx context.Context, db string) (int64, error) {
	var n int64
	err := b.admin.QueryRow(ctx, "SELECT pg_database_size($1)", db).Scan(&n)
	return n, err
}

func printReport(w io.Writer, cfg config, rs []result) {
	fmt.Fprintln(w, "| dataset | source size | method | time s (median) | runs s | sandbox size | vs baseline |")
	fmt.Fprintln(w, "|---|--:|---|--:|---|--:|--:|")
	for _, r := range rs {
		vs := "1.00x (baseline)"
		if r.baseline > 0 {
			vs = fmt.Sprintf("%.2fx", r.took.Seconds()/r.baseline.Seconds())
		}
		var runs []string
		for _, d := range r.runs {
			runs = append(runs, fmt.Sprintf("%.2f", d.Seconds()))
		}
		fmt.Fprintf(w, "| %s | %s | %s | %.2f | %s | %s | %s |\n", r.dataset, mb(r.srcBytes), r.method, r.took.Seconds(),
			strings.Join(runs, ", "), mb(r.dstBytes), vs)
	}
	fmt.Fprintln(w)
	for _, r := range rs {
		if r.baseline == 0 || !strings.Contains(r.method, "live source") {
			continue
		}
		ratio := r.took.Seconds() / r.baseline.Seconds()
		verdict := "PASS"
		if ratio > maxRatio {
			verdict = "FAIL"
		}
		fmt.Fprintf(w, "target %s: CopyData from the live source <= %.1fx baseline: %.2fx %s (%s)\n", r.dataset, maxRatio, ratio, verdict, r.note)
	}
	jobs := "one per CPU"
	if cfg.jobs > 0 {
		jobs = fmt.Sprint(cfg.jobs)
	}
	fmt.Fprintf(w, "local throwaway cluster (fsync off), %d runs each, interleaved; jobs: %s; times are until the sandbox is ready: data, indexes, constraints\n", cfg.runs, jobs)
}

func mb(n int64) string { return fmt.Sprintf("%.0f MB", float64(n)/(1<<20)) }

// findBinary finds a PostgreSQL client program on PATH, else in PostgreSQL
// 15's Debian directory.
func findBinary(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	p := filepath.Join("/usr/lib/postgresql/15/bin", name)
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s not found on PATH or in /usr/lib/postgresql/15/bin: install postgresql-15", name)
}

// defaultDatasets is $PHASEKIT_DATASETS, else ../shared/datasets next to the
// directory holding go.mod.
func defaultDatasets() (string, error) {
	if d := os.Getenv("PHASEKIT_DATASETS"); d != "" {
		return d, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(filepath.Dir(dir), "shared", "datasets"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod in the working directory or above: give -datasets")
		}
		dir = parent
	}
}
