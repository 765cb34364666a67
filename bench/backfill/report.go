package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The targets.
const (
	minShareOfNaive = 0.60 // backfill rows/s over naive UPDATE rows/s
	maxP99Factor    = 1.2  // app p99 during phasekit over baseline p99
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
	base, pk, naive := medianOf(r.baseline), medianOf(r.phasekit), medianOf(r.naive)
	share := 0.0
	if naive.rate > 0 {
		share = pk.rate / naive.rate
	}
	limit := time.Duration(float64(base.p99) * maxP99Factor)
	return []target{
		{
			what: fmt.Sprintf("backfill >= %.0f%% of naive rows/s", 100*minShareOfNaive),
			measured: fmt.Sprintf("%.0f%% (median %s vs %s rows/s)", 100*share,
				thousands(pk.rate), thousands(naive.rate)),
			pass: share >= minShareOfNaive,
		},
		{
			what: fmt.Sprintf("app p99 during phasekit <= %.1fx baseline p99", maxP99Factor),
			measured: fmt.Sprintf("median %s ms vs limit %s ms (%.2fx median baseline %s ms)", ms(pk.p99), ms(limit),
				ratio(pk.p99, base.p99), ms(base.p99)),
			pass: base.tx > 0 && pk.tx > 0 && pk.p99 <= limit,
		},
		{
			what:     "0 failed transactions during phasekit",
			measured: strconv.Itoa(pk.failed),
			pass:     pk.failed == 0,
		},
	}
}

// tableRow is one line of the printed table.
type tableRow struct {
	name string
	o    outcome
}

func tableRows(r *results) []tableRow {
	var rows []tableRow
	for i := range r.baseline {
		rows = append(rows, tableRow{fmt.Sprintf("baseline #%d (no migration)", i+1), r.baseline[i]})
		if i < len(r.naive) {
			rows = append(rows, tableRow{fmt.Sprintf("naive UPDATE #%d", i+1), r.naive[i]})
		}
		if i < len(r.phasekit) {
			rows = append(rows, tableRow{fmt.Sprintf("phasekit backfill #%d", i+1), r.phasekit[i]})
		}
		if i < len(r.control) {
			rows = append(rows, tableRow{fmt.Sprintf("I/O control #%d (no migration)", i+1), r.control[i]})
		}
	}
	return append(rows, tableRow{"ALTER TYPE rewrite (reference)", r.rewrite})
}

func printReport(w io.Writer, cfg config, r *results) {
	fmt.Fprintln(w, "| run | rows/s | vs naive | time s | WAL MB/s | app p50 ms | app p99 ms | app max ms | app tx | failed tx |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	rows := tableRows(r)
	naive := medianOf(r.naive).rate
	for _, row := range rows {
		rate, vs, took := "-", "-", fmt.Sprintf("%.1f", row.o.window.Seconds())
		if row.o.rows > 0 {
			rate = thousands(row.o.rate())
			took = fmt.Sprintf("%.1f", row.o.took.Seconds())
			if naive > 0 {
				vs = fmt.Sprintf("%.0f%%", 100*row.o.rate()/naive)
			}
		}
		a := row.o.app
		fmt.Fprintf(w, "| %s | %s | %s | %s | %.1f | %s | %s | %s | %d | %d |\n", row.name, rate, vs, took, row.o.walRate()/1e6, ms(a.P50), ms(a.P99), ms(a.Max), a.Tx, a.Failed)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| median of the repetitions | rows/s | WAL MB/s | app p50 ms | app p99 ms | app max ms | failed tx (sum) |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|")
	for _, m := range []struct {
		name string
		runs []outcome
	}{{"baseline", r.baseline}, {"naive UPDATE", r.naive}, {"phasekit backfill", r.phasekit}, {"I/O control", r.control}} {
		md := medianOf(m.runs)
		rate := "-"
		if md.rate > 0 {
			rate = thousands(md.rate)
		}
		fmt.Fprintf(w, "| %s | %s | %.1f | %s | %s | %s | %d |\n", m.name, rate, md.walRate/1e6, ms(md.p50), ms(md.p99), ms(md.max), md.failed)
	}
	fmt.Fprintln(w)
	load := fmt.Sprintf("%g tx/s", cfg.rate)
	if cfg.rate == 0 {
		load = "flat out"
	}
	fmt.Fprintf(w, "%s rows, %d repetitions; app: pgbench, %d clients, %s, point read + single-row update per tx\n", thousands(float64(cfg.rows)), cfg.reps, cfg.clients, load)
	fmt.Fprintln(w, "app figures: the transactions due while the migration ran (pgbench -R latency counts from the scheduled start); vs naive: against the median naive UPDATE")
	batch := "default batch target"
	if cfg.batchTarget > 0 {
		batch = "batch target " + cfg.batchTarget.String()
	}
	walls := make([]string, len(r.applyWall))
	for i, d := range r.applyWall {
		walls[i] = fmt.Sprintf("%.1fs", d.Seconds())
	}
	fmt.Fprintf(w, "phasekit (%s): rows/s over the backfill phase (ledger); app over all of apply --until backfill (%s; last run: %s)\n",
		batch, strings.Join(walls, ", "), phaseList(r.phaseTimes))
	fmt.Fprintln(w, "I/O control: no migration; another process writes the preceding phasekit run's WAL rate to a file on the same file system, synced once per batch target")
	for _, row := range rows {
		if row.o.app.Behind > 0 {
			fmt.Fprintf(w, "warning: %s: %d pgbench clients had not caught up when stopped; its app figures miss the most delayed transactions\n", row.name, row.o.app.Behind)
		}
	}
	fmt.Fprintln(w, "targets (issue):")
	for _, t := range targets(r) {
		verdict := "FAIL"
		if t.pass {
			verdict = "PASS"
		}
		fmt.Fprintf(w, "  %s  %s: %s\n", verdict, t.what, t.measured)
	}
	if base, ctl, pk := medianOf(r.baseline), medianOf(r.control), medianOf(r.phasekit); ctl.tx > 0 && base.p99 > 0 {
		fmt.Fprintf(w, "floor (I/O control): median app p99 %s ms = %.2fx baseline with no migration running, only the backfill's WAL bytes written and synced; phasekit's median p99 is %.2fx the control's\n",
			ms(ctl.p99), ratio(ctl.p99, base.p99), ratio(pk.p99, ctl.p99))
	}
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
