package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// appScript is the application: a point read and a single-row update of a
// random row, as pgbench runs it (each statement commits on its own).
const appScript = `\set id random(1, :rows)
SELECT val FROM big WHERE id = :id;
UPDATE big SET pad = md5(random()::text) WHERE id = :id;
`

// untilStopped is the -T given to a pgbench that runs until stop: pgbench
// ends a -T run when SIGALRM arrives, so an early SIGALRM ends it the same
// way, with its summary printed and its logs flushed.
const untilStopped = 24 * time.Hour

// loadGen starts pgbench runs against the local cluster.
type loadGen struct {
	bin     string
	port    int
	clients int
	rate    float64
	rows    int64
	script  string
	log     func(format string, args ...any)
}

// findPgbench returns pgbench from PATH, else from PostgreSQL 15's Debian
// directory, where the server binaries live too.
func findPgbench() (string, error) {
	if p, err := exec.LookPath("pgbench"); err == nil {
		return p, nil
	}
	const debian = "/usr/lib/postgresql/15/bin/pgbench"
	if _, err := os.Stat(debian); err == nil {
		return debian, nil
	}
	return "", errors.New("pgbench not found on PATH or in /usr/lib/postgresql/15/bin: install postgresql-15 (or postgresql-client-15)")
}

// load is one running pgbench.
type load struct {
	name    string
	clients int
	dir     string
	cmd     *exec.Cmd
	stderr  *bytes.Buffer
	exited  chan struct{}
	waitErr error
}

// start runs pgbench on database db for d, writing its per-transaction log
// into dir.
func (g *loadGen) start(ctx context.Context, name, db, dir string, d time.Duration) (*load, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("pgbench %s: %w", name, err)
	}
	args := []string{
		"-h", "127.0.0.1", "-p", strconv.Itoa(g.port), "-U", "postgres",
		"-n", // no vacuum of pgbench's own tables: the script uses big only
		"-f", g.script,
		"-D", fmt.Sprintf("rows=%d", g.rows),
		"-c", strconv.Itoa(g.clients), "-j", strconv.Itoa(g.clients),
		"-T", strconv.Itoa(int(math.Ceil(d.Seconds()))),
		"-l", "--log-prefix", filepath.Join(dir, "tx"),
		"--failures-detailed",
	}
	if g.rate > 0 {
		// Latency is then measured from each transaction's scheduled start,
		// so a stall counts for every transaction it delays, not just one.
		args = append(args, "-R", strconv.FormatFloat(g.rate, 'f', -1, 64))
	}
	args = append(args, db)
	cmd := exec.CommandContext(ctx, g.bin, args...)
	cmd.Dir = dir
	// pgbench's own summary must stay off our stdout, which holds only the
	// table; the figures come from the per-transaction log.
	summary, err := os.Create(filepath.Join(dir, "summary.txt"))
	if err != nil {
		return nil, fmt.Errorf("pgbench %s: %w", name, err)
	}
	defer summary.Close() // the child holds its own descriptor
	cmd.Stdout = summary
	l := &load{name: name, clients: g.clients, dir: dir, cmd: cmd, stderr: &bytes.Buffer{}, exited: make(chan struct{})}
	cmd.Stderr = l.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start pgbench %s: %w", name, err)
	}
	go func() {
		l.waitErr = cmd.Wait()
		close(l.exited)
	}()
	g.log("%s: pgbench started (%d clients, %s)", name, g.clients, g.rateText())
	return l, nil
}

func (g *loadGen) rateText() string {
	if g.rate > 0 {
		return fmt.Sprintf("%g tx/s", g.rate)
	}
	return "flat out"
}

// waitConnected returns once every client is connected to db.
func (l *load) waitConnected(ctx context.Context, conn *pgx.Conn, db string, clients int) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgbench' AND datname = $1`, db).Scan(&n); err != nil {
			return fmt.Errorf("pgbench %s: count its connections: %w", l.name, err)
		}
		if n >= clients {
			return nil
		}
		select {
		case <-l.exited:
			return fmt.Errorf("pgbench %s exited before its clients connected (%v): %s", l.name, l.waitErr, strings.TrimSpace(l.stderr.String()))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pgbench %s: %d of %d clients connected after 30s", l.name, n, clients)
		}
	}
}

// stop ends the run as if its -T had passed and waits for pgbench to exit.
func (l *load) stop() error {
	select {
	case <-l.exited:
		return l.result()
	default:
	}
	if err := l.cmd.Process.Signal(syscall.SIGALRM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop pgbench %s: %w", l.name, err)
	}
	return l.wait()
}

// wait waits for pgbench to exit by itself (a -T run).
func (l *load) wait() error {
	<-l.exited
	return l.result()
}

func (l *load) result() error {
	var ee *exec.ExitError
	// Exit status 2 means clients aborted on errors: those are counted as
	// failed transactions, not a broken benchmark.
	if l.waitErr == nil || (errors.As(l.waitErr, &ee) && ee.ExitCode() == 2) {
		return nil
	}
	return fmt.Errorf("pgbench %s: %w: %s", l.name, l.waitErr, strings.TrimSpace(l.stderr.String()))
}

// abortedRE matches pgbench 15's line for a client stopped by an error it
// does not retry ("client 3 script 0 aborted in command 1 query 0: ERROR: ...").
var abortedRE = regexp.MustCompile(`client \d+ (script \d+ )?aborted`)

// aborted counts the clients pgbench stopped on an error.
func (l *load) aborted() int {
	return len(abortedRE.FindAllString(l.stderr.String(), -1))
}

