package report

import (
	"fmt"
	"html"
	"html/template"
	"strings"
	"time"

	"github.com/phasekit/phasekit/phases"
)

// Timeline geometry, in SVG user units (CSS pixels at scale 1).
const (
	tlCol    = 82  // column width: one per phase, deploy and gate
	tlGap    = 10  // between columns
	tlMargin = 14  // left and right
	tlDBTop  = 24  // database lane
	tlDBH    = 96  //
	tlCodeY  = 132 // code lane
	tlCodeH  = 118 //
	tlVerY   = 262 // versions band
	tlVerH   = 24  //
	tlHeight = 298
	tlNodeH  = 64 // phase node height
	tlDepH   = 44 // deploy node height
	tlFont   = `system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans", Arial, sans-serif`
)

// phaseColours are each phase kind's fill and stroke.
var phaseColours = map[phases.Kind][2]string{
	phases.Expand:    {"#e7efff", "#2f5fc4"},
	phases.DualWrite: {"#f1e9ff", "#7346c0"},
	phases.Backfill:  {"#fff3df", "#b66a00"},
	phases.Validate:  {"#e2f6f3", "#13806f"},
	phases.Contract:  {"#ffe9e7", "#b3261e"},
}

// tlColumn is one column of the timeline: a phase, a deploy (with the bake
// that follows it) or the gate.
type tlColumn struct {
	step TimelineStep
	bake *TimelineStep
}

