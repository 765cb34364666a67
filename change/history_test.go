package change

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Dots in a golang-migrate name are the name's; only pop's dialects (and
// .autocommit) at the end say which database a file is for.
func TestReadHistoryDotsInNames(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{
		"0001_initial_schema.up.sql", "0002_1.7.0_schema.up.sql", "0002_1.7.0_schema.down.sql",
		"0003_v2.0_x.mysql.up.sql", "0003_v2.0_x.postgres.up.sql", "0003_v2.0_x.up.sql",
		"0004_a.b.autocommit.up.sql", "0005_c.sqlite3.autocommit.up.sql", "0006_d.postgres.autocommit.up.sql",
		"0007_e.pg.up.sql", "0007_e.up.sql", "README.md",
	} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("SELECT 1;"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fs, err := ReadHistory(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range fs {
		got = append(got, filepath.Base(f.Path))
	}
	want := []string{"0001_initial_schema.up.sql", "0002_1.7.0_schema.up.sql", "0003_v2.0_x.postgres.up.sql",
		"0004_a.b.autocommit.up.sql", "0006_d.postgres.autocommit.up.sql", "0007_e.pg.up.sql"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	if r := HistoryRunner(fs); r != "pop" {
		t.Errorf("runner %q of a history with dialect names, want pop", r)
	}
	if r := HistoryRunner(fs[:2]); r != "golang-migrate" {
		t.Errorf("runner %q of golang-migrate names, want golang-migrate", r)
	}
}
