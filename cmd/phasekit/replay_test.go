package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phasekit/phasekit/plancheck"
	"github.com/phasekit/phasekit/verify/pgtest"
)

// A golang-migrate history as Harbor writes it: dots in the names, a file
// that alters the runner's own version table, and seed rows stamped with
// now(). Every file is read, the start database holds schema_migrations as
// golang-migrate makes it, and the stamped rows do not fail the check.
func TestReplayGolangMigrateHistory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	files := map[string]string{
		"0001_initial_schema.up.sql": `CREATE TABLE project (id serial PRIMARY KEY, name varchar(255) NOT NULL, creation_time timestamp DEFAULT now());
INSERT INTO project (name) VALUES ('library'), ('infra');`,
		"0002_1.7.0_schema.up.sql":   `ALTER TABLE project ADD COLUMN deleted boolean NOT NULL DEFAULT false;`,
		"0002_1.7.0_schema.down.sql": `ALTER TABLE project DROP COLUMN deleted;`,
		"0030_2.0.0_schema.up.sql":   `ALTER TABLE schema_migrations ADD COLUMN data_version int; ALTER TABLE project ALTER COLUMN name TYPE varchar(512);`,
	}
	for n, body := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dev := pgtest.Cluster(t).DSN("postgres")
	out := filepath.Join(t.TempDir(), "replay.json")
	code, stdout, stderr := phasekit(t, "replay", "--dir", dir, "--dev-url", dev, "--out", out)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "golang-migrate's version table") {
		t.Errorf("stdout does not say the start holds golang-migrate's table:\n%s", stdout)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var results []plancheck.VersionResult
	if err := json.Unmarshal(b, &results); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range results {
		got = append(got, r.Version+" "+r.Outcome)
	}
	if want := "0001 planned,0002 planned,0030 planned"; strings.Join(got, ",") != want {
		t.Fatalf("versions %q, want %q\n%s", got, want, stdout)
	}
	if u := results[0].Check.Unstable; len(u) != 1 || !strings.Contains(u[0], "without creation_time,") {
		t.Errorf("0001's check notes %q, want creation_time named", u)
	}

	// Without the runner's table the file that alters it is refused.
	code, stdout, stderr = phasekit(t, "replay", "--dir", dir, "--dev-url", dev, "--runner", "none")
	if !strings.Contains(stdout, "0030                   refused") || !strings.Contains(stdout, "table public.schema_migrations does not exist") {
		t.Errorf("--runner none: exit %d\n%s\n%s", code, stdout, stderr)
	}
	code, _, stderr = phasekit(t, "replay", "--dir", dir, "--dev-url", dev, "--runner", "flyway")
	if code != 2 || !strings.Contains(stderr, `--runner "flyway"`) {
		t.Errorf("--runner flyway: exit %d, %s", code, stderr)
	}
}
