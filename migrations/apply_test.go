package migrations_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/verify"
	"github.com/phasekit/phasekit/verify/pgtest"
)

// planDir plans sql against the database and writes the plan into a new dir.
func planDir(t *testing.T, dsn, sql string) (string, *phases.Plan) {
	t.Helper()
	m, err := change.ParseSQL("m.sql", sql)
	if err != nil {
		t.Fatal(err)
	}
	p := planLive(t, dsn, m)
	dir := filepath.Join(t.TempDir(), "plan")
	if _, err := migrations.Write(dir, p, func(*phases.Plan) string { return "" }); err != nil {
		t.Fatal(err)
	}
	return dir, p
}

// planLive plans a migration against the live schema of dsn.
func planLive(t testing.TB, dsn string, m *change.Migration) *phases.Plan {
	t.Helper()
	snap, err := verify.SnapshotFromDSN(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	p, err := phases.Build(snap, m)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func fastDDL() migrations.DDLOptions {
	return migrations.DDLOptions{LockTimeout: 50 * time.Millisecond, MaxAttempts: 3, BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
}

func runner() migrations.Runner {
	return migrations.Runner{Host: "testhost", OSUser: "tester", PID: 4242, Version: "test"}
}

func states(st *migrations.PlanStatus) string {
	var out []string
	for _, p := range st.Phases {
		out = append(out, p.Kind+"="+p.State)
	}
	return strings.Join(out, " ")
}

func TestApplyStatusRollback(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDB(t, "chinook")
	conn := pgtest.Conn(t, dsn)
	before, err := verify.DumpSchema(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	sums := dataChecksum(t, conn, nil)
	dir, p := planDir(t, dsn, "ALTER TABLE customer RENAME COLUMN email TO email_address;")

	var out bytes.Buffer
	opts := migrations.ApplyOptions{DDL: fastDDL(), Runner: runner(), Out: &out}

	// Dry run: nothing changes, not even the ledger.
	dry := opts
	dry.DryRun = true
	if _, err := migrations.Apply(ctx, dsn, dir, dry); err != nil {
		t.Fatal(err)
	}
	if got, _ := verify.DumpSchema(ctx, dsn); got != before || !strings.Contains(out.String(), "would run phase expand") {
		t.Fatalf("dry run changed the schema or said nothing:\n%s", out.String())
	}
	var ledger bool
	if err := conn.QueryRow(ctx, "SELECT to_regnamespace('phasekit') IS NOT NULL").Scan(&ledger); err != nil || ledger {
		t.Fatalf("dry run created the ledger (%v)", err)
	}

	// Default: the next phase only.
	st, err := migrations.Apply(ctx, dsn, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := states(st); got != "expand=done dual-write=pending backfill=pending contract=pending" {
		t.Fatalf("after apply: %s", got)
	}
	if st.Phases[0].Host != "testhost" || st.Phases[0].OSUser != "tester" || st.Phases[0].Version != "test" {
		t.Errorf("runner not recorded: %+v", st.Phases[0])
	}
	// Contract cannot jump the queue.
	var refused *migrations.RefusedError
	if _, err := migrations.Apply(ctx, dsn, dir, migrations.ApplyOptions{Phase: phases.Contract, DDL: fastDDL(), Runner: runner()}); !errors.As(err, &refused) {
		t.Fatalf("contract before backfill: %v", err)
	}
	if st, err = migrations.Apply(ctx, dsn, dir, migrations.ApplyOptions{Until: phases.Backfill, DDL: fastDDL(), Runner: runner(), Out: &out}); err != nil {
		t.Fatal(err)
	}
	if len(st.Backfills) != 1 || st.Backfills[0].Rows != 59 || st.Backfills[0].Remaining == nil || *st.Backfills[0].Remaining != 0 {
		t.Fatalf("backfill in the ledger: %+v", st.Backfills)
	}
	// The application's version table is the application's: never created.
	var created bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('public.schema_migrations') IS NOT NULL").Scan(&created); err != nil || created {
		t.Fatalf("apply created public.schema_migrations (%v)", err)
	}

	// Roll everything back: schema and data as they were.
	if st, err = migrations.Rollback(ctx, dsn, dir, migrations.RollbackOptions{All: true, DDL: fastDDL(), Runner: runner(), Out: &out}); err != nil {
		t.Fatal(err)
	}
	if got := states(st); got != "expand=rolled back dual-write=rolled back backfill=rolled back contract=pending" {
		t.Fatalf("after rollback: %s", got)
	}
	if got, _ := verify.DumpSchema(ctx, dsn); got != before {
		t.Fatalf("schema after rollback differs:\n%s", diff(before, got))
	}
	sameSums(t, "after rollback", sums, dataChecksum(t, conn, nil))

	// And all the way through.
	if st, err = migrations.Apply(ctx, dsn, dir, migrations.ApplyOptions{Until: phases.Contract, DDL: fastDDL(), Runner: runner(), Out: &out}); err != nil {
		t.Fatal(err)
	}
	if got := states(st); got != "expand=done dual-write=done backfill=done contract=done" {
		t.Fatalf("after apply --until contract: %s", got)
	}
	if !hasColumn(t, conn, "customer", "email_address") || hasColumn(t, conn, "customer", "email") {
		t.Fatal("contract did not leave email_address alone")
	}
	all, err := migrations.Status(ctx, conn, "")
	if err != nil || len(all) != 1 || all[0].Hash != p.Hash || all[0].InFlight() {
		t.Fatalf("status: %+v %v", all, err)
	}
}

func TestSecondRunnerRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDB(t, "chinook")
	dir, p := planDir(t, dsn, "ALTER TABLE customer RENAME COLUMN email TO email_address;")
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["application_name"] = "phasekit/other host=elsewhere user=ops pid=1"
	holder, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	var pid int
	if err := holder.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_lock($1, hashtext($2))", 0x70686b, p.Hash); err != nil {
		t.Fatal(err)
	}
	_, err = migrations.Apply(ctx, dsn, dir, migrations.ApplyOptions{DDL: fastDDL(), Runner: runner()})
	var held *migrations.LockHeldError
	if !errors.As(err, &held) {
		t.Fatalf("want *LockHeldError, got %v", err)
	}
	if held.PID != pid || !strings.Contains(err.Error(), "host=elsewhere") {
		t.Errorf("holder not named: %v (pid %d)", err, pid)
	}
	if _, err := migrations.Rollback(ctx, dsn, dir, migrations.RollbackOptions{DDL: fastDDL(), Runner: runner()}); !errors.As(err, &held) {
		t.Errorf("rollback: want *LockHeldError, got %v", err)
	}
}

func TestDriftAndConflictRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDB(t, "chinook")
	conn := pgtest.Conn(t, dsn)
	dir, _ := planDir(t, dsn, "ALTER TABLE customer RENAME COLUMN email TO email_address;")
	other, _ := planDir(t, dsn, "ALTER TABLE customer DROP COLUMN fax;")

	// Drift: the table changed after planning.
	if _, err := conn.Exec(ctx, "ALTER TABLE customer ADD COLUMN loyalty int"); err != nil {
		t.Fatal(err)
	}
	before, _ := verify.DumpSchema(ctx, dsn)
	_, err := migrations.Apply(ctx, dsn, dir, migrations.ApplyOptions{DDL: fastDDL(), Runner: runner()})
	var refused *migrations.RefusedError
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "drift") {
		t.Fatalf("want drift refusal, got %v", err)
	}
	if after, _ := verify.DumpSchema(ctx, dsn); after != before {
		t.Fatalf("a refused apply changed the schema:\n%s", diff(before, after))
	}
	if _, err := conn.Exec(ctx, "ALTER TABLE customer DROP COLUMN loyalty"); err != nil {
		t.Fatal(err)
	}

	// Conflict: a plan in flight on customer blocks another on customer.
	if _, err := migrations.Apply(ctx, dsn, dir, migrations.ApplyOptions{DDL: fastDDL(), Runner: runner()}); err != nil {
		t.Fatal(err)
	}
	_, err = migrations.Apply(ctx, dsn, other, migrations.ApplyOptions{DDL: fastDDL(), Runner: runner()})
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "in flight on public.customer") {
		t.Fatalf("want conflict refusal, got %v", err)
	}

	// An edited plan.json is refused.
	edited := filepath.Join(t.TempDir(), "edited")
	p, err := migrations.ReadPlan(dir)
	if err != nil {
		t.Fatal(err)
	}
	p.Phases[0].Statements[0].SQL = "DROP TABLE customer CASCADE"
	if _, err := migrations.Write(edited, p, func(*phases.Plan) string { return "" }); err != nil {
		t.Fatal(err)
	}
	if _, err := migrations.Apply(ctx, dsn, edited, migrations.ApplyOptions{DDL: fastDDL(), Runner: runner()}); !errors.As(err, &refused) || !strings.Contains(err.Error(), "edited after planning") {
		t.Fatalf("want edited-plan refusal, got %v", err)
	}
}

