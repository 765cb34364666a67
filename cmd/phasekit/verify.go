package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/phasekit/phasekit/compat"
	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/verify"
)

// exitVerifyFailed is a required cell, shadow read or zeta pairing that
// failed (the same code as a lint error: the input was fine, the change is not).
const exitVerifyFailed = exitFindings

// sandboxFlags choose where copies live and what data they hold.
func sandboxFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "plan", Required: true, Usage: "plan directory written by phasekit plan"},
		&cli.StringFlag{Name: "data", Usage: "dump file to copy (pg_dump custom, directory or tar archive, or plain SQL)"},
		&cli.StringFlag{Name: "source-dsn", Usage: "live database to copy (read-only, one consistent snapshot)"},
		&cli.StringSliceFlag{Name: "mask", Usage: "table.column=hash|email|null|fixed:VALUE (repeatable): no personal data reaches the sandbox"},
		&cli.StringSliceFlag{Name: "subset", Usage: "table=WHERE (repeatable): keep a slice, following foreign keys"},
		&cli.StringFlag{Name: "provider", Usage: "sandbox: docker, local or dsn (default: docker if its image is present, else local)"},
		&cli.StringFlag{Name: "image", EnvVars: []string{"PHASEKIT_IMAGE"}, Usage: "container image for --provider docker (default postgres:16-alpine; phasekit image build makes a local one)"},
		&cli.StringFlag{Name: "sandbox-dsn", Usage: "server for --provider dsn: phasekit creates and drops scratch databases there"},
		&cli.StringFlag{Name: "junit", Usage: "also write JUnit XML to this file"},
		&cli.StringFlag{Name: "out", Usage: "also write the result as JSON to this file (input of phasekit report --verify)"},
		&cli.DurationFlag{Name: "cell-timeout", Value: 2 * time.Minute, Usage: "time limit of one app run"},
	}
}

func verifyCommand() *cli.Command {
	flags := append(sandboxFlags(),
		&cli.StringSliceFlag{Name: "old-app", Usage: "version N: a shell command run with DATABASE_URL and PG* set; pass = exit 0 (repeatable)"},
		&cli.StringSliceFlag{Name: "new-app", Usage: "version N+1: a shell command, as --old-app (repeatable)"},
		&cli.StringSliceFlag{Name: "old-workload", Usage: "version N: a file of SQL statements, each must succeed (repeatable)"},
		&cli.StringSliceFlag{Name: "new-workload", Usage: "version N+1: a file of SQL statements (repeatable)"},
		&cli.StringFlag{Name: "shadow", Usage: "YAML file of read-query pairs (old path, new path) compared after dual-write and backfill"},
		&cli.BoolFlag{Name: "no-naive", Usage: "do not run the naive migration's matrix"},
	)
	flags = append(flags, zetaFlags(false)...)
	return &cli.Command{
		Name:      "verify",
		Usage:     "run the app versions that must work together at every phase boundary, on a copy of real data",
		UsageText: "phasekit verify --plan DIR (--data FILE | --source-dsn DSN) --old-app CMD --new-app CMD [--provider docker|local|dsn] [--junit FILE]",
		Flags:     flags,
		Action: func(c *cli.Context) error {
			opts, err := verifyOptions(c)
			if err != nil {
				return err
			}
			for _, spec := range []struct {
				flag, version string
				dst           *[]verify.App
			}{{"old-app", "N", &opts.Old}, {"new-app", "N+1", &opts.New}} {
				for i, cmd := range c.StringSlice(spec.flag) {
					*spec.dst = append(*spec.dst, &verify.CommandApp{AppName: appName(spec.version, "cmd", i, cmd), Command: cmd})
				}
			}
			for _, spec := range []struct {
				flag, version string
				dst           *[]verify.App
			}{{"old-workload", "N", &opts.Old}, {"new-workload", "N+1", &opts.New}} {
				for _, file := range c.StringSlice(spec.flag) {
					w, err := verify.LoadWorkload(filepath.Base(file), file)
					if err != nil {
						return badInput(err)
					}
					*spec.dst = append(*spec.dst, w)
				}
			}
			if len(opts.Old)+len(opts.New) == 0 {
				return badInput(errors.New("no app versions: give --old-app/--new-app (commands) or --old-workload/--new-workload (SQL files)"))
			}
			if f := c.String("shadow"); f != "" {
				if opts.Shadow, err = compat.LoadShadow(f); err != nil {
					return err
				}
			}
			if c.IsSet("frontend") || c.IsSet("backend") {
				if opts.Zeta, err = zetaOptions(c); err != nil {
					return err
				}
			}
			opts.SkipNaive = c.Bool("no-naive")
			return runMatrix(c, opts)
		},
	}
}

