package report

import (
	"fmt"
	"sort"
	"strings"
	"time"

	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/compat/outcome"
	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/schema"
)

// Options are what a review knows beside the plan; every field is optional.
type Options struct {
	// PlanDir is the plan's directory, as the reader should see it.
	PlanDir string
	// Catalogue is the live database's catalogue (report --dsn): row counts
	// and sizes, keys, triggers and views. Without it durations are
	// estimated only where the plan itself knows a row count.
	Catalogue *Catalogue
	// Rates are the throughputs estimates use; nil means BenchRates.
	Rates *Rates
	// Binding replaces the plan's own binding (report --pipeline).
	Binding *phases.Binding
	// Verify is a phasekit verify result for the plan.
	Verify *outcome.Result
	// Generator names the program in the footer, e.g. "phasekit v1.4.0".
	Generator string
}

// Review is everything the DBA review shows, computed from a plan and the
// options: plain data, rendered by WriteHTML and WriteMarkdown.
type Review struct {
	Plan      *phases.Plan
	PlanDir   string
	Title     string
	Binding   *phases.Binding
	Verify    *outcome.Result
	Generator string
	// Sizes says where row counts come from.
	Sizes  string
	Rates  Rates
	Tables []TableInfo
	Phases []PhaseReview
	Risks  []Risk
	// Gate are the conditions that must hold before contract runs.
	Gate      []string
	Checklist []CheckItem
	// Timeline is the binding's steps, or without a pipeline the phases
	// around one deploy of N+1.
	Timeline []TimelineStep
	// Database is the database time of all phases together.
	Database Estimate
	// Bake is the sum of the pipeline's bake windows.
	Bake time.Duration
	// Hold is the longest time a lock blocks the app's reads or writes.
	Hold Estimate
}

// Applied lists the phases the live database's ledger records as begun:
// "expand done", "backfill running".
func (r *Review) Applied() []string {
	var out []string
	for _, ph := range r.Phases {
		if ph.State != "" && ph.State != migrations.StatePending {
			out = append(out, string(ph.Kind)+" "+ph.State)
		}
	}
	return out
}

// TableInfo is one relation the plan touches, as the live catalogue has it.
type TableInfo struct {
	Name string
	// Rows is the row count (-1 unknown) and RowsSource where it comes from.
	Rows       int64
	RowsSource string
	Bytes      int64 // -1 unknown
	View       bool
	// Known is true when the live catalogue has the relation.
	Known      bool
	PrimaryKey []string
	// UniqueKey is a unique index over NOT NULL columns, for a table
	// without a primary key.
	UniqueKey []string
	Triggers  []string
	// Views read the table's columns the plan changes.
	Views []string
}

// PhaseReview is one phase with what the reviewer must know about it.
type PhaseReview struct {
	N          int // 1-based
	Kind       phases.Kind
	AppsBefore []string
	AppsAfter  []string
	// Runs says when the phase runs: the deploy stage it is bound to, or
	// what must be deployed before it.
	Runs string
	// Step is the phase's step number in Timeline (0 when not bound).
	Step        int
	DeployAfter string
	Statements  []StatementReview
	Backfills   []BackfillReview
	// Transactions is the number of migration files (transactions and
	// statements run outside one).
	Transactions int
	Duration     Estimate
	// Hold is the longest a lock of this phase blocks reads or writes.
	Hold Estimate
	// Lock is the strongest lock mode, Blocks what it blocks.
	Lock         string
	Blocks       Blocks
	Reversible   bool
	RollbackTime Estimate
	Files        []string
	Risks        []Risk
	// State is the phase's state in the ledger of the live database
	// ("done", "pending", ...; "" without one).
	State string
}

