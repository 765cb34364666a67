package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/urfave/cli/v2"

	"github.com/phasekit/phasekit/gate"
	"github.com/phasekit/phasekit/gate/promtest"
	"github.com/phasekit/phasekit/internal/dbconn"
	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/verify/pgtest"
)

var (
	gateListed     bool
	gateListedOnce sync.Once
)

// pk runs phasekit with the gate, record and watch commands: through run()
// once app.go lists them, else through an app built like run()'s around
// them and the execution commands.
func pk(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	gateListedOnce.Do(func() {
		code, stdout, _ := phasekit(t, "gate", "--help")
		gateListed = code == 0 && strings.Contains(stdout, "contract")
	})
	if gateListed {
		return phasekit(t, args...)
	}
	var out, errb bytes.Buffer
	app := &cli.App{
		Name: "phasekit", Writer: &out, ErrWriter: &errb,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dsn", EnvVars: []string{"DATABASE_URL"}},
			&cli.StringFlag{Name: "format", Value: "text"},
			&cli.StringFlag{Name: "log-level", Value: "info"},
		},
		Before: func(c *cli.Context) error {
			slog.SetDefault(slog.New(slog.NewTextHandler(&errb, nil)))
			return nil
		},
		Commands:       []*cli.Command{planCommand(), applyCommand(), statusCommand(), rollbackCommand(), gateCommand(), recordCommand(), watchCommand()},
		ExitErrHandler: func(*cli.Context, error) {},
	}
	err := app.Run(append([]string{"phasekit"}, args...))
	var ec cli.ExitCoder
	switch {
	case err == nil:
		code = exitOK
	case errors.As(err, &ec):
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(&errb, "phasekit:", msg)
		}
		code = ec.ExitCode()
	default:
		fmt.Fprintln(&errb, "phasekit:", dbconn.Redact(err.Error()))
		code = exitFindings
		if isInputError(err) || strings.Contains(err.Error(), "Required flag") || strings.Contains(err.Error(), "flag provided but not defined") {
			code = exitBadInput
		}
	}
	return code, out.String(), errb.String()
}

// planLiveRename plans the demo rename against dsn and applies it up to
// phase.
func planLiveRename(t *testing.T, dsn, phase string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "plan")
	if code, _, stderr := pk(t, "--dsn", dsn, "plan", "--out", dir, "../../testdata/demo/rename_email.sql"); code != 0 {
		t.Fatalf("plan: exit %d\n%s", code, stderr)
	}
	if code, stdout, stderr := pk(t, "--dsn", dsn, "apply", "--plan", dir, "--until", phase); code != 0 {
		t.Fatalf("apply --until %s: exit %d\n%s%s", phase, code, stdout, stderr)
	}
	return dir
}

func sessionAs(t *testing.T, dsn, name string) *pgx.Conn {
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
	return conn
}

const shipped = "../../testdata/pipeline/pipeline.yaml"

