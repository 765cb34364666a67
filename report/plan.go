// Package report renders plans for people: plain text for a terminal and
// Markdown for a pull request or the PLAN.md a DBA reviews.
package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/pipeline"
)

// Markdown writes the plan as the review document (PLAN.md).
func Markdown(w io.Writer, p *phases.Plan) {
	fmt.Fprintf(w, "# phasekit plan `%s`\n\n", phases.ShortHash(p.Hash))
	if line := CheckLine(p); line != "" {
		fmt.Fprintf(w, "**%s**\n\n", line)
		if p.Check.Checked && !p.Check.OK() || len(p.Check.Limits) > 0 || len(p.Check.Unstable) > 0 {
			fmt.Fprintln(w, "```")
			CheckDetails(w, p)
			fmt.Fprintln(w, "```")
			fmt.Fprintln(w)
		}
	}
	fmt.Fprintf(w, "Sources: %s  \nTables: %s\n\n", strings.Join(p.Sources, ", "), strings.Join(p.Tables, ", "))
	fmt.Fprintln(w, "## Changes")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| # | where | kind | statement |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for i, c := range p.Changes {
		fmt.Fprintf(w, "| %d | `%s` | %s | `%s` |\n", i+1, c.Pos, c.Kind, cell(c.SQL))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "## Timeline")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| step | what | apps that must work after |")
	fmt.Fprintln(w, "|---|---|---|")
	for _, ph := range p.Phases {
		if ph.DeployBefore != "" {
			fmt.Fprintf(w, "| deploy | %s | |\n", cell(ph.DeployBefore))
		}
		fmt.Fprintf(w, "| **%s** | %d statement(s)%s | %s |\n", ph.Kind, len(ph.Statements), backfillNote(ph), strings.Join(ph.AppsAfter, ", "))
		if ph.DeployAfter != "" {
			fmt.Fprintf(w, "| deploy | %s | |\n", cell(ph.DeployAfter))
		}
	}
	fmt.Fprintln(w)
	for i, ph := range p.Phases {
		fmt.Fprintf(w, "## Phase %d: %s\n\n", i+1, ph.Kind)
		fmt.Fprintf(w, "- Apps that must work before: **%s**; after: **%s**\n", strings.Join(ph.AppsBefore, ", "), strings.Join(ph.AppsAfter, ", "))
		if ph.DeployBefore != "" {
			fmt.Fprintf(w, "- Before this phase: %s\n", ph.DeployBefore)
		}
		if ph.DeployAfter != "" {
			fmt.Fprintf(w, "- After this phase: %s\n", ph.DeployAfter)
		}
		if !ph.Reversible {
			fmt.Fprintln(w, "- **Rollback does not restore data** removed by this phase.")
		}
		if len(ph.Files) > 0 {
			fmt.Fprintf(w, "- Files: %s\n", "`"+strings.Join(ph.Files, "`, `")+"`")
		}
		fmt.Fprintln(w)
		for j, st := range ph.Statements {
			tx := "in a transaction"
			if !st.Transactional {
				tx = "outside a transaction"
			}
			fmt.Fprintf(w, "%d. %s. Lock: **%s**, %s.\n\n", j+1, orDash(st.Why), st.Lock, tx)
			fmt.Fprintf(w, "   ```sql\n%s\n   ```\n\n", indentBlock(st.SQL+";", "   "))
			if len(st.Rollback) > 0 {
				fmt.Fprintf(w, "   <details><summary>rollback</summary>\n\n   ```sql\n%s\n   ```\n   </details>\n\n", indentBlock(strings.Join(st.Rollback, ";\n")+";", "   "))
			}
		}
		for _, b := range ph.Backfills {
			fmt.Fprintf(w, "- Backfill `%s` (about %d rows) in keyset batches on (%s):\n\n", b.Table, max(b.RowEstimate, 0), strings.Join(b.Key, ", "))
			fmt.Fprintf(w, "  ```sql\n%s\n  ```\n\n", indentBlock(b.SQL+";", "  "))
			fmt.Fprintf(w, "  Verified by `%s` = 0.\n\n", b.Verify)
		}
	}
	if len(p.Findings) > 0 {
		fmt.Fprintln(w, "## Findings")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| rule | severity | where | message |")
		fmt.Fprintln(w, "|---|---|---|---|")
		for _, f := range p.Findings {
			msg := f.Message
			if f.Allowed != "" {
				msg += " (allowed: " + f.Allowed + ")"
			}
			fmt.Fprintf(w, "| %s | %s | `%s` | %s |\n", f.Rule, f.Severity, f.Pos, cell(msg))
		}
		fmt.Fprintln(w)
	}
	if p.Binding != nil {
		_ = pipeline.WriteTimeline(w, p.Binding, "markdown")
	}
}

// Text writes the plan for a terminal.
func Text(w io.Writer, p *phases.Plan) {
	if line := CheckLine(p); line != "" {
		fmt.Fprintln(w, line)
		CheckDetails(w, p)
	}
	fmt.Fprintf(w, "plan %s: %d change(s) on %s\n", phases.ShortHash(p.Hash), len(p.Changes), strings.Join(p.Tables, ", "))
	for i, ph := range p.Phases {
		if ph.DeployBefore != "" {
			fmt.Fprintf(w, "\n  >> deploy: %s\n", ph.DeployBefore)
		}
		fmt.Fprintf(w, "\n[%d] %s  (apps before: %s; after: %s)\n", i+1, ph.Kind, strings.Join(ph.AppsBefore, ", "), strings.Join(ph.AppsAfter, ", "))
		for _, st := range ph.Statements {
			tx := ""
			if !st.Transactional {
				tx = ", no transaction"
			}
			fmt.Fprintf(w, "    -- %s [%s%s]\n    %s;\n", orDash(st.Why), st.Lock, tx, strings.ReplaceAll(st.SQL, "\n", "\n    "))
		}
		for _, b := range ph.Backfills {
			fmt.Fprintf(w, "    -- backfill %s in keyset batches on (%s), ~%d rows\n    %s;\n", b.Table, strings.Join(b.Key, ", "), max(b.RowEstimate, 0), strings.ReplaceAll(b.SQL, "\n", "\n    "))
		}
		if ph.DeployAfter != "" {
			fmt.Fprintf(w, "\n  >> deploy: %s\n", ph.DeployAfter)
		}
	}
	for _, f := range p.Findings {
		fmt.Fprintf(w, "\n%s: %s [%s] %s", f.Pos, f.Severity, f.Rule, f.Message)
	}
	fmt.Fprintln(w)
	if p.Binding != nil {
		fmt.Fprintln(w)
		_ = pipeline.WriteTimeline(w, p.Binding, "text")
	}
}

func backfillNote(ph phases.Phase) string {
	if len(ph.Backfills) == 0 {
		return ""
	}
	return fmt.Sprintf(", %d backfill(s)", len(ph.Backfills))
}

func cell(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", "\\|")
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}

func indentBlock(s, pre string) string {
	return pre + strings.ReplaceAll(s, "\n", "\n"+pre)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
