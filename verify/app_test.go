package verify_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/internal/dbconn"
	"github.com/phasekit/phasekit/verify"
	"github.com/phasekit/phasekit/verify/pgtest"
)

// shq quotes s for sh.
func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// renameEmail makes the change the sample apps straddle, in one go.
func renameEmail(t *testing.T, dsn string) {
	t.Helper()
	if _, err := pgtest.Conn(t, dsn).Exec(t.Context(), "ALTER TABLE customer RENAME COLUMN email TO email_address"); err != nil {
		t.Fatal(err)
	}
}

// customerState is what the sample apps must leave as they found it.
func customerState(t *testing.T, dsn, col string) string {
	t.Helper()
	var n int
	var email string
	err := pgtest.Conn(t, dsn).QueryRow(t.Context(),
		"SELECT count(*), (SELECT "+col+" FROM customer WHERE customer_id = 1) FROM customer").Scan(&n, &email)
	if err != nil {
		t.Fatal(err)
	}
	return strconv.Itoa(n) + " customers, customer 1 " + email
}

const sqlstateUndefinedColumn = "(SQLSTATE 42703)"

func TestCommandAppChinook(t *testing.T) {
	t.Parallel()
	app := pgtest.SampleApp(t)
	dsn := pgtest.NewDB(t, "chinook")
	ctx := t.Context()
	v1 := verify.CommandApp{AppName: "v1 check", Command: shq(app) + " -version v1 check", Timeout: time.Minute}
	v2 := verify.CommandApp{AppName: "v2 check", Command: shq(app) + " -version v2 check", Timeout: time.Minute}
	if v1.Name() != "v1 check" {
		t.Errorf("Name() = %q", v1.Name())
	}
	before := customerState(t, dsn, "email")

	assertPass(t, v1.Run(ctx, dsn))
	assertFail(t, v2.Run(ctx, dsn), `column "email_address" does not exist`)
	if got := customerState(t, dsn, "email"); got != before {
		t.Errorf("after the checks: %s, want %s", got, before)
	}

	renameEmail(t, dsn)
	assertPass(t, v2.Run(ctx, dsn))
	assertFail(t, v1.Run(ctx, dsn), `column "email" does not exist`)
	if got := customerState(t, dsn, "email_address"); got != before {
		t.Errorf("after the checks: %s, want %s", got, before)
	}
}

func assertPass(t *testing.T, r verify.AppResult) {
	t.Helper()
	if !r.Passed || r.Error != "" {
		t.Errorf("failed: %s\n%s", r.Error, r.Output)
	}
	if r.Duration <= 0 {
		t.Errorf("Duration = %v", r.Duration)
	}
}

// assertFail checks that r failed with an undefined-column error naming want.
func assertFail(t *testing.T, r verify.AppResult, want string) {
	t.Helper()
	if r.Passed {
		t.Fatalf("passed, want a failure with %s\n%s", want, r.Output)
	}
	if !strings.Contains(r.Error, "ERROR: "+want+" "+sqlstateUndefinedColumn) {
		t.Errorf("Error = %q, want the SQL error: %s %s", r.Error, want, sqlstateUndefinedColumn)
	}
	if strings.Contains(r.Error, "\n") {
		t.Errorf("Error has more than one line: %q", r.Error)
	}
	if !strings.Contains(r.Output, want) {
		t.Errorf("Output lacks %q:\n%s", want, r.Output)
	}
}

