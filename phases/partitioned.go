package phases

import (
	"fmt"
	"strings"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/schema"
)

// asWrittenOnPartitioned plans a change PostgreSQL cannot make on a
// partitioned table the way phasekit makes it elsewhere (CREATE INDEX
// CONCURRENTLY, ADD CONSTRAINT ... USING INDEX, a NOT VALID foreign key): the
// change alone, as written, in phase, with a warning naming what it costs
// (cost) and how a team avoids it (avoid), and what N+1 must not expect
// before the phase (deploy, as the usual recipe says it).
func asWrittenOnPartitioned(s *schema.Snapshot, t *schema.Table, c change.Change, phase Kind, lock, why, deploy, cost, avoid, rollback string) (*fragment, error) {
	sql := c.Replay
	if c.Kind == change.CreateIndex {
		sql = c.SQL
	}
	if sql == "" {
		return nil, &PlanError{Pos: c.Pos, Msg: fmt.Sprintf("table %s is partitioned: PostgreSQL cannot %s there, and this change cannot be run alone as written; write it as a statement of its own", t.QName(), cost)}
	}
	f := newFragment()
	f.deploy = deploy
	// PostgreSQL attaches a partition's matching index or foreign key to the
	// new one instead of building another, and dropping the new one drops
	// them with it: the rollback makes them again.
	rollbacks := append([]string{rollback}, restorePartitions(s, t, c)...)
	f.add(phase, ddl(t.QName(), lock, why+"; but PostgreSQL cannot "+cost+" on a partitioned table: as written, "+avoidCost(lock), sql, rollbacks...))
	f.findings = append(f.findings, Finding{Rule: RuleUnknown, Severity: Warning,
		Message: fmt.Sprintf("%s on partitioned table %s runs as written (PostgreSQL cannot %s there): %s; to avoid that, %s, in migrations of your own", c.Kind, t.QName(), cost, avoidCost(lock), avoid)})
	return f, nil
}

func avoidCost(lock string) string {
	if lock == LockAccessExclusive {
		return "reads and writes of every partition wait while it runs"
	}
	return "writes to every partition wait while it runs"
}

// restorePartitions makes again, each only if it is gone, what the
// partitions of t (at any depth) held before c that c's own rollback may
// drop with it: their indexes (for an index or a unique constraint) and
// their foreign keys to the same table (for a foreign key).
func restorePartitions(s *schema.Snapshot, t *schema.Table, c change.Change) []string {
	var out []string
	for _, p := range partitionsOf(s, t.QName()) {
		pn := p.QName()
		switch c.Kind {
		case change.CreateIndex, change.AddUnique, change.AddPrimaryKey:
			for _, ix := range p.Indexes {
				if ix.Constraint != "" {
					out = append(out, restorePartitionConstraint(pn, ix.Constraint, constraintDef(p, ix.Constraint)))
					continue
				}
				out = append(out, strings.Replace(ix.Definition, " INDEX ", " INDEX IF NOT EXISTS ", 1))
			}
		case change.AddForeignKey:
			for _, con := range p.Constraints {
				if con.Type == schema.ForeignKey && con.RefTable == c.RefTable {
					out = append(out, restorePartitionConstraint(pn, con.Name, con.Definition))
				}
			}
		}
	}
	return out
}

func constraintDef(t *schema.Table, name string) string {
	for _, con := range t.Constraints {
		if con.Name == name {
			return con.Definition
		}
	}
	return ""
}

// restorePartitionConstraint adds a constraint again unless it is there.
func restorePartitionConstraint(table, name, def string) string {
	return fmt.Sprintf(`DO $phasekit$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = %s::regclass AND conname = %s) THEN ALTER TABLE %s ADD CONSTRAINT %s %s; END IF; END $phasekit$`,
		change.QuoteLiteral(qq(table)), change.QuoteLiteral(name), qq(table), q(name), def)
}

// partitionsOf lists the partitions of table at every depth, by name.
func partitionsOf(s *schema.Snapshot, table string) []*schema.Table {
	var out []*schema.Table
	for _, name := range sortedTableNames(s) {
		if t := s.Tables[name]; t.PartitionOf == table {
			out = append(out, t)
			out = append(out, partitionsOf(s, name)...)
		}
	}
	return out
}

// enforceWhy says why a constraint run as written on a partitioned table is
// in its phase (enforcePhases' reasons speak of NOT VALID and VALIDATE).
func enforceWhy(phase Kind) string {
	if phase == Contract {
		return "N is gone (it may write rows this forbids): enforce from now on, existing rows checked at once"
	}
	return "on columns this migration adds, which N does not write"
}

// planPartitionedIndex builds an index of a partitioned table the way that
// lets writes go on, when the replay shows what the file's statement built
// (after): the index ON ONLY the parent (no data, invalid for now), each
// partition's index CONCURRENTLY under the name PostgreSQL gave it, then
// each attached, which makes the parent's valid. nil when the replay does
// not show one new index on every partition, or a partition is itself
// partitioned, or one's index was attached instead of built: the caller
// runs the statement as written.
func planPartitionedIndex(s, after *schema.Snapshot, t *schema.Table, c change.Change) *fragment {
	tn := t.QName()
	type part struct{ table, name, def string }
	var parts []part
	for _, name := range sortedTableNames(s) {
		p := s.Tables[name]
		if p.PartitionOf != tn {
			continue
		}
		pa, ok := after.Tables[name]
		if p.Partitioned || !ok {
			return nil
		}
		had := map[string]bool{}
		for _, ix := range p.Indexes {
			had[ix.Name] = true
		}
		var added []schema.Index
		for _, ix := range pa.Indexes {
			if !had[ix.Name] {
				added = append(added, ix)
			}
		}
		if len(added) != 1 {
			return nil
		}
		def, err := change.IndexVariant(added[0].Definition, false, true)
		if err != nil {
			return nil
		}
		parts = append(parts, part{name, schema.QualifiedName(p.Schema, added[0].Name), def})
	}
	if len(parts) == 0 {
		return nil
	}
	only, err := change.IndexVariant(c.SQL, true, false)
	if err != nil {
		return nil
	}
	f := newFragment()
	phase, _, deploy := createIndexPhase(c)
	f.deploy = deploy
	parent := qq(schema.QualifiedName(t.Schema, c.Constraint))
	dropParent := "DROP INDEX IF EXISTS " + parent
	f.add(phase, ddl(tn, LockShare, "the index on the partitioned table alone (ON ONLY): no rows read, invalid until every partition's is attached", only, dropParent))
	for _, p := range parts {
		f.add(phase, concurrent(p.table, "this partition's index, built while reads and writes go on", p.def,
			"DROP INDEX CONCURRENTLY IF EXISTS "+qq(p.name)))
	}
	for _, p := range parts {
		// Dropping the parent's index drops the attached ones with it.
		f.add(phase, ddl(tn, LockShareUpdateExclusive, "attach the partition's index: no scan; the last one makes the parent's valid",
			fmt.Sprintf("ALTER INDEX %s ATTACH PARTITION %s", parent, qq(p.name)), dropParent))
	}
	return f
}
