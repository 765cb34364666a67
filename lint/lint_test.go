package lint_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/lint"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/verify/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var update = flag.Bool("update", false, "rewrite the golden files under testdata/lint/golden")

// input is the path of a test input, as the CLI would be given it.
func input(name string) string { return filepath.Join("..", "testdata", "lint", name) }

func ruleIDs(fs []phases.Finding) []string {
	var ids []string
	for _, f := range fs {
		ids = append(ids, f.Rule)
	}
	return ids
}

// Each catalogue file holds one unsafe statement on line 3, after a comment
// and SET lock_timeout, and must yield exactly its rule there.
func TestRunCatalogue(t *testing.T) {
	tests := []struct {
		file string
		want []string // rule ids, in order
		line int      // where the file's own rule fires
	}{
		{"rename-column.sql", []string{"rename-column"}, 3},
		{"rename-table.sql", []string{"rename-table"}, 3},
		{"change-type.sql", []string{"change-type"}, 3},
		{"drop-column.sql", []string{"drop-column"}, 3},
		{"drop-table.sql", []string{"drop-table"}, 3},
		{"set-not-null.sql", []string{"set-not-null"}, 3},
		{"required-column.sql", []string{"required-column"}, 3},
		{"volatile-default.sql", []string{"volatile-default"}, 3},
		{"foreign-key-not-valid.sql", []string{"foreign-key-not-valid"}, 3},
		{"check-not-valid.sql", []string{"check-not-valid"}, 3},
		{"index-concurrently.sql", []string{"index-concurrently"}, 3},
		{"drop-index-concurrently.sql", []string{"drop-index-concurrently"}, 3},
		{"unique-constraint.sql", []string{"unique-constraint"}, 3},
		{"primary-key.sql", []string{"primary-key"}, 3},
		{"enum-value-rename.sql", []string{"enum-value-rename"}, 3},
		{"unknown-statement.sql", []string{"unknown-statement"}, 3},
		// No SET lock_timeout: the DDL on line 2 also gets lock-timeout.
		{"lock-timeout.sql", []string{"lock-timeout", "drop-column"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			r, err := lint.Run([]string{input(tt.file)}, nil)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got := ruleIDs(r.Findings); !slices.Equal(got, tt.want) {
				t.Fatalf("rules = %v, want %v", got, tt.want)
			}
			if len(r.Silenced) != 0 {
				t.Errorf("silenced = %v, want none", ruleIDs(r.Silenced))
			}
			wantErrors := false
			for _, f := range r.Findings {
				rule := phases.Rules[f.Rule]
				if f.Severity != rule.Severity {
					t.Errorf("%s: severity %s, want the rule's %s", f.Rule, f.Severity, rule.Severity)
				}
				if f.Recipe == "" || f.Recipe != rule.Recipe {
					t.Errorf("%s: recipe %q, want the rule's %q", f.Rule, f.Recipe, rule.Recipe)
				}
				if f.Pos.File != input(tt.file) || f.Pos.Line != tt.line || f.Pos.Col != 1 {
					t.Errorf("%s at %s, want %s:%d:1", f.Rule, f.Pos, input(tt.file), tt.line)
				}
				wantErrors = wantErrors || f.Severity == phases.Error
			}
			if r.HasErrors() != wantErrors {
				t.Errorf("HasErrors = %v, want %v", r.HasErrors(), wantErrors)
			}
		})
	}
}

