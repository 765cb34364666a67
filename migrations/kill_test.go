package migrations_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/verify"
	"github.com/phasekit/phasekit/verify/pgtest"
)

const (
	// killRows makes the backfill of the reference run take a second or two
	// with --batch-target 5ms, so that random kills land in many batches.
	killRows   = 60_000
	killTrials = 24
	killSeed   = 20250101
	// killChange has DDL steps of both kinds (rename, retype), one backfill
	// filling both new columns, and a validate phase. (The rename comes
	// first: planned as two backfills, that order once failed, the first
	// backfill leaving the retype's shadow NULL under its NOT VALID check.)
	killChange = "ALTER TABLE acct RENAME COLUMN email TO email_address; ALTER TABLE acct ALTER COLUMN balance TYPE bigint;"
)

// TestKillNineAndResume kills the phasekit binary with SIGKILL at seeded
// random points of apply --until contract (during DDL, during the backfill),
// runs apply again, and checks each time that the run finishes and leaves the
// same rows and schema as a run that was never interrupted.
func TestKillNineAndResume(t *testing.T) {
	if testing.Short() {
		t.Skip("builds phasekit and runs it more than 40 times")
	}
	ctx := context.Background()
	bin := killBuildPhasekit(t)
	l := pgtest.Cluster(t)
	tpl := killTemplate(t, l)

	refDSN := killCopy(t, l, tpl, "t_kill_ref")
	dir, plan := planDir(t, refDSN, killChange)

	// The reference: one uninterrupted run, and when each phase ran in it.
	start := time.Now()
	if code, out := killApply(ctx, bin, refDSN, dir); code != 0 {
		t.Fatalf("reference apply: exit %d\n%s", code, out)
	}
	refTook := time.Since(start)
	want := killSnapshot(t, refDSN)
	if !strings.Contains(want.states, "contract=done") || !strings.Contains(want.schema, "email_address text NOT NULL") || !strings.Contains(want.schema, "balance bigint NOT NULL") {
		t.Fatalf("the reference run did not finish the change:\n%s\n%s", want.states, want.schema)
	}
	// Every row as the change makes it, so that the trials are compared
	// with a right answer.
	var wrong int64
	if err := pgtest.Conn(t, refDSN).QueryRow(ctx, `SELECT count(*) FROM acct
		WHERE email_address <> 'user' || id || '@example.com' OR balance <> (id * 7919) % 1000003 - 500000 OR last_update <> '2020-01-01'`).Scan(&wrong); err != nil {
		t.Fatal(err)
	}
	if wrong != 0 || want.rows != killRows {
		t.Fatalf("the reference run left %d rows, %d of them not as generated", want.rows, wrong)
	}
	phaseTook := killPhaseDurations(t, refDSN, plan.Hash)
	t.Logf("reference run: %s; phases: %v", refTook.Round(time.Millisecond), phaseTook)

	rng := rand.New(rand.NewPCG(killSeed, killSeed))
	var ddlKinds []phases.Kind
	for _, ph := range plan.Phases {
		if ph.Kind != phases.Backfill {
			ddlKinds = append(ddlKinds, ph.Kind)
		}
	}
	landed := map[string]int{}
	lockHeld := 0
	for i := range killTrials {
		// A third of the kills come at a uniform time since the process
		// started. A third wait for a DDL phase to be marked running in the
		// ledger, then for a random part of that phase's reference duration:
		// DDL phases last milliseconds and a uniform time would rarely hit
		// them. A third wait until the backfills have walked a random number
		// of rows, so that they land inside a backfill however fast it runs.
		var tr killTrigger
		switch i % 3 {
		case 0:
			tr.after = randDuration(rng, refTook)
		case 1:
			tr.phase = ddlKinds[rng.IntN(len(ddlKinds))]
			tr.after = randDuration(rng, phaseTook[tr.phase])
		case 2:
			tr.walked = 1 + rng.Int64N(killRows*int64(len(plan.Phase(phases.Backfill).Backfills))-1)
		}
		t0 := time.Now()
		name := fmt.Sprintf("t_kill_trial_%d", i)
		dsn := killCopy(t, l, tpl, name)
		where, err := killOnce(ctx, bin, dsn, dir, plan.Hash, tr)
		if err != nil {
			t.Fatalf("trial %d (%s): %v", i, tr, err)
		}
		landed[where.class]++

		// Apply again, as an operator would. The killed process's sessions
		// end when their backends notice; until then the plan's advisory
		// lock may still be held (exit 4), and the rerun is retried.
		var code int
		var out string
		for attempt := 0; ; attempt++ {
			code, out = killApply(ctx, bin, dsn, dir)
			if code != 4 || attempt == 20 {
				break
			}
			lockHeld++
			time.Sleep(100 * time.Millisecond)
		}
		if code != 0 {
			t.Fatalf("trial %d (%s, killed %s): apply after the kill: exit %d\n%s", i, tr, where, code, out)
		}
		got := killSnapshot(t, dsn)
		if got.states != want.states {
			t.Errorf("trial %d (%s, killed %s): ledger after the rerun: %s, want %s", i, tr, where, got.states, want.states)
		}
		if got.rows != want.rows || got.data != want.data {
			t.Errorf("trial %d (%s, killed %s): %d rows, checksum %s; the uninterrupted run has %d rows, checksum %s", i, tr, where, got.rows, got.data, want.rows, want.data)
		}
		if got.schema != want.schema {
			t.Errorf("trial %d (%s, killed %s): schema differs from the uninterrupted run's:\n%s", i, tr, where, diff(want.schema, got.schema))
		}
		t.Logf("trial %d: %s: killed %s; trial took %s", i, tr, where, time.Since(t0).Round(time.Millisecond))
		if err := l.DropDatabase(ctx, name); err != nil {
			t.Error(err)
		}
	}

	var classes []string
	for c, n := range landed {
		classes = append(classes, fmt.Sprintf("%s: %d", c, n))
	}
	sort.Strings(classes)
	t.Logf("%d trials; killed during: %s; reruns refused with exit 4 (lock still held): %d", killTrials, strings.Join(classes, ", "), lockHeld)
	// The trials prove something only if kills hit both kinds of work.
	ddl := 0
	for _, k := range ddlKinds {
		ddl += landed[string(k)]
	}
	if ddl == 0 || landed["backfill (mid-way)"] == 0 {
		t.Errorf("kills did not land both during DDL (%d) and in the middle of a backfill (%d): %s", ddl, landed["backfill (mid-way)"], strings.Join(classes, ", "))
	}
}

