package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/phasekit/phasekit/gate"
	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/throttle"
)

func executionFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "plan", Required: true, Usage: "plan directory written by phasekit plan --out"},
		&cli.DurationFlag{Name: "lock-timeout", Value: 100 * time.Millisecond, Usage: "lock_timeout of each DDL attempt; keep it below deadlock_timeout"},
		&cli.IntFlag{Name: "max-attempts", Value: 50, Usage: "DDL attempts on lock timeouts before giving up and naming the blockers"},
		&cli.StringFlag{Name: "autovacuum", Value: "wait", Usage: "when autovacuum blocks DDL: wait (retry), cancel (cancel it unless it prevents wraparound) or fail"},
		&cli.BoolFlag{Name: "session-pool", Usage: "the DSN goes through a pooler in session mode: accept it (a pooled connection is refused otherwise, see docs/execution.md)"},
	}
}

func ddlOptions(c *cli.Context) migrations.DDLOptions {
	return migrations.DDLOptions{
		LockTimeout: c.Duration("lock-timeout"),
		MaxAttempts: c.Int("max-attempts"),
		Autovacuum:  migrations.AutovacuumPolicy(c.String("autovacuum")),
		Log:         slog.Default(),
		SessionPool: c.Bool("session-pool"),
	}
}

func requireDSN(c *cli.Context) (string, error) {
	dsn := c.String("dsn")
	if dsn == "" {
		return "", badInput(errors.New("no database: pass --dsn or set DATABASE_URL"))
	}
	return dsn, nil
}

