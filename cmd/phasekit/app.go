package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/internal/dbconn"
	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/schema"
	"github.com/phasekit/phasekit/verify"
)

// Exit codes; docs/cli.md lists them.
const (
	exitOK       = 0
	exitFindings = 1 // lint found an error-level problem; a step failed
	exitBadInput = 2 // malformed SQL/YAML/DSN, missing table or column, refused plan
	exitLockHeld = 4 // another phasekit runs the same plan
)

// version is set by the Makefile through -ldflags; otherwise the module's.
var version = ""

func phasekitVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "dev"
}

func run(args []string, stdout, stderr io.Writer) int {
	app := &cli.App{
		Name:      "phasekit",
		Usage:     "ship destructive PostgreSQL schema changes without downtime",
		Version:   phasekitVersion(),
		Writer:    stdout,
		ErrWriter: stderr,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dsn", EnvVars: []string{"DATABASE_URL"}, Usage: "PostgreSQL connection string of the live database"},
			&cli.StringFlag{Name: "format", Value: "text", Usage: "output format: text, json or markdown (lint: text, json or sarif)"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error; logs go to stderr"},
		},
		Before: func(c *cli.Context) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(c.String("log-level"))); err != nil {
				return badInput(fmt.Errorf("--log-level: %w", err))
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl})))
			return nil
		},
		Commands: []*cli.Command{
			planCommand(),
			replayCommand(),
			lintCommand(),
			specSchemaCommand(),
			inspectCommand(),
			applyCommand(),
			purgeCommand(),
			statusCommand(),
			rollbackCommand(),
			verifyCommand(),
			zetaCommand(),
			imageCommand(),
			fleetCommand(),
			reportCommand(),
			gateCommand(),
			recordCommand(),
			watchCommand(),
			{
				Name:  "version",
				Usage: "print phasekit's version",
				Action: func(c *cli.Context) error {
					fmt.Fprintln(c.App.Writer, "phasekit", phasekitVersion())
					return nil
				},
			},
		},
		ExitErrHandler: func(*cli.Context, error) {},
	}
	err := app.Run(hoistGlobalFlags(app, args))
	if err == nil {
		return exitOK
	}
	var held *migrations.LockHeldError
	if errors.As(err, &held) {
		fmt.Fprintln(stderr, "phasekit:", err)
		return exitLockHeld
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(stderr, "phasekit:", msg)
		}
		return ec.ExitCode()
	}
	fmt.Fprintln(stderr, "phasekit:", dbconn.Redact(err.Error()))
	if isInputError(err) || strings.Contains(err.Error(), "flag provided but not defined") || strings.Contains(err.Error(), "Required flag") {
		return exitBadInput
	}
	return exitFindings
}

// isInputError tells bad input (exit 2) from other failures.
func isInputError(err error) bool {
	var ie *change.InputError
	var pe *phases.PlanError
	var le *verify.LoadError
	var re *migrations.RefusedError
	var pooled *migrations.PooledError
	return errors.As(err, &ie) || errors.As(err, &pe) || errors.As(err, &le) || errors.As(err, &re) || errors.As(err, &pooled) || errors.Is(err, errBadInput) || errors.Is(err, dbconn.ErrConnect) || errors.Is(err, verify.ErrBadCopyOption)
}

var errBadInput = errors.New("bad input")

type inputErr struct{ err error }

func (e inputErr) Error() string { return e.err.Error() }
func (e inputErr) Unwrap() []error {
	return []error{e.err, errBadInput}
}

func badInput(err error) error { return inputErr{err} }

// readMigrations reads each input by its extension (change.ReadFile).
func readMigrations(paths []string) ([]*change.Migration, error) {
	if len(paths) == 0 {
		return nil, badInput(errors.New("no migration given: pass a .sql file or a change spec (.yaml)"))
	}
	return change.ReadFiles(paths, change.ReadFile)
}

// snapshot reads the current schema from --schema FILE or from --dsn.
func snapshot(ctx context.Context, c *cli.Context, required bool) (*schema.Snapshot, error) {
	if f := c.String("schema"); f != "" {
		slog.Info("loading schema file into a throwaway local cluster", "file", f)
		return verify.SnapshotFromFile(ctx, f)
	}
	if dsn := c.String("dsn"); dsn != "" {
		slog.Info("reading schema", "dsn", dbconn.Redact(dsn))
		return verify.SnapshotFromDSN(ctx, dsn)
	}
	if required {
		return nil, badInput(errors.New("no schema: pass --schema FILE (a pg_dump --schema-only file) or --dsn / DATABASE_URL"))
	}
	return nil, nil
}
