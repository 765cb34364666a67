package phases

import (
	"github.com/phasekit/phasekit/change"
)

// Rule is a lint rule: what a statement risks and the safe recipe.
type Rule struct {
	ID       string   `json:"id"`
	Severity Severity `json:"severity"`
	Summary  string   `json:"summary"`
	Recipe   string   `json:"recipe"`
}

// Rules is every lint rule, by id.
var Rules = map[string]Rule{}

func rule(id string, sev Severity, summary, recipe string) string {
	Rules[id] = Rule{ID: id, Severity: sev, Summary: summary, Recipe: recipe}
	return id
}

// Rule ids.
var (
	RuleRenameColumn   = rule("rename-column", Error, "renaming a column breaks every running N instance that uses the old name", "expand (add the new column), dual-write (trigger both ways), backfill, deploy N+1, contract (drop the old column, keep the data under the new name)")
	RuleRenameTable    = rule("rename-table", Error, "renaming a table breaks every running N instance that uses the old name", "expand (rename and leave an updatable view under the old name), deploy N+1, contract (drop the view)")
	RuleChangeType     = rule("change-type", Error, "changing a column type rewrites the table under ACCESS EXCLUSIVE and can break N", "expand (shadow column of the new type), dual-write, backfill, validate, contract (swap the columns)")
	RuleDropColumn     = rule("drop-column", Error, "dropping a column breaks every running N instance that reads or writes it", "expand (drop NOT NULL so N+1 can insert without it), deploy N+1 that no longer uses it, contract (drop it)")
	RuleDropTable      = rule("drop-table", Error, "dropping a table breaks every running N instance that uses it", "deploy N+1 that no longer uses it, contract (drop it)")
	RuleSetNotNull     = rule("set-not-null", Error, "SET NOT NULL scans the whole table under ACCESS EXCLUSIVE and fails on existing NULLs", "expand (CHECK (col IS NOT NULL) NOT VALID), backfill NULLs with a fill value, validate, contract (SET NOT NULL using the valid check, drop the check)")
	RuleRequiredColumn = rule("required-column", Error, "a NOT NULL column without a default fails on a table with rows and breaks N's inserts", "expand (add it nullable), deploy N+1 writing it, backfill, validate, contract (SET NOT NULL through a valid check)")
	RuleVolatileDef    = rule("volatile-default", Error, "a volatile default (random(), nextval(), serial) rewrites the whole table under ACCESS EXCLUSIVE", "expand (add the column without default, then SET DEFAULT), backfill existing rows in batches")
	RuleForeignKey     = rule("foreign-key-not-valid", Error, "ADD FOREIGN KEY scans both tables while holding SHARE ROW EXCLUSIVE on them", "expand (ADD CONSTRAINT ... NOT VALID), validate (VALIDATE CONSTRAINT under SHARE UPDATE EXCLUSIVE)")
	RuleCheck          = rule("check-not-valid", Error, "ADD CHECK scans the whole table under ACCESS EXCLUSIVE", "expand (ADD CONSTRAINT ... NOT VALID), validate (VALIDATE CONSTRAINT under SHARE UPDATE EXCLUSIVE)")
	RuleIndex          = rule("index-concurrently", Error, "CREATE INDEX without CONCURRENTLY blocks every write to the table while it builds", "expand (CREATE INDEX CONCURRENTLY, outside a transaction)")
	RuleDropIndex      = rule("drop-index-concurrently", Warning, "DROP INDEX without CONCURRENTLY takes ACCESS EXCLUSIVE on the table", "contract (DROP INDEX CONCURRENTLY, outside a transaction)")
	RuleUnique         = rule("unique-constraint", Error, "ADD UNIQUE builds its index under ACCESS EXCLUSIVE", "expand (CREATE UNIQUE INDEX CONCURRENTLY), then ADD CONSTRAINT ... UNIQUE USING INDEX")
	RulePrimaryKey     = rule("primary-key", Error, "ADD PRIMARY KEY builds its index and checks NOT NULL under ACCESS EXCLUSIVE", "expand (CREATE UNIQUE INDEX CONCURRENTLY, CHECK (col IS NOT NULL) NOT VALID), validate, contract (SET NOT NULL, ADD PRIMARY KEY USING INDEX)")
	RuleEnumRemove     = rule("enum-value-removal", Error, "PostgreSQL cannot drop an enum value; rows holding it and N writing it break", "a change spec remove_enum_value with a replacement: expand (the new enum type and a shadow column per column), dual-write mapping the value, backfill, contract (swap the columns and the types)")
	RuleEnumRename     = rule("enum-value-rename", Error, "renaming an enum value breaks N instances that write or compare the old label", "deploy N+1 reading both labels, then contract (RENAME VALUE, instant) once N is gone")
	RuleLockTimeout    = rule("lock-timeout", Warning, "DDL without lock_timeout can queue behind a long transaction and block every query behind it", "SET lock_timeout (e.g. '2s') before the DDL; phasekit apply always sets it and retries")
	RuleUnknown        = rule("unknown-statement", Warning, "phasekit does not know whether this statement is safe while N and N+1 share the database", "review it by hand; if it is safe, silence it with -- phasekit:allow unknown-statement REASON")
	RuleDefault        = rule("set-default", Info, "SET/DROP DEFAULT is metadata only, but N and N+1 see different defaults during the rollout", "expand (change the default), no backfill needed; DROP DEFAULT of a NOT NULL column waits for contract, since N may insert without it")
	RuleDropObject     = rule("drop-object", Warning, "dropping a view, function, type, sequence or trigger that N may still use breaks N", "deploy N+1 that no longer uses it, contract (drop it); dropped and created again in the same migration, it is a replacement and runs in expand")
	RuleReindex        = rule("reindex-concurrently", Warning, "REINDEX without CONCURRENTLY blocks every write to the table while it rebuilds", "REINDEX ... CONCURRENTLY, outside a transaction")
	RuleData           = rule("data-statement", Info, "a data statement runs as one statement: on a large table it holds row locks and writes WAL for the whole table at once", "keep it small, or batch it; phasekit runs it in the phase of the change it prepares")
	RuleResultType     = rule("result-type", Warning, "a column that changes type changes what queries returning it return: a statement prepared before the change is refused once per session after it ('cached plan must not change result type'), as after a plain ALTER TYPE", "drivers re-prepare on the next call (pgx does): retry that call, or deploy N+1 without statement caching for the swap")
	RuleNoOp           = rule("no-op", Info, "the statement changes nothing on this schema", "nothing to do: it is left out of the plan")
	RuleRecreatedIndex = rule("recreated-index", Info, "an index dropped and created again under the same name", "expand: build the new definition CONCURRENTLY under a temporary name (contract when it is UNIQUE); contract: drop the old index CONCURRENTLY and give the new one its name")
	RuleDeferred       = rule("deferred", Info, "a change runs later than its recipe's first phase, after an earlier change to the same object", "nothing to do: phasekit keeps statements that share an object in file order")
	RuleDataTravels    = rule("data-travels", Info, "a data statement runs in the phase of the later change it prepares", "nothing to do: the plan then treats rows N writes during the rollout as the file would")
)

