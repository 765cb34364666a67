package verify

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// LoadError is a statement or psql command in a SQL file that failed.
type LoadError struct {
	File    string // as psql names it: a file pulled in with \i names itself
	Line    int
	Message string // the server's or psql's message, with any LINE/DETAIL/HINT lines after it
}

// Error reads file:line: message, the form editors jump to.
func (e *LoadError) Error() string {
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Message)
}

// LoadSQLFile runs a SQL script with psql, stopping at the first error, so
// that psql meta-commands pg_dump writes (\restrict, \connect) work as they do
// for a user. A failing statement is reported as a *LoadError.
func LoadSQLFile(ctx context.Context, dsn, file string) error {
	psql, err := clientBinary("psql")
	if err != nil {
		return err
	}
	// psql's own message for a missing file does not say which file.
	if _, err := os.Stat(file); err != nil {
		return fmt.Errorf("load SQL file: %w", err)
	}
	var stderr bytes.Buffer
	cmd := clientCommand(ctx, psql, dsn, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", file)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if le := parseLoadError(stderr.String()); le != nil {
			return le
		}
		return fmt.Errorf("load %s with psql: %w\n%s", file, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// RestoreDump restores a pg_dump archive (custom, directory or tar format)
// with pg_restore, without owners or privileges, which name roles the local
// server does not have, and stops at the first error.
func RestoreDump(ctx context.Context, dsn, file string) error {
	pgRestore, err := clientBinary("pg_restore")
	if err != nil {
		return err
	}
	if _, err := os.Stat(file); err != nil {
		return fmt.Errorf("restore dump: %w", err)
	}
	var stderr bytes.Buffer
	cmd := clientCommand(ctx, pgRestore, dsn, "--no-owner", "--no-privileges", "--exit-on-error", file)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("restore %s with pg_restore: %w\n%s", file, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// clientCommand builds a client program's command line for dsn. A password in
// a URL DSN travels in PGPASSWORD rather than in the arguments, where any user
// of the machine could read it.
func clientCommand(ctx context.Context, program, dsn string, args ...string) *exec.Cmd {
	env := append(os.Environ(),
		// Messages are parsed, so they must not be translated.
		"LC_ALL=C", "LC_MESSAGES=C", "LANGUAGE=",
	)
	if u, err := url.Parse(dsn); err == nil && u.User != nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		if pw, ok := u.User.Password(); ok {
			env = append(env, "PGPASSWORD="+pw)
			u.User = url.User(u.User.Username())
			dsn = u.String()
		}
	}
	cmd := exec.CommandContext(ctx, program, append([]string{"-d", dsn}, args...)...)
	cmd.Env = env
	return cmd
}

// psqlError matches the line psql prints for a failed statement or
// meta-command, e.g. `psql:schema.sql:12: ERROR:  syntax error at or near "x"`.
// The file name is greedy because it may itself contain colons.
var psqlError = regexp.MustCompile(`^psql:(.+):(\d+): (ERROR|FATAL|PANIC|error):\s*(.*)$`)

// parseLoadError finds the first error psql reported on stderr, with the
// indented context lines that follow it; nil if there is none.
func parseLoadError(stderr string) *LoadError {
	lines := strings.Split(stderr, "\n")
	for i, line := range lines {
		m := psqlError.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		n, err := strconv.Atoi(m[2])
		if err != nil {
			continue
		}
		msg := []string{m[4]}
		for _, more := range lines[i+1:] {
			if strings.HasPrefix(more, "psql:") {
				break
			}
			msg = append(msg, more)
		}
		return &LoadError{File: m[1], Line: n, Message: strings.TrimRight(strings.Join(msg, "\n"), "\n ")}
	}
	return nil
}
