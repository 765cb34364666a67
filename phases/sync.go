package phases

import (
	"fmt"
	"sort"
	"strings"

	"github.com/phasekit/phasekit/change"
)

// sync keeps old columns (written by N) and new columns (written by N+1, or
// by nobody for a hidden shadow column) equal on every INSERT and UPDATE.
type sync struct {
	Table string
	Olds  []string
	News  []string
	// Up computes each new column from the old ones (bare column names).
	Up map[string]string
	// Down computes each old column from the new ones; empty when app code
	// never writes the new columns (a hidden shadow of a type change).
	Down map[string]string
	// Change is the index of the change the sync serves.
	Change int
}

// SyncSchema holds phasekit's trigger functions; it is phasekit's own and is
// left out of schema comparisons.
const SyncSchema = "phasekit"

// SyncTrigger is the name of the dual-write trigger on each table. BEFORE
// triggers fire in name order, so "zz_" makes it fire after the table's own
// triggers and see the row they produced.
const SyncTrigger = "zz_phasekit_sync"

// BackfillSetting is the transaction-local setting a backfill sets so the
// sync trigger keeps every column other than the filled ones as it was: a
// backfill must not let triggers such as "SET last_update = now()" rewrite
// rows it only fills.
const BackfillSetting = "phasekit.backfill"

// setBackfillMode puts the rest of the transaction in backfill mode.
var setBackfillMode = refillMode("on")

// refillMode puts the rest of the transaction in backfill mode for the
// given columns ("on" = the backfilled ones).
func refillMode(cols ...string) string {
	return fmt.Sprintf("SELECT set_config(%s, %s, true)", change.QuoteLiteral(BackfillSetting), change.QuoteLiteral(strings.Join(cols, ",")))
}

func syncFunction(table string) string {
	name := "sync_" + strings.ReplaceAll(table, ".", "_")
	if len(name) > 63 {
		name = name[:63]
	}
	return q(SyncSchema) + "." + q(name) + "()"
}

// syncTriggers builds one trigger function per table from every sync and
// backfill on it. It returns the dual-write statements and the contract
// statements that remove them.
//
// ownTriggers tells which tables have triggers of their own (other than
// phasekit's); unknown tables count as having some.
func syncTriggers(syncs []sync, backfills []BackfillStep, ownTriggers map[string]bool) (dualWrite, contract []Statement) {
	byTable := map[string][]sync{}
	for _, s := range syncs {
		byTable[s.Table] = append(byTable[s.Table], s)
	}
	filled := map[string][]Assignment{}
	for _, b := range backfills {
		filled[b.Table] = append(filled[b.Table], b.Set...)
	}
	var tables []string
	for t := range byTable {
		tables = append(tables, t)
	}
	for t := range filled {
		if _, ok := byTable[t]; !ok {
			tables = append(tables, t)
		}
	}
	sort.Strings(tables)
	dualWrite = append(dualWrite, Statement{
		SQL: "CREATE SCHEMA IF NOT EXISTS " + q(SyncSchema), Lock: LockNone, Transactional: true,
		Why: "phasekit's own schema for its trigger functions (kept; it holds nothing of the app's)",
	})
	for _, t := range tables {
		fn := syncFunction(t)
		create := syncFunctionSQL(t, byTable[t], filled[t], triggersOrUnknown(ownTriggers, t))
		when := ""
		if !triggersOrUnknown(ownTriggers, t) {
			// Evaluated by the executor, not PL/pgSQL: a backfill batch on a
			// table without triggers of its own does not call the function.
			when = fmt.Sprintf(" WHEN (current_setting(%s, true) IS DISTINCT FROM 'on')", change.QuoteLiteral(BackfillSetting))
		}
		trigger := fmt.Sprintf("CREATE TRIGGER %s BEFORE INSERT OR UPDATE ON %s FOR EACH ROW%s EXECUTE FUNCTION %s", SyncTrigger, qq(t), when, fn)
		dropTrigger := fmt.Sprintf("DROP TRIGGER IF EXISTS %s ON %s", SyncTrigger, qq(t))
		dropFunction := fmt.Sprintf("DROP FUNCTION IF EXISTS %s", fn)
		dualWrite = append(dualWrite,
			ddl(t, LockNone, "trigger function keeping old and new columns in sync", create, dropFunction),
			ddl(t, LockShareRowExclusive, "dual-write: every INSERT and UPDATE from N or N+1 fills both shapes", trigger, dropTrigger),
		)
		contract = append(contract,
			ddl(t, LockAccessExclusive, "stop dual-writing: N is gone", dropTrigger, create, trigger),
			ddl(t, LockNone, "remove the trigger function", dropFunction),
		)
	}
	return dualWrite, contract
}

