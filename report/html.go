package report

import (
	_ "embed"
	"fmt"
	"html"
	"html/template"
	"io"
	"strings"
	"sync"

	"github.com/phasekit/phasekit/compat/outcome"
	"github.com/phasekit/phasekit/internal/human"
	"github.com/phasekit/phasekit/phases"
)

//go:embed review.html.tmpl
var reviewHTML string

//go:embed review.css
var reviewCSS string

var htmlFuncs = template.FuncMap{
	"css":      func() template.CSS { return template.CSS(reviewCSS) },
	"svg":      TimelineSVG,
	"sql":      highlightHTML,
	"short":    phases.ShortHash,
	"join":     strings.Join,
	"lockRank": lockRank,
	"rows": func(n int64) string {
		if n < 0 {
			return "unknown"
		}
		return humanRows(n)
	},
	"size": func(n int64) string {
		if n < 0 {
			return "unknown"
		}
		return human.Bytes(n)
	},
	"rate":   humanRate,
	"dur":    humanDuration,
	"bake":   fmtBake,
	"minus":  func(a, b int) int { return a - b },
	"blocks": blockPills,
	// appBlocks leaves out vacuum: the table of phases shows what the app
	// and schema changes meet.
	"appBlocks": func(b Blocks) template.HTML {
		b.Vacuum = false
		return blockPills(b)
	},
	"kinds": func(r *Review) string {
		var ks []string
		for _, p := range r.Phases {
			ks = append(ks, string(p.Kind))
		}
		return strings.Join(ks, " → ")
	},
	"backfillSummary": func(r *Review) string {
		for _, p := range r.Phases {
			for _, b := range p.Backfills {
				return fmt.Sprintf("backfill %s: %s", b.Step.Table, b.Duration)
			}
		}
		return "no backfill"
	},
	"deploys": func(r *Review) int { return countKind(r.Timeline, phases.StepDeploy) },
	"riskCount": func(r *Review, level string) int {
		n := 0
		for _, k := range r.Risks {
			if k.Level == level {
				n++
			}
		}
		return n
	},
	"phaseName": func(r *Review, n int) string {
		if n <= 0 || n > len(r.Phases) {
			return "whole plan"
		}
		return fmt.Sprintf("%d. %s", n, r.Phases[n-1].Kind)
	},
	"where": func(s TimelineStep) string {
		if s.Wave != "" {
			return s.Stage + " / " + s.Wave
		}
		return s.Stage
	},
	"key": func(t TableInfo) string {
		switch {
		case t.View:
			return "–"
		case len(t.PrimaryKey) > 0:
			return "primary key (" + strings.Join(t.PrimaryKey, ", ") + ")"
		case len(t.UniqueKey) > 0:
			return "unique (" + strings.Join(t.UniqueKey, ", ") + "), no primary key"
		case t.Known:
			return "none"
		}
		return "–"
	},
	"rollback":    func(stmts []string) string { return strings.Join(stmts, ";\n") + ";" },
	"md":          inlineCode,
	"cellCount":   countCells,
	"checkLine":   CheckLine,
	"copySummary": copySummary,
	"hasShadow": func(r *outcome.Result) bool {
		for _, b := range r.Phased.Boundaries {
			if len(b.Shadow) > 0 {
				return true
			}
		}
		return false
	},
	"hasZeta": func(r *outcome.Result) bool {
		for _, b := range r.Phased.Boundaries {
			if len(b.Zeta) > 0 {
				return true
			}
		}
		return false
	},
	"cells": func(b outcome.Boundary, version string) []outcome.Cell {
		var out []outcome.Cell
		for _, c := range b.Cells {
			if c.Version == version {
				out = append(out, c)
			}
		}
		return out
	},
	"statusText": statusText,
	"work": func(p PhaseReview) string {
		var parts []string
		if n := len(p.Statements); n > 0 {
			parts = append(parts, plural(n, "statement"))
		}
		if n := len(p.Backfills); n > 0 {
			parts = append(parts, plural(n, "backfill"))
		}
		return strings.Join(parts, " and ") + " in " + plural(p.Transactions, "migration file")
	},
}

// htmlTemplate is parsed on first use: parsed at init, it cost every
// phasekit command (a one-file lint too) about a millisecond.
var htmlTemplate = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("review").Funcs(htmlFuncs).Parse(reviewHTML))
})

