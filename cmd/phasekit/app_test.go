package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/throttle"
	"github.com/phasekit/phasekit/verify/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func phasekit(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(append([]string{"phasekit"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPlanFromDSNWritesFiles(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDB(t, "chinook")
	mig := writeFile(t, "001_rename.up.sql", "ALTER TABLE customer RENAME COLUMN email TO email_address;\n")
	out := filepath.Join(t.TempDir(), "plan")
	code, stdout, stderr := phasekit(t, "--dsn", dsn, "plan", "--out", out, mig)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "wrote 4 migration(s)") {
		t.Errorf("stdout: %s", stdout)
	}
	b, err := os.ReadFile(filepath.Join(out, "plan.json"))
	if err != nil {
		t.Fatal(err)
	}
	var plan struct {
		Phases []struct {
			Kind       string `json:"kind"`
			Statements []struct {
				SQL  string `json:"sql"`
				Lock string `json:"lock"`
			} `json:"statements"`
			Files []string `json:"files"`
		} `json:"phases"`
	}
	if err := json.Unmarshal(b, &plan); err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, p := range plan.Phases {
		kinds = append(kinds, p.Kind)
		if len(p.Files) == 0 {
			t.Errorf("phase %s lists no files", p.Kind)
		}
	}
	if got := strings.Join(kinds, ","); got != "expand,dual-write,backfill,contract" {
		t.Errorf("phases %s", got)
	}
	if plan.Phases[0].Statements[0].Lock != "ACCESS EXCLUSIVE" {
		t.Errorf("expand lock %q", plan.Phases[0].Statements[0].Lock)
	}
	md, err := os.ReadFile(filepath.Join(out, "PLAN.md"))
	if err != nil || !strings.Contains(string(md), "## Phase 2: dual-write") {
		t.Errorf("PLAN.md: %v\n%s", err, md)
	}
	ups, _ := filepath.Glob(filepath.Join(out, "*.up.sql"))
	downs, _ := filepath.Glob(filepath.Join(out, "*.down.sql"))
	if len(ups) != 4 || len(downs) != 4 {
		t.Errorf("%d up and %d down files", len(ups), len(downs))
	}
	// The directory is not overwritten.
	if code, _, stderr := phasekit(t, "--dsn", dsn, "plan", "--out", out, mig); code == 0 || !strings.Contains(stderr, "not empty") {
		t.Errorf("second plan into the same dir: exit %d, %s", code, stderr)
	}
}

func TestPlanFromSchemaFileFormats(t *testing.T) {
	t.Parallel()
	schema := pgtest.DatasetFile(t, "chinook/chinook-schema.sql")
	mig := writeFile(t, "m.sql", "ALTER TABLE customer RENAME COLUMN email TO email_address;\n")
	for _, format := range []string{"text", "json", "markdown"} {
		code, stdout, stderr := phasekit(t, "--format", format, "plan", "--schema", schema, mig)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", format, code, stderr)
		}
		if !strings.Contains(stdout, "dual-write") || !strings.Contains(stdout, "email_address") {
			t.Errorf("%s output lacks the plan:\n%s", format, stdout)
		}
		if format == "json" && !json.Valid([]byte(stdout)) {
			t.Errorf("json output is not JSON")
		}
	}
}

func TestBadInputExitsTwo(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDB(t, "chinook")
	cases := []struct {
		name, file, body string
		args             []string
		want             []string
	}{
		{name: "malformed SQL", file: "bad.sql", body: "SELECT 1;\nALTER TABLE customer RENAM COLUMN a TO b;\n", want: []string{"bad.sql:2:22: syntax error"}},
		{name: "missing table", file: "t.sql", body: "ALTER TABLE custmer RENAME COLUMN email TO e;\n", want: []string{"t.sql:1:1", "public.custmer does not exist", "did you mean public.customer"}},
		{name: "missing column", file: "c.sql", body: "\nALTER TABLE customer RENAME COLUMN emial TO e;\n", want: []string{"c.sql:2:1", "column emial", "did you mean email"}},
		{name: "malformed YAML", file: "s.yaml", body: "changes:\n  - kind: set_not_null\n    table: [\n", want: []string{"s.yaml:"}},
		{name: "bad DSN", file: "ok.sql", body: "ALTER TABLE customer DROP COLUMN fax;\n", args: []string{"--dsn", "postgres://u:secret@127.0.0.1:1/x?connect_timeout=2"}, want: []string{"cannot connect"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, tc.file, tc.body)
			args := tc.args
			if args == nil {
				args = []string{"--dsn", dsn}
			}
			before := tableCount(t, dsn)
			code, _, stderr := phasekit(t, append(args, "plan", path)...)
			if code != 2 {
				t.Fatalf("exit %d, want 2; stderr: %s", code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q lacks %q", stderr, w)
				}
			}
			if strings.Contains(stderr, "secret") {
				t.Errorf("password printed: %s", stderr)
			}
			if after := tableCount(t, dsn); after != before {
				t.Errorf("database changed: %d tables before, %d after", before, after)
			}
		})
	}
}

