package phases

import (
	"fmt"
	"strings"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/schema"
)

// Recipe is one change kind: everything phasekit knows about it. Each kind is
// one type in one file of this package (a family of kinds that really share
// everything, such as SET/DROP DEFAULT, one type), registered from init. The
// planner, lint, the plan check's replay, the contract gate, lint's data
// checks and the DBA review ask a kind through these methods; nothing outside
// this package and package change switches over change kinds.
//
// How to add a change kind:
//
//  1. Name it in change/change.go (a change.Kind constant) and read it: in
//     change/classify.go from SQL, or in change/spec.go from a change spec,
//     with its plain SQL in change.NaiveSQL (the replay runs it, verify shows
//     it as the naive migration).
//  2. Write phases/<kind>.go: a type embedding recipe (the defaults below)
//     with the methods it needs, `var _ Recipe = yourKind{}`, and
//     `register(change.YourKind, yourKind{})` in init.
//  3. Plan returns a fragment: the statements of each phase, each with its
//     rollback (a phase that cannot be undone is marked irreversible); the
//     columns kept in sync by the dual-write trigger (syncs) and the
//     backfills; findings; the deploy note for N+1. It reads the schema as
//     the statements before it left it and does no I/O.
//  4. Lint says what the statement as written risks (a rule of findings.go);
//     Moves how the planner may order it against the file's other statements
//     (order.go); OldShapes what contract takes from N by name (the gate's
//     statement check); DataChecks the rows that would make it fail (lint
//     --dsn); Title the change in a few words (the DBA review).
//  5. Add a golden case to golden_test.go (go test ./phases -run TestGolden
//     -update) and a case to plancheck/plancheck_test.go, which plans it on
//     PostgreSQL and proves the plan against the file; if the differential
//     fuzzer can draw it, add it to plancheck/gen_test.go. Document the
//     recipe in docs/catalogue.md.
type Recipe interface {
	// Plan plans the change against the schema before it.
	Plan(s *schema.Snapshot, c change.Change) (*fragment, error)
	// Lint lists what the statement as written risks, without a schema:
	// rule and message (position, severity and recipe come from the rule).
	Lint(c change.Change) []Finding
	// Moves says how the planner may order the change (order.go).
	Moves(c change.Change) Moves
	// OldShapes are the columns and tables contract takes away from N, by
	// name; notes say what cannot be looked for by name.
	OldShapes(c change.Change) (shapes []Shape, notes []string)
	// DataChecks are the counts of rows that would make the change fail.
	DataChecks(c change.Change) []DataCheck
	// Title is the change in a few words.
	Title(c change.Change) string
}

// Moves says how a change may be ordered against the other statements of its
// migration, and what its statement is like.
type Moves struct {
	// Deferrable: N+1 needs nothing from the change before contract, so it
	// may run later than its recipe's first phase (after an earlier change
	// to the same object).
	Deferrable bool
	// ReadsData: the outcome depends on the rows present when it runs, so a
	// data statement preparing it runs right before it.
	ReadsData bool
	// CommutesWithData: the outcome does not depend on the rows, so an
	// earlier data statement on the same column need not run before it.
	CommutesWithData bool
	// Travels: a data statement that moves to the phase of the later change
	// it prepares.
	Travels bool
	// SnapshotShows: the schema snapshot shows the change's whole effect,
	// so a replay that leaves it unchanged did nothing.
	SnapshotShows bool
	// LocksTable: its statement takes a table lock that queues queries,
	// so lint asks for a lock_timeout before it.
	LocksTable bool
}

// Shape is a column (Column set) or a whole table that N uses by name.
type Shape struct {
	Table  string `json:"table"`
	Column string `json:"column,omitempty"`
}

func (s Shape) String() string {
	if s.Column == "" {
		return "table " + s.Table
	}
	return s.Table + "." + s.Column
}

