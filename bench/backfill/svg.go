package main

import (
	"fmt"
	"html"
	"math"
	"strings"
	"time"
)

// point is one setting on the trade-off plot.
type point struct {
	label string
	rate  float64       // rows/s
	p99   time.Duration // app p99
	main  bool          // the defaults: drawn larger
}

// tradeoffPoints are the settings of one size with a backfill: the medians
// of the repeated ones, the sweep's single runs.
func tradeoffPoints(r *results) []point {
	var pts []point
	add := func(key, label string) {
		m := medianOf(r.series[key])
		if m.rate > 0 && m.p99 > 0 {
			pts = append(pts, point{label: label, rate: m.rate, p99: m.p99, main: key == defaults.key})
		}
	}
	add("naive", "naive UPDATE")
	add(defaults.key, "defaults (guard 1.5x)")
	add(unguarded.key, "guard off")
	for _, v := range sweep {
		if !v.dualWriteOnly && !v.probeOnly {
			add(v.key, v.label)
		}
	}
	return pts
}

// tradeoffSVG draws rows/s (x) against the app's p99 (y, log scale) for
// the settings of r, with the baseline's p99, the 1.5x target and pgroll's
// rate as reference lines. Plain SVG, no script, readable on GitHub.
func tradeoffSVG(r *results) string {
	const (
		w, h                     = 1100, 460
		left, right, top, bottom = 70, 500, 40, 50
	)
	pts := tradeoffPoints(r)
	base := medianOf(r.series["baseline"]).p99
	maxRate := float64(pgrollRate)
	minP, maxP := base, time.Duration(float64(base)*maxP99Factor)
	for _, p := range pts {
		maxRate = max(maxRate, p.rate)
		minP, maxP = min(minP, p.p99), max(maxP, p.p99)
	}
	if minP <= 0 {
		minP = time.Millisecond
	}
	maxRate *= 1.1
	lo, hi := math.Log10(float64(minP)/1e6/1.3), math.Log10(float64(maxP)/1e6*1.3)
	x := func(rate float64) float64 { return left + rate/maxRate*(w-left-right) }
	y := func(d time.Duration) float64 {
		v := math.Log10(float64(d) / 1e6)
		return top + (hi-v)/(hi-lo)*(h-top-bottom)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="14" font-weight="bold">Backfill of %s rows: rows/s against the app's p99 (pgbench, %s)</text>`+"\n", left, thousands(float64(r.rows)), "medians where repeated")
	// Axes and ticks.
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", left, h-bottom, w-right, h-bottom)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", left, top, left, h-bottom)
	step := niceStep(maxRate / 5)
	for v := 0.0; v <= maxRate; v += step {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/><text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n",
			x(v), top, x(v), h-bottom, x(v), h-bottom+16, thousands(v))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">rows/s</text>`+"\n", (left+w-right)/2, h-12)
	for e := math.Floor(lo); e <= hi; e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if lv := math.Log10(v); lv < lo || lv > hi {
				continue
			}
			d := time.Duration(v * 1e6)
			fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%g</text>`+"\n",
				left, y(d), w-right, y(d), left-6, y(d)+4, v)
		}
	}
	fmt.Fprintf(&b, `<text transform="translate(18 %d) rotate(-90)" text-anchor="middle">app p99, ms (log)</text>`+"\n", (top+h-bottom)/2)
	// Reference lines.
	ref := func(d time.Duration, color, dash, label string) {
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s" stroke-dasharray="%s"/><text x="%d" y="%.1f" fill="%s">%s</text>`+"\n",
			left, y(d), w-right, y(d), color, dash, w-right+6, y(d)+4, color, html.EscapeString(label))
	}
	ref(base, "#555", "", fmt.Sprintf("baseline p99 %s ms", ms(base)))
	ref(time.Duration(float64(base)*maxP99Factor), "#c00", "6 4", fmt.Sprintf("target: %.1fx baseline", maxP99Factor))
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#06c" stroke-dasharray="4 4"/><text x="%.1f" y="%d" fill="#06c">pgroll %s rows/s</text>`+"\n",
		x(pgrollRate), top, x(pgrollRate), h-bottom, x(pgrollRate)+4, top+12, thousands(pgrollRate))
	// Points, labelled on the right in rate order, with a leader line.
	for i, p := range pts {
		r := 4.0
		color := "#333"
		if p.main {
			r, color = 6, "#c00"
		}
		ly := float64(top + 30 + i*22)
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="%.0f" fill="%s"/>`+"\n", x(p.rate), y(p.p99), r, color)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%d" y2="%.1f" stroke="#bbb"/>`+"\n", x(p.rate), y(p.p99), w-right+4, ly)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" fill="%s">%s (%s, %s ms)</text>`+"\n", w-right+8, ly+4, color,
			html.EscapeString(p.label), thousands(p.rate), ms(p.p99))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// niceStep rounds v to 1, 2 or 5 times a power of ten.
func niceStep(v float64) float64 {
	if v <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*e >= v {
			return m * e
		}
	}
	return 10 * e
}