// killTrigger says when a trial kills phasekit: after a delay counted from
// the process start or from the moment phase is marked running, or once the
// backfills have walked that many rows (all backfills together).
type killTrigger struct {
	phase  phases.Kind
	after  time.Duration
	walked int64
}

func (k killTrigger) String() string {
	switch {
	case k.walked > 0:
		return fmt.Sprintf("kill once the backfills walked %d rows", k.walked)
	case k.phase != "":
		return fmt.Sprintf("kill %s into %s", k.after.Round(time.Millisecond), k.phase)
	}
	return fmt.Sprintf("kill %s after start", k.after.Round(time.Millisecond))
}

func randDuration(rng *rand.Rand, upTo time.Duration) time.Duration {
	if upTo <= 0 {
		return 0
	}
	return time.Duration(rng.Int64N(int64(upTo)))
}

// killLanding is where a kill landed, read from the ledger after the process died.
type killLanding struct {
	class  string // a phase kind, "backfill (mid-way)", "not started", "between phases", "finished"
	detail string
}

func (k killLanding) String() string {
	if k.detail == "" {
		return k.class
	}
	return k.class + " (" + k.detail + ")"
}

// killOnce runs apply --until contract on dsn and kills it with SIGKILL as
// tr says, then reads from the ledger where the kill landed.
func killOnce(ctx context.Context, bin, dsn, dir, hash string, tr killTrigger) (killLanding, error) {
	var out bytes.Buffer
	cmd := killCommand(ctx, bin, dsn, dir)
	cmd.Stdout, cmd.Stderr = &out, &out
	watch, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return killLanding{}, err
	}
	defer watch.Close(ctx)
	if err := cmd.Start(); err != nil {
		return killLanding{}, err
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()

	// Poll the ledger until the phase is marked running (or the run passed
	// it), or until the backfills walked enough rows.
	watchSQL, watchArg := `SELECT (state <> 'pending')::int FROM phasekit.phases WHERE hash = $1 AND kind = $2`, any(string(tr.phase))
	if tr.walked > 0 {
		watchSQL, watchArg = `SELECT (coalesce(sum(rows), 0) >= $2)::int FROM phasekit.backfills WHERE hash = $1`, any(tr.walked)
	}
	for seen := tr.phase == "" && tr.walked == 0; !seen; {
		var hit int
		err := watch.QueryRow(ctx, watchSQL, hash, watchArg).Scan(&hit)
		switch {
		case err == nil && hit == 1:
			seen = true
			continue
		case err != nil && !killNoLedgerYet(err):
			return killLanding{}, fmt.Errorf("watch the ledger: %w", err)
		}
		select {
		case <-exited:
			return killLanding{}, fmt.Errorf("phasekit ended before the trigger (%v):\n%s", waitErr, out.String())
		case <-time.After(time.Millisecond):
		}
	}
	select {
	case <-exited:
	case <-time.After(tr.after):
		_ = cmd.Process.Kill()
		<-exited
	}
	return killWhere(ctx, watch, hash)
}

