package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phasekit/phasekit/fleet"
	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/verify/pgtest"
)

func TestFleetCommands(t *testing.T) {
	a, b := pgtest.NewDB(t, "chinook"), pgtest.NewDB(t, "chinook")
	t.Setenv("SHARD_A_DSN", a)
	t.Setenv("SHARD_B_DSN", b)
	sql := writeFile(t, "rename.sql", "ALTER TABLE customer RENAME COLUMN email TO email_address;\n")
	dir := filepath.Join(t.TempDir(), "plan")
	if code, _, stderr := phasekit(t, "--dsn", a, "plan", "--out", dir, sql); code != 0 {
		t.Fatalf("plan: exit %d\n%s", code, stderr)
	}
	file := writeFile(t, "fleet.yaml", `waves:
  - name: one-box
    bake: 10m
    targets:
      - {name: a, dsn: "${SHARD_A_DSN}"}
  - name: rest
    targets:
      - {name: b, dsn: "${SHARD_B_DSN}"}
`)

	// Contract before the backfill: refused on the canary, over budget.
	code, stdout, stderr := phasekit(t, "fleet", "apply", "--fleet", file, "--plan", dir, "--phase", "contract", "--no-bake")
	if code != exitFindings || !strings.Contains(stderr, "wave one-box failed on 1 target(s)") || !strings.Contains(stderr, "a: phase contract cannot run before expand is done") {
		t.Fatalf("contract first: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "untouched: rest (1 target(s))") {
		t.Errorf("stdout:\n%s", stdout)
	}

	code, stdout, stderr = phasekit(t, "--format", "json", "fleet", "apply", "--fleet", file, "--plan", dir, "--phase", "expand", "--no-bake")
	if code != exitOK {
		t.Fatalf("apply: exit %d\n%s\n%s", code, stdout, stderr)
	}
	var rep fleet.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("stdout is not the JSON report: %v\n%s", err, stdout)
	}
	if rep.Outcome != "done" || len(rep.Waves) != 2 || rep.Waves[1].Targets[0].State != "applied" || rep.AlarmCheck {
		t.Errorf("report: %+v", rep)
	}
	for _, want := range []string{"no alarm check configured", "  b: applying expand", "wave one-box: bake 10m skipped (--no-bake)", "    a | phase 1/4 expand"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}

	code, stdout, stderr = phasekit(t, "fleet", "status", "--fleet", file, "--plan", dir)
	if code != exitOK || !strings.Contains(stdout, "one-box  a       done    pending     pending   pending") || !strings.Contains(stdout, "expand: 2 done") {
		t.Errorf("status: exit %d\n%s\n%s", code, stdout, stderr)
	}
	// An unset variable does not stop fleet status: the target is shown.
	t.Setenv("SHARD_B_DSN", "")
	code, stdout, stderr = phasekit(t, "--format", "json", "fleet", "status", "--fleet", file, "--plan", dir)
	var st fleet.StatusReport
	if code != exitOK || json.Unmarshal([]byte(stdout), &st) != nil || len(st.Targets) != 2 || !st.Targets[0].Reachable || st.Targets[1].Reachable ||
		!strings.Contains(st.Targets[1].Error, "SHARD_B_DSN is not set") || st.Targets[0].Phases[0].State != "done" {
		t.Errorf("status json: exit %d\n%s\n%s", code, stdout, stderr)
	}
	// fleet apply refuses it before starting anything.
	code, _, stderr = phasekit(t, "fleet", "apply", "--fleet", file, "--plan", dir, "--phase", "dual-write")
	if code != exitBadInput || !strings.Contains(stderr, file+":8:24: environment variable SHARD_B_DSN (target b) is empty") {
		t.Errorf("unset variable: exit %d\n%s", code, stderr)
	}
	if got := ledgerStates(t, a); got != "expand=done dual-write=pending backfill=pending contract=pending" {
		t.Errorf("a after the refused run: %s", got)
	}
}

func ledgerStates(t *testing.T, dsn string) string {
	t.Helper()
	all, err := migrations.Status(t.Context(), pgtest.Conn(t, dsn), "")
	if err != nil || len(all) != 1 {
		t.Fatalf("ledger: %v %v", all, err)
	}
	var out []string
	for _, p := range all[0].Phases {
		out = append(out, p.Kind+"="+p.State)
	}
	return strings.Join(out, " ")
}

func TestFleetBadInputExitsTwo(t *testing.T) {
	t.Setenv("SHARD_A_DSN", "postgres://postgres@127.0.0.1:1/x")
	dir := t.TempDir()
	good := writeFile(t, "good.yaml", "waves:\n  - name: one\n    targets: [{name: a, dsn: \"${SHARD_A_DSN}\"}]\n")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"plaintext password", []string{"fleet", "apply", "--fleet", writeFile(t, "pw.yaml", "waves:\n  - name: one\n    targets:\n      - {name: a, dsn: \"postgres://app:hunter2@db/app\"}\n"), "--plan", dir, "--phase", "expand"},
			"pw.yaml:4:24: dsn of target a holds a plaintext password"},
		{"unknown key", []string{"fleet", "status", "--fleet", writeFile(t, "key.yaml", "waves:\n  - name: one\n    max_failure: 1\n    targets: [{name: a, dsn: \"${SHARD_A_DSN}\"}]\n"), "--plan", dir},
			`key.yaml:3:5: unknown field "max_failure" in a wave (did you mean "max_failures"?)`},
		{"duplicate target", []string{"fleet", "apply", "--fleet", writeFile(t, "dup.yaml", "waves:\n  - name: one\n    targets: [{name: a, dsn: \"${A}\"}, {name: a, dsn: \"${B}\"}]\n"), "--plan", dir, "--phase", "expand"},
			`dup.yaml:3:46: target name "a" is used twice`},
		{"unset variable", []string{"fleet", "apply", "--fleet", writeFile(t, "unset.yaml", "waves:\n  - name: one\n    targets: [{name: a, dsn: \"${SHARD_NOPE_DSN}\"}]\n"), "--plan", dir, "--phase", "expand"},
			"unset.yaml:3:30: environment variable SHARD_NOPE_DSN (target a) is not set"},
		{"missing file", []string{"fleet", "apply", "--fleet", filepath.Join(dir, "none.yaml"), "--plan", dir, "--phase", "expand"}, "none.yaml:1:1: read fleet file"},
		{"unknown phase", []string{"fleet", "apply", "--fleet", good, "--plan", dir, "--phase", "expnad"}, `--phase "expnad": use one of`},
		{"no plan", []string{"fleet", "apply", "--fleet", good, "--plan", dir, "--phase", "expand"}, "plan.json"},
		{"no plan for status", []string{"fleet", "status", "--fleet", good, "--plan", dir}, "plan.json"},
		{"no --fleet", []string{"fleet", "status", "--plan", dir}, `Required flag "fleet"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := phasekit(t, tc.args...)
			if code != exitBadInput || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, want 2 with %q:\n%s", code, tc.want, stderr)
			}
			if strings.Contains(stderr, "hunter2") {
				t.Errorf("the password is shown:\n%s", stderr)
			}
		})
	}
}
