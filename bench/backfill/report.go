package main

import (
	"fmt"
	"io"
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

func targets(r *results) []target {
	share := 0.0
	if n := r.naive.rate(); n > 0 {
		share = r.phasekit.rate() / n
	}
	limit := time.Duration(float64(r.baseline.app.P99) * maxP99Factor)
	return []target{
		{
			what: fmt.Sprintf("backfill >= %.0f%% of naive rows/s", 100*minShareOfNaive),
			measured: fmt.Sprintf("%.0f%% (%s vs %s rows/s)", 100*share,
				thousands(r.phasekit.rate()), thousands(r.naive.rate())),
			pass: share >= minShareOfNaive,
		},
		{
			what: fmt.Sprintf("app p99 during phasekit <= %.1fx baseline p99", maxP99Factor),
			measured: fmt.Sprintf("%s ms vs limit %s ms (%.2fx baseline %s ms)", ms(r.phasekit.app.P99), ms(limit),
				ratio(r.phasekit.app.P99, r.baseline.app.P99), ms(r.baseline.app.P99)),
			pass: r.baseline.app.Tx > 0 && r.phasekit.app.Tx > 0 && r.phasekit.app.P99 <= limit,
		},
		{
			what:     "0 failed transactions during phasekit",
			measured: strconv.Itoa(r.phasekit.app.Failed),
			pass:     r.phasekit.app.Failed == 0,
		},
	}
}

func printReport(w io.Writer, cfg config, r *results) {
	fmt.Fprintln(w, "| run | rows/s | vs naive | time s | app p50 ms | app p99 ms | app max ms | app tx | failed tx |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|")
	rows := []struct {
		name string
		o    outcome
	}{
		{"baseline (no migration)", r.baseline},
		{"naive UPDATE", r.naive},
		{"phasekit backfill", r.phasekit},
		{"ALTER TYPE rewrite (reference)", r.rewrite},
	}
	for _, row := range rows {
		rate, vs, took := "-", "-", fmt.Sprintf("%.1f", row.o.window.Seconds())
		if row.o.rows > 0 {
			rate = thousands(row.o.rate())
			took = fmt.Sprintf("%.1f", row.o.took.Seconds())
			if n := r.naive.rate(); n > 0 {
				vs = fmt.Sprintf("%.0f%%", 100*row.o.rate()/n)
			}
		}
		a := row.o.app
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %d | %d |\n", row.name, rate, vs, took, ms(a.P50), ms(a.P99), ms(a.Max), a.Tx, a.Failed)
	}
	fmt.Fprintln(w)
	load := fmt.Sprintf("%g tx/s", cfg.rate)
	if cfg.rate == 0 {
		load = "flat out"
	}
	fmt.Fprintf(w, "%s rows; app: pgbench, %d clients, %s, point read + single-row update per tx\n", thousands(float64(cfg.rows)), cfg.clients, load)
	fmt.Fprintln(w, "app figures: the transactions due while the migration ran (pgbench -R latency counts from the scheduled start)")
	batch := "default batch target"
	if cfg.batchTarget > 0 {
		batch = "batch target " + cfg.batchTarget.String()
	}
	fmt.Fprintf(w, "phasekit (%s): rows/s over the backfill phase (ledger); app over all of apply --until backfill (%.1fs: %s)\n",
		batch, r.applyWall.Seconds(), phaseList(r.phaseTimes))
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
