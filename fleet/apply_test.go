package fleet_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/fleet"
	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/verify"
	"github.com/phasekit/phasekit/verify/pgtest"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(child())
	}
	pgtest.Main(m)
}

const (
	// rename is the Chinook rename of docs/fleet.md: expand is one step.
	rename = "ALTER TABLE customer RENAME COLUMN email TO email_address;"
	// renameAndIndex has an expand of two steps (ADD COLUMN, then CREATE
	// INDEX CONCURRENTLY), so that a target failing in the second has the
	// first to roll back.
	renameAndIndex = "ALTER TABLE customer RENAME COLUMN email TO email_address;\nCREATE INDEX CONCURRENTLY customer_country_idx ON customer (country);"
)

// shards creates a Chinook copy per name; env maps each name's variable
// (SHARD_<NAME>_DSN) to its DSN.
type shards struct {
	dsn map[string]string // by target name
	env map[string]string // by variable
}

func newShards(t *testing.T, names ...string) *shards {
	t.Helper()
	s := &shards{dsn: map[string]string{}, env: map[string]string{}}
	for _, n := range names {
		dsn := pgtest.NewDB(t, "chinook")
		s.dsn[n] = dsn
		s.env[envName(n)] = dsn
	}
	return s
}

func envName(target string) string {
	return "SHARD_" + strings.ToUpper(strings.ReplaceAll(target, "-", "_")) + "_DSN"
}

func (s *shards) lookup(k string) (string, bool) {
	v, ok := s.env[k]
	return v, ok
}

// wave is one wave of a fleet file written by fleetFile.
type wave struct {
	name                  string
	maxParallel, failures int
	bake                  string
	targets               []string
}

func fleetFile(waves ...wave) string {
	var b strings.Builder
	b.WriteString("waves:\n")
	for _, w := range waves {
		fmt.Fprintf(&b, "  - name: %s\n", w.name)
		if w.maxParallel > 0 {
			fmt.Fprintf(&b, "    max_parallel: %d\n", w.maxParallel)
		}
		if w.failures > 0 {
			fmt.Fprintf(&b, "    max_failures: %d\n", w.failures)
		}
		if w.bake != "" {
			fmt.Fprintf(&b, "    bake: %s\n", w.bake)
		}
		b.WriteString("    targets:\n")
		for _, t := range w.targets {
			fmt.Fprintf(&b, "      - {name: %s, dsn: \"${%s}\"}\n", t, envName(t))
		}
	}
	return b.String()
}

// loadFleet writes the fleet file and reads it with the shards' variables.
func (s *shards) loadFleet(t *testing.T, waves ...wave) *fleet.Fleet {
	t.Helper()
	file := filepath.Join(t.TempDir(), "fleet.yaml")
	if err := os.WriteFile(file, []byte(fleetFile(waves...)), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := fleet.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Resolve(s.lookup); err != nil {
		t.Fatal(err)
	}
	return f
}

// planDir plans sql against the database and writes the plan into a new dir.
func planDir(t testing.TB, dsn, sql string) (string, *phases.Plan) {
	t.Helper()
	m, err := change.ParseSQL("m.sql", sql)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := verify.SnapshotFromDSN(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	p, err := phases.Build(snap, m)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "plan")
	if _, err := migrations.Write(dir, p, func(*phases.Plan) string { return "" }); err != nil {
		t.Fatal(err)
	}
	return dir, p
}

// columns lists customer's columns, in order.
func columns(t testing.TB, dsn string) string {
	t.Helper()
	var cols []string
	rows, err := pgtest.Conn(t, dsn).Query(context.Background(), "SELECT attname FROM pg_attribute WHERE attrelid = 'customer'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(cols, ",")
}

// ledger is the plan's phases in the target's ledger: "expand=done
// dual-write=pending ...", "no ledger" when phasekit never ran there.
func ledger(t testing.TB, dsn, hash string) string {
	t.Helper()
	conn := pgtest.Conn(t, dsn)
	var exists bool
	if err := conn.QueryRow(context.Background(), "SELECT to_regnamespace('phasekit') IS NOT NULL").Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if !exists {
		return "no ledger"
	}
	all, err := migrations.Status(context.Background(), conn, hash)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) == 0 {
		return "plan not registered"
	}
	var out []string
	for _, p := range all[0].Phases {
		out = append(out, p.Kind+"="+p.State)
	}
	return strings.Join(out, " ")
}

// fakeClock makes bakes instant and adds up how long they would have taken.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	slept time.Duration
	// onSleep, when set, runs before each sleep.
	onSleep func(d time.Duration)
}

