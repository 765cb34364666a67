package compat

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/phasekit/phasekit/compat/outcome"
	"github.com/phasekit/phasekit/phases"
)

// versions are the matrix's columns, in order.
var versions = []string{Old, New}

// WriteText writes the matrix as aligned text, for a terminal or a CI log.
func WriteText(w io.Writer, r *Result) error {
	fmt.Fprintf(w, "plan %s (%s)\nsandbox: %s\n", phases.ShortHash(r.Plan), strings.Join(r.Sources, ", "), r.Sandbox)
	if r.Copy != nil {
		fmt.Fprintf(w, "copy: %s\n", r.Copy)
	}
	for _, m := range matrices(r) {
		fmt.Fprintf(w, "\n%s\n", m.Name)
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "  boundary\tversion\tapp\tresult\n")
		for _, b := range m.Boundaries {
			if b.ApplyError != "" {
				fmt.Fprintf(tw, "  %s\t\t\tnot applied: %s\n", b.Name, oneLine(b.ApplyError))
				continue
			}
			name := b.Name
			for _, c := range b.Cells {
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s%s\n", name, c.Version, c.App, c.Status, errSuffix(oneLine(c.Error)))
				name = ""
			}
			for _, s := range b.Shadow {
				fmt.Fprintf(tw, "  %s\t\tshadow %s\t%s: %s\n", name, s.Name, passWord(s.Passed), s.Summary)
				name = ""
			}
			for _, z := range b.Zeta {
				fmt.Fprintf(tw, "  %s\t\tzeta %s\t%s%s\n", name, z.Name, z.Status, errSuffix(oneLine(z.Error)))
				name = ""
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if m.Error != "" {
			fmt.Fprintf(w, "  stopped: %s\n", m.Error)
		}
	}
	fmt.Fprintln(w)
	if r.Passed {
		fmt.Fprintf(w, "PASS: every required cell passed (%s)\n", r.Duration.Round(time.Millisecond))
	} else {
		fmt.Fprintf(w, "FAIL: %d required check(s) failed (%s)\n", len(r.Failures), r.Duration.Round(time.Millisecond))
		for _, f := range r.Failures {
			fmt.Fprintf(w, "  - %s\n", oneLine(f))
		}
	}
	return nil
}

func matrices(r *Result) []Matrix {
	out := []Matrix{r.Phased}
	if r.Naive != nil {
		out = append(out, *r.Naive)
	}
	return out
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 160 {
		s = s[:157] + "..."
	}
	return s
}

// markdownStatus renders a status for a GitHub comment.
func markdownStatus(s Status) string {
	switch s {
	case StatusPass:
		return "✅ pass"
	case StatusExtraPass:
		return "✅ pass (not required)"
	case StatusFail:
		return "❌ **fail**"
	case StatusExpectedBreak:
		return "➖ expected to break"
	case StatusBreaks:
		return "💥 breaks"
	}
	return string(s)
}

// WriteMarkdown writes the result for a pull-request comment: one table per
// matrix, errors inline, logs folded away.
func WriteMarkdown(w io.Writer, r *Result) error {
	verdict := "✅ **PASS**: every required cell passed"
	if !r.Passed {
		verdict = fmt.Sprintf("❌ **FAIL**: %d required check(s) failed", len(r.Failures))
	}
	fmt.Fprintf(w, "### phasekit verify: %s\n\n%s\n\n", strings.Join(r.Sources, ", "), verdict)
	fmt.Fprintf(w, "Plan `%s` on %s.", phases.ShortHash(r.Plan), mdEscape(r.Sandbox))
	if r.Copy != nil {
		fmt.Fprintf(w, " Copy: %s.", mdEscape(r.Copy.String()))
	}
	fmt.Fprintln(w)
	for _, m := range matrices(r) {
		fmt.Fprintf(w, "\n#### %s\n\n| Boundary | N | N+1 |\n|---|---|---|\n", titleCase(m.Name))
		for _, b := range m.Boundaries {
			if b.ApplyError != "" {
				fmt.Fprintf(w, "| %s | not applied: `%s` | |\n", b.Name, mdCode(b.ApplyError))
				continue
			}
			fmt.Fprintf(w, "| %s | %s | %s |\n", b.Name, mdCell(b.Cells, Old), mdCell(b.Cells, New))
		}
		if m.Error != "" {
			fmt.Fprintf(w, "\nStopped: `%s`\n", mdCode(m.Error))
		}
		if m.SQL != "" {
			fmt.Fprintf(w, "\n<details><summary>Naive SQL</summary>\n\n```sql\n%s```\n\n</details>\n", m.SQL)
		}
	}
	var shadow, zeta []string
	for _, b := range r.Phased.Boundaries {
		for _, s := range b.Shadow {
			line := fmt.Sprintf("| %s | %s | %s | %s |", b.Name, mdEscape(s.Name), mdBool(s.Passed), mdEscape(s.Summary))
			shadow = append(shadow, line)
		}
		for _, z := range b.Zeta {
			zeta = append(zeta, fmt.Sprintf("| %s | %s | %s |", b.Name, z.Name, mdStatusErr(z.Status, z.Error)))
		}
	}
	if len(shadow) > 0 {
		fmt.Fprintf(w, "\n#### Shadow reads\n\n| Boundary | Pair | Result | Detail |\n|---|---|---|---|\n%s\n", strings.Join(shadow, "\n"))
	}
	if len(zeta) > 0 {
		fmt.Fprintf(w, "\n#### Zeta check\n\n| Boundary | Pairing | Result |\n|---|---|---|\n%s\n", strings.Join(zeta, "\n"))
	}
	writeMarkdownLogs(w, r)
	return nil
}

// writeMarkdownLogs folds the output of every failed required cell and both
// logs of every zeta pairing that did not pass.
func writeMarkdownLogs(w io.Writer, r *Result) {
	for _, b := range r.Phased.Boundaries {
		for _, c := range b.Cells {
			if c.Status == StatusFail && c.Output != "" {
				fmt.Fprintf(w, "\n<details><summary>%s: %s %s output</summary>\n\n```\n%s\n```\n\n</details>\n", b.Name, c.Version, mdEscape(c.App), strings.TrimSpace(c.Output))
			}
		}
		for _, z := range b.Zeta {
			if z.Status == StatusPass || z.Status == StatusExtraPass {
				continue
			}
			fmt.Fprintf(w, "\n<details><summary>%s: zeta %s logs</summary>\n\nBackend:\n```\n%s\n```\nFrontend:\n```\n%s\n```\n\n</details>\n",
				b.Name, z.Name, strings.TrimSpace(z.BackendLog), strings.TrimSpace(z.FrontendLog))
		}
	}
}

func titleCase(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func mdCell(cells []Cell, version string) string {
	var parts []string
	for _, c := range cells {
		if c.Version == version {
			parts = append(parts, mdEscape(c.App)+": "+mdStatusErr(c.Status, c.Error))
		}
	}
	if len(parts) == 0 {
		return "–"
	}
	return strings.Join(parts, "<br>")
}

func mdStatusErr(s Status, err string) string {
	out := markdownStatus(s)
	if err != "" && s != StatusPass && s != StatusExtraPass {
		out += ": `" + mdCode(err) + "`"
	}
	return out
}

func mdBool(ok bool) string {
	if ok {
		return "✅ pass"
	}
	return "❌ **fail**"
}

// mdEscape keeps text from breaking a table row.
func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "<", "&lt;", ">", "&gt;").Replace(s)
}

