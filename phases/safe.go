package phases

import (
	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/schema"
)

func init() {
	register(change.Safe, planPassThrough)
	register(change.CreateTable, planPassThrough)
	register(change.Unknown, planPassThrough)
}

// planPassThrough runs a statement as written in expand: it is already safe
// while N and N+1 share the database, or it is unknown, in which case the
// plan carries an unknown-statement finding at its position for review.
func planPassThrough(_ *schema.Snapshot, c change.Change) (*fragment, error) {
	f := newFragment()
	why := c.Reason
	lock := LockAccessExclusive
	if c.Kind == change.Unknown {
		why = "NOT IN THE CATALOGUE, review by hand: " + c.Reason
	}
	f.add(Expand, Statement{SQL: c.SQL, Lock: lock, Transactional: true, Table: c.Table, Why: why})
	return f, nil
}
