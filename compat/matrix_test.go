package compat_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/compat"
	"github.com/phasekit/phasekit/internal/testkit/golden"
	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/verify"
	"github.com/phasekit/phasekit/verify/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// planChinook plans file against the Chinook schema into a temp directory.
func planChinook(t *testing.T, file string) string {
	t.Helper()
	dsn := pgtest.NewDB(t, "chinook-schema")
	snap, err := verify.SnapshotFromDSN(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	var m *change.Migration
	if strings.HasSuffix(file, ".sql") {
		m, err = change.ReadSQLFile(file)
	} else {
		m, err = change.ReadSpecFile(file)
	}
	if err != nil {
		t.Fatal(err)
	}
	p, err := phases.Build(snap, m)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := migrations.Write(dir, p, func(*phases.Plan) string { return "" }); err != nil {
		t.Fatal(err)
	}
	return dir
}

func chinookApps(t *testing.T) (old, new []verify.App) {
	app := pgtest.SampleApp(t)
	for _, v := range []struct {
		version string
		dst     *[]verify.App
	}{{"v1", &old}, {"v2", &new}} {
		*v.dst = append(*v.dst, &verify.CommandApp{AppName: v.version + " check", Command: app + " -version " + v.version + " check"})
		w, err := verify.LoadWorkload(v.version+".sql", "../testdata/apps/chinook/"+v.version+".sql")
		if err != nil {
			t.Fatal(err)
		}
		*v.dst = append(*v.dst, w)
	}
	return old, new
}

func cell(t *testing.T, m compat.Matrix, boundary, version string) compat.Cell {
	t.Helper()
	for _, b := range m.Boundaries {
		if b.Name != boundary {
			continue
		}
		for _, c := range b.Cells {
			if c.Version == version {
				return c
			}
		}
	}
	t.Fatalf("%s: no cell %q / %s", m.Name, boundary, version)
	return compat.Cell{}
}

// runRename runs the Chinook rename's matrix on sandbox sb.
func runRename(t *testing.T, sb verify.Sandbox) *compat.Result {
	t.Helper()
	dir := planChinook(t, "../testdata/demo/rename_email.sql")
	old, new := chinookApps(t)
	shadow, err := compat.LoadShadow("../testdata/apps/chinook/shadow.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	res, err := compat.Run(t.Context(), compat.Options{
		PlanDir: dir, Sandbox: sb,
		Copy: verify.CopyOptions{Data: pgtest.DatasetFile(t, "chinook/chinook.dump")},
		Old:  old, New: new, Shadow: shadow, Progress: &progress,
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	t.Logf("progress:\n%s", progress.String())
	return res
}

// checkRename asserts what the acceptance criteria say of the rename.
func checkRename(t *testing.T, res *compat.Result) {
	t.Helper()
	var text bytes.Buffer
	_ = compat.WriteText(&text, res)
	t.Logf("\n%s", text.String())
	if !res.Passed {
		t.Fatalf("the phased plan failed a required cell: %v", res.Failures)
	}
	want := []string{"before expand", "after expand", "after dual-write", "after backfill", "after contract"}
	var got []string
	for _, b := range res.Phased.Boundaries {
		got = append(got, b.Name)
		for _, c := range b.Cells {
			if c.Required && c.Status != compat.StatusPass {
				t.Errorf("%s %s %s: %s", b.Name, c.Version, c.App, c.Status)
			}
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("boundaries %v, want %v", got, want)
	}
	// N before contract must work; N after contract is expected to break,
	// with the real error.
	for _, b := range want[:4] {
		if c := cell(t, res.Phased, b, compat.Old); c.Status != compat.StatusPass {
			t.Errorf("N at %s: %s %s", b, c.Status, c.Error)
		}
	}
	gone := cell(t, res.Phased, "after contract", compat.Old)
	if gone.Status != compat.StatusExpectedBreak || !strings.Contains(gone.Error, `column "email" does not exist`) {
		t.Errorf("N after contract: %s %q, want expected-break on the missing column", gone.Status, gone.Error)
	}
	if c := cell(t, res.Phased, "after backfill", compat.New); c.Status != compat.StatusPass {
		t.Errorf("N+1 after backfill: %s %s", c.Status, c.Error)
	}
	// The naive migration breaks N at once, with PostgreSQL's own error.
	if res.Naive == nil {
		t.Fatal("no naive matrix")
	}
	naive := cell(t, *res.Naive, "after naive migration", compat.Old)
	if naive.Status != compat.StatusBreaks || !strings.Contains(naive.Error, `column "email" does not exist`) || !strings.Contains(naive.Error, "42703") {
		t.Errorf("naive migration, N after: %s %q, want breaks with 42703", naive.Status, naive.Error)
	}
	// Shadow reads: pending after dual-write, all equal after backfill.
	for _, b := range res.Phased.Boundaries {
		for _, s := range b.Shadow {
			if !s.Passed {
				t.Errorf("%s shadow %s: %s", b.Name, s.Name, s.Summary)
			}
			if b.Phase == phases.DualWrite && s.Pending == 0 {
				t.Errorf("after dual-write no row was pending backfill: %+v", s)
			}
			if b.Phase == phases.Backfill && (s.Pending != 0 || s.Rows < 59) {
				t.Errorf("after backfill: %+v", s)
			}
		}
	}
}

func TestChinookRenameMatrixLocal(t *testing.T) {
	res := runRename(t, pgtest.Cluster(t))
	checkRename(t, res)

	t.Run("junit", func(t *testing.T) {
		var buf bytes.Buffer
		if err := compat.WriteJUnit(&buf, res); err != nil {
			t.Fatal(err)
		}
		var suites struct {
			Tests    int `xml:"tests,attr"`
			Failures int `xml:"failures,attr"`
			Suites   []struct {
				Name  string `xml:"name,attr"`
				Cases []struct {
					Name    string    `xml:"name,attr"`
					Failure *struct{} `xml:"failure"`
					Skipped *struct {
						Message string `xml:"message,attr"`
					} `xml:"skipped"`
				} `xml:"testcase"`
			} `xml:"testsuite"`
		}
		if err := xml.Unmarshal(buf.Bytes(), &suites); err != nil {
			t.Fatalf("JUnit does not parse: %v\n%s", err, buf.String())
		}
		if suites.Failures != 0 || len(suites.Suites) != 2 || suites.Tests == 0 {
			t.Fatalf("tests=%d failures=%d suites=%d", suites.Tests, suites.Failures, len(suites.Suites))
		}
		var expected, naiveBreaks int
		for _, s := range suites.Suites {
			for _, c := range s.Cases {
				if c.Skipped != nil && strings.HasPrefix(c.Skipped.Message, "expected to break") {
					expected++
				}
				if c.Skipped != nil && strings.Contains(c.Skipped.Message, "naive migration breaks") {
					naiveBreaks++
				}
			}
		}
		if expected == 0 || naiveBreaks == 0 {
			t.Errorf("expected-to-break cases %d, naive breaks %d: want both > 0\n%s", expected, naiveBreaks, buf.String())
		}
	})

	t.Run("markdown golden", func(t *testing.T) {
		var buf bytes.Buffer
		if err := compat.WriteMarkdown(&buf, normalise(res)); err != nil {
			t.Fatal(err)
		}
		golden.Check(t, "testdata/golden/rename_email.md", buf.Bytes())
	})
}

func TestChinookRenameMatrixDocker(t *testing.T) {
	sb := dockerSandbox(t)
	res := runRename(t, sb)
	checkRename(t, res)
	// Same matrix as the local provider's.
	local := runRename(t, pgtest.Cluster(t))
	if a, b := statuses(res), statuses(local); a != b {
		t.Errorf("docker and local matrices differ:\ndocker:\n%s\nlocal:\n%s", a, b)
	}
}

func dockerSandbox(t *testing.T) verify.Sandbox {
	t.Helper()
	image := pgtest.DockerImage(t)
	sb, err := verify.StartDocker(t.Context(), verify.DockerOptions{Image: image})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sb.Close(); err != nil {
			t.Error(err)
		}
	})
	return sb
}

func statuses(r *compat.Result) string {
	var b strings.Builder
	for _, m := range []*compat.Matrix{&r.Phased, r.Naive} {
		for _, bd := range m.Boundaries {
			for _, c := range bd.Cells {
				b.WriteString(bd.Name + " " + c.Version + " " + c.App + " " + string(c.Status) + "\n")
			}
		}
	}
	return b.String()
}

// normalise drops what changes between runs (times, ports, sizes).
func normalise(r *compat.Result) *compat.Result {
	n := *r
	n.Sandbox = "a local PostgreSQL cluster"
	n.Copy = nil
	n.Duration = 0
	n.Sources = []string{"testdata/demo/rename_email.sql"}
	return &n
}

// A conversion that multiplies by 10 instead of 100: every app still runs,
// only the shadow reads can tell.
const wrongConversion = `changes:
  - kind: change_type
    table: invoice
    column: total
    new_name: total_cents
    type: bigint
    up: "round(total * %s)::bigint"
    down: "(total_cents / %s.0)::numeric(10,2)"
`

const invoiceShadow = `- name: invoice totals
  old: SELECT invoice_id, total FROM invoice
  new: SELECT invoice_id, total_cents / 100.0 FROM invoice
`

func TestShadowReadsCatchWrongConversion(t *testing.T) {
	shadowFile := filepath.Join(t.TempDir(), "shadow.yaml")
	if err := os.WriteFile(shadowFile, []byte(invoiceShadow), 0o644); err != nil {
		t.Fatal(err)
	}
	pairs, err := compat.LoadShadow(shadowFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		factor string
		pass   bool
	}{{"100", true}, {"10", false}} {
		t.Run("factor "+tc.factor, func(t *testing.T) {
			spec := filepath.Join(t.TempDir(), "retype.yaml")
			if err := os.WriteFile(spec, []byte(strings.ReplaceAll(wrongConversion, "%s", tc.factor)), 0o644); err != nil {
				t.Fatal(err)
			}
			dir := planChinook(t, spec)
			res, err := compat.Run(t.Context(), compat.Options{
				PlanDir: dir, Sandbox: pgtest.Cluster(t), SkipNaive: true, Shadow: pairs,
				Copy: verify.CopyOptions{Data: pgtest.DatasetFile(t, "chinook/chinook.dump")},
			})
			if err != nil {
				t.Fatal(err)
			}
			var after *compat.ShadowCheck
			for _, b := range res.Phased.Boundaries {
				if b.Phase == phases.Backfill && len(b.Shadow) == 1 {
					after = &b.Shadow[0]
				}
			}
			if after == nil {
				t.Fatalf("no shadow check after backfill: %+v", res.Phased)
			}
			if after.Passed != tc.pass || res.Passed != tc.pass {
				t.Fatalf("shadow after backfill passed=%v (run passed=%v), want %v: %s", after.Passed, res.Passed, tc.pass, after.Summary)
			}
			if !tc.pass {
				if after.Differ != 412 || len(after.Diffs) == 0 || !strings.Contains(after.Diffs[0], "key 1: old (1, 1.98), new (1, 0.2") {
					t.Errorf("want all 412 invoices to differ, first key 1: %+v", after)
				}
			}
		})
	}
}

func TestLoadShadowErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"- name: x\n  old: SELECT 1\n  new: SELEC 2\n", "shadow.yaml:3:8: shadow pair \"x\", new query: syntax error"},
		{"- name: x\n  old: SELECT 1\n", "shadow.yaml:1:3: shadow pair needs \"new\""},
		{"- name: x\n  old: SELECT 1\n  new: SELECT 1\n  olde: y\n", "shadow.yaml:4:3: unknown key \"olde\""},
		{"name: x\n", "shadow.yaml:1:1: want a list"},
		{"- name: x\n  old: DELETE FROM t\n  new: SELECT 1\n", "shadow.yaml:2:8: shadow pair \"x\", old query: want exactly one SELECT"},
		{"- [\n", "shadow.yaml:1:1: invalid YAML"},
	} {
		file := filepath.Join(t.TempDir(), "shadow.yaml")
		if err := os.WriteFile(file, []byte(tc.text), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := compat.LoadShadow(file)
		if err == nil || !strings.Contains(strings.ReplaceAll(err.Error(), filepath.Dir(file)+"/", ""), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.text, err, tc.want)
		}
	}
}