// mdCode prepares text for an inline code span inside a table.
func mdCode(s string) string {
	return strings.NewReplacer("|", `\|`, "`", "'").Replace(oneLine(s))
}

// JUnit XML, as read by Jenkins, GitLab, GitHub Actions reporters.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     float64      `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Time     float64     `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      float64       `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes one test suite per matrix and one test case per cell,
// shadow check and zeta pairing. A failed required cell is a failure; a
// cell expected to break, and what the naive migration breaks, are skipped
// with the reason, so CI shows them without failing.
func WriteJUnit(w io.Writer, r *Result) error {
	all := junitSuites{Name: "phasekit verify " + strings.Join(r.Sources, ", "), Time: r.Duration.Seconds()}
	for _, m := range matrices(r) {
		s := junitSuite{Name: m.Name}
		class := "phasekit." + strings.ReplaceAll(m.Name, " ", "_")
		for _, b := range m.Boundaries {
			if b.ApplyError != "" {
				s.Cases = append(s.Cases, junitCase{Name: b.Name + " / apply", Classname: class, Time: b.ApplyTime.Seconds(),
					Failure: &junitMessage{Message: oneLine(b.ApplyError), Text: b.ApplyError}})
				continue
			}
			for _, c := range b.Cells {
				jc := junitCase{Name: fmt.Sprintf("%s / %s / %s", b.Name, c.Version, c.App), Classname: class,
					Time: c.Duration.Seconds(), SystemOut: c.Output}
				setJUnitStatus(&jc, c.Status, c.Error)
				s.Cases = append(s.Cases, jc)
			}
			for _, sc := range b.Shadow {
				jc := junitCase{Name: fmt.Sprintf("%s / shadow / %s", b.Name, sc.Name), Classname: class,
					SystemOut: strings.Join(sc.Diffs, "\n")}
				if !sc.Passed {
					jc.Failure = &junitMessage{Message: sc.Summary, Text: strings.Join(sc.Diffs, "\n")}
				}
				s.Cases = append(s.Cases, jc)
			}
			for _, z := range b.Zeta {
				jc := junitCase{Name: fmt.Sprintf("%s / zeta / %s", b.Name, z.Name), Classname: class, Time: z.Duration.Seconds(),
					SystemOut: "backend:\n" + z.BackendLog + "\nfrontend:\n" + z.FrontendLog}
				setJUnitStatus(&jc, z.Status, z.Error)
				s.Cases = append(s.Cases, jc)
			}
		}
		for _, c := range s.Cases {
			s.Tests++
			s.Time += c.Time
			if c.Failure != nil {
				s.Failures++
			}
			if c.Skipped != nil {
				s.Skipped++
			}
		}
		all.Tests += s.Tests
		all.Failures += s.Failures
		all.Skipped += s.Skipped
		all.Suites = append(all.Suites, s)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(all); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func setJUnitStatus(jc *junitCase, s Status, errText string) {
	switch s {
	case StatusFail:
		jc.Failure = &junitMessage{Message: oneLine(errText), Text: errText}
	case StatusExpectedBreak:
		jc.Skipped = &junitMessage{Message: "expected to break (not required here): " + oneLine(errText)}
	case StatusBreaks:
		jc.Skipped = &junitMessage{Message: "the naive migration breaks this version: " + oneLine(errText)}
	}
}

// WriteJSON writes the result as indented JSON (outcome.ReadJSON reads it).
func WriteJSON(w io.Writer, r *Result) error { return outcome.WriteJSON(w, r) }