func newClock() *fakeClock { return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if c.onSleep != nil {
		c.onSleep(d)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.slept += d
	return nil
}

func (c *fakeClock) total() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.slept
}

// syncBuffer is a buffer written by the rollout and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
	// onLine, when set, sees every line written.
	onLine func(string)
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	n, err := s.b.Write(p)
	s.mu.Unlock()
	if s.onLine != nil {
		for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
			s.onLine(l)
		}
	}
	return n, err
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func fastDDL() migrations.DDLOptions {
	return migrations.DDLOptions{LockTimeout: 50 * time.Millisecond, MaxAttempts: 3, BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
}

func options(kind phases.Kind, clock fleet.Clock, out, detail *syncBuffer) fleet.ApplyOptions {
	o := fleet.ApplyOptions{
		Phase: kind, Clock: clock, DDL: fastDDL(),
		Runner: migrations.Runner{Host: "testhost", OSUser: "tester", PID: 4242, Version: "test"},
		Out:    out,
	}
	if detail != nil { // not a typed nil in the interface
		o.Detail = detail
	}
	return o
}

// targetStates is "name=state" for every target of the report, wave by wave.
func targetStates(rep *fleet.Report) string {
	var out []string
	for _, w := range rep.Waves {
		for _, t := range w.Targets {
			s := t.Name + "=" + t.State
			if t.Rollback != "" {
				s += "/" + t.Rollback
			}
			out = append(out, s)
		}
	}
	return strings.Join(out, " ")
}

// TestRolloutAllWaves rolls the rename's expand out over six Chinook
// copies in three waves, then again (everything skipped), then dual-write.
// The last wave has three targets for two at a time.
func TestRolloutAllWaves(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	names := []string{"eu1-canary", "eu1-a", "eu1-b", "us1-a", "us1-b", "us1-c"}
	s := newShards(t, names...)
	before := columns(t, s.dsn["eu1-a"])
	dir, plan := planDir(t, s.dsn["eu1-canary"], rename)
	f := s.loadFleet(t,
		wave{name: "one-box", bake: "10m", targets: names[:1]},
		wave{name: "eu", maxParallel: 2, bake: "30m", targets: names[1:3]},
		wave{name: "us", maxParallel: 2, bake: "30m", targets: names[3:]},
	)
	var checks int
	alarm := func(context.Context) (bool, string, error) {
		checks++
		return false, "api-5xx: 0 of 5 datapoints above 5", nil
	}
	clock := newClock()
	var out, detail syncBuffer
	opts := options(phases.Expand, clock, &out, &detail)
	opts.Alarm, opts.AlarmInterval = alarm, 5*time.Minute

	start := time.Now()
	rep, err := fleet.Apply(ctx, f, dir, opts)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Logf("expand on 6 targets in 3 waves: %s", took.Round(time.Millisecond))
	if rep.Outcome != fleet.OutcomeDone || targetStates(rep) != "eu1-canary=applied eu1-a=applied eu1-b=applied us1-a=applied us1-b=applied us1-c=applied" {
		t.Fatalf("outcome %s: %s\n%s", rep.Outcome, targetStates(rep), out.String())
	}
	for _, n := range names {
		if got := ledger(t, s.dsn[n], plan.Hash); got != "expand=done dual-write=pending backfill=pending contract=pending" {
			t.Errorf("%s: ledger %s", n, got)
		}
		if got := columns(t, s.dsn[n]); got != before+",email_address" {
			t.Errorf("%s: columns %s", n, got)
		}
	}
	// Every bake was waited in full, checked at its start, every 5m and at
	// its end, plus once before the first wave.
	if clock.total() != 70*time.Minute {
		t.Errorf("baked %s, want 70m", clock.total())
	}
	if want := 1 + (1 + 2) + (1 + 6) + (1 + 6); checks != want {
		t.Errorf("%d alarm checks, want %d", checks, want)
	}
	for _, line := range []string{
		"wave 1/3 one-box: 1 target(s), max_parallel 1, max_failures 0",
		"  eu1-canary: applying expand",
		"wave eu: 2 applied",
		"wave us: baking 30m, checking the alarm every 5m",
		"wave us: baked 30m, alarm checked 7 time(s), not breached",
		"wave us: 3 applied",
		"phase expand done on 6 target(s)",
	} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("output lacks %q:\n%s", line, out.String())
		}
	}
	if !strings.Contains(detail.String(), "    us1-b | phase 1/4 expand") {
		t.Errorf("the targets' own lines are not prefixed with their names:\n%s", detail.String())
	}

	// Again: every target has expand done and is skipped; the bakes count
	// from when the targets finished, seconds ago, so nearly all is waited.
	clock2 := newClock()
	out2 := &syncBuffer{}
	opts = options(phases.Expand, clock2, out2, nil)
	rep, err = fleet.Apply(ctx, f, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := targetStates(rep); strings.Count(got, "=already done") != 6 {
		t.Errorf("rerun: %s", got)
	}
	if !strings.Contains(out2.String(), "of the 10m bake left") || clock2.total() >= 70*time.Minute || clock2.total() < 65*time.Minute {
		t.Errorf("rerun baked %s:\n%s", clock2.total(), out2.String())
	}
	if !strings.Contains(out2.String(), "no alarm check configured: bakes only wait") {
		t.Errorf("a rollout without alarm check does not say so:\n%s", out2.String())
	}

	// The next phase, all at once, bakes skipped.
	opts = options(phases.DualWrite, newClock(), &syncBuffer{}, nil)
	opts.NoBake, opts.MaxParallel = true, 6
	if rep, err = fleet.Apply(ctx, f, dir, opts); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if got := ledger(t, s.dsn[n], plan.Hash); got != "expand=done dual-write=done backfill=pending contract=pending" {
			t.Errorf("%s after dual-write: %s", n, got)
		}
	}
	if rep.Waves[0].Baked != "" || rep.Waves[1].MaxParallel != 6 {
		t.Errorf("--no-bake / --max-parallel not applied: %+v", rep.Waves[1])
	}
}