// killNoLedgerYet tells the errors of a ledger read before phasekit created
// the ledger or registered the plan.
func killNoLedgerYet(err error) bool {
	return errors.Is(err, pgx.ErrNoRows) || strings.Contains(err.Error(), "SQLSTATE 42P01") || strings.Contains(err.Error(), "SQLSTATE 3F000")
}

func killWhere(ctx context.Context, conn *pgx.Conn, hash string) (killLanding, error) {
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('phasekit.phases') IS NOT NULL`).Scan(&exists); err != nil {
		return killLanding{}, err
	}
	if !exists {
		return killLanding{class: "not started", detail: "no ledger"}, nil
	}
	rows, err := conn.Query(ctx, `SELECT kind, state FROM phasekit.phases WHERE hash = $1 ORDER BY position`, hash)
	if err != nil {
		return killLanding{}, err
	}
	type phase struct{ kind, state string }
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (phase, error) {
		var p phase
		return p, r.Scan(&p.kind, &p.state)
	})
	if err != nil {
		return killLanding{}, err
	}
	done := 0
	for _, p := range list {
		switch p.state {
		case "running":
			if p.kind != string(phases.Backfill) {
				return killLanding{class: p.kind}, nil
			}
			var walked []int64
			if err := conn.QueryRow(ctx, `SELECT coalesce(array_agg(rows ORDER BY idx), '{}') FROM phasekit.backfills WHERE hash = $1`, hash).Scan(&walked); err != nil {
				return killLanding{}, err
			}
			detail := fmt.Sprintf("rows walked per backfill %v of %d", walked, killRows)
			for _, w := range walked {
				if w > 0 && w < killRows {
					return killLanding{class: "backfill (mid-way)", detail: detail}, nil
				}
			}
			return killLanding{class: "backfill", detail: detail}, nil
		case "done":
			done++
		case "pending":
		default:
			return killLanding{}, fmt.Errorf("phase %s is %s after a kill", p.kind, p.state)
		}
	}
	switch {
	case done == 0:
		return killLanding{class: "not started", detail: "plan registered"}, nil
	case done == len(list):
		return killLanding{class: "finished"}, nil
	}
	return killLanding{class: "between phases", detail: fmt.Sprintf("%d of %d done", done, len(list))}, nil
}

func killCommand(ctx context.Context, bin, dsn, dir string) *exec.Cmd {
	// Small batches, so that a backfill is many transactions to be killed in.
	return exec.CommandContext(ctx, bin, "--dsn", dsn, "apply", "--plan", dir, "--until", string(phases.Contract), "--batch-target", "5ms")
}

// killApply runs apply --until contract to its end and returns the exit code
// and output.
func killApply(ctx context.Context, bin, dsn, dir string) (int, string) {
	cmd := killCommand(ctx, bin, dsn, dir)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return -1, err.Error()
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

// killPhaseDurations reads from the ledger how long each phase took.
func killPhaseDurations(t *testing.T, dsn, hash string) map[phases.Kind]time.Duration {
	t.Helper()
	conn := pgtest.Conn(t, dsn)
	rows, err := conn.Query(context.Background(), `SELECT kind, extract(epoch FROM finished_at - started_at)::float8 FROM phasekit.phases WHERE hash = $1`, hash)
	if err != nil {
		t.Fatal(err)
	}
	out := map[phases.Kind]time.Duration{}
	for rows.Next() {
		var kind string
		var secs float64
		if err := rows.Scan(&kind, &secs); err != nil {
			t.Fatal(err)
		}
		out[phases.Kind(kind)] = time.Duration(secs * float64(time.Second))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// killState is what a finished run leaves: rows, schema and ledger.
type killState struct {
	rows   int64
	data   string // md5 of the rows as JSON, in key order
	schema string
	states string
}

func killSnapshot(t *testing.T, dsn string) killState {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var s killState
	// As JSON, so that the order of the columns does not count.
	if err := conn.QueryRow(ctx, `SELECT count(*), coalesce(md5(string_agg(to_jsonb(a)::text, E'\n' ORDER BY a.id)), '') FROM acct a`).Scan(&s.rows, &s.data); err != nil {
		t.Fatal(err)
	}
	if s.schema, err = verify.DumpSchema(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, `SELECT kind || '=' || state FROM phasekit.phases ORDER BY position`)
	if err != nil {
		t.Fatal(err)
	}
	states, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	s.states = strings.Join(states, " ")
	return s
}

// killBuildPhasekit builds the phasekit binary into a temporary directory.
func killBuildPhasekit(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build phasekit: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "phasekit")
	cmd := exec.Command(goBin, "build", "-o", bin, "github.com/phasekit/phasekit/cmd/phasekit")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build phasekit: %v\n%s", err, out)
	}
	return bin
}

// killTemplate creates a database holding the generated table acct, for
// trials to copy, and drops it when the test ends.
func killTemplate(t *testing.T, l *verify.Local) string {
	return acctTemplate(t, l, "t_kill_template", killRows)
}

// acctTemplate creates a database holding the generated table acct (rows
// rows, deterministic values), for tests to copy, and drops it when the test
// ends.
func acctTemplate(t *testing.T, l *verify.Local, name string, rows int) string {
	t.Helper()
	ctx := context.Background()
	if err := l.CreateDatabase(ctx, name, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.DropDatabase(context.Background(), name); err != nil {
			t.Error(err)
		}
	})
	conn, err := pgx.Connect(ctx, l.DSN(name))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, fmt.Sprintf(`
		CREATE TABLE acct (id bigint PRIMARY KEY, email text NOT NULL, balance int NOT NULL, last_update timestamptz NOT NULL DEFAULT '2020-01-01');
		INSERT INTO acct (id, email, balance) SELECT g, 'user' || g || '@example.com', (g * 7919) %% 1000003 - 500000 FROM generate_series(1::bigint, %d) g;`, rows)); err != nil {
		t.Fatal(err)
	}
	// Nothing left for autovacuum to do, so no worker sits in the template
	// when it is copied.
	if _, err := conn.Exec(ctx, `VACUUM (FREEZE, ANALYZE) acct`); err != nil {
		t.Fatal(err)
	}
	return name
}

// killCopy copies the template into a new database, dropped when the test ends.
func killCopy(t *testing.T, l *verify.Local, tpl, name string) string {
	t.Helper()
	if err := l.CreateDatabase(context.Background(), name, tpl); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.DropDatabase(context.Background(), name); err != nil {
			t.Error(err)
		}
	})
	return l.DSN(name)
}