// TestGateContractCommand: record deploy checks the stage and wave against
// the shipped pipeline; gate contract exits 3 while a wave bakes, 0 once the
// bakes passed, 1 with a v41 session; apply --phase contract is refused by
// the closed gate and runs with --force --reason, which status shows.
func TestGateContractCommand(t *testing.T) {
	t.Parallel()
	prom := promtest.Start(t)
	dsn := pgtest.NewDB(t, "chinook")
	dir := planLiveRename(t, dsn, "backfill")

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--stage", "production", "--version", "v42"}, "its stages are alpha, beta, gamma, zeta, prod"},
		{[]string{"--stage", "prod", "--version", "v42"}, "pass --wave, one of one-box, us-east-1, us-west-2"},
		{[]string{"--stage", "prod", "--wave", "eu-west-1", "--version", "v42"}, `wave "eu-west-1" is not a wave of stage prod`},
		{[]string{"--stage", "beta", "--wave", "one-box", "--version", "v42"}, "stage beta of " + shipped + " has no waves"},
		{[]string{"--stage", "beta", "--version", "checkout/v42"}, "without '/'"},
		{[]string{"--stage", "beta", "--version", "v42", "--at", "yesterday"}, "want an RFC 3339 time"},
	} {
		args := append([]string{"record", "deploy", "--dsn", dsn, "--pipeline", shipped}, tc.args...)
		if code, _, stderr := pk(t, args...); code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, want 2 with %q:\n%s", tc.args, code, tc.want, stderr)
		}
	}

	// v42 went through every stage; us-west-2 last, at t0.
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	for _, d := range []struct {
		stage, wave string
		at          time.Duration
	}{
		{"alpha", "", -10 * time.Hour}, {"beta", "", -9 * time.Hour}, {"gamma", "", -8 * time.Hour}, {"zeta", "", -7 * time.Hour},
		{"prod", "one-box", -5 * time.Hour}, {"prod", "us-east-1", -3 * time.Hour}, {"prod", "us-west-2", 0},
	} {
		args := []string{"--dsn", dsn, "--format", "json", "record", "deploy", "--pipeline", shipped, "--stage", d.stage, "--version", "v42", "--at", t0.Add(d.at).Format(time.RFC3339)}
		if d.wave != "" {
			args = append(args, "--wave", d.wave)
		}
		code, stdout, stderr := pk(t, args...)
		var rec struct {
			Deploy migrations.Deploy  `json:"deploy"`
			Live   []gate.LiveVersion `json:"live"`
		}
		if code != 0 || json.Unmarshal([]byte(stdout), &rec) != nil || rec.Deploy.Stage != d.stage || rec.Deploy.Wave != d.wave || !rec.Deploy.At.Equal(t0.Add(d.at)) {
			t.Fatalf("record %s/%s: exit %d\n%s%s", d.stage, d.wave, code, stdout, stderr)
		}
	}

	gateAt := func(now time.Time, extra ...string) (int, gate.Result, string) {
		t.Helper()
		args := append([]string{"gate", "contract", "--dsn", dsn, "--plan", dir, "--pipeline", shipped, "--prometheus", prom.URL, "--format", "json"}, extra...)
		if !now.IsZero() {
			args = append(args, "--now", now.Format(time.RFC3339))
		}
		code, stdout, stderr := pk(t, args...)
		var r gate.Result
		if err := json.Unmarshal([]byte(stdout), &r); err != nil {
			t.Fatalf("gate contract: exit %d, output is not JSON (%v):\n%s%s", code, err, stdout, stderr)
		}
		return code, r, stderr
	}
	// us-west-2 bakes 1h30m: 30m left an hour after its deploy.
	if code, r, stderr := gateAt(t0.Add(time.Hour)); code != 3 || r.Verdict != gate.NotYet || r.TimeLeft != "30m" || r.TimeLeftSeconds != 1800 {
		t.Fatalf("an hour in: exit %d, %+v\n%s", code, r, stderr)
	}
	if code, r, _ := gateAt(t0.Add(90 * time.Minute)); code != 0 || r.Verdict != gate.Open || len(r.Checks) != 5 {
		t.Fatalf("1h30m in: exit %d, %+v", code, r)
	}
	// The same in text.
	code, stdout, _ := pk(t, "gate", "contract", "--dsn", dsn, "--plan", dir, "--pipeline", shipped, "--prometheus", prom.URL, "--now", t0.Add(time.Hour).Format(time.RFC3339))
	if code != 3 || !strings.Contains(stdout, "NOT-YET") || !strings.Contains(stdout, "prod/us-west-2: v42 since") || !strings.Contains(stdout, "not yet: 30m of bake left") {
		t.Errorf("text: exit %d\n%s", code, stdout)
	}

	// A v41 instance is still connected: closed, exit 1.
	old := sessionAs(t, dsn, "checkout/v41")
	code, r, _ := gateAt(time.Time{})
	if c := r.Check(gate.CheckClients); code != 1 || r.Verdict != gate.Closed || c == nil || len(c.Sessions) != 1 || c.Sessions[0].ApplicationName != "checkout/v41" {
		t.Fatalf("with a v41 session: exit %d, %+v", code, r)
	}

	// Bad input: exit 2.
	for _, args := range [][]string{
		{"gate", "contract", "--dsn", dsn, "--plan", dir, "--pipeline", shipped},                                                  // alarms without --prometheus
		{"gate", "contract", "--dsn", dsn, "--plan", dir, "--pipeline", shipped, "--prometheus", prom.URL, "--now", "soon"},       // bad time
		{"gate", "contract", "--dsn", dsn, "--plan", dir, "--pipeline", "nope.yaml", "--prometheus", prom.URL},                    // no pipeline
		{"apply", "--dsn", dsn, "--plan", dir, "--phase", "contract", "--pipeline", shipped, "--prometheus", prom.URL, "--force"}, // no reason
		{"apply", "--dsn", dsn, "--plan", dir, "--phase", "contract", "--reason", "because"},                                      // reason without force
	} {
		if code, _, stderr := pk(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", args, code, stderr)
		}
	}

	// apply --phase contract: refused by the closed gate, contract pending.
	code, _, stderr := pk(t, "--dsn", dsn, "apply", "--plan", dir, "--phase", "contract", "--pipeline", shipped, "--prometheus", prom.URL)
	if code != 1 || !strings.Contains(stderr, "contract refused: the gate is closed") || !strings.Contains(stderr, "old-clients") {
		t.Fatalf("apply with a closed gate: exit %d\n%s", code, stderr)
	}
	_, stdout, _ = pk(t, "--dsn", dsn, "status", "--plan", dir)
	if !strings.Contains(stdout, "contract    pending") {
		t.Fatalf("contract ran anyway:\n%s", stdout)
	}

	// Forced, with the reason kept in the ledger and shown by status.
	reason := "CHG-1234: the v41 session is a stuck batch job, killed after contract"
	code, stdout, stderr = pk(t, "--dsn", dsn, "apply", "--plan", dir, "--phase", "contract", "--pipeline", shipped, "--prometheus", prom.URL, "--force", "--reason", reason)
	if code != 0 || !strings.Contains(stderr, "the contract gate is closed; forced by") || !strings.Contains(stdout, "contract gate of plan") {
		t.Fatalf("forced apply: exit %d\n%s%s", code, stdout, stderr)
	}
	old.Close(context.Background())
	_, stdout, _ = pk(t, "--dsn", dsn, "status", "--plan", dir)
	if !strings.Contains(stdout, "contract    done") || !strings.Contains(stdout, "override: contract gate was closed, forced by") || !strings.Contains(stdout, reason) {
		t.Errorf("status after the override:\n%s", stdout)
	}
	_, stdout, _ = pk(t, "--dsn", dsn, "--format", "json", "status", "--plan", dir)
	var st []migrations.PlanStatus
	if err := json.Unmarshal([]byte(stdout), &st); err != nil || len(st) != 1 || len(st[0].Overrides) != 1 {
		t.Fatalf("status JSON: %v\n%s", err, stdout)
	}
	o := st[0].Overrides[0]
	var forced gate.Result
	if o.Reason != reason || o.Verdict != "closed" || json.Unmarshal(o.Gate, &forced) != nil || forced.Check(gate.CheckClients).Status != gate.Fail {
		t.Errorf("override %+v", o)
	}
}

