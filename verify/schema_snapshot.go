package verify

import (
	"context"
	"fmt"
	"os"

	"github.com/phasekit/phasekit/schema"
)

// SnapshotFromDSN reads the schema of a live database.
func SnapshotFromDSN(ctx context.Context, dsn string) (*schema.Snapshot, error) {
	return schema.ReadDSN(ctx, dsn)
}

// SnapshotFromFile loads a pg_dump --schema-only file into a throwaway
// database on a throwaway local cluster and reads the schema back from it:
// PostgreSQL itself gives the DDL its meaning, nothing is reimplemented here.
func SnapshotFromFile(ctx context.Context, file string) (*schema.Snapshot, error) {
	if _, err := os.Stat(file); err != nil {
		return nil, &LoadError{File: file, Line: 0, Message: err.Error()}
	}
	l, err := StartLocal(ctx, LocalOptions{})
	if err != nil {
		return nil, fmt.Errorf("start local cluster for %s: %w", file, err)
	}
	defer l.Stop()
	if err := l.CreateDatabase(ctx, "phasekit_schema", ""); err != nil {
		return nil, err
	}
	dsn := l.DSN("phasekit_schema")
	if err := LoadSQLFile(ctx, dsn, file); err != nil {
		return nil, err
	}
	return SnapshotFromDSN(ctx, dsn)
}
