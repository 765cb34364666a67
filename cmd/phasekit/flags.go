package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/phases"
)

func executionFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "plan", Required: true, Usage: "plan directory written by phasekit plan --out"},
		&cli.DurationFlag{Name: "lock-timeout", Value: 100 * time.Millisecond, Usage: "lock_timeout of each DDL attempt; keep it below deadlock_timeout"},
		&cli.IntFlag{Name: "max-attempts", Value: 50, Usage: "DDL attempts on lock timeouts before giving up and naming the blockers"},
		&cli.StringFlag{Name: "autovacuum", Value: "wait", Usage: "when autovacuum blocks DDL: wait (retry), cancel (cancel it unless it prevents wraparound) or fail"},
		&cli.BoolFlag{Name: "session-pool", Usage: "the DSN goes through a pooler in session mode: accept it (a pooled connection is refused otherwise, see docs/execution.md)"},
	}
}

func ddlOptions(c *cli.Context) migrations.DDLOptions {
	return migrations.DDLOptions{
		LockTimeout: c.Duration("lock-timeout"),
		MaxAttempts: c.Int("max-attempts"),
		Autovacuum:  migrations.AutovacuumPolicy(c.String("autovacuum")),
		Log:         slog.Default(),
		SessionPool: c.Bool("session-pool"),
	}
}

func requireDSN(c *cli.Context) (string, error) {
	dsn := c.String("dsn")
	if dsn == "" {
		return "", badInput(errors.New("no database: pass --dsn or set DATABASE_URL"))
	}
	return dsn, nil
}

func kindFlag(c *cli.Context, name string) (phases.Kind, error) {
	v := c.String(name)
	if v == "" {
		return "", nil
	}
	if k, ok := phases.ParseKind(v); ok {
		return k, nil
	}
	return "", badInput(fmt.Errorf("--%s %q: use one of %s", name, v, phases.KindNames()))
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
