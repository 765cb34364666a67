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

// Flyway names and one directory a migration (diesel, Prisma, Sourcegraph),
// in version order, dots and dashes compared part by part.
func TestReadHistoryFlywayAndDirectories(t *testing.T) {
	dir := t.TempDir()
	write := func(rel string) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("SELECT 1;"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"V1__init.sql", "V1.10__ten.sql", "V1.2__two.sql", "V2_1__underscore.sql", "R__views.sql", "U1.2__undo.sql", "V1.2__two.conf", "Vx__no.sql"} {
		write(n)
	}
	fs, err := ReadHistory(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range fs {
		got = append(got, f.Version+"="+filepath.Base(f.Path))
	}
	if want := "1=V1__init.sql 1.2=V1.2__two.sql 1.10=V1.10__ten.sql 2.1=V2_1__underscore.sql"; strings.Join(got, " ") != want {
		t.Fatalf("flyway: got %v\nwant %s", got, want)
	}
	if r := HistoryRunner(fs); r != "none" {
		t.Errorf("runner of a Flyway history %q, want none", r)
	}

	dir = t.TempDir()
	for _, n := range []string{"2019-02-26-002946_create_user/up.sql", "2019-02-26-002946_create_user/down.sql", "2019-10-15-181630_add_x/up.sql",
		"00000000000000_diesel_initial_setup/up.sql", "20210101000000_init/migration.sql", "20200101000000_first/migration.sql", "notes/up.sql"} {
		write(n)
	}
	if fs, err = ReadHistory(dir); err != nil {
		t.Fatal(err)
	}
	got = nil
	for _, f := range fs {
		rel, _ := filepath.Rel(dir, f.Path)
		got = append(got, rel)
	}
	want := []string{"00000000000000_diesel_initial_setup/up.sql", "2019-02-26-002946_create_user/up.sql", "2019-10-15-181630_add_x/up.sql",
		"20200101000000_first/migration.sql", "20210101000000_init/migration.sql"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("directories: got %v\nwant %v", got, want)
	}
}

func TestVersionLessParts(t *testing.T) {
	for _, c := range []struct {
		a, b string
		less bool
	}{
		{"2", "10", true}, {"0010", "9", false}, {"1.2", "1.10", true}, {"1.10", "1.2", false}, {"1", "1.1", true},
		{"2019-02-26-002946", "2019-10-15-181630", true}, {"20200402142539000000", "20200402142539000001", true}, {"5", "5", false},
	} {
		if got := VersionLess(c.a, c.b); got != c.less {
			t.Errorf("VersionLess(%q, %q) = %v", c.a, c.b, got)
		}
	}
}
