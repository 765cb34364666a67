package lint_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/lint"
	"github.com/phasekit/phasekit/phases"
)

// sampleResult lints three files and adds data findings of each kind the
// writers treat apart: one to act on, one silenced, one check not run.
func sampleResult(t *testing.T) *lint.Result {
	t.Helper()
	r, err := lint.Run([]string{input("unknown-statement.sql"), input("lock-timeout.sql"), input("allow-scope.sql")}, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	at := func(file string, line int) change.Pos { return change.Pos{File: input(file), Line: line, Col: 1} }
	r.Data = []lint.DataFinding{
		{Rule: lint.RuleDataNulls, Pos: at("set-not-null.sql", 3), Table: "public.customer",
			Message: "49 rows of public.customer have NULL in company: SET NOT NULL fails", Count: 49,
			SampleOf: "customer_id", Sample: []string{"1", "3", "4", "5", "6"}},
		{Rule: lint.RuleDataCheckViolations, Pos: at("check-not-valid.sql", 3), Table: "public.customer",
			Message: "50 rows of public.customer violate CHECK (customer_id < 10) of customer_id_small: adding or validating it fails", Count: 50,
			SampleOf: "customer_id", Sample: []string{"10", "11"}, Allowed: "the constraint is added NOT VALID and rows are fixed in v43"},
		{Rule: lint.RuleDataDuplicates, Pos: at("safe.sql", 3), Table: "public.loyalty",
			Message: `add_unique on public.loyalty not checked: relation "public.loyalty" does not exist`, Skipped: `relation "public.loyalty" does not exist`},
	}
	return r
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("..", "testdata", "lint", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./lint -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (go test ./lint -update rewrites it)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestWriteText(t *testing.T) {
	tests := []struct {
		name   string
		result func(t *testing.T) *lint.Result
	}{
		{"text.golden", sampleResult},
		{"text-empty.golden", func(t *testing.T) *lint.Result {
			r, err := lint.Run([]string{input("safe.sql")}, nil)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			return r
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			lint.WriteText(&buf, tt.result(t))
			golden(t, tt.name, buf.Bytes())
		})
	}
}

// The parts of the text format other tools (and people grepping CI logs)
// rely on, checked apart from the golden file so that -update cannot hide a
// change to them.
func TestWriteTextShape(t *testing.T) {
	var buf bytes.Buffer
	lint.WriteText(&buf, sampleResult(t))
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	tests := []struct {
		line string
		next string // the line after it; "" when not checked
	}{
		{input("lock-timeout.sql") + ":2:1: warning [lock-timeout] no SET lock_timeout before this DDL", "    recipe: " + phases.Rules["lock-timeout"].Recipe},
		{input("set-not-null.sql") + ":3:1: error [data-nulls] 49 rows of public.customer have NULL in company: SET NOT NULL fails", "    sample customer_id: 1, 3, 4, 5, 6"},
		{"silenced:", ""},
		{"    reason: fax is written by nothing since v41", ""},
		{"    reason: the constraint is added NOT VALID and rows are fixed in v43", ""},
		{"data checks not run:", ""},
		{"3 errors, 2 warnings, 0 info, 2 silenced, 1 data check not run", ""},
	}
	for _, tt := range tests {
		i := slices.Index(lines, tt.line)
		if i < 0 {
			t.Errorf("no line %q in\n%s", tt.line, buf.String())
			continue
		}
		if tt.next != "" && (i+1 >= len(lines) || lines[i+1] != tt.next) {
			t.Errorf("line after %q is not %q in\n%s", tt.line, tt.next, buf.String())
		}
	}
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "3 errors") {
		t.Errorf("last line %q is not the summary", last)
	}
}

func TestWriteJSON(t *testing.T) {
	tests := []struct {
		name         string
		result       *lint.Result
		wantFindings []string
		wantSilenced []string
		wantData     []string
		wantErrors   bool
	}{
		{"sample", sampleResult(t),
			[]string{"rename-column", "lock-timeout", "drop-column", "unknown-statement"},
			[]string{"rename-column"},
			[]string{"data-nulls", "data-check-violations", "data-duplicates"}, true},
		{"empty", &lint.Result{}, []string{}, []string{}, []string{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := lint.WriteJSON(&buf, tt.result); err != nil {
				t.Fatalf("WriteJSON: %v", err)
			}
			var got struct {
				Findings  *[]phases.Finding   `json:"findings"`
				Silenced  *[]phases.Finding   `json:"silenced"`
				Data      *[]lint.DataFinding `json:"data"`
				HasErrors bool                `json:"has_errors"`
			}
			if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, buf.String())
			}
			if got.Findings == nil || got.Silenced == nil || got.Data == nil {
				t.Fatalf("findings, silenced and data must be lists, never null or missing:\n%s", buf.String())
			}
			if ids := ruleIDs(*got.Findings); !slices.Equal(nonNil(ids), tt.wantFindings) {
				t.Errorf("findings = %v, want %v", ids, tt.wantFindings)
			}
			if ids := ruleIDs(*got.Silenced); !slices.Equal(nonNil(ids), tt.wantSilenced) {
				t.Errorf("silenced = %v, want %v", ids, tt.wantSilenced)
			}
			var data []string
			for _, d := range *got.Data {
				data = append(data, d.Rule)
			}
			if !slices.Equal(nonNil(data), tt.wantData) {
				t.Errorf("data = %v, want %v", data, tt.wantData)
			}
			if got.HasErrors != tt.wantErrors {
				t.Errorf("has_errors = %v, want %v", got.HasErrors, tt.wantErrors)
			}
		})
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// sarifLog is the part of SARIF 2.1.0 the test reads back.
type sarifLog struct {
	Schema  string `json:"$schema"`
	Version string `json:"version"`
	Runs    []struct {
		Tool struct {
			Driver struct {
				Name           string `json:"name"`
				InformationURI string `json:"informationUri"`
				Rules          []struct {
					ID               string `json:"id"`
					ShortDescription struct {
						Text string `json:"text"`
					} `json:"shortDescription"`
					Help struct {
						Text string `json:"text"`
					} `json:"help"`
					DefaultConfiguration struct {
						Level string `json:"level"`
					} `json:"defaultConfiguration"`
				} `json:"rules"`
			} `json:"driver"`
		} `json:"tool"`
		Invocations []struct {
			ExecutionSuccessful        bool `json:"executionSuccessful"`
			ToolExecutionNotifications []struct {
				Level     string          `json:"level"`
				Locations []sarifLocation `json:"locations"`
			} `json:"toolExecutionNotifications"`
		} `json:"invocations"`
		ColumnKind string `json:"columnKind"`
		Results    []struct {
			RuleID    string `json:"ruleId"`
			RuleIndex int    `json:"ruleIndex"`
			Level     string `json:"level"`
			Message   struct {
				Text string `json:"text"`
			} `json:"message"`
			Locations    []sarifLocation `json:"locations"`
			Suppressions []struct {
				Kind          string `json:"kind"`
				Justification string `json:"justification"`
			} `json:"suppressions"`
		} `json:"results"`
	} `json:"runs"`
}

type sarifLocation struct {
	PhysicalLocation struct {
		ArtifactLocation struct {
			URI string `json:"uri"`
		} `json:"artifactLocation"`
		Region struct {
			StartLine   int `json:"startLine"`
			StartColumn int `json:"startColumn"`
		} `json:"region"`
	} `json:"physicalLocation"`
}

func TestWriteSARIF(t *testing.T) {
	var buf bytes.Buffer
	if err := lint.WriteSARIF(&buf, sampleResult(t)); err != nil {
		t.Fatalf("WriteSARIF: %v", err)
	}
	var log sarifLog
	if err := json.Unmarshal(buf.Bytes(), &log); err != nil {
		t.Fatalf("SARIF output is not JSON: %v\n%s", err, buf.String())
	}
	if log.Schema != "https://json.schemastore.org/sarif-2.1.0.json" || log.Version != "2.1.0" {
		t.Errorf("$schema %q version %q, want SARIF 2.1.0", log.Schema, log.Version)
	}
	if len(log.Runs) != 1 {
		t.Fatalf("%d runs, want 1", len(log.Runs))
	}
	run := log.Runs[0]
	if run.Tool.Driver.Name != "phasekit" || run.Tool.Driver.InformationURI == "" {
		t.Errorf("driver %q at %q, want phasekit with an informationUri", run.Tool.Driver.Name, run.Tool.Driver.InformationURI)
	}
	if run.ColumnKind != "unicodeCodePoints" {
		t.Errorf("columnKind %q, want unicodeCodePoints: positions count characters", run.ColumnKind)
	}

	// Every rule, static and data, is described with its level and recipe.
	rules := map[string]int{}
	for i, r := range run.Tool.Driver.Rules {
		rules[r.ID] = i
	}
	all := map[string]phases.Rule{}
	for id, r := range phases.Rules {
		all[id] = r
	}
	for id, r := range lint.DataRules {
		all[id] = r
	}
	levels := map[phases.Severity]string{phases.Error: "error", phases.Warning: "warning", phases.Info: "note"}
	for id, want := range all {
		i, ok := rules[id]
		if !ok {
			t.Errorf("rule %s not in tool.driver.rules", id)
			continue
		}
		got := run.Tool.Driver.Rules[i]
		if got.DefaultConfiguration.Level != levels[want.Severity] || got.Help.Text != want.Recipe || got.ShortDescription.Text != want.Summary {
			t.Errorf("rule %s = level %q help %q summary %q, want %q %q %q", id,
				got.DefaultConfiguration.Level, got.Help.Text, got.ShortDescription.Text, levels[want.Severity], want.Recipe, want.Summary)
		}
	}

	type result struct {
		rule, level, uri string
		line, col        int
		justification    string
	}
	want := []result{
		{"rename-column", "error", "../testdata/lint/allow-scope.sql", 5, 1, ""},
		{"lock-timeout", "warning", "../testdata/lint/lock-timeout.sql", 2, 1, ""},
		{"drop-column", "error", "../testdata/lint/lock-timeout.sql", 2, 1, ""},
		{"data-nulls", "error", "../testdata/lint/set-not-null.sql", 3, 1, ""},
		{"unknown-statement", "warning", "../testdata/lint/unknown-statement.sql", 3, 1, ""},
		{"rename-column", "error", "../testdata/lint/allow-scope.sql", 4, 1, "fax is written by nothing since v41"},
		{"data-check-violations", "error", "../testdata/lint/check-not-valid.sql", 3, 1, "the constraint is added NOT VALID and rows are fixed in v43"},
	}
	var got []result
	for _, r := range run.Results {
		if len(r.Locations) != 1 {
			t.Fatalf("%s: %d locations, want 1", r.RuleID, len(r.Locations))
		}
		if run.Tool.Driver.Rules[r.RuleIndex].ID != r.RuleID {
			t.Errorf("%s: ruleIndex %d names %s", r.RuleID, r.RuleIndex, run.Tool.Driver.Rules[r.RuleIndex].ID)
		}
		if r.Message.Text == "" {
			t.Errorf("%s: empty message", r.RuleID)
		}
		loc := r.Locations[0].PhysicalLocation
		res := result{r.RuleID, r.Level, loc.ArtifactLocation.URI, loc.Region.StartLine, loc.Region.StartColumn, ""}
		switch len(r.Suppressions) {
		case 0:
		case 1:
			if r.Suppressions[0].Kind != "inSource" {
				t.Errorf("%s: suppression kind %q, want inSource", r.RuleID, r.Suppressions[0].Kind)
			}
			res.justification = r.Suppressions[0].Justification
		default:
			t.Errorf("%s: %d suppressions, want at most 1", r.RuleID, len(r.Suppressions))
		}
		got = append(got, res)
	}
	if !slices.Equal(got, want) {
		t.Errorf("results:\n got %+v\nwant %+v", got, want)
	}

	// The check that could not run is a notification, not a result.
	if len(run.Invocations) != 1 || len(run.Invocations[0].ToolExecutionNotifications) != 1 {
		t.Fatalf("invocations = %+v, want one with one notification", run.Invocations)
	}
	n := run.Invocations[0].ToolExecutionNotifications[0]
	if n.Level != "note" || len(n.Locations) != 1 || n.Locations[0].PhysicalLocation.ArtifactLocation.URI != "../testdata/lint/safe.sql" {
		t.Errorf("notification = %+v, want a note at ../testdata/lint/safe.sql", n)
	}
}