// appStats summarizes the transactions of one window.
type appStats struct {
	Tx      int           // completed transactions
	Failed  int           // failed transactions, aborted clients included
	P50     time.Duration // latency percentiles of completed transactions
	P99     time.Duration
	Max     time.Duration
	Seconds float64 // length of the window
	// Behind counts clients whose transactions scheduled in the window had
	// not all run when pgbench stopped: the figures then miss the latest,
	// most delayed ones.
	Behind int
}

// txRecord is one line of pgbench's per-transaction log.
type txRecord struct {
	client  int
	end     time.Time
	latency time.Duration
	failed  bool
}

// start is when the transaction was due: under -R pgbench measures latency
// from the scheduled start, so a transaction that waited behind a stalled
// one still belongs to the moment it was meant to run.
func (r txRecord) start() time.Time { return r.end.Add(-r.latency) }

// parseLogLine reads "client_id transaction_no time script_no time_epoch
// time_us [schedule_lag] [retries]"; time is microseconds, or failed,
// serialization or deadlock for a failed transaction (--failures-detailed).
func parseLogLine(line string) (txRecord, error) {
	f := strings.Fields(line)
	if len(f) < 6 {
		return txRecord{}, fmt.Errorf("want at least 6 fields, got %d", len(f))
	}
	client, err := strconv.Atoi(f[0])
	if err != nil {
		return txRecord{}, fmt.Errorf("client_id %q: %w", f[0], err)
	}
	sec, err := strconv.ParseInt(f[4], 10, 64)
	if err != nil {
		return txRecord{}, fmt.Errorf("time_epoch %q: %w", f[4], err)
	}
	usec, err := strconv.ParseInt(f[5], 10, 64)
	if err != nil {
		return txRecord{}, fmt.Errorf("time_us %q: %w", f[5], err)
	}
	r := txRecord{client: client, end: time.Unix(sec, usec*1000)}
	switch f[2] {
	case "failed", "serialization", "deadlock", "skipped":
		// skipped only appears with --latency-limit, which is not used; a
		// transaction that never ran is no success either.
		r.failed = true
	default:
		us, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return txRecord{}, fmt.Errorf("time %q: %w", f[2], err)
		}
		r.latency = time.Duration(us) * time.Microsecond
	}
	return r, nil
}

// stats reads the run's per-transaction logs and summarizes the transactions
// due in [from, to]; it returns the records too.
func (l *load) stats(from, to time.Time) (appStats, []txRecord, error) {
	files, err := filepath.Glob(filepath.Join(l.dir, "tx.*"))
	if err != nil {
		return appStats{}, nil, err
	}
	if len(files) == 0 {
		return appStats{}, nil, fmt.Errorf("pgbench %s wrote no transaction log in %s", l.name, l.dir)
	}
	var recs []txRecord
	for _, name := range files {
		if err := readLog(name, &recs); err != nil {
			return appStats{}, nil, fmt.Errorf("pgbench %s: %w", l.name, err)
		}
	}
	s := summarize(recs, from, to, l.clients)
	s.Failed += l.aborted()
	return s, recs, nil
}

// splitStats are the app's successful transactions due in one part of a
// window.
type splitStats struct {
	Tx  int
	P99 time.Duration
}

// splitBy divides the successful transactions due in [from, to] into those
// due inside one of spans and the rest.
func splitBy(recs []txRecord, from, to time.Time, spans []span) (in, out splitStats) {
	var li, lo []time.Duration
	for _, r := range recs {
		start := r.start()
		if r.failed || start.Before(from) || start.After(to) {
			continue
		}
		if inAny(spans, start) {
			li = append(li, r.latency)
		} else {
			lo = append(lo, r.latency)
		}
	}
	for _, p := range []struct {
		lat []time.Duration
		s   *splitStats
	}{{li, &in}, {lo, &out}} {
		p.s.Tx = len(p.lat)
		if len(p.lat) > 0 {
			slices.Sort(p.lat)
			p.s.P99 = percentile(p.lat, 0.99)
		}
	}
	return in, out
}

func readLog(name string, recs *[]txRecord) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		r, err := parseLogLine(sc.Text())
		if err != nil {
			return fmt.Errorf("%s:%d: %w", name, n, err)
		}
		*recs = append(*recs, r)
	}
	return sc.Err()
}

// summarize takes the transactions due in [from, to] and computes their
// latency percentiles. A failed transaction's log line has no latency, so it
// counts when it ended at or after from.
func summarize(recs []txRecord, from, to time.Time, clients int) appStats {
	s := appStats{Seconds: to.Sub(from).Seconds()}
	var lat []time.Duration
	latest := map[int]time.Time{} // per client, the latest due time seen
	for _, r := range recs {
		if r.failed {
			if !r.end.Before(from) {
				s.Failed++
			}
			continue
		}
		start := r.start()
		if start.After(latest[r.client]) {
			latest[r.client] = start
		}
		if start.Before(from) || start.After(to) {
			continue
		}
		lat = append(lat, r.latency)
	}
	// A client runs its transactions in schedule order: once one due after
	// the window has run, every one due in it has.
	s.Behind = clients
	for _, t := range latest {
		if t.After(to) {
			s.Behind--
		}
	}
	s.Tx = len(lat)
	if len(lat) == 0 {
		return s
	}
	slices.Sort(lat)
	s.P50 = percentile(lat, 0.50)
	s.P99 = percentile(lat, 0.99)
	s.Max = lat[len(lat)-1]
	return s
}

// percentile is the nearest-rank percentile of sorted values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
