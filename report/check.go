package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/phasekit/phasekit/phases"
)

// CheckLine says in one line whether and how the plan was checked against
// its file on PostgreSQL (docs/plan-check.md); "" when the plan carries no
// check record.
func CheckLine(p *phases.Plan) string {
	c := p.Check
	switch {
	case c == nil:
		return ""
	case !c.Checked:
		return "NOT CHECKED against the file on PostgreSQL: " + c.Reason
	case c.OK():
		rb := ""
		if n := len(c.Rollbacks); n > 0 {
			rb = fmt.Sprintf("; rollback from each of its %d phase boundaries returns the start", n)
		}
		return fmt.Sprintf("checked on %s in %.1f s: the plan's end state equals the file's (schema and rows)%s", c.Server, float64(c.Millis)/1000, rb)
	case c.Accepted:
		return fmt.Sprintf("CHECK FAILED on %s, differences accepted (--accept-differences): %s", c.Server, checkProblem(c))
	}
	return fmt.Sprintf("CHECK FAILED on %s: %s", c.Server, checkProblem(c))
}

func checkProblem(c *phases.CheckResult) string {
	var parts []string
	if c.Error != "" {
		parts = append(parts, "PostgreSQL refused a step of the plan: "+c.Error)
	}
	if n := len(c.Differences); n > 0 {
		parts = append(parts, fmt.Sprintf("%d object(s) differ from the file's end state", n))
	}
	for _, rb := range c.Rollbacks {
		switch {
		case rb.Error != "" && !rb.Irreversible:
			parts = append(parts, fmt.Sprintf("rollback after %s failed: %s", rb.After, rb.Error))
		case !rb.Equal && !rb.Irreversible:
			parts = append(parts, fmt.Sprintf("rollback after %s leaves %d object(s) unlike the start", rb.After, len(rb.Differences)))
		}
	}
	return strings.Join(parts, "; ")
}

// CheckDetails writes every difference the check found, and its stated
// limits, for a terminal or a Markdown document.
func CheckDetails(w io.Writer, p *phases.Plan) {
	c := p.Check
	if c == nil || !c.Checked {
		return
	}
	diffs := func(title string, ds []phases.Difference) {
		if len(ds) == 0 {
			return
		}
		fmt.Fprintf(w, "%s:\n", title)
		for _, d := range ds {
			fmt.Fprintf(w, "  %s\n    file: %s\n    plan: %s\n", d.Object, flatten(d.Want, 300), flatten(d.Got, 300))
		}
	}
	diffs("differences between the plan's end state and the file's", c.Differences)
	for _, rb := range c.Rollbacks {
		var ds []phases.Difference
		for _, d := range rb.Differences {
			ds = append(ds, phases.Difference{Object: d.Object, Want: d.Want, Got: d.Got})
		}
		title := fmt.Sprintf("after a rollback from %s (file: the start; plan: after the rollback)", rb.After)
		if rb.Irreversible {
			title = fmt.Sprintf("left after a rollback from %s, which the plan says cannot undo everything (file: the start; plan: after the rollback)", rb.After)
		}
		diffs(title, ds)
	}
	for _, l := range c.Limits {
		fmt.Fprintf(w, "limit: %s\n", l)
	}
	for _, u := range c.Unstable {
		fmt.Fprintf(w, "note: %s\n", u)
	}
}

func flatten(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-3]) + "..."
	}
	return s
}