// StatementReview is one statement of a phase.
type StatementReview struct {
	N             int
	SQL           string
	Why           string
	Table         string
	Lock          string
	Blocks        Blocks
	Transactional bool
	// Tx numbers the statement's transaction within the phase; TxSize is
	// how many statements share it; File is its migration file.
	Tx     int
	TxSize int
	File   string
	Cost   Cost
	// CostNote explains the cost ("rewrites the table and its indexes").
	CostNote string
	Rows     int64
	Duration Estimate
	// Hold is how long the statement's lock is held: from the statement to
	// the end of its transaction.
	Hold         Estimate
	Rollback     []string
	RollbackTime Estimate
}

// BackfillReview is one backfill of the backfill phase.
type BackfillReview struct {
	Step     phases.BackfillStep
	Rows     int64
	Duration Estimate
	// Verify is the final count that must be 0.
	Verify Estimate
	// BatchHold is how long a batch holds its rows' locks (apply's batch
	// target).
	BatchHold time.Duration
}

// Risk levels.
const (
	RiskHigh = "high"
	RiskWarn = "warning"
	RiskInfo = "info"
)

// Risk is something that can go wrong, and where.
type Risk struct {
	Level string
	// Phase is the 1-based phase it belongs to, 0 for the whole plan.
	Phase  int
	Title  string
	Detail string
}

// Checklist states.
const (
	CheckOK        = "ok"        // the evidence supports it
	CheckAttention = "attention" // the evidence shows a problem
	CheckJudgement = ""          // a reviewer's call
)

// CheckItem is one line of the sign-off checklist.
type CheckItem struct {
	Text     string
	Evidence string
	State    string
}

// TimelineStep is one step of the release timeline.
type TimelineStep struct {
	phases.BindingStep
	N int
	// PhaseN is the 1-based phase a phase step runs (0 otherwise).
	PhaseN   int
	Estimate Estimate
}

// Thresholds behind the risks.
const (
	largeRows        = 1_000_000
	largeBytes       = 1 << 30
	longHold         = time.Second
	longBackfill     = 10 * time.Minute
	veryLongBackfill = time.Hour
)

// Build reviews a plan. It reads nothing: every input is in p and opts.
func Build(p *phases.Plan, opts Options) *Review {
	r := &Review{Plan: p, PlanDir: opts.PlanDir, Binding: p.Binding, Verify: opts.Verify, Generator: opts.Generator, Rates: BenchRates}
	if opts.Binding != nil {
		r.Binding = opts.Binding
	}
	if opts.Rates != nil {
		r.Rates = *opts.Rates
	}
	r.Title = title(p)
	b := &builder{r: r, cat: opts.Catalogue, views: map[string]bool{}, viewPhase: map[string]int{}}
	b.tables()
	b.phases()
	b.timeline()
	b.risks()
	b.gate()
	b.checklist()
	return r
}

type builder struct {
	r   *Review
	cat *Catalogue
	// views are relations the plan's statements drop or create as views,
	// viewPhase the phase that does it.
	views     map[string]bool
	viewPhase map[string]int
}

// label names a plan version with its pipeline label: "N (v41)".
func (b *builder) label(vs []string) []string {
	var out []string
	for _, v := range vs {
		l := v
		if bd := b.r.Binding; bd != nil {
			switch {
			case v == phases.Old && bd.Old != "" && bd.Old != v:
				l = v + " (" + bd.Old + ")"
			case v == phases.New && bd.New != "" && bd.New != v:
				l = v + " (" + bd.New + ")"
			}
		}
		out = append(out, l)
	}
	return out
}

// title says what the plan changes, in words.
func title(p *phases.Plan) string {
	var parts []string
	for _, c := range p.Changes {
		if d := describeChange(c); d != "" {
			parts = append(parts, d)
		}
	}
	switch {
	case len(parts) == 0:
		return "phasekit plan " + phases.ShortHash(p.Hash)
	case len(parts) > 2:
		return strings.Join(parts[:2], "; ") + fmt.Sprintf(" and %d more", len(parts)-2)
	}
	return strings.Join(parts, "; ")
}

func describeChange(c change.Change) string { return cell(phases.Title(c)) }