// TimelineSVG draws the release timeline: database phases in the top lane,
// code deploys with their bake windows in the lower one, the contract gate
// between them, and under both the app versions that must work at each
// point. Every phase is one <g class="node phase" data-kind=KIND>, every
// deploy stage or wave one <g class="node stage" data-stage=S data-wave=W>,
// the gate <g class="node gate">, a bake window <g class="bake">.
func TimelineSVG(r *Review) template.HTML {
	var cols []tlColumn
	for i := range r.Timeline {
		s := r.Timeline[i]
		if s.Kind == phases.StepBake && len(cols) > 0 && cols[len(cols)-1].step.Kind == phases.StepDeploy && cols[len(cols)-1].bake == nil {
			cols[len(cols)-1].bake = &s
			continue
		}
		cols = append(cols, tlColumn{step: s})
	}
	width := 2*tlMargin + len(cols)*tlCol + max(len(cols)-1, 0)*tlGap
	x := func(i int) int { return tlMargin + i*(tlCol+tlGap) }
	var maxBake time.Duration
	for _, c := range cols {
		if c.bake != nil {
			if d, err := time.ParseDuration(c.bake.Bake); err == nil && d > maxBake {
				maxBake = d
			}
		}
	}

	var b strings.Builder
	e := html.EscapeString
	newLabel := phases.New
	if r.Binding != nil && r.Binding.New != "" {
		newLabel = r.Binding.New
	}
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" class="timeline-svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-labelledby="tl-title tl-desc" font-family="%s">`,
		width, tlHeight, width, tlHeight, e(tlFont))
	fmt.Fprintf(&b, `<title id="tl-title">Release timeline: %d database phase(s), %d deploy step(s)</title>`, len(r.Phases), countKind(r.Timeline, phases.StepDeploy))
	fmt.Fprintf(&b, `<desc id="tl-desc">%s</desc>`, e(timelineText(r)))
	b.WriteString(`<defs><marker id="tl-arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L8,4 L0,8 z" fill="#6b7280"/></marker>` +
		`<pattern id="tl-hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#dff3e6"/><line x1="0" y1="0" x2="0" y2="6" stroke="#8cc9a2" stroke-width="2.5"/></pattern></defs>`)

	// Lanes.
	fmt.Fprintf(&b, `<rect class="lane" x="0" y="%d" width="%d" height="%d" rx="8" fill="#f6f8fb"/>`, tlDBTop, width, tlDBH)
	fmt.Fprintf(&b, `<rect class="lane" x="0" y="%d" width="%d" height="%d" rx="8" fill="#f3f7f4"/>`, tlCodeY, width, tlCodeH)
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11" font-weight="700" letter-spacing="0.08em" fill="#4b5563">DATABASE PHASES</text>`, tlMargin, tlDBTop-8)
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11" font-weight="700" letter-spacing="0.08em" fill="#4b5563">CODE ROLLOUT OF %s</text>`, tlMargin, tlCodeY-8+2, e(strings.ToUpper(newLabel)))

	// Connectors first, under the nodes.
	for i := 0; i+1 < len(cols); i++ {
		x1, y1 := x(i)+tlCol, anchorY(cols[i].step)
		x2, y2 := x(i+1), anchorY(cols[i+1].step)
		if y1 == y2 {
			fmt.Fprintf(&b, `<path d="M%d,%d H%d" stroke="#6b7280" stroke-width="1.4" fill="none" marker-end="url(#tl-arrow)"/>`, x1, y1, x2-1)
			continue
		}
		mid := x1 + tlGap/2
		fmt.Fprintf(&b, `<path d="M%d,%d H%d V%d H%d" stroke="#6b7280" stroke-width="1.4" fill="none" marker-end="url(#tl-arrow)"/>`, x1, y1, mid, y2, x2-1)
	}

	// Stage brackets over the waves of one stage.
	for i := 0; i < len(cols); {
		s := cols[i].step
		if s.Kind != phases.StepDeploy || s.Wave == "" {
			i++
			continue
		}
		j := i
		for j+1 < len(cols) && cols[j+1].step.Kind == phases.StepDeploy && cols[j+1].step.Stage == s.Stage && cols[j+1].step.Wave != "" {
			j++
		}
		x1, x2 := x(i)+4, x(j)+tlCol-4
		y := tlCodeY + 14
		fmt.Fprintf(&b, `<g class="stage-group" data-stage="%s"><path d="M%d,%d V%d H%d V%d" stroke="#2e7d4f" stroke-width="1.2" fill="none"/><text x="%d" y="%d" font-size="11" font-weight="700" text-anchor="middle" fill="#1f5e3a">%s · %d waves</text></g>`,
			e(s.Stage), x1, y+6, y, x2, y+6, (x1+x2)/2, y-4, e(s.Stage), j-i+1)
		i = j + 1
	}

	for i, c := range cols {
		s := c.step
		switch s.Kind {
		case phases.StepPhase:
			drawPhase(&b, r, s, x(i))
		case phases.StepDeploy:
			drawDeploy(&b, s, c.bake, x(i), maxBake, newLabel)
		case phases.StepGate:
			drawGate(&b, s, x(i))
		}
	}

	// Which versions must work, merged over runs of equal columns.
	for i := 0; i < len(cols); {
		vs := strings.Join(cols[i].step.Versions, " and ")
		j := i
		for j+1 < len(cols) && strings.Join(cols[j+1].step.Versions, " and ") == vs {
			j++
		}
		fill, stroke := "#e8eefc", "#3358b8"
		switch {
		case len(cols[i].step.Versions) > 1:
			fill, stroke = "#efe7fb", "#6b3fb3"
		case r.Binding != nil && vs == r.Binding.New, r.Binding == nil && vs == phases.New:
			fill, stroke = "#e3f4ea", "#237a48"
		}
		x1, x2 := x(i), x(j)+tlCol
		fmt.Fprintf(&b, `<g class="versions" data-versions="%s"><rect x="%d" y="%d" width="%d" height="%d" rx="5" fill="%s" stroke="%s" stroke-width="1"/><text x="%d" y="%d" font-size="12" font-weight="600" text-anchor="middle" fill="%s">%s must work</text></g>`,
			e(vs), x1, tlVerY, x2-x1, tlVerH, fill, stroke, (x1+x2)/2, tlVerY+16, stroke, e(vs))
		i = j + 1
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func countKind(steps []TimelineStep, k phases.StepKind) int {
	n := 0
	for _, s := range steps {
		if s.Kind == k {
			n++
		}
	}
	return n
}

// anchorY is where connectors meet a column's node.
func anchorY(s TimelineStep) int {
	switch s.Kind {
	case phases.StepDeploy:
		return tlCodeY + 22 + tlDepH/2
	case phases.StepGate:
		return tlDBTop + 14 + tlNodeH/2
	}
	return tlDBTop + 14 + tlNodeH/2
}

func drawPhase(b *strings.Builder, r *Review, s TimelineStep, x int) {
	e := html.EscapeString
	col := phaseColours[s.Phase]
	if col[0] == "" {
		col = [2]string{"#eef1f5", "#4b5563"}
	}
	y := tlDBTop + 14
	est, wait := "", ""
	if s.PhaseN > 0 {
		ph := r.Phases[s.PhaseN-1]
		est = ph.Duration.String()
		switch {
		case ph.Blocks.Reads:
			wait = "blocks reads"
		case ph.Blocks.Writes:
			wait = "blocks writes"
		case len(ph.Backfills) > 0:
			wait = "rows ≤ " + humanDuration(ph.Backfills[0].BatchHold)
		default:
			wait = "no app wait"
		}
	}
	waitCol := "#4b5563"
	if strings.HasPrefix(wait, "blocks reads") {
		waitCol = "#b3261e"
	} else if strings.HasPrefix(wait, "blocks writes") {
		waitCol = "#a15c00"
	}
	fmt.Fprintf(b, `<g class="node phase" data-kind="%s" data-step="%d">`, e(string(s.Phase)), s.N)
	fmt.Fprintf(b, `<title>%s: %s (step %d)</title>`, e(s.Title), e(s.When), s.N)
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" rx="7" fill="%s" stroke="%s" stroke-width="1.6"/>`, x, y, tlCol, tlNodeH, col[0], col[1])
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="5" rx="2" fill="%s"/>`, x+1, y+1, tlCol-2, col[1])
	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="12.5" font-weight="700" text-anchor="middle" fill="%s">%s</text>`, x+tlCol/2, y+24, col[1], e(string(s.Phase)))
	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="11" text-anchor="middle" fill="#1f2937">%s</text>`, x+tlCol/2, y+40, e(est))
	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="10.5" text-anchor="middle" fill="%s">%s</text>`, x+tlCol/2, y+55, waitCol, e(wait))
	b.WriteString(`</g>`)
}