// TestApplyContractGateOpenAndUnchecked: an open gate lets contract run
// with no override; without --pipeline contract runs with a warning.
func TestApplyContractGateOpenAndUnchecked(t *testing.T) {
	t.Parallel()
	pipelineFile := writeFile(t, "pipeline.yaml", "app: checkout\nold: v41\nnew: v42\nstages:\n  - {name: prod, kind: prod, bake: 1h}\n")
	for _, gated := range []bool{true, false} {
		dsn := pgtest.NewDB(t, "chinook")
		dir := planLiveRename(t, dsn, "backfill")
		args := []string{"--dsn", dsn, "apply", "--plan", dir, "--next"}
		if gated {
			if code, _, stderr := pk(t, "record", "deploy", "--dsn", dsn, "--pipeline", pipelineFile, "--stage", "prod", "--version", "v42", "--at", time.Now().Add(-2*time.Hour).Format(time.RFC3339)); code != 0 {
				t.Fatalf("record: %d %s", code, stderr)
			}
			args = append(args, "--pipeline", pipelineFile)
		}
		code, stdout, stderr := pk(t, args...)
		if code != 0 || !strings.Contains(stdout, "phase 4/4 contract") {
			t.Fatalf("gated %v: exit %d\n%s%s", gated, code, stdout, stderr)
		}
		warned := strings.Contains(stderr, "running contract without checking its gate")
		opened := strings.Contains(stdout, "): OPEN")
		if warned == gated || opened != gated {
			t.Errorf("gated %v: warning %v, gate shown %v\n%s%s", gated, warned, opened, stdout, stderr)
		}
		_, stdout, _ = pk(t, "--dsn", dsn, "status", "--plan", dir)
		if strings.Contains(stdout, "override") {
			t.Errorf("an override without --force:\n%s", stdout)
		}
	}
}

