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
// file names its dialect (only pop's names do), else "golang-migrate".
func HistoryRunner(files []HistoryFile) string {
	for _, f := range files {
		if f.Dialect != "" {
			return "pop"
		}
	}
	return "golang-migrate"
}

// ReadHistory lists the PostgreSQL up migrations of a directory in version
// order. It reads golang-migrate names (VERSION_name.up.sql) and pop names
// (VERSION_name[.postgres][.autocommit].up.sql): for one version, a
// .postgres. file replaces the dialect-neutral one, and files of other
// dialects (.mysql., .sqlite3., .cockroach.) and non-SQL files are left out.
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
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		name := e.Name()
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

// VersionLess orders versions numerically, whatever their length.
func VersionLess(a, b string) bool {
	a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
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
