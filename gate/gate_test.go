package gate_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/gate"
	"github.com/phasekit/phasekit/gate/promtest"
	"github.com/phasekit/phasekit/internal/testkit"
	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/pipeline"
	"github.com/phasekit/phasekit/verify"
	"github.com/phasekit/phasekit/verify/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// fastPipeline is the example pipeline shrunk to seconds: two prod waves
// baking 10s each, one alarm on a gauge the test sets, 3 of 5 datapoints of
// 1s. Without alarms when alarms is false.
func fastPipeline(t *testing.T, alarms bool) *pipeline.Pipeline {
	t.Helper()
	src := `app: checkout
old: v41
new: v42
stages:
  - {name: beta, kind: beta, bake: 10s}
  - name: prod
    kind: prod
    bake: 10s
    waves:
      - {name: one-box, targets: [use1-onebox]}
      - {name: us-east-1, targets: [use1-az1, use1-az2]}
`
	if alarms {
		src += `alarms:
  - name: error-rate
    query: 'max(checkout_error_rate)'
    comparison: ">"
    threshold: 5
    datapoints_to_alarm: 3
    evaluation_periods: 5
    period: 1s
`
	}
	file := filepath.Join(t.TempDir(), "pipeline.yaml")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	pl, err := pipeline.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	return pl
}

