// Command backfill measures phasekit's batched backfill against a naive
// single UPDATE and the ALTER TYPE table rewrite, on one throwaway PostgreSQL
// 15 cluster, while pgbench plays the application:
//
//	go run ./bench/backfill [-rows 10000000] [-reps 3] [-clients 4] [-duration 20s] [-rate 400] [-batch-target 5ms]
//
// It prints one table to stdout; progress goes to stderr.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// config is what the flags set.
type config struct {
	rows     int64
	reps     int
	clients  int
	duration time.Duration
	rate     float64
	// batchTarget is phasekit's batch-target; 0 keeps its default.
	batchTarget time.Duration
}

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("backfill", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	fs.Int64Var(&cfg.rows, "rows", 10_000_000, "rows in the table big")
	fs.IntVar(&cfg.reps, "reps", 3, "runs of the baseline, the phasekit backfill and the I/O control, interleaved; the targets use their medians")
	fs.IntVar(&cfg.clients, "clients", 4, "pgbench clients playing the application")
	fs.DurationVar(&cfg.duration, "duration", 20*time.Second, "length of the baseline pgbench run (migration runs last as long as the migration)")
	fs.Float64Var(&cfg.rate, "rate", 400, "application load in transactions per second over all clients (pgbench -R); 0 runs pgbench flat out")
	fs.DurationVar(&cfg.batchTarget, "batch-target", 0, "phasekit backfill batch target (apply --batch-target); 0 keeps phasekit's default")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "backfill: unexpected argument %q\n", fs.Arg(0))
		return 2
	case cfg.rows < 1000:
		fmt.Fprintln(stderr, "backfill: -rows must be at least 1000")
		return 2
	case cfg.reps < 1:
		fmt.Fprintln(stderr, "backfill: -reps must be at least 1")
		return 2
	case cfg.clients < 1:
		fmt.Fprintln(stderr, "backfill: -clients must be at least 1")
		return 2
	case cfg.duration < time.Second:
		fmt.Fprintln(stderr, "backfill: -duration must be at least 1s")
		return 2
	case cfg.batchTarget < 0:
		fmt.Fprintln(stderr, "backfill: -batch-target must not be negative")
		return 2
	case cfg.rate < 0:
		fmt.Fprintln(stderr, "backfill: -rate must not be negative")
		return 2
	}

	// On Ctrl-C the context ends the running statement and pgbench, and
	// run's deferred cleanup stops the cluster.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, cfg, stderr)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "backfill: interrupted; the cluster was stopped and removed")
			return 130
		}
		fmt.Fprintln(stderr, "backfill:", err)
		return 1
	}
	printReport(stdout, cfg, res)
	return 0
}
