package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/phasekit/phasekit/gate"
	"github.com/phasekit/phasekit/internal/dbconn"
)

// stopSignals end gate serve gracefully. A variable because pgtest.Main
// stops the tests' cluster on SIGINT and SIGTERM: the in-process test stops
// the server with another signal.
var stopSignals = []os.Signal{os.Interrupt, syscall.SIGTERM}

func gateServeCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "answer the contract gate over HTTP: 200 open, 409 not yet, 412 closed, JSON evidence (a Flagger confirm-promotion webhook)",
		Description: "GET, HEAD or POST " + gate.ContractPath + " evaluates the gate afresh, as gate contract --format json does;\n" +
			"a POST's body (Flagger's payload) is ignored. 503 when it cannot be evaluated within --timeout.\n" +
			"GET " + gate.HealthPath + " answers 200 while the server runs. SIGINT or SIGTERM stop it gracefully.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dsn", Usage: "PostgreSQL connection string (default: the global --dsn or $DATABASE_URL)"},
			&cli.StringFlag{Name: "addr", Value: "127.0.0.1:8080", Usage: "host:port to listen on (port 0: any free port, logged)"},
			&cli.StringFlag{Name: "plan", Required: true, Usage: "plan directory written by phasekit plan --out"},
			&cli.StringFlag{Name: "pipeline", Required: true, Usage: "pipeline.yaml (docs/pipeline.md)"},
			&cli.StringFlag{Name: "prometheus", Usage: "Prometheus URL for the pipeline's alarms, e.g. http://127.0.0.1:9090"},
			&cli.DurationFlag{Name: "timeout", Value: gate.DefaultHTTPTimeout, Usage: "bound on one evaluation; keep it below the caller's (Flagger: 10s)"},
			&cli.IntFlag{Name: "max-concurrent", Value: gate.DefaultMaxConcurrent, Usage: "evaluations at once, each with its own database connection"},
		},
		Action: func(c *cli.Context) error {
			dsn, err := inheritedDSN(c)
			if err != nil {
				return err
			}
			if _, _, err := net.SplitHostPort(c.String("addr")); err != nil {
				return badInput(fmt.Errorf("--addr %q: want host:port such as 127.0.0.1:8080: %w", c.String("addr"), err))
			}
			if c.Duration("timeout") <= 0 {
				return badInput(errors.New("--timeout must be positive"))
			}
			if c.Int("max-concurrent") <= 0 {
				return badInput(errors.New("--max-concurrent must be positive"))
			}
			p, pl, src, err := gateInputs(c)
			if err != nil {
				return err
			}
			// A wrong DSN is bad input now rather than a 503 on every request.
			conn, err := dbconn.Connect(c.Context, dsn)
			if err != nil {
				return err
			}
			_ = conn.Close(c.Context)

			ctx, stop := signal.NotifyContext(c.Context, stopSignals...)
			defer stop()
			ln, err := net.Listen("tcp", c.String("addr"))
			if err != nil {
				return fmt.Errorf("gate serve: %w", err)
			}
			h := gate.NewHandler(gate.HTTPOptions{
				DSN: dsn, Plan: p, Pipeline: pl, Alarms: src,
				Timeout: c.Duration("timeout"), MaxConcurrent: c.Int("max-concurrent"), Log: slog.Default(),
			})
			// On the command's own stderr rather than through slog, so that
			// whoever started it (a script, the tests) learns the port of
			// --addr 127.0.0.1:0.
			fmt.Fprintf(c.App.ErrWriter, "phasekit: gate serve: listening on http://%s%s (plan %s, pipeline %s, database %s)\n",
				ln.Addr(), gate.ContractPath, c.String("plan"), pl.File, dbconn.Redact(dsn))
			start := time.Now()
			// Once told to stop, stop listening for signals: a second one
			// during the shutdown kills at once.
			context.AfterFunc(ctx, stop)
			if err := gate.Serve(ctx, ln, h, c.Duration("timeout")); err != nil {
				return err
			}
			fmt.Fprintf(c.App.ErrWriter, "phasekit: gate serve: stopped after %s\n", time.Since(start).Round(time.Second))
			return nil
		},
	}
}
