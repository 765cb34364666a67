package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/urfave/cli/v2"

	"github.com/phasekit/phasekit/gate"
	"github.com/phasekit/phasekit/internal/dbconn"
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

func applyCommand() *cli.Command {
	return &cli.Command{
		Name:  "apply",
		Usage: "run the plan's phases on the database, lock-safe and resumable (default: the next phase)",
		Flags: append(executionFlags(),
			&cli.StringFlag{Name: "phase", Usage: "run only this phase (the ones before it must be done)"},
			&cli.BoolFlag{Name: "next", Usage: "run the next phase that is not done (the default)"},
			&cli.StringFlag{Name: "until", Usage: "run every phase up to and including this one"},
			&cli.BoolFlag{Name: "dry-run", Usage: "print what would run; change nothing"},
			&cli.Float64Flag{Name: "max-rows-per-second", Usage: "backfill throttle (0: none)"},
			&cli.DurationFlag{Name: "max-replication-lag", Usage: "pause the backfill while a replica lags more than this (0: do not check)"},
			&cli.DurationFlag{Name: "batch-target", Value: migrations.DefaultBatchTarget, Usage: "backfill batch size adapts to take about this long (an app write to a row in the batch waits up to this)"},
			&cli.StringFlag{Name: "pipeline", Usage: "pipeline.yaml: check the contract gate before contract runs (docs/gate.md)"},
			&cli.StringFlag{Name: "prometheus", Usage: "Prometheus URL for the pipeline's alarms"},
			&cli.BoolFlag{Name: "force", Usage: "run contract even though its gate is not open (needs --reason; kept in the ledger)"},
			&cli.StringFlag{Name: "reason", Usage: "why the gate is forced, e.g. an incident number"},
		),
		Action: func(c *cli.Context) error {
			dsn, err := requireDSN(c)
			if err != nil {
				return err
			}
			phase, err := kindFlag(c, "phase")
			if err != nil {
				return err
			}
			until, err := kindFlag(c, "until")
			if err != nil {
				return err
			}
			if phase != "" && until != "" {
				return badInput(errors.New("--phase and --until exclude each other"))
			}
			hook, err := contractHook(c)
			if err != nil {
				return err
			}
			st, err := migrations.Apply(c.Context, dsn, c.String("plan"), migrations.ApplyOptions{
				Phase: phase, Until: until, DryRun: c.Bool("dry-run"),
				DDL: ddlOptions(c),
				Backfill: migrations.BackfillOptions{
					TargetBatch: c.Duration("batch-target"), MaxRowsPerSecond: c.Float64("max-rows-per-second"),
					MaxReplicationLag: c.Duration("max-replication-lag"), TTY: isTerminal(c.App.ErrWriter),
					Progress: c.App.ErrWriter,
				},
				Runner: migrations.CurrentRunner(phasekitVersion()),
				Out:    c.App.Writer, Log: slog.Default(),
				Gate: hook,
			})
			var closed *gate.NotOpenError
			if errors.As(err, &closed) {
				return gateExit(closed.Result.Verdict, err.Error())
			}
			if err != nil {
				return err
			}
			if c.String("format") == "json" {
				return writeJSON(c.App.Writer, st)
			}
			return nil
		},
	}
}

// contractHook is the gate apply checks before contract: the pipeline's
// with --pipeline, else none (with a warning when contract runs).
func contractHook(c *cli.Context) (func(context.Context, *pgx.Conn, *phases.Plan) error, error) {
	force, reason := c.Bool("force"), strings.TrimSpace(c.String("reason"))
	switch {
	case force && reason == "":
		return nil, badInput(errors.New("--force needs --reason \"...\": the reason is kept in the ledger"))
	case !force && reason != "":
		return nil, badInput(errors.New("--reason goes with --force"))
	case force && c.String("pipeline") == "":
		return nil, badInput(errors.New("--force overrides the contract gate: pass --pipeline so there is a gate to override"))
	}
	o := gate.HookOptions{Force: force, Reason: reason, Runner: migrations.CurrentRunner(phasekitVersion()), Out: c.App.Writer, Warn: c.App.ErrWriter}
	if c.String("format") == "json" {
		o.Out = c.App.ErrWriter
	}
	if c.String("pipeline") != "" {
		pl, err := loadPipeline(c)
		if err != nil {
			return nil, err
		}
		if o.Alarms, err = alarmSource(c, pl); err != nil {
			return nil, err
		}
		o.Pipeline = pl
	}
	return gate.ContractHook(o), nil
}

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show the ledger: each plan's phases, who ran them, backfill progress",
		Flags: []cli.Flag{&cli.StringFlag{Name: "plan", Usage: "only this plan directory's plan"}},
		Action: func(c *cli.Context) error {
			dsn, err := requireDSN(c)
			if err != nil {
				return err
			}
			hash := ""
			if dir := c.String("plan"); dir != "" {
				p, err := migrations.ReadPlan(dir)
				if err != nil {
					return badInput(err)
				}
				hash = p.Hash
			}
			conn, err := dbconn.Connect(c.Context, dsn)
			if err != nil {
				return err
			}
			defer conn.Close(c.Context)
			all, err := migrations.Status(c.Context, conn, hash)
			if err != nil {
				return err
			}
			if c.String("format") == "json" {
				return writeJSON(c.App.Writer, all)
			}
			printStatus(c.App.Writer, all)
			return nil
		},
	}
}

