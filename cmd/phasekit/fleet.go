package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/phasekit/phasekit/fleet"
	"github.com/phasekit/phasekit/gate"
	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/pipeline"
)

// fleetAlarmCheck builds the alarm check fleet apply runs between waves from
// --pipeline's alarms and --prometheus; without both it runs none, and fleet
// apply says so.
func fleetAlarmCheck(c *cli.Context) (fleet.AlarmCheck, error) {
	file, url := c.String("pipeline"), c.String("prometheus")
	if file == "" && url == "" {
		return nil, nil
	}
	if file == "" || url == "" {
		return nil, badInput(errors.New("alarm checks between waves need both --pipeline and --prometheus"))
	}
	pl, err := pipeline.Load(file)
	if err != nil {
		return nil, badInput(err)
	}
	src, err := gate.NewPrometheus(url)
	if err != nil {
		return nil, badInput(err)
	}
	return func(ctx context.Context) (bool, string, error) {
		return gate.BreachedNow(ctx, src, pl.Alarms, time.Now())
	}, nil
}

func fleetCommand() *cli.Command {
	return &cli.Command{
		Name:  "fleet",
		Usage: "roll a phase out over many databases in waves (fleet.yaml), and show each one's state",
		Subcommands: []*cli.Command{
			fleetApplyCommand(),
			fleetStatusCommand(),
		},
	}
}

func fleetFlag() cli.Flag {
	return &cli.StringFlag{Name: "fleet", Required: true, Usage: "fleet.yaml: the databases, in waves (docs/fleet.md)"}
}

// loadFleet reads the fleet file and every target's DSN variable; strict
// refuses a fleet with an unset variable, otherwise those targets are shown
// as unreachable.
func loadFleet(c *cli.Context, strict bool) (*fleet.Fleet, error) {
	f, err := fleet.Load(c.String("fleet"))
	if err != nil {
		return nil, err
	}
	err = f.Resolve(nil)
	var unset *fleet.UnsetError
	if err != nil && (strict || !errors.As(err, &unset)) {
		return nil, err
	}
	return f, nil
}

func fleetApplyCommand() *cli.Command {
	return &cli.Command{
		Name:  "apply",
		Usage: "roll one phase out wave by wave: failure budget per wave, bake and alarm check between waves; resumable",
		Flags: append(append(executionFlags(), backfillFlags()...),
			fleetFlag(),
			&cli.StringFlag{Name: "phase", Required: true, Usage: "the phase to roll out (the ones before it must be done on every target)"},
			&cli.StringFlag{Name: "pipeline", Usage: "pipeline.yaml whose alarms are checked between waves (with --prometheus)"},
			&cli.StringFlag{Name: "prometheus", Usage: "Prometheus URL for the pipeline's alarms"},
			&cli.IntFlag{Name: "max-parallel", Usage: "targets at once in every wave, replacing each wave's max_parallel (0: the file's)"},
			&cli.BoolFlag{Name: "no-bake", Usage: "do not wait the bakes between waves (the alarm check, if any, still runs once after each wave)"},
			&cli.DurationFlag{Name: "alarm-interval", Value: time.Minute, Usage: "time between alarm checks during a bake"},
		),
		Action: func(c *cli.Context) error {
			phase, err := kindFlag(c, "phase")
			if err != nil {
				return err
			}
			f, err := loadFleet(c, true)
			if err != nil {
				return err
			}
			if c.Int("max-parallel") < 0 {
				return badInput(errors.New("--max-parallel must not be negative"))
			}
			alarm, err := fleetAlarmCheck(c)
			if err != nil {
				return err
			}
			jsonOut := c.String("format") == "json"
			// With --format json, stdout holds the report alone.
			events := c.App.Writer
			if jsonOut {
				events = c.App.ErrWriter
			}
			// An interrupt stops the rollout where it is, without rolling
			// anything back: fleet apply again resumes it.
			backfill, err := backfillOptions(c, nil)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			rep, err := fleet.Apply(ctx, f, c.String("plan"), fleet.ApplyOptions{
				Phase: phase, MaxParallel: c.Int("max-parallel"), NoBake: c.Bool("no-bake"),
				Alarm: alarm, AlarmInterval: c.Duration("alarm-interval"),
				DDL:      ddlOptions(c),
				Backfill: backfill,
				Runner:   migrations.CurrentRunner(phasekitVersion()),
				Out:      events, Detail: c.App.ErrWriter, Log: slog.Default(),
			})
			if rep != nil && jsonOut {
				if werr := writeJSON(c.App.Writer, rep); werr != nil && err == nil {
					err = werr
				}
			}
			return err
		},
	}
}

func fleetStatusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "every target's phases of the plan, from its ledger (an unreachable target is shown, not fatal)",
		Flags: []cli.Flag{
			fleetFlag(),
			&cli.StringFlag{Name: "plan", Required: true, Usage: "plan directory written by phasekit plan --out"},
			&cli.DurationFlag{Name: "timeout", Value: 10 * time.Second, Usage: "give up on a target after this long and show it as unreachable"},
		},
		Action: func(c *cli.Context) error {
			f, err := loadFleet(c, false)
			if err != nil {
				return err
			}
			rep, err := fleet.Status(c.Context, f, c.String("plan"), fleet.StatusOptions{Timeout: c.Duration("timeout")})
			if err != nil {
				return err
			}
			if c.String("format") == "json" {
				return writeJSON(c.App.Writer, rep)
			}
			rep.WriteText(c.App.Writer)
			return nil
		},
	}
}
