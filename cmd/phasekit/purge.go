package main

import (
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/phasekit/phasekit/internal/dbconn"
	"github.com/phasekit/phasekit/migrations"
)

func purgeCommand() *cli.Command {
	return &cli.Command{
		Name:  "purge",
		Usage: "drop the columns and tables contracts archived, once they are older than --older-than",
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "older-than", Required: true, Usage: "drop archives older than this, e.g. 168h"},
			&cli.BoolFlag{Name: "dry-run", Usage: "list what would be dropped"},
			&cli.DurationFlag{Name: "lock-timeout", Value: 100 * time.Millisecond, Usage: "lock_timeout of each DROP attempt"},
			&cli.IntFlag{Name: "max-attempts", Value: 50, Usage: "attempts on lock timeouts before giving up"},
		},
		Action: func(c *cli.Context) error {
			dsn, err := requireDSN(c)
			if err != nil {
				return err
			}
			conn, err := dbconn.Connect(c.Context, dsn)
			if err != nil {
				return err
			}
			defer conn.Close(c.Context)
			out := c.App.Writer
			if c.String("format") == "json" {
				out = io.Discard
			}
			all, err := migrations.Purge(c.Context, conn, c.Duration("older-than"), c.Bool("dry-run"), ddlOptions(c), out)
			if err != nil {
				return err
			}
			if c.String("format") == "json" {
				return writeJSON(c.App.Writer, all)
			}
			if len(all) == 0 {
				fmt.Fprintln(c.App.Writer, "nothing archived")
			}
			return nil
		},
	}
}
