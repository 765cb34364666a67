package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/phasekit/phasekit/gate"
	"github.com/phasekit/phasekit/internal/dbconn"
	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/pipeline"
)

// Exit codes of the gate (docs/gate.md): 0 open, 1 closed, 3 not yet. apply
// refused by the gate and watch after a breach use the same.
const (
	exitGateClosed = 1
	exitGateNotYet = 3
)

// localFlags repeat the global --dsn and --format on a command, so they may
// be given after the command's name as docs/gate.md shows them.
func localFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "dsn", Usage: "PostgreSQL connection string (default: the global --dsn or $DATABASE_URL)"},
		&cli.StringFlag{Name: "format", Usage: "text or json (default: the global --format)"},
	}
}

// inherited reads a flag of localFlags, falling back to the global one.
func inherited(c *cli.Context, name string) string {
	if v := c.String(name); v != "" {
		return v
	}
	for _, parent := range c.Lineage()[1:] {
		if v := parent.String(name); v != "" {
			return v
		}
	}
	return ""
}

func textOrJSON(c *cli.Context) (string, error) {
	f := inherited(c, "format")
	if f == "" {
		f = "text"
	}
	if f != "text" && f != "json" {
		return "", badInput(fmt.Errorf("--format %q: %s writes text or json", f, c.Command.FullName()))
	}
	return f, nil
}

func inheritedDSN(c *cli.Context) (string, error) {
	dsn := inherited(c, "dsn")
	if dsn == "" {
		return "", badInput(errors.New("no database: pass --dsn or set DATABASE_URL"))
	}
	return dsn, nil
}

// loadPipeline reads --pipeline.
func loadPipeline(c *cli.Context) (*pipeline.Pipeline, error) {
	pl, err := pipeline.Load(c.String("pipeline"))
	if err != nil {
		return nil, badInput(err)
	}
	return pl, nil
}

// alarmSource is the Prometheus of --prometheus; nil for a pipeline without
// alarms. A pipeline with alarms needs it.
func alarmSource(c *cli.Context, pl *pipeline.Pipeline) (gate.AlarmSource, error) {
	url := c.String("prometheus")
	if url == "" {
		if len(pl.Alarms) > 0 {
			return nil, badInput(fmt.Errorf("%s has %d alarm(s): pass --prometheus URL to check them", pl.File, len(pl.Alarms)))
		}
		return nil, nil
	}
	src, err := gate.NewPrometheus(url)
	if err != nil {
		return nil, badInput(err)
	}
	return src, nil
}

// readCheckedPlan reads a plan directory and refuses one edited after
// planning: the ledger knows plans by hash.
// gateInputs reads what the contract gate is checked against: the plan of
// --plan, the pipeline of --pipeline and its alarms' source.
func gateInputs(c *cli.Context) (*phases.Plan, *pipeline.Pipeline, gate.AlarmSource, error) {
	p, err := readCheckedPlan(c.String("plan"))
	if err != nil {
		return nil, nil, nil, err
	}
	pl, err := loadPipeline(c)
	if err != nil {
		return nil, nil, nil, err
	}
	src, err := alarmSource(c, pl)
	if err != nil {
		return nil, nil, nil, err
	}
	return p, pl, src, nil
}

func readCheckedPlan(dir string) (*phases.Plan, error) {
	p, err := migrations.ReadCheckedPlan(dir)
	if err != nil {
		return nil, badInput(err)
	}
	return p, nil
}

func timeFlag(c *cli.Context, name string) (time.Time, error) {
	v := c.String(name)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, badInput(fmt.Errorf("--%s %q: want an RFC 3339 time such as 2026-03-01T08:00:00Z", name, v))
	}
	return t, nil
}

// gateExit turns a verdict into the command's exit.
func gateExit(v gate.Verdict, msg string) error {
	switch v {
	case gate.NotYet:
		return cli.Exit(msg, exitGateNotYet)
	case gate.Closed:
		return cli.Exit(msg, exitGateClosed)
	}
	return nil
}

func gateCommand() *cli.Command {
	return &cli.Command{
		Name:  "gate",
		Usage: "check a phase's gate: exit 0 open, 3 not yet, 1 closed (docs/gate.md)",
		Subcommands: []*cli.Command{{
			Name:  "contract",
			Usage: "may contract run? N+1 baked in every prod wave, no alarm breached, no N client left, backfill verified",
			Flags: append(localFlags(),
				&cli.StringFlag{Name: "plan", Required: true, Usage: "plan directory written by phasekit plan --out"},
				&cli.StringFlag{Name: "pipeline", Required: true, Usage: "pipeline.yaml (docs/pipeline.md)"},
				&cli.StringFlag{Name: "prometheus", Usage: "Prometheus URL for the pipeline's alarms, e.g. http://127.0.0.1:9090"},
				&cli.StringFlag{Name: "now", Usage: "check as if it were this RFC 3339 time (tests, what-ifs)"},
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
				p, pl, src, err := gateInputs(c)
				if err != nil {
					return err
				}
				now, err := timeFlag(c, "now")
				if err != nil {
					return err
				}
				conn, err := dbconn.Connect(c.Context, dsn)
				if err != nil {
					return err
				}
				defer conn.Close(c.Context)
				res, err := gate.Contract(c.Context, conn, gate.Options{Plan: p, Pipeline: pl, Alarms: src, Now: now})
				if err != nil {
					return err
				}
				if format == "json" {
					if err := writeJSON(c.App.Writer, res); err != nil {
						return err
					}
				} else {
					gate.WriteText(c.App.Writer, res)
				}
				return gateExit(res.Verdict, "")
			},
		}, gateServeCommand()},
	}
}
