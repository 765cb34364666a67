// Package phases is the change catalogue and the planner: a pure function from
// a schema snapshot and the wanted changes to a Plan of backward-compatible
// phases. Nothing in this package touches a database.
package phases

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/schema"
)

// Kind is the kind of a phase.
type Kind string

// Phase kinds, in the order they run.
const (
	Expand    Kind = "expand"     // add the new shape
	DualWrite Kind = "dual-write" // keep old and new in sync with triggers
	Backfill  Kind = "backfill"   // copy existing rows in batches
	Validate  Kind = "validate"   // validate constraints added NOT VALID
	Contract  Kind = "contract"   // remove the old shape
)

// Order lists the phase kinds in the order they run.
var Order = []Kind{Expand, DualWrite, Backfill, Validate, Contract}

// ParseKind reads a phase kind's name; ok is false for anything else.
func ParseKind(s string) (k Kind, ok bool) {
	for _, o := range Order {
		if string(o) == s {
			return o, true
		}
	}
	return "", false
}

// KindNames lists the phase kinds' names in order, for messages.
func KindNames() string {
	names := make([]string, len(Order))
	for i, k := range Order {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}

// Index is the kind's place in Order (len(Order) for an unknown kind).
func (k Kind) Index() int {
	for i, o := range Order {
		if o == k {
			return i
		}
	}
	return len(Order)
}

// ShortHash is the first 12 hex digits of a plan hash, as every message
// shows it.
func ShortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// Lock modes, as PostgreSQL names them.
const (
	LockNone                 = "none"
	LockAccessShare          = "ACCESS SHARE"
	LockRowExclusive         = "ROW EXCLUSIVE"
	LockShareUpdateExclusive = "SHARE UPDATE EXCLUSIVE"
	LockShare                = "SHARE"
	LockShareRowExclusive    = "SHARE ROW EXCLUSIVE"
	LockAccessExclusive      = "ACCESS EXCLUSIVE"
)

// App versions: the version running before the change and the one that
// needs the change.
const (
	Old = "N"
	New = "N+1"
)

// Statement is one SQL statement of a phase.
type Statement struct {
	SQL string `json:"sql"`
	// Lock is the strongest table lock the statement takes.
	Lock string `json:"lock"`
	// Transactional is false for statements that cannot run in a transaction
	// block (CREATE INDEX CONCURRENTLY and the like).
	Transactional bool `json:"transactional"`
	// NewTransaction starts a new transaction (and migration file) at this
	// statement, so a long scan never shares a transaction with a strong lock.
	NewTransaction bool `json:"new_transaction,omitempty"`
	// Rollback undoes this statement; run in order.
	Rollback []string `json:"rollback,omitempty"`
	// Table is the table the statement locks, "schema.name".
	Table string `json:"table,omitempty"`
	// Why says in a few words what the statement is for.
	Why string `json:"why,omitempty"`
	// Change is the index in Plan.Changes of the change this serves.
	Change int `json:"change"`
}

// Assignment sets a column to an expression over the row's other columns.
type Assignment struct {
	Column string `json:"column"`
	Expr   string `json:"expr"`
	Type   string `json:"type"` // the column's SQL type
}

// BackfillStep copies existing rows into the new shape in keyset batches.
type BackfillStep struct {
	Table string       `json:"table"`
	Key   []string     `json:"key"` // primary key or unique NOT NULL key, keyset order
	Set   []Assignment `json:"set"`
	// Where selects the rows still to fill; re-running a batch is harmless.
	Where string `json:"where"`
	// Verify counts rows that differ from their expected value; must be 0.
	Verify string `json:"verify"`
	// SQL is the whole backfill as one statement, for runners that cannot
	// batch (plain golang-migrate). phasekit apply batches instead.
	SQL         string `json:"sql"`
	RowEstimate int64  `json:"row_estimate"`
	Change      int    `json:"change"`
}

// Phase is one step of the rollout.
type Phase struct {
	Kind       Kind           `json:"kind"`
	Statements []Statement    `json:"statements"`
	Backfills  []BackfillStep `json:"backfills,omitempty"`
	// AppsBefore and AppsAfter are the app versions that must work against
	// the database before and after this phase runs.
	AppsBefore []string `json:"apps_before"`
	AppsAfter  []string `json:"apps_after"`
	// DeployBefore is the code deploy step that must be finished before this
	// phase runs ("" when none).
	DeployBefore string `json:"deploy_before,omitempty"`
	// DeployAfter is the code deploy step this phase allows.
	DeployAfter string `json:"deploy_after,omitempty"`
	// Reversible is false when the phase's rollback cannot restore data.
	Reversible bool `json:"reversible"`
	// Files are the golang-migrate files of this phase, in order (set when
	// the plan is written out).
	Files []string `json:"files,omitempty"`
}

// Severity of a finding.
type Severity string

// Severities.
const (
	Error   Severity = "error"
	Warning Severity = "warning"
	Info    Severity = "info"
)

// Finding is something the reviewer must know about a change.
type Finding struct {
	Rule     string     `json:"rule"`
	Severity Severity   `json:"severity"`
	Pos      change.Pos `json:"pos"`
	Message  string     `json:"message"`
	Recipe   string     `json:"recipe,omitempty"`
	// Allowed is the reason given in the file when the rule was silenced.
	Allowed string `json:"allowed,omitempty"`
}

// Plan is the phased plan for a set of changes. It is plain data: print it,
// diff it, write it as golang-migrate files, review it, then run exactly it.
type Plan struct {
	Version  int             `json:"version"`
	Sources  []string        `json:"sources"`
	Changes  []change.Change `json:"changes"`
	Phases   []Phase         `json:"phases"`
	Findings []Finding       `json:"findings,omitempty"`
	// Deploy says what N+1 expects of the database, for the deploy step.
	Deploy []string `json:"deploy,omitempty"`
	// Tables are the tables the plan changes, "schema.name", sorted.
	Tables []string `json:"tables"`
	// Hash identifies the plan: the SHA-256 of its phases.
	Hash string `json:"hash"`
	// SchemaFingerprint is the Fingerprint of the plan's tables in the
	// schema it was planned against; apply refuses a database whose tables
	// no longer match it (drift).
	SchemaFingerprint string `json:"schema_fingerprint,omitempty"`
	// Binding is the plan's timeline on a deploy pipeline, when it was
	// planned with one; Hash does not cover it.
	Binding *Binding `json:"binding,omitempty"`
	// AppVersion, when set, is the application's golang-migrate version
	// table and the version apply writes there once the plan's last phase is
	// done (plan --app-version-table); without it phasekit never touches the
	// application's version table. Hash covers it.
	AppVersion *AppVersion `json:"app_version,omitempty"`
	// Check is what the plan check found on a scratch PostgreSQL; not
	// covered by Hash.
	Check *CheckResult `json:"check,omitempty"`
}

// AppVersion ties a plan to the application's own migration history: the
// plan implements the migration file of this version, so once its last phase
// has run, golang-migrate may count the file as applied.
type AppVersion struct {
	// Table is golang-migrate's version table, "schema.name".
	Table string `json:"table"`
	// Version is the migration file's version, from its name.
	Version int64 `json:"version"`
	// File is the migration file the version comes from.
	File string `json:"file"`
}

// Fingerprint hashes the structure of the given tables (columns,
// constraints, indexes, triggers; not their size), "absent" for a missing one.
func Fingerprint(s *schema.Snapshot, tables []string) string {
	h := sha256.New()
	for _, name := range tables {
		h.Write([]byte(name + "\n"))
		t, ok := s.Tables[name]
		if !ok {
			h.Write([]byte("absent\n"))
			continue
		}
		cp := *t
		cp.RowEstimate, cp.SizeBytes = 0, 0
		b, _ := json.Marshal(cp)
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Phase returns the phase of the given kind, or nil.
func (p *Plan) Phase(k Kind) *Phase {
	for i := range p.Phases {
		if p.Phases[i].Kind == k {
			return &p.Phases[i]
		}
	}
	return nil
}

// PlanError is a change the planner cannot plan: a missing table or column,
// or a change that would break a dependent object. It names the position.
type PlanError struct {
	Pos change.Pos
	Msg string
	// Observed is set when planning the change needed to see it run on the
	// scratch copy and could not: PostgreSQL's own refusal of it, if any,
	// is the better message.
	Observed bool
}

func (e *PlanError) Error() string { return e.Pos.String() + ": " + e.Msg }

// refTableCreated marks a foreign key whose referenced table the migration
// creates, so the snapshot cannot know it.
const refTableCreated = "referenced table created earlier in this migration"

// fragment is what one change contributes to the plan.
type fragment struct {
	steps     map[Kind][]Statement
	backfills []BackfillStep
	syncs     []sync
	deploy    string // what N+1 may do once the pre-contract phases ran
	// touches lists tables whose rows the change affects without a
	// statement locking them (an enum label renamed under them).
	touches  []string
	findings []Finding
	// irreversible marks phases whose rollback loses data.
	irreversible map[Kind]bool
	// late are contract statements that must run after the dual-write
	// triggers are gone (they run in a transaction of their own).
	late []Statement
	// needsEarly marks a plan with a step N+1 needs before contract (a
	// dropped column's DROP NOT NULL): the change cannot be moved later.
	needsEarly bool
}

func newFragment() *fragment {
	return &fragment{steps: map[Kind][]Statement{}, irreversible: map[Kind]bool{}}
}

func (f *fragment) add(k Kind, s Statement) { f.steps[k] = append(f.steps[k], s) }

// merge appends another fragment's work (one change planned as several).
func (f *fragment) merge(o *fragment) {
	for _, k := range Order {
		f.steps[k] = append(f.steps[k], o.steps[k]...)
		f.irreversible[k] = f.irreversible[k] || o.irreversible[k]
	}
	f.backfills = append(f.backfills, o.backfills...)
	f.touches = append(f.touches, o.touches...)
	f.syncs = append(f.syncs, o.syncs...)
	f.findings = append(f.findings, o.findings...)
	f.late = append(f.late, o.late...)
}

// Options change how Build plans.
type Options struct {
	// NoArchive makes contract drop columns and tables at once instead of
	// archiving them (rollback of contract then cannot bring data back).
	NoArchive bool
	// Observed holds, for each change (in order over all migrations), what
	// replaying its statement on a scratch copy showed: the schema the
	// statements before it left, which it is planned against, and what it
	// did. A nil slice or entry plans that change against the snapshot given
	// to BuildWith, as if each statement ran alone against it.
	Observed []*Observed
}

// Observed is what replaying one change on a scratch copy of the schema
// showed (see package plancheck).
type Observed struct {
	// Before is the schema as the statements before this change left it.
	Before *schema.Snapshot
	// After is the schema right after it; nil when the change was replayed
	// together with others (an inline constraint with its column).
	After *schema.Snapshot
	// Rewritten lists the relations ("schema.name": tables and indexes)
	// whose storage PostgreSQL rewrote to run the change.
	Rewritten []string
	// NoOp is set when the change wrote nothing at all (no transaction id
	// was assigned): an IF [NOT] EXISTS that found what it looked for, SET
	// NOT NULL on a column that is NOT NULL already.
	NoOp bool
}

// archiveBlocksLaterDrop tells that the column or table dropped at idx must
// really be dropped, not archived: a later statement of the migration drops
// a type, domain, sequence, function, collation or extension, which an
// archived column (kept, renamed, until purge) may still depend on, and
// PostgreSQL would refuse that drop (Harbor-style "DROP COLUMN home; DROP
// TYPE addr").
func archiveBlocksLaterDrop(all []change.Change, idx int) bool {
	if k := all[idx].Kind; k != change.DropColumn && k != change.DropTable {
		return false
	}
	for _, c := range all[idx+1:] {
		if c.Kind != change.DropObject {
			continue
		}
		switch c.ObjectType {
		case "TYPE", "DOMAIN", "SEQUENCE", "FUNCTION", "PROCEDURE", "COLLATION", "EXTENSION":
			return true
		}
	}
	return false
}

func (o Options) observed(idx int) *Observed {
	if idx < len(o.Observed) {
		return o.Observed[idx]
	}
	return nil
}

// Build plans the changes of the given migrations against the snapshot.
func Build(s *schema.Snapshot, migrations ...*change.Migration) (*Plan, error) {
	return BuildWith(Options{}, s, migrations...)
}

// BuildWith is Build with options.
func BuildWith(opts Options, s *schema.Snapshot, migrations ...*change.Migration) (*Plan, error) {
	p := &Plan{Version: 1}
	var all []change.Change
	for _, m := range migrations {
		p.Sources = append(p.Sources, m.File)
		all = append(all, m.Changes...)
	}
	p.Changes = all
	st := newMigrationState(s, all, opts)
	var units []*unit
	for idx, c := range all {
		if c.Kind == change.SessionSetting {
			continue
		}
		obs := opts.observed(idx)
		snap := s
		if obs != nil && obs.Before != nil {
			snap = obs.Before
		}
		c.NoArchive = opts.NoArchive || archiveBlocksLaterDrop(all, idx)
		f, err := st.plan(snap, obs, idx, c)
		if err != nil {
			return nil, err
		}
		if obs == nil || !obs.NoOp {
			st.after(c)
		}
		for k := range f.steps {
			for i := range f.steps[k] {
				f.steps[k][i].Change = idx
			}
		}
		for i := range f.backfills {
			f.backfills[i].Change = idx
		}
		for i := range f.late {
			f.late[i].Change = idx
		}
		for i := range f.syncs {
			f.syncs[i].Change = idx
		}
		for i := range f.findings {
			f.findings[i].Pos = c.Pos
		}
		units = append(units, &unit{idx: idx, c: c, f: f, objs: objectsOf(snap, obs, c)})
	}
	if err := order(units); err != nil {
		return nil, err
	}
	frags := make([]*fragment, len(units))
	for i, u := range units {
		frags[i] = u.f
	}
	merge(p, st.ownTriggers(), frags)
	p.Findings = append(p.Findings, findingsOf(p.Changes)...)
	for _, f := range frags {
		p.Findings = append(p.Findings, f.findings...)
	}
	p.Hash = hashPhases(p.Phases)
	if s != nil {
		p.SchemaFingerprint = Fingerprint(s, p.Tables)
	}
	return p, nil
}

// merge puts the fragments' statements into phases, adds the dual-write
// triggers (one per table, covering every change on it) and fills in the app
// version windows and deploy steps.
func merge(p *Plan, ownTriggers map[string]bool, frags []*fragment) {
	steps := map[Kind][]Statement{}
	var backfills []BackfillStep
	var syncs []sync
	var late []Statement
	irreversible := map[Kind]bool{}
	tables := map[string]bool{}
	for _, f := range frags {
		for _, k := range Order {
			steps[k] = append(steps[k], f.steps[k]...)
			if f.irreversible[k] {
				irreversible[k] = true
			}
		}
		backfills = append(backfills, f.backfills...)
		syncs = append(syncs, f.syncs...)
		late = append(late, f.late...)
		if f.deploy != "" {
			p.Deploy = append(p.Deploy, f.deploy)
		}
	}
	backfills = mergeBackfills(backfills)
	if len(syncs) > 0 {
		// Tables with triggers of their own need the backfill mode that
		// undoes what those triggers change; others can skip it.
		dw, contract := syncTriggers(syncs, backfills, ownTriggers)
		steps[DualWrite] = append(dw, steps[DualWrite]...)
		steps[Contract] = placeTriggerRemoval(steps[Contract], contract, frags, func(table string, done map[int]bool) (string, string) {
			return narrowedSync(table, syncs, backfills, ownTriggers, done)
		})
	}
	steps[Contract] = append(steps[Contract], late...)
	for _, k := range Order {
		for _, st := range steps[k] {
			if st.Table != "" {
				tables[st.Table] = true
			}
		}
	}
	for _, b := range backfills {
		tables[b.Table] = true
	}
	for _, f := range frags {
		for _, t := range f.touches {
			tables[t] = true
		}
	}
	for t := range tables {
		p.Tables = append(p.Tables, t)
	}
	sort.Strings(p.Tables)

	// The last phase before contract is where N+1 may roll out.
	var kinds []Kind
	for _, k := range Order {
		if len(steps[k]) > 0 || (k == Backfill && len(backfills) > 0) {
			kinds = append(kinds, k)
		}
	}
	deployNew := "deploy N+1"
	if len(p.Deploy) > 0 {
		deployNew += " (" + strings.Join(p.Deploy, "; ") + ")"
	}
	hasContract := len(steps[Contract]) > 0
	newDeployed := false
	for i, k := range kinds {
		ph := Phase{Kind: k, Statements: steps[k], Reversible: !irreversible[k]}
		if ph.Statements == nil {
			ph.Statements = []Statement{}
		}
		if k == Backfill {
			ph.Backfills = backfills
		}
		ph.AppsBefore = []string{Old}
		if newDeployed {
			ph.AppsBefore = []string{Old, New}
		}
		switch {
		case k == Contract:
			// The deploy itself was named after the phase before.
			ph.DeployBefore = "N+1 on every stage and wave, then N retired: no N instance may remain"
			if !newDeployed {
				ph.DeployBefore = deployNew + " everywhere, then retire N: no N instance may remain"
			}
			ph.AppsBefore = []string{New}
			ph.AppsAfter = []string{New}
		case i == len(kinds)-1 || (hasContract && kinds[i+1] == Contract):
			ph.AppsAfter = []string{Old, New}
			ph.DeployAfter = deployNew + "; old N still running"
			newDeployed = true
		default:
			ph.AppsAfter = []string{Old}
			if newDeployed {
				ph.AppsAfter = []string{Old, New}
			}
		}
		p.Phases = append(p.Phases, ph)
	}
	if p.Phases == nil {
		p.Phases = []Phase{}
	}
	if p.Tables == nil {
		p.Tables = []string{}
	}
}

// placeTriggerRemoval puts each table's dual-write trigger removal right
// after the last contract statement of the changes it serves, in the same
// transaction as their column changes: nothing fires in between, a statement
// the plan runs later in contract (a data statement that waited for the
// swap) does not fire a trigger that names columns gone by then, and a
// rollback recreates the trigger before it refills columns, so the refill
// keeps other columns as they were.
func placeTriggerRemoval(contract, removal []Statement, frags []*fragment, narrow func(table string, done map[int]bool) (before, after string)) []Statement {
	served := map[string]map[int]bool{} // table -> changes whose sync it is
	for _, f := range frags {
		for _, s := range f.syncs {
			if served[s.Table] == nil {
				served[s.Table] = map[int]bool{}
			}
			served[s.Table][s.Change] = true
		}
		for _, b := range f.backfills {
			if served[b.Table] == nil {
				served[b.Table] = map[int]bool{}
			}
			served[b.Table][b.Change] = true
		}
	}
	byTable := map[string][]Statement{}
	var order []string
	for _, st := range removal {
		if _, seen := byTable[st.Table]; !seen {
			order = append(order, st.Table)
		}
		byTable[st.Table] = append(byTable[st.Table], st)
	}
	out := append([]Statement{}, contract...)
	for _, table := range order {
		// The last contract statement of each served change, in order.
		var ends []int
		for i, st := range out {
			if !served[table][st.Change] || st.Table == "" {
				continue
			}
			if n := len(ends); n > 0 && out[ends[n-1]].Change == st.Change {
				ends[n-1] = i
			} else {
				ends = append(ends, i)
			}
		}
		if len(ends) == 0 {
			out = append(out, byTable[table]...)
			continue
		}
		// Between two swaps the function is narrowed to the changes not
		// swapped yet: a statement in between (a data statement that
		// waited for the first swap) must not fire a body naming a column
		// the first swap renamed.
		done := map[int]bool{}
		var inserts []struct {
			at    int
			stmts []Statement
		}
		for k, at := range ends {
			done[out[at].Change] = true
			if k == len(ends)-1 {
				inserts = append(inserts, struct {
					at    int
					stmts []Statement
				}{at, byTable[table]})
				break
			}
			d := map[int]bool{}
			for c := range done {
				d[c] = true
			}
			before, after := narrow(table, d)
			inserts = append(inserts, struct {
				at    int
				stmts []Statement
			}{at, []Statement{ddl(table, LockNone, "the trigger function from here on keeps only the columns not swapped yet", after, before)}})
		}
		for k := len(inserts) - 1; k >= 0; k-- {
			at := inserts[k].at
			for i := range inserts[k].stmts {
				inserts[k].stmts[i].Change = out[at].Change
			}
			rest := append([]Statement{}, out[at+1:]...)
			out = append(append(out[:at+1], inserts[k].stmts...), rest...)
		}
	}
	return out
}

// ComputeHash recomputes the plan's hash from its phases, to tell whether a
// plan.json was edited after it was planned.
func (p *Plan) ComputeHash() string { return hashPlan(p.Phases, p.AppVersion) }

// Seal sets the plan's hash from what it runs; call it after changing
// Phases or AppVersion.
func (p *Plan) Seal() { p.Hash = p.ComputeHash() }

// hashPlan is hashPhases, extended by the app version when there is one (so
// plans without one keep the hash they always had).
func hashPlan(phases []Phase, av *AppVersion) string {
	h := hashPhases(phases)
	if av == nil {
		return h
	}
	b, _ := json.Marshal(av)
	sum := sha256.Sum256(append([]byte(h), b...))
	return hex.EncodeToString(sum[:])
}

// mergeBackfills makes one backfill per table: in backfill mode the sync
// trigger keeps every column the UPDATE does not set, so two backfills of one
// table would each leave the other's columns empty (and a NOT VALID check on
// them would refuse the row); one pass also rewrites the table once, not twice.
func mergeBackfills(bs []BackfillStep) []BackfillStep {
	var out []BackfillStep
	at := map[string]int{}
	for _, b := range bs {
		i, seen := at[b.Table]
		if !seen {
			at[b.Table] = len(out)
			out = append(out, b)
			continue
		}
		m := out[i]
		merged := newBackfill(m.Table, m.Key, m.RowEstimate, append(append([]Assignment{}, m.Set...), b.Set...))
		merged.Change = m.Change
		out[i] = merged
	}
	return out
}

// hashPhases identifies a plan by what it runs; file names are left out so the
// hash is the same before and after the plan is written.
func hashPhases(phases []Phase) string {
	cp := make([]Phase, len(phases))
	copy(cp, phases)
	for i := range cp {
		cp[i].Files = nil
	}
	b, _ := json.Marshal(cp)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// lookupTable finds a table or fails with the nearest name.
func lookupTable(s *schema.Snapshot, c change.Change, name string) (*schema.Table, error) {
	t, ok := s.Table(name)
	if !ok {
		return nil, &PlanError{Pos: c.Pos, Msg: (&schema.MissingTableError{Name: name, Suggestion: schema.Suggest(name, s.TableNames())}).Error()}
	}
	return t, nil
}

// lookupTableColumn finds the change's table and column.
func lookupTableColumn(s *schema.Snapshot, c change.Change) (*schema.Table, *schema.Column, error) {
	t, err := lookupTable(s, c, c.Table)
	if err != nil {
		return nil, nil, err
	}
	col, err := lookupColumn(c, t, c.Column)
	if err != nil {
		return nil, nil, err
	}
	return t, col, nil
}

// lookupColumn finds a column or fails with the nearest name.
func lookupColumn(c change.Change, t *schema.Table, name string) (*schema.Column, error) {
	col, ok := t.Column(name)
	if !ok {
		msg := fmt.Sprintf("column %s of table %s does not exist", name, t.QName())
		if sug := schema.Suggest(name, t.ColumnNames()); sug != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", sug)
		}
		return nil, &PlanError{Pos: c.Pos, Msg: msg}
	}
	return col, nil
}

// refuseColumnExists fails when the table already has the column.
func refuseColumnExists(c change.Change, t *schema.Table, name string) error {
	if _, ok := t.Column(name); ok {
		return &PlanError{Pos: c.Pos, Msg: fmt.Sprintf("column %s of table %s already exists", name, t.QName())}
	}
	return nil
}

// backfillKey returns the columns keyset batches walk: the primary key, else
// a unique index over NOT NULL columns.
func backfillKey(c change.Change, t *schema.Table) ([]string, error) {
	if pk := t.PrimaryKeyColumns(); len(pk) > 0 {
		return pk, nil
	}
	if key := t.UniqueNotNullKey(); key != nil {
		return key, nil
	}
	return nil, &PlanError{Pos: c.Pos, Msg: fmt.Sprintf("table %s has neither a primary key nor a unique index over NOT NULL columns: a backfill cannot walk it in batches; add a primary key first", t.QName())}
}

// q quotes an identifier; qq quotes "schema.name".
func q(s string) string  { return change.QuoteIdent(s) }
func qq(s string) string { return change.QuoteQualified(s) }

// ddl is a transactional statement.
func ddl(table, lock, why, sql string, rollback ...string) Statement {
	return Statement{SQL: sql, Lock: lock, Transactional: true, Rollback: rollback, Table: table, Why: why}
}

// concurrent is a statement that must run outside a transaction block.
func concurrent(table, why, sql string, rollback ...string) Statement {
	return Statement{SQL: sql, Lock: LockShareUpdateExclusive, Transactional: false, Rollback: rollback, Table: table, Why: why}
}