// planRename plans the Chinook rename against dsn and writes it into a dir.
func planRename(t *testing.T, dsn string) (string, *phases.Plan) {
	t.Helper()
	m, err := change.ReadSQLFile("../testdata/demo/rename_email.sql")
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

func applyUntil(t *testing.T, dsn, dir string, k phases.Kind) *migrations.PlanStatus {
	t.Helper()
	st, err := migrations.Apply(context.Background(), dsn, dir, migrations.ApplyOptions{
		Until: k, Runner: migrations.Runner{Host: "testhost", OSUser: "tester", PID: 4242, Version: "test"},
		DDL: migrations.DDLOptions{LockTimeout: 50 * time.Millisecond, MaxAttempts: 20, BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// deployAll records v42 on beta and both prod waves, one-box at at and
// us-east-1 20s later.
func deployAll(t *testing.T, conn *pgx.Conn, at time.Time) {
	t.Helper()
	for _, d := range []migrations.Deploy{
		{Stage: "beta", Version: "v42", At: at.Add(-time.Minute)},
		{Stage: "prod", Wave: "one-box", Version: "v42", At: at},
		{Stage: "prod", Wave: "us-east-1", Version: "v42", At: at.Add(20 * time.Second)},
	} {
		d.App, d.RecordedBy = "checkout", "test"
		if _, err := migrations.RecordDeploy(context.Background(), conn, d); err != nil {
			t.Fatal(err)
		}
	}
}

// connectAs opens a session with the given application_name.
func connectAs(t *testing.T, dsn, name string) (*pgx.Conn, int) {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["application_name"] = name
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	var pid int
	if err := conn.QueryRow(context.Background(), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	return conn, pid
}

// closeAndWait closes conn and waits until its backend pid has left
// pg_stat_activity: the server ends a backend a moment after its client
// disconnects, and a gate checked in between still sees the session.
func closeAndWait(t *testing.T, dsn string, conn *pgx.Conn, pid int) {
	t.Helper()
	conn.Close(context.Background())
	admin, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := admin.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("backend %d still in pg_stat_activity 10s after its client closed", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func check(t *testing.T, r *gate.Result, name string) *gate.Check {
	t.Helper()
	c := r.Check(name)
	if c == nil {
		t.Fatalf("no %s check in %+v", name, r)
	}
	return c
}

func text(r *gate.Result) string {
	var b strings.Builder
	gate.WriteText(&b, r)
	return b.String()
}

// TestContractGate walks one database and one Prometheus through the gate's
// verdicts: not yet while the last wave bakes, open once injected time
// passes, closed by an N session, by an unverified backfill, and by an alarm
// that breached 3 of 5 datapoints.
func TestContractGate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	prom := promtest.Start(t)
	prom.Set("checkout_error_rate", 0)
	dsn := pgtest.NewDB(t, "chinook")
	conn := pgtest.Conn(t, dsn)
	dir, p := planRename(t, dsn)
	pl := fastPipeline(t, true)
	src, err := gate.NewPrometheus(prom.URL)
	if err != nil {
		t.Fatal(err)
	}
	evaluate := func(now time.Time) *gate.Result {
		t.Helper()
		r, err := gate.Contract(ctx, conn, gate.Options{Plan: p, Pipeline: pl, Alarms: src, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	prom.WaitFor(t, "max(checkout_error_rate)", func(float64) bool { return true }, time.Minute)

	// Before any phase ran: the backfill is not verified, nothing deployed.
	r := evaluate(time.Time{})
	if r.Verdict != gate.Closed || check(t, r, gate.CheckBackfill).Status != gate.Fail || check(t, r, gate.CheckBake).Status != gate.Wait {
		t.Fatalf("before apply:\n%s", text(r))
	}
	if ev := strings.Join(check(t, r, gate.CheckBackfill).Evidence, "\n"); !strings.Contains(ev, "the plan has not run on this database") {
		t.Errorf("backfill evidence: %s", ev)
	}

	applyUntil(t, dsn, dir, phases.Backfill)
	// Deployed in the past, so that the injected times below are too.
	t0 := time.Now().Add(-40 * time.Second)
	deployAll(t, conn, t0)

	// us-east-1 got v42 at t0+20s and bakes 10s: 5s left at t0+25s.
	r = evaluate(t0.Add(25 * time.Second))
	if r.Verdict != gate.NotYet || r.TimeLeft != "5s" {
		t.Fatalf("at t0+25s want not-yet with 5s left:\n%s", text(r))
	}
	bake := check(t, r, gate.CheckBake)
	if len(bake.Waves) != 2 || bake.Waves[0].Status != gate.Pass || bake.Waves[1].Left != "5s" {
		t.Errorf("waves %+v", bake.Waves)
	}
	// Time passes: open.
	r = evaluate(t0.Add(31 * time.Second))
	if r.Verdict != gate.Open {
		t.Fatalf("at t0+31s want open:\n%s", text(r))
	}
	for _, c := range r.Checks {
		if c.Status != gate.Pass || c.Summary == "" {
			t.Errorf("check %s: %s %q", c.Name, c.Status, c.Summary)
		}
	}
	alarms := check(t, r, gate.CheckAlarms).Alarms
	if len(alarms) != 1 || alarms[0].Breached {
		t.Errorf("alarms %+v", alarms)
	}
	if st := check(t, r, gate.CheckStatements); !strings.Contains(st.Summary, "pg_stat_statements is not installed") {
		t.Errorf("statements without the extension: %s", st.Summary)
	}
	if bf := check(t, r, gate.CheckBackfill).Backfills; len(bf) != 1 || bf[0].Remaining == nil || *bf[0].Remaining != 0 || bf[0].VerifiedAt == nil {
		t.Errorf("backfills %+v", bf)
	}
	now := t0.Add(31 * time.Second)

	// An N session closes it, named by pid and application_name; an N+1
	// session does not.
	_, _ = connectAs(t, dsn, "checkout/v42 pod-1")
	old, pid := connectAs(t, dsn, "checkout/v41")
	r = evaluate(now)
	c := check(t, r, gate.CheckClients)
	if r.Verdict != gate.Closed || c.Status != gate.Fail || len(c.Sessions) != 1 || c.Sessions[0].PID != pid || c.Sessions[0].ApplicationName != "checkout/v41" {
		t.Fatalf("with a v41 session:\n%s", text(r))
	}
	if !strings.Contains(c.Summary, fmt.Sprintf("pid %d", pid)) || !strings.Contains(text(r), `application_name "checkout/v41"`) {
		t.Errorf("the session is not named:\n%s", text(r))
	}
	if len(c.Versions) != 2 || c.Versions[0].Version != "v41" || c.Versions[1].Version != "v42" {
		t.Errorf("live versions %+v", c.Versions)
	}
	closeAndWait(t, dsn, old, pid)
	// Now at the real time: the alarm sees the gauge's datapoints, all 0.
	if r = evaluate(time.Time{}); r.Verdict != gate.Open {
		t.Fatalf("after the v41 session left:\n%s", text(r))
	}
	if a := check(t, r, gate.CheckAlarms).Alarms[0]; a.Datapoints == 0 || a.Last == nil || *a.Last.Value != 0 {
		t.Errorf("alarm without datapoints: %+v", a)
	}

	// The backfill's verification must be recorded and 0.
	for _, tc := range []struct{ set, want string }{
		{"remaining = 2", "2 row(s) differ"},
		{"remaining = NULL, verified_at = NULL", "not verified"},
	} {
		if _, err := conn.Exec(ctx, "UPDATE phasekit.backfills SET "+tc.set); err != nil {
			t.Fatal(err)
		}
		r = evaluate(now)
		if c := check(t, r, gate.CheckBackfill); r.Verdict != gate.Closed || !strings.Contains(c.Summary, tc.want) {
			t.Errorf("backfill %s: want closed with %q:\n%s", tc.set, tc.want, text(r))
		}
	}
	if _, err := conn.Exec(ctx, "UPDATE phasekit.backfills SET remaining = 0, verified_at = now()"); err != nil {
		t.Fatal(err)
	}

	// The alarm breaches: 3 datapoints above 5 within 5.
	prom.Set("checkout_error_rate", 12)
	// 4 in Prometheus's own 1s grid: the gate's grid starts at the deploy,
	// off by a fraction of a second, and may see one less.
	prom.WaitFor(t, "count_over_time((max(checkout_error_rate) > 5)[5s:1s])", func(v float64) bool { return v >= 4 }, time.Minute)
	r = evaluate(time.Time{})
	c = check(t, r, gate.CheckAlarms)
	if r.Verdict != gate.Closed || c.Status != gate.Fail || len(c.Alarms) != 1 || !c.Alarms[0].Breached {
		t.Fatalf("after the breach:\n%s", text(r))
	}
	a := c.Alarms[0]
	breaching := 0
	for _, d := range a.Window {
		if d.Breaching {
			breaching++
			if d.Value == nil || *d.Value != 12 {
				t.Errorf("breaching datapoint %+v", d)
			}
		}
	}
	if len(a.Window) != 5 || breaching != 3 || !strings.Contains(text(r), "alarm error-rate BREACHED") || !strings.Contains(text(r), "12!") {
		t.Errorf("evidence of the breach:\n%s\n%+v", text(r), a.Window)
	}
	// The JSON carries the same evidence.
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back gate.Result
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Verdict != gate.Closed || len(back.Check(gate.CheckAlarms).Alarms[0].Window) != 5 {
		t.Errorf("JSON round trip: %s", b)
	}
}

// TestContractGateStatements: with pg_stat_statements loaded, a statement
// that still reads the old column closes the gate and is shown with its
// queryid; statements on the new column do not.
func TestContractGateStatements(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/usr/share/postgresql/15/extension/pg_stat_statements.control"); err != nil {
		testkit.SkipOrFail(t, "pg_stat_statements is not installed (postgresql-contrib): %v", err)
	}
	ctx := context.Background()
	dump := pgtest.DatasetFile(t, "chinook/chinook.dump")
	l, err := verify.StartLocal(ctx, verify.LocalOptions{Settings: map[string]string{"shared_preload_libraries": "pg_stat_statements"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Stop() })
	if err := l.CreateDatabase(ctx, "chinook", ""); err != nil {
		t.Fatal(err)
	}
	dsn := l.DSN("chinook")
	if err := verify.RestoreDump(ctx, dsn, dump); err != nil {
		t.Fatal(err)
	}
	conn := pgtest.Conn(t, dsn)
	if _, err := conn.Exec(ctx, "CREATE EXTENSION pg_stat_statements"); err != nil {
		t.Fatal(err)
	}
	dir, p := planRename(t, dsn)
	pl := fastPipeline(t, false)
	applyUntil(t, dsn, dir, phases.Backfill)
	deployAll(t, conn, time.Now().Add(-time.Hour))
	// A redeploy now, after the statistics were last reset (at the start).
	if _, err := migrations.RecordDeploy(ctx, conn, migrations.Deploy{App: "checkout", Stage: "prod", Wave: "us-east-1", Version: "v42", At: time.Now(), RecordedBy: "test"}); err != nil {
		t.Fatal(err)
	}
	evaluate := func() *gate.Result {
		t.Helper()
		r, err := gate.Contract(ctx, conn, gate.Options{Plan: p, Pipeline: pl})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	// The backfill's own UPDATE names email: statistics from before the
	// last deploy count until they are reset, and the gate says so.
	r := evaluate()
	c := check(t, r, gate.CheckStatements)
	if r.Verdict != gate.Closed || !strings.Contains(strings.Join(c.Evidence, "\n"), "before the last prod deploy") {
		t.Fatalf("before the reset:\n%s", text(r))
	}

	if _, err := conn.Exec(ctx, "SELECT pg_stat_statements_reset()"); err != nil {
		t.Fatal(err)
	}
	app, _ := connectAs(t, dsn, "checkout/v42")
	if _, err := app.Exec(ctx, "SELECT email_address FROM customer WHERE customer_id = $1", 7); err != nil {
		t.Fatal(err)
	}
	if r = evaluate(); r.Verdict != gate.Open {
		t.Fatalf("with only the new column used:\n%s", text(r))
	}
	if c := check(t, r, gate.CheckStatements); !strings.Contains(c.Summary, "no statement in pg_stat_statements uses public.customer.email") {
		t.Errorf("summary: %s", c.Summary)
	}

	// An instance that still reads email, though it calls itself v42.
	if _, err := app.Exec(ctx, "SELECT c.first_name, c.email FROM customer c WHERE c.customer_id = $1", 7); err != nil {
		t.Fatal(err)
	}
	r = evaluate()
	c = check(t, r, gate.CheckStatements)
	if r.Verdict != gate.Closed || c.Status != gate.Fail || len(c.Statements) != 1 {
		t.Fatalf("with a statement on the old column:\n%s", text(r))
	}
	s := c.Statements[0]
	if s.QueryID == 0 || s.Query != "SELECT c.first_name, c.email FROM customer c WHERE c.customer_id = $1" || s.Calls != 1 || s.Uses[0] != "public.customer.email" {
		t.Errorf("statement %+v", s)
	}
	if !strings.Contains(text(r), fmt.Sprintf("queryid %d", s.QueryID)) {
		t.Errorf("queryid not shown:\n%s", text(r))
	}
}

// TestWatchPhase: a clean bake ends the watch; an alarm that breaches during
// the bake of dual-write rolls dual-write back.
func TestWatchPhase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	prom := promtest.Start(t)
	prom.Set("checkout_error_rate", 0)
	dsn := pgtest.NewDB(t, "chinook")
	conn := pgtest.Conn(t, dsn)
	dir, _ := planRename(t, dsn)
	pl := fastPipeline(t, true)
	src, err := gate.NewPrometheus(prom.URL)
	if err != nil {
		t.Fatal(err)
	}
	prom.WaitFor(t, "max(checkout_error_rate)", func(float64) bool { return true }, time.Minute)
	applyUntil(t, dsn, dir, phases.DualWrite)
	var log strings.Builder
	opts := gate.PhaseWatchOptions{
		DSN: dsn, Dir: dir, Pipeline: pl,
		Watch:    gate.WatchOptions{Source: src, For: time.Second, Interval: 200 * time.Millisecond, Progress: &log},
		Rollback: migrations.RollbackOptions{Runner: migrations.Runner{Host: "testhost", OSUser: "tester", Version: "test"}},
	}

	// Refused: a phase that is not the last started, one that is not done.
	for _, k := range []phases.Kind{phases.Expand, phases.Backfill} {
		o := opts
		o.Phase = k
		if _, err := gate.WatchPhase(ctx, o); err == nil || !strings.Contains(err.Error(), "not done") && !strings.Contains(err.Error(), "watch the last phase started") {
			t.Errorf("watch %s: %v", k, err)
		}
	}

	// A clean bake of one second.
	r, err := gate.WatchPhase(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if r.Phase != phases.DualWrite || r.Breached || r.RolledBack || r.Polls == 0 || !strings.Contains(r.Message, "with no alarm breached") {
		t.Fatalf("clean watch: %+v\n%s", r, log.String())
	}

	// The alarm fires during a longer bake: dual-write is rolled back.
	prom.Set("checkout_error_rate", 9)
	opts.Watch.For = 2 * time.Minute
	start := time.Now()
	r, err = gate.WatchPhase(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Breached || !r.RolledBack || r.Status == nil || len(r.Breaches()) != 1 {
		t.Fatalf("breached watch: %+v\n%s", r, log.String())
	}
	if got := r.Status.Phases[1].State; got != migrations.StateRolledBack {
		t.Errorf("dual-write is %s", got)
	}
	if r.Status.Phases[0].State != migrations.StateDone {
		t.Errorf("expand is %s, want done", r.Status.Phases[0].State)
	}
	var triggers int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'customer'::regclass AND NOT tgisinternal").Scan(&triggers); err != nil || triggers != 0 {
		t.Errorf("dual-write trigger left: %d (%v)", triggers, err)
	}
	t.Logf("breach seen and rolled back %s after the watch started", time.Since(start).Round(time.Millisecond))

	// Between the waves of a rollout: the last window only.
	breached, evidence, err := gate.BreachedNow(ctx, src, pl.Alarms, time.Now())
	if err != nil || !breached || !strings.Contains(evidence, "alarm error-rate BREACHED") {
		t.Errorf("BreachedNow with the gauge at 9: %v %q %v", breached, evidence, err)
	}
	prom.Set("checkout_error_rate", 0)
	prom.WaitFor(t, "max_over_time(max(checkout_error_rate)[6s:1s])", func(v float64) bool { return v <= 5 }, time.Minute)
	if breached, evidence, err := gate.BreachedNow(ctx, src, pl.Alarms, time.Now()); err != nil || breached || evidence != "" {
		t.Errorf("BreachedNow once the gauge is back to 0: %v %q %v", breached, evidence, err)
	}
}
