package report_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/compat/outcome"
	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/pipeline"
	"github.com/phasekit/phasekit/report"
	"github.com/phasekit/phasekit/schema"
)

// The shipped inputs of the Chinook demo, relative to the module root; the
// plan names them so, as `make demo` does.
const (
	renameFile   = "testdata/demo/rename_email.sql"
	pipelineFile = "testdata/pipeline/pipeline.yaml"
)

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// plan plans a migration (named as given, read from the module root)
// against a snapshot, optionally binds it to the shipped pipeline, writes
// it as phasekit plan --out does and reads it back, as phasekit report will.
func plan(t testing.TB, snap *schema.Snapshot, name, sql string, bind bool) (*phases.Plan, string) {
	t.Helper()
	m, err := change.ParseSQL(name, sql)
	if err != nil {
		t.Fatal(err)
	}
	p, err := phases.Build(snap, m)
	if err != nil {
		t.Fatal(err)
	}
	if bind {
		pl, err := pipeline.Load(filepath.Join("..", pipelineFile))
		if err != nil {
			t.Fatal(err)
		}
		p.Binding = pipeline.Bind(p, pl, pipelineFile)
	}
	dir := filepath.Join(t.TempDir(), "plan")
	if _, err := migrations.Write(dir, p, func(p *phases.Plan) string {
		var b strings.Builder
		report.Markdown(&b, p)
		return b.String()
	}); err != nil {
		t.Fatal(err)
	}
	back, err := migrations.ReadPlan(dir)
	if err != nil {
		t.Fatal(err)
	}
	return back, dir
}

// renamePlan is the Chinook demo's rename, bound to the shipped pipeline.
func renamePlan(t testing.TB, snap *schema.Snapshot) *phases.Plan {
	t.Helper()
	p, _ := plan(t, snap, renameFile, string(readFile(t, filepath.Join("..", renameFile))), true)
	return p
}

func loadCatalogue(t testing.TB, file string) *report.Catalogue {
	t.Helper()
	var c report.Catalogue
	if err := json.Unmarshal(readFile(t, file), &c); err != nil {
		t.Fatal(err)
	}
	return &c
}

func loadSnapshot(t testing.TB, file string) *schema.Snapshot {
	t.Helper()
	var s schema.Snapshot
	if err := json.Unmarshal(readFile(t, file), &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

// chinookReview is the review of the Chinook demo as `make demo` leaves it:
// its plan (testdata/chinook-plan, planned from the shipped schema file),
// bound to the shipped pipeline as report --pipeline does, sizes from the
// live catalogue of chinook.dump (testdata/chinook.catalogue.json, see
// TestReadCatalogueChinook) and the demo's verify result
// (testdata/chinook.verify.json).
func chinookReview(t testing.TB) *report.Review {
	t.Helper()
	cat := loadCatalogue(t, filepath.Join("testdata", "chinook.catalogue.json"))
	p, err := migrations.ReadPlan(filepath.Join("testdata", "chinook-plan"))
	if err != nil {
		t.Fatal(err)
	}
	pl, err := pipeline.Load(filepath.Join("..", pipelineFile))
	if err != nil {
		t.Fatal(err)
	}
	p.Binding = pipeline.Bind(p, pl, pipelineFile)
	f, err := os.Open(filepath.Join("testdata", "chinook.verify.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, err := outcome.ReadJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	return report.Build(p, report.Options{PlanDir: "build/demo-plan", Catalogue: cat, Verify: v, Generator: "phasekit report"})
}

// pagilaRetype retypes film.length, which two Pagila views read: contract
// drops and recreates them. Pagila ships without data, so no row counts.
const pagilaRetype = "ALTER TABLE film ALTER COLUMN length TYPE integer;\n"

func pagilaReview(t testing.TB) *report.Review {
	t.Helper()
	snap := loadSnapshot(t, filepath.Join("..", "phases", "testdata", "pagila.snapshot.json"))
	p, _ := plan(t, snap, "retype_length.sql", pagilaRetype, false)
	cat := &report.Catalogue{Source: "the Pagila schema (phases/testdata/pagila.snapshot.json)", Snapshot: snap}
	return report.Build(p, report.Options{PlanDir: "plan", Catalogue: cat, Generator: "phasekit report"})
}

func tableInfo(r *report.Review, name string) report.TableInfo {
	for _, t := range r.Tables {
		if t.Name == name {
			return t
		}
	}
	return report.TableInfo{Name: name, Rows: -2}
}
