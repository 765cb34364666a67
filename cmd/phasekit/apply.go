package main

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/urfave/cli/v2"

	"github.com/phasekit/phasekit/gate"
	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/phases"
)

func applyCommand() *cli.Command {
	return &cli.Command{
		Name:  "apply",
		Usage: "run the plan's phases on the database, lock-safe and resumable (default: the next phase)",
		Flags: append(append(executionFlags(), backfillFlags()...),
			&cli.StringFlag{Name: "phase", Usage: "run only this phase (the ones before it must be done)"},
			&cli.BoolFlag{Name: "next", Usage: "run the next phase that is not done (the default)"},
			&cli.StringFlag{Name: "until", Usage: "run every phase up to and including this one"},
			&cli.BoolFlag{Name: "dry-run", Usage: "print what would run; change nothing"},
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
			backfill, err := backfillOptions(c, c.App.ErrWriter)
			if err != nil {
				return err
			}
			hook, err := contractHook(c)
			if err != nil {
				return err
			}
			st, err := migrations.Apply(c.Context, dsn, c.String("plan"), migrations.ApplyOptions{
				Phase: phase, Until: until, DryRun: c.Bool("dry-run"),
				DDL:      ddlOptions(c),
				Backfill: backfill,
				Runner:   migrations.CurrentRunner(phasekitVersion()),
				Out:      c.App.Writer, Log: slog.Default(),
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