// A migration written the safe way draws no finding at all.
func TestRunSafeMigration(t *testing.T) {
	r, err := lint.Run([]string{input("safe.sql")}, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, f := range r.Findings {
		t.Errorf("unexpected finding %s: %s [%s] %s", f.Pos, f.Severity, f.Rule, f.Message)
	}
	if r.HasErrors() {
		t.Error("HasErrors = true for the safe migration")
	}
}

func TestRunAllow(t *testing.T) {
	tests := []struct {
		file         string
		wantFindings []string
		wantSilenced []string
		wantReason   string
		wantErrors   bool
	}{
		{"allow-rename.sql", nil, []string{"rename-column"}, "the only reader is the nightly export, paused for this release", false},
		// The comment silences the statement after it, not the next one.
		{"allow-scope.sql", []string{"rename-column"}, []string{"rename-column"}, "fax is written by nothing since v41", true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			r, err := lint.Run([]string{input(tt.file)}, nil)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got := ruleIDs(r.Findings); !slices.Equal(got, tt.wantFindings) {
				t.Errorf("findings = %v, want %v", got, tt.wantFindings)
			}
			if got := ruleIDs(r.Silenced); !slices.Equal(got, tt.wantSilenced) {
				t.Fatalf("silenced = %v, want %v", got, tt.wantSilenced)
			}
			s := r.Silenced[0]
			if s.Allowed != tt.wantReason {
				t.Errorf("reason = %q, want %q", s.Allowed, tt.wantReason)
			}
			if s.Pos.Line != 4 {
				t.Errorf("silenced finding at line %d, want 4 (the statement under the comment)", s.Pos.Line)
			}
			if r.HasErrors() != tt.wantErrors {
				t.Errorf("HasErrors = %v, want %v", r.HasErrors(), tt.wantErrors)
			}
		})
	}
}

// Findings of several files come back in file, line, column order, whatever
// order the files were given in.
func TestRunSortsFindings(t *testing.T) {
	r, err := lint.Run([]string{input("lock-timeout.sql"), input("allow-scope.sql"), input("drop-table.sql")}, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(r.Findings) < 3 {
		t.Fatalf("%d findings, want at least 3", len(r.Findings))
	}
	less := func(a, b change.Pos) bool {
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	}
	for i := 1; i < len(r.Findings); i++ {
		if less(r.Findings[i].Pos, r.Findings[i-1].Pos) {
			t.Errorf("finding %d at %s comes after %s", i, r.Findings[i].Pos, r.Findings[i-1].Pos)
		}
	}
}

func TestRunChangeSpec(t *testing.T) {
	file := input("rename.yaml")
	r, err := lint.Run([]string{file}, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := ruleIDs(r.Findings); !slices.Equal(got, []string{"rename-column"}) {
		t.Fatalf("rules = %v, want [rename-column]", got)
	}
	// The change is the list item that starts at "kind:".
	line, col := locate(t, file, "kind: rename_column")
	if p := r.Findings[0].Pos; p.Line != line || p.Col != col {
		t.Errorf("finding at %d:%d, want %d:%d", p.Line, p.Col, line, col)
	}
}

// locate returns the 1-based line and column of the first occurrence of s in
// file, counted by hand so that the test does not trust the parser.
func locate(t *testing.T, file, s string) (int, int) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range strings.Split(string(b), "\n") {
		if c := strings.Index(l, s); c >= 0 {
			return i + 1, len([]rune(l[:c])) + 1
		}
	}
	t.Fatalf("%q not in %s", s, file)
	return 0, 0
}

func TestRunInputErrors(t *testing.T) {
	tests := []struct {
		name     string
		file     string
		near     string // the text the error must point at; "" for the file's start
		wantText string // in the message
	}{
		{"syntax error", input("malformed.sql"), "NOT NULL;", `syntax error at or near "NOT"`},
		{"unknown extension", input("notes.txt"), "", "not a .sql migration or a .yaml change spec"},
		{"missing file", input("no-such-file.sql"), "", "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := lint.Run([]string{input("safe.sql"), tt.file}, nil)
			if err == nil {
				t.Fatalf("Run = %+v, want an input error", r)
			}
			var ie *change.InputError
			if !errors.As(err, &ie) {
				t.Fatalf("error %v (%T) is not a *change.InputError", err, err)
			}
			line, col := 1, 1
			if tt.near != "" {
				line, col = locate(t, tt.file, tt.near)
			}
			if ie.Pos.File != tt.file || ie.Pos.Line != line || ie.Pos.Col != col {
				t.Errorf("error at %s, want %s:%d:%d", ie.Pos, tt.file, line, col)
			}
			if !strings.Contains(ie.Msg, tt.wantText) {
				t.Errorf("message %q does not contain %q", ie.Msg, tt.wantText)
			}
		})
	}
}