// injectIndexFailure makes CREATE INDEX fail on the database, as a shard
// with a broken extension or a full disk would: an event trigger, which
// leaves the customer table (and so the plan's drift check) alone.
func injectIndexFailure(t *testing.T, dsn string) {
	t.Helper()
	_, err := pgtest.Conn(t, dsn).Exec(context.Background(), `CREATE SCHEMA chaos;
		CREATE FUNCTION chaos.no_index() RETURNS event_trigger LANGUAGE plpgsql AS $$
		BEGIN
		  -- Only the plan's index: CREATE TABLE ... PRIMARY KEY (the
		  -- ledger's) fires CREATE INDEX too.
		  IF current_query() LIKE '%customer_country_idx%' THEN
		    RAISE EXCEPTION 'injected failure: this shard refuses CREATE INDEX';
		  END IF;
		END $$;
		CREATE EVENT TRIGGER chaos_no_index ON ddl_command_start WHEN TAG IN ('CREATE INDEX') EXECUTE FUNCTION chaos.no_index();`)
	if err != nil {
		t.Fatal(err)
	}
}

// TestFailureInWave2StopsRollout: a target of wave 2 fails halfway through
// expand with max_failures 0. Wave 1 stays done, the failed target is rolled
// back to its earlier columns, the target before it in wave 2 stays applied,
// the one after it is not started, wave 3 is untouched; fleet status agrees
// with the ledgers. Once the failure is fixed a rerun finishes the rollout.
func TestFailureInWave2StopsRollout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	names := []string{"a", "b", "c", "d", "e", "f"}
	s := newShards(t, names...)
	before := columns(t, s.dsn["a"])
	dir, plan := planDir(t, s.dsn["a"], renameAndIndex)
	injectIndexFailure(t, s.dsn["c"])
	// ghost is in wave 3, which the rollout never reaches: only fleet
	// status tries it, and shows it unreachable.
	s.env[envName("ghost")] = "postgres://postgres@127.0.0.1:1/nowhere?sslmode=disable&connect_timeout=2"
	f := s.loadFleet(t,
		wave{name: "one-box", bake: "10m", targets: []string{"a"}},
		wave{name: "eu", maxParallel: 1, bake: "30m", targets: []string{"b", "c", "d"}},
		wave{name: "us", maxParallel: 2, targets: []string{"e", "f", "ghost"}},
	)
	var out, detail syncBuffer
	rep, err := fleet.Apply(ctx, f, dir, options(phases.Expand, newClock(), &out, &detail))
	var wf *fleet.WaveFailedError
	if !errors.As(err, &wf) {
		t.Fatalf("want *WaveFailedError, got %v\n%s", err, out.String())
	}
	if wf.Wave != "eu" || len(wf.Failed) != 1 || !strings.Contains(err.Error(), "c: phase expand of plan") || !strings.Contains(err.Error(), "injected failure") {
		t.Errorf("error does not name the wave, the target and its error: %v", err)
	}
	if got, want := targetStates(rep), "a=applied b=applied c=failed/rolled back d=not started e=untouched f=untouched ghost=untouched"; got != want {
		t.Errorf("report\n got %s\nwant %s\n%s", got, want, out.String())
	}
	if rep.Outcome != fleet.OutcomeOverBudget || rep.StoppedAt != "eu" || rep.Waves[1].State != fleet.WaveOverBudget || rep.Waves[2].State != fleet.WaveUntouched {
		t.Errorf("outcome %s at %s; waves %s, %s", rep.Outcome, rep.StoppedAt, rep.Waves[1].State, rep.Waves[2].State)
	}
	// c got through the ADD COLUMN step before CREATE INDEX failed, and
	// that step was undone.
	if c := rep.Waves[1].Targets[1]; c.UndoneSteps != 1 || !strings.Contains(out.String(), "  c: rolling back expand (1 of its 2 step(s) done)") || !strings.Contains(out.String(), "  c: expand rolled back, 1 step(s) undone") {
		t.Errorf("c: %d step(s) undone\n%s", c.UndoneSteps, out.String())
	}
	for _, line := range []string{"    c |   000001_expand_customer: done", "    c |   000001_expand_customer: rolled back"} {
		if !strings.Contains(detail.String(), line) {
			t.Errorf("detail lacks %q:\n%s", line, detail.String())
		}
	}
	applied := "expand=done dual-write=pending backfill=pending contract=pending"
	for _, c := range []struct{ target, ledger, columns string }{
		{"a", applied, before + ",email_address"},
		{"b", applied, before + ",email_address"},
		{"c", "expand=rolled back dual-write=pending backfill=pending contract=pending", before},
		{"d", "no ledger", before},
		{"e", "no ledger", before},
		{"f", "no ledger", before},
	} {
		if got := ledger(t, s.dsn[c.target], plan.Hash); got != c.ledger {
			t.Errorf("%s: ledger %s, want %s", c.target, got, c.ledger)
		}
		if got := columns(t, s.dsn[c.target]); got != c.columns {
			t.Errorf("%s: columns %s, want %s", c.target, got, c.columns)
		}
	}

	// fleet status reads the same from the ledgers.
	st, err := fleet.Status(ctx, f, dir, fleet.StatusOptions{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, ts := range st.Targets {
		if !ts.Reachable {
			rows = append(rows, ts.Target+"=unreachable")
			continue
		}
		rows = append(rows, fmt.Sprintf("%s=%s/%v", ts.Target, ts.Phases[0].State, ts.Registered))
	}
	if got, want := strings.Join(rows, " "), "a=done/true b=done/true c=rolled back/true d=pending/false e=pending/false f=pending/false ghost=unreachable"; got != want {
		t.Errorf("status\n got %s\nwant %s", got, want)
	}
	var text bytes.Buffer
	st.WriteText(&text)
	for _, want := range []string{"WAVE     TARGET  EXPAND", "eu       c       rolled back  pending", "us       ghost   unreachable: cannot connect", "expand: 2 done, 1 rolled back, 3 pending", "1 target(s) unreachable"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("status text lacks %q:\n%s", want, text.String())
		}
	}

	// Fix c, drop the ghost, and run again: a and b are skipped, the rest done.
	if _, err := pgtest.Conn(t, s.dsn["c"]).Exec(ctx, "DROP EVENT TRIGGER chaos_no_index"); err != nil {
		t.Fatal(err)
	}
	f = s.loadFleet(t,
		wave{name: "one-box", bake: "10m", targets: []string{"a"}},
		wave{name: "eu", maxParallel: 1, bake: "30m", targets: []string{"b", "c", "d"}},
		wave{name: "us", maxParallel: 2, targets: []string{"e", "f"}},
	)
	rep, err = fleet.Apply(ctx, f, dir, options(phases.Expand, newClock(), &syncBuffer{}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := targetStates(rep), "a=already done b=already done c=applied d=applied e=applied f=applied"; got != want {
		t.Errorf("rerun\n got %s\nwant %s", got, want)
	}
	for _, n := range []string{"c", "d", "e", "f"} {
		if got := ledger(t, s.dsn[n], plan.Hash); got != applied {
			t.Errorf("%s after the rerun: %s", n, got)
		}
	}
}

// TestFailureWithinBudget: with max_failures 1 a failed target does not stop
// the rollout. This one is refused before changing anything (its schema
// drifted), so there is nothing to roll back either way.
func TestFailureWithinBudget(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newShards(t, "a", "b", "c", "d")
	dir, plan := planDir(t, s.dsn["a"], rename)
	// c already has a column by the new name: drift, refused.
	if _, err := pgtest.Conn(t, s.dsn["c"]).Exec(ctx, "ALTER TABLE customer ADD COLUMN email_address text"); err != nil {
		t.Fatal(err)
	}
	f := s.loadFleet(t,
		wave{name: "one", targets: []string{"a"}},
		wave{name: "two", maxParallel: 2, failures: 1, targets: []string{"b", "c"}},
		wave{name: "three", targets: []string{"d"}},
	)
	var out syncBuffer
	rep, err := fleet.Apply(ctx, f, dir, options(phases.Expand, newClock(), &out, nil))
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if got, want := targetStates(rep), "a=applied b=applied c=failed d=applied"; got != want {
		t.Errorf("got %s, want %s\n%s", got, want, out.String())
	}
	if e := rep.Waves[1].Targets[1].Error; !strings.Contains(e, "drift") {
		t.Errorf("c's error: %s", e)
	}
	if got := ledger(t, s.dsn["c"], plan.Hash); got != "no ledger" {
		t.Errorf("c: %s", got)
	}
	if got := ledger(t, s.dsn["d"], plan.Hash); !strings.HasPrefix(got, "expand=done") {
		t.Errorf("d: %s", got)
	}

	// Over budget (max_failures 0) a refused target is reported, not rolled back.
	s.env[envName("e")] = pgtest.NewDB(t, "chinook")
	f = s.loadFleet(t, wave{name: "two", maxParallel: 2, targets: []string{"c", "e"}})
	rep, err = fleet.Apply(ctx, f, dir, options(phases.Expand, newClock(), &out, nil))
	var wf *fleet.WaveFailedError
	if !errors.As(err, &wf) {
		t.Fatalf("want *WaveFailedError, got %v", err)
	}
	if got, want := targetStates(rep), "c=failed/nothing to roll back e=applied"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}

	// An unreachable target fails, with nothing started on it.
	s.env[envName("ghost")] = "postgres://postgres@127.0.0.1:1/nowhere?sslmode=disable&connect_timeout=2"
	f = s.loadFleet(t, wave{name: "far", targets: []string{"ghost"}})
	rep, err = fleet.Apply(ctx, f, dir, options(phases.Expand, newClock(), &out, nil))
	if !errors.As(err, &wf) || !strings.Contains(err.Error(), "ghost: cannot connect") {
		t.Fatalf("want *WaveFailedError naming ghost, got %v", err)
	}
	if got, want := targetStates(rep), "ghost=failed/nothing to roll back"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// TestAlarmStopsRollout: an alarm check that fails stops the rollout before
// anything changes; one that breaches during wave 1's bake stops it there,
// with the evidence, and later waves are untouched.
func TestAlarmStopsRollout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newShards(t, "a", "b", "c")
	dir, plan := planDir(t, s.dsn["a"], rename)
	f := s.loadFleet(t,
		wave{name: "one-box", bake: "10m", targets: []string{"a"}},
		wave{name: "eu", bake: "30m", targets: []string{"b"}},
		wave{name: "us", targets: []string{"c"}},
	)

	opts := options(phases.Expand, newClock(), &syncBuffer{}, nil)
	opts.Alarm = func(context.Context) (bool, string, error) {
		return false, "", errors.New("prometheus at 127.0.0.1:9090: connection refused")
	}
	rep, err := fleet.Apply(ctx, f, dir, opts)
	var ae *fleet.AlarmError
	if !errors.As(err, &ae) || ae.Wave != "" || !strings.Contains(err.Error(), "before the first wave") || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("want an AlarmError before the first wave, got %v", err)
	}
	if got := targetStates(rep); got != "a=untouched b=untouched c=untouched" {
		t.Errorf("after a failed check: %s", got)
	}

	// The third check (the first after 1m of one-box's bake) breaches.
	var checks int
	evidence := "api-5xx: 3 of 5 datapoints > 5 (7.2, 9.1, 6.3) over 5m"
	clock := newClock()
	var out syncBuffer
	opts = options(phases.Expand, clock, &out, nil)
	opts.AlarmInterval = time.Minute
	opts.Alarm = func(context.Context) (bool, string, error) {
		checks++
		return checks == 3, evidence, nil
	}
	rep, err = fleet.Apply(ctx, f, dir, opts)
	if !errors.As(err, &ae) || ae.Wave != "one-box" || ae.Evidence != evidence || !strings.Contains(err.Error(), "alarm breached after wave one-box") {
		t.Fatalf("want an AlarmError after one-box, got %v\n%s", err, out.String())
	}
	if rep.Outcome != fleet.OutcomeAlarm || rep.Evidence != evidence || rep.Waves[0].State != fleet.WaveAlarm || rep.Waves[0].Baked != "1m" || rep.Waves[0].AlarmChecks != 2 {
		t.Errorf("report: outcome %s, evidence %q, wave %+v", rep.Outcome, rep.Evidence, rep.Waves[0])
	}
	if got := targetStates(rep); got != "a=applied b=untouched c=untouched" {
		t.Errorf("after the breach: %s", got)
	}
	if !strings.Contains(out.String(), "wave one-box: ALARM: "+evidence) || !strings.Contains(out.String(), "untouched: eu (1 target(s)), us (1 target(s))") {
		t.Errorf("output:\n%s", out.String())
	}
	if ledger(t, s.dsn["a"], plan.Hash) != "expand=done dual-write=pending backfill=pending contract=pending" || ledger(t, s.dsn["b"], plan.Hash) != "no ledger" || ledger(t, s.dsn["c"], plan.Hash) != "no ledger" {
		t.Error("ledgers do not match the report")
	}
}

