package migrations

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/verify/pgtest"
)

// TestVacuumNoteSeesAVacuumOfTheTable runs a VACUUM of the backfilled table,
// slowed by its cost delay so that it lasts, and checks that the guard's
// quiet-window lines would name it, and that they say nothing before it or
// about another table's.
func TestVacuumNoteSeesAVacuumOfTheTable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDB(t, "")
	conn := pgtest.Conn(t, dsn)
	// autovacuum off on the test's own tables, so only the test's VACUUM runs.
	if _, err := conn.Exec(ctx, `CREATE TABLE v (id bigint PRIMARY KEY, pad text) WITH (autovacuum_enabled = false);
		CREATE TABLE other (id bigint PRIMARY KEY, pad text) WITH (autovacuum_enabled = false);
		INSERT INTO v SELECT i, md5(i::text) FROM generate_series(1, 50000) i;
		INSERT INTO other SELECT i, md5(i::text) FROM generate_series(1, 50000) i`); err != nil {
		t.Fatal(err)
	}
	pool := backfillPool(t, dsn)
	b := &backfiller{pool: pool, step: phases.BackfillStep{Table: "public.v"}, table: backfillQuoteTable("public.v")}
	if got := b.vacuumNote(ctx); got != "" {
		t.Fatalf("no VACUUM running: got %q", got)
	}

	for _, table := range []string{"other", "v"} {
		vac := pgtest.Conn(t, dsn)
		// One cost unit per page at most, then 100 ms asleep: the few
		// hundred pages take tens of seconds.
		if _, err := vac.Exec(ctx, "SET vacuum_cost_delay = 100; SET vacuum_cost_limit = 1"); err != nil {
			t.Fatal(err)
		}
		vctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			_, err := vac.Exec(vctx, "VACUUM "+table)
			done <- err
		}()
		var note string
		seen := false
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			var running bool
			if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_stat_progress_vacuum WHERE relid = $1::regclass)", table).Scan(&running); err != nil {
				t.Fatal(err)
			}
			if running {
				note, seen = b.vacuumNote(ctx), true
				break
			}
		}
		cancel()
		if !seen {
			t.Fatalf("VACUUM %s never showed in pg_stat_progress_vacuum", table)
		}
		if err := <-done; err == nil {
			t.Fatalf("VACUUM %s ended before it was seen; the test needs it to last", table)
		}
		switch table {
		case "other":
			if note != "" {
				t.Errorf("a VACUUM of another table: got %q, want nothing", note)
			}
		case "v":
			if !strings.Contains(note, "a VACUUM of public.v is running") || !strings.Contains(note, "scanning heap") {
				t.Errorf("a VACUUM of the table: got %q, want it named, with its phase", note)
			}
		}
	}
}
