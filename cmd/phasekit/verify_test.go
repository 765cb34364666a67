package main

import (
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phasekit/phasekit/verify"
	"github.com/phasekit/phasekit/verify/pgtest"
)

// planRename writes the demo rename's plan and returns its directory.
func planRename(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "plan")
	schema := pgtest.DatasetFile(t, "chinook/chinook-schema.sql")
	if code, _, stderr := phasekit(t, "plan", "--schema", schema, "--out", dir, "../../testdata/demo/rename_email.sql"); code != 0 {
		t.Fatalf("plan: exit %d\n%s", code, stderr)
	}
	return dir
}

func TestVerifyCommand(t *testing.T) {
	app := pgtest.SampleApp(t)
	plan := planRename(t)
	dump := pgtest.DatasetFile(t, "chinook/chinook.dump")
	out := t.TempDir()
	junit, result := filepath.Join(out, "verify.xml"), filepath.Join(out, "verify.json")
	// The dsn provider: scratch databases on an existing server.
	server := pgtest.Cluster(t).DSN("postgres")
	common := []string{"--plan", plan, "--data", dump, "--provider", "dsn", "--sandbox-dsn", server}

	code, stdout, stderr := phasekit(t, append([]string{"verify"}, append(common,
		"--old-app", app+" -version v1 check", "--new-app", app+" -version v2 check",
		"--old-workload", "../../testdata/apps/chinook/v1.sql", "--new-workload", "../../testdata/apps/chinook/v2.sql",
		"--shadow", "../../testdata/apps/chinook/shadow.yaml",
		"--mask", "customer.email=email", "--junit", junit, "--out", result)...)...)
	if code != 0 {
		t.Fatalf("verify: exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"PASS: every required cell passed", "after contract", "expected-break", "breaks: app v1 check", "shadow customer emails"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	var res struct {
		Passed bool `json:"passed"`
		Copy   struct {
			Method string `json:"method"`
		} `json:"copy"`
	}
	data, err := os.ReadFile(result)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &res); err != nil || !res.Passed {
		t.Fatalf("result %s: passed=%v err=%v", result, res.Passed, err)
	}
	if b, err := os.ReadFile(junit); err != nil || !strings.Contains(string(b), "<testsuites") {
		t.Fatalf("junit: %v %.200s", err, b)
	}
	// The scratch databases are gone from the server.
	conn := pgtest.Conn(t, server)
	var left int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_database WHERE datname LIKE 'phasekit\\_%'").Scan(&left); err != nil || left != 0 {
		t.Errorf("%d scratch databases left (err %v)", left, err)
	}

	t.Run("a required cell that fails exits 1", func(t *testing.T) {
		code, stdout, _ := phasekit(t, append([]string{"--format", "markdown", "verify"}, append(common,
			"--old-app", "exit 3", "--no-naive")...)...)
		if code != 1 || !strings.Contains(stdout, "❌ **FAIL**") {
			t.Fatalf("exit %d, want 1 with a FAIL verdict\n%s", code, stdout)
		}
	})
	t.Run("bad input exits 2", func(t *testing.T) {
		for _, args := range [][]string{
			{"verify", "--plan", plan, "--data", "/no/such.dump", "--old-app", "true"},
			{"verify", "--plan", plan, "--data", dump},
			{"verify", "--plan", plan, "--data", dump, "--old-app", "true", "--mask", "customer.email=rot13"},
			{"verify", "--plan", t.TempDir(), "--data", dump, "--old-app", "true"},
			{"verify", "--plan", plan, "--data", dump, "--provider", "dsn", "--sandbox-dsn", "postgres://nobody:secret@127.0.0.1:1/x", "--old-app", "true"},
			{"zeta", "--plan", plan, "--data", dump, "--frontend", "true", "--backend", "true", "--phase", "deploy"},
		} {
			code, _, stderr := phasekit(t, args...)
			if code != 2 {
				t.Errorf("%v: exit %d, want 2\n%s", args, code, stderr)
			}
			if strings.Contains(stderr, "secret") {
				t.Errorf("%v: password in output: %s", args, stderr)
			}
		}
	})
}

func TestZetaCommand(t *testing.T) {
	app := pgtest.SampleApp(t)
	plan := planRename(t)
	dump := pgtest.DatasetFile(t, "chinook/chinook.dump")
	code, stdout, stderr := phasekit(t, "zeta", "--plan", plan, "--data", dump, "--provider", "local",
		"--frontend", app+" -version v2 frontend", "--backend", app+" -version v1 serve",
		"--ready", "http://127.0.0.1:{port}/health", "--phase", "backfill", "--phase", "contract")
	if code != 0 {
		t.Fatalf("zeta: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "zeta N+1 frontend → N backend  pass") || !strings.Contains(stdout, "expected-break") {
		t.Errorf("want a pass after backfill and an expected break after contract:\n%s", stdout)
	}
	if !strings.Contains(stderr, "sandbox") && !strings.Contains(stderr, "local PostgreSQL") {
		t.Logf("stderr:\n%s", stderr)
	}
}

// A wrong password is bad input (exit 2) that changes nothing, and neither
// password appears in the output. The test clusters trust every local
// login; the docker sandbox's server checks passwords.
func TestWrongPasswordExitsTwo(t *testing.T) {
	// Needs a server that checks passwords: the docker sandbox.
	image := pgtest.DockerImage(t)
	d, err := verify.StartDocker(t.Context(), verify.DockerOptions{Image: image})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	u, err := url.Parse(d.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	right, _ := u.User.Password()
	u.User = url.UserPassword(u.User.Username(), "wrong-"+right)
	plan := planRename(t)
	for _, args := range [][]string{
		{"--dsn", u.String(), "status"},
		{"--dsn", u.String(), "apply", "--plan", plan, "--phase", "expand"},
	} {
		code, stdout, stderr := phasekit(t, args...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", args[2:], code, stderr)
		}
		if strings.Contains(stdout+stderr, right) || !strings.Contains(stderr, "password authentication failed") {
			t.Errorf("%v: want the server's reason without any password:\n%s%s", args[2:], stdout, stderr)
		}
	}
	// Nothing was created on the server.
	conn := pgtest.Conn(t, d.DSN("postgres"))
	var n int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_namespace WHERE nspname = 'phasekit'").Scan(&n); err != nil || n != 0 {
		t.Errorf("phasekit schema count %d (err %v), want 0", n, err)
	}
}