// Findings applies the lint rules to changes as written, without a schema.
func Findings(changes []change.Change) []Finding {
	return findingsOf(changes)
}

func findingsOf(changes []change.Change) []Finding {
	var out []Finding
	lockTimeout := map[string]bool{} // by file
	warnedTimeout := map[string]bool{}
	created := map[string]bool{}
	for _, c := range changes {
		if c.Kind == change.CreateTable {
			created[c.Table] = true
			continue
		}
		if created[c.Table] {
			// No running code uses a table created earlier in the same
			// migration: nothing it does can break N or block its queries.
			continue
		}
		add := func(id, msg string) {
			r := Rules[id]
			f := Finding{Rule: id, Severity: r.Severity, Pos: c.Pos, Message: msg, Recipe: r.Recipe}
			for _, a := range c.Allowed {
				if a.Rule == id {
					f.Allowed = a.Reason
					if f.Allowed == "" {
						f.Allowed = "(no reason given)"
					}
				}
			}
			out = append(out, f)
		}
		if c.Kind == change.SessionSetting && c.Setting == "lock_timeout" {
			lockTimeout[c.Pos.File] = true
		}
		if recipeOf(c.Kind).Moves(c).LocksTable && !c.Spec && !lockTimeout[c.Pos.File] && !warnedTimeout[c.Pos.File] {
			warnedTimeout[c.Pos.File] = true
			add(RuleLockTimeout, "no SET lock_timeout before this DDL")
		}
		for _, f := range recipeOf(c.Kind).Lint(c) {
			add(f.Rule, f.Message)
		}
	}
	return out
}
