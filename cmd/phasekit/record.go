package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/phasekit/phasekit/gate"
	"github.com/phasekit/phasekit/internal/dbconn"
	"github.com/phasekit/phasekit/migrations"
)

func recordCommand() *cli.Command {
	return &cli.Command{
		Name:  "record",
		Usage: "record what the deploy pipeline did, in the ledger",
		Subcommands: []*cli.Command{{
			Name:  "deploy",
			Usage: "record that a stage (and wave) now runs a version; the contract gate reads these",
			Flags: append(localFlags(),
				&cli.StringFlag{Name: "pipeline", Required: true, Usage: "pipeline.yaml: the stage and wave must be in it"},
				&cli.StringFlag{Name: "stage", Required: true, Usage: "the stage deployed to"},
				&cli.StringFlag{Name: "wave", Usage: "the wave deployed to (required for a stage with waves)"},
				&cli.StringFlag{Name: "version", Required: true, Usage: "the version now running there, as in application_name app/version"},
				&cli.StringFlag{Name: "at", Usage: "when it started running there, RFC 3339 (default: now)"},
			),
			Action: func(c *cli.Context) error {
				format, err := textOrJSON(c)
				if err != nil {
					return err
				}
				dsn, err := inheritedDSN(c)
				if err != nil {
					return err
				}
				pl, err := loadPipeline(c)
				if err != nil {
					return err
				}
				if err := gate.CheckDeploy(pl, c.String("stage"), c.String("wave"), c.String("version")); err != nil {
					return badInput(err)
				}
				at, err := timeFlag(c, "at")
				if err != nil {
					return err
				}
				if at.IsZero() {
					at = time.Now()
				}
				conn, err := dbconn.Connect(c.Context, dsn)
				if err != nil {
					return err
				}
				defer conn.Close(c.Context)
				d, err := migrations.RecordDeploy(c.Context, conn, migrations.Deploy{
					App: pl.App, Stage: c.String("stage"), Wave: c.String("wave"), Version: c.String("version"), At: at,
					RecordedBy: migrations.CurrentRunner(phasekitVersion()).Who(),
				})
				if err != nil {
					return err
				}
				sessions, err := gate.Sessions(c.Context, conn, pl.App)
				if err != nil {
					return err
				}
				live := gate.LiveVersions(pl.App, sessions)
				if format == "json" {
					return writeJSON(c.App.Writer, struct {
						Deploy migrations.Deploy  `json:"deploy"`
						Live   []gate.LiveVersion `json:"live"`
					}{d, live})
				}
				where := d.Stage
				if d.Wave != "" {
					where += "/" + d.Wave
				}
				var counts []string
				for _, v := range live {
					counts = append(counts, fmt.Sprintf("%s: %d", v.ApplicationName, v.Sessions))
				}
				if len(counts) == 0 {
					counts = []string{"none"}
				}
				fmt.Fprintf(c.App.Writer, "recorded: %s %s on %s since %s\nsessions connected now by application_name: %s\n",
					d.App, d.Version, where, d.At.UTC().Format(time.RFC3339), strings.Join(counts, ", "))
				return nil
			},
		}},
	}
}
