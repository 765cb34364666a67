package verify_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/phasekit/phasekit/verify"
	"github.com/phasekit/phasekit/verify/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestStartLocalStop(t *testing.T) {
	ctx := t.Context()
	start := time.Now()
	l, err := verify.StartLocal(ctx, verify.LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("started in %v on port %d", time.Since(start).Round(time.Millisecond), l.Port())
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = l.Stop()
		}
	})

	conn, err := pgx.Connect(ctx, l.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Port())
	settings := map[string]string{
		"current_user":                        "postgres",
		"current_setting('fsync')":            "off",
		"current_setting('listen_addresses')": "127.0.0.1",
		"current_setting('port')":             port,
	}
	for expr, want := range settings {
		var got string
		if err := conn.QueryRow(ctx, "select "+expr+"::text").Scan(&got); err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		if got != want {
			t.Errorf("%s = %q, want %q", expr, got, want)
		}
	}
	conn.Close(ctx)

	dir := l.Dir()
	if _, err := os.Stat(filepath.Join(dir, ".s.PGSQL."+port)); err != nil {
		t.Errorf("unix socket not in the cluster directory: %v", err)
	}
	if err := l.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	stopped = true
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cluster directory %s still there after Stop (stat: %v)", dir, err)
	}
	if conn, err := pgx.Connect(ctx, l.DSN("postgres")); err == nil {
		conn.Close(ctx)
		t.Error("server still accepts connections after Stop")
	}
	if err := l.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// A failed start removes what it made, and any start removes directories of
// clusters whose owners died without calling Stop, but nothing still in use.
func TestStartLocalLeavesNothingBehind(t *testing.T) {
	// A TMPDIR of our own shows what is left. It must be enterable by the
	// postgres OS user when the tests run as root.
	tmp, err := os.MkdirTemp("", "verify-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	if err := os.Chmod(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", tmp)

	old := time.Now().Add(-time.Hour)
	seed := []struct {
		name    string
		pid     int // written to postmaster.pid; 0 for none
		modTime time.Time
		kept    bool
	}{
		{"phasekit-pg-orphan", 0, old, false},
		{"phasekit-pg-dead-server", 1 << 30, old, false}, // beyond pid_max: not running
		{"phasekit-pg-live-server", os.Getpid(), old, true},
		{"phasekit-pg-mid-initdb", 0, time.Now(), true},
		{"not-a-cluster", 0, old, true},
	}
	for _, s := range seed {
		data := filepath.Join(tmp, s.name, "data")
		if err := os.MkdirAll(data, 0o700); err != nil {
			t.Fatal(err)
		}
		if s.pid != 0 {
			pidFile := strconv.Itoa(s.pid) + "\n" + data + "\n"
			if err := os.WriteFile(filepath.Join(data, "postmaster.pid"), []byte(pidFile), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chtimes(filepath.Join(tmp, s.name), s.modTime, s.modTime); err != nil {
			t.Fatal(err)
		}
	}

	_, err = verify.StartLocal(t.Context(), verify.LocalOptions{
		Settings: map[string]string{"shared_buffers": "plenty"},
	})
	if err == nil {
		t.Fatal("StartLocal with an invalid setting succeeded")
	}
	// The server's own complaint must reach the caller.
	if !strings.Contains(err.Error(), `invalid value for parameter "shared_buffers"`) {
		t.Errorf("error does not quote the server log: %v", err)
	}

	entries, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	left := map[string]bool{}
	for _, e := range entries {
		left[e.Name()] = true
	}
	for _, s := range seed {
		if left[s.name] != s.kept {
			t.Errorf("%s: kept = %v, want %v", s.name, left[s.name], s.kept)
		}
		delete(left, s.name)
	}
	for name := range left {
		t.Errorf("failed StartLocal left %s in TMPDIR", name)
	}
}

func TestCreateDropDatabase(t *testing.T) {
	l := pgtest.Cluster(t)
	for _, name := range []string{"plain_copy", "Mixed Case-db", `quote"in name`} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			src := name + " src"
			if err := l.CreateDatabase(ctx, src, ""); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = l.DropDatabase(context.Background(), src) })
			conn := pgtest.Conn(t, l.DSN(src))
			if _, err := conn.Exec(ctx, "create table marker (id int); insert into marker values (42)"); err != nil {
				t.Fatal(err)
			}
			conn.Close(ctx)

			if err := l.CreateDatabase(ctx, name, src); err != nil {
				t.Fatal(err)
			}
			copyConn := pgtest.Conn(t, l.DSN(name))
			var id int
			if err := copyConn.QueryRow(ctx, "select id from marker").Scan(&id); err != nil || id != 42 {
				t.Fatalf("copy of template: marker id = %d, %v; want 42", id, err)
			}

			// The copy is still connected: FORCE must disconnect it.
			if err := l.DropDatabase(ctx, name); err != nil {
				t.Fatal(err)
			}
			if n := countDatabases(t, l, name); n != 0 {
				t.Errorf("database %q still exists after DropDatabase", name)
			}
			if err := l.DropDatabase(ctx, name); err != nil {
				t.Errorf("dropping a missing database: %v", err)
			}
		})
	}
}