func tableCount(t *testing.T, dsn string) int {
	t.Helper()
	var n int
	if err := pgtest.Conn(t, dsn).QueryRow(t.Context(), "SELECT count(*) FROM pg_class WHERE relkind = 'r'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestLintExitCodes(t *testing.T) {
	t.Parallel()
	unsafe := writeFile(t, "u.sql", "ALTER TABLE customer RENAME COLUMN email TO email_address;\n")
	safe := writeFile(t, "s.sql", "SET lock_timeout = '2s';\nCREATE TABLE note (id bigint PRIMARY KEY, body text);\nALTER TABLE note ADD COLUMN at timestamptz;\n")
	allowed := writeFile(t, "a.sql", "SET lock_timeout = '2s';\n-- phasekit:allow rename-column nobody reads it yet\nALTER TABLE customer RENAME COLUMN email TO email_address;\n")
	if code, out, _ := phasekit(t, "lint", unsafe); code != 1 || !strings.Contains(out, "rename-column") || !strings.Contains(out, "u.sql:1:1") {
		t.Errorf("unsafe: exit %d\n%s", code, out)
	}
	if code, out, stderr := phasekit(t, "lint", safe); code != 0 {
		t.Errorf("safe: exit %d\n%s%s", code, out, stderr)
	}
	if code, out, _ := phasekit(t, "lint", allowed); code != 0 || !strings.Contains(out, "nobody reads it yet") {
		t.Errorf("allowed: exit %d\n%s", code, out)
	}
	code, out, _ := phasekit(t, "--format", "sarif", "lint", unsafe)
	if code != 1 || !json.Valid([]byte(out)) || !strings.Contains(out, `"ruleId": "rename-column"`) {
		t.Errorf("sarif: exit %d\n%s", code, out)
	}
	bad := writeFile(t, "b.sql", "ALTER TABLE;\n")
	if code, _, stderr := phasekit(t, "lint", bad); code != 2 || !strings.Contains(stderr, "b.sql:1:") {
		t.Errorf("malformed: exit %d, %s", code, stderr)
	}
}

func TestSpecSchemaAndVersion(t *testing.T) {
	t.Parallel()
	code, out, _ := phasekit(t, "spec-schema")
	if code != 0 || !json.Valid([]byte(out)) || !strings.Contains(out, "split_column") {
		t.Errorf("spec-schema: exit %d\n%s", code, out)
	}
	if code, out, _ := phasekit(t, "version"); code != 0 || !strings.HasPrefix(out, "phasekit ") {
		t.Errorf("version: exit %d %q", code, out)
	}
}

func TestApplyExitCodes(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDB(t, "chinook")
	mig := writeFile(t, "m.sql", "ALTER TABLE customer RENAME COLUMN email TO email_address;\n")
	out := filepath.Join(t.TempDir(), "plan")
	if code, _, stderr := phasekit(t, "--dsn", dsn, "plan", "--out", out, mig); code != 0 {
		t.Fatalf("plan: %d %s", code, stderr)
	}
	if code, stdout, stderr := phasekit(t, "--dsn", dsn, "apply", "--plan", out, "--until", "backfill"); code != 0 || !strings.Contains(stdout, "000003_backfill_customer: done") {
		t.Fatalf("apply: %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, _ := phasekit(t, "--dsn", dsn, "--format", "json", "status", "--plan", out)
	if code != 0 || !json.Valid([]byte(stdout)) || !strings.Contains(stdout, `"state": "done"`) {
		t.Fatalf("status: %d\n%s", code, stdout)
	}
	// Another runner holds the plan's lock: exit 4, holder named.
	plan, err := os.ReadFile(filepath.Join(out, "plan.json"))
	if err != nil {
		t.Fatal(err)
	}
	var p struct{ Hash string }
	if err := json.Unmarshal(plan, &p); err != nil {
		t.Fatal(err)
	}
	holder := pgtest.Conn(t, dsn)
	var pid int
	if err := holder.QueryRow(t.Context(), "SELECT pg_backend_pid() FROM (SELECT pg_advisory_lock($1, hashtext($2))) l", 0x70686b, p.Hash).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := phasekit(t, "--dsn", dsn, "apply", "--plan", out, "--phase", "contract")
	if code != 4 || !strings.Contains(stderr, "pid") {
		t.Fatalf("locked: exit %d, %s", code, stderr)
	}
	if _, err := holder.Exec(t.Context(), "SELECT pg_advisory_unlock_all()"); err != nil {
		t.Fatal(err)
	}
	// Phases out of order, a bad phase name: exit 2.
	if code, _, stderr := phasekit(t, "--dsn", dsn, "rollback", "--plan", out, "--to", "nonsense"); code != 2 {
		t.Fatalf("bad --to: exit %d, %s", code, stderr)
	}
	if code, stdout, stderr := phasekit(t, "--dsn", dsn, "rollback", "--plan", out, "--all"); code != 0 || !strings.Contains(stdout, "rolled back") {
		t.Fatalf("rollback: %d\n%s%s", code, stdout, stderr)
	}
	if code, _, stderr := phasekit(t, "--dsn", dsn, "purge", "--older-than", "1h", "--dry-run"); code != 0 {
		t.Fatalf("purge: %d %s", code, stderr)
	}
}

func TestLintDataChecks(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDB(t, "chinook")
	mig := writeFile(t, "n.sql", "SET lock_timeout = '2s';\n-- phasekit:allow set-not-null checked below\nALTER TABLE customer ALTER COLUMN company SET NOT NULL;\n")
	code, out, stderr := phasekit(t, "--dsn", dsn, "--format", "json", "lint", mig)
	if code != 1 || !strings.Contains(out, `"data-nulls"`) {
		t.Fatalf("exit %d, want 1 with a data-nulls finding\n%s%s", code, out, stderr)
	}
	var res struct {
		Data []struct {
			Rule  string `json:"rule"`
			Count int64  `json:"count"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	var nulls int64
	if err := pgtest.Conn(t, dsn).QueryRow(t.Context(), "SELECT count(*) FROM customer WHERE company IS NULL").Scan(&nulls); err != nil {
		t.Fatal(err)
	}
	if len(res.Data) != 1 || res.Data[0].Count != nulls || nulls == 0 {
		t.Fatalf("data findings %+v, want one counting %d NULLs", res.Data, nulls)
	}
}

// TestBackfillFlagsChecked: guard settings that cannot mean anything are
// refused with exit 2 before apply touches the database.
func TestBackfillFlagsChecked(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDB(t, "chinook")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--max-latency-ratio", "0.5"}, "--max-latency-ratio 0.5: give 1 or more"},
		{[]string{"--max-latency-ratio", "-1"}, "--max-latency-ratio -1"},
		{[]string{"--probe-interval", "0s"}, "--probe-interval 0s: must be positive"},
		{[]string{"--probe-baseline", "1ms"}, "--probe-baseline 1ms: must be at least one --probe-interval"},
		{[]string{"--app-p99", "-2ms"}, "--app-p99 -2ms: must not be negative"},
		{[]string{"--wal-compression", "gzip"}, `--wal-compression "gzip": give pglz, lz4, zstd or off`},
		{[]string{"--app-latency-query", "up"}, "--app-latency-query needs --prometheus URL"},
		{[]string{"--app-latency-probe-ratio", "0.5"}, "--app-latency-probe-ratio 0.5: give 1 or more"},
		{[]string{"--app-latency-query", "up", "--max-latency-ratio", "0", "--prometheus", "http://127.0.0.1:1"}, "--app-latency-query is read by the latency guard, which --max-latency-ratio 0 turns off"},
		{[]string{"--app-latency-every", "0s"}, "--app-latency-every 0s, --app-latency-lag 30s, --app-latency-baseline 5m0s: all must be positive"},
	} {
		before := tableCount(t, dsn)
		args := append([]string{"--dsn", dsn, "apply", "--plan", t.TempDir()}, tc.args...)
		code, _, stderr := phasekit(t, args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
		if after := tableCount(t, dsn); after != before {
			t.Errorf("%v: %d tables before, %d after", tc.args, before, after)
		}
	}
}

// TestBackfillFlagsReachTheGuard: the guard's flags end up in its
// configuration (--app-p99 included); --max-latency-ratio 0 leaves none.
func TestBackfillFlagsReachTheGuard(t *testing.T) {
	t.Parallel()
	read := func(args ...string) migrations.BackfillOptions {
		t.Helper()
		var got migrations.BackfillOptions
		app := &cli.App{Flags: backfillFlags(), Action: func(c *cli.Context) error {
			var err error
			got, err = backfillOptions(c, nil)
			return err
		}}
		if err := app.Run(append([]string{"phasekit"}, args...)); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return got
	}
	o := read("--app-p99", "3ms", "--max-latency-ratio", "2", "--probe-baseline", "2s")
	if o.Guard == nil || o.Guard.AppP99 != 3*time.Millisecond || o.Guard.MaxRatio != 2 || o.Guard.BaselineFor != 2*time.Second {
		t.Errorf("guard %+v, want app p99 3ms, ratio 2, baseline 2s", o.Guard)
	}
	if o := read(); o.Guard == nil || o.Guard.AppP99 != 0 || o.Guard.MaxRatio != throttle.DefaultMaxRatio {
		t.Errorf("defaults: guard %+v, want the default ratio and no app p99", o.Guard)
	}
	if o := read("--max-latency-ratio", "0", "--app-p99", "3ms"); o.Guard != nil {
		t.Errorf("guard off: %+v", o.Guard)
	}
}
