package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/verify/pgtest"
)

// The Chinook demo's plan and verify result, kept by the report package's
// tests, and the shipped pipeline.
var (
	demoPlan     = filepath.Join("..", "..", "report", "testdata", "chinook-plan")
	demoVerify   = filepath.Join("..", "..", "report", "testdata", "chinook.verify.json")
	demoPipeline = filepath.Join("..", "..", "testdata", "pipeline", "pipeline.yaml")
)

func TestReportMarkdownToStdout(t *testing.T) {
	t.Parallel()
	code, stdout, stderr := phasekit(t, "report", "--plan", demoPlan, "--pipeline", demoPipeline, "--verify", demoVerify, "--format", "markdown")
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	for _, want := range []string{"## phasekit review: Rename public.customer.email to email_address", "N (v41) → N (v41)", "✅ verify passed", "<details><summary><b>Phase 4: contract</b>", "- [ ] "} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
}

func TestReportHTMLFile(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "sub", "report.html")
	// --format from the extension; the global --dsn is not given.
	code, stdout, stderr := phasekit(t, "report", "--plan", demoPlan, "--pipeline", demoPipeline, "--out", out)
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if want := "wrote the html report to " + out; !strings.Contains(stdout, want) {
		t.Errorf("stdout %q, want %q", stdout, want)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	for _, want := range []string{"<!DOCTYPE html>", `<svg xmlns="http://www.w3.org/2000/svg"`, `class="node phase" data-kind="contract"`, "Compatibility not verified"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script") {
		t.Error("page has a script")
	}
}

func TestReportBadInput(t *testing.T) {
	t.Parallel()
	notJSON := filepath.Join(t.TempDir(), "verify.json")
	if err := os.WriteFile(notJSON, []byte("PASS\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no format", []string{"report", "--plan", demoPlan}, "--format: give html or markdown"},
		{"bad format", []string{"report", "--plan", demoPlan, "--format", "pdf"}, `--format "pdf"`},
		{"global text format", []string{"--format", "text", "report", "--plan", demoPlan}, "--format: give html or markdown"},
		{"missing plan", []string{"report", "--plan", filepath.Join(t.TempDir(), "nope"), "--format", "html"}, "read plan"},
		{"bad verify", []string{"report", "--plan", demoPlan, "--verify", notJSON, "--format", "html"}, "not a phasekit verify result"},
		{"missing pipeline", []string{"report", "--plan", demoPlan, "--pipeline", "nope.yaml", "--format", "html"}, "nope.yaml"},
		{"calibrate without dsn", []string{"report", "--plan", demoPlan, "--calibrate", "--format", "html"}, "give --dsn"},
		{"bad rate", []string{"report", "--plan", demoPlan, "--rate", "-3", "--format", "html"}, "--rate"},
		{"unreachable dsn", []string{"report", "--plan", demoPlan, "--dsn", "postgres://nobody:secret@127.0.0.1:1/x", "--format", "html"}, "cannot connect"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := phasekit(t, tc.args...)
			if code != exitBadInput || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, want 2 with %q:\n%s", code, tc.want, stderr)
			}
			if strings.Contains(stderr, "secret") {
				t.Errorf("stderr shows the password:\n%s", stderr)
			}
		})
	}
}

// TestReportLiveCatalogue reads table sizes from a live Chinook (the global
// --dsn, given before the command) and calibrates the rates on it.
func TestReportLiveCatalogue(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDB(t, "chinook")
	code, stdout, stderr := phasekit(t, "--dsn", dsn, "report", "--plan", demoPlan, "--calibrate", "--calibrate-rows", "5000", "--format", "markdown")
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	for _, want := range []string{"`public.customer` 59 rows", "measured by --calibrate on"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
}

// TestReportAppliedPlan reads the plan's state from phasekit's ledger on
// the live database: the applied phases explain why its tables differ
// from the planned ones.
func TestReportAppliedPlan(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDB(t, "chinook")
	if _, err := migrations.Apply(t.Context(), dsn, demoPlan, migrations.ApplyOptions{Until: phases.Backfill, Out: io.Discard}); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := phasekit(t, "report", "--plan", demoPlan, "--dsn", dsn, "--format", "markdown")
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if want := "applied on the live database: expand done, dual-write done, backfill done"; !strings.Contains(stdout, want) {
		t.Errorf("stdout lacks %q:\n%s", want, stdout)
	}
	if strings.Contains(stdout, "Live tables differ") {
		t.Errorf("an applied plan reported as drift:\n%s", stdout)
	}
}