func TestCommandAppEnv(t *testing.T) {
	// Inherited variables that would point a client elsewhere.
	t.Setenv("PGHOSTADDR", "192.0.2.1")
	t.Setenv("DATABASE_URL", "postgres://prod.example.com/prod")
	t.Setenv("PGDATABASE", "prod")
	t.Setenv("PHASEKIT_TEST_INHERITED", "kept")
	const show = `for v in DATABASE_URL PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE PGSSLMODE PGHOSTADDR PHASEKIT_TEST_INHERITED; do eval "echo $v=\${$v-unset}"; done`
	tests := []struct {
		dsn  string
		want []string
	}{
		{"postgres://alice@127.0.0.1:6543/shop?sslmode=disable", []string{
			"DATABASE_URL=postgres://alice@127.0.0.1:6543/shop?sslmode=disable",
			"PGHOST=127.0.0.1", "PGPORT=6543", "PGUSER=alice", "PGPASSWORD=", "PGDATABASE=shop", "PGSSLMODE=disable"}},
		{"host=db.internal port=5433 user=bob password=pw1234 dbname=app sslmode=require", []string{
			"PGHOST=db.internal", "PGPORT=5433", "PGUSER=bob", "PGDATABASE=app", "PGSSLMODE=require"}},
		{"postgres://carol@db.internal/app?sslmode=prefer", []string{"PGPORT=5432", "PGSSLMODE=prefer"}},
		{"postgres://carol@db.internal/app?sslmode=allow", []string{"PGSSLMODE=allow"}},
		{"postgres://carol@db.internal/app?sslmode=verify-full", []string{"PGSSLMODE=verify-full"}},
		{"postgres://carol@db.internal/app?sslmode=verify-ca", []string{"PGSSLMODE=verify-ca"}},
		{"host=/var/run/postgresql user=dave dbname=app", []string{"PGHOST=/var/run/postgresql", "PGSSLMODE=disable"}},
	}
	for _, tc := range tests {
		t.Run(dbconn.Redact(tc.dsn), func(t *testing.T) {
			r := verify.CommandApp{AppName: "env", Command: show}.Run(t.Context(), tc.dsn)
			if !r.Passed {
				t.Fatalf("failed: %s\n%s", r.Error, r.Output)
			}
			lines := strings.Split(strings.TrimSpace(r.Output), "\n")
			for _, w := range append(tc.want, "PGHOSTADDR=unset", "PHASEKIT_TEST_INHERITED=kept") {
				found := false
				for _, l := range lines {
					found = found || l == w
				}
				if !found {
					t.Errorf("no %s in the environment:\n%s", w, r.Output)
				}
			}
		})
	}

	r := verify.CommandApp{AppName: "bad", Command: "true"}.Run(t.Context(), "postgres://x:secretpw@[::1/db")
	if r.Passed || !strings.Contains(r.Error, "invalid DSN") || strings.Contains(r.Error, "secretpw") {
		t.Errorf("bad DSN: Passed %v, Error %q", r.Passed, r.Error)
	}
}

func TestCommandAppErrorLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, command string
		passed        bool
		want          string
	}{
		{"exit 0", "echo fine; echo 'warning: nothing' >&2", true, ""},
		{"last error line", "echo 'ERROR: first' >&2; echo 'fatal: second' >&2; echo 'bye' >&2; echo 'error on stdout'; exit 1", false, "fatal: second"},
		{"no error line", "echo 'just output' >&2; exit 3", false, "exit status 3"},
		{"killed", "kill -9 $$", false, "signal: killed"},
		{"command not found", "phasekit-no-such-command-xyz", false, "not found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := verify.CommandApp{AppName: tc.name, Command: tc.command}.Run(t.Context(), "postgres://u@127.0.0.1:1/db")
			if r.Passed != tc.passed || !strings.Contains(r.Error, tc.want) || (tc.want == "") != (r.Error == "") {
				t.Errorf("Passed %v, Error %q; want %v, %q\n%s", r.Passed, r.Error, tc.passed, tc.want, r.Output)
			}
		})
	}
}

