// Package plancheck proves, on PostgreSQL itself, that a plan does what its
// migration file says.
//
// It keeps a scratch copy of the schema on a dev server (a throwaway local
// cluster by default, a container, or a server the user names with
// --dev-url, as Atlas's dev database) and:
//
//   - replays the migration statement by statement, reading the schema
//     before each one, so the planner plans every statement against the
//     schema the statements before it left (phases.Observed), and sees what
//     PostgreSQL did: nothing at all (an IF NOT EXISTS that found its
//     object), a rewrite or none (a catalogue-only type change);
//   - applies the plan through every phase and purge on another copy, with
//     the real executor, and compares its catalogue and rows with the
//     file's end state;
//   - applies the plan up to each phase boundary on further copies, rolls it
//     back, and compares with the start.
//
// Nothing here touches the database the plan is for: its schema is copied
// with pg_dump --schema-only.
package plancheck

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/internal/dbconn"
	"github.com/phasekit/phasekit/schema"
	"github.com/phasekit/phasekit/verify"
)

// Options choose the dev server.
type Options struct {
	// DevURL is an existing PostgreSQL server to make scratch databases on
	// (the role needs CREATEDB); "" starts a throwaway one.
	DevURL string
	// Provider is "local" (the default when DevURL is empty) or "docker".
	Provider string
	// Image is the docker provider's image.
	Image string
}

// Dev is a dev server holding the base schema (the schema before the
// migration) in a database that copies are made from.
type Dev struct {
	sb     verify.Sandbox
	prefix string
	base   string
	// Server says which PostgreSQL the dev server is, for the record.
	Server string

	mu sync.Mutex
	n  int
}

// Open starts (or connects to) the dev server and creates the empty base
// database.
func Open(ctx context.Context, o Options) (*Dev, error) {
	var sb verify.Sandbox
	var err error
	switch {
	case o.DevURL != "":
		sb, err = verify.OpenSandbox(ctx, verify.SandboxOptions{Provider: verify.ProviderDSN, DSN: o.DevURL})
	case o.Provider == "" || o.Provider == verify.ProviderLocal:
		sb, err = verify.OpenSandbox(ctx, verify.SandboxOptions{Provider: verify.ProviderLocal})
	default:
		sb, err = verify.OpenSandbox(ctx, verify.SandboxOptions{Provider: o.Provider, Image: o.Image})
	}
	if err != nil {
		return nil, err
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	d := &Dev{sb: sb, prefix: "phasekit_check_" + hex.EncodeToString(b)}
	d.base = d.prefix + "_base"
	if err := sb.CreateDatabase(ctx, d.base, ""); err != nil {
		sb.Close()
		return nil, err
	}
	conn, err := d.connect(ctx, d.base)
	if err != nil {
		sb.Close()
		return nil, err
	}
	defer conn.Close(context.Background())
	var version string
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version')").Scan(&version); err != nil {
		sb.Close()
		return nil, fmt.Errorf("read the dev server's version: %w", err)
	}
	d.Server = fmt.Sprintf("PostgreSQL %s (%s)", version, sb.Describe())
	return d, nil
}

// Close drops what the dev server holds for this check (and stops a
// throwaway server).
func (d *Dev) Close() error { return d.sb.Close() }

func (d *Dev) connect(ctx context.Context, db string) (*pgx.Conn, error) {
	return dbconn.Connect(ctx, d.sb.DSN(db))
}

// DSN is the connection string of one of the dev server's databases.
func (d *Dev) DSN(db string) string { return d.sb.DSN(db) }

// copyOf makes a new database from template and returns its name.
func (d *Dev) copyOf(ctx context.Context, template string) (string, error) {
	d.mu.Lock()
	d.n++
	name := fmt.Sprintf("%s_%d", d.prefix, d.n)
	d.mu.Unlock()
	if err := d.sb.CreateDatabase(ctx, name, template); err != nil {
		return "", err
	}
	return name, nil
}

func (d *Dev) drop(db string) { _ = d.sb.DropDatabase(context.Background(), db) }

// LoadSchemaFile loads a pg_dump --schema-only file (or any SQL script psql
// runs) into the base database.
func (d *Dev) LoadSchemaFile(ctx context.Context, file string) error {
	if _, err := os.Stat(file); err != nil {
		return &verify.LoadError{File: file, Message: err.Error()}
	}
	return verify.LoadSQLFile(ctx, d.sb.DSN(d.base), file)
}

// LoadLive copies the schema (only) of a live database into the base
// database with pg_dump; the live database is only read.
func (d *Dev) LoadLive(ctx context.Context, dsn string) error {
	dir, err := os.MkdirTemp("", "phasekit-schema-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "schema.sql")
	if err := verify.DumpSchemaFile(ctx, dsn, file); err != nil {
		return err
	}
	if err := verify.LoadSQLFile(ctx, d.sb.DSN(d.base), file); err != nil {
		return fmt.Errorf("load the live schema (pg_dump --schema-only) into the dev server: %w", err)
	}
	return nil
}

// HistoryError is an earlier migration file of a history that PostgreSQL
// refused while the base schema was built from it.
type HistoryError struct {
	Pos change.Pos
	Err error
}

func (e *HistoryError) Error() string {
	return fmt.Sprintf("%s: building the schema from the earlier migrations: PostgreSQL refuses this statement: %v", e.Pos, e.Err)
}

func (e *HistoryError) Unwrap() error { return e.Err }

// LoadHistory runs earlier migration files as written, in order, into the
// base database: the schema a later file is planned against.
func (d *Dev) LoadHistory(ctx context.Context, ms []*change.Migration) error {
	conn, err := d.connect(ctx, d.base)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for _, m := range ms {
		for _, st := range m.Statements {
			if st.SQL == "" {
				continue
			}
			if _, err := conn.Exec(ctx, st.SQL); err != nil {
				return &HistoryError{Pos: st.Pos, Err: err}
			}
		}
		// A file that opened a transaction and failed to close it (or a
		// runner's per-file transaction) ends here.
		if conn.PgConn().TxStatus() != 'I' {
			if _, err := conn.Exec(ctx, "COMMIT"); err != nil {
				return &HistoryError{Pos: change.Pos{File: m.File, Line: 1, Col: 1}, Err: err}
			}
		}
	}
	return nil
}

// Snapshot reads the base schema, as the planner sees it.
func (d *Dev) Snapshot(ctx context.Context) (*schema.Snapshot, error) {
	conn, err := d.connect(ctx, d.base)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	return schema.Introspect(ctx, conn)
}

// ErrNoDevServer is returned by OpenDefault when no scratch PostgreSQL can
// be had here.
var ErrNoDevServer = errors.New("no scratch PostgreSQL")
