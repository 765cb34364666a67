package migrations

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/throttle"
)

// Phase states in the ledger.
const (
	StatePending    = "pending"
	StateRunning    = "running"
	StateDone       = "done"
	StateFailed     = "failed"
	StateRolledBack = "rolled back"
)

// ledgerDDL creates phasekit's ledger beside golang-migrate's version table.
// It lives in the schema phasekit, which schema comparisons leave out.
const ledgerDDL = `
CREATE SCHEMA IF NOT EXISTS phasekit;
CREATE TABLE IF NOT EXISTS phasekit.plans (
  hash       text PRIMARY KEY,
  tables     text[] NOT NULL,
  plan       jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS phasekit.phases (
  hash        text NOT NULL REFERENCES phasekit.plans ON DELETE CASCADE,
  position    int NOT NULL,
  kind        text NOT NULL,
  state       text NOT NULL DEFAULT 'pending',
  started_at  timestamptz,
  finished_at timestamptz,
  host        text,
  os_user     text,
  pid         int,
  version     text,
  error       text,
  PRIMARY KEY (hash, position)
);
CREATE TABLE IF NOT EXISTS phasekit.backfills (
  hash       text NOT NULL REFERENCES phasekit.plans ON DELETE CASCADE,
  idx        int NOT NULL,
  table_name text NOT NULL,
  cursor     text[],
  upper      text[],
  rows       bigint NOT NULL DEFAULT 0,
  remaining  bigint,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (hash, idx)
);
CREATE TABLE IF NOT EXISTS phasekit.steps (
  hash    text NOT NULL REFERENCES phasekit.plans ON DELETE CASCADE,
  version int NOT NULL,
  done_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (hash, version)
);
-- remaining is the count of the backfill's verify query; verified_at says
-- when it ran (ledgers older than the contract gate lack the column).
ALTER TABLE phasekit.backfills ADD COLUMN IF NOT EXISTS verified_at timestamptz;
-- guard is what the latency guard did, saved with each batch's cursor
-- (throttle.Stats: baseline and probe p99, limit, rate, slowdowns, pauses).
ALTER TABLE phasekit.backfills ADD COLUMN IF NOT EXISTS guard jsonb;
CREATE TABLE IF NOT EXISTS phasekit.deploys (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  app         text NOT NULL,
  stage       text NOT NULL,
  wave        text NOT NULL DEFAULT '',
  version     text NOT NULL,
  at          timestamptz NOT NULL,
  recorded_by text NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS deploys_place ON phasekit.deploys (app, stage, wave, at);
CREATE TABLE IF NOT EXISTS phasekit.overrides (
  id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  hash      text NOT NULL REFERENCES phasekit.plans ON DELETE CASCADE,
  phase     text NOT NULL,
  verdict   text NOT NULL,
  reason    text NOT NULL,
  gate      jsonb,
  forced_by text NOT NULL,
  at        timestamptz NOT NULL DEFAULT now()
);
-- The application's golang-migrate version phasekit set when a plan made
-- with plan --app-version-table finished, and what it was before (NULL: the
-- table had no row), so a rollback of the last phase can put it back.
CREATE TABLE IF NOT EXISTS phasekit.app_versions (
  hash       text PRIMARY KEY REFERENCES phasekit.plans ON DELETE CASCADE,
  table_name text NOT NULL,
  previous   bigint,
  set_to     bigint NOT NULL,
  set_at     timestamptz NOT NULL DEFAULT now()
);`

// Runner says who runs phasekit, for the ledger and for the message a second
// runner gets.
type Runner struct {
	Host    string `json:"host"`
	OSUser  string `json:"os_user"`
	PID     int    `json:"pid"`
	Version string `json:"version"`
}

// Who names the runner in one line, for the ledger's recorded_by and
// forced_by: "tester@testhost (phasekit test, pid 4242)".
func (r Runner) Who() string {
	return fmt.Sprintf("%s@%s (phasekit %s, pid %d)", r.OSUser, r.Host, r.Version, r.PID)
}

// CurrentRunner describes this process.
func CurrentRunner(version string) Runner {
	r := Runner{PID: os.Getpid(), Version: version}
	r.Host, _ = os.Hostname()
	if u, err := user.Current(); err == nil {
		r.OSUser = u.Username
	}
	return r
}