func TestCommandAppOutput(t *testing.T) {
	t.Parallel()
	const dsn = "postgres://app:Sup3rSecret@127.0.0.1:1/db?sslmode=disable"

	t.Run("redacted", func(t *testing.T) {
		t.Parallel()
		r := verify.CommandApp{AppName: "leaky", Command: `echo "connecting to $DATABASE_URL"; echo "pw	$PGPASSWORD"; echo "error: cannot log in with password=$PGPASSWORD" >&2; exit 1`}.Run(t.Context(), dsn)
		if strings.Contains(r.Output+r.Error, "Sup3rSecret") {
			t.Errorf("password shown:\nError %q\n%s", r.Error, r.Output)
		}
		if !strings.Contains(r.Output, "connecting to postgres://app:xxxxx@127.0.0.1:1/db") || !strings.Contains(r.Output, "pw\txxxxx\n") {
			t.Errorf("output mangled by redaction:\n%s", r.Output)
		}
		if r.Error != "error: cannot log in with password=xxxxx" {
			t.Errorf("Error = %q", r.Error)
		}
	})

	t.Run("stdout and stderr", func(t *testing.T) {
		t.Parallel()
		r := verify.CommandApp{AppName: "both", Command: "echo to-stdout; echo to-stderr >&2"}.Run(t.Context(), dsn)
		if !strings.Contains(r.Output, "to-stdout\n") || !strings.Contains(r.Output, "to-stderr\n") {
			t.Errorf("Output = %q", r.Output)
		}
	})

	t.Run("truncated", func(t *testing.T) {
		t.Parallel()
		// 20,000 numbered lines, about 200 KB.
		r := verify.CommandApp{AppName: "chatty", Command: `i=0; while [ $i -lt 20000 ]; do echo "line $i of the output"; i=$((i+1)); done; echo "the end"`}.Run(t.Context(), dsn)
		if !r.Passed {
			t.Fatalf("failed: %s", r.Error)
		}
		if n := len(r.Output); n > 80<<10 || n < 32<<10 {
			t.Errorf("Output is %d bytes, want between 32 and 80 KiB", n)
		}
		for _, want := range []string{"line 0 of the output\n", "bytes omitted ...]\nline ", "line 19999 of the output\nthe end\n"} {
			if !strings.Contains(r.Output, want) {
				t.Errorf("Output lacks %q", want)
			}
		}
	})
}

