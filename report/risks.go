package report

import (
	"fmt"
	"sort"
	"strings"
	"time"

	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/phasekit/phasekit/compat/outcome"
	"github.com/phasekit/phasekit/internal/human"
	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/pipeline"
)

// risks collects what can go wrong: findings the plan leaves to the
// reviewer, dependent views, functions and triggers, table sizes, missing
// keys, long locks and backfills, irreversible phases, and the verify result.
func (b *builder) risks() {
	r := b.r
	add := func(level string, phase int, title, detail string) {
		r.Risks = append(r.Risks, Risk{Level: level, Phase: phase, Title: title, Detail: detail})
	}
	contractN := 0
	backfillN := 0
	for _, ph := range r.Phases {
		switch ph.Kind {
		case phases.Contract:
			contractN = ph.N
		case phases.Backfill:
			backfillN = ph.N
		}
	}
	lastOr := func(n int) int {
		if n > 0 {
			return n
		}
		return len(r.Phases)
	}

	// The verify result first: it is the strongest evidence either way.
	if v := r.Verify; v != nil {
		switch {
		case v.Plan != "" && v.Plan != r.Plan.Hash:
			add(RiskHigh, 0, "Verify result is for another plan",
				fmt.Sprintf("the result was recorded for plan %s, this plan is %s: run phasekit verify on this plan", phases.ShortHash(v.Plan), phases.ShortHash(r.Plan.Hash)))
		case !v.Passed:
			add(RiskHigh, 0, "phasekit verify failed", strings.Join(v.Failures, "; "))
		}
	}

	// Findings the plan does not resolve by itself.
	for _, f := range r.Plan.Findings {
		if f.Allowed != "" {
			continue
		}
		switch {
		case f.Rule == phases.RuleUnknown:
			add(RiskHigh, 1, "Statement phasekit does not know", fmt.Sprintf("%s: %s", f.Pos, f.Message))
		case f.Rule == phases.RuleDependentFunction:
			add(RiskWarn, lastOr(contractN), "Dependent function", f.Message)
		case f.Rule == phases.RuleLockTimeout:
			// phasekit apply sets lock_timeout itself and retries.
		case f.Severity == phases.Warning:
			add(RiskWarn, 0, phases.Rules[f.Rule].Summary, f.Message)
		}
	}

	// Views the plan drops and recreates, and views reading changed columns.
	byPhase := map[int][]string{}
	for v, n := range b.viewPhase {
		byPhase[n] = append(byPhase[n], v)
	}
	for n, vs := range byPhase {
		sort.Strings(vs)
		add(RiskWarn, n, "Dependent views dropped and recreated",
			fmt.Sprintf("%s: dropped and created again over the new column in one transaction, under ACCESS EXCLUSIVE; queries on them wait until it commits. The plan recreates their definitions and options, not their grants or comments: check those.", strings.Join(vs, ", ")))
	}
	for _, t := range r.Tables {
		var other []string
		for _, v := range t.Views {
			if !b.views[v] {
				other = append(other, v)
			}
		}
		if len(other) > 0 {
			add(RiskInfo, lastOr(contractN), "Views read the changed columns",
				fmt.Sprintf("%s read columns of %s that the plan changes; the plan keeps them working: check they return the same after contract", strings.Join(other, ", "), t.Name))
		}
	}

	// The tables themselves.
	for _, t := range r.Tables {
		if t.View {
			continue
		}
		if len(t.Triggers) > 0 {
			add(RiskWarn, lastOr(backfillN), "Table has its own triggers",
				fmt.Sprintf("%s has triggers %s: they fire for every row the backfill updates (the sync trigger runs last and keeps the other columns as they were), which slows it, and their functions must still work with the new shape", t.Name, strings.Join(t.Triggers, ", ")))
		}
		if t.Rows >= largeRows || t.Bytes >= largeBytes {
			add(RiskWarn, 0, "Large table", fmt.Sprintf("%s: %s rows, %s: every full pass (backfill, scan, rewrite) takes long, and strong locks on it queue many queries", t.Name, humanRows(t.Rows), human.Bytes(t.Bytes)))
		}
		if t.Known && len(t.PrimaryKey) == 0 {
			if len(t.UniqueKey) > 0 {
				add(RiskWarn, 0, "No primary key", fmt.Sprintf("%s has no primary key: the backfill walks the unique index on (%s); logical replication cannot identify its rows for UPDATE and DELETE", t.Name, strings.Join(t.UniqueKey, ", ")))
			} else {
				add(RiskHigh, 0, "No key", fmt.Sprintf("%s has neither a primary key nor a unique index over NOT NULL columns: a backfill cannot walk it in batches", t.Name))
			}
		}
	}
	if applied := r.Applied(); len(applied) > 0 {
		add(RiskInfo, 0, "Plan already applied here", fmt.Sprintf("the ledger of %s records: %s; the live tables reflect it", b.cat.Source, strings.Join(applied, ", ")))
	} else if b.cat != nil && b.cat.Snapshot != nil && r.Plan.SchemaFingerprint != "" {
		if got := phases.Fingerprint(b.cat.Snapshot, r.Plan.Tables); got != r.Plan.SchemaFingerprint {
			add(RiskWarn, 0, "Live tables differ from the planned ones",
				fmt.Sprintf("the structure of %s in %s is not the one the plan was made against: the schema drifted, or the plan ran without phasekit's ledger (phasekit apply refuses to start on drift)", strings.Join(r.Plan.Tables, ", "), b.cat.Source))
		}
	}

	unknownSizes := false
	for _, ph := range r.Phases {
		for _, s := range ph.Statements {
			if !s.Duration.Known {
				unknownSizes = true
			}
			if s.Blocks.blocksTraffic() && s.Hold.Known && !s.Hold.Instant {
				level := RiskInfo
				if s.Hold.Duration >= longHold {
					level = RiskWarn
				}
				detail := fmt.Sprintf("statement %d (%s) holds %s on %s for %s (%s): %s wait meanwhile", s.N, orDash(s.Why), s.Lock, s.Table, s.Hold, s.CostNote, strings.Join(trafficList(s.Blocks), " and "))
				if s.Hold.Duration >= migrations.DefaultDDLStatementTimeout {
					level = RiskHigh
					detail += fmt.Sprintf("; longer than phasekit apply's statement_timeout of %s for such statements, so apply would cancel it", migrations.DefaultDDLStatementTimeout)
				}
				if level != RiskInfo {
					add(level, ph.N, "Long lock on "+s.Table, detail)
				}
			}
			if !s.Transactional && isConcurrentDDL(s.SQL) {
				add(RiskInfo, ph.N, "Runs outside a transaction",
					fmt.Sprintf("statement %d: if it fails half-way it leaves an invalid index behind (pg_index.indisvalid = false); drop it before retrying", s.N))
			}
			if s.RollbackTime.Known && !s.RollbackTime.Instant && s.RollbackTime.Duration >= longHold {
				add(RiskWarn, ph.N, "Slow rollback",
					fmt.Sprintf("rolling back statement %d rewrites %s in one transaction: %s, under %s", s.N, s.Table, s.RollbackTime, s.Lock))
			}
		}
		for _, bf := range ph.Backfills {
			if !bf.Duration.Known {
				unknownSizes = true
				continue
			}
			if bf.Duration.Duration >= longBackfill {
				level := RiskWarn
				if bf.Duration.Duration >= veryLongBackfill {
					level = RiskHigh
				}
				add(level, ph.N, "Long backfill",
					fmt.Sprintf("%s: %s rows at %s take %s. Each batch holds its rows' locks for about %s; every row gets a new version, so the table can grow until vacuumed, and replicas must keep up (phasekit apply --max-replication-lag)", bf.Step.Table, humanRows(bf.Rows), humanRate(r.Rates.Backfill), bf.Duration, bf.BatchHold))
			}
		}
		if !ph.Reversible {
			add(RiskWarn, ph.N, "Rollback does not restore data", fmt.Sprintf("rolling back %s cannot bring back the data it removes", ph.Kind))
		}
	}
	if unknownSizes {
		what := "pass --dsn to read row counts from the live catalogue"
		if b.cat != nil {
			what = "some tables were never analysed and have no row count: ANALYZE them, or judge from their size"
		}
		add(RiskInfo, 0, "Durations not estimated", what)
	}
	if r.Verify == nil {
		add(RiskInfo, 0, "Compatibility not verified", "no verify result given: run phasekit verify --out result.json and pass --verify")
	}
	sort.SliceStable(r.Risks, func(i, j int) bool { return riskRank(r.Risks[i].Level) > riskRank(r.Risks[j].Level) })
	for i := range r.Phases {
		for _, k := range r.Risks {
			if k.Phase == r.Phases[i].N {
				r.Phases[i].Risks = append(r.Phases[i].Risks, k)
			}
		}
	}
}