// PhaseStatus is one phase's row in the ledger.
type PhaseStatus struct {
	Position   int        `json:"position"`
	Kind       string     `json:"kind"`
	State      string     `json:"state"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	Host       string     `json:"host,omitempty"`
	OSUser     string     `json:"os_user,omitempty"`
	Version    string     `json:"version,omitempty"`
	Error      string     `json:"error,omitempty"`
}

// BackfillStatus is one backfill's progress in the ledger.
type BackfillStatus struct {
	Index  int      `json:"index"`
	Table  string   `json:"table"`
	Cursor []string `json:"cursor,omitempty"`
	Upper  []string `json:"upper,omitempty"`
	Rows   int64    `json:"rows"`
	// Remaining is the count of the verify query (rows whose new column IS
	// DISTINCT FROM its expected value) when the backfill finished; nil until
	// it ran. The contract gate wants 0.
	Remaining  *int64     `json:"remaining,omitempty"`
	VerifiedAt *time.Time `json:"verified_at,omitempty"`
	UpdatedAt  time.Time  `json:"updated_at"`
	// Guard is what the latency guard did, as of the last batch (nil when
	// the backfill ran without it).
	Guard *GuardStatus `json:"guard,omitempty"`
}

// GuardStatus is the latency guard's record in the ledger (throttle.Stats,
// durations in milliseconds).
type GuardStatus struct {
	BaselineP99 float64 `json:"baseline_p99_ms"`
	Limit       float64 `json:"limit_ms"`
	ProbeP99    float64 `json:"probe_p99_ms"`
	PeakP99     float64 `json:"peak_p99_ms"`
	Rate        float64 `json:"rate"`
	Decreases   int     `json:"decreases"`
	Paused      float64 `json:"paused_ms"`
	Samples     int     `json:"samples"`
	Failures    int     `json:"failures"`
	// Quiets counts the quiet windows that measured a new baseline;
	// FirstBaselineP99 is the one measured before the backfill.
	Quiets           int     `json:"quiets,omitempty"`
	FirstBaselineP99 float64 `json:"first_baseline_p99_ms,omitempty"`
	// App is what the guard read of the app's own p99 (apply
	// --app-latency-query); nil when it did not read it.
	App *GuardAppStatus `json:"app,omitempty"`
}

// GuardAppStatus is what the guard read of the app's own p99
// (throttle.AppStats, durations in milliseconds).
type GuardAppStatus struct {
	BaselineP99 float64 `json:"baseline_p99_ms"`
	Limit       float64 `json:"limit_ms"`
	P99         float64 `json:"p99_ms"`
	PeakP99     float64 `json:"peak_p99_ms"`
	Readings    int     `json:"readings"`
	Errors      int     `json:"errors"`
	Cuts        int     `json:"cuts"`
	LastError   string  `json:"last_error,omitempty"`
}

// PlanStatus is a plan's state in the ledger.
type PlanStatus struct {
	Hash      string           `json:"hash"`
	Tables    []string         `json:"tables"`
	CreatedAt time.Time        `json:"created_at"`
	Phases    []PhaseStatus    `json:"phases"`
	Backfills []BackfillStatus `json:"backfills"`
	// Overrides are the gates forced open for this plan (apply --force).
	Overrides []Override `json:"overrides,omitempty"`
}

// InFlight reports whether the plan has begun and not finished or been
// rolled back entirely.
func (s PlanStatus) InFlight() bool {
	started, allDone, allBack := false, true, true
	for _, p := range s.Phases {
		if p.State != StatePending && p.State != StateRolledBack {
			started = true
		}
		allDone = allDone && p.State == StateDone
		allBack = allBack && (p.State == StatePending || p.State == StateRolledBack)
	}
	return started && !allDone && !allBack
}

// ledgerCurrent is true when the newest objects of ledgerDDL exist: then
// ensureLedger runs no DDL, so recording a deploy never waits for (or
// blocks) a backfill batch holding a row of phasekit.backfills. Name here
// whatever ledgerDDL adds next.
const ledgerCurrent = `SELECT to_regclass('phasekit.app_versions') IS NOT NULL AND to_regclass('phasekit.overrides') IS NOT NULL AND to_regclass('phasekit.deploys_place') IS NOT NULL
	AND EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('phasekit.backfills') AND attname = 'guard' AND NOT attisdropped)`

func ensureLedger(ctx context.Context, conn *pgx.Conn) error {
	var current bool
	if err := conn.QueryRow(ctx, ledgerCurrent).Scan(&current); err != nil {
		return fmt.Errorf("check ledger: %w", err)
	}
	if current {
		return nil
	}
	// Two first runs at once would race on CREATE ... IF NOT EXISTS; a
	// transaction-level advisory lock orders them.
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("create ledger: %w", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext('phasekit ledger'))"); err != nil {
		return fmt.Errorf("create ledger: %w", err)
	}
	if _, err := tx.Exec(ctx, ledgerDDL); err != nil {
		return fmt.Errorf("create ledger: %w", err)
	}
	return tx.Commit(ctx)
}

// registerPlan records the plan and its phases as pending, once.
func registerPlan(ctx context.Context, conn *pgx.Conn, p *phases.Plan) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("register plan: %w", err)
	}
	defer tx.Rollback(ctx)
	tag, err := tx.Exec(ctx, `INSERT INTO phasekit.plans (hash, tables, plan) VALUES ($1, $2, $3) ON CONFLICT (hash) DO NOTHING`, p.Hash, p.Tables, b)
	if err != nil {
		return fmt.Errorf("register plan: %w", err)
	}
	if tag.RowsAffected() == 1 {
		for i, ph := range p.Phases {
			if _, err := tx.Exec(ctx, `INSERT INTO phasekit.phases (hash, position, kind) VALUES ($1, $2, $3)`, p.Hash, i, string(ph.Kind)); err != nil {
				return fmt.Errorf("register plan: %w", err)
			}
		}
	}
	return tx.Commit(ctx)
}

// Status reads every plan in the ledger (hash "" ) or one plan.
func Status(ctx context.Context, conn *pgx.Conn, hash string) ([]PlanStatus, error) {
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('phasekit.plans') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, fmt.Errorf("read ledger: %w", err)
	}
	if !exists {
		return []PlanStatus{}, nil
	}
	rows, err := conn.Query(ctx, `SELECT hash, tables, created_at FROM phasekit.plans WHERE $1 = '' OR hash = $1 ORDER BY created_at, hash`, hash)
	if err != nil {
		return nil, fmt.Errorf("read ledger: %w", err)
	}
	plans, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (PlanStatus, error) {
		var s PlanStatus
		err := r.Scan(&s.Hash, &s.Tables, &s.CreatedAt)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("read ledger: %w", err)
	}
	// A ledger made before the contract gate has neither verified_at nor
	// overrides until the next apply adds them; Status only reads.
	var verified, guarded, overrides bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'phasekit.backfills'::regclass AND attname = 'verified_at' AND NOT attisdropped),
		EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'phasekit.backfills'::regclass AND attname = 'guard' AND NOT attisdropped),
		to_regclass('phasekit.overrides') IS NOT NULL`).Scan(&verified, &guarded, &overrides); err != nil {
		return nil, fmt.Errorf("read ledger: %w", err)
	}
	verifiedAt, guard := "NULL::timestamptz", "NULL::jsonb"
	if verified {
		verifiedAt = "verified_at"
	}
	if guarded {
		guard = "guard"
	}
	for i := range plans {
		rows, err := conn.Query(ctx, `SELECT position, kind, state, started_at, finished_at, coalesce(host, ''), coalesce(os_user, ''), coalesce(version, ''), coalesce(error, '')
			FROM phasekit.phases WHERE hash = $1 ORDER BY position`, plans[i].Hash)
		if err != nil {
			return nil, fmt.Errorf("read ledger: %w", err)
		}
		plans[i].Phases, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (PhaseStatus, error) {
			var p PhaseStatus
			err := r.Scan(&p.Position, &p.Kind, &p.State, &p.StartedAt, &p.FinishedAt, &p.Host, &p.OSUser, &p.Version, &p.Error)
			return p, err
		})
		if err != nil {
			return nil, fmt.Errorf("read ledger: %w", err)
		}
		rows, err = conn.Query(ctx, `SELECT idx, table_name, cursor, upper, rows, remaining, `+verifiedAt+`, updated_at, `+guard+` FROM phasekit.backfills WHERE hash = $1 ORDER BY idx`, plans[i].Hash)
		if err != nil {
			return nil, fmt.Errorf("read ledger: %w", err)
		}
		plans[i].Backfills, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (BackfillStatus, error) {
			var b BackfillStatus
			err := r.Scan(&b.Index, &b.Table, &b.Cursor, &b.Upper, &b.Rows, &b.Remaining, &b.VerifiedAt, &b.UpdatedAt, &b.Guard)
			return b, err
		})
		if err != nil {
			return nil, fmt.Errorf("read ledger: %w", err)
		}
		if overrides {
			if plans[i].Overrides, err = readOverrides(ctx, conn, plans[i].Hash); err != nil {
				return nil, err
			}
		}
	}
	return plans, nil
}

