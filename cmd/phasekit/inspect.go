package main

import (
	"encoding/json"

	"github.com/urfave/cli/v2"
)

func inspectCommand() *cli.Command {
	return &cli.Command{
		Name:  "inspect",
		Usage: "print the schema snapshot the planner sees, as JSON",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "schema", Usage: "pg_dump --schema-only file (loaded into a throwaway local cluster)"},
		},
		Action: func(c *cli.Context) error {
			snap, err := snapshot(c.Context, c, true)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(c.App.Writer)
			enc.SetIndent("", "  ")
			return enc.Encode(snap)
		},
	}
}
