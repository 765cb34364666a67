// Package outcome is a verify run's result as data: the compatibility
// matrix (boundaries, cells, shadow reads, zeta pairings) and what the data
// copy did. It depends on nothing that runs sandboxes, so the DBA report and
// anything else that reads a verify result stay clear of them.
package outcome

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/phasekit/phasekit/internal/human"
	"github.com/phasekit/phasekit/phases"
)

// Status is the outcome of one cell.
type Status string

// Statuses. Only StatusFail fails a run.
const (
	// StatusPass: a required cell passed.
	StatusPass Status = "pass"
	// StatusFail: a required cell failed.
	StatusFail Status = "fail"
	// StatusExpectedBreak: a cell the plan does not require failed, as
	// expected (the old version after contract).
	StatusExpectedBreak Status = "expected-break"
	// StatusExtraPass: a cell the plan does not require passed anyway.
	StatusExtraPass Status = "pass-not-required"
	// StatusBreaks: in the naive migration's matrix, a version that would be
	// running failed: what the naive migration would break.
	StatusBreaks Status = "breaks"
)

// Cell is one app of one version run at one boundary.
type Cell struct {
	Version  string        `json:"version"`
	App      string        `json:"app"`
	Required bool          `json:"required"`
	Status   Status        `json:"status"`
	Error    string        `json:"error,omitempty"`
	Output   string        `json:"output,omitempty"`
	Duration time.Duration `json:"duration_ns"`
}

// Boundary is the database at one point of the rollout and the cells run
// against it.
type Boundary struct {
	// Name reads "before expand", "after backfill", "after naive migration".
	Name string `json:"name"`
	// Phase is the phase just applied ("" before the first).
	Phase phases.Kind `json:"phase,omitempty"`
	// Required are the versions the plan says must work here.
	Required []string      `json:"required"`
	Cells    []Cell        `json:"cells"`
	Shadow   []ShadowCheck `json:"shadow,omitempty"`
	Zeta     []ZetaCell    `json:"zeta,omitempty"`
	// ApplyError is set when the phase could not be applied; the matrix
	// stops there.
	ApplyError string `json:"apply_error,omitempty"`
	// ApplyTime is how long applying the phase took.
	ApplyTime time.Duration `json:"apply_ns,omitempty"`
}

// Matrix is one migration (the phased plan or the naive one) run boundary
// by boundary.
type Matrix struct {
	Name       string     `json:"name"`
	SQL        string     `json:"sql,omitempty"` // the naive migration
	Boundaries []Boundary `json:"boundaries"`
	// Error is why the matrix could not run to the end ("" when it did).
	Error string `json:"error,omitempty"`
}

// Result is a whole verify run.
type Result struct {
	Plan     string        `json:"plan"` // the plan's hash
	Sources  []string      `json:"sources"`
	Sandbox  string        `json:"sandbox"`
	Copy     *CopyReport   `json:"copy,omitempty"`
	Phased   Matrix        `json:"phased"`
	Naive    *Matrix       `json:"naive,omitempty"`
	Passed   bool          `json:"passed"`
	Duration time.Duration `json:"duration_ns"`
	// Failures lists every reason the run failed, one line each.
	Failures []string `json:"failures,omitempty"`
}