// TestResumeAfterFailure: a phase stopped half-way (a lock held by a long
// transaction makes a step give up) is resumed by the next apply, which skips
// the steps already done.
func TestResumeAfterFailure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDB(t, "chinook")
	conn := pgtest.Conn(t, dsn)
	dir, _ := planDir(t, dsn, "CREATE INDEX track_name_idx ON track (name); ALTER TABLE invoice ADD COLUMN note text;")

	blocker := pgtest.Conn(t, dsn)
	tx, err := blocker.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE invoice IN ACCESS SHARE MODE"); err != nil {
		t.Fatal(err)
	}
	_, err = migrations.Apply(ctx, dsn, dir, migrations.ApplyOptions{DDL: fastDDL(), Runner: runner()})
	var blocked *migrations.LockBlockedError
	if !errors.As(err, &blocked) || !strings.Contains(err.Error(), "LOCK TABLE invoice") {
		t.Fatalf("want a LockBlockedError naming the blocker, got %v", err)
	}
	var valid bool
	if err := conn.QueryRow(ctx, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'track_name_idx'::regclass").Scan(&valid); err != nil || !valid {
		t.Fatalf("the index step before the blocked one should be done: %v", err)
	}
	all, err := migrations.Status(ctx, conn, "")
	if err != nil || all[0].Phases[0].State != migrations.StateFailed || !strings.Contains(all[0].Phases[0].Error, "blocked") {
		t.Fatalf("ledger after the failure: %+v %v", all, err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	st, err := migrations.Apply(ctx, dsn, dir, migrations.ApplyOptions{DDL: fastDDL(), Runner: runner(), Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	if st.Phases[0].State != migrations.StateDone || !strings.Contains(out.String(), "already done") {
		t.Fatalf("resume: %s\n%s", states(st), out.String())
	}
}

// TestArchiveAndPurge: contract archives a dropped column and table instead
// of dropping them, rollback brings them back with their data, and purge
// drops them only once they are older than asked.
func TestArchiveAndPurge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDB(t, "chinook")
	conn := pgtest.Conn(t, dsn)
	sums := dataChecksum(t, conn, nil)
	dir, _ := planDir(t, dsn, "ALTER TABLE customer DROP COLUMN fax; DROP TABLE playlist_track;")
	var out bytes.Buffer
	if _, err := migrations.Apply(ctx, dsn, dir, migrations.ApplyOptions{Until: phases.Contract, DDL: fastDDL(), Runner: runner(), Out: &out}); err != nil {
		t.Fatal(err)
	}
	if hasColumn(t, conn, "customer", "fax") || !hasColumn(t, conn, "customer", "phasekit_archived_fax") {
		t.Fatal("fax was not archived")
	}
	// N+1 inserts without the archived column.
	if _, err := conn.Exec(ctx, "INSERT INTO customer (customer_id, first_name, last_name, email) VALUES (1000, 'A', 'B', 'c@d')"); err != nil {
		t.Fatalf("insert after contract: %v", err)
	}
	if _, err := conn.Exec(ctx, "DELETE FROM customer WHERE customer_id = 1000"); err != nil {
		t.Fatal(err)
	}
	archives, err := migrations.Archives(ctx, conn)
	if err != nil || len(archives) != 2 {
		t.Fatalf("archives: %+v %v", archives, err)
	}
	for _, a := range archives {
		if time.Since(a.ArchivedAt) > time.Minute || a.Original == "" {
			t.Errorf("archive without its stamp: %+v", a)
		}
	}

	// Rollback brings both back, data included.
	if _, err := migrations.Rollback(ctx, dsn, dir, migrations.RollbackOptions{All: true, DDL: fastDDL(), Runner: runner(), Out: &out}); err != nil {
		t.Fatal(err)
	}
	sameSums(t, "after rolling back an archiving contract", sums, dataChecksum(t, conn, nil))
	if n := len(dataChecksum(t, conn, nil)); n != len(sums) {
		t.Fatalf("%d tables after rollback, %d before", n, len(sums))
	}

	// Again, then purge: kept while young, dropped when old enough.
	if _, err := migrations.Apply(ctx, dsn, dir, migrations.ApplyOptions{Until: phases.Contract, DDL: fastDDL(), Runner: runner(), Out: &out}); err != nil {
		t.Fatal(err)
	}
	kept, err := migrations.Purge(ctx, conn, time.Hour, false, fastDDL(), &out)
	if err != nil || len(kept) != 2 || kept[0].Purged || kept[1].Purged {
		t.Fatalf("purge --older-than 1h: %+v %v", kept, err)
	}
	purged, err := migrations.Purge(ctx, conn, 0, false, fastDDL(), &out)
	if err != nil || len(purged) != 2 || !purged[0].Purged || !purged[1].Purged {
		t.Fatalf("purge --older-than 0: %+v %v", purged, err)
	}
	if left, _ := migrations.Archives(ctx, conn); len(left) != 0 {
		t.Fatalf("left after purge: %+v", left)
	}
}

// TestRollbackFromEveryBoundary: for a rename and a type change, apply up to
// each phase boundary, roll everything back, and find the schema and every
// row exactly as at the start.
func TestRollbackFromEveryBoundary(t *testing.T) {
	t.Parallel()
	for _, sql := range []string{
		"ALTER TABLE customer RENAME COLUMN email TO email_address;",
		"ALTER TABLE track ALTER COLUMN milliseconds TYPE bigint;",
	} {
		ctx := context.Background()
		dsn := pgtest.NewDB(t, "chinook")
		conn := pgtest.Conn(t, dsn)
		before, err := verify.DumpSchema(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		sums := dataChecksum(t, conn, nil)
		dir, p := planDir(t, dsn, sql)
		for _, ph := range p.Phases {
			var out bytes.Buffer
			if _, err := migrations.Apply(ctx, dsn, dir, migrations.ApplyOptions{Until: ph.Kind, DDL: fastDDL(), Runner: runner(), Out: &out}); err != nil {
				t.Fatalf("%s: apply --until %s: %v", sql, ph.Kind, err)
			}
			if _, err := migrations.Rollback(ctx, dsn, dir, migrations.RollbackOptions{All: true, DDL: fastDDL(), Runner: runner(), Out: &out}); err != nil {
				t.Fatalf("%s: rollback from %s: %v", sql, ph.Kind, err)
			}
			if got, _ := verify.DumpSchema(ctx, dsn); got != before {
				t.Fatalf("%s: schema after rollback from %s differs:\n%s", sql, ph.Kind, diff(before, got))
			}
			after := dataChecksum(t, conn, nil)
			sameSums(t, sql+": data after rollback from "+string(ph.Kind), sums, after)
			if len(after) != len(sums) {
				t.Fatalf("%s: %d tables after rollback from %s, %d before", sql, len(after), ph.Kind, len(sums))
			}
		}
	}
}

// TestPrivilegesAndParallelPlans: a role that does not own the table is
// refused before anything changes; two plans on different tables run side
// by side, each with its own lock and ledger rows.
func TestPrivilegesAndParallelPlans(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDB(t, "chinook")
	conn := pgtest.Conn(t, dsn)
	rename, _ := planDir(t, dsn, "ALTER TABLE customer RENAME COLUMN email TO email_address;")
	index, _ := planDir(t, dsn, "CREATE INDEX track_name_idx ON track (name);")

	role := "pk_reader_" + strings.ReplaceAll(strings.TrimPrefix(filepath.Base(t.TempDir()), "Test"), "-", "_")
	if _, err := conn.Exec(ctx, "CREATE ROLE "+role+" LOGIN; GRANT CREATE ON DATABASE "+currentDB(t, conn)+" TO "+role); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = conn.Exec(context.Background(), "REVOKE ALL ON DATABASE "+currentDB(t, conn)+" FROM "+role+"; DROP OWNED BY "+role+"; DROP ROLE "+role)
	})
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	asReader := strings.Replace(dsn, "postgres@", role+"@", 1)
	if cfg.User != "postgres" || asReader == dsn {
		t.Fatalf("unexpected test DSN %s", dsn)
	}
	before, _ := verify.DumpSchema(ctx, dsn)
	_, err = migrations.Apply(ctx, asReader, rename, migrations.ApplyOptions{DDL: fastDDL(), Runner: runner()})
	var refused *migrations.RefusedError
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "does not own table public.customer") {
		t.Fatalf("want an ownership refusal, got %v", err)
	}
	if after, _ := verify.DumpSchema(ctx, dsn); after != before {
		t.Fatalf("a refused apply changed the schema:\n%s", diff(before, after))
	}

	if _, err := migrations.Apply(ctx, dsn, rename, migrations.ApplyOptions{DDL: fastDDL(), Runner: runner()}); err != nil {
		t.Fatal(err)
	}
	if _, err := migrations.Apply(ctx, dsn, index, migrations.ApplyOptions{DDL: fastDDL(), Runner: runner()}); err != nil {
		t.Fatalf("a second plan on another table: %v", err)
	}
	all, err := migrations.Status(ctx, conn, "")
	if err != nil || len(all) != 2 {
		t.Fatalf("status: %+v %v", all, err)
	}
}

func currentDB(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	var db string
	if err := conn.QueryRow(context.Background(), "SELECT current_database()").Scan(&db); err != nil {
		t.Fatal(err)
	}
	return db
}
