package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/phasekit/phasekit/throttle"
)

// The targets (issue 14).
const (
	// maxP99Factor: app p99 while phasekit backfills with its defaults,
	// over the baseline's.
	maxP99Factor = 1.5
	// guardedRateShare: rows/s with the defaults, over pgroll's.
	guardedRateShare = 1.0
	// unguardedRateShare: rows/s with the guard off, over pgroll's.
	unguardedRateShare = 2.0
)

// target is one of the targets against a measured figure.
type target struct {
	what     string
	measured string
	pass     bool
}

// medians sums up repeated runs: the median of each figure on its own.
type medians struct {
	rate, walRate float64
	p50, p99, max time.Duration
	tx, failed    int
}

func medianOf(runs []outcome) medians {
	var m medians
	if len(runs) == 0 {
		return m
	}
	m.rate = median(runs, outcome.rate)
	m.walRate = median(runs, outcome.walRate)
	m.p50 = median(runs, func(o outcome) time.Duration { return o.app.P50 })
	m.p99 = median(runs, func(o outcome) time.Duration { return o.app.P99 })
	m.max = median(runs, func(o outcome) time.Duration { return o.app.Max })
	m.tx = median(runs, func(o outcome) int { return o.app.Tx })
	// Failures are summed: one failed transaction in any run fails the target.
	for _, o := range runs {
		m.failed += o.app.Failed
	}
	return m
}

// median is the middle value of f over runs (the lower middle for an even
// count: the figures are compared against limits, and no value is made up).
func median[T int | float64 | time.Duration](runs []outcome, f func(outcome) T) T {
	vs := make([]T, len(runs))
	for i, o := range runs {
		vs[i] = f(o)
	}
	slices.Sort(vs)
	return vs[(len(vs)-1)/2]
}