// ledgerCursor keeps a backfill's cursor in the ledger, written in the
// batch's own transaction so the cursor commits with the rows.
type ledgerCursor struct {
	conn  *pgx.Conn // for Load only
	hash  string
	idx   int
	table string
	guard *throttle.Stats // the latency guard's latest, saved with the cursor
}

// RecordGuard keeps the guard's state for the next Save.
func (l *ledgerCursor) RecordGuard(st throttle.Stats) { l.guard = &st }

func (l *ledgerCursor) Load(ctx context.Context) ([]string, []string, int64, error) {
	var cursor, upper []string
	var rows int64
	err := l.conn.QueryRow(ctx, `SELECT cursor, upper, rows FROM phasekit.backfills WHERE hash = $1 AND idx = $2`, l.hash, l.idx).Scan(&cursor, &upper, &rows)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, 0, nil
	}
	if err != nil {
		return nil, nil, 0, fmt.Errorf("load backfill cursor: %w", err)
	}
	return cursor, upper, rows, nil
}

func (l *ledgerCursor) Save(ctx context.Context, tx pgx.Tx, cursor, upper []string, rows int64) error {
	guard, err := l.guardJSON()
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, ledgerSaveSQL("$6::text[]", "$7::bigint", "", 1), l.hash, l.idx, l.table, upper, guard, cursor, rows); err != nil {
		return fmt.Errorf("save backfill cursor: %w", err)
	}
	return nil
}

