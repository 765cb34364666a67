package gate

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// WriteText writes the gate's result for people: the verdict, then each
// check with its evidence.
func WriteText(w io.Writer, r *Result) {
	short := r.Plan
	if len(short) > 12 {
		short = short[:12]
	}
	fmt.Fprintf(w, "%s gate of plan %s (%s %s -> %s, pipeline %s): %s\n", r.Gate, short, r.App, r.Old, r.New, r.Pipeline, strings.ToUpper(string(r.Verdict)))
	fmt.Fprintf(w, "checked at %s in %s\n", r.Now.UTC().Format(time.RFC3339), r.Elapsed)
	for _, c := range r.Checks {
		fmt.Fprintf(w, "  [%s] %s: %s\n", c.Status, c.Name, c.Summary)
		for _, e := range c.Evidence {
			fmt.Fprintf(w, "      %s\n", e)
		}
	}
	switch r.Verdict {
	case NotYet:
		fmt.Fprintf(w, "not yet: %s of bake left\n", r.TimeLeft)
	case Closed:
		var failed []string
		for _, c := range r.Checks {
			if c.Status == Fail {
				failed = append(failed, c.Name)
			}
		}
		fmt.Fprintf(w, "closed by: %s\n", strings.Join(failed, ", "))
	}
}
