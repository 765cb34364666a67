package verify_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/phasekit/phasekit/verify"
	"github.com/phasekit/phasekit/verify/pgtest"
)

// assertGone fails the test if the process whose pid a command wrote to
// file is still there.
func assertGone(t *testing.T, file string) {
	t.Helper()
	pid := readPid(t, file)
	if !processGone(t, pid) {
		t.Errorf("process %d (%s) is still running", pid, filepath.Base(file))
	}
}

func TestZetaChinook(t *testing.T) {
	t.Parallel()
	app := pgtest.SampleApp(t)
	dsn := pgtest.NewDB(t, "chinook")
	ctx := t.Context()
	pidFile := filepath.Join(t.TempDir(), "backend.pid")
	zeta := func(ready string) verify.ZetaResult {
		t.Helper()
		os.Remove(pidFile)
		r := verify.RunZeta(ctx, dsn, verify.ZetaOptions{
			// The v2 (N+1) frontend against the v1 (N) backend.
			Backend:  "echo $$ > " + shq(pidFile) + "; exec " + shq(app) + " -version v1 serve",
			Frontend: shq(app) + " -version v2 frontend",
			Ready:    ready,
			Timeout:  time.Minute,
		})
		assertGone(t, pidFile)
		if !strings.Contains(r.BackendLog, "shutting down") {
			t.Errorf("the backend was not stopped with SIGTERM:\n%s", r.BackendLog)
		}
		return r
	}

	for _, ready := range []string{"", "http://127.0.0.1:{port}/health", "127.0.0.1:{port}"} {
		r := zeta(ready)
		if !r.Passed || r.Error != "" {
			t.Fatalf("ready %q: failed: %s\nfrontend:\n%s\nbackend:\n%s", ready, r.Error, r.FrontendLog, r.BackendLog)
		}
		if !strings.Contains(r.FrontendLog, "customer 1: luisg@embraer.com.br") {
			t.Errorf("ready %q: frontend log:\n%s", ready, r.FrontendLog)
		}
		if !strings.Contains(r.BackendLog, "GET /customers/1 200") {
			t.Errorf("ready %q: backend log:\n%s", ready, r.BackendLog)
		}
		if r.Duration <= 0 {
			t.Errorf("Duration = %v", r.Duration)
		}
	}

	renameEmail(t, dsn)
	r := zeta("")
	if r.Passed {
		t.Fatalf("passed after the rename:\nfrontend:\n%s\nbackend:\n%s", r.FrontendLog, r.BackendLog)
	}
	const sqlErr = `ERROR: column "email" does not exist (SQLSTATE 42703)`
	if !strings.HasPrefix(r.Error, "frontend: ") || !strings.Contains(r.Error, "500") || !strings.Contains(r.Error, sqlErr) {
		t.Errorf("Error = %q, want the frontend's 500 with the SQL error", r.Error)
	}
	if !strings.Contains(r.FrontendLog, "500 Internal Server Error") {
		t.Errorf("frontend log:\n%s", r.FrontendLog)
	}
	if !strings.Contains(r.BackendLog, sqlErr) || !strings.Contains(r.BackendLog, "GET /customers/1 500") {
		t.Errorf("backend log lacks the SQL error:\n%s", r.BackendLog)
	}
}

func TestZetaBackendExitsEarly(t *testing.T) {
	t.Parallel()
	marker := filepath.Join(t.TempDir(), "frontend-ran")
	start := time.Now()
	r := verify.RunZeta(t.Context(), "postgres://u@127.0.0.1:1/db", verify.ZetaOptions{
		Backend:  "echo starting; echo 'fatal: cannot bind: boom' >&2; exit 3",
		Frontend: "touch " + shq(marker),
	})
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("took %v, want a fast failure", took)
	}
	want := "backend exited before it was ready (exit status 3): fatal: cannot bind: boom"
	if r.Passed || r.Error != want {
		t.Errorf("Passed %v, Error %q; want %q", r.Passed, r.Error, want)
	}
	if !strings.Contains(r.BackendLog, "starting\n") || !strings.Contains(r.BackendLog, "boom") {
		t.Errorf("backend log:\n%s", r.BackendLog)
	}
	if _, err := os.Stat(marker); err == nil || r.FrontendLog != "" {
		t.Errorf("the frontend ran (log %q)", r.FrontendLog)
	}
}