func riskRank(level string) int {
	switch level {
	case RiskHigh:
		return 2
	case RiskWarn:
		return 1
	}
	return 0
}

func trafficList(b Blocks) []string {
	var out []string
	if b.Reads {
		out = append(out, "reads")
	}
	if b.Writes {
		out = append(out, "writes")
	}
	return out
}

// isConcurrentDDL reports a CREATE or DROP INDEX CONCURRENTLY.
func isConcurrentDDL(sql string) bool {
	tree, err := pg_query.Parse(sql)
	if err != nil {
		return false
	}
	for _, raw := range tree.Stmts {
		if raw.Stmt.GetIndexStmt().GetConcurrent() || raw.Stmt.GetDropStmt().GetConcurrent() {
			return true
		}
	}
	return false
}

// archives reports whether contract keeps data under phasekit_archived_*
// names for phasekit purge, read from the statements' identifiers.
func archives(p *phases.Plan) bool {
	ph := p.Phase(phases.Contract)
	if ph == nil {
		return false
	}
	for _, st := range ph.Statements {
		for _, t := range Highlight(st.SQL) {
			if t.Class == TokPlain && strings.Contains(t.Text, "phasekit_archived_") {
				return true
			}
		}
	}
	return false
}

// riskCounts counts the high risks and the warnings.
func (r *Review) riskCounts() (high, warn int) {
	for _, k := range r.Risks {
		switch k.Level {
		case RiskHigh:
			high++
		case RiskWarn:
			warn++
		}
	}
	return high, warn
}

