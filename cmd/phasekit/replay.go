package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/plancheck"
)

func replayCommand() *cli.Command {
	return &cli.Command{
		Name:  "replay",
		Usage: "walk a migration history: plan and check every file against the schema the earlier ones built (docs/plan-check.md)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dir", Required: true, Usage: "the migrations directory (golang-migrate, pop or Flyway file names, or one directory a migration: VERSION_name/up.sql or migration.sql)"},
			&cli.StringFlag{Name: "order", Usage: "a file listing the up migrations in the order PostgreSQL runs them (default: by version)"},
			&cli.StringFlag{Name: "from", Usage: "plan from this version on (earlier ones are only applied)"},
			&cli.StringFlag{Name: "schema", Usage: "a schema file to start from (default: an empty database)"},
			&cli.StringFlag{Name: "dev-url", Usage: "an existing PostgreSQL server to make scratch databases on (default: a throwaway local cluster)"},
			runnerFlag,
			&cli.BoolFlag{Name: "no-rollbacks", Usage: "skip the rollback checks (faster)"},
			&cli.StringFlag{Name: "out", Usage: "also write the results as JSON to this file"},
			&cli.StringFlag{Name: "markdown", Usage: "also write the summary table (outcomes, and every version not planned) as Markdown to this file"},
		},
		Action: func(c *cli.Context) error {
			files, err := change.ReadHistoryOrdered(c.String("dir"), c.String("order"))
			if err != nil {
				return badInput(err)
			}
			dev, err := plancheck.Open(c.Context, plancheck.Options{DevURL: c.String("dev-url")})
			if err != nil {
				return err
			}
			defer dev.Close()
			if f := c.String("schema"); f != "" {
				if err := dev.LoadSchemaFile(c.Context, f); err != nil {
					return badInput(err)
				}
			}
			runner, table, err := runnerTable(c, files)
			if err != nil {
				return err
			}
			if table != nil {
				if err := dev.LoadHistory(c.Context, []*change.Migration{table}); err != nil {
					return err
				}
			}
			start := time.Now()
			var results []plancheck.VersionResult
			w := c.App.Writer
			format := c.String("format")
			if format == "text" {
				fmt.Fprintf(w, "replaying %d migration(s) of %s on %s\n", len(files), c.String("dir"), dev.Server)
				if table != nil {
					fmt.Fprintf(w, "the start database holds %s's version table, as the runner makes it (--runner none leaves it out)\n", runner)
				}
			}
			err = dev.ReplayHistory(c.Context, files, plancheck.HistoryOptions{From: c.String("from"), Check: plancheck.CheckOptions{NoRollbacks: c.Bool("no-rollbacks")}},
				func(r plancheck.VersionResult) {
					results = append(results, r)
					if format == "text" {
						printVersion(w, r)
					}
				})
			if out := c.String("out"); out != "" {
				f, ferr := os.Create(out)
				if ferr != nil {
					return ferr
				}
				if werr := writeJSON(f, results); werr != nil {
					f.Close()
					return werr
				}
				if cerr := f.Close(); cerr != nil {
					return cerr
				}
			}
			if md := c.String("markdown"); md != "" {
				var b strings.Builder
				writeReplayMarkdown(&b, results)
				if werr := os.WriteFile(md, []byte(b.String()), 0o644); werr != nil {
					return werr
				}
			}
			switch format {
			case "json":
				if jerr := writeJSON(w, results); jerr != nil {
					return jerr
				}
			case "markdown":
				writeReplayMarkdown(w, results)
			default:
				writeReplaySummary(w, results, time.Since(start))
			}
			if err != nil {
				return err
			}
			for _, r := range results {
				if r.Outcome == plancheck.CheckFailed || r.Outcome == plancheck.Crashed {
					return cli.Exit("", exitFindings)
				}
			}
			return nil
		},
	}
}

// runnerFlag names the runner whose version table a history's files may
// read or alter (Harbor's 2.0.0 adds a column to schema_migrations).
var runnerFlag = &cli.StringFlag{Name: "runner", Value: "auto", Usage: "the runner whose version table the start database holds, as it makes it before the first file: golang-migrate (schema_migrations), pop (schema_migration) or none; auto: pop when a file name says its dialect, none for Flyway names or one directory a migration, else golang-migrate"}

