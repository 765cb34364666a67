package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/phasekit/phasekit/compat"
	"github.com/phasekit/phasekit/phases"
)

func zetaCommand() *cli.Command {
	flags := append(sandboxFlags(), zetaFlags(true)...)
	flags = append(flags, &cli.StringSliceFlag{Name: "phase", Usage: "run after this phase only (repeatable; \"start\" is before the first); default every boundary"})
	return &cli.Command{
		Name:      "zeta",
		Usage:     "run the new frontend's checks against the old backend at each phase, on a copy of real data",
		UsageText: "phasekit zeta --plan DIR --frontend CMD --backend CMD [--ready URL] [--phase KIND] [--reverse --old-frontend CMD --new-backend CMD] (--data FILE | --source-dsn DSN)",
		Flags:     flags,
		Action: func(c *cli.Context) error {
			opts, err := verifyOptions(c)
			if err != nil {
				return err
			}
			if opts.Zeta, err = zetaOptions(c); err != nil {
				return err
			}
			for _, p := range c.StringSlice("phase") {
				k := phases.Kind(p)
				if k != compat.ZetaStart && !isKind(k) {
					return badInput(fmt.Errorf("--phase %q: want start or one of %s", p, phases.KindNames()))
				}
				opts.Zeta.Phases = append(opts.Zeta.Phases, k)
			}
			opts.SkipNaive = true
			return runMatrix(c, opts)
		},
	}
}

func zetaFlags(required bool) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "frontend", Required: required, Usage: "the new (N+1) frontend's checks: a shell command, run with BACKEND_URL"},
		&cli.StringFlag{Name: "backend", Required: required, Usage: "the old (N) backend: a shell command serving on 127.0.0.1:$PORT, with DATABASE_URL"},
		&cli.StringFlag{Name: "ready", Usage: "backend readiness: http://127.0.0.1:{port}/health or host:port (default: its port accepts connections)"},
		&cli.DurationFlag{Name: "ready-timeout", Value: 30 * time.Second, Usage: "how long to wait for the backend"},
		&cli.BoolFlag{Name: "reverse", Usage: "also run the old frontend against the new backend"},
		&cli.StringFlag{Name: "old-frontend", Usage: "the old (N) frontend, for --reverse"},
		&cli.StringFlag{Name: "new-backend", Usage: "the new (N+1) backend, for --reverse"},
	}
}

func zetaOptions(c *cli.Context) (*compat.ZetaOptions, error) {
	z := &compat.ZetaOptions{
		NewFrontend: c.String("frontend"), OldBackend: c.String("backend"),
		OldFrontend: c.String("old-frontend"), NewBackend: c.String("new-backend"),
		Reverse: c.Bool("reverse"), Ready: c.String("ready"), ReadyTimeout: c.Duration("ready-timeout"),
		Timeout: c.Duration("cell-timeout"),
	}
	if z.NewFrontend == "" || z.OldBackend == "" {
		return nil, badInput(errors.New("the zeta check needs both --frontend (N+1) and --backend (N)"))
	}
	if z.Reverse && (z.OldFrontend == "" || z.NewBackend == "") {
		return nil, badInput(errors.New("--reverse needs --old-frontend and --new-backend"))
	}
	return z, nil
}
