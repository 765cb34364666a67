package main

import (
	"slices"
	"time"

	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/throttle"
)

// pgrollRate is pgroll v0.16's backfill rate on this machine kind (1000-row
// batches, 2M rows, issue 14's measurement): pgroll itself cannot be
// installed here, so it is a reference line, not a run.
const pgrollRate = 86_906

// variant is one way of running phasekit's backfill.
type variant struct {
	key, label string
	// dualWriteOnly applies expand and dual-write and lets the app run for
	// the baseline's duration with the trigger on and no backfill: what the
	// trigger alone costs the app's writes.
	dualWriteOnly bool
	// probeOnly runs the guard's latency probe, at the guard's defaults,
	// beside the app for the baseline's duration, with no migration: what
	// the probe itself costs the app.
	probeOnly bool
	// opts adjusts apply's backfill options (nil: the defaults as the
	// CLI has them).
	opts func(*migrations.BackfillOptions)
	// controlOf, when set, makes this an I/O control instead of a
	// backfill: no migration, the WAL rate of the last run of that
	// variant written to a file beside the cluster's data while the app runs.
	controlOf string
	// appP99, with the guard on, gives it the app's p99 (--app-p99): that
	// of the latest baseline run, as an operator would read it off the
	// app's monitoring.
	appP99 bool
	// watchApp, with the guard on, has it read the app's own p99 as
	// --app-latency-query does: pgbench's logs as they grow, the p99 over
	// the last appWindow, read every second (appLatency).
	watchApp bool
	// loop, when set, runs the batch statement in a plain paced loop
	// instead of phasekit (loop.go).
	loop *loopSpec
}

// cliDefaults are the backfill options `phasekit apply` uses when no flag
// says otherwise: the guard at its default ratio, asynchronous batch commits.
func cliDefaults(o *migrations.BackfillOptions) {
	o.Guard = &throttle.Config{MaxRatio: throttle.DefaultMaxRatio}
	o.AsyncCommit = true
}

func guardRatio(r float64) func(*migrations.BackfillOptions) {
	return func(o *migrations.BackfillOptions) {
		cliDefaults(o)
		o.Guard.MaxRatio = r
	}
}

// noGuard is `--max-latency-ratio 0`.
func noGuard(o *migrations.BackfillOptions) {
	cliDefaults(o)
	o.Guard = nil
}

var (
	// defaults is phasekit as `phasekit apply` runs it: the guard on at
	// its default ratio.
	defaults = variant{key: "guard", label: "phasekit, defaults (guard 1.5x)", opts: cliDefaults}
	// unguarded is `phasekit apply --max-latency-ratio 0`.
	unguarded = variant{key: "noguard", label: "phasekit, guard off", opts: noGuard}
)