// TestWatchCommand: a clean bake exits 0; an alarm breaching during the bake
// of dual-write rolls it back and exits 1 with the alarm's datapoints.
func TestWatchCommand(t *testing.T) {
	t.Parallel()
	prom := promtest.Start(t)
	prom.Set("checkout_error_rate", 0)
	dsn := pgtest.NewDB(t, "chinook")
	dir := planLiveRename(t, dsn, "dual-write")
	pipelineFile := writeFile(t, "pipeline.yaml", `app: checkout
old: v41
new: v42
stages:
  - {name: prod, kind: prod, bake: 10s}
alarms:
  - {name: error-rate, query: 'max(checkout_error_rate)', comparison: ">", threshold: 5, datapoints_to_alarm: 3, evaluation_periods: 5, period: 1s}
`)
	prom.WaitFor(t, "max(checkout_error_rate)", func(float64) bool { return true }, time.Minute)
	watch := func(extra ...string) (int, gate.PhaseWatchResult, string) {
		t.Helper()
		args := append([]string{"watch", "--dsn", dsn, "--plan", dir, "--pipeline", pipelineFile, "--prometheus", prom.URL, "--interval", "500ms", "--format", "json"}, extra...)
		code, stdout, stderr := pk(t, args...)
		var r gate.PhaseWatchResult
		if err := json.Unmarshal([]byte(stdout), &r); err != nil {
			t.Fatalf("watch: exit %d, not JSON (%v):\n%s%s", code, err, stdout, stderr)
		}
		return code, r, stderr
	}
	if code, r, stderr := watch("--for", "1s"); code != 0 || r.Breached || r.RolledBack || r.Phase != "dual-write" {
		t.Fatalf("clean watch: exit %d %+v\n%s", code, r, stderr)
	}
	if code, _, stderr := pk(t, "watch", "--dsn", dsn, "--plan", dir, "--pipeline", pipelineFile, "--prometheus", prom.URL, "--phase", "backfill"); code != 2 || !strings.Contains(stderr, "not done") {
		t.Errorf("watch a pending phase: exit %d\n%s", code, stderr)
	}

	prom.Set("checkout_error_rate", 40)
	code, r, stderr := watch("--for", "2m")
	if code != 1 || !r.Breached || !r.RolledBack || r.Phase != "dual-write" || !strings.Contains(stderr, "phase dual-write rolled back") {
		t.Fatalf("breached watch: exit %d %+v\n%s", code, r, stderr)
	}
	b := r.Breaches()
	if len(b) != 1 || b[0].Alarm != "error-rate" || len(b[0].Window) != 5 {
		t.Fatalf("breach evidence %+v", b)
	}
	n := 0
	for _, d := range b[0].Window {
		if d.Breaching && d.Value != nil && *d.Value == 40 {
			n++
		}
	}
	if n != 3 {
		t.Errorf("breaching datapoints %+v", b[0].Window)
	}
	if r.Status == nil || r.Status.Phases[1].State != migrations.StateRolledBack || r.Status.Phases[0].State != migrations.StateDone {
		t.Errorf("ledger after the watch: %+v", r.Status)
	}
}