// syncFunctionSQL creates (or replaces) a table's trigger function for the
// given syncs.
func syncFunctionSQL(table string, syncs []sync, filled []Assignment, ownTriggers bool) string {
	return fmt.Sprintf("CREATE OR REPLACE FUNCTION %s RETURNS trigger LANGUAGE plpgsql AS $phasekit$\n%s$phasekit$", syncFunction(table), syncBody(syncs, filled, ownTriggers))
}

// narrowedSync is the trigger function of a table once the changes in done
// have swapped their columns in contract: it keeps the other changes' columns
// in sync until their own swap, and names no column that is gone.
func narrowedSync(table string, syncs []sync, backfills []BackfillStep, ownTriggers map[string]bool, done map[int]bool) (before, after string) {
	var all, rest []sync
	gone := map[string]bool{}
	for _, s := range syncs {
		if s.Table != table {
			continue
		}
		all = append(all, s)
		if done[s.Change] {
			for _, n := range s.News {
				gone[n] = true
			}
			continue
		}
		rest = append(rest, s)
	}
	var filled, keptFilled []Assignment
	for _, b := range backfills {
		if b.Table != table {
			continue
		}
		for _, a := range b.Set {
			filled = append(filled, a)
			if !gone[a.Column] {
				keptFilled = append(keptFilled, a)
			}
		}
	}
	own := triggersOrUnknown(ownTriggers, table)
	return syncFunctionSQL(table, all, filled, own), syncFunctionSQL(table, rest, keptFilled, own)
}

func triggersOrUnknown(own map[string]bool, table string) bool {
	has, known := own[table]
	return has || !known
}