func drawDeploy(b *strings.Builder, s TimelineStep, bake *TimelineStep, x int, maxBake time.Duration, newLabel string) {
	e := html.EscapeString
	y := tlCodeY + 22
	line1, line2 := s.Stage, "deploy "+newLabel
	if s.Wave != "" {
		line1, line2 = s.Wave, "wave of "+s.Stage
	}
	if line1 == "" {
		line1, line2 = "all stages", "deploy "+newLabel
	}
	fmt.Fprintf(b, `<g class="node stage" data-stage="%s" data-wave="%s" data-step="%d">`, e(s.Stage), e(s.Wave), s.N)
	fmt.Fprintf(b, `<title>%s: %s (step %d)</title>`, e(s.Title), e(s.When), s.N)
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" rx="7" fill="#ffffff" stroke="#2e7d4f" stroke-width="1.6"/>`, x, y, tlCol, tlDepH)
	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="12.5" font-weight="700" text-anchor="middle" fill="#1f5e3a">%s</text>`, x+tlCol/2, y+19, e(fit(line1, 12)))
	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="10.5" text-anchor="middle" fill="#4b5563">%s</text>`, x+tlCol/2, y+34, e(fit(line2, 15)))
	b.WriteString(`</g>`)
	if bake == nil {
		return
	}
	d, err := time.ParseDuration(bake.Bake)
	if err != nil {
		return
	}
	w := tlCol
	if maxBake > 0 {
		w = max(10, int(float64(tlCol)*float64(d)/float64(maxBake)))
	}
	by := y + tlDepH + 10
	fmt.Fprintf(b, `<g class="bake" data-stage="%s" data-wave="%s" data-bake="%s">`, e(bake.Stage), e(bake.Wave), e(bake.Bake))
	fmt.Fprintf(b, `<title>%s: %s</title>`, e(bake.Title), e(bake.When))
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="12" rx="3" fill="url(#tl-hatch)" stroke="#5aa877" stroke-width="1"/>`, x, by, w)
	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="11" fill="#1f5e3a">bake %s</text>`, x, by+27, e(bake.Bake))
	b.WriteString(`</g>`)
}

func drawGate(b *strings.Builder, s TimelineStep, x int) {
	e := html.EscapeString
	cx, cy := x+tlCol/2, tlDBTop+14+tlNodeH/2
	const r = 30
	fmt.Fprintf(b, `<g class="node gate" data-step="%d">`, s.N)
	fmt.Fprintf(b, `<title>contract gate: %s</title>`, e(s.When))
	fmt.Fprintf(b, `<path d="M%d,%d L%d,%d L%d,%d L%d,%d z" fill="#1f2937" stroke="#111827" stroke-width="1"/>`, cx, cy-r, cx+r, cy, cx, cy+r, cx-r, cy)
	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="11.5" font-weight="700" text-anchor="middle" fill="#ffffff">gate</text>`, cx, cy+4)
	b.WriteString(`</g>`)
}

// fit shortens a label to n characters.
func fit(s string, n int) string {
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

// timelineText is the timeline in words, for screen readers.
func timelineText(r *Review) string {
	var parts []string
	for _, s := range r.Timeline {
		t := s.Title
		if s.Bake != "" {
			t += " (" + s.Bake + ")"
		}
		parts = append(parts, t)
	}
	return strings.Join(parts, ", then ") + "."
}
