package report

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/phasekit/phasekit/compat/outcome"
	"github.com/phasekit/phasekit/internal/human"
	"github.com/phasekit/phasekit/phases"
)

// riskMark is each risk level's mark in Markdown.
var riskMark = map[string]string{RiskHigh: "🔴 **high**", RiskWarn: "🟠 warning", RiskInfo: "ℹ️ info"}

// WriteMarkdown writes the review for a pull-request comment
// (GitHub-flavoured): the verdict and a table of phases first, risks and the
// contract gate, the compatibility matrix, the sign-off checklist, and the
// SQL of each phase folded in <details>.
func (r *Review) WriteMarkdown(w io.Writer) error {
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }

	p("## phasekit review: %s\n\n", mdText(r.Title))
	p("Plan `%s` from %s", phases.ShortHash(r.Plan.Hash), mdText(strings.Join(r.Plan.Sources, ", ")))
	if bd := r.Binding; bd != nil {
		p(" · pipeline `%s` (N = `%s`, N+1 = `%s`)", bd.Pipeline, bd.Old, bd.New)
	}
	p("  \n")
	if line := CheckLine(r.Plan); line != "" {
		p("%s  \n", mdText(line))
	}
	high, warn := r.riskCounts()
	verify := "⚪ verify not run"
	switch {
	case r.VerifyForOtherPlan():
		verify = "⚠️ verify result is for plan `" + phases.ShortHash(r.Verify.Plan) + "`"
	case r.VerifyOK():
		verify = fmt.Sprintf("✅ verify passed (%d checks)", countCells(r.Verify))
	case r.Verify != nil:
		verify = fmt.Sprintf("❌ verify failed (%d)", len(r.Verify.Failures))
	}
	p("**%d phases** · database time %s · longest app wait %s", len(r.Phases), r.Database, r.Hold)
	if r.Binding != nil {
		p(" · %s of bake windows", fmtBake(r.Bake))
	}
	p(" · %s · %d high risk(s), %d warning(s)", verify, high, warn)
	if applied := r.Applied(); len(applied) > 0 {
		p(" · applied on the live database: %s", strings.Join(applied, ", "))
	}
	p("\n\n")

	// Phases at a glance.
	p("| # | phase | runs | apps before → after | strongest lock (blocks) | est. time | app wait |\n")
	p("|---|---|---|---|---|--:|--:|\n")
	for _, ph := range r.Phases {
		p("| %d | **%s** | %s | %s → %s | %s (%s) | %s | %s |\n", ph.N, ph.Kind, mdText(ph.Runs),
			strings.Join(ph.AppsBefore, ", "), strings.Join(ph.AppsAfter, ", "), ph.Lock, ph.Blocks, ph.Duration, ph.Hold)
	}
	p("\n")

	// The release in one line.
	var steps []string
	for _, s := range r.Timeline {
		switch s.Kind {
		case phases.StepPhase:
			steps = append(steps, "**"+string(s.Phase)+"**")
		case phases.StepDeploy:
			where := s.Stage
			if s.Wave != "" {
				where = s.Stage + "/" + s.Wave
			}
			if where == "" {
				where = "deploy N+1"
			}
			steps = append(steps, where)
		case phases.StepBake:
			steps[len(steps)-1] += " (" + s.Bake + ")"
		case phases.StepGate:
			steps = append(steps, "🚧 gate")
		}
	}
	p("**Timeline:** %s\n\n", strings.Join(steps, " → "))

	// Tables with sizes.
	p("**Tables:** ")
	var ts []string
	for _, t := range r.Tables {
		s := "`" + t.Name + "`"
		switch {
		case t.View:
			s += " (view)"
		case t.Rows >= 0 && t.Bytes >= 0:
			s += fmt.Sprintf(" %s rows, %s", humanRows(t.Rows), human.Bytes(t.Bytes))
		case t.Rows >= 0:
			s += fmt.Sprintf(" %s rows", humanRows(t.Rows))
		default:
			s += " size unknown"
		}
		ts = append(ts, s)
	}
	p("%s. Sizes: %s.\n\n", strings.Join(ts, "; "), mdText(r.Sizes))

	if len(r.Risks) > 0 {
		p("### Risks\n\n")
		for _, k := range r.Risks {
			where := ""
			if k.Phase > 0 {
				where = fmt.Sprintf(" (%s)", r.Phases[k.Phase-1].Kind)
			}
			p("- %s **%s**%s: %s\n", riskMark[k.Level], mdText(k.Title), where, mdText(k.Detail))
		}
		p("\n")
	}

	if len(r.Gate) > 0 {
		p("### Contract gate\n\n")
		for _, g := range r.Gate {
			p("- %s\n", mdKeepCode(g))
		}
		p("\n")
	}

	if v := r.Verify; v != nil {
		writeMarkdownMatrix(bw, r, v)
	}

	p("### Sign-off\n\n")
	for _, c := range r.Checklist {
		mark := ""
		switch c.State {
		case CheckOK:
			mark = "✅ "
		case CheckAttention:
			mark = "⚠️ "
		}
		p("- [ ] %s: %s%s\n", mdText(c.Text), mark, mdText(c.Evidence))
	}
	p("\n")

	for _, ph := range r.Phases {
		p("<details><summary><b>Phase %d: %s</b>: %d statement(s)", ph.N, ph.Kind, len(ph.Statements))
		if len(ph.Backfills) > 0 {
			p(", %d backfill(s)", len(ph.Backfills))
		}
		p(", %s</summary>\n\n", htmlText(ph.Duration.String()))
		for _, s := range ph.Statements {
			tx := "in a transaction"
			if !s.Transactional {
				tx = "**outside a transaction**"
			} else if s.TxSize > 1 {
				tx = fmt.Sprintf("in a transaction with %d other(s)", s.TxSize-1)
			}
			lock := "no table lock"
			if lockRank(s.Lock) > 0 {
				lock = fmt.Sprintf("`%s` on `%s` (blocks %s, held %s)", s.Lock, s.Table, s.Blocks, s.Hold)
			}
			p("%d. %s: %s, %s, %s.\n\n", s.N, mdText(orDash(s.Why)), lock, tx, s.Duration)
			p("   ```sql\n%s\n   ```\n\n", indentBlock(s.SQL+";", "   "))
			if len(s.Rollback) > 0 {
				p("   Rollback:\n\n   ```sql\n%s\n   ```\n\n", indentBlock(strings.Join(s.Rollback, ";\n")+";", "   "))
			}
		}
		for _, b := range ph.Backfills {
			p("- Backfill `%s` in keyset batches on (%s): %s rows at %s, %s; each batch holds its rows' locks ≤ %s.\n\n",
				b.Step.Table, strings.Join(b.Step.Key, ", "), rowsText(b.Rows), humanRate(r.Rates.Backfill), b.Duration, humanDuration(b.BatchHold))
			p("  ```sql\n%s\n  ```\n\n", indentBlock(b.Step.SQL+";", "  "))
			p("  Verified by `%s` = 0.\n\n", b.Step.Verify)
		}
		p("</details>\n\n")
	}
	p("<sub>Estimates: backfill %s (%s). Rendered by phasekit report; the HTML report has the timeline diagram.</sub>\n", humanRate(r.Rates.Backfill), mdText(r.Rates.Backfill.Source))
	return bw.Flush()
}

