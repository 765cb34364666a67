// Command backfill measures phasekit's batched backfill against a naive
// single UPDATE and the ALTER TYPE table rewrite, on one throwaway PostgreSQL
// 15 cluster, while pgbench plays the application:
//
//	go run ./bench/backfill [-rows 2000000,10000000] [-reps 3] [-clients 4] [-duration 20s] [-rate 400] [-batch-target 5ms] [-sweep] [-svg FILE] [-workers 1,2,4]
//
// At each table size it runs the app alone, a naive UPDATE, phasekit's
// backfill with its defaults (the latency guard on) and with the guard off,
// and an I/O control, -reps times interleaved; at the first size, with
// -sweep, a set of other settings once each (guard ratios, a rate cap,
// asynchronous commits, batch sizes, the dual-write trigger alone); at the
// last size, the batch statement run by 1, 2 and 4 key-range workers. It
// prints the tables and the targets to stdout and draws rows/s
// against the app's p99 into -svg; progress goes to stderr.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config is what the flags set.
type config struct {
	rows     []int64
	reps     int
	clients  int
	duration time.Duration
	rate     float64
	// batchTarget is phasekit's batch-target; 0 keeps its default.
	batchTarget time.Duration
	// sweep runs the other settings at the first size.
	sweep bool
	// svg is where the trade-off plot goes ("": none).
	svg string
	// workers are the key-range worker counts tried at the last size.
	workers []int
	// only, when set, replaces the whole programme: each repetition runs
	// the baseline and these variants (keys of the defaults, the guard off
	// and the sweep), interleaved, and nothing else; no targets are checked.
	only []variant
}

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("backfill", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	sizes := fs.String("rows", "2000000,10000000", "rows in the table big: one size or a comma-separated list, each measured on a cluster of its own")
	fs.IntVar(&cfg.reps, "reps", 3, "runs of the baseline, the phasekit backfill and the I/O control, interleaved; the targets use their medians")
	fs.IntVar(&cfg.clients, "clients", 4, "pgbench clients playing the application")
	fs.DurationVar(&cfg.duration, "duration", 20*time.Second, "length of the baseline pgbench run (migration runs last as long as the migration)")
	fs.Float64Var(&cfg.rate, "rate", 400, "application load in transactions per second over all clients (pgbench -R); 0 runs pgbench flat out")
	fs.DurationVar(&cfg.batchTarget, "batch-target", 0, "phasekit backfill batch target (apply --batch-target); 0 keeps phasekit's default")
	fs.BoolVar(&cfg.sweep, "sweep", true, "at the first size, also run the sweep of other settings once each")
	fs.StringVar(&cfg.svg, "svg", "", "write the rows/s against app p99 plot of the first size here")
	workers := fs.String("workers", "1,2,4", "at the last size, fill the column with this many key-range workers running phasekit's batch statement, once each (\"\": skip)")
	only := fs.String("only", "", "compare only these variants (comma-separated keys: "+strings.Join(variantKeys(), ", ")+"): each repetition runs the baseline and them, interleaved; no naive UPDATE, control, sweep, workers, rewrite or targets")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	for _, f := range strings.Split(*sizes, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
		if err != nil || n < 1000 {
			fmt.Fprintf(stderr, "backfill: -rows: %q is not a row count of at least 1000\n", f)
			return 2
		}
		cfg.rows = append(cfg.rows, n)
	}
	for _, f := range strings.Split(*workers, ",") {
		if strings.TrimSpace(f) == "" {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 64 {
			fmt.Fprintf(stderr, "backfill: -workers: %q is not a worker count from 1 to 64\n", f)
			return 2
		}
		cfg.workers = append(cfg.workers, n)
	}
	for _, f := range strings.Split(*only, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		v, ok := variantByKey(f)
		if !ok {
			fmt.Fprintf(stderr, "backfill: -only: no variant %q (there are: %s)\n", f, strings.Join(variantKeys(), ", "))
			return 2
		}
		if v.controlOf != "" && !slices.ContainsFunc(cfg.only, func(o variant) bool { return o.key == v.controlOf }) {
			fmt.Fprintf(stderr, "backfill: -only: %s is the I/O control of %s, which must come before it\n", v.key, v.controlOf)
			return 2
		}
		cfg.only = append(cfg.only, v)
	}
	if len(cfg.only) > 0 {
		// -only runs the chosen variants alone.
		cfg.sweep, cfg.workers = false, nil
	}
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "backfill: unexpected argument %q\n", fs.Arg(0))
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
	fmt.Fprintf(stdout, "machine: %s\n\n", machine())
	for _, r := range res {
		printReport(stdout, cfg, r)
	}
	if len(cfg.only) > 0 {
		fmt.Fprintln(stdout, "targets: not checked (-only compares variants)")
		return 0
	}
	ok := printTargets(stdout, res)
	if cfg.svg != "" {
		if err := os.WriteFile(cfg.svg, []byte(tradeoffSVG(res[0])), 0o644); err != nil {
			fmt.Fprintln(stderr, "backfill:", err)
			return 1
		}
		fmt.Fprintf(stdout, "plot: %s\n", cfg.svg)
	}
	if !ok {
		fmt.Fprintln(stdout, "backfill targets: FAIL (at least one)")
	} else {
		fmt.Fprintln(stdout, "backfill targets: PASS")
	}
	return 0
}

// machine says what the figures ran on: the CPU model, the CPUs Go sees
// and the kernel (these machines vary from run to run).
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel := "unknown kernel"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = "Linux " + strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%s, %d CPUs, %s", model, runtime.NumCPU(), kernel)
}