func TestZetaAcrossPhases(t *testing.T) {
	app := pgtest.SampleApp(t)
	dir := planChinook(t, "../testdata/demo/rename_email.sql")
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	res, err := compat.Run(ctx, compat.Options{
		PlanDir: dir, Sandbox: pgtest.Cluster(t), SkipNaive: true,
		Copy: verify.CopyOptions{Data: pgtest.DatasetFile(t, "chinook/chinook.dump")},
		Zeta: &compat.ZetaOptions{
			NewFrontend: app + " -version v2 frontend", OldBackend: app + " -version v1 serve",
			Reverse:     true,
			OldFrontend: app + " -version v1 frontend", NewBackend: app + " -version v2 serve",
			Ready: "http://127.0.0.1:{port}/health",
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]compat.Status{ // boundary: forward, reverse
		"before expand": {compat.StatusPass, compat.StatusExpectedBreak},
		// The N+1 backend reads email_address, NULL until the backfill:
		// why N+1 is not deployed before it.
		"after expand":     {compat.StatusPass, compat.StatusExpectedBreak},
		"after dual-write": {compat.StatusPass, compat.StatusExpectedBreak},
		"after backfill":   {compat.StatusPass, compat.StatusPass},
		"after contract":   {compat.StatusExpectedBreak, compat.StatusPass},
	}
	for _, b := range res.Phased.Boundaries {
		w, ok := want[b.Name]
		if !ok || len(b.Zeta) != 2 {
			t.Fatalf("%s: %d zeta cells", b.Name, len(b.Zeta))
		}
		for i, z := range b.Zeta {
			if z.Status != w[i] {
				t.Errorf("%s %s: %s (%s), want %s", b.Name, z.Name, z.Status, z.Error, w[i])
			}
		}
	}
	if !res.Passed {
		t.Errorf("zeta run failed: %v", res.Failures)
	}
	// Both logs of the pairing that broke reach the report.
	var md bytes.Buffer
	if err := compat.WriteMarkdown(&md, res); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"after contract: zeta N+1 frontend → N backend logs", `column "email" does not exist`, "Frontend:"} {
		if !strings.Contains(md.String(), s) {
			t.Errorf("markdown lacks %q:\n%s", s, md.String())
		}
	}
}

// TestFixedKeyWorkloads: two app versions whose workloads insert the same
// fixed key, as most fixtures and integration tests do, pass at every
// boundary: each cell runs on a copy of its own, so no cell sees another's
// rows.
func TestFixedKeyWorkloads(t *testing.T) {
	dir := planChinook(t, "../testdata/demo/rename_email.sql")
	write := func(name, col string) verify.App {
		f := filepath.Join(t.TempDir(), name)
		sql := "INSERT INTO customer (customer_id, first_name, last_name, " + col + ") VALUES (9000, 'Fixed', 'Key', 'fixed@example.org');\n" +
			"SELECT " + col + " FROM customer WHERE customer_id = 9000;\n"
		if err := os.WriteFile(f, []byte(sql), 0o644); err != nil {
			t.Fatal(err)
		}
		w, err := verify.LoadWorkload(name, f)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	res, err := compat.Run(t.Context(), compat.Options{
		PlanDir: dir, Sandbox: pgtest.Cluster(t),
		Copy: verify.CopyOptions{Data: pgtest.DatasetFile(t, "chinook/chinook.dump")},
		Old:  []verify.App{write("old-fixture.sql", "email")}, New: []verify.App{write("new-fixture.sql", "email_address")},
		SkipNaive: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Passed {
		t.Fatalf("fixed-key workloads failed: %v", res.Failures)
	}
	for _, b := range res.Phased.Boundaries {
		for _, c := range b.Cells {
			if c.Required && c.Status != compat.StatusPass {
				t.Errorf("%s %s: %s %s", b.Name, c.Version, c.Status, c.Error)
			}
		}
	}
}