func writeMarkdownMatrix(w io.Writer, r *Review, v *outcome.Result) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("### Compatibility\n\n")
	switch {
	case r.VerifyForOtherPlan():
		p("⚠️ This verify result is for plan `%s`, not this plan.\n\n", phases.ShortHash(v.Plan))
	case v.Passed:
		p("✅ phasekit verify passed on %s.\n\n", mdText(v.Sandbox))
	default:
		p("❌ phasekit verify failed on %s:\n\n", mdText(v.Sandbox))
		for _, f := range v.Failures {
			p("- %s\n", mdText(f))
		}
		p("\n")
	}
	shadow, zeta := false, false
	for _, b := range v.Phased.Boundaries {
		shadow = shadow || len(b.Shadow) > 0
		zeta = zeta || len(b.Zeta) > 0
	}
	p("| boundary | %s | %s |", r.VersionLabel(phases.Old), r.VersionLabel(phases.New))
	sep := "|---|---|---|"
	if shadow {
		p(" shadow reads |")
		sep += "---|"
	}
	if zeta {
		p(" zeta |")
		sep += "---|"
	}
	p("\n%s\n", sep)
	mdCells := func(b outcome.Boundary, version string) string {
		var parts []string
		for _, c := range b.Cells {
			if c.Version == version {
				parts = append(parts, mdStatus(c.Status)+" "+mdText(c.App))
			}
		}
		if len(parts) == 0 {
			return "–"
		}
		return strings.Join(parts, "<br>")
	}
	for _, b := range v.Phased.Boundaries {
		if b.ApplyError != "" {
			p("| %s | not applied: %s | |", b.Name, mdText(oneLine(b.ApplyError)))
		} else {
			p("| %s | %s | %s |", b.Name, mdCells(b, phases.Old), mdCells(b, phases.New))
		}
		if shadow {
			var parts []string
			for _, s := range b.Shadow {
				mark := "✅"
				if !s.Passed {
					mark = "❌"
				}
				parts = append(parts, mark+" "+mdText(s.Summary))
			}
			p(" %s |", orDash(strings.Join(parts, "<br>")))
		}
		if zeta {
			var parts []string
			for _, z := range b.Zeta {
				parts = append(parts, mdStatus(z.Status))
			}
			p(" %s |", orDash(strings.Join(parts, "<br>")))
		}
		p("\n")
	}
	if n := v.Naive; n != nil {
		var broken []string
		for _, b := range n.Boundaries {
			for _, c := range b.Cells {
				if c.Status == outcome.StatusBreaks {
					broken = append(broken, fmt.Sprintf("%s %s", r.VersionLabel(c.Version), mdText(c.App)))
				}
			}
		}
		if len(broken) > 0 {
			p("\nThe naive migration would break: %s.\n", strings.Join(broken, ", "))
		}
	}
	p("\n")
}

func mdStatus(s outcome.Status) string {
	switch s {
	case outcome.StatusPass:
		return "✅"
	case outcome.StatusExtraPass:
		return "✅ (not required)"
	case outcome.StatusFail:
		return "❌ **fail**"
	case outcome.StatusExpectedBreak:
		return "➖ breaks, as expected"
	case outcome.StatusBreaks:
		return "💥 breaks"
	}
	return string(s)
}

func rowsText(n int64) string {
	if n < 0 {
		return "unknown"
	}
	return humanRows(n)
}

// mdText keeps text from breaking a table row or turning into HTML.
func mdText(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "<", "&lt;", ">", "&gt;").Replace(s)
}

// mdKeepCode is mdText outside `code` spans, which keep their text.
func mdKeepCode(s string) string {
	parts := strings.Split(s, "`")
	for i := range parts {
		if i%2 == 0 {
			parts[i] = mdText(parts[i])
		}
	}
	return strings.Join(parts, "`")
}

// htmlText escapes text inside an HTML element of the Markdown.
func htmlText(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