func rollbackCommand() *cli.Command {
	return &cli.Command{
		Name:  "rollback",
		Usage: "undo applied phases, newest first (default: the last one started)",
		Flags: append(executionFlags(),
			&cli.StringFlag{Name: "to", Usage: "keep this phase and the ones before it; undo the rest"},
			&cli.BoolFlag{Name: "all", Usage: "undo every phase"},
			&cli.BoolFlag{Name: "force", Usage: "undo a phase whose rollback cannot restore data it removed"},
		),
		Action: func(c *cli.Context) error {
			dsn, err := requireDSN(c)
			if err != nil {
				return err
			}
			to, err := kindFlag(c, "to")
			if err != nil {
				return err
			}
			st, err := migrations.Rollback(c.Context, dsn, c.String("plan"), migrations.RollbackOptions{
				To: to, All: c.Bool("all"), Force: c.Bool("force"), DDL: ddlOptions(c),
				Runner: migrations.CurrentRunner(phasekitVersion()), Out: c.App.Writer, Log: slog.Default(),
			})
			if err != nil {
				return err
			}
			if c.String("format") == "json" {
				return writeJSON(c.App.Writer, st)
			}
			return nil
		},
	}
}

func printStatus(w io.Writer, all []migrations.PlanStatus) {
	if len(all) == 0 {
		fmt.Fprintln(w, "no phasekit plan has run on this database")
		return
	}
	for _, p := range all {
		fmt.Fprintf(w, "plan %s on %s (registered %s)\n", p.Hash[:12], strings.Join(p.Tables, ", "), p.CreatedAt.Format(time.RFC3339))
		for _, ph := range p.Phases {
			line := fmt.Sprintf("  %-11s %-12s", ph.Kind, ph.State)
			if ph.FinishedAt != nil {
				line += " " + ph.FinishedAt.Format(time.RFC3339)
			} else if ph.StartedAt != nil {
				line += " since " + ph.StartedAt.Format(time.RFC3339)
			}
			if ph.Host != "" {
				line += fmt.Sprintf(" by %s@%s (phasekit %s)", ph.OSUser, ph.Host, ph.Version)
			}
			if ph.Error != "" {
				line += "\n      error: " + ph.Error
			}
			fmt.Fprintln(w, line)
		}
		for _, b := range p.Backfills {
			rem := "not verified yet"
			if b.Remaining != nil {
				rem = fmt.Sprintf("%d rows differ", *b.Remaining)
				if b.VerifiedAt != nil {
					rem += " (verified " + b.VerifiedAt.Format(time.RFC3339) + ")"
				}
			}
			fmt.Fprintf(w, "  backfill %s: %d rows walked, cursor %v of %v, %s\n", b.Table, b.Rows, b.Cursor, b.Upper, rem)
		}
		for _, o := range p.Overrides {
			fmt.Fprintf(w, "  override: %s gate was %s, forced by %s at %s: %q\n", o.Phase, o.Verdict, o.ForcedBy, o.At.Format(time.RFC3339), o.Reason)
		}
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func purgeCommand() *cli.Command {
	return &cli.Command{
		Name:  "purge",
		Usage: "drop the columns and tables contracts archived, once they are older than --older-than",
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "older-than", Required: true, Usage: "drop archives older than this, e.g. 168h"},
			&cli.BoolFlag{Name: "dry-run", Usage: "list what would be dropped"},
			&cli.DurationFlag{Name: "lock-timeout", Value: 100 * time.Millisecond, Usage: "lock_timeout of each DROP attempt"},
			&cli.IntFlag{Name: "max-attempts", Value: 50, Usage: "attempts on lock timeouts before giving up"},
		},
		Action: func(c *cli.Context) error {
			dsn, err := requireDSN(c)
			if err != nil {
				return err
			}
			conn, err := dbconn.Connect(c.Context, dsn)
			if err != nil {
				return err
			}
			defer conn.Close(c.Context)
			out := c.App.Writer
			if c.String("format") == "json" {
				out = io.Discard
			}
			all, err := migrations.Purge(c.Context, conn, c.Duration("older-than"), c.Bool("dry-run"), ddlOptions(c), out)
			if err != nil {
				return err
			}
			if c.String("format") == "json" {
				return writeJSON(c.App.Writer, all)
			}
			if len(all) == 0 {
				fmt.Fprintln(c.App.Writer, "nothing archived")
			}
			return nil
		},
	}
}