// SaveStatement is Save reading the cursor from the batch's own statement,
// which Backfill sends as one with BEGIN and COMMIT.
func (l *ledgerCursor) SaveStatement(from string, key []string, keys string, upper []string, walked int64, first int) (string, []any, error) {
	guard, err := l.guardJSON()
	if err != nil {
		return "", nil, err
	}
	cursor := "ARRAY[" + strings.Join(key, ", ") + "]::text[]"
	rows := fmt.Sprintf("$%d::bigint + %s", first+5, keys)
	return ledgerSaveSQL(cursor, rows, " FROM "+from, first), []any{l.hash, l.idx, l.table, upper, guard, walked}, nil
}

// ledgerSaveSQL upserts a backfill's cursor: hash, idx, table_name, upper
// and guard are the parameters from $first in that order; cursor and rows
// are SQL expressions (over from, or parameters after those five).
func ledgerSaveSQL(cursor, rows, from string, first int) string {
	return fmt.Sprintf(`INSERT INTO phasekit.backfills (hash, idx, table_name, cursor, upper, rows, updated_at, guard)
		SELECT $%d::text, $%d::int, $%d::text, %s, $%d::text[], %s, now(), $%d::jsonb%s
		ON CONFLICT (hash, idx) DO UPDATE SET cursor = EXCLUDED.cursor, upper = EXCLUDED.upper, rows = EXCLUDED.rows, updated_at = now(), guard = coalesce(EXCLUDED.guard, phasekit.backfills.guard)`,
		first, first+1, first+2, cursor, first+3, rows, first+4, from)
}

// guardJSON is the guard's latest state as the ledger keeps it (nil: none).
func (l *ledgerCursor) guardJSON() ([]byte, error) {
	if l.guard == nil {
		return nil, nil
	}
	guard, err := json.Marshal(l.guard)
	if err != nil {
		return nil, fmt.Errorf("save backfill cursor: %w", err)
	}
	return guard, nil
}
