package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/phasekit/phasekit/internal/testkit"
	"github.com/phasekit/phasekit/verify/pgtest"
)

// startPgBouncer runs a real PgBouncer (Debian's package) in front of the
// server of dsn, in the given pool mode, and returns the DSN through it.
// Without the binary the test is skipped, unless CI=true (then it fails).
func startPgBouncer(t *testing.T, dsn, mode string) string {
	t.Helper()
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/pgbouncer"); serr != nil {
			testkit.SkipOrFail(t, "pgbouncer is not installed: run make setup (apt-get install pgbouncer)")
		}
		bin = "/usr/sbin/pgbouncer"
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	// PgBouncer refuses to run as root: it runs as postgres then, and must
	// read its files (t.TempDir's parent is private to the test's user).
	dir, err := os.MkdirTemp("", "phasekit-pgbouncer-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	users := filepath.Join(dir, "users.txt")
	ini := filepath.Join(dir, "pgbouncer.ini")
	files := map[string]string{
		users: fmt.Sprintf("%q \"\"\n", cfg.User),
		ini: fmt.Sprintf(`[databases]
* = host=%s port=%d

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
pool_mode = %s
default_pool_size = 4
`, cfg.Host, cfg.Port, port, users, mode),
	}
	for name, body := range files {
		if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var logs bytes.Buffer
	cmd := exec.Command(bin, ini)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, and PgBouncer refuses to: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start pgbouncer: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	through := fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", cfg.User, port, cfg.Database)
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("pgbouncer exited at start: %s", logs.String())
		default:
		}
		conn, err := pgx.Connect(t.Context(), through)
		if err == nil {
			conn.Close(t.Context())
			return through
		}
		if time.Now().After(deadline) {
			t.Fatalf("pgbouncer not accepting connections after 15s: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPgBouncer: apply through PgBouncer is refused in either pool mode
// (the client cannot tell them apart) with exit 2 and nothing changed;
// with --session-pool a session-mode pool is accepted and the phase runs.
func TestPgBouncer(t *testing.T) {
	dsn := pgtest.NewDB(t, "chinook")
	plan := planRename(t)
	direct := pgtest.Conn(t, dsn)
	schemas := func() int {
		t.Helper()
		var n int
		if err := direct.QueryRow(t.Context(), "SELECT count(*) FROM pg_namespace WHERE nspname = 'phasekit'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, mode := range []string{"transaction", "session"} {
		through := startPgBouncer(t, dsn, mode)
		code, stdout, stderr := phasekit(t, "--dsn", through, "apply", "--plan", plan, "--phase", "expand")
		if code != 2 || !strings.Contains(stderr, "pooler or proxy") || !strings.Contains(stderr, "--session-pool") {
			t.Errorf("%s pool: exit %d, want 2 naming the pooler and --session-pool\n%s%s", mode, code, stdout, stderr)
		}
		if n := schemas(); n != 0 {
			t.Fatalf("%s pool: the refused apply created the ledger schema", mode)
		}
	}
	through := startPgBouncer(t, dsn, "session")
	code, stdout, stderr := phasekit(t, "--dsn", through, "apply", "--plan", plan, "--phase", "expand", "--session-pool")
	if code != 0 || !strings.Contains(stderr, "session mode") {
		t.Fatalf("session pool with --session-pool: exit %d, want 0 with a warning\n%s%s", code, stdout, stderr)
	}
	var state string
	if err := direct.QueryRow(t.Context(), "SELECT state FROM phasekit.phases WHERE kind = 'expand'").Scan(&state); err != nil || state != "done" {
		t.Errorf("expand through the session pool: state %q (err %v), want done", state, err)
	}
}
