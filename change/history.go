package change

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// HistoryFile is one up migration of an application's migration history.
type HistoryFile struct {
	// Version is the file's version as written (digits; it may exceed
	// 64 bits: pop uses 20-digit timestamps).
	Version string
	Path    string
	// Dialect is the database the name says the file is for (pop's
	// VERSION_name.postgres.up.sql), "" when it names none.
	Dialect string
	// Other is set for a file named as neither golang-migrate nor pop name
	// theirs: Flyway's, or one directory a migration.
	Other bool
}

// Runners' version tables, as each makes it before the first migration:
// files may read or alter it (Harbor's 2.0.0 adds a column to
// schema_migrations).
const (
	GolangMigrateTable = `CREATE TABLE IF NOT EXISTS schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL);`
	PopTable           = `CREATE TABLE IF NOT EXISTS schema_migration (version varchar(48) NOT NULL, CONSTRAINT schema_migration_pkey PRIMARY KEY (version));
CREATE UNIQUE INDEX IF NOT EXISTS schema_migration_version_idx ON schema_migration (version);`
)

// HistoryRunner guesses which runner a history is written for: "pop" when a
// file names its dialect (only pop's names do), "none" when a file is named
// as neither golang-migrate nor pop name theirs (their version tables are
// the ones phasekit makes), else "golang-migrate".
func HistoryRunner(files []HistoryFile) string {
	runner := "golang-migrate"
	for _, f := range files {
		switch {
		case f.Other:
			return "none"
		case f.Dialect != "":
			runner = "pop"
		}
	}
	return runner
}

// ReadHistory lists the PostgreSQL up migrations of a directory in version
// order. It reads golang-migrate names (VERSION_name.up.sql), pop names
// (VERSION_name[.postgres][.autocommit].up.sql: for one version, a
// .postgres. file replaces the dialect-neutral one, and files of other
// dialects (.mysql., .sqlite3., .cockroach.) are left out), Flyway's
// versioned migrations (V1.2__name.sql) and one directory a migration
// (diesel's and Sourcegraph's VERSION_name/up.sql, Prisma's
// VERSION_name/migration.sql). Other files are left out.
func ReadHistory(dir string) ([]HistoryFile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations directory: %w", err)
	}
	type pick struct {
		f        HistoryFile
		postgres bool
	}
	byVersion := map[string]pick{}
	add := func(f HistoryFile) error {
		if old, seen := byVersion[f.Version]; seen {
			return fmt.Errorf("%s: two up migrations of version %s (%s too)", f.Path, f.Version, old.f.Path)
		}
		byVersion[f.Version] = pick{f: f}
		return nil
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() {
			// One directory a migration: diesel and Sourcegraph
			// (VERSION_name/up.sql), Prisma (VERSION_name/migration.sql).
			v, ok := dirVersion(name)
			if !ok {
				continue
			}
			for _, file := range []string{"up.sql", "migration.sql"} {
				p := filepath.Join(dir, name, file)
				if _, err := os.Stat(p); err == nil {
					if err := add(HistoryFile{Version: v, Path: p, Other: true}); err != nil {
						return nil, err
					}
					break
				}
			}
			continue
		}
		if v, ok := flywayVersion(name); ok {
			if err := add(HistoryFile{Version: v, Path: filepath.Join(dir, name), Other: true}); err != nil {
				return nil, err
			}
			continue
		}
		v, ok := FileVersion(name)
		if !ok || !strings.HasSuffix(name, ".up.sql") {
			continue
		}
		dialect := fileDialect(name)
		if dialect != "" && dialect != "postgres" && dialect != "postgresql" {
			continue
		}
		p := pick{f: HistoryFile{Version: v, Path: dir + string(os.PathSeparator) + name, Dialect: dialect}, postgres: dialect != ""}
		if old, seen := byVersion[v]; seen {
			if old.postgres == p.postgres {
				return nil, fmt.Errorf("%s: two up migrations of version %s (%s too)", p.f.Path, v, old.f.Path)
			}
			if old.postgres {
				continue
			}
		}
		byVersion[v] = p
	}
	out := make([]HistoryFile, 0, len(byVersion))
	for _, p := range byVersion {
		out = append(out, p.f)
	}
	sort.Slice(out, func(i, j int) bool { return VersionLess(out[i].Version, out[j].Version) })
	return out, nil
}

