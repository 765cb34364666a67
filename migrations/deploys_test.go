package migrations_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/verify/pgtest"
)

// TestDeployRecords: deploys come back in the order they happened, whatever
// the order they were recorded in, and only the app's own.
func TestDeployRecords(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDB(t, "")
	conn := pgtest.Conn(t, dsn)
	if got, err := migrations.Deploys(ctx, conn, "checkout"); err != nil || len(got) != 0 {
		t.Fatalf("without a ledger: %v %v", got, err)
	}
	t0 := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	for _, d := range []migrations.Deploy{
		{App: "checkout", Stage: "prod", Wave: "us-east-1", Version: "v42", At: t0.Add(2 * time.Hour)},
		{App: "checkout", Stage: "prod", Wave: "one-box", Version: "v42", At: t0},
		{App: "billing", Stage: "prod", Version: "v7", At: t0},
		{App: "checkout", Stage: "beta", Version: "v42", At: t0.Add(-time.Hour)},
	} {
		d.RecordedBy = runner().Who()
		got, err := migrations.RecordDeploy(ctx, conn, d)
		if err != nil {
			t.Fatal(err)
		}
		if got.RecordedAt.IsZero() || !got.At.Equal(d.At) {
			t.Errorf("recorded %+v", got)
		}
	}
	got, err := migrations.Deploys(ctx, conn, "checkout")
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, d := range got {
		order = append(order, d.Stage+"/"+d.Wave)
	}
	if len(got) != 3 || order[0] != "beta/" || order[1] != "prod/one-box" || order[2] != "prod/us-east-1" {
		t.Errorf("deploys %v", order)
	}
	if got[0].RecordedBy != "tester@testhost (phasekit test, pid 4242)" {
		t.Errorf("recorded_by %q", got[0].RecordedBy)
	}
}

// TestBackfillVerificationRecorded: the verify count is kept in the ledger
// even when rows still differ, with the time it ran; an override is kept
// with its reason and shown by Status.
func TestBackfillVerificationRecorded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDB(t, "chinook")
	conn := pgtest.Conn(t, dsn)
	_, p := planDir(t, dsn, "ALTER TABLE customer RENAME COLUMN email TO email_address;")
	// A verify query that always finds 3 rows, as a broken dual-write would.
	p.Phase(phases.Backfill).Backfills[0].Verify = "SELECT 3::bigint"
	p.Hash = p.ComputeHash()
	dir := filepath.Join(t.TempDir(), "plan")
	if _, err := migrations.Write(dir, p, func(*phases.Plan) string { return "" }); err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Second)
	_, err := migrations.Apply(ctx, dsn, dir, migrations.ApplyOptions{Until: phases.Backfill, DDL: fastDDL(), Runner: runner()})
	if !errors.Is(err, migrations.ErrBackfillIncomplete) {
		t.Fatalf("want ErrBackfillIncomplete, got %v", err)
	}
	all, err := migrations.Status(ctx, conn, p.Hash)
	if err != nil {
		t.Fatal(err)
	}
	b := all[0].Backfills
	if len(b) != 1 || b[0].Remaining == nil || *b[0].Remaining != 3 || b[0].VerifiedAt == nil || b[0].VerifiedAt.Before(start) {
		t.Fatalf("backfill in the ledger: %+v", b)
	}
	if got := states(&all[0]); got != "expand=done dual-write=done backfill=failed contract=pending" {
		t.Errorf("states %s", got)
	}

	gate := json.RawMessage(`{"verdict": "closed"}`)
	if err := migrations.RecordOverride(ctx, conn, p.Hash, migrations.Override{Phase: "contract", Verdict: "closed", Reason: "INC-42: N is gone, the alarm is a known false positive", Gate: gate, ForcedBy: runner().Who()}); err != nil {
		t.Fatal(err)
	}
	if all, err = migrations.Status(ctx, conn, p.Hash); err != nil {
		t.Fatal(err)
	}
	o := all[0].Overrides
	if len(o) != 1 || o[0].Reason != "INC-42: N is gone, the alarm is a known false positive" || o[0].ForcedBy != runner().Who() || o[0].At.IsZero() || string(o[0].Gate) != `{"verdict": "closed"}` {
		t.Errorf("overrides %+v", o)
	}
}

// TestStatusOfOlderLedger: a ledger made before deploys and the gate is read
// as it is, and upgraded by the next apply.
func TestStatusOfOlderLedger(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDB(t, "chinook")
	conn := pgtest.Conn(t, dsn)
	dir, p := planDir(t, dsn, "ALTER TABLE customer RENAME COLUMN email TO email_address;")
	if _, err := migrations.Apply(ctx, dsn, dir, migrations.ApplyOptions{Until: phases.Backfill, DDL: fastDDL(), Runner: runner()}); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "ALTER TABLE phasekit.backfills DROP COLUMN verified_at; DROP TABLE phasekit.overrides; DROP TABLE phasekit.deploys"); err != nil {
		t.Fatal(err)
	}
	all, err := migrations.Status(ctx, conn, p.Hash)
	if err != nil || len(all) != 1 || all[0].Backfills[0].VerifiedAt != nil || *all[0].Backfills[0].Remaining != 0 {
		t.Fatalf("older ledger: %+v %v", all, err)
	}
	if _, err := migrations.Apply(ctx, dsn, dir, migrations.ApplyOptions{Phase: phases.Backfill, DDL: fastDDL(), Runner: runner()}); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'phasekit.backfills'::regclass AND attname = 'verified_at'").Scan(&n); err != nil || n != 1 {
		t.Errorf("verified_at not added back: %d %v", n, err)
	}
	if _, err := migrations.Deploys(ctx, conn, "checkout"); err != nil {
		t.Error(err)
	}
}
