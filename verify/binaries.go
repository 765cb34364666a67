package verify

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// ErrNotInstalled reports that PostgreSQL binaries are neither on PATH nor
// under /usr/lib/postgresql/*/bin; errors.Is matches the errors that say so.
var ErrNotInstalled = errors.New("PostgreSQL binaries not found")

// debianBinRoot holds one bin directory per installed major version on
// Debian and Ubuntu, which do not put the server binaries on PATH.
const debianBinRoot = "/usr/lib/postgresql"

// notInstalledError says which binary is missing and which package provides it.
type notInstalledError struct {
	kind    string // "server" or "client"
	pkg     string // Debian package providing it
	program string
}

func (e *notInstalledError) Error() string {
	return fmt.Sprintf("PostgreSQL %s binaries not found: install %s (apt-get install %s; macOS: brew install postgresql@15) "+
		"or put %s on PATH (looked on PATH and in %s/*/bin)", e.kind, e.pkg, e.pkg, e.program, debianBinRoot)
}

func (e *notInstalledError) Is(target error) bool { return target == ErrNotInstalled }

// serverBinaries finds initdb and the postgres from the same installation:
// initdb refuses to drive a postgres of another version.
func serverBinaries() (initdb, postgres string, err error) {
	initdb, err = findBinary("initdb")
	if err != nil {
		return "", "", &notInstalledError{kind: "server", pkg: "postgresql-15", program: "initdb"}
	}
	// PATH may hold a symlink (/usr/local/bin/initdb); its siblings live
	// where it points.
	dir := filepath.Dir(initdb)
	if real, err := filepath.EvalSymlinks(initdb); err == nil {
		dir = filepath.Dir(real)
	}
	postgres = filepath.Join(dir, "postgres")
	if !isExecutable(postgres) {
		return "", "", &notInstalledError{kind: "server", pkg: "postgresql-15", program: "postgres (next to " + initdb + ")"}
	}
	return initdb, postgres, nil
}

// clientBinary finds a client program such as psql or pg_restore.
func clientBinary(name string) (string, error) {
	p, err := findBinary(name)
	if err != nil {
		return "", &notInstalledError{kind: "client", pkg: "postgresql-client-15", program: name}
	}
	return p, nil
}

// findBinary looks name up on PATH, then in the newest /usr/lib/postgresql/*/bin.
func findBinary(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	dirs, _ := filepath.Glob(filepath.Join(debianBinRoot, "*", "bin"))
	sort.Slice(dirs, func(i, j int) bool {
		return versionLess(filepath.Base(filepath.Dir(dirs[j])), filepath.Base(filepath.Dir(dirs[i])))
	})
	for _, d := range dirs {
		if p := filepath.Join(d, name); isExecutable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w", name, exec.ErrNotFound)
}

// versionLess orders directory names like "9.6" < "15" < "16" numerically.
func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) && i < len(bs); i++ {
		x, errx := strconv.Atoi(as[i])
		y, erry := strconv.Atoi(bs[i])
		if errx != nil || erry != nil {
			if as[i] != bs[i] {
				return as[i] < bs[i]
			}
			continue
		}
		if x != y {
			return x < y
		}
	}
	return len(as) < len(bs)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}