func TestCreateDatabaseExistingFails(t *testing.T) {
	l := pgtest.Cluster(t)
	err := l.CreateDatabase(t.Context(), "postgres", "")
	if err == nil || !strings.Contains(err.Error(), "create database postgres") {
		t.Fatalf("CreateDatabase of an existing name: %v, want an error saying what it did", err)
	}
}

func countDatabases(t *testing.T, l *verify.Local, name string) int {
	t.Helper()
	conn := pgtest.Conn(t, l.DSN("postgres"))
	var n int
	if err := conn.QueryRow(t.Context(), "select count(*) from pg_database where datname = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestLoadSQLFileError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		sql     string
		line    int
		message string
	}{
		{
			name:    "syntax error",
			sql:     "create table a (id int);\ninsert into a values (1);\n\nselec 1;\ncreate table after_error (id int);\n",
			line:    4,
			message: `syntax error at or near "selec"`,
		},
		{
			// psql counts the line the statement ends on.
			name:    "multi-line statement",
			sql:     "-- leading comment\ncreate table b (\n  id int,\n  id int\n);\ncreate table after_error (id int);\n",
			line:    5,
			message: `column "id" specified more than once`,
		},
		{
			name:    "runtime error",
			sql:     "create table a (id int);\ninsert into a values ('x');\ncreate table after_error (id int);\n",
			line:    2,
			message: `invalid input syntax for type integer: "x"`,
		},
		{
			name:    "psql meta-command",
			sql:     "create table a (id int);\n\\nosuch\ncreate table after_error (id int);\n",
			line:    2,
			message: `invalid command \nosuch`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dsn := pgtest.NewDB(t, "")
			file := filepath.Join(t.TempDir(), "broken.sql")
			if err := os.WriteFile(file, []byte(tt.sql), 0o644); err != nil {
				t.Fatal(err)
			}

			err := verify.LoadSQLFile(t.Context(), dsn, file)
			var le *verify.LoadError
			if !errors.As(err, &le) {
				t.Fatalf("LoadSQLFile error = %v (%T), want *LoadError", err, err)
			}
			if le.File != file || le.Line != tt.line {
				t.Errorf("error at %s:%d, want %s:%d", le.File, le.Line, file, tt.line)
			}
			if !strings.Contains(le.Message, tt.message) {
				t.Errorf("message %q does not contain %q", le.Message, tt.message)
			}
			if !strings.HasPrefix(err.Error(), file+":"+strconv.Itoa(tt.line)+": ") {
				t.Errorf("Error() = %q, want it to start with file:line", err.Error())
			}

			var afterError bool
			conn := pgtest.Conn(t, dsn)
			if err := conn.QueryRow(t.Context(), "select to_regclass('after_error') is not null").Scan(&afterError); err != nil {
				t.Fatal(err)
			}
			if afterError {
				t.Error("statements after the error ran: ON_ERROR_STOP not in effect")
			}
		})
	}
}

func TestLoadSQLFileMissingFile(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDB(t, "")
	missing := filepath.Join(t.TempDir(), "nope.sql")
	err := verify.LoadSQLFile(t.Context(), dsn, missing)
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("LoadSQLFile of a missing file: %v, want an error naming it", err)
	}
}

// pg_dump 15.18 writes \restrict and \unrestrict lines; psql must take them.
func TestLoadSQLFileDumpWithRestrict(t *testing.T) {
	t.Parallel()
	file := pgtest.DatasetFile(t, "chinook/chinook-schema.sql")
	dsn := pgtest.NewDB(t, "")
	if err := verify.LoadSQLFile(t.Context(), dsn, file); err != nil {
		t.Fatal(err)
	}
	conn := pgtest.Conn(t, dsn)
	var tables int
	if err := conn.QueryRow(t.Context(),
		"select count(*) from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE'").Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 11 {
		t.Errorf("chinook schema has %d tables, want 11", tables)
	}
}

func TestRestoreDump(t *testing.T) {
	t.Parallel()
	file := pgtest.DatasetFile(t, "chinook/chinook.dump")
	dsn := pgtest.NewDB(t, "")
	if err := verify.RestoreDump(t.Context(), dsn, file); err != nil {
		t.Fatal(err)
	}
	conn := pgtest.Conn(t, dsn)
	var customers int
	if err := conn.QueryRow(t.Context(), "select count(*) from customer").Scan(&customers); err != nil {
		t.Fatal(err)
	}
	if customers != 59 {
		t.Errorf("restored chinook has %d customers, want 59", customers)
	}
}

func TestRestoreDumpNotADump(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDB(t, "")
	file := filepath.Join(t.TempDir(), "plain.sql")
	if err := os.WriteFile(file, []byte("select 1;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := verify.RestoreDump(t.Context(), dsn, file)
	if err == nil || !strings.Contains(err.Error(), "restore "+file) {
		t.Fatalf("RestoreDump of a plain SQL file: %v, want an error naming it", err)
	}
}