// ShadowCheck is one pair run at one boundary.
type ShadowCheck struct {
	Name    string `json:"name"`
	Passed  bool   `json:"passed"`
	Rows    int    `json:"rows"`    // keys compared
	Pending int    `json:"pending"` // keys not yet backfilled (after dual-write)
	Differ  int    `json:"differ"`  // keys whose rows differ or exist on one side only
	// Summary is one line; Diffs are the first differing rows.
	Summary string   `json:"summary"`
	Diffs   []string `json:"diffs,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// ZetaCell is one frontend/backend pairing at one boundary.
type ZetaCell struct {
	Name        string        `json:"name"`
	Required    bool          `json:"required"`
	Status      Status        `json:"status"`
	Error       string        `json:"error,omitempty"`
	FrontendLog string        `json:"frontend_log,omitempty"`
	BackendLog  string        `json:"backend_log,omitempty"`
	Duration    time.Duration `json:"duration_ns"`
}

// CopyReport says what CopyData did.
type CopyReport struct {
	Source   string // the dump file, or the source DSN with its password redacted
	Method   string // how the data travelled, e.g. "pg_restore -j 2"
	Duration time.Duration
	Bytes    int64 // pg_database_size of the target after the copy
	Tables   int   // tables holding data (partitions count, partitioned tables do not)
	Rows     int64 // rows in those tables after masking and subsetting
	Masked   []MaskCount
	Subset   []SubsetCount // tables named by a subset or pruned by one, by name
}

// MaskCount is how many rows of the sandbox a mask replaced the value of:
// the non-NULL values of the column, or every row for MaskNull.
type MaskCount struct {
	Mask Mask
	Rows int64
}

func (r *CopyReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "copied %d tables, %d rows, %s in %s from %s (%s)",
		r.Tables, r.Rows, human.Bytes(r.Bytes), r.Duration.Round(time.Millisecond), r.Source, r.Method)
	if len(r.Masked) > 0 {
		var parts []string
		for _, m := range r.Masked {
			parts = append(parts, fmt.Sprintf("%s (%d rows)", m.Mask, m.Rows))
		}
		b.WriteString("; masked " + strings.Join(parts, ", "))
	}
	if len(r.Subset) > 0 {
		var parts []string
		for _, s := range r.Subset {
			parts = append(parts, fmt.Sprintf("%s kept %d removed %d", s.Table, s.Kept, s.Removed))
		}
		b.WriteString("; subset: " + strings.Join(parts, ", "))
	}
	return b.String()
}

// MaskStrategy says what a masked column's values are replaced with.
type MaskStrategy string

// Mask strategies. Every strategy leaves NULL as NULL: there is no value to hide.
const (
	// MaskHash replaces a value with the md5 of the salt and the value, as
	// 32 hex digits: equal values stay equal, so joins and GROUP BY on the
	// column still work. Text columns only.
	MaskHash MaskStrategy = "hash"
	// MaskEmail replaces a value with user_<12 hex digits of the hash>@example.invalid,
	// deterministic like MaskHash; distinct inputs collide with negligible
	// probability, so a unique index on the column still builds. Text columns only.
	MaskEmail MaskStrategy = "email"
	// MaskNull replaces every value with NULL; the column must be nullable.
	MaskNull MaskStrategy = "null"
	// MaskFixed replaces every value with Mask.Value (fixed:VALUE).
	MaskFixed MaskStrategy = "fixed"
)

// Mask replaces the values of one column while data is copied into a sandbox.
type Mask struct {
	Schema   string // "public" unless the flag named one
	Table    string
	Column   string
	Strategy MaskStrategy
	Value    string // the replacement for MaskFixed
}

// String returns the flag form, table.column=strategy.
func (m Mask) String() string {
	s := m.Column + "=" + string(m.Strategy)
	if m.Strategy == MaskFixed {
		s += ":" + m.Value
	}
	return qualified(m.Schema, m.Table) + "." + s
}

// SubsetCount is what subsetting left of one table.
type SubsetCount struct {
	Table   string // schema.table, or table for public
	Kept    int64
	Removed int64
}

// qualified is "table" for public, "schema.table" otherwise.
func qualified(schema, table string) string {
	if schema == "" || schema == "public" {
		return table
	}
	return schema + "." + table
}

// WriteJSON writes the result as indented JSON (the --verify input of
// phasekit report).
func WriteJSON(w io.Writer, r *Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// ReadJSON reads a result written by WriteJSON.
func ReadJSON(rd io.Reader) (*Result, error) {
	var r Result
	if err := json.NewDecoder(rd).Decode(&r); err != nil {
		return nil, err
	}
	return &r, nil
}