// runnerTable is the migration that makes the --runner's version table
// (nil for none) and the runner's name.
func runnerTable(c *cli.Context, files []change.HistoryFile) (string, *change.Migration, error) {
	runner := c.String("runner")
	if runner == "auto" || runner == "" {
		runner = change.HistoryRunner(files)
	}
	sql, ok := map[string]string{"golang-migrate": change.GolangMigrateTable, "pop": change.PopTable, "none": ""}[runner]
	if !ok {
		return "", nil, badInput(fmt.Errorf("--runner %q: want golang-migrate, pop, none or auto", c.String("runner")))
	}
	if sql == "" {
		return runner, nil, nil
	}
	m, err := change.ParseSQL(runner+" version table", sql)
	return runner, m, err
}

func printVersion(w io.Writer, r plancheck.VersionResult) {
	var ph []string
	for _, k := range r.Phases {
		ph = append(ph, string(k))
	}
	line := fmt.Sprintf("%-22s %-13s %5d ms  %s", r.Version, r.Outcome, r.Millis, strings.Join(ph, ","))
	if r.Check != nil && len(r.Check.Limits) > 0 {
		line += fmt.Sprintf("  (%d limit(s): %s)", len(r.Check.Limits), r.Check.Limits[0])
	}
	if r.Check != nil && len(r.Check.Unstable) > 0 {
		line += fmt.Sprintf("  (note: %s)", r.Check.Unstable[0])
	}
	fmt.Fprintln(w, line)
	if r.Reason != "" {
		fmt.Fprintf(w, "    %s\n", strings.ReplaceAll(firstLines(r.Reason, 6), "\n", "\n    "))
	}
}

func firstLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = append(lines[:n], "...")
	}
	return strings.Join(lines, "\n")
}

func replayCounts(results []plancheck.VersionResult) (counts map[string]int, limits, unstable int) {
	counts = map[string]int{}
	for _, r := range results {
		counts[r.Outcome]++
		if r.Check != nil && len(r.Check.Limits) > 0 {
			limits++
		}
		if r.Check != nil && len(r.Check.Unstable) > 0 {
			unstable++
		}
	}
	return counts, limits, unstable
}

func writeReplaySummary(w io.Writer, results []plancheck.VersionResult, took time.Duration) {
	counts, limits, unstable := replayCounts(results)
	fmt.Fprintf(w, "\n%d version(s) in %s: %d planned and checked, %d refused, %d check failed, %d crashed; %d planned with a stated limit (column position)",
		len(results), took.Round(time.Second), counts[plancheck.Planned], counts[plancheck.Refused], counts[plancheck.CheckFailed], counts[plancheck.Crashed], limits)
	if unstable > 0 {
		fmt.Fprintf(w, "; %d with rows the file fills differently each run, compared without those columns", unstable)
	}
	fmt.Fprintln(w)
}

func writeReplayMarkdown(w io.Writer, results []plancheck.VersionResult) {
	counts, limits, unstable := replayCounts(results)
	fmt.Fprintln(w, "| outcome | versions |")
	fmt.Fprintln(w, "| --- | --: |")
	for _, o := range []string{plancheck.Planned, plancheck.Refused, plancheck.CheckFailed, plancheck.Crashed} {
		fmt.Fprintf(w, "| %s | %d |\n", o, counts[o])
	}
	fmt.Fprintf(w, "| planned with a stated limit | %d |\n", limits)
	fmt.Fprintf(w, "| rows compared without columns the file fills differently each run | %d |\n\n", unstable)
	var rows []plancheck.VersionResult
	for _, r := range results {
		if r.Outcome != plancheck.Planned {
			rows = append(rows, r)
		}
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].Outcome < rows[j].Outcome })
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w, "| version | outcome | why |")
	fmt.Fprintln(w, "| --- | --- | --- |")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s | %s |\n", filepath.Base(r.File), r.Outcome, strings.ReplaceAll(strings.ReplaceAll(firstLines(r.Reason, 1), "|", "\\|"), "\n", " "))
	}
}
