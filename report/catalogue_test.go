package report_test

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phasekit/phasekit/report"
	"github.com/phasekit/phasekit/verify/pgtest"
)

var refreshCatalogue = flag.Bool("refresh-catalogue", false, "rewrite testdata/chinook.catalogue.json from the Chinook dump")

// TestReadCatalogueChinook reads the live catalogue of a restored Chinook
// dump: row counts from reltuples once analysed, from n_live_tup before.
// With -refresh-catalogue it rewrites the fixture the golden tests use.
func TestReadCatalogueChinook(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDB(t, "chinook")
	conn := pgtest.Conn(t, dsn)

	// A table never analysed: reltuples is -1, the statistics collector
	// counts its rows.
	for _, sql := range []string{
		`CREATE TABLE fresh (id int PRIMARY KEY, v text)`,
		`INSERT INTO fresh SELECT g, 'x' FROM generate_series(1, 1000) g`,
		`SELECT pg_stat_force_next_flush()`,
	} {
		if _, err := conn.Exec(t.Context(), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	cat, err := report.ReadCatalogue(t.Context(), dsn, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := cat.LiveTuples["public.fresh"]; got != 1000 {
		t.Errorf("n_live_tup of fresh = %d, want 1000", got)
	}
	p, _ := plan(t, cat.Snapshot, "m.sql", "ALTER TABLE fresh RENAME COLUMN v TO w;", false)
	r := report.Build(p, report.Options{Catalogue: cat})
	ti := tableInfo(r, "public.fresh")
	if ti.Rows != 1000 {
		t.Errorf("review of fresh: %d rows, want 1000", ti.Rows)
	}
	t.Logf("fresh: reltuples %d; the review has %d rows from %s", cat.Snapshot.Tables["public.fresh"].RowEstimate, ti.Rows, ti.RowsSource)
	// Autovacuum may have analysed it meanwhile.
	if cat.Snapshot.Tables["public.fresh"].RowEstimate < 0 && !strings.Contains(ti.RowsSource, "n_live_tup") {
		t.Errorf("rows of fresh never analysed from %q, want n_live_tup", ti.RowsSource)
	}
	if _, err := conn.Exec(t.Context(), `DROP TABLE fresh`); err != nil {
		t.Fatal(err)
	}

	if _, err := conn.Exec(t.Context(), `ANALYZE`); err != nil {
		t.Fatal(err)
	}
	cat, err = report.ReadCatalogue(t.Context(), dsn, "")
	if err != nil {
		t.Fatal(err)
	}
	cust := cat.Snapshot.Tables["public.customer"]
	if cust.RowEstimate != 59 || cust.SizeBytes <= 0 {
		t.Errorf("customer after ANALYZE: %d rows, %d bytes; want 59 rows and a size", cust.RowEstimate, cust.SizeBytes)
	}
	r = report.Build(renamePlan(t, cat.Snapshot), report.Options{Catalogue: cat})
	if ti := tableInfo(r, "public.customer"); ti.Rows != 59 || ti.RowsSource != "pg_class.reltuples" || len(ti.PrimaryKey) != 1 {
		t.Errorf("review of customer after ANALYZE: %+v", ti)
	}
	if *refreshCatalogue {
		cat.Source = "postgres://postgres@localhost/chinook"
		b, err := json.MarshalIndent(cat, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", "chinook.catalogue.json"), append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCalibrate measures the rates on a real server and leaves nothing
// behind: the scratch table lived in a rolled-back transaction.
func TestCalibrate(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDB(t, "")
	rates, err := report.Calibrate(t.Context(), dsn, 20000)
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]report.Rate{"backfill": rates.Backfill, "update": rates.Update, "rewrite": rates.Rewrite, "scan": rates.Scan, "index": rates.Index} {
		if r.RowsPerSecond <= 0 || r.Source == "" {
			t.Errorf("%s rate: %+v, want a positive rate with its source", name, r)
		}
	}
	var n int
	if err := pgtest.Conn(t, dsn).QueryRow(t.Context(), `SELECT count(*) FROM pg_class WHERE relname LIKE 'phasekit_calibrate%'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d phasekit_calibrate relation(s) left behind", n)
	}
}
