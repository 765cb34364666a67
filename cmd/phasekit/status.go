package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/phasekit/phasekit/internal/dbconn"
	"github.com/phasekit/phasekit/migrations"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show the ledger: each plan's phases, who ran them, backfill progress",
		Flags: []cli.Flag{&cli.StringFlag{Name: "plan", Usage: "only this plan directory's plan"}},
		Action: func(c *cli.Context) error {
			dsn, err := requireDSN(c)
			if err != nil {
				return err
			}
			hash := ""
			if dir := c.String("plan"); dir != "" {
				p, err := migrations.ReadPlan(dir)
				if err != nil {
					return badInput(err)
				}
				hash = p.Hash
			}
			conn, err := dbconn.Connect(c.Context, dsn)
			if err != nil {
				return err
			}
			defer conn.Close(c.Context)
			all, err := migrations.Status(c.Context, conn, hash)
			if err != nil {
				return err
			}
			if c.String("format") == "json" {
				return writeJSON(c.App.Writer, all)
			}
			printStatus(c.App.Writer, all)
			return nil
		},
	}
}

func printStatus(w io.Writer, all []migrations.PlanStatus) {
	if len(all) == 0 {
		fmt.Fprintln(w, "no phasekit plan has run on this database")
		return
	}
	for _, p := range all {
		fmt.Fprintf(w, "plan %s on %s (registered %s)\n", p.Hash[:12], strings.Join(p.Tables, ", "), p.CreatedAt.Format(time.RFC3339))
		for _, ph := range p.Phases {
			line := fmt.Sprintf("  %-11s %-12s", ph.Kind, ph.State)
			if ph.FinishedAt != nil {
				line += " " + ph.FinishedAt.Format(time.RFC3339)
			} else if ph.StartedAt != nil {
				line += " since " + ph.StartedAt.Format(time.RFC3339)
			}
			if ph.Host != "" {
				line += fmt.Sprintf(" by %s@%s (phasekit %s)", ph.OSUser, ph.Host, ph.Version)
			}
			if ph.Error != "" {
				line += "\n      error: " + ph.Error
			}
			fmt.Fprintln(w, line)
		}
		for _, b := range p.Backfills {
			rem := "not verified yet"
			if b.Remaining != nil {
				rem = fmt.Sprintf("%d rows differ", *b.Remaining)
				if b.VerifiedAt != nil {
					rem += " (verified " + b.VerifiedAt.Format(time.RFC3339) + ")"
				}
			}
			fmt.Fprintf(w, "  backfill %s: %d rows walked, cursor %v of %v, %s\n", b.Table, b.Rows, b.Cursor, b.Upper, rem)
			if g := b.Guard; g != nil {
				fmt.Fprintf(w, "    latency guard: probe p99 %.2f ms (peak %.2f, limit %.2f, baseline %.2f), %.0f rows/s, %d slowdown(s), %.0f ms paused, %d probes (%d failed)\n",
					g.ProbeP99, g.PeakP99, g.Limit, g.BaselineP99, g.Rate, g.Decreases, g.Paused, g.Samples, g.Failures)
				if g.Quiets > 0 {
					fmt.Fprintf(w, "    %d quiet window(s) re-measured the baseline; the first was %.2f ms\n", g.Quiets, g.FirstBaselineP99)
				}
				if a := g.App; a != nil {
					fmt.Fprintf(w, "    the app's own p99 %.2f ms (peak %.2f, limit %.2f, baseline %.2f), %d cut(s) on it, %d readings (%d failed)\n",
						a.P99, a.PeakP99, a.Limit, a.BaselineP99, a.Cuts, a.Readings, a.Errors)
				}
			}
		}
		for _, o := range p.Overrides {
			fmt.Fprintf(w, "  override: %s gate was %s, forced by %s at %s: %q\n", o.Phase, o.Verdict, o.ForcedBy, o.At.Format(time.RFC3339), o.Reason)
		}
	}
}