// checklist is the sign-off list, each line with the evidence the report has.
func (b *builder) checklist() {
	r := b.r
	add := func(state, text, evidence string) {
		r.Checklist = append(r.Checklist, CheckItem{Text: text, Evidence: evidence, State: state})
	}
	add(CheckOK, "The plan reviewed is the plan that runs",
		fmt.Sprintf("plan.json hash %s; phasekit apply refuses a plan.json edited since, and a schema that drifted from the one planned against", phases.ShortHash(r.Plan.Hash)))

	var blocking []string
	for _, ph := range r.Phases {
		for _, s := range ph.Statements {
			if s.Blocks.blocksTraffic() {
				blocking = append(blocking, fmt.Sprintf("%s #%d", ph.Kind, s.N))
			}
		}
	}
	if len(blocking) > 0 {
		add(CheckJudgement, "Every lock that blocks the app's reads or writes is acceptable at the time it runs",
			fmt.Sprintf("%d statement(s): %s; longest hold %s; phasekit apply waits at most %s per attempt for a lock", len(blocking), strings.Join(blocking, ", "), r.Hold, migrations.DefaultDDLLockTimeout))
	}

	dur := fmt.Sprintf("database time %s at the rates of %s", r.Database, rateSourceShort(r.Rates))
	state := CheckJudgement
	if !r.Database.Known {
		state = CheckAttention
		var missing []string
		for _, t := range r.Tables {
			if t.Rows < 0 && !t.View {
				missing = append(missing, t.Name)
			}
		}
		dur = "durations unknown: no row count for " + strings.Join(missing, ", ")
		if b.cat == nil {
			dur += " (pass --dsn)"
		}
	}
	add(state, "The estimated durations fit the change window", dur)

	var lossy []string
	for _, ph := range r.Phases {
		if !ph.Reversible {
			lossy = append(lossy, string(ph.Kind))
		}
	}
	if len(lossy) > 0 {
		add(CheckAttention, "Rollback read for every phase", "rollback of "+strings.Join(lossy, ", ")+" does not restore data")
	} else {
		add(CheckJudgement, "Rollback read for every phase", "every phase's rollback restores the data; rollback time "+b.rollbackTotal().String())
	}

	high, warn := r.riskCounts()
	st := CheckJudgement
	if high > 0 {
		st = CheckAttention
	}
	add(st, "Each risk is resolved or accepted", fmt.Sprintf("%d high, %d warning(s)", high, warn))

	switch v := r.Verify; {
	case v == nil:
		add(CheckAttention, "App versions N and N+1 verified against every phase boundary", "no verify result: run phasekit verify")
	case v.Plan != "" && v.Plan != r.Plan.Hash:
		add(CheckAttention, "App versions N and N+1 verified against every phase boundary", "the verify result is for plan "+phases.ShortHash(v.Plan))
	case v.Passed:
		add(CheckOK, "App versions N and N+1 verified against every phase boundary", fmt.Sprintf("phasekit verify passed: %d cells, on %s", countCells(v), v.Sandbox))
	default:
		add(CheckAttention, "App versions N and N+1 verified against every phase boundary", fmt.Sprintf("phasekit verify failed: %d failure(s)", len(v.Failures)))
	}

	if bd := r.Binding; bd != nil {
		deploys := 0
		for _, s := range bd.Steps {
			if s.Kind == phases.StepDeploy {
				deploys++
			}
		}
		add(CheckJudgement, "Deploy timeline agreed with the release owner",
			fmt.Sprintf("pipeline %s: %d deploy steps, %s of bake windows", bd.Pipeline, deploys, fmtBake(r.Bake)))
	} else {
		add(CheckAttention, "Deploy timeline agreed with the release owner", "no pipeline: pass --pipeline to bind the phases to the deploy stages")
	}
	if len(r.Gate) > 0 {
		add(CheckJudgement, "Contract runs only once its gate is open", fmt.Sprintf("%d condition(s), listed under the contract phase", len(r.Gate)))
	}
	for _, ph := range r.Phases {
		if len(ph.Backfills) > 0 {
			add(CheckJudgement, "Replication lag, disk and vacuum can absorb the backfill", "every backfilled row gets a new version; phasekit apply --max-replication-lag pauses on lagging replicas")
			break
		}
	}
	if archives(r.Plan) {
		add(CheckJudgement, "Purge of the archived columns scheduled", "contract keeps the old data under phasekit_archived_* names until phasekit purge")
	}
}

func (b *builder) rollbackTotal() Estimate {
	e := instant
	for _, ph := range b.r.Phases {
		e = e.Add(ph.RollbackTime)
	}
	return e
}

// countCells counts the cells of the phased matrix.
func countCells(v *outcome.Result) int {
	n := 0
	for _, b := range v.Phased.Boundaries {
		n += len(b.Cells) + len(b.Shadow) + len(b.Zeta)
	}
	return n
}

// rateSourceShort names where the backfill rate comes from, briefly.
func rateSourceShort(r Rates) string {
	s := r.Backfill.Source
	if i := strings.Index(s, " ("); i > 0 {
		s = s[:i]
	}
	if i := strings.Index(s, ":"); i > 0 {
		s = s[:i]
	}
	return s
}

// fmtBake writes a total bake time as "9h" or "9h30m".
func fmtBake(d time.Duration) string {
	if d == 0 {
		return "no time"
	}
	return pipeline.FormatDuration(d)
}
