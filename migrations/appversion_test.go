package migrations_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/golang-migrate/migrate/v4"

	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/verify/pgtest"
)

// migrateVersion reads the version the way the application's own runner
// does: golang-migrate's pgx/v5 driver over the database's version table.
func migrateVersion(t *testing.T, dsn string) (uint, bool) {
	t.Helper()
	m, err := migrate.New("file://"+t.TempDir(), "pgx5"+dsn[len("postgres"):])
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	v, dirty, err := m.Version()
	if errors.Is(err, migrate.ErrNilVersion) {
		return 0, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return v, dirty
}

// The application's version table at 180 stays at 180 through apply and
// rollback of a plan made without --app-version-table.
func TestApplyLeavesAppVersionTable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDB(t, "chinook")
	conn := pgtest.Conn(t, dsn)
	if _, err := conn.Exec(ctx, `CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL);
		INSERT INTO schema_migrations VALUES (180, false)`); err != nil {
		t.Fatal(err)
	}
	dir, _ := planDir(t, dsn, "CREATE INDEX invoice_total_idx ON invoice (total);")
	// The plan has no contract phase: --until contract runs what it has.
	st, err := migrations.Apply(ctx, dsn, dir, migrations.ApplyOptions{Until: phases.Contract, DDL: fastDDL(), Runner: runner()})
	if err != nil {
		t.Fatal(err)
	}
	if got := states(st); got != "expand=done" {
		t.Fatalf("apply --until contract of an expand-only plan: %s", got)
	}
	if v, dirty := migrateVersion(t, dsn); v != 180 || dirty {
		t.Fatalf("after apply: golang-migrate reads (%d, %v), want (180, false)", v, dirty)
	}
	if _, err := migrations.Rollback(ctx, dsn, dir, migrations.RollbackOptions{All: true, DDL: fastDDL(), Runner: runner()}); err != nil {
		t.Fatal(err)
	}
	if v, dirty := migrateVersion(t, dsn); v != 180 || dirty {
		t.Fatalf("after rollback: golang-migrate reads (%d, %v), want (180, false)", v, dirty)
	}
}

// With an app version, the table moves to it exactly when the last phase
// is done, not before, and back when that phase is rolled back.
func TestApplySetsAppVersionAtTheEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDB(t, "chinook")
	conn := pgtest.Conn(t, dsn)
	if _, err := conn.Exec(ctx, `CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL);
		INSERT INTO schema_migrations VALUES (180, false)`); err != nil {
		t.Fatal(err)
	}
	_, p := planDir(t, dsn, "ALTER TABLE customer RENAME COLUMN email TO email_address;")
	p.AppVersion = &phases.AppVersion{Table: "public.schema_migrations", Version: 181, File: "000181_rename_email.up.sql"}
	p.Seal()
	dir := filepath.Join(t.TempDir(), "plan")
	if _, err := migrations.Write(dir, p, func(*phases.Plan) string { return "" }); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := migrations.Apply(ctx, dsn, dir, migrations.ApplyOptions{Until: phases.Backfill, DDL: fastDDL(), Runner: runner(), Out: &out}); err != nil {
		t.Fatal(err)
	}
	if v, _ := migrateVersion(t, dsn); v != 180 {
		t.Fatalf("before contract: golang-migrate reads %d, want 180 (the file's effect is not all there)", v)
	}
	if _, err := migrations.Apply(ctx, dsn, dir, migrations.ApplyOptions{Until: phases.Contract, DDL: fastDDL(), Runner: runner(), Out: &out}); err != nil {
		t.Fatal(err)
	}
	if v, dirty := migrateVersion(t, dsn); v != 181 || dirty {
		t.Fatalf("after contract: golang-migrate reads (%d, %v), want (181, false)\n%s", v, dirty, out.String())
	}
	if _, err := migrations.Rollback(ctx, dsn, dir, migrations.RollbackOptions{DDL: fastDDL(), Runner: runner(), Out: &out}); err != nil {
		t.Fatal(err)
	}
	if v, _ := migrateVersion(t, dsn); v != 180 {
		t.Fatalf("after rolling back contract: golang-migrate reads %d, want 180", v)
	}

	// No version table: apply says so and creates none.
	dsn2 := pgtest.NewDB(t, "chinook")
	if _, err := migrations.Apply(ctx, dsn2, dir, migrations.ApplyOptions{Until: phases.Contract, DDL: fastDDL(), Runner: runner(), Out: &out}); err != nil {
		t.Fatal(err)
	}
	var exists bool
	if err := pgtest.Conn(t, dsn2).QueryRow(ctx, "SELECT to_regclass('public.schema_migrations') IS NOT NULL").Scan(&exists); err != nil || exists {
		t.Fatalf("apply created the application's version table (%v)", err)
	}
}