// syncBody writes the trigger function. With ownTriggers false, nothing but
// the backfill's own UPDATE can change a row in backfill mode, so that mode
// returns at once: a backfill then costs the table no more than a plain
// UPDATE. (A trigger added after planning shows as drift and is refused.)
func syncBody(syncs []sync, filled []Assignment, ownTriggers bool) string {
	var cols []string
	seen := map[string]bool{}
	for _, a := range filled {
		if !seen[a.Column] {
			seen[a.Column] = true
			cols = append(cols, a.Column)
		}
	}
	var b strings.Builder
	b.WriteString("DECLARE\n  keep text := coalesce(current_setting(" + change.QuoteLiteral(BackfillSetting) + ", true), '');\n")
	// Kept in the column's type when it is a built-in one; a type of a
	// schema (an enum a plan moves) is kept as text, so the function can be
	// created whatever the type is called at that moment (a rollback
	// recreates it before the type is back under its name).
	types := map[string]string{}
	for _, a := range filled {
		types[a.Column] = a.Type
	}
	if ownTriggers {
		for i, c := range cols {
			fmt.Fprintf(&b, "  kept_%d %s;\n", i, keptType(types[c]))
		}
	}
	b.WriteString("BEGIN\n")
	if !ownTriggers {
		b.WriteString("  -- Backfill mode: the UPDATE sets the new columns itself, and the table has\n")
		b.WriteString("  -- no trigger of its own that could change any other column.\n")
		b.WriteString("  IF TG_OP = 'UPDATE' AND keep = 'on' THEN\n    RETURN NEW;\n  END IF;\n")
	}
	b.WriteString("  -- Backfill mode: the UPDATE sets only the columns it fills; every other\n")
	b.WriteString("  -- column keeps its old value, whatever other triggers did to it.\n")
	if ownTriggers && len(cols) > 0 {
		b.WriteString("  IF TG_OP = 'UPDATE' AND keep = 'on' THEN\n")
		for i, c := range cols {
			fmt.Fprintf(&b, "    kept_%d := NEW.%s;\n", i, q(c))
		}
		b.WriteString("    NEW := OLD;\n")
		for i, c := range cols {
			fmt.Fprintf(&b, "    NEW.%s := kept_%d;\n", q(c), i)
		}
		b.WriteString("    RETURN NEW;\n  END IF;\n")
	}
	b.WriteString("  IF TG_OP = 'UPDATE' AND keep NOT IN ('', 'off', 'on') THEN\n")
	b.WriteString("    -- A rollback refilling the listed columns, while other columns may not\n")
	b.WriteString("    -- be back under their names yet: through jsonb, naming none of them.\n")
	// NEW as the base, every other column from OLD through jsonb: OLD
	// as the base would lose a column added since the row was written
	// (jsonb_populate_record reads no default of an attribute the stored
	// tuple lacks, PostgreSQL 15), to_jsonb(OLD) does not.
	b.WriteString("    NEW := jsonb_populate_record(NEW, to_jsonb(OLD) - string_to_array(keep, ','));\n")
	b.WriteString("    RETURN NEW;\n  END IF;\n")
	for _, s := range syncs {
		fmt.Fprintf(&b, "  -- %s -> %s\n", strings.Join(s.Olds, ", "), strings.Join(s.News, ", "))
		up := assignments(s.News, s.Up, s.Olds)
		if len(s.Down) == 0 {
			// N+1 never writes the new columns: always derive them.
			b.WriteString(indent(up, "  "))
			continue
		}
		down := assignments(s.Olds, s.Down, s.News)
		b.WriteString("  IF TG_OP = 'INSERT' THEN\n")
		fmt.Fprintf(&b, "    IF %s THEN\n", allNull(s.News))
		b.WriteString("      -- written by N (or by N+1 leaving the new shape empty)\n")
		b.WriteString(indent(up, "      "))
		b.WriteString("    ELSE\n      -- written by N+1\n")
		b.WriteString(indent(down, "      "))
		b.WriteString("    END IF;\n")
		fmt.Fprintf(&b, "  ELSIF (%s) AND NOT (%s) THEN\n", changed(s.Olds), changed(s.News))
		b.WriteString(indent(up, "    "))
		fmt.Fprintf(&b, "  ELSIF (%s) AND NOT (%s) THEN\n", changed(s.News), changed(s.Olds))
		b.WriteString(indent(down, "    "))
		b.WriteString("  END IF;\n")
	}
	b.WriteString("  RETURN NEW;\nEND;\n")
	return b.String()
}

// assignments renders "NEW.col := expr;" lines, reading NEW.* columns.
func assignments(targets []string, exprs map[string]string, reads []string) string {
	var b strings.Builder
	for _, t := range targets {
		e, err := change.QualifyColumns(exprs[t], "new", reads)
		if err != nil {
			// Expressions were parsed when the change was read.
			e = exprs[t]
		}
		fmt.Fprintf(&b, "NEW.%s := %s;\n", q(t), e)
	}
	return b.String()
}

func allNull(cols []string) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = "NEW." + q(c) + " IS NULL"
	}
	return strings.Join(parts, " AND ")
}

func changed(cols []string) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = fmt.Sprintf("NEW.%s IS DISTINCT FROM OLD.%s", q(c), q(c))
	}
	return strings.Join(parts, " OR ")
}

func indent(s, pre string) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString(pre + line + "\n")
	}
	return b.String()
}

// newBackfill builds the backfill of the given assignments over a table.
func newBackfill(table string, key []string, rows int64, set []Assignment) BackfillStep {
	var sets, differs []string
	for _, a := range set {
		sets = append(sets, fmt.Sprintf("%s = %s", q(a.Column), a.Expr))
		differs = append(differs, fmt.Sprintf("%s IS DISTINCT FROM (%s)", q(a.Column), a.Expr))
	}
	where := strings.Join(differs, " OR ")
	return BackfillStep{
		Table: table, Key: key, Set: set, Where: where, RowEstimate: rows,
		Verify: fmt.Sprintf("SELECT count(*) FROM %s WHERE %s", qq(table), where),
		SQL:    fmt.Sprintf("%s;\nUPDATE %s SET %s WHERE %s", setBackfillMode, qq(table), strings.Join(sets, ", "), where),
	}
}

// keptType is the type a backfill-mode variable holds a column in.
func keptType(t string) string {
	if t == "" || strings.Contains(t, ".") || strings.Contains(t, `"`) {
		return "text"
	}
	return t
}
