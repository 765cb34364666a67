package lint

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/phases"
)

// item is a static or data finding as the writers show it.
type item struct {
	pos      change.Pos
	rule     string
	severity phases.Severity
	message  string
	recipe   string
	sampleOf string
	sample   []string
	allowed  string
}

// items splits the result into what to act on, what was silenced and the
// data checks that could not run, each in file order.
func (r *Result) items() (active, silenced, skipped []item) {
	for _, f := range r.Findings {
		it := item{pos: f.Pos, rule: f.Rule, severity: f.Severity, message: f.Message, recipe: f.Recipe, allowed: f.Allowed}
		if it.allowed != "" {
			silenced = append(silenced, it)
		} else {
			active = append(active, it)
		}
	}
	for _, f := range r.Silenced {
		silenced = append(silenced, item{pos: f.Pos, rule: f.Rule, severity: f.Severity, message: f.Message, recipe: f.Recipe, allowed: f.Allowed})
	}
	for _, d := range r.Data {
		it := item{pos: d.Pos, rule: d.Rule, severity: phases.Error, message: d.Message, recipe: DataRules[d.Rule].Recipe,
			sampleOf: d.SampleOf, sample: d.Sample, allowed: d.Allowed}
		switch {
		case d.Skipped != "":
			it.severity = phases.Info
			skipped = append(skipped, it)
		case d.Count == 0:
		case d.Allowed != "":
			silenced = append(silenced, it)
		default:
			active = append(active, it)
		}
	}
	for _, list := range [][]item{active, silenced, skipped} {
		sort.SliceStable(list, func(i, j int) bool { return posLess(list[i].pos, list[j].pos) })
	}
	return active, silenced, skipped
}

// WriteText writes one line per finding, "file:line:col: severity [rule-id]
// message", with the sample and the safe recipe indented below it; then the
// data checks that could not run, the silenced findings with their reasons,
// and a summary line.
func WriteText(w io.Writer, r *Result) {
	// Buffered: written straight to stdout, each line was a system call of
	// its own (some 12,000 for the shared lint corpus).
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	w = bw
	active, silenced, skipped := r.items()
	counts := map[phases.Severity]int{}
	for _, it := range active {
		counts[it.severity]++
		fmt.Fprintf(w, "%s: %s [%s] %s\n", it.pos, it.severity, it.rule, it.message)
		writeSample(w, it)
		if it.recipe != "" {
			fmt.Fprintf(w, "    recipe: %s\n", it.recipe)
		}
	}
	if len(skipped) > 0 {
		fmt.Fprintln(w, "\ndata checks not run:")
		for _, it := range skipped {
			fmt.Fprintf(w, "%s: [%s] %s\n", it.pos, it.rule, it.message)
		}
	}
	if len(silenced) > 0 {
		fmt.Fprintln(w, "\nsilenced:")
		for _, it := range silenced {
			fmt.Fprintf(w, "%s: %s [%s] %s\n", it.pos, it.severity, it.rule, it.message)
			writeSample(w, it)
			fmt.Fprintf(w, "    reason: %s\n", it.allowed)
		}
	}
	summary := fmt.Sprintf("%s, %s, %d info, %d silenced",
		countOf(counts[phases.Error], "error"), countOf(counts[phases.Warning], "warning"), counts[phases.Info], len(silenced))
	if len(skipped) > 0 {
		summary += ", " + countOf(len(skipped), "data check") + " not run"
	}
	if len(active) > 0 || len(silenced) > 0 || len(skipped) > 0 {
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, summary)
}

func writeSample(w io.Writer, it item) {
	if len(it.sample) > 0 {
		fmt.Fprintf(w, "    sample %s: %s\n", it.sampleOf, strings.Join(it.sample, ", "))
	}
}

func countOf(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// WriteJSON writes the result as one indented JSON object with the fields
// findings, silenced, data and has_errors; empty lists are [], never null.
func WriteJSON(w io.Writer, r *Result) error {
	out := struct {
		Findings  []phases.Finding `json:"findings"`
		Silenced  []phases.Finding `json:"silenced"`
		Data      []DataFinding    `json:"data"`
		HasErrors bool             `json:"has_errors"`
	}{nonNil(r.Findings), nonNil(r.Silenced), nonNil(r.Data), r.HasErrors()}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("write lint result as JSON: %w", err)
	}
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
