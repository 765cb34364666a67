package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/phasekit/phasekit/gate"
	"github.com/phasekit/phasekit/migrations"
)

func watchCommand() *cli.Command {
	return &cli.Command{
		Name:  "watch",
		Usage: "watch the alarms during a phase's bake; roll the phase back if one breaches (exit 1)",
		Flags: append(append(localFlags(), executionFlags()...),
			&cli.StringFlag{Name: "pipeline", Required: true, Usage: "pipeline.yaml with the alarms"},
			&cli.StringFlag{Name: "prometheus", Required: true, Usage: "Prometheus URL, e.g. http://127.0.0.1:9090"},
			&cli.StringFlag{Name: "phase", Usage: "the phase whose bake to watch (default: the last one done)"},
			&cli.DurationFlag{Name: "for", Usage: "the bake's length from the phase's end (default: the longest alarm evaluation window)"},
			&cli.DurationFlag{Name: "interval", Value: 15 * time.Second, Usage: "time between polls"},
		),
		Action: func(c *cli.Context) error {
			format, err := textOrJSON(c)
			if err != nil {
				return err
			}
			dsn, err := inheritedDSN(c)
			if err != nil {
				return err
			}
			phase, err := kindFlag(c, "phase")
			if err != nil {
				return err
			}
			pl, err := loadPipeline(c)
			if err != nil {
				return err
			}
			if len(pl.Alarms) == 0 {
				return badInput(fmt.Errorf("%s has no alarm: nothing to watch", pl.File))
			}
			src, err := alarmSource(c, pl)
			if err != nil {
				return err
			}
			bake := c.Duration("for")
			if bake <= 0 {
				for _, a := range pl.Alarms {
					bake = max(bake, a.EvaluationWindow())
				}
			}
			if c.Duration("interval") <= 0 {
				return badInput(errors.New("--interval must be positive"))
			}
			out := c.App.Writer
			if format == "json" {
				out = io.Discard
			}
			res, err := gate.WatchPhase(c.Context, gate.PhaseWatchOptions{
				DSN: dsn, Dir: c.String("plan"), Phase: phase, Pipeline: pl,
				Watch: gate.WatchOptions{Source: src, For: bake, Interval: c.Duration("interval"), Progress: c.App.ErrWriter},
				Rollback: migrations.RollbackOptions{
					DDL: ddlOptions(c), Runner: migrations.CurrentRunner(phasekitVersion()), Out: out, Log: slog.Default(),
				},
			})
			if res != nil {
				if format == "json" {
					if err := writeJSON(c.App.Writer, res); err != nil {
						return err
					}
				} else {
					for _, a := range res.Breaches() {
						fmt.Fprintln(c.App.Writer, a.Summary())
					}
					fmt.Fprintln(c.App.Writer, res.Message)
				}
			}
			if err != nil {
				return err
			}
			if res.Breached {
				return cli.Exit(res.Message, exitGateClosed)
			}
			return nil
		},
	}
}
