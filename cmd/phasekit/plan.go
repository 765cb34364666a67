package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/internal/dbconn"
	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/pipeline"
	"github.com/phasekit/phasekit/plancheck"
	"github.com/phasekit/phasekit/report"
	"github.com/phasekit/phasekit/verify"
)

// Flags shared by plan and lint: where the migrations come from and where
// the scratch copy of the schema lives.
func sourceFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "schema", Usage: "pg_dump --schema-only file with the current schema (loaded into the dev server)"},
		&cli.StringFlag{Name: "dir", Usage: "the application's migrations directory (golang-migrate or pop file names): earlier files build the schema, --version is planned"},
		runnerFlag,
		&cli.StringFlag{Name: "version", Usage: "with --dir: the version to plan (default: the last one)"},
		&cli.StringFlag{Name: "dev-url", Usage: "an existing PostgreSQL server to make scratch databases on (default: a throwaway local cluster)"},
	}
}

func planCommand() *cli.Command {
	return &cli.Command{
		Name:      "plan",
		Usage:     "split a migration into expand, dual-write, backfill and contract phases, and check the plan against the file on PostgreSQL",
		ArgsUsage: "MIGRATION.sql|change.yaml...",
		Flags: append(sourceFlags(),
			&cli.StringFlag{Name: "out", Usage: "write golang-migrate files, plan.json and PLAN.md into this directory"},
			&cli.BoolFlag{Name: "no-archive", Usage: "contract drops columns and tables at once instead of archiving them for phasekit purge"},
			&cli.StringFlag{Name: "pipeline", Usage: "pipeline.yaml: bind every phase to the deploy stages and waves (docs/pipeline.md)"},
			&cli.BoolFlag{Name: "no-check", Usage: "do not check the plan against the file on a scratch PostgreSQL (docs/plan-check.md)"},
			&cli.BoolFlag{Name: "require-check", Usage: "exit 2 when the plan cannot be checked (no scratch PostgreSQL here), for CI"},
			&cli.BoolFlag{Name: "accept-differences", Usage: "write the plan even when the check finds its end state differs from the file's (recorded in plan.json)"},
			&cli.StringFlag{Name: "app-version-table", Usage: "the application's golang-migrate version table (e.g. schema_migrations): apply sets it to the file's version once the plan's last phase is done"},
		),
		Action: func(c *cli.Context) error {
			src, err := readSources(c)
			if err != nil {
				return err
			}
			var pl *pipeline.Pipeline
			if f := c.String("pipeline"); f != "" {
				if pl, err = pipeline.Load(f); err != nil {
					return badInput(err)
				}
			}
			p, err := planSources(c, src, phases.Options{NoArchive: c.Bool("no-archive")}, !c.Bool("no-check"))
			if err != nil {
				return err
			}
			if t := c.String("app-version-table"); t != "" {
				if p.AppVersion, err = appVersion(t, src.planned[len(src.planned)-1].File); err != nil {
					return badInput(err)
				}
				p.Seal()
			}
			if pl != nil {
				p.Binding = pipeline.Bind(p, pl, c.String("pipeline"))
			}
			if err := judgeCheck(c, p); err != nil {
				return err
			}
			if out := c.String("out"); out != "" {
				written, err := migrations.Write(out, p, func(p *phases.Plan) string {
					var md strings.Builder
					report.Markdown(&md, p)
					return md.String()
				})
				if err != nil {
					return err
				}
				if line := report.CheckLine(p); line != "" {
					fmt.Fprintln(c.App.Writer, line)
				}
				fmt.Fprintf(c.App.Writer, "wrote %d migration(s), plan.json and PLAN.md to %s\n", len(written), out)
				return nil
			}
			return printPlan(c, p)
		},
	}
}

// judgeCheck turns the check's outcome into the exit code: a plan whose end
// state differs from the file's, or whose rollback does not return the
// start, is refused (exit 2) unless the user accepts it.
func judgeCheck(c *cli.Context, p *phases.Plan) error {
	ch := p.Check
	if ch == nil {
		return nil
	}
	if !ch.Checked {
		if c.Bool("require-check") {
			return badInput(errors.New("the plan could not be checked (--require-check): " + ch.Reason))
		}
		slog.Warn("plan not checked against the file", "reason", ch.Reason)
		return nil
	}
	if ch.OK() {
		return nil
	}
	if c.Bool("accept-differences") {
		ch.Accepted = true
		slog.Warn("the plan's end state differs from the file's; accepted with --accept-differences")
		return nil
	}
	var b strings.Builder
	fmt.Fprintln(&b, report.CheckLine(p))
	report.CheckDetails(&b, p)
	fmt.Fprint(&b, "the plan is refused: phasekit will not hand over a plan that does something else than the file (pass --accept-differences to write it anyway)")
	return badInput(errors.New(b.String()))
}

// sources are the migrations to plan and the history before them.
type sources struct {
	history []*change.Migration // earlier files of --dir, run as written to build the schema
	planned []*change.Migration
}

