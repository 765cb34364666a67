package main

import (
	"log/slog"

	"github.com/urfave/cli/v2"

	"github.com/phasekit/phasekit/migrations"
)

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