// tables fills in the relations the plan touches, with their sizes.
func (b *builder) tables() {
	r := b.r
	for _, ph := range r.Plan.Phases {
		for _, st := range ph.Statements {
			for _, v := range viewsIn(st.SQL) {
				b.views[v] = true
			}
		}
	}
	switch {
	case b.cat != nil:
		r.Sizes = "live catalogue of " + b.cat.Source + " (pg_class.reltuples, pg_total_relation_size)"
	default:
		r.Sizes = "no live catalogue (pass --dsn): row counts only where the plan estimated them"
	}
	changed := changedColumns(r.Plan.Changes)
	for _, name := range r.Plan.Tables {
		ti := TableInfo{Name: name, Rows: -1, Bytes: -1, View: b.views[name]}
		if b.cat != nil && b.cat.Snapshot != nil {
			s := b.cat.Snapshot
			if t, ok := s.Tables[name]; ok {
				ti.Known = true
				ti.Rows, ti.Bytes, ti.RowsSource = b.liveRows(t)
				ti.PrimaryKey = t.PrimaryKeyColumns()
				if len(ti.PrimaryKey) == 0 {
					ti.UniqueKey = t.UniqueNotNullKey()
				}
				for _, tr := range t.Triggers {
					if !strings.HasPrefix(tr.Name, "zz_phasekit") {
						ti.Triggers = append(ti.Triggers, tr.Name)
					}
				}
				ti.Views = dependentViews(s, name, changed[name])
			} else if _, ok := s.Views[name]; ok {
				ti.Known, ti.View = true, true
			}
		}
		if ti.Rows < 0 && !ti.View {
			for _, ph := range r.Plan.Phases {
				for _, bf := range ph.Backfills {
					if bf.Table == name && bf.RowEstimate > 0 {
						ti.Rows, ti.RowsSource = bf.RowEstimate, "the plan's estimate"
					}
				}
			}
		}
		r.Tables = append(r.Tables, ti)
	}
}

// liveRows is a table's row count and size: reltuples, or n_live_tup when
// never analysed; a partitioned table sums its partitions.
func (b *builder) liveRows(t *schema.Table) (rows, bytes int64, source string) {
	name := t.QName()
	if t.Partitioned {
		var n, sz int64
		src := "sum of its partitions"
		for _, part := range b.cat.Snapshot.Tables {
			if part.PartitionOf != name {
				continue
			}
			pr, pb, _ := b.liveRows(part)
			if pr < 0 {
				return -1, sz + pb, "partitions never analysed"
			}
			n, sz = n+pr, sz+pb
		}
		return n, sz, src
	}
	if t.RowEstimate >= 0 {
		return t.RowEstimate, t.SizeBytes, "pg_class.reltuples"
	}
	if n, ok := b.cat.LiveTuples[name]; ok {
		return n, t.SizeBytes, "pg_stat_user_tables.n_live_tup (never analysed)"
	}
	return -1, t.SizeBytes, "never analysed"
}

// changedColumns maps each table to the columns the changes rename, retype,
// drop or merge.
func changedColumns(cs []change.Change) map[string][]string {
	out := map[string][]string{}
	for _, c := range cs {
		if c.Table == "" {
			continue
		}
		if c.Column != "" {
			out[c.Table] = append(out[c.Table], c.Column)
		}
		out[c.Table] = append(out[c.Table], c.From...)
	}
	return out
}