// DataCheck is a count of rows that would make a change fail, which lint
// --dsn runs before it does (lint/data.go).
type DataCheck struct {
	What DataCheckKind
	// Columns are the checked columns (the key, the columns that must not
	// hold NULL).
	Columns []string
	// Statement names what would fail, for the message ("SET NOT NULL").
	Statement string
	// NullsDistinct: a duplicate key with a NULL does not count.
	NullsDistinct bool
}

// DataCheckKind is what a data check counts.
type DataCheckKind string

// Data checks.
const (
	DataDuplicates  DataCheckKind = "duplicates"   // key values held by more than one row
	DataNulls       DataCheckKind = "nulls"        // rows with a NULL in any of the columns
	DataUniqueIndex DataCheckKind = "unique-index" // duplicates under a CREATE UNIQUE INDEX's own key and predicate
	DataViolations  DataCheckKind = "violations"   // rows a CHECK expression refuses
	DataOrphans     DataCheckKind = "orphans"      // rows a foreign key finds no referenced row for
)

// recipe holds the defaults a kind type embeds: nothing to lint, no data
// check, no shape N loses, a generic title, and moves that keep it in place.
type recipe struct{}

func (recipe) Lint(change.Change) []Finding                            { return nil }
func (recipe) Moves(change.Change) Moves                               { return Moves{} }
func (recipe) OldShapes(change.Change) ([]Shape, []string)             { return nil, nil }
func (recipe) DataChecks(change.Change) []DataCheck                    { return nil }
func (recipe) Title(c change.Change) string                            { return kindTitle(c) }
func (recipe) Plan(*schema.Snapshot, change.Change) (*fragment, error) { return newFragment(), nil }

// kindTitle is "Drop column public.t.c": the kind's words and what it acts on.
func kindTitle(c change.Change) string {
	col := c.Table
	if c.Column != "" {
		col += "." + c.Column
	}
	words := strings.ReplaceAll(string(c.Kind), "_", " ")
	return strings.ToUpper(words[:1]) + words[1:] + " " + strings.TrimSpace(col)
}

// catalogue maps each change kind to its recipe.
var catalogue = map[change.Kind]Recipe{}

func register(k change.Kind, r Recipe) { catalogue[k] = r }

// recipeOf is the kind's recipe; an unknown kind plans nothing and says so.
func recipeOf(k change.Kind) Recipe {
	if r, ok := catalogue[k]; ok {
		return r
	}
	return unregistered{}
}

// unregistered stands for a kind no file registered: planning it fails.
type unregistered struct{ recipe }

func (unregistered) Plan(_ *schema.Snapshot, c change.Change) (*fragment, error) {
	return nil, &PlanError{Pos: c.Pos, Msg: fmt.Sprintf("no recipe for change kind %s", c.Kind)}
}

// OldShapes lists what a plan's contract takes away from N, by name, from
// its changes; notes say what cannot be looked for by name.
func OldShapes(p *Plan) (shapes []Shape, notes []string) {
	if p.Phase(Contract) == nil {
		return nil, nil
	}
	for _, c := range p.Changes {
		s, n := recipeOf(c.Kind).OldShapes(c)
		for _, x := range s {
			if !containsShape(shapes, x) {
				shapes = append(shapes, x)
			}
		}
		notes = append(notes, n...)
	}
	return shapes, notes
}

func containsShape(ss []Shape, s Shape) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// DataChecks lists the rows to count before a change runs.
func DataChecks(c change.Change) []DataCheck { return recipeOf(c.Kind).DataChecks(c) }

// Title is a change in a few words, for the DBA review.
func Title(c change.Change) string { return recipeOf(c.Kind).Title(c) }

// SnapshotShows tells the kinds whose whole effect a snapshot shows, so a
// replay that leaves the snapshot unchanged means the change did nothing.
func SnapshotShows(c change.Change) bool { return recipeOf(c.Kind).Moves(c).SnapshotShows }

// lintFinding is one finding of a rule, its message led by what the change
// does: "renames public.t.a to b: <the rule's summary>".
func lintFinding(rule, what string) Finding {
	return Finding{Rule: rule, Message: what + ": " + Rules[rule].Summary}
}
