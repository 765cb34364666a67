package phases

import (
	"fmt"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/schema"
)

// ArchivePrefix starts the name of every column or table a contract archives
// instead of dropping, so rollback stays possible until phasekit purge drops
// it. Archived tables move to the schema phasekit.
const ArchivePrefix = "phasekit_archived_"

// ArchiveStamp starts the comment that records when an object was archived:
// "phasekit archive of NAME; archived_at_epoch=SECONDS".
const ArchiveStamp = "phasekit archive of "

func archivedName(name string) string {
	n := ArchivePrefix + name
	if len(n) > 63 {
		n = n[:63]
	}
	return n
}

// stamp comments an archived object with the time it was archived. The time
// is the server's at apply time, so it goes through EXECUTE.
func stamp(kind, object, original string) string {
	return fmt.Sprintf("DO $phasekit$ BEGIN EXECUTE format('COMMENT ON %s %s IS %%L', %s || floor(extract(epoch FROM now()))::bigint); END $phasekit$",
		kind, object, change.QuoteLiteral(ArchiveStamp+original+"; archived_at_epoch="))
}

// archiveColumn adds the contract steps that archive a column in place of
// DROP COLUMN: it stops being required (N+1 inserts rows without it), loses
// its default, takes the archive name and the stamp. Rollback undoes each.
//
// refill, if given, runs in the rollback right after the column is back under
// its name (rows N+1 wrote after contract have it empty).
func archiveColumn(f *fragment, c change.Change, t *schema.Table, col *schema.Column, refill ...string) error {
	tn := t.QName()
	name := archivedName(col.Name)
	if _, taken := t.Column(name); taken {
		return &PlanError{Pos: c.Pos, Msg: fmt.Sprintf("column %s.%s exists: an earlier archive of %s is still there; purge it first (phasekit purge)", tn, name, col.Name)}
	}
	if col.NotNull {
		f.add(Contract, ddl(tn, LockAccessExclusive, "the archived column stops being required",
			fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s DROP NOT NULL", qq(tn), q(col.Name)),
			fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET NOT NULL", qq(tn), q(col.Name))))
	}
	if col.Default != "" {
		f.add(Contract, ddl(tn, LockAccessExclusive, "the archived column loses its default",
			fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s DROP DEFAULT", qq(tn), q(col.Name)),
			fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET DEFAULT %s", qq(tn), q(col.Name), col.Default)))
	}
	f.add(Contract, ddl(tn, LockAccessExclusive, "archive instead of drop: rollback stays possible until phasekit purge",
		fmt.Sprintf("ALTER TABLE %s RENAME COLUMN %s TO %s", qq(tn), q(col.Name), q(name)),
		append([]string{fmt.Sprintf("ALTER TABLE %s RENAME COLUMN %s TO %s", qq(tn), q(name), q(col.Name))}, refill...)...))
	// The stamp replaces the column's comment; rollback gives it back.
	before := "NULL"
	if col.Comment != "" {
		before = change.QuoteLiteral(col.Comment)
	}
	f.add(Contract, ddl(tn, LockNone, "record when it was archived, for phasekit purge",
		stamp("COLUMN", qq(tn)+"."+q(name), tn+"."+col.Name),
		fmt.Sprintf("COMMENT ON COLUMN %s.%s IS %s", qq(tn), q(name), before)))
	return nil
}

// archiveTable adds the contract steps that archive a table in place of DROP
// TABLE: renamed, then moved into phasekit's schema, and stamped.
func archiveTable(f *fragment, t *schema.Table) {
	tn := t.QName()
	name := archivedName(t.Name)
	moved := schema.QualifiedName(SyncSchema, name)
	f.add(Contract, ddl(tn, LockAccessExclusive, "archive instead of drop: rollback stays possible until phasekit purge",
		fmt.Sprintf("ALTER TABLE %s RENAME TO %s", qq(tn), q(name)),
		fmt.Sprintf("ALTER TABLE %s RENAME TO %s", qq(schema.QualifiedName(t.Schema, name)), q(t.Name))))
	f.add(Contract, ddl(tn, LockAccessExclusive, "out of the application's schema",
		"CREATE SCHEMA IF NOT EXISTS "+q(SyncSchema)+"; "+fmt.Sprintf("ALTER TABLE %s SET SCHEMA %s", qq(schema.QualifiedName(t.Schema, name)), q(SyncSchema)),
		fmt.Sprintf("ALTER TABLE %s SET SCHEMA %s", qq(moved), q(t.Schema))))
	before := "NULL"
	if t.Comment != "" {
		before = change.QuoteLiteral(t.Comment)
	}
	f.add(Contract, ddl(tn, LockNone, "record when it was archived, for phasekit purge",
		stamp("TABLE", qq(moved), tn),
		fmt.Sprintf("COMMENT ON TABLE %s IS %s", qq(moved), before)))
}
