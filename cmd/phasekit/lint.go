package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/internal/dbconn"
	"github.com/phasekit/phasekit/lint"
	"github.com/phasekit/phasekit/phases"
)

func lintCommand() *cli.Command {
	return &cli.Command{
		Name:      "lint",
		Usage:     "report unsafe statements with the safe recipe; exit 1 on an error-level finding",
		ArgsUsage: "FILE...",
		Flags:     sourceFlags(),
		Action: func(c *cli.Context) error {
			format := c.String("format")
			if format != "text" && format != "json" && format != "sarif" {
				return badInput(fmt.Errorf("--format %q: lint writes text, json or sarif", format))
			}
			files, src, err := lintFiles(c)
			if err != nil {
				return err
			}
			plan := c.String("schema") != "" || c.String("dsn") != "" || len(src.history) > 0
			var res *lint.Result
			if !plan && len(src.planned) == len(files) {
				// lintFiles has read every file, and nothing else will use
				// them: lint those rather than parse each file twice.
				res, err = lint.Check(src.planned, nil)
			} else {
				// Planning gets migrations of its own; and when lintFiles
				// could not read a file, Run names the problem.
				res, err = lint.Run(files, nil)
			}
			if err != nil {
				return err
			}
			// With a schema, each file is also planned against the schema
			// the statements before it leave, so a missing table or column
			// fails with its position (no plan check: lint stays quick).
			if plan {
				if _, err := planSources(c, src, phases.Options{}, false); err != nil {
					return err
				}
			}
			if dsn := c.String("dsn"); dsn != "" {
				conn, err := dbconn.Connect(c.Context, dsn)
				if err != nil {
					return err
				}
				defer conn.Close(context.Background())
				if err := lint.CheckData(c.Context, conn, res, res.Changes); err != nil {
					return err
				}
			}
			switch format {
			case "json":
				err = lint.WriteJSON(c.App.Writer, res)
			case "sarif":
				err = lint.WriteSARIF(c.App.Writer, res)
			default:
				lint.WriteText(c.App.Writer, res)
			}
			if err != nil {
				return err
			}
			if res.HasErrors() {
				return cli.Exit("", exitFindings)
			}
			return nil
		},
	}
}

// lintFiles are the files to lint: the arguments, or with --dir the file
// of --version (every file when there is no --version), and the sources to
// plan them with when a schema is there.
func lintFiles(c *cli.Context) ([]string, *sources, error) {
	// Without a schema or a database the migrations only go through the
	// lint rules: read what they need, skipping the statements planning
	// and the data checks print.
	read, readSQL := change.ReadFile, change.ReadSQLFile
	if c.String("schema") == "" && c.String("dsn") == "" {
		read, readSQL = change.ReadFileForLint, change.ReadSQLFileForLint
	}
	if c.String("dir") == "" {
		if c.NArg() == 0 {
			return nil, nil, badInput(errors.New("lint: no file given (or --dir)"))
		}
		if c.String("version") != "" {
			return nil, nil, badInput(errors.New("--version goes with --dir"))
		}
		ms, err := lintMigrations(c.Args().Slice(), read)
		if err != nil {
			return nil, nil, err
		}
		return c.Args().Slice(), &sources{planned: ms}, nil
	}
	if c.String("version") == "" {
		all, err := change.ReadHistory(c.String("dir"))
		if err != nil {
			return nil, nil, badInput(err)
		}
		var files []string
		for _, f := range all {
			files = append(files, f.Path)
		}
		ms, err := change.ReadFiles(files, readSQL)
		if err != nil {
			return nil, nil, err
		}
		// Every file, in order, planned together: each sees the ones before.
		return files, &sources{planned: ms}, nil
	}
	src, err := readSources(c)
	if err != nil {
		return nil, nil, err
	}
	return []string{src.planned[0].File}, src, nil
}

// lintMigrations reads the files lint was given, to plan them when there
// is a schema; lint.Run reports the problems with the files themselves.
func lintMigrations(paths []string, read func(string) (*change.Migration, error)) ([]*change.Migration, error) {
	ms, err := change.ReadFiles(paths, read)
	if err != nil {
		var ie *change.InputError
		if errors.As(err, &ie) {
			return nil, nil
		}
		return nil, err
	}
	return ms, nil
}