// sweep are the settings run once each, at the first size: the trade-off
// between rows/s and the app's p99, and what lowers a batch's cost. (Guard
// ratios under the default are left out: on a disk where the default
// already walks a few thousand rows/s they take the better part of an
// hour at 2M rows.)
var sweep = []variant{
	{key: "dualwrite", label: "dual-write trigger only, no backfill", dualWriteOnly: true},
	{key: "probeonly", label: "the guard's latency probe only, no migration", probeOnly: true},
	{key: "guard2", label: "guard 2x", opts: guardRatio(2)},
	{key: "guard3", label: "guard 3x", opts: guardRatio(3)},
	{key: "cap", label: "guard off, capped at pgroll's 86,906 rows/s", opts: func(o *migrations.BackfillOptions) {
		noGuard(o)
		o.MaxRowsPerSecond = pgrollRate
	}},
	{key: "cap_control", label: "I/O control at the capped run's WAL rate (no migration)", controlOf: "cap"},
	{key: "zstd", label: "guard off, --wal-compression zstd", opts: func(o *migrations.BackfillOptions) {
		noGuard(o)
		o.WALCompression = "zstd"
	}},
	{key: "sync", label: "guard off, --sync-batches", opts: func(o *migrations.BackfillOptions) {
		noGuard(o)
		o.AsyncCommit = false
	}},
	{key: "capsync", label: "guard off, capped at pgroll's rate, --sync-batches", opts: func(o *migrations.BackfillOptions) {
		noGuard(o)
		o.MaxRowsPerSecond = pgrollRate
		o.AsyncCommit = false
	}},
	{key: "guardsync", label: "guard 1.5x, --sync-batches", opts: func(o *migrations.BackfillOptions) {
		cliDefaults(o)
		o.AsyncCommit = false
	}},
	{key: "batch2ms", label: "guard off, 2 ms batches", opts: func(o *migrations.BackfillOptions) {
		noGuard(o)
		o.TargetBatch = 2 * time.Millisecond
	}},
	{key: "batch20ms", label: "guard off, 20 ms batches", opts: func(o *migrations.BackfillOptions) {
		noGuard(o)
		o.TargetBatch = 20 * time.Millisecond
	}},
	{key: "cap2ms", label: "guard off, capped at pgroll's rate, 2 ms batches", opts: func(o *migrations.BackfillOptions) {
		noGuard(o)
		o.MaxRowsPerSecond = pgrollRate
		o.TargetBatch = 2 * time.Millisecond
	}},
	{key: "cap1ms", label: "guard off, capped at pgroll's rate, 1 ms batches", opts: func(o *migrations.BackfillOptions) {
		noGuard(o)
		o.MaxRowsPerSecond = pgrollRate
		o.TargetBatch = time.Millisecond
	}},
	{key: "cap500us", label: "guard off, capped at pgroll's rate, 0.5 ms batches", opts: func(o *migrations.BackfillOptions) {
		noGuard(o)
		o.MaxRowsPerSecond = pgrollRate
		o.TargetBatch = 500 * time.Microsecond
	}},
	{key: "cap500ussync", label: "guard off, capped at pgroll's rate, 0.5 ms batches, --sync-batches", opts: func(o *migrations.BackfillOptions) {
		noGuard(o)
		o.MaxRowsPerSecond = pgrollRate
		o.TargetBatch = 500 * time.Microsecond
		o.AsyncCommit = false
	}},
	{key: "guard500us", label: "guard 1.5x, 0.5 ms batches", opts: func(o *migrations.BackfillOptions) {
		cliDefaults(o)
		o.TargetBatch = 500 * time.Microsecond
	}},
	// What a batch's length and its WAL cost the app, without phasekit:
	// the batch statement paced at pgroll's rate in 1,000-key batches
	// (pgroll's size; about 5 ms each here) and 100-key batches, on big
	// and on an unlogged copy of it (the CPU control: no WAL, no page the
	// app touches).
	{key: "loop1000", label: "batch statement, 1000-key batches at pgroll's rate, no phasekit", loop: &loopSpec{batch: 1000, rate: pgrollRate}},
	{key: "cpu1000", label: "CPU control: the same on an unlogged copy (no WAL)", loop: &loopSpec{batch: 1000, rate: pgrollRate, unlogged: true}},
	{key: "loop100", label: "batch statement, 100-key batches at pgroll's rate, no phasekit", loop: &loopSpec{batch: 100, rate: pgrollRate}},
	{key: "cpu100", label: "CPU control, 100-key batches: unlogged copy (no WAL)", loop: &loopSpec{batch: 100, rate: pgrollRate, unlogged: true}},
	// The 100-key loop with phasekit's dual-write trigger on the table
	// (skipped by its WHEN for the loop's rows, fired by the app's
	// updates): what the trigger costs, apart from phasekit's batch.
	{key: "trigger100", label: "batch statement, 100-key batches at pgroll's rate, dual-write trigger on, no phasekit", loop: &loopSpec{batch: 100, rate: pgrollRate, dualWrite: true}},
	// Shorter bursts at the same rate: 50-key batches, bare and with the
	// trigger, and phasekit capped with 0.25 ms batches (its 100-key
	// minimum lowered to 20).
	{key: "loop50", label: "batch statement, 50-key batches at pgroll's rate, no phasekit", loop: &loopSpec{batch: 50, rate: pgrollRate}},
	{key: "trigger50", label: "batch statement, 50-key batches at pgroll's rate, dual-write trigger on, no phasekit", loop: &loopSpec{batch: 50, rate: pgrollRate, dualWrite: true}},
	{key: "cap250us", label: "guard off, capped at pgroll's rate, 0.25 ms batches (20 keys at least)", opts: func(o *migrations.BackfillOptions) {
		noGuard(o)
		o.MaxRowsPerSecond = pgrollRate
		o.TargetBatch = 250 * time.Microsecond
		o.MinBatch = 20
	}},
	{key: "guard250us", label: "guard 1.5x, 0.25 ms batches (20 keys at least)", opts: func(o *migrations.BackfillOptions) {
		cliDefaults(o)
		o.TargetBatch = 250 * time.Microsecond
		o.MinBatch = 20
	}},
	{key: "guard300us", label: "guard 1.5x, 0.3 ms batches (50 keys at least)", opts: func(o *migrations.BackfillOptions) {
		cliDefaults(o)
		o.TargetBatch = 300 * time.Microsecond
		o.MinBatch = 50
	}},
	{key: "guardtarget", label: "guard 1.5x, batches kept at the 5 ms target (before 2026-12-06)", opts: func(o *migrations.BackfillOptions) {
		cliDefaults(o)
		o.GuardKeepsBatchTarget = true
	}},
	{key: "guardwin5", label: "guard 1.5x, p99 over 5 s windows", opts: func(o *migrations.BackfillOptions) {
		cliDefaults(o)
		o.Guard.Window = 5 * time.Second
	}},
	{key: "guardchance", label: "guard 1.5x, a binomial test of the window's probes against the limit (Chance 0.1)", opts: func(o *migrations.BackfillOptions) {
		cliDefaults(o)
		o.Guard.Chance = 0.1
	}},
	{key: "guardapp", label: "guard 1.5x, given the app's p99 (--app-p99: the latest baseline's)", opts: cliDefaults, appP99: true},
	{key: "guardwatch", label: "guard 1.5x, reading the app's own p99 (pgbench's, over 10 s, every 1 s), the probe at 1.5x too (--app-latency-probe-ratio 1.5)", opts: cliDefaults, watchApp: true},
	{key: "guardwatch2", label: "guard reading the app's own p99 (held at 1.5x), the probe a brake at 2x (--app-latency-query's default)", opts: func(o *migrations.BackfillOptions) {
		cliDefaults(o)
		o.Guard.ProbeRatio = 2
	}, watchApp: true},
	{key: "guardkeep", label: "guard 1.5x, a raised baseline kept (before 2026-12-05)", opts: func(o *migrations.BackfillOptions) {
		cliDefaults(o)
		o.Guard.KeepRaisedBaseline = true
	}},
}

// variants are every variant of the programme: the two run each repetition,
// then the sweep.
func variants() []variant {
	return append([]variant{defaults, unguarded}, sweep...)
}

// variantByKey finds a variant of the programme by its key.
func variantByKey(key string) (variant, bool) {
	i := slices.IndexFunc(variants(), func(v variant) bool { return v.key == key })
	if i < 0 {
		return variant{}, false
	}
	return variants()[i], true
}

// variantKeys lists the keys -only accepts.
func variantKeys() []string {
	var keys []string
	for _, v := range variants() {
		keys = append(keys, v.key)
	}
	return keys
}

// repeatedSweep are the keys of the sweep's variants run more than once
// (with -only): they get medians and a column of waits like the main
// series.
func repeatedSweep(r *results) []string {
	var keys []string
	for _, v := range sweep {
		if len(r.series[v.key]) > 1 {
			keys = append(keys, v.key)
		}
	}
	return keys
}