func kindFlag(c *cli.Context, name string) (phases.Kind, error) {
	v := c.String(name)
	if v == "" {
		return "", nil
	}
	if k, ok := phases.ParseKind(v); ok {
		return k, nil
	}
	return "", badInput(fmt.Errorf("--%s %q: use one of %s", name, v, phases.KindNames()))
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// backfillFlags tune the backfill of apply and fleet apply.
func backfillFlags() []cli.Flag {
	return []cli.Flag{
		&cli.Float64Flag{Name: "max-latency-ratio", Value: throttle.DefaultMaxRatio, Usage: "latency guard: keep the p99 of a probe (a tiny committed write, every --probe-interval) within this multiple of its p99 before the backfill, slowing the backfill down as needed (0: no guard; docs/execution.md)"},
		&cli.DurationFlag{Name: "app-p99", Usage: "latency guard: the application's own p99 latency, as its monitoring sees it; the probe may then rise above its baseline by (--max-latency-ratio - 1) times this, instead of times its own baseline (a probe faster than the app makes the ratio stricter than the app's; docs/execution.md)"},
		&cli.StringFlag{Name: "app-latency-query", Usage: "latency guard: a Prometheus query (on --prometheus) giving the application's own p99 in seconds, e.g. 'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[30s])))'; its median over --app-latency-baseline before the backfill is the app's baseline (and stands for --app-p99), then it is read every --app-latency-every: a reading above --max-latency-ratio times the baseline slows the backfill down (docs/execution.md)"},
		&cli.DurationFlag{Name: "app-latency-every", Value: throttle.DefaultAppEvery, Usage: "latency guard: time between two readings of --app-latency-query"},
		&cli.DurationFlag{Name: "app-latency-baseline", Value: throttle.DefaultAppBaselineFor, Usage: "latency guard: the app's baseline is the median of --app-latency-query's values over this span before the backfill (a Prometheus range query), not one reading"},
		&cli.Float64Flag{Name: "app-latency-probe-ratio", Value: 2, Usage: "latency guard: with --app-latency-query, the probe's limit is made with this ratio instead of --max-latency-ratio: the app's own readings hold the app at --max-latency-ratio, the probe brakes what they see late (docs/execution.md)"},
		&cli.DurationFlag{Name: "app-latency-lag", Value: throttle.DefaultAppLag, Usage: "latency guard: how far back one reading of --app-latency-query looks (its range plus a scrape interval); for this long after a cut, a reading above the limit holds the rate without cutting it again"},
		&cli.DurationFlag{Name: "probe-interval", Value: throttle.DefaultInterval, Usage: "latency guard: time between two probes"},
		&cli.DurationFlag{Name: "probe-baseline", Value: throttle.DefaultBaselineFor, Usage: "latency guard: how long the probe runs alone before the backfill starts"},
		&cli.StringFlag{Name: "probe-sql", Usage: "latency guard: the statement to time instead of the default write to phasekit.latency_probe (e.g. one of the application's own queries)"},
		&cli.Float64Flag{Name: "max-rows-per-second", Usage: "backfill hard cap on rows/s, with or without the guard (0: none)"},
		&cli.DurationFlag{Name: "max-replication-lag", Usage: "pause the backfill while a replica lags more than this (0: do not check)"},
		&cli.BoolFlag{Name: "sync-batches", Usage: "commit each backfill batch with the server's synchronous_commit (default: off for the batch's own transaction, which commits its cursor too, so a server crash loses a few batches and their cursor together and the next run redoes them; docs/execution.md)"},
		&cli.StringFlag{Name: "wal-compression", Usage: "set wal_compression (pglz, lz4, zstd) for the backfill's own transactions: their full-page images shrink, and with them the WAL every app commit waits behind; needs superuser or GRANT SET ON PARAMETER wal_compression (refused: the server's setting, with a line saying so)"},
		&cli.DurationFlag{Name: "batch-target", Value: migrations.DefaultBatchTarget, Usage: "backfill batch size adapts to take about this long (an app write to a row in the batch waits up to this); under the latency guard, no longer than half the latency its limit leaves above its baseline (at least 0.5ms)"},
	}
}

// backfillOptions reads backfillFlags; progress, when not nil, gets the
// progress display.
func backfillOptions(c *cli.Context, progress io.Writer) (migrations.BackfillOptions, error) {
	r := c.Float64("max-latency-ratio")
	switch {
	case r < 0 || r > 0 && r < 1:
		return migrations.BackfillOptions{}, badInput(fmt.Errorf("--max-latency-ratio %g: give 1 or more (a multiple of the app's latency before the backfill), or 0 to turn the guard off", r))
	case c.Duration("probe-interval") <= 0:
		return migrations.BackfillOptions{}, badInput(fmt.Errorf("--probe-interval %s: must be positive", c.Duration("probe-interval")))
	case !slices.Contains([]string{"", "off", "pglz", "lz4", "zstd"}, c.String("wal-compression")):
		return migrations.BackfillOptions{}, badInput(fmt.Errorf("--wal-compression %q: give pglz, lz4, zstd or off", c.String("wal-compression")))
	case c.Duration("app-p99") < 0:
		return migrations.BackfillOptions{}, badInput(fmt.Errorf("--app-p99 %s: must not be negative", c.Duration("app-p99")))
	case c.Duration("probe-baseline") < c.Duration("probe-interval"):
		return migrations.BackfillOptions{}, badInput(fmt.Errorf("--probe-baseline %s: must be at least one --probe-interval (%s)", c.Duration("probe-baseline"), c.Duration("probe-interval")))
	case c.Duration("app-latency-every") <= 0 || c.Duration("app-latency-lag") <= 0 || c.Duration("app-latency-baseline") <= 0:
		return migrations.BackfillOptions{}, badInput(fmt.Errorf("--app-latency-every %s, --app-latency-lag %s, --app-latency-baseline %s: all must be positive", c.Duration("app-latency-every"), c.Duration("app-latency-lag"), c.Duration("app-latency-baseline")))
	}
	if pr := c.Float64("app-latency-probe-ratio"); pr < 1 {
		return migrations.BackfillOptions{}, badInput(fmt.Errorf("--app-latency-probe-ratio %g: give 1 or more", pr))
	}
	app, err := appLatency(c, r)
	if err != nil {
		return migrations.BackfillOptions{}, err
	}
	o := migrations.BackfillOptions{
		TargetBatch: c.Duration("batch-target"), MaxRowsPerSecond: c.Float64("max-rows-per-second"),
		MaxReplicationLag: c.Duration("max-replication-lag"), ProbeSQL: c.String("probe-sql"),
		AsyncCommit: !c.Bool("sync-batches"), WALCompression: c.String("wal-compression"),
	}
	if progress != nil {
		o.Progress, o.TTY = progress, isTerminal(progress)
	}
	if r > 0 {
		o.Guard = &throttle.Config{MaxRatio: r, Interval: c.Duration("probe-interval"), BaselineFor: c.Duration("probe-baseline"), AppP99: c.Duration("app-p99")}
		if app != nil {
			o.Guard.App, o.Guard.AppEvery, o.Guard.AppLag = app, c.Duration("app-latency-every"), c.Duration("app-latency-lag")
			o.Guard.AppBaselineFor = c.Duration("app-latency-baseline")
			o.Guard.ProbeRatio = c.Float64("app-latency-probe-ratio")
		}
	}
	return o, nil
}

// appLatency is the app's latency of --app-latency-query on --prometheus
// (nil without the flag), its query tried once: a query Prometheus refuses
// is bad input, found before the database is touched. A query with no value
// yet is not refused here: the guard reads it again before the backfill.
func appLatency(c *cli.Context, ratio float64) (throttle.AppLatency, error) {
	q := strings.TrimSpace(c.String("app-latency-query"))
	switch {
	case q == "":
		return nil, nil
	case ratio == 0:
		return nil, badInput(errors.New("--app-latency-query is read by the latency guard, which --max-latency-ratio 0 turns off"))
	case c.String("prometheus") == "":
		return nil, badInput(errors.New("--app-latency-query needs --prometheus URL, the Prometheus to ask"))
	}
	prom, err := gate.NewPrometheus(c.String("prometheus"))
	if err != nil {
		return nil, badInput(err)
	}
	ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
	defer cancel()
	if _, err := prom.Value(ctx, q); gate.BadQuery(err) {
		return nil, badInput(fmt.Errorf("--app-latency-query: %w", err))
	} else if err != nil && !errors.Is(err, gate.ErrNoValue) {
		return nil, fmt.Errorf("--app-latency-query: %w", err)
	}
	return gate.AppLatency{Prometheus: prom, Query: q}, nil
}
