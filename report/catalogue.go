package report

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/phasekit/phasekit/internal/dbconn"
	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/schema"
)

// Catalogue is what the report reads from the live database: the schema
// snapshot (pg_class.reltuples and sizes, views, triggers, keys) and, for
// tables never analysed (reltuples -1), the statistics collector's live row
// counts. Reading it changes nothing.
type Catalogue struct {
	// Source names the database, password redacted.
	Source   string           `json:"source"`
	Snapshot *schema.Snapshot `json:"snapshot"`
	// LiveTuples is pg_stat_user_tables.n_live_tup by "schema.name".
	LiveTuples map[string]int64 `json:"live_tuples,omitempty"`
	// Ledger is the plan's state in phasekit's ledger on that database; nil
	// when the plan was never applied there.
	Ledger *migrations.PlanStatus `json:"ledger,omitempty"`
}

// ReadCatalogue reads the live catalogue of the database at dsn, and the
// ledger's record of the plan with the given hash ("" for none).
func ReadCatalogue(ctx context.Context, dsn, planHash string) (*Catalogue, error) {
	snap, err := schema.ReadDSN(ctx, dsn)
	if err != nil {
		return nil, err
	}
	c := &Catalogue{Source: dbconn.Redact(dsn), Snapshot: snap, LiveTuples: map[string]int64{}}
	conn, err := dbconn.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT schemaname, relname, n_live_tup FROM pg_stat_user_tables`)
	if err != nil {
		return nil, fmt.Errorf("read row counts from %s: %w", c.Source, err)
	}
	var ns, name string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&ns, &name, &n}, func() error {
		c.LiveTuples[schema.QualifiedName(ns, name)] = n
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read row counts from %s: %w", c.Source, err)
	}
	if planHash != "" {
		st, err := migrations.Status(ctx, conn, planHash)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.Source, err)
		}
		if len(st) == 1 {
			c.Ledger = &st[0]
		}
	}
	return c, nil
}

// DefaultCalibrationRows is how many rows Calibrate's scratch table holds.
const DefaultCalibrationRows = 100000

// Calibrate measures the rates on the target itself: in one transaction
// that it rolls back, it fills a temporary table shaped like the benchmark's
// (bigint key, int, md5 text) with rows rows, then times a full scan, a
// keyset-batched UPDATE like the backfill's, one whole-table UPDATE, an index
// build and an ALTER TYPE rewrite on it. Nothing is left behind. Temporary
// tables write no WAL and live in the session's buffers, so on a busy
// primary with replicas the real work is slower: the report says so.
func Calibrate(ctx context.Context, dsn string, rows int) (Rates, error) {
	if rows <= 0 {
		rows = DefaultCalibrationRows
	}
	src := dbconn.Redact(dsn)
	conn, err := dbconn.Connect(ctx, dsn)
	if err != nil {
		return Rates{}, err
	}
	defer conn.Close(context.Background())
	tx, err := conn.Begin(ctx)
	if err != nil {
		return Rates{}, fmt.Errorf("calibrate on %s: %w", src, err)
	}
	// Rolled back whatever happens: the scratch table goes with it.
	defer tx.Rollback(context.Background())

	exec := func(what, sql string, args ...any) (time.Duration, error) {
		t0 := time.Now()
		if _, err := tx.Exec(ctx, sql, args...); err != nil {
			return 0, fmt.Errorf("calibrate on %s: %s: %w", src, what, err)
		}
		return time.Since(t0), nil
	}
	setup := []struct{ what, sql string }{
		{"set timeouts", `SET LOCAL statement_timeout = '60s'`},
		{"set timeouts", `SET LOCAL lock_timeout = '1s'`},
		{"create the scratch table", `CREATE TEMPORARY TABLE phasekit_calibrate (id bigint PRIMARY KEY, val int NOT NULL, pad text NOT NULL, val_new bigint) ON COMMIT DROP`},
		{"fill the scratch table", fmt.Sprintf(`INSERT INTO phasekit_calibrate (id, val, pad) SELECT g, (g * 7919) %% 1000000, md5(g::text) FROM generate_series(1, %d) g`, rows)},
		{"analyze the scratch table", `ANALYZE phasekit_calibrate`},
	}
	for _, s := range setup {
		if _, err := exec(s.what, s.sql); err != nil {
			return Rates{}, err
		}
	}
	// The backfill's batches: about its 5 ms target at the benchmark's rate.
	const batch = 800
	var backfill time.Duration
	for lo := 0; lo < rows; lo += batch {
		d, err := exec("batched UPDATE", `UPDATE phasekit_calibrate SET val_new = val WHERE id > $1 AND id <= $2 AND val_new IS DISTINCT FROM val`, lo, lo+batch)
		if err != nil {
			return Rates{}, err
		}
		backfill += d
	}
	timed := []struct {
		what, sql string
		d         time.Duration
	}{
		{what: "full scan", sql: `SELECT count(*) FROM phasekit_calibrate WHERE val_new IS DISTINCT FROM val`},
		{what: "whole-table UPDATE", sql: `UPDATE phasekit_calibrate SET val_new = val + 1`},
		{what: "index build", sql: `CREATE INDEX ON phasekit_calibrate (val)`},
		{what: "ALTER TYPE rewrite", sql: `ALTER TABLE phasekit_calibrate ALTER COLUMN val TYPE bigint`},
	}
	for i := range timed {
		d, err := exec(timed[i].what, timed[i].sql)
		if err != nil {
			return Rates{}, err
		}
		timed[i].d = d
	}
	note := fmt.Sprintf("measured by --calibrate on %s (%s rows in a temporary table, rolled back; no WAL, so a lower bound on time)", src, humanRows(int64(rows)))
	rate := func(d time.Duration, what string) Rate {
		return Rate{RowsPerSecond: float64(rows) / max(d.Seconds(), 1e-6), Source: note + ": " + what}
	}
	return Rates{
		Backfill: rate(backfill, fmt.Sprintf("UPDATE in batches of %d rows", batch)),
		Scan:     rate(timed[0].d, timed[0].what),
		Update:   rate(timed[1].d, timed[1].what),
		Index:    rate(timed[2].d, timed[2].what),
		Rewrite:  rate(timed[3].d, timed[3].what),
	}, nil
}