func readSources(c *cli.Context) (*sources, error) {
	dir := c.String("dir")
	if dir == "" {
		if c.String("version") != "" {
			return nil, badInput(errors.New("--version goes with --dir"))
		}
		ms, err := readMigrations(c.Args().Slice())
		if err != nil {
			return nil, err
		}
		return &sources{planned: ms}, nil
	}
	if c.NArg() > 0 {
		return nil, badInput(errors.New("give either --dir or migration files, not both"))
	}
	files, err := change.ReadHistory(dir)
	if err != nil {
		return nil, badInput(err)
	}
	if len(files) == 0 {
		return nil, badInput(fmt.Errorf("%s: no up migrations found (NNN_name.up.sql, pop's NNN_name.postgres.up.sql, Flyway's V1__name.sql, or NNN_name/up.sql or migration.sql)", dir))
	}
	at := len(files) - 1
	if v := c.String("version"); v != "" {
		at = -1
		for i, f := range files {
			if strings.TrimLeft(f.Version, "0") == strings.TrimLeft(v, "0") {
				at = i
			}
		}
		if at < 0 {
			return nil, badInput(fmt.Errorf("%s: no up migration of version %s", dir, v))
		}
	}
	paths := make([]string, at+1)
	for i, f := range files[:at+1] {
		paths[i] = f.Path
	}
	ms, err := change.ReadFiles(paths, change.ReadSQLFile)
	if err != nil {
		return nil, err
	}
	_, table, err := runnerTable(c, files)
	if err != nil {
		return nil, err
	}
	history := ms[:at]
	if table != nil {
		history = append([]*change.Migration{table}, history...)
	}
	return &sources{history: history, planned: ms[at:]}, nil
}

// planSources plans the migrations. When a dev server can be had (always
// here: a throwaway local cluster, or --dev-url), the schema is copied
// there, every statement is planned against the schema the ones before it
// left, and with check the plan is proved against the file (plancheck).
// Without one, it plans against the schema read directly and says the plan
// was not checked.
func planSources(c *cli.Context, src *sources, opts phases.Options, check bool) (*phases.Plan, error) {
	ctx := c.Context
	dev, devErr := openDev(ctx, c, src)
	if devErr != nil {
		var le *verify.LoadError
		var he *plancheck.HistoryError
		if errors.As(devErr, &le) || errors.As(devErr, &he) || errors.Is(devErr, dbconn.ErrConnect) {
			return nil, badInput(devErr)
		}
		if len(src.history) > 0 {
			return nil, fmt.Errorf("building the schema from the migrations directory needs a scratch PostgreSQL: %w", devErr)
		}
		slog.Warn("no scratch PostgreSQL: each statement is planned against the schema before the file, and the plan is not checked", "reason", devErr.Error())
		snap, err := snapshot(ctx, c, true)
		if err != nil {
			return nil, err
		}
		p, err := phases.BuildWith(opts, snap, src.planned...)
		if err != nil {
			return nil, err
		}
		p.Check = &phases.CheckResult{Reason: "no scratch PostgreSQL could be had: " + devErr.Error()}
		return p, nil
	}
	defer dev.Close()
	slog.Info("planning each statement against the schema the ones before it leave, on the dev server", "server", dev.Server)
	p, _, err := dev.Plan(ctx, src.planned, opts, check, plancheck.CheckOptions{})
	var se *plancheck.StatementError
	if errors.As(err, &se) {
		return nil, badInput(err)
	}
	return p, err
}

// openDev starts the dev server and loads the schema before the planned
// migrations into it: --schema, else the live --dsn's schema, then the
// history of --dir.
func openDev(ctx context.Context, c *cli.Context, src *sources) (*plancheck.Dev, error) {
	schemaFile, dsn := c.String("schema"), c.String("dsn")
	if schemaFile == "" && dsn == "" && len(src.history) == 0 && c.String("dir") == "" {
		return nil, badInput(errors.New("no schema: pass --schema FILE (a pg_dump --schema-only file), --dsn / DATABASE_URL, or --dir with the migrations before it"))
	}
	if schemaFile != "" {
		if _, err := os.Stat(schemaFile); err != nil {
			return nil, &verify.LoadError{File: schemaFile, Message: err.Error()}
		}
	}
	dev, err := plancheck.Open(ctx, plancheck.Options{DevURL: c.String("dev-url")})
	if err != nil {
		if c.String("dev-url") != "" {
			return nil, badInput(fmt.Errorf("--dev-url: %w", err))
		}
		return nil, err
	}
	load := func() error {
		switch {
		case schemaFile != "":
			slog.Info("loading schema file into the dev server", "file", schemaFile, "server", dev.Server)
			return dev.LoadSchemaFile(ctx, schemaFile)
		case dsn != "":
			slog.Info("copying the live schema (pg_dump --schema-only) into the dev server", "dsn", dbconn.Redact(dsn))
			return dev.LoadLive(ctx, dsn)
		}
		return nil
	}
	if err := load(); err != nil {
		dev.Close()
		return nil, err
	}
	if len(src.history) > 0 {
		slog.Info("building the schema from the earlier migrations", "files", len(src.history))
		if err := dev.LoadHistory(ctx, src.history); err != nil {
			dev.Close()
			return nil, err
		}
	}
	return dev, nil
}

// appVersion reads the application's migration version from the planned
// file's name, for golang-migrate's version table.
func appVersion(table, file string) (*phases.AppVersion, error) {
	v, ok := change.FileVersion(filepath.Base(file))
	if !ok {
		return nil, fmt.Errorf("--app-version-table: %s has no version in its name (NNN_name.up.sql)", file)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("--app-version-table: version %s of %s does not fit golang-migrate's bigint", v, file)
	}
	if !strings.Contains(table, ".") {
		table = "public." + table
	}
	return &phases.AppVersion{Table: table, Version: n, File: filepath.Base(file)}, nil
}

func printPlan(c *cli.Context, p *phases.Plan) error {
	switch c.String("format") {
	case "json":
		return writeJSON(c.App.Writer, p)
	case "markdown":
		report.Markdown(c.App.Writer, p)
	case "text":
		report.Text(c.App.Writer, p)
	default:
		return badInput(fmt.Errorf("--format %q: use text, json or markdown", c.String("format")))
	}
	return nil
}
