// Package sandboxtest is the conformance suite every verify.Sandbox passes:
// what the copy path, the compatibility matrix and the zeta runner rely on,
// checked on a real server. Like golang-migrate's database/testing, a
// sandbox's own test calls Run with a way to open a fresh one:
//
//	func TestLocalConformance(t *testing.T) {
//		sandboxtest.Run(t, verify.ProviderLocal, func(t *testing.T) verify.Sandbox {
//			l, err := verify.StartLocal(t.Context(), verify.LocalOptions{})
//			...
//		})
//	}
//
// How to add a sandbox:
//
//  1. Implement verify.Sandbox (Provider, Describe, DSN, CreateDatabase,
//     DropDatabase, Close) in verify/<provider>.go, with
//     `var _ Sandbox = (*Yours)(nil)`, and a Provider constant.
//  2. Open it from verify.OpenSandbox for its provider name.
//  3. Run this suite on it from verify's tests; a provider that needs a tool
//     (Docker) skips locally and fails under CI=true (testkit.SkipOrFail).
package sandboxtest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/phasekit/phasekit/internal/dbconn"
	"github.com/phasekit/phasekit/verify"
)

// Run checks the sandboxes open returns against what verify.Sandbox
// promises. open is called once per subtest and must return a sandbox of
// the given provider that nothing else uses; Run closes it (the suite checks
// Close), but open may register a cleanup that closes it again.
func Run(t *testing.T, provider string, open func(t *testing.T) verify.Sandbox) {
	t.Run("Describe", func(t *testing.T) {
		s := open(t)
		defer closeOnce(t, s)
		testDescribe(t, s, provider)
	})
	t.Run("Databases", func(t *testing.T) {
		s := open(t)
		defer closeOnce(t, s)
		testDatabases(t, s)
	})
	t.Run("Close", func(t *testing.T) {
		testClose(t, open(t))
	})
}

// closeOnce closes s at the end of a subtest that is not about Close.
func closeOnce(t *testing.T, s verify.Sandbox) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func testDescribe(t *testing.T, s verify.Sandbox, provider string) {
	if got := s.Provider(); got != provider {
		t.Errorf("Provider() = %q, want %q", got, provider)
	}
	d := s.Describe()
	if d == "" || strings.ContainsAny(d, "\r\n") {
		t.Errorf("Describe() = %q, want one non-empty line", d)
	}
	// Describe goes to logs and reports: it never shows a password.
	if u, err := url.Parse(s.DSN("postgres")); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" && strings.Contains(d, pw) {
			t.Errorf("Describe() shows the password: %s", dbconn.Redact(d))
		}
	}
}

func testDatabases(t *testing.T, s verify.Sandbox) {
	ctx := t.Context()
	// Names that need quoting: the sandboxes quote identifiers and DSN
	// escapes the URL path.
	src, cp := "conform-Src", "conform copy"

	if err := s.CreateDatabase(ctx, src, ""); err != nil {
		t.Fatalf("CreateDatabase(%q, \"\"): %v", src, err)
	}
	conn := connect(t, s, src)
	var db string
	var version int
	if err := conn.QueryRow(ctx, "SELECT current_database(), current_setting('server_version_num')::int").Scan(&db, &version); err != nil {
		t.Fatal(err)
	}
	if db != src {
		t.Errorf("DSN(%q) connects to database %q", src, db)
	}
	if version < 100000 {
		t.Errorf("server_version_num = %d, want PostgreSQL 10 or later", version)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 3)"); err != nil {
		t.Fatal(err)
	}
	// A template must have no sessions.
	conn.Close(ctx)

	if err := s.CreateDatabase(ctx, src, ""); err == nil {
		t.Errorf("CreateDatabase(%q) again: want an error, the database exists", src)
	}
	if err := s.CreateDatabase(ctx, "conform_x", "conform_no_such_template"); err == nil {
		t.Error("CreateDatabase from a missing template: want an error")
	}

	// A copy of a template holds its rows and is independent of it.
	if err := s.CreateDatabase(ctx, cp, src); err != nil {
		t.Fatalf("CreateDatabase(%q, %q): %v", cp, src, err)
	}
	c := connect(t, s, cp)
	if n := count(t, c); n != 3 {
		t.Errorf("copy of %q holds %d rows, want 3", src, n)
	}
	if _, err := c.Exec(ctx, "DELETE FROM t"); err != nil {
		t.Fatal(err)
	}
	srcConn := connect(t, s, src)
	if n := count(t, srcConn); n != 3 {
		t.Errorf("deleting in the copy changed the template: %d rows left, want 3", n)
	}
	srcConn.Close(ctx)

	// The matrix copies one template for several app versions at once.
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.CreateDatabase(ctx, fmt.Sprintf("conform_par_%d", i), src)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Errorf("parallel CreateDatabase from one template: %v", err)
	}

	// DropDatabase disconnects the database's sessions (c is still open),
	// and dropping what does not exist is not an error.
	if err := s.DropDatabase(ctx, cp); err != nil {
		t.Fatalf("DropDatabase(%q) with a session open: %v", cp, err)
	}
	if err := c.Ping(ctx); err == nil {
		t.Errorf("session on %q survived DropDatabase", cp)
	}
	if conn, err := tryConnect(ctx, s.DSN(cp)); err == nil {
		conn.Close(ctx)
		t.Errorf("DSN(%q) still connects after DropDatabase", cp)
	}
	if err := s.DropDatabase(ctx, cp); err != nil {
		t.Errorf("DropDatabase(%q) twice: %v", cp, err)
	}
	if err := s.DropDatabase(ctx, "conform_never_created"); err != nil {
		t.Errorf("DropDatabase of a missing database: %v", err)
	}
}

func testClose(t *testing.T, s verify.Sandbox) {
	ctx := t.Context()
	names := []string{"conform_a", "conform_b"}
	for _, n := range names {
		if err := s.CreateDatabase(ctx, n, ""); err != nil {
			t.Fatalf("CreateDatabase(%q): %v", n, err)
		}
	}
	// A session left open must not keep Close from removing its database.
	c := connect(t, s, names[0])
	dsns := []string{s.DSN(names[0]), s.DSN(names[1])}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	_ = c.Ping(ctx)
	// Nothing the sandbox made is left: neither database answers (the
	// server is gone, or the databases are dropped).
	for _, dsn := range dsns {
		if conn, err := tryConnect(ctx, dsn); err == nil {
			conn.Close(ctx)
			t.Errorf("%s still connects after Close", dbconn.Redact(dsn))
		}
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close twice: %v", err)
	}
}

// connect opens a session on database of s, closed when the test ends.
func connect(t *testing.T, s verify.Sandbox, database string) *pgx.Conn {
	t.Helper()
	conn, err := tryConnect(t.Context(), s.DSN(database))
	if err != nil {
		t.Fatalf("connect to DSN(%q): %v", database, err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func tryConnect(ctx context.Context, dsn string) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return pgx.Connect(ctx, dsn)
}

func count(t *testing.T, conn *pgx.Conn) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