// TestResumeAfterCancel stops a rollout between two targets of wave 2 and
// again during a bake, and checks that each rerun skips the targets done,
// waits only the rest of a bake begun before, and finishes.
func TestResumeAfterCancel(t *testing.T) {
	t.Parallel()
	s := newShards(t, "a", "b", "c", "d")
	dir, plan := planDir(t, s.dsn["a"], rename)
	f := s.loadFleet(t,
		wave{name: "one-box", bake: "10m", targets: []string{"a"}},
		wave{name: "eu", maxParallel: 1, bake: "30m", targets: []string{"b", "c"}},
		wave{name: "us", targets: []string{"d"}},
	)

	// Cancelled as b finishes: c is never started.
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{onLine: func(l string) {
		if strings.HasPrefix(l, "  b: expand done in") {
			cancel()
		}
	}}
	rep, err := fleet.Apply(ctx, f, dir, options(phases.Expand, newClock(), out, nil))
	if !errors.Is(err, context.Canceled) || rep.Outcome != fleet.OutcomeInterrupted || rep.StoppedAt != "eu" {
		t.Fatalf("want an interrupted rollout, got %v (%s)\n%s", err, rep.Outcome, out.String())
	}
	if got := targetStates(rep); got != "a=applied b=applied c=untouched d=untouched" {
		t.Errorf("interrupted: %s", got)
	}
	if ledger(t, s.dsn["c"], plan.Hash) != "no ledger" {
		t.Error("c was started")
	}

	// Rerun, cancelled during eu's bake.
	ctx, cancel = context.WithCancel(context.Background())
	clock := newClock()
	clock.onSleep = func(d time.Duration) {
		if d == 30*time.Minute {
			cancel()
		}
	}
	out = &syncBuffer{}
	rep, err = fleet.Apply(ctx, f, dir, options(phases.Expand, clock, out, nil))
	if !errors.Is(err, context.Canceled) || rep.Waves[1].State != fleet.WaveInterrupted {
		t.Fatalf("want a rollout interrupted in eu's bake, got %v\n%s", err, out.String())
	}
	if got := targetStates(rep); got != "a=already done b=already done c=applied d=untouched" {
		t.Errorf("second run: %s", got)
	}
	if !strings.Contains(out.String(), "wave one-box: its targets finished") {
		t.Errorf("one-box's bake did not resume from when a finished:\n%s", out.String())
	}

	// Rerun to the end: eu's bake resumes from when c finished.
	clock = newClock()
	out = &syncBuffer{}
	rep, err = fleet.Apply(context.Background(), f, dir, options(phases.Expand, clock, out, nil))
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if got := targetStates(rep); got != "a=already done b=already done c=already done d=applied" {
		t.Errorf("third run: %s", got)
	}
	if !strings.Contains(out.String(), "of the 30m bake left") || clock.total() >= 40*time.Minute {
		t.Errorf("bakes not resumed (%s waited):\n%s", clock.total(), out.String())
	}
	for _, n := range []string{"a", "b", "c", "d"} {
		if got := ledger(t, s.dsn[n], plan.Hash); !strings.HasPrefix(got, "expand=done") {
			t.Errorf("%s: %s", n, got)
		}
	}
}

// TestPlanRefused: a plan without the phase asked for is refused before any
// target is touched.
func TestPlanRefused(t *testing.T) {
	t.Parallel()
	s := newShards(t, "a")
	dir, _ := planDir(t, s.dsn["a"], "ALTER TABLE customer DROP COLUMN fax;")
	f := s.loadFleet(t, wave{name: "one", targets: []string{"a"}})
	_, err := fleet.Apply(context.Background(), f, dir, options(phases.Backfill, newClock(), &syncBuffer{}, nil))
	var refused *migrations.RefusedError
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "has no backfill phase") {
		t.Fatalf("want RefusedError, got %v", err)
	}
	if got := ledger(t, s.dsn["a"], ""); got != "no ledger" {
		t.Errorf("a: %s", got)
	}
}
