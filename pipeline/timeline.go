package pipeline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/phasekit/phasekit/phases"
)

// WriteTimeline writes a binding's timeline as "text" (a terminal table,
// with the long "when" column last), "markdown" (a table for a pull request
// or PLAN.md) or "json".
func WriteTimeline(w io.Writer, b *phases.Binding, format string) error {
	var buf bytes.Buffer
	switch format {
	case "text":
		fmt.Fprintf(&buf, "deploy timeline on %s: %s\n\n", b.Pipeline, versionsLine(b, false))
		tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "#\tstep\tstage/wave\tbake\tversions\twhen")
		for i, s := range b.Steps {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", i+1, s.Title, orDash(where(s)), orDash(s.Bake), strings.Join(s.Versions, ", "), s.When)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	case "markdown":
		fmt.Fprintf(&buf, "## Deploy timeline\n\nPipeline `%s`, %s.\n\n", b.Pipeline, versionsLine(b, true))
		fmt.Fprintln(&buf, "| # | step | stage/wave | when | bake | versions |")
		fmt.Fprintln(&buf, "|---|---|---|---|---|---|")
		for i, s := range b.Steps {
			title := cell(s.Title)
			if s.Kind == phases.StepGate || s.Kind == phases.StepPhase {
				title = "**" + title + "**"
			}
			fmt.Fprintf(&buf, "| %d | %s | %s | %s | %s | %s |\n", i+1, title, cell(where(s)), cell(s.When), s.Bake, cell(strings.Join(s.Versions, ", ")))
		}
	case "json":
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		if err := enc.Encode(b); err != nil {
			return err
		}
	default:
		return fmt.Errorf("timeline format %q: want text, markdown or json", format)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// versionsLine says which app runs and what N and N+1 are called.
func versionsLine(b *phases.Binding, md bool) string {
	code := func(s string) string {
		if md {
			return "`" + s + "`"
		}
		return s
	}
	s := "app " + code(b.App)
	if b.Old != phases.Old || b.New != phases.New {
		s += fmt.Sprintf(", N = %s, N+1 = %s", code(b.Old), code(b.New))
	}
	return s
}

// where is a step's place: "alpha", "prod/one-box", or "" for a phase or
// the gate.
func where(s phases.BindingStep) string {
	if s.Wave != "" {
		return s.Stage + "/" + s.Wave
	}
	return s.Stage
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func cell(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	return strings.ReplaceAll(s, "|", "\\|")
}