// dialects are the database names pop writes in a file name
// (VERSION_name.DIALECT[.autocommit].up.sql).
var dialects = map[string]bool{
	"postgres": true, "postgresql": true, "pg": true, "cockroach": true, "cockroachdb": true, "crdb": true,
	"mysql": true, "mariadb": true, "sqlite3": true, "sqlite": true, "mssql": true, "sqlserver": true,
}

// fileDialect is the dialect an up migration's name says it is for, "" for
// every dialect. Only a known dialect counts: the rest of the dots belong to
// the name, as in golang-migrate's "0002_1.7.0_schema.up.sql".
func fileDialect(name string) string {
	base := strings.TrimSuffix(name, ".up.sql")
	dialect := ""
	for {
		i := strings.LastIndexByte(base, '.')
		if i < 0 {
			return dialect
		}
		switch part := base[i+1:]; {
		case part == "autocommit":
		case dialects[part] && dialect == "":
			dialect = part
			if part == "pg" {
				dialect = "postgres"
			}
		default:
			return dialect
		}
		base = base[:i]
	}
}

// FileVersion reads the leading version of a migration file name
// ("000181_rename.up.sql" -> "000181"); ok is false when there is none.
func FileVersion(name string) (string, bool) {
	i := 0
	for i < len(name) && name[i] >= '0' && name[i] <= '9' {
		i++
	}
	if i == 0 || i == len(name) || name[i] != '_' {
		return "", false
	}
	return name[:i], true
}

// flywayVersion reads a Flyway versioned migration's name
// (V1__init.sql, V1.2__x.sql, V2_1__x.sql: "_" stands for "."); repeatable
// (R__) and undo (U) migrations are not versions.
func flywayVersion(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, "V")
	if !ok || !strings.HasSuffix(name, ".sql") {
		return "", false
	}
	v, _, ok := strings.Cut(rest, "__")
	if !ok || v == "" || v[0] < '0' || v[0] > '9' {
		return "", false
	}
	for _, r := range v {
		if (r < '0' || r > '9') && r != '.' && r != '_' {
			return "", false
		}
	}
	return strings.ReplaceAll(v, "_", "."), true
}

// dirVersion reads the version a migration directory's name leads with:
// digits, with dashes between them as diesel writes a date
// (2019-02-26-002946_create_user), then "_".
func dirVersion(name string) (string, bool) {
	v, _, ok := strings.Cut(name, "_")
	if !ok || v == "" || v[0] < '0' || v[0] > '9' {
		return "", false
	}
	for _, r := range v {
		if (r < '0' || r > '9') && r != '-' {
			return "", false
		}
	}
	return v, true
}

// VersionLess orders versions numerically, whatever their length; versions
// with dots or dashes (Flyway's 1.2.10, diesel's 2019-02-26-002946) part by
// part.
func VersionLess(a, b string) bool {
	pa, pb := versionParts(a), versionParts(b)
	for i := 0; i < len(pa) && i < len(pb); i++ {
		x, y := strings.TrimLeft(pa[i], "0"), strings.TrimLeft(pb[i], "0")
		if len(x) != len(y) {
			return len(x) < len(y)
		}
		if x != y {
			return x < y
		}
	}
	return len(pa) < len(pb)
}

// versionParts splits a version into its runs of digits.
func versionParts(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r < '0' || r > '9' })
}

// ReadHistoryOrdered lists the up migrations of dir in the order an order
// file gives (one file name a line, # comments), as pop's postgres-order.txt
// does; without an order file, ReadHistory's version order.
func ReadHistoryOrdered(dir, order string) ([]HistoryFile, error) {
	if order == "" {
		return ReadHistory(dir)
	}
	f, err := os.Open(order)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []HistoryFile
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		name := strings.TrimSpace(sc.Text())
		if name == "" || strings.HasPrefix(name, "#") {
			continue
		}
		v, ok := FileVersion(name)
		if !ok {
			return nil, fmt.Errorf("%s:%d: %q has no version", order, line, name)
		}
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", order, line, err)
		}
		out = append(out, HistoryFile{Version: v, Path: p, Dialect: fileDialect(name)})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New(order + ": no migration listed")
	}
	return out, nil
}
