package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/phasekit/phasekit/compat"
	"github.com/phasekit/phasekit/compat/outcome"
	"github.com/phasekit/phasekit/internal/dbconn"
	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/pipeline"
	"github.com/phasekit/phasekit/report"
)

func reportCommand() *cli.Command {
	return &cli.Command{
		Name:      "report",
		Usage:     "write the DBA review of a plan: a self-contained HTML page, or Markdown for a pull request",
		UsageText: "phasekit report --plan DIR [--dsn DSN [--calibrate]] [--verify RESULT.json] [--pipeline pipeline.yaml] --format html|markdown [--out FILE]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "plan", Required: true, Usage: "plan directory written by phasekit plan --out"},
			&cli.StringFlag{Name: "dsn", Usage: "live database: table sizes from its catalogue for the estimates (read only; default: the global --dsn or DATABASE_URL)"},
			&cli.StringFlag{Name: "verify", Usage: "result of phasekit verify --out: the compatibility matrix, shadow reads and zeta check"},
			&cli.StringFlag{Name: "pipeline", Usage: "pipeline.yaml: bind the phases to the deploy stages (default: the binding of phasekit plan --pipeline)"},
			&cli.BoolFlag{Name: "calibrate", Usage: "measure the rates on --dsn: a few seconds of work on a temporary table in a transaction that is rolled back"},
			&cli.IntFlag{Name: "calibrate-rows", Value: report.DefaultCalibrationRows, Usage: "rows of the --calibrate scratch table"},
			&cli.Float64Flag{Name: "rate", Usage: "backfill rate in rows/s (default: the rate make bench recorded, docs/BENCHMARKS.md)"},
			&cli.StringFlag{Name: "format", Usage: "html or markdown (default: from the --out extension, .html or .md)"},
			&cli.StringFlag{Name: "out", Usage: "write the report to this file (default: stdout)"},
		},
		Action: func(c *cli.Context) error {
			format, err := reportFormat(c)
			if err != nil {
				return err
			}
			dir := c.String("plan")
			plan, err := migrations.ReadPlan(dir)
			if err != nil {
				return badInput(err)
			}
			opts := report.Options{PlanDir: dir, Generator: "phasekit " + phasekitVersion()}
			if f := c.String("pipeline"); f != "" {
				pl, err := pipeline.Load(f)
				if err != nil {
					return badInput(err)
				}
				opts.Binding = pipeline.Bind(plan, pl, f)
			}
			if f := c.String("verify"); f != "" {
				if opts.Verify, err = readVerifyResult(f); err != nil {
					return badInput(err)
				}
			}
			dsn := lineageString(c, "dsn")
			if dsn != "" {
				slog.Info("reading the live catalogue", "dsn", dbconn.Redact(dsn))
				if opts.Catalogue, err = report.ReadCatalogue(c.Context, dsn, plan.Hash); err != nil {
					return err
				}
			}
			rates := report.BenchRates
			if c.Bool("calibrate") {
				if dsn == "" {
					return badInput(errors.New("--calibrate measures the rates on the live database: give --dsn"))
				}
				slog.Info("calibrating on a temporary table, rolled back", "rows", c.Int("calibrate-rows"))
				if rates, err = report.Calibrate(c.Context, dsn, c.Int("calibrate-rows")); err != nil {
					return err
				}
			}
			if c.IsSet("rate") {
				if c.Float64("rate") <= 0 {
					return badInput(fmt.Errorf("--rate %v: want rows per second above 0", c.Float64("rate")))
				}
				rates.Backfill = report.Rate{RowsPerSecond: c.Float64("rate"), Source: "--rate"}
			}
			opts.Rates = &rates
			r := report.Build(plan, opts)
			write := r.WriteMarkdown
			if format == "html" {
				write = r.WriteHTML
			}
			out := c.String("out")
			if out == "" {
				return write(c.App.Writer)
			}
			if err := writeOutput(out, write); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "wrote the %s report to %s\n", format, out)
			return nil
		},
	}
}

// reportFormat is --format, else the --out file's extension, else a global
// --format of html or markdown.
func reportFormat(c *cli.Context) (string, error) {
	f := c.String("format")
	if f == "" {
		switch strings.ToLower(filepath.Ext(c.String("out"))) {
		case ".html", ".htm":
			f = "html"
		case ".md", ".markdown":
			f = "markdown"
		}
	}
	if f == "" {
		if g := lineageString(c, "format"); g == "html" || g == "markdown" {
			f = g
		}
	}
	switch f {
	case "html", "markdown":
		return f, nil
	case "":
		return "", badInput(errors.New("--format: give html or markdown (or an --out file ending in .html or .md)"))
	}
	return "", badInput(fmt.Errorf("--format %q: want html or markdown", f))
}

// lineageString is a flag of the command, else the same flag given before
// the command name (phasekit --dsn X report ...), which the command's own
// flag of that name hides from c.String.
func lineageString(c *cli.Context, name string) string {
	for _, ctx := range c.Lineage() {
		if ctx.IsSet(name) {
			return ctx.String(name)
		}
	}
	return ""
}

func readVerifyResult(file string) (*compat.Result, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("--verify: %w", err)
	}
	defer f.Close()
	r, err := outcome.ReadJSON(f)
	if err != nil {
		return nil, fmt.Errorf("--verify %s: not a phasekit verify result: %w", file, err)
	}
	return r, nil
}
