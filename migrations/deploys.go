package migrations

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Deploy is one deploy of an app version to a stage (and wave) of the
// pipeline, as the pipeline reported it with phasekit record deploy.
type Deploy struct {
	App   string `json:"app"`
	Stage string `json:"stage"`
	// Wave is "" for a stage without waves.
	Wave    string `json:"wave,omitempty"`
	Version string `json:"version"`
	// At is when the version started running there (the deploy's end).
	At         time.Time `json:"at"`
	RecordedBy string    `json:"recorded_by"`
	RecordedAt time.Time `json:"recorded_at"`
}

// RecordDeploy stores a deploy in the ledger (phasekit.deploys), creating
// the ledger if needed, and returns it as stored.
func RecordDeploy(ctx context.Context, conn *pgx.Conn, d Deploy) (Deploy, error) {
	if err := ensureLedger(ctx, conn); err != nil {
		return d, err
	}
	err := conn.QueryRow(ctx, `INSERT INTO phasekit.deploys (app, stage, wave, version, at, recorded_by) VALUES ($1, $2, $3, $4, $5, $6) RETURNING at, recorded_at`,
		d.App, d.Stage, d.Wave, d.Version, d.At, d.RecordedBy).Scan(&d.At, &d.RecordedAt)
	if err != nil {
		return d, fmt.Errorf("record deploy of %s %s to %s: %w", d.App, d.Version, place(d.Stage, d.Wave), err)
	}
	return d, nil
}

// Deploys lists an app's deploys in the order they happened (by At, then by
// when they were recorded); none when the ledger does not exist.
func Deploys(ctx context.Context, conn *pgx.Conn, app string) ([]Deploy, error) {
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('phasekit.deploys') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, fmt.Errorf("read deploys: %w", err)
	}
	if !exists {
		return []Deploy{}, nil
	}
	rows, err := conn.Query(ctx, `SELECT app, stage, wave, version, at, recorded_by, recorded_at FROM phasekit.deploys WHERE app = $1 ORDER BY at, id`, app)
	if err != nil {
		return nil, fmt.Errorf("read deploys: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Deploy, error) {
		var d Deploy
		err := r.Scan(&d.App, &d.Stage, &d.Wave, &d.Version, &d.At, &d.RecordedBy, &d.RecordedAt)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("read deploys: %w", err)
	}
	return out, nil
}

// Override is a gate forced open: apply --force --reason ran a phase the gate
// did not let through.
type Override struct {
	Phase string `json:"phase"`
	// Verdict is what the gate said: "closed" or "not-yet".
	Verdict string `json:"verdict"`
	Reason  string `json:"reason"`
	// Gate is the gate's result as JSON, with its evidence.
	Gate     json.RawMessage `json:"gate,omitempty"`
	ForcedBy string          `json:"forced_by"`
	At       time.Time       `json:"at"`
}

// RecordOverride stores a forced gate for the plan in the ledger
// (phasekit.overrides); the plan must be registered (Apply does it before
// asking the gate).
func RecordOverride(ctx context.Context, conn *pgx.Conn, hash string, o Override) error {
	if err := ensureLedger(ctx, conn); err != nil {
		return err
	}
	var gate any
	if len(o.Gate) > 0 {
		gate = string(o.Gate)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO phasekit.overrides (hash, phase, verdict, reason, gate, forced_by) VALUES ($1, $2, $3, $4, $5::jsonb, $6)`,
		hash, o.Phase, o.Verdict, o.Reason, gate, o.ForcedBy); err != nil {
		return fmt.Errorf("record the override of the %s gate: %w", o.Phase, err)
	}
	return nil
}

func readOverrides(ctx context.Context, conn *pgx.Conn, hash string) ([]Override, error) {
	rows, err := conn.Query(ctx, `SELECT phase, verdict, reason, gate, forced_by, at FROM phasekit.overrides WHERE hash = $1 ORDER BY at, id`, hash)
	if err != nil {
		return nil, fmt.Errorf("read overrides: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Override, error) {
		var o Override
		var gate []byte
		err := r.Scan(&o.Phase, &o.Verdict, &o.Reason, &gate, &o.ForcedBy, &o.At)
		o.Gate = gate
		return o, err
	})
	if err != nil {
		return nil, fmt.Errorf("read overrides: %w", err)
	}
	return out, nil
}

func place(stage, wave string) string {
	if wave == "" {
		return stage
	}
	return stage + "/" + wave
}
