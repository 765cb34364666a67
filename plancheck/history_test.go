package plancheck_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/plancheck"
	"github.com/phasekit/phasekit/verify/pgtest"
)

// TestKratosHistory replays the shared Ory Kratos history (346 PostgreSQL
// versions nobody here wrote): every file is applied as written to build the
// schema, and a sample of them (every tenth, and the ones that broke
// earlier planners: a subcommand lost in a multi-action ALTER, same-type
// changes on foreign keys, an indexed varchar change, renames, data fixes)
// is planned against the schema the earlier ones built and checked. None may
// fail its check or crash; refusals are allowed and must say why. make
// corpus runs all 346.
func TestKratosHistory(t *testing.T) {
	if testing.Short() {
		t.Skip("a 346-file history")
	}
	dir := pgtest.DatasetFile(t, "kratos-migrations/migrations")
	order := filepath.Join(filepath.Dir(dir), "postgres-order.txt")
	files, err := change.ReadHistoryOrdered(dir, order)
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{
		"20191100000010000000": true, // ALTER TYPE timestamp, DROP NOT NULL in one statement
		"20200402142539000000": true, // a rename
		"20200812124254000002": true, // same type, DROP NOT NULL
		"20210410175418000001": true, // a foreign key
		"20210410175418000002": true, // a data fix
		"20210410175418000003": true, // same type on a foreign key column
		"20250505150900000000": true, // char to varchar: a shadow column
	}
	n := 0
	plan := func(v string) bool {
		n++
		return known[v] || n%10 == 0
	}
	d, err := plancheck.Open(context.Background(), plancheck.Options{DevURL: pgtest.Cluster(t).DSN("postgres")})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	counts := map[string]int{}
	err = d.ReplayHistory(context.Background(), files, plancheck.HistoryOptions{Plan: plan}, func(r plancheck.VersionResult) {
		counts[r.Outcome]++
		switch r.Outcome {
		case plancheck.CheckFailed, plancheck.Crashed:
			t.Errorf("%s: %s: %s", filepath.Base(r.File), r.Outcome, r.Reason)
		case plancheck.Refused:
			if r.Reason == "" {
				t.Errorf("%s: refused without a reason", filepath.Base(r.File))
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d versions applied, %v", len(files), counts)
	if counts[plancheck.Planned] < 30 {
		t.Errorf("only %d versions planned and proved", counts[plancheck.Planned])
	}
}

// A file the planner refuses early and PostgreSQL refuses later does not
// apply as written: the walk stops there instead of planning the next file
// on a half-applied schema.
func TestHistoryStopsWhereAFileDoesNotApply(t *testing.T) {
	dir := t.TempDir()
	for name, sql := range map[string]string{
		"001_a.up.sql": "CREATE TABLE t (id int PRIMARY KEY, a int, b int);",
		"002_b.up.sql": "DO $$ BEGIN ALTER TABLE t DROP COLUMN b; END $$;\nALTER TABLE nosuch ADD COLUMN z int;",
		"003_c.up.sql": "ALTER TABLE t ADD COLUMN y int;",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(sql), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files, d := historyDev(t, dir)
	var got []string
	err := d.ReplayHistory(context.Background(), files, plancheck.HistoryOptions{}, func(r plancheck.VersionResult) {
		got = append(got, r.Version+" "+r.Outcome)
	})
	if err == nil || !strings.Contains(err.Error(), `does not apply as written: `) || !strings.Contains(err.Error(), `relation "nosuch" does not exist`) {
		t.Fatalf("error %v", err)
	}
	if strings.Join(got, ",") != "001 planned,002 refused" {
		t.Fatalf("versions %q", got)
	}
}

// TestIdiomsHistory replays testdata/idioms, a history written to hold what
// real ones do that the catalogue's own tests do not (pg_dump's empty
// search_path, a schema of its own, domains, composite types, partitions
// attached and indexed, seed rows stamped with now(), clock_timestamp() and
// random uuids, a conditional DO block, a materialized view's index, VACUUM).
// Each version ends as it did when the history was written: no check may
// fail, and the two refusals stay refusals with their reason.
func TestIdiomsHistory(t *testing.T) {
	files, d := historyDev(t, "testdata/idioms")
	want := map[string]string{
		"0001": "planned", "0002": "refused", "0003": "planned", "0004": "planned",
		"0005": "refused", "0006": "planned", "0007": "planned", "0008": "planned",
	}
	unstable := map[string]bool{}
	err := d.ReplayHistory(context.Background(), files, plancheck.HistoryOptions{}, func(r plancheck.VersionResult) {
		if r.Outcome != want[r.Version] {
			t.Errorf("%s: %s (%s), want %s", r.Version, r.Outcome, r.Reason, want[r.Version])
		}
		if r.Check != nil && len(r.Check.Unstable) > 0 {
			unstable[r.Version] = true
		}
		delete(want, r.Version)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(want) > 0 {
		t.Errorf("versions not replayed: %v", want)
	}
	if !unstable["0001"] || !unstable["0007"] {
		t.Errorf("versions with columns compared on their shape: %v, want 0001 and 0007", unstable)
	}
}

// historyDev reads dir's history and opens a dev server on the test
// cluster, closed when the test ends.
func historyDev(t *testing.T, dir string) ([]change.HistoryFile, *plancheck.Dev) {
	t.Helper()
	files, err := change.ReadHistory(dir)
	if err != nil {
		t.Fatal(err)
	}
	d, err := plancheck.Open(context.Background(), plancheck.Options{DevURL: pgtest.Cluster(t).DSN("postgres")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return files, d
}