func isKind(k phases.Kind) bool { _, ok := phases.ParseKind(string(k)); return ok }

// appName names a command app by its program and its words that are not
// flags: "bin/app -version v1 check" is "app v1 check".
func appName(version, kind string, i int, cmd string) string {
	words := strings.Fields(cmd)
	if len(words) == 0 {
		return fmt.Sprintf("%s-%s-%d", version, kind, i+1)
	}
	name := []string{filepath.Base(words[0])}
	for _, w := range words[1:] {
		if !strings.HasPrefix(w, "-") {
			name = append(name, w)
		}
	}
	return strings.Join(name, " ")
}

// verifyOptions reads the flags verify and zeta share.
func verifyOptions(c *cli.Context) (compat.Options, error) {
	opts := compat.Options{PlanDir: c.String("plan"), CellTimeout: c.Duration("cell-timeout"), Log: slog.Default()}
	if _, err := migrations.ReadPlan(opts.PlanDir); err != nil {
		return opts, badInput(err)
	}
	data, src := c.String("data"), c.String("source-dsn")
	switch {
	case data == "" && src == "":
		return opts, badInput(errors.New("no data to copy: give --data FILE (a dump) or --source-dsn DSN"))
	case data != "" && src != "":
		return opts, badInput(errors.New("give --data or --source-dsn, not both"))
	case data != "":
		if _, err := os.Stat(data); err != nil {
			return opts, badInput(fmt.Errorf("--data: %w", err))
		}
	}
	opts.Copy = verify.CopyOptions{Data: data, SourceDSN: src}
	for _, m := range c.StringSlice("mask") {
		mk, err := verify.ParseMask(m)
		if err != nil {
			return opts, badInput(err)
		}
		opts.Copy.Masks = append(opts.Copy.Masks, mk)
	}
	for _, s := range c.StringSlice("subset") {
		sb, err := verify.ParseSubset(s)
		if err != nil {
			return opts, badInput(err)
		}
		opts.Copy.Subsets = append(opts.Copy.Subsets, sb)
	}
	opts.Apply = migrations.ApplyOptions{DDL: ddlOptions(c)}
	return opts, nil
}

// runMatrix opens the sandbox, runs the matrix, writes the outputs, and
// removes the sandbox also on Ctrl-C.
func runMatrix(c *cli.Context, opts compat.Options) error {
	switch f := c.String("format"); f {
	case "text", "json", "markdown":
	default:
		return badInput(fmt.Errorf("--format %q: want text, json or markdown", f))
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	stderr := c.App.ErrWriter
	sb, err := verify.OpenSandbox(ctx, verify.SandboxOptions{
		Provider: c.String("provider"), Image: c.String("image"), DSN: c.String("sandbox-dsn"),
		Note: func(s string) { fmt.Fprintln(stderr, s) },
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := sb.Close(); err != nil {
			slog.Warn("could not remove the sandbox", "err", err)
		}
	}()
	opts.Sandbox = sb
	opts.Progress = stderr
	res, err := compat.Run(ctx, opts)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted; sandbox removed: %w", err)
		}
		return err
	}
	for _, out := range []struct {
		file  string
		write func(io.Writer, *compat.Result) error
	}{{c.String("junit"), compat.WriteJUnit}, {c.String("out"), compat.WriteJSON}} {
		if out.file == "" {
			continue
		}
		if err := writeOutput(out.file, func(w io.Writer) error { return out.write(w, res) }); err != nil {
			return err
		}
	}
	w := c.App.Writer
	switch c.String("format") {
	case "json":
		err = compat.WriteJSON(w, res)
	case "markdown":
		err = compat.WriteMarkdown(w, res)
	default:
		err = compat.WriteText(w, res)
	}
	if err != nil {
		return err
	}
	if !res.Passed {
		return cli.Exit("", exitVerifyFailed)
	}
	return nil
}

// writeOutput creates path (and its directory) and writes it with write.
func writeOutput(path string, write func(io.Writer) error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
