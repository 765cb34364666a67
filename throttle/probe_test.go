package throttle_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/phasekit/phasekit/throttle"
	"github.com/phasekit/phasekit/verify/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestProbeCloseAfterCutOff: the guard stops its probe by cancelling the
// statement in flight, which makes pgx close the probe's connection. Close
// must still delete the probe's row (CI once found one left behind).
func TestProbeCloseAfterCutOff(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	ctx := t.Context()
	dsn := pgtest.NewDB(t, "")
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	probe, err := throttle.NewPGProbe(ctx, cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := probe.Run(ctx); err != nil {
		t.Fatalf("first probe: %v", err)
	}
	conn := pgtest.Conn(t, dsn)
	count := func() int {
		t.Helper()
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM phasekit.latency_probe").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(); n != 1 {
		t.Fatalf("%d probe rows after one probe, want 1", n)
	}

	// Hold the probe's row so the next probe waits, then cut it off.
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT 1 FROM phasekit.latency_probe FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err = probe.Run(runCtx)
	cancel()
	if err == nil {
		t.Fatal("the probe behind a held row lock returned no error, want it cut off")
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	probe.Close(ctx)
	if n := count(); n != 0 {
		t.Errorf("%d probe rows left behind after Close of a probe cut off mid-statement", n)
	}
}