// processGone waits up to 5 s for pid to be gone: reaped, or a zombie
// waiting for init, which it no longer is ours to reap.
func processGone(t *testing.T, pid int) bool {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); ; {
		err := syscall.Kill(pid, 0)
		if errors.Is(err, syscall.ESRCH) {
			return true
		}
		if stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil {
			if i := strings.LastIndexByte(string(stat), ')'); i > 0 && strings.HasPrefix(string(stat[i+1:]), " Z") {
				return true
			}
		}
		if time.Now().After(end) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readPid reads a pid a test command wrote to file, waiting up to 5 s for it.
func readPid(t *testing.T, file string) int {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); ; {
		b, err := os.ReadFile(file)
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil && pid > 0 {
			return pid
		}
		if time.Now().After(end) {
			t.Fatalf("no pid in %s: %v", file, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCommandAppKillsProcessGroup(t *testing.T) {
	t.Parallel()
	// The command leaves a child in the background and then hangs.
	for _, how := range []string{"timeout", "cancel", "exit"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			child, leader := filepath.Join(dir, "child"), filepath.Join(dir, "leader")
			cmd := "sleep 60 & echo $! > " + shq(child) + "; echo $$ > " + shq(leader) + "; "
			app := verify.CommandApp{AppName: how, Command: cmd + "sleep 60"}
			ctx := t.Context()
			var want string
			switch how {
			case "timeout":
				app.Timeout = 500 * time.Millisecond
				want = "timed out after 500ms"
			case "cancel":
				c, cancel := context.WithCancel(ctx)
				ctx = c
				go func() {
					defer cancel()
					for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
						if b, err := os.ReadFile(leader); err == nil && strings.HasSuffix(string(b), "\n") {
							return
						}
					}
				}()
				want = "cancelled: context canceled"
			case "exit":
				app.Command = cmd + "exit 0"
			}
			start := time.Now()
			r := app.Run(ctx, "postgres://u@127.0.0.1:1/db")
			if took := time.Since(start); took > 20*time.Second {
				t.Errorf("took %v", took)
			}
			if want == "" {
				if !r.Passed {
					t.Errorf("failed: %s", r.Error)
				}
			} else if r.Passed || r.Error != want {
				t.Errorf("Passed %v, Error %q; want %q", r.Passed, r.Error, want)
			}
			for _, f := range []string{leader, child} {
				if pid := readPid(t, f); !processGone(t, pid) {
					t.Errorf("%s process %d still running", filepath.Base(f), pid)
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		})
	}
}

func chinookWorkload(t *testing.T, version string) *verify.WorkloadApp {
	t.Helper()
	file := filepath.Join("..", "testdata", "apps", "chinook", version+".sql")
	w, err := verify.LoadWorkload("", file)
	if err != nil {
		t.Fatal(err)
	}
	if w.Name() != version+".sql" || w.Statements() != 5 {
		t.Errorf("Name() = %q, Statements() = %d; want %s.sql, 5", w.Name(), w.Statements(), version)
	}
	return w
}

// assertWorkloadFail checks that r failed at a statement of file that uses
// col, with the server's error.
func assertWorkloadFail(t *testing.T, r verify.AppResult, file, col string) {
	t.Helper()
	if r.Passed {
		t.Fatalf("passed, want a failure on column %s\n%s", col, r.Output)
	}
	m := regexp.MustCompile(`^(.*):(\d+):(\d+): ERROR: column "?` + "(?:c\\.)?" + col + `"? does not exist \(SQLSTATE 42703\)$`).FindStringSubmatch(r.Error)
	if m == nil {
		t.Fatalf("Error = %q, want file:line:col: ERROR: column %s does not exist (SQLSTATE 42703)", r.Error, col)
	}
	if m[1] != file {
		t.Errorf("Error names file %s, want %s", m[1], file)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(m[2])
	lines := strings.Split(string(b), "\n")
	if n < 1 || n > len(lines) || !strings.HasPrefix(lines[n-1], "SELECT") || !strings.Contains(lines[n-1], col) || m[3] != "1" {
		t.Errorf("Error names %s:%s:%s, not the start of a statement using %s", file, m[2], m[3], col)
	}
}

func TestWorkloadChinook(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDB(t, "chinook")
	ctx := t.Context()
	v1, v2 := chinookWorkload(t, "v1"), chinookWorkload(t, "v2")
	before := customerState(t, dsn, "email")

	r := v1.Run(ctx, dsn)
	assertPass(t, r)
	if !strings.Contains(r.Output, "UPDATE 1") || strings.Count(r.Output, "\n") != 5 {
		t.Errorf("Output should have one line per statement:\n%s", r.Output)
	}
	r = v2.Run(ctx, dsn)
	assertWorkloadFail(t, r, filepath.Join("..", "testdata", "apps", "chinook", "v2.sql"), "email_address")
	// It goes on past the first failure: every statement of v2 fails here.
	if n := strings.Count(r.Output, "SQLSTATE 42703"); n != 5 {
		t.Errorf("%d failures in Output, want 5:\n%s", n, r.Output)
	}

	renameEmail(t, dsn)
	assertPass(t, v2.Run(ctx, dsn))
	assertWorkloadFail(t, v1.Run(ctx, dsn), filepath.Join("..", "testdata", "apps", "chinook", "v1.sql"), "email")
	if got := customerState(t, dsn, "email_address"); got != before {
		t.Errorf("after the workloads: %s, want %s", got, before)
	}
}

func TestWorkloadParams(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDB(t, "")
	// Each check divides by zero unless its parameters arrived as written.
	src := `CREATE TABLE t (id int PRIMARY KEY, s text, d date);
-- params: 42, 'it''s', NULL, true, -1.5, '2024-01-02'::date, 12345678901, E'tab\there'
SELECT 1 / (CASE WHEN $1 = 42 AND $2 = 'it''s' AND $3::text IS NULL AND $4 AND $5 = -1.5
                  AND $6 = date '2024-01-02' AND $7 = 12345678901 AND $8 = E'tab\there' THEN 1 ELSE 0 END);
--params:7,'x;y',   '2024-02-29'
INSERT INTO t VALUES ($1, $2, $3);
/* a C comment; with a semicolon */
SELECT 1 / (SELECT count(*) FROM t WHERE id = 7 AND s = 'x;y' AND d = '2024-02-29')::int;
-- params: 8, 'no such date'
INSERT INTO t VALUES ($1, '', $2::date);
SELECT 1/0
`
	file := filepath.Join(t.TempDir(), "params.sql")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := verify.LoadWorkload("params", file)
	if err != nil {
		t.Fatal(err)
	}
	if w.Name() != "params" || w.Statements() != 6 {
		t.Errorf("Name() = %q, Statements() = %d", w.Name(), w.Statements())
	}
	r := w.Run(t.Context(), dsn)
	if r.Passed {
		t.Fatalf("passed:\n%s", r.Output)
	}
	want := file + `:10:1: ERROR: invalid input syntax for type date: "no such date" (SQLSTATE 22007)`
	if r.Error != want {
		t.Errorf("Error = %q\nwant    %q\n%s", r.Error, want, r.Output)
	}
	for _, line := range []string{file + ":1:1: CREATE TABLE", file + ":3:1: SELECT 1", file + ":6:1: INSERT 0 1", file + ":8:1: SELECT 1",
		file + ":11:1: ERROR: division by zero (SQLSTATE 22012)"} {
		if !strings.Contains(r.Output, line) {
			t.Errorf("Output lacks %q:\n%s", line, r.Output)
		}
	}
}

func TestLoadWorkloadErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, src string
		want      string // line:col: message prefix
	}{
		{"syntax error", "SELECT 1;\nSELEC email FROM customer;\n", "2:1: syntax error: syntax error at or near \"SELEC\""},
		{"syntax error mid-line", "SELECT 1;\n-- ünïcode\nSELECT ünï FROM t WHERE;\n", "3:24: syntax error"},
		{"unterminated string", "SELECT 1;\nSELECT 'abc\n", "2:8: syntax error: unterminated quoted string"},
		{"no params", "SELECT 1;\n\n  SELECT $1;", "3:3: the statement uses $1..$1 but no \"-- params:\" comment"},
		{"too few params", "-- params: 1\nSELECT $1 + $2;", "1:1: 1 params for a statement that uses 2 ($1..$2)"},
		{"params without placeholders", "-- params: 1\nSELECT 1;", "1:1: params comment for a statement without placeholders"},
		{"two params comments", "-- params: 1\n-- params: 2\nSELECT $1;", "2:1: a second params comment"},
		{"not a literal", "-- params: 1, now(), 'x'\nSELECT $1, $2, $3;", "1:15: params: value 2: want a literal"},
		{"column reference", "-- params: 1, email\nSELECT $1, $2;", "1:15: params: value 2: want a literal"},
		{"params syntax error", "SELECT 1;\n-- params: 1, 'x\nSELECT $1, $2;", "2:15: params: unterminated quoted string"},
		{"params trailing comma", "-- params: 1,\nSELECT $1;", "1:14: params: syntax error"},
		{"params not a list", "-- params: 1 FROM t\nSELECT $1;", "1:11: params: want a comma-separated list of literals"},
		{"stray params comment", "SELECT 1;\n-- params: 1\n", "2:1: params comment with no statement after it"},
		{"empty", "-- nothing here\n", "1:1: no statements"},
		{"transaction", "BEGIN;\nSELECT 1;\nCOMMIT;", "1:1: transaction control is not supported"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			file := filepath.Join(t.TempDir(), "w.sql")
			if err := os.WriteFile(file, []byte(tc.src), 0o644); err != nil {
				t.Fatal(err)
			}
			w, err := verify.LoadWorkload("w", file)
			if err == nil {
				t.Fatalf("loaded %d statements, want error %s", w.Statements(), tc.want)
			}
			var ie *change.InputError
			if !errors.As(err, &ie) {
				t.Errorf("error %v (%T) is not a *change.InputError", err, err)
			}
			if !strings.HasPrefix(err.Error(), file+":"+tc.want) {
				t.Errorf("error = %q\nwant      %q...", err, file+":"+tc.want)
			}
		})
	}

	_, err := verify.LoadWorkload("", filepath.Join(t.TempDir(), "missing.sql"))
	var ie *change.InputError
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), "missing.sql") {
		t.Errorf("missing file: %v", err)
	}
}