func targets(r *results) []target {
	base, pk, off := medianOf(r.series["baseline"]), medianOf(r.series[defaults.key]), medianOf(r.series[unguarded.key])
	size := thousands(float64(r.rows)) + " rows: "
	limit := time.Duration(float64(base.p99) * maxP99Factor)
	failed, runs := 0, 0
	for _, k := range sortedKeys(r.series) {
		for _, o := range r.series[k] {
			failed += o.app.Failed
			runs++
		}
	}
	failed += r.rewrite.app.Failed
	return []target{
		{
			what: size + fmt.Sprintf("app p99 with the defaults <= %.1fx baseline p99", maxP99Factor),
			measured: fmt.Sprintf("median %s ms vs limit %s ms (%.2fx median baseline %s ms)", ms(pk.p99), ms(limit),
				ratio(pk.p99, base.p99), ms(base.p99)),
			pass: base.tx > 0 && pk.tx > 0 && pk.p99 <= limit,
		},
		{
			what:     size + "rows/s with the defaults >= pgroll's " + thousands(pgrollRate),
			measured: fmt.Sprintf("median %s rows/s (%.2fx)", thousands(pk.rate), pk.rate/pgrollRate),
			pass:     pk.rate >= guardedRateShare*pgrollRate,
		},
		{
			what:     size + fmt.Sprintf("rows/s with the guard off >= %.0fx pgroll's", unguardedRateShare),
			measured: fmt.Sprintf("median %s rows/s (%.2fx)", thousands(off.rate), off.rate/pgrollRate),
			pass:     off.rate >= unguardedRateShare*pgrollRate,
		},
		{
			what:     size + "0 failed app transactions in every run",
			measured: fmt.Sprintf("%d in %d runs", failed, runs+1),
			pass:     failed == 0,
		},
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// labelOf names a series.
func labelOf(key string) string {
	switch key {
	case "baseline":
		return "baseline (no migration)"
	case "naive":
		return "naive UPDATE"
	case "control":
		return "I/O control (no migration)"
	}
	if v, ok := variantByKey(key); ok {
		return v.label
	}
	return key
}

// mainSeries are the series run every repetition, in the table's order.
var mainSeries = []string{"baseline", "naive", defaults.key, unguarded.key, "control"}

func printReport(w io.Writer, cfg config, r *results) {
	fmt.Fprintf(w, "### %s rows\n\n", thousands(float64(r.rows)))
	fmt.Fprintln(w, "| run | rows/s | vs naive | time s | WAL MB/s | app p50 ms | app p99 ms | app max ms | app tx | failed tx | guard: probe p99 ms (baseline / limit / peak), slowdowns |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|")
	naive := medianOf(r.series["naive"]).rate
	row := func(name string, o outcome) {
		rate, vs, took := "-", "-", fmt.Sprintf("%.1f", o.window.Seconds())
		if o.rows > 0 {
			rate = thousands(o.rate())
			took = fmt.Sprintf("%.1f", o.took.Seconds())
			if naive > 0 {
				vs = fmt.Sprintf("%.0f%%", 100*o.rate()/naive)
			}
		}
		guard := "-"
		if g := o.guard; g != nil {
			guard = fmt.Sprintf("%.2f / %.2f / %.2f, %d", g.BaselineP99, g.Limit, g.PeakP99, g.Decreases)
			if g.Quiets > 0 {
				guard += fmt.Sprintf(", %d re-baselines from %.2f", g.Quiets, g.FirstBaselineP99)
			}
		}
		a := o.app
		fmt.Fprintf(w, "| %s | %s | %s | %s | %.1f | %s | %s | %s | %d | %d | %s |\n", name, rate, vs, took, o.walRate()/1e6, ms(a.P50), ms(a.P99), ms(a.Max), a.Tx, a.Failed, guard)
	}
	for _, n := range runsInOrder(cfg, r) {
		row(n.name, n.o)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| median of the repetitions | rows/s | vs pgroll | WAL MB/s | app p50 ms | app p99 ms | vs baseline p99 | app max ms | failed tx (sum) |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|")
	base := medianOf(r.series["baseline"])
	fmt.Fprintf(w, "| pgroll v0.16, 1000-row batches (issue 14's figure, not run here) | %s | 1.00x | - | - | - | - | - | - |\n", thousands(pgrollRate))
	for _, k := range append(slices.Clone(mainSeries), repeatedSweep(r)...) {
		if len(r.series[k]) == 0 {
			continue
		}
		md := medianOf(r.series[k])
		rate, vs := "-", "-"
		if md.rate > 0 {
			rate, vs = thousands(md.rate), fmt.Sprintf("%.2fx", md.rate/pgrollRate)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %.1f | %s | %s | %.2fx | %s | %d |\n", labelOf(k), rate, vs, md.walRate/1e6, ms(md.p50), ms(md.p99), ratio(md.p99, base.p99), ms(md.max), md.failed)
	}
	fmt.Fprintln(w)
	printWaits(w, r)
	printVacuum(w, cfg, r)
	load := fmt.Sprintf("%g tx/s", cfg.rate)
	if cfg.rate == 0 {
		load = "flat out"
	}
	fmt.Fprintf(w, "%s rows, %d repetitions; app: pgbench, %d clients, %s, point read + single-row update per tx\n", thousands(float64(r.rows)), cfg.reps, cfg.clients, load)
	fmt.Fprintln(w, "app figures: the transactions due while the migration ran (pgbench -R latency counts from the scheduled start); vs naive: against the median naive UPDATE")
	batch := "default batch target"
	if cfg.batchTarget > 0 {
		batch = "batch target " + cfg.batchTarget.String()
	}
	phases := ""
	if len(r.phaseTimes) > 0 {
		phases = " (last unguarded run: " + phaseList(r.phaseTimes) + ")"
	}
	fmt.Fprintf(w, "phasekit (%s): rows/s over the backfill phase (ledger; with the guard, its %s probe baseline included); app over all of apply --until backfill%s\n",
		batch, throttle.DefaultBaselineFor, phases)
	fmt.Fprintln(w, "I/O control: no migration; another process writes the preceding unguarded run's WAL rate to a file on the same file system, synced once per batch target")
	for _, k := range sortedKeys(r.series) {
		for i, o := range r.series[k] {
			if o.app.Behind > 0 {
				fmt.Fprintf(w, "warning: %s #%d: %d pgbench clients had not caught up when stopped; its app figures miss the most delayed transactions\n", labelOf(k), i+1, o.app.Behind)
			}
		}
	}
	if ctl, off := medianOf(r.series["control"]), medianOf(r.series[unguarded.key]); ctl.tx > 0 && base.p99 > 0 {
		fmt.Fprintf(w, "floor (I/O control): median app p99 %s ms = %.2fx baseline with no migration running, only the unguarded backfill's WAL bytes written and synced; the unguarded backfill's median p99 is %.2fx the control's\n",
			ms(ctl.p99), ratio(ctl.p99, base.p99), ratio(off.p99, ctl.p99))
	}
	fmt.Fprintln(w)
}

// printWaits tells what the app's backends waited on: the share of samples
// (every 10 ms, one per active app backend) in each event.
func printWaits(w io.Writer, r *results) {
	keys := []string{"baseline", "dualwrite", "probeonly", defaults.key, unguarded.key, "naive"}
	for _, k := range repeatedSweep(r) {
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	var cols []string
	all := waits{counts: map[string]int{}}
	for _, k := range keys {
		runs := r.series[k]
		if len(runs) == 0 {
			continue
		}
		cols = append(cols, k)
		// The last run stands for the series.
		for e, n := range runs[len(runs)-1].waits.counts {
			all.counts[e] += n
		}
	}
	if len(cols) == 0 {
		return
	}
	fmt.Fprint(w, "| app backends' samples in |")
	for _, k := range cols {
		fmt.Fprintf(w, " %s |", labelOf(k))
	}
	fmt.Fprint(w, "\n|---|")
	for range cols {
		fmt.Fprint(w, "--:|")
	}
	fmt.Fprintln(w)
	top := all.top()
	if len(top) > 8 {
		top = top[:8]
	}
	for _, e := range top {
		fmt.Fprintf(w, "| %s |", e)
		for _, k := range cols {
			runs := r.series[k]
			fmt.Fprintf(w, " %.1f%% |", 100*runs[len(runs)-1].waits.share(e))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprint(w, "| active app backends per look (mean) |")
	for _, k := range cols {
		runs := r.series[k]
		wt := runs[len(runs)-1].waits
		mean := 0.0
		if wt.looks > 0 {
			mean = float64(wt.samples) / float64(wt.looks)
		}
		fmt.Fprintf(w, " %.2f |", mean)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w)
}

// printVacuum tells, for each run in which autovacuum worked in the run's
// database, how long it did and the app's p99 while it did and otherwise.
func printVacuum(w io.Writer, cfg config, r *results) {
	var lines []namedRun
	for _, n := range runsInOrder(cfg, r) {
		if len(n.o.waits.vacuum) > 0 {
			lines = append(lines, n)
		}
	}
	if len(lines) == 0 {
		fmt.Fprintln(w, "autovacuum: not seen at work in any run's database")
		fmt.Fprintln(w)
		return
	}
	fmt.Fprintln(w, "| run (autovacuum seen) | autovacuum s | share of window | app tx while it ran | app p99 ms while it ran | app tx otherwise | app p99 ms otherwise | app p99 ms, whole window |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|")
	for _, l := range lines {
		v := total(l.o.waits.vacuum)
		fmt.Fprintf(w, "| %s | %.1f | %.0f%% | %d | %s | %d | %s | %s |\n", l.name, v.Seconds(), 100*v.Seconds()/l.o.window.Seconds(),
			l.o.duringVacuum.Tx, ms(l.o.duringVacuum.P99), l.o.outsideVacuum.Tx, ms(l.o.outsideVacuum.P99), ms(l.o.app.P99))
	}
	fmt.Fprintln(w)
}

// namedRun is one run with its name in the tables.
type namedRun struct {
	name string
	o    outcome
}

// runsInOrder are the runs of one size in the order the tables list them:
// each repetition's main series, the sweep's runs, the key-range workers,
// the rewrite.
func runsInOrder(cfg config, r *results) []namedRun {
	var out []namedRun
	for i := range cfg.reps {
		for _, k := range mainSeries {
			if runs := r.series[k]; i < len(runs) {
				out = append(out, namedRun{fmt.Sprintf("%s #%d", labelOf(k), i+1), runs[i]})
			}
		}
	}
	for _, v := range sweep {
		runs := r.series[v.key]
		for i, o := range runs {
			name := v.label
			if len(runs) > 1 {
				name = fmt.Sprintf("%s #%d", v.label, i+1)
			}
			out = append(out, namedRun{name, o})
		}
	}
	for _, n := range r.workers {
		for _, o := range r.series[fmt.Sprintf("parallel%d", n)] {
			out = append(out, namedRun{fmt.Sprintf("batch statement, %d key-range worker(s), no phasekit", n), o})
		}
	}
	if r.rewrite.app.Tx > 0 {
		out = append(out, namedRun{"ALTER TYPE rewrite (reference)", r.rewrite})
	}
	return out
}

// printTargets prints every size's targets with PASS or FAIL.
func printTargets(w io.Writer, all []*results) bool {
	ok := true
	fmt.Fprintln(w, "targets (issue 14):")
	for _, r := range all {
		for _, t := range targets(r) {
			verdict := "FAIL"
			if t.pass {
				verdict = "PASS"
			} else {
				ok = false
			}
			fmt.Fprintf(w, "  %s  %s: %s\n", verdict, t.what, t.measured)
		}
	}
	return ok
}

func phaseList(times map[string]time.Duration) string {
	var parts []string
	for _, k := range []string{"expand", "dual-write", "backfill"} {
		if d, ok := times[k]; ok {
			parts = append(parts, fmt.Sprintf("%s %.1fs", k, d.Seconds()))
		}
	}
	return strings.Join(parts, ", ")
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64)
}

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// thousands formats a rate as a whole number with comma separators.
func thousands(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
