package report

import (
	"fmt"
	"math"
	"strings"
	"time"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// Rate is a throughput in rows per second, with where it comes from.
type Rate struct {
	RowsPerSecond float64 `json:"rows_per_second"`
	Source        string  `json:"source"`
}

// Rates are the throughputs an estimate divides row counts by, one per kind
// of work a statement does.
type Rates struct {
	// Backfill is phasekit apply's keyset-batched backfill.
	Backfill Rate `json:"backfill"`
	// Update is one UPDATE of every row (the naive migration, and the
	// rollback of contract that refills a column).
	Update Rate `json:"update"`
	// Rewrite is a table rewrite (ALTER COLUMN ... TYPE).
	Rewrite Rate `json:"rewrite"`
	// Scan is a full scan (VALIDATE CONSTRAINT, SET NOT NULL, a backfill's
	// verify count).
	Scan Rate `json:"scan"`
	// Index is an index build.
	Index Rate `json:"index"`
}

// benchSource is where BenchRates come from.
const benchSource = "make bench, docs/BENCHMARKS.md (2026-11-24: 10M rows, medians of 3 runs, 2-core AMD EPYC, PostgreSQL 15)"

// BenchRates are the rates `make bench` recorded in docs/BENCHMARKS.md
// (latest run, 2026-11-24, 10M rows on the 2-core CI machine kind, under a
// pgbench workload: backfill and UPDATE are the medians of 3 runs, the
// rewrite a single run). No benchmark times a bare scan or an index build: both
// take the ALTER TYPE rewrite's rate, which reads and writes every row, so
// they err on the long side.
var BenchRates = Rates{
	Backfill: Rate{184104, benchSource + ": phasekit backfill"},
	Update:   Rate{293010, benchSource + ": naive UPDATE"},
	Rewrite:  Rate{1247481, benchSource + ": ALTER TYPE rewrite"},
	Scan:     Rate{1247481, benchSource + ": no scan benchmark, the ALTER TYPE rewrite's rate"},
	Index:    Rate{1247481, benchSource + ": no index benchmark, the ALTER TYPE rewrite's rate"},
}

// Cost is the kind of work a statement does, which decides how its
// duration grows with the table.
type Cost string

// Costs, cheapest first.
const (
	CostCatalog  Cost = "catalog"  // catalogue only: instant once its lock is granted
	CostScan     Cost = "scan"     // reads every row
	CostIndex    Cost = "index"    // builds an index (reads every row, sorts)
	CostUpdate   Cost = "update"   // updates every row in one statement
	CostRewrite  Cost = "rewrite"  // rewrites the whole table
	CostBackfill Cost = "backfill" // updates every row in keyset batches
)

var costRank = map[Cost]int{CostCatalog: 0, CostScan: 1, CostIndex: 2, CostUpdate: 3, CostRewrite: 4, CostBackfill: 5}

// rate picks the rate for a cost.
func (r Rates) rate(c Cost) Rate {
	switch c {
	case CostScan:
		return r.Scan
	case CostIndex:
		return r.Index
	case CostUpdate:
		return r.Update
	case CostRewrite:
		return r.Rewrite
	case CostBackfill:
		return r.Backfill
	}
	return Rate{}
}

// classifier decides statements' costs with PostgreSQL's parser; it
// remembers the NOT NULL checks validated earlier in the plan, which let SET
// NOT NULL skip its scan.
type classifier struct {
	notNullChecks map[string]string // constraint name -> "table.column" it checks
	validated     map[string]bool   // "table.column" with a validated IS NOT NULL check
}

func newClassifier() *classifier {
	return &classifier{notNullChecks: map[string]string{}, validated: map[string]bool{}}
}

// classify returns the statement's cost, how many passes over the table it
// makes, a note for the reader ("" when there is nothing to say) and the
// table it works on as its parse tree names it ("" when none).
func (cl *classifier) classify(sql, table string) (cost Cost, passes int, note, relation string) {
	tree, err := pg_query.Parse(sql)
	if err != nil || len(tree.Stmts) == 0 {
		return CostCatalog, 1, "not parsed: estimated as catalogue-only", ""
	}
	cost, passes = CostCatalog, 1
	raise := func(c Cost, p int, n string, rel *pg_query.RangeVar) {
		if costRank[c] > costRank[cost] {
			cost, passes, note = c, p, n
			if rv := rangeVarName(rel); rel != nil && rel.Relname != "" {
				relation = rv
			}
		}
	}
	if table == "" {
		// Statements phasekit passes through name their table only in SQL.
		for _, raw := range tree.Stmts {
			n := raw.Stmt
			switch {
			case n.GetAlterTableStmt() != nil:
				table = rangeVarName(n.GetAlterTableStmt().Relation)
			case n.GetUpdateStmt() != nil:
				table = rangeVarName(n.GetUpdateStmt().Relation)
			case n.GetDeleteStmt() != nil:
				table = rangeVarName(n.GetDeleteStmt().Relation)
			case n.GetIndexStmt() != nil:
				table = rangeVarName(n.GetIndexStmt().Relation)
			}
		}
	}
	for _, raw := range tree.Stmts {
		n := raw.Stmt
		switch {
		case n.GetAlterTableStmt() != nil:
			rel := n.GetAlterTableStmt().Relation
			for _, cmdNode := range n.GetAlterTableStmt().Cmds {
				cmd := cmdNode.GetAlterTableCmd()
				if cmd == nil {
					continue
				}
				switch cmd.Subtype {
				case pg_query.AlterTableType_AT_AlterColumnType:
					raise(CostRewrite, 1, "rewrites the table and its indexes", rel)
				case pg_query.AlterTableType_AT_ValidateConstraint:
					if col, ok := cl.notNullChecks[cmd.Name]; ok {
						cl.validated[col] = true
					}
					raise(CostScan, 1, "scans the table to validate", rel)
				case pg_query.AlterTableType_AT_SetNotNull:
					if cl.validated[table+"."+cmd.Name] {
						note = "no scan: a validated CHECK (" + cmd.Name + " IS NOT NULL) proves it"
						continue
					}
					raise(CostScan, 1, "scans the table for NULLs", rel)
				case pg_query.AlterTableType_AT_AddConstraint:
					con := cmd.Def.GetConstraint()
					if con == nil {
						continue
					}
					switch con.Contype {
					case pg_query.ConstrType_CONSTR_CHECK:
						if col := notNullColumn(con.RawExpr); col != "" {
							cl.notNullChecks[con.Conname] = table + "." + col
							if !con.SkipValidation {
								cl.validated[table+"."+col] = true
							}
						}
						if !con.SkipValidation {
							raise(CostScan, 1, "scans the table to check every row", rel)
						}
					case pg_query.ConstrType_CONSTR_FOREIGN:
						if !con.SkipValidation {
							raise(CostScan, 1, "scans the table to check every reference", rel)
						}
					case pg_query.ConstrType_CONSTR_PRIMARY, pg_query.ConstrType_CONSTR_UNIQUE:
						if con.Indexname == "" {
							raise(CostIndex, 1, "builds the constraint's index", rel)
						}
					}
				}
			}
		case n.GetIndexStmt() != nil:
			ix := n.GetIndexStmt()
			if ix.Concurrent {
				raise(CostIndex, 2, "CONCURRENTLY: two scans, waits for older transactions between them", ix.Relation)
			} else {
				raise(CostIndex, 1, "builds the index", ix.Relation)
			}
		case n.GetUpdateStmt() != nil:
			raise(CostUpdate, 1, "one statement over every row", n.GetUpdateStmt().Relation)
		case n.GetDeleteStmt() != nil:
			raise(CostUpdate, 1, "one statement over every row", n.GetDeleteStmt().Relation)
		case n.GetSelectStmt() != nil:
			if from := n.GetSelectStmt().FromClause; len(from) > 0 {
				raise(CostScan, 1, "reads the table", from[0].GetRangeVar())
			}
		}
	}
	if relation == "" {
		relation = table
	}
	return cost, passes, note, relation
}

// notNullColumn returns col for an expression "col IS NOT NULL".
func notNullColumn(e *pg_query.Node) string {
	nt := e.GetNullTest()
	if nt == nil || nt.Nulltesttype != pg_query.NullTestType_IS_NOT_NULL {
		return ""
	}
	ref := nt.Arg.GetColumnRef()
	if ref == nil || len(ref.Fields) == 0 {
		return ""
	}
	return ref.Fields[len(ref.Fields)-1].GetString_().GetSval()
}

// Estimate is an estimated duration.
type Estimate struct {
	Duration time.Duration `json:"duration_ns"`
	// Known is false when a row count it needs is unknown.
	Known bool `json:"known"`
	// Instant marks catalogue-only work: milliseconds once the lock is granted.
	Instant bool `json:"instant"`
}

// instant is the estimate of catalogue-only work.
var instant = Estimate{Known: true, Instant: true}

// estimateRows is rows at a rate, times passes.
func estimateRows(rows int64, passes int, r Rate) Estimate {
	if rows < 0 || r.RowsPerSecond <= 0 {
		return Estimate{}
	}
	secs := float64(rows) * float64(max(passes, 1)) / r.RowsPerSecond
	return Estimate{Duration: time.Duration(secs * float64(time.Second)), Known: true}
}

// Add sums two estimates: unknown if either is.
func (e Estimate) Add(o Estimate) Estimate {
	return Estimate{Duration: e.Duration + o.Duration, Known: e.Known && o.Known, Instant: e.Instant && o.Instant}
}

// String reads "instant", "unknown", "< 1 ms", "≈ 40 ms", "≈ 4.2 s",
// "≈ 12 min", "≈ 2.3 h".
func (e Estimate) String() string {
	switch {
	case !e.Known:
		return "unknown"
	case e.Instant:
		return "instant"
	case e.Duration < time.Millisecond:
		return "< 1 ms"
	}
	return "≈ " + humanDuration(e.Duration)
}

// humanDuration rounds a duration to what a reviewer needs: its order of
// magnitude and two significant figures.
func humanDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return "< 1 ms"
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d < time.Minute:
		return fmt.Sprintf("%.0f s", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%.0f min", math.Max(1, math.Round(d.Minutes())))
	default:
		return fmt.Sprintf("%.1f h", d.Hours())
	}
}

// humanRows writes 1234567 as "1,234,567".
func humanRows(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// humanRate writes a rate as "137,268 rows/s".
func humanRate(r Rate) string {
	return humanRows(int64(math.Round(r.RowsPerSecond))) + " rows/s"
}