// WriteHTML writes the review as one self-contained HTML page: inline CSS
// and SVG, no script, no font or image to fetch, print styles.
func (r *Review) WriteHTML(w io.Writer) error {
	return htmlTemplate().Execute(w, r)
}

// VerifyOK reports a verify result that passed, for this plan.
func (r *Review) VerifyOK() bool {
	return r.Verify != nil && r.Verify.Passed && !r.VerifyForOtherPlan()
}

// VerifyForOtherPlan reports a verify result recorded for another plan.
func (r *Review) VerifyForOtherPlan() bool {
	return r.Verify != nil && r.Verify.Plan != "" && r.Verify.Plan != r.Plan.Hash
}

// VersionLabel names a plan version with its pipeline label: "N (v41)".
func (r *Review) VersionLabel(v string) string {
	b := builder{r: r}
	return b.label([]string{v})[0]
}

// ShortLabels names the versions that must work before or after a phase
// as briefly as possible: the pipeline's labels ("v41, v42") when bound.
func (r *Review) ShortLabels(k phases.Kind, when string) string {
	ph := r.Plan.Phase(k)
	if ph == nil {
		return ""
	}
	vs := ph.AppsAfter
	if when == "before" {
		vs = ph.AppsBefore
	}
	var out []string
	for _, v := range vs {
		switch {
		case r.Binding != nil && v == phases.Old && r.Binding.Old != "":
			v = r.Binding.Old
		case r.Binding != nil && v == phases.New && r.Binding.New != "":
			v = r.Binding.New
		}
		out = append(out, v)
	}
	return strings.Join(out, ", ")
}

// Labels is VersionLabel over a list, joined.
func (r *Review) Labels(vs []string) string {
	b := builder{r: r}
	return strings.Join(b.label(vs), ", ")
}

func statusText(s outcome.Status) string {
	switch s {
	case outcome.StatusPass:
		return "✓ pass"
	case outcome.StatusExtraPass:
		return "✓ pass · not required"
	case outcome.StatusFail:
		return "✗ FAIL"
	case outcome.StatusExpectedBreak:
		return "breaks · expected"
	case outcome.StatusBreaks:
		return "✗ breaks"
	}
	return string(s)
}

// copySummary describes the verify run's copy of the data, without its
// timing.
func copySummary(r *outcome.Result) string {
	c := r.Copy
	if c == nil {
		return ""
	}
	s := fmt.Sprintf("copied %d tables, %s rows from %s", c.Tables, humanRows(c.Rows), c.Source)
	var masked []string
	for _, m := range c.Masked {
		masked = append(masked, fmt.Sprintf("%s.%s (%s)", m.Mask.Table, m.Mask.Column, m.Mask.Strategy))
	}
	if len(masked) > 0 {
		s += "; masked " + strings.Join(masked, ", ")
	}
	return s
}

// inlineCode renders `code` spans of a sentence as highlighted SQL.
func inlineCode(s string) template.HTML {
	var b strings.Builder
	for i, part := range strings.Split(s, "`") {
		if i%2 == 1 {
			b.WriteString(`<code class="sql">` + string(highlightHTML(part)) + `</code>`)
			continue
		}
		b.WriteString(html.EscapeString(part))
	}
	return template.HTML(b.String())
}

// plural writes "1 statement", "3 statements".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// blockTitles explain each pill.
var blockTitles = map[string]string{
	"reads":  "SELECT waits (ACCESS SHARE conflicts)",
	"writes": "INSERT, UPDATE and DELETE wait (ROW EXCLUSIVE conflicts)",
	"vacuum": "VACUUM, ANALYZE and CREATE INDEX CONCURRENTLY wait (SHARE UPDATE EXCLUSIVE conflicts)",
	"DDL":    "ALTER TABLE, DROP and other DDL wait (ACCESS EXCLUSIVE conflicts)",
}

func blockPills(b Blocks) template.HTML {
	l := b.List()
	if len(l) == 0 {
		return "nothing"
	}
	var s strings.Builder
	for _, x := range l {
		fmt.Fprintf(&s, `<span class="b b-%s" title="%s">%s</span>`, x, blockTitles[x], x)
	}
	return template.HTML(s.String())
}