// dependentViews lists views reading one of cols of table, and the views
// built on those, sorted.
func dependentViews(s *schema.Snapshot, table string, cols []string) []string {
	if len(cols) == 0 {
		return nil
	}
	found := map[string]bool{}
	for name, v := range s.Views {
		for _, d := range v.DependsOn {
			for _, c := range cols {
				if d.Relation == table && d.Column == c {
					found[name] = true
				}
			}
		}
	}
	for grew := true; grew; {
		grew = false
		for name, v := range s.Views {
			if found[name] {
				continue
			}
			for _, dep := range v.DependsOnViews {
				if found[dep] {
					found[name], grew = true, true
					break
				}
			}
		}
	}
	out := make([]string, 0, len(found))
	for n := range found {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// viewsIn names the views a statement drops or creates, read from its
// parse tree.
func viewsIn(sql string) []string {
	tree, err := pg_query.Parse(sql)
	if err != nil {
		return nil
	}
	var out []string
	for _, raw := range tree.Stmts {
		n := raw.Stmt
		switch {
		case n.GetViewStmt() != nil:
			out = append(out, rangeVarName(n.GetViewStmt().View))
		case n.GetCreateTableAsStmt() != nil && n.GetCreateTableAsStmt().Objtype == pg_query.ObjectType_OBJECT_MATVIEW:
			out = append(out, rangeVarName(n.GetCreateTableAsStmt().Into.GetRel()))
		case n.GetDropStmt() != nil:
			d := n.GetDropStmt()
			if d.RemoveType != pg_query.ObjectType_OBJECT_VIEW && d.RemoveType != pg_query.ObjectType_OBJECT_MATVIEW {
				continue
			}
			for _, obj := range d.Objects {
				var parts []string
				for _, item := range obj.GetList().GetItems() {
					parts = append(parts, item.GetString_().GetSval())
				}
				if len(parts) == 1 {
					parts = append([]string{"public"}, parts...)
				}
				out = append(out, strings.Join(parts, "."))
			}
		}
	}
	return out
}

func rangeVarName(rv *pg_query.RangeVar) string {
	if rv == nil {
		return ""
	}
	return schema.QualifiedName(rv.Schemaname, rv.Relname)
}

// table finds a relation's info.
func (b *builder) table(name string) *TableInfo {
	for i := range b.r.Tables {
		if b.r.Tables[i].Name == name {
			return &b.r.Tables[i]
		}
	}
	return nil
}

// rows is a table's row count: as the review's tables have it, else (a
// table only a statement's SQL names) from the live catalogue.
func (b *builder) rows(name string) int64 {
	if t := b.table(name); t != nil {
		return t.Rows
	}
	if b.cat != nil && b.cat.Snapshot != nil {
		if t, ok := b.cat.Snapshot.Table(name); ok {
			n, _, _ := b.liveRows(t)
			return n
		}
	}
	return -1
}

// phases reviews each phase: statements with their transactions, costs,
// durations and lock hold times.
func (b *builder) phases() {
	r := b.r
	p := r.Plan
	// Which transaction (migration file) each statement runs in.
	type txOf struct {
		n, size int
		file    string
	}
	txs := map[[2]int]txOf{} // (phase, statement) -> transaction
	perPhase := map[int]int{}
	next := map[int]int{}
	for _, st := range migrations.Steps(p) {
		perPhase[st.PhaseIndex]++
		if st.Backfill != nil {
			continue
		}
		file := fmt.Sprintf("%06d_%s", st.Version, st.Name)
		for range st.Statements {
			txs[[2]int{st.PhaseIndex, next[st.PhaseIndex]}] = txOf{perPhase[st.PhaseIndex], len(st.Statements), file}
			next[st.PhaseIndex]++
		}
	}
	cl := newClassifier()
	for pi, ph := range p.Phases {
		pr := PhaseReview{
			N: pi + 1, Kind: ph.Kind, AppsBefore: b.label(ph.AppsBefore), AppsAfter: b.label(ph.AppsAfter),
			DeployAfter: ph.DeployAfter, Reversible: ph.Reversible, Files: ph.Files,
			Transactions: perPhase[pi], Duration: instant, Hold: instant, Lock: phases.LockNone, RollbackTime: instant,
		}
		if ph.DeployBefore != "" {
			pr.Runs = "after: " + ph.DeployBefore
		}
		for si, st := range ph.Statements {
			tx := txs[[2]int{pi, si}]
			sr := StatementReview{
				N: si + 1, SQL: st.SQL, Why: st.Why, Table: st.Table, Lock: st.Lock, Blocks: BlocksOf(st.Lock),
				Transactional: st.Transactional, Tx: tx.n, TxSize: tx.size, File: tx.file, Rollback: st.Rollback,
				Rows: -1,
			}
			cost, passes, note, rel := cl.classify(st.SQL, st.Table)
			sr.Cost, sr.CostNote = cost, note
			if cost == CostUpdate {
				// Its table lock lets writes go on, but every row it updates
				// or deletes stays locked until it commits.
				sr.Blocks.Writes = true
			}
			if sr.Table == "" {
				sr.Table = rel
			}
			sr.Duration = instant
			if sr.Cost != CostCatalog {
				sr.Rows = b.rows(rel)
				sr.Duration = estimateRows(sr.Rows, passes, r.Rates.rate(sr.Cost))
			}
			sr.RollbackTime = instant
			rcl := newClassifier()
			for _, rb := range st.Rollback {
				c, n, _, rbRel := rcl.classify(rb, st.Table)
				if c == CostCatalog {
					continue
				}
				sr.RollbackTime = sr.RollbackTime.Add(estimateRows(b.rows(rbRel), n, r.Rates.rate(c)))
			}
			pr.Statements = append(pr.Statements, sr)
			if lockRank(st.Lock) > lockRank(pr.Lock) {
				pr.Lock = st.Lock
			}
			for _, v := range viewsIn(st.SQL) {
				if _, seen := b.viewPhase[v]; !seen {
					b.viewPhase[v] = pr.N
				}
			}
		}
		// A lock is held from its statement to the end of the transaction.
		for i := range pr.Statements {
			s := &pr.Statements[i]
			s.Hold = s.Duration
			if s.Transactional {
				for j := i + 1; j < len(pr.Statements) && pr.Statements[j].Tx == s.Tx; j++ {
					s.Hold = s.Hold.Add(pr.Statements[j].Duration)
				}
			}
			pr.Duration = pr.Duration.Add(s.Duration)
			pr.RollbackTime = pr.RollbackTime.Add(s.RollbackTime)
			if s.Blocks.blocksTraffic() {
				pr.Hold = longer(pr.Hold, s.Hold)
			}
		}
		for _, bf := range ph.Backfills {
			rows := b.rows(bf.Table)
			if rows < 0 && bf.RowEstimate > 0 {
				rows = bf.RowEstimate
			}
			br := BackfillReview{Step: bf, Rows: rows, BatchHold: migrations.DefaultBatchTarget,
				Duration: estimateRows(rows, 1, r.Rates.Backfill), Verify: estimateRows(rows, 1, r.Rates.Scan)}
			pr.Backfills = append(pr.Backfills, br)
			pr.Duration = pr.Duration.Add(br.Duration).Add(br.Verify)
			if lockRank(phases.LockRowExclusive) > lockRank(pr.Lock) {
				pr.Lock = phases.LockRowExclusive
			}
		}
		pr.Blocks = BlocksOf(pr.Lock)
		if b.cat != nil && b.cat.Ledger != nil {
			for _, ps := range b.cat.Ledger.Phases {
				if ps.Kind == string(ph.Kind) {
					pr.State = ps.State
				}
			}
		}
		r.Phases = append(r.Phases, pr)
	}
	r.Database, r.Hold = instant, instant
	for _, ph := range r.Phases {
		r.Database = r.Database.Add(ph.Duration)
		r.Hold = longer(r.Hold, ph.Hold)
	}
}

// longer is the longer of two estimates; unknown wins, as it could be long.
func longer(a, b Estimate) Estimate {
	switch {
	case !a.Known:
		return a
	case !b.Known:
		return b
	case a.Instant:
		return b
	case b.Instant:
		return a
	case b.Duration > a.Duration:
		return b
	}
	return a
}

// timeline lays out the release: the binding's steps, or the phases around
// one deploy of N+1.
func (b *builder) timeline() {
	r := b.r
	phaseN := func(k phases.Kind) int {
		for _, ph := range r.Phases {
			if ph.Kind == k {
				return ph.N
			}
		}
		return 0
	}
	var steps []phases.BindingStep
	if r.Binding != nil {
		steps = r.Binding.Steps
	} else {
		var contract *phases.Phase
		for i := range r.Plan.Phases {
			ph := &r.Plan.Phases[i]
			if ph.Kind == phases.Contract {
				contract = ph
				continue
			}
			steps = append(steps, phases.BindingStep{Kind: phases.StepPhase, Phase: ph.Kind, Title: "run " + string(ph.Kind),
				When: "before N+1 is deployed", Versions: unique(ph.AppsBefore, ph.AppsAfter)})
		}
		steps = append(steps, phases.BindingStep{Kind: phases.StepDeploy, Title: "deploy N+1", When: "after the phases before it",
			Versions: []string{phases.Old, phases.New}})
		if contract != nil {
			steps = append(steps,
				phases.BindingStep{Kind: phases.StepGate, Title: "contract gate", When: contract.DeployBefore, Versions: []string{phases.New}},
				phases.BindingStep{Kind: phases.StepPhase, Phase: phases.Contract, Title: "run contract", When: "after the gate opens",
					Versions: []string{phases.New}})
		}
	}
	for i, s := range steps {
		ts := TimelineStep{BindingStep: s, N: i + 1}
		if s.Kind == phases.StepPhase {
			ts.PhaseN = phaseN(s.Phase)
			if ts.PhaseN > 0 {
				ts.Estimate = r.Phases[ts.PhaseN-1].Duration
				ph := &r.Phases[ts.PhaseN-1]
				ph.Step = ts.N
				if r.Binding != nil {
					ph.Runs = s.When
				}
			}
		}
		if s.Kind == phases.StepBake {
			if d, err := time.ParseDuration(s.Bake); err == nil {
				r.Bake += d
			}
		}
		r.Timeline = append(r.Timeline, ts)
	}
	for i := range r.Phases {
		if r.Phases[i].Runs == "" {
			r.Phases[i].Runs = "before N+1 is deployed"
		}
	}
}

func unique(lists ...[]string) []string {
	var out []string
	seen := map[string]bool{}
	for _, l := range lists {
		for _, v := range l {
			if !seen[v] {
				seen[v] = true
				out = append(out, v)
			}
		}
	}
	return out
}

// gate lists the conditions before contract.
func (b *builder) gate() {
	r := b.r
	contract := r.Plan.Phase(phases.Contract)
	if contract == nil {
		return
	}
	var conds []string
	for _, s := range r.Timeline {
		if s.Kind == phases.StepGate && r.Binding != nil {
			// pipeline.Bind joins the gate's checks with commas.
			conds = splitTopLevel(s.When)
		}
	}
	if r.Binding == nil && contract.DeployBefore != "" {
		conds = []string{contract.DeployBefore}
	}
	var backfills []string
	for _, ph := range r.Plan.Phases {
		for _, bf := range ph.Backfills {
			backfills = append(backfills, fmt.Sprintf("backfill of %s verified: `%s` returns 0", bf.Table, bf.Verify))
		}
	}
	var out []string
	for _, c := range conds {
		if c == "backfill verified" && len(backfills) > 0 {
			out = append(out, backfills...)
			backfills = nil
			continue
		}
		out = append(out, c)
	}
	out = append(out, backfills...)
	if r.Binding == nil {
		out = append(out, fmt.Sprintf("no %s instance connected any more (pg_stat_activity.application_name)", phases.Old))
	}
	if r.Verify != nil {
		out = append(out, "phasekit verify passed for this plan (every required cell, shadow read and zeta pairing)")
	}
	r.Gate = out
}

// splitTopLevel splits a sentence at commas outside parentheses.
func splitTopLevel(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, c := range s {
		switch c {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	if rest := strings.TrimSpace(s[start:]); rest != "" {
		out = append(out, rest)
	}
	return out
}
