package throttle

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DefaultProbeSQL is the default probe: a committed single-row update of the
// probe's own row in phasekit.latency_probe. It writes WAL, so its commit
// waits for the WAL flush as every application commit does, and it takes a
// row lock and a buffer lock as an application's write does; it touches no
// object of the application.
const DefaultProbeSQL = `INSERT INTO phasekit.latency_probe (pid, at) VALUES ($1, clock_timestamp())
ON CONFLICT (pid) DO UPDATE SET at = EXCLUDED.at`

const probeTableDDL = `CREATE SCHEMA IF NOT EXISTS phasekit;
CREATE TABLE IF NOT EXISTS phasekit.latency_probe (pid int PRIMARY KEY, at timestamptz NOT NULL);
COMMENT ON TABLE phasekit.latency_probe IS 'phasekit: one row per running backfill latency probe, deleted when it stops'`

// probeTimeout bounds one probe: a probe stuck longer is counted failed
// (the controller has long seen it as slow while it was in flight).
const probeTimeout = 10 * time.Second

// PGProbe runs a statement on its own connection, in autocommit.
type PGProbe struct {
	cfg  *pgx.ConnConfig
	sql  string
	conn *pgx.Conn
	// slot keys the default probe's row: the backend pid of its first
	// connection, kept across reconnects.
	slot uint32
}

// NewPGProbe connects with cfg (application_name is set to "phasekit probe"
// unless cfg has one) and prepares the probe: sql, or DefaultProbeSQL when
// empty, in which case phasekit.latency_probe is created when missing.
func NewPGProbe(ctx context.Context, cfg *pgx.ConnConfig, sql string) (*PGProbe, error) {
	cfg = cfg.Copy()
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	if app := cfg.RuntimeParams["application_name"]; app == "" {
		cfg.RuntimeParams["application_name"] = "phasekit probe"
	} else {
		cfg.RuntimeParams["application_name"] = app + " probe"
	}
	p := &PGProbe{cfg: cfg, sql: sql}
	if p.sql == "" {
		p.sql = DefaultProbeSQL
	}
	if err := p.connect(ctx); err != nil {
		return nil, err
	}
	p.slot = p.conn.PgConn().PID()
	if sql == "" {
		var exists bool
		if err := p.conn.QueryRow(ctx, "SELECT to_regclass('phasekit.latency_probe') IS NOT NULL").Scan(&exists); err != nil {
			p.Close(ctx)
			return nil, fmt.Errorf("latency probe: %w", err)
		}
		if !exists {
			if _, err := p.conn.Exec(ctx, probeTableDDL); err != nil && !alreadyExists(err) {
				p.Close(ctx)
				return nil, fmt.Errorf("latency probe: create phasekit.latency_probe: %w", err)
			}
		}
	}
	return p, nil
}

func (p *PGProbe) connect(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, p.cfg)
	if err != nil {
		return fmt.Errorf("latency probe: connect: %w", err)
	}
	p.conn = conn
	return nil
}

// alreadyExists tells the error of a CREATE ... IF NOT EXISTS that raced
// another one.
func alreadyExists(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && (pg.Code == "23505" || pg.Code == "42P07" || pg.Code == "42P06")
}

// Run runs the probe once, reconnecting first when an earlier probe was cut
// off (a cancelled query closes the connection).
func (p *PGProbe) Run(ctx context.Context) error {
	if p.conn == nil || p.conn.IsClosed() {
		if err := p.connect(ctx); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	var err error
	if p.sql == DefaultProbeSQL {
		_, err = p.conn.Exec(ctx, p.sql, int32(p.slot))
	} else {
		_, err = p.conn.Exec(ctx, p.sql)
	}
	return err
}

// Close deletes the probe's row (for the default probe) and disconnects.
// A probe cut off by the end of the backfill leaves its connection closed
// (pgx closes a connection whose query was cancelled), so the default
// probe connects once more to delete its row.
func (p *PGProbe) Close(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if p.sql == DefaultProbeSQL {
		if p.conn == nil || p.conn.IsClosed() {
			if err := p.connect(ctx); err != nil {
				return
			}
		}
		_, _ = p.conn.Exec(ctx, "DELETE FROM phasekit.latency_probe WHERE pid = $1", int32(p.slot))
	}
	if p.conn != nil {
		_ = p.conn.Close(ctx)
	}
}