func TestZetaBackendNeverReady(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "backend.pid")
	start := time.Now()
	r := verify.RunZeta(t.Context(), "postgres://u@127.0.0.1:1/db", verify.ZetaOptions{
		Backend:      "echo $$ > " + shq(pidFile) + "; echo 'warming up'; exec sleep 60",
		Frontend:     "true",
		ReadyTimeout: time.Second,
	})
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("took %v", took)
	}
	if r.Passed || !strings.HasPrefix(r.Error, "backend not ready after 1s: 127.0.0.1:") {
		t.Errorf("Passed %v, Error %q", r.Passed, r.Error)
	}
	if !strings.Contains(r.BackendLog, "warming up") {
		t.Errorf("backend log: %q", r.BackendLog)
	}
	assertGone(t, pidFile)
}

// listen stands in for a backend's port in tests whose backend does not
// listen: Ready points here.
func listen(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

func TestZetaStopsStubbornBackend(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	leader, child := filepath.Join(dir, "leader"), filepath.Join(dir, "child")
	start := time.Now()
	r := verify.RunZeta(t.Context(), "postgres://u@127.0.0.1:1/db", verify.ZetaOptions{
		// Ignores SIGTERM, and so does the child it leaves behind.
		Backend: `trap '' TERM; echo "addr=$BACKEND_ADDR port=$PORT db=$PGDATABASE"; sleep 60 & echo $! > ` + shq(child) +
			"; echo $$ > " + shq(leader) + "; wait",
		// Waits for the backend to have set its trap, so that SIGTERM meets it.
		Frontend: "while [ ! -s " + shq(leader) + " ]; do sleep 0.05; done; " +
			`test "$BACKEND_URL" = "http://127.0.0.1:$PORT" && test "$PGDATABASE" = db && echo "frontend ok"`,
		Ready:     listen(t),
		StopGrace: 300 * time.Millisecond,
	})
	if !r.Passed {
		t.Errorf("failed: %s\nfrontend:\n%s\nbackend:\n%s", r.Error, r.FrontendLog, r.BackendLog)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("took %v", took)
	}
	if r.FrontendLog != "frontend ok\n" || !strings.Contains(r.BackendLog, "addr=127.0.0.1:") || !strings.Contains(r.BackendLog, " db=db") {
		t.Errorf("frontend log %q, backend log %q", r.FrontendLog, r.BackendLog)
	}
	assertGone(t, leader)
	assertGone(t, child)
}

func TestZetaFrontendTimeout(t *testing.T) {
	t.Parallel()
	r := verify.RunZeta(t.Context(), "postgres://u@127.0.0.1:1/db", verify.ZetaOptions{
		Backend:  "exec sleep 60",
		Frontend: "echo asking; exec sleep 60",
		Ready:    listen(t),
		Timeout:  500 * time.Millisecond,
	})
	if r.Passed || r.Error != "frontend: timed out after 500ms" || r.FrontendLog != "asking\n" {
		t.Errorf("Passed %v, Error %q, frontend log %q", r.Passed, r.Error, r.FrontendLog)
	}
}

func TestZetaBadOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, dsn string
		o         verify.ZetaOptions
		want      string
	}{
		{"no frontend", "postgres://u@127.0.0.1:1/db", verify.ZetaOptions{Backend: "true"}, "both a backend and a frontend"},
		{"bad ready", "postgres://u@127.0.0.1:1/db", verify.ZetaOptions{Backend: "true", Frontend: "true", Ready: "localhost"}, `ready check "localhost": want an http(s) URL or host:port`},
		{"bad DSN", "postgres://u:pw1234@[::1/db", verify.ZetaOptions{Backend: "true", Frontend: "true"}, "invalid DSN"},
	}
	for _, tc := range tests {
		r := verify.RunZeta(t.Context(), tc.dsn, tc.o)
		if r.Passed || !strings.Contains(r.Error, tc.want) || strings.Contains(r.Error, "pw1234") {
			t.Errorf("%s: Passed %v, Error %q; want %q", tc.name, r.Passed, r.Error, tc.want)
		}
	}
}
