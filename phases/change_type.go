package phases

import (
	"fmt"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/schema"
)

func init() { register(change.ChangeType, planChangeType) }

// planChangeType: a shadow column of the new type is filled by a trigger and a
// backfill, validated NOT NULL if the column was, and renamed over the old
// column in contract; views reading it are recreated around the swap. With
// new_name (change spec) the new column is visible to N+1 under that name and
// synced both ways with the down expression.
func planChangeType(s *schema.Snapshot, c change.Change) (*fragment, error) {
	t, col, err := lookupTableColumn(s, c)
	if err != nil {
		return nil, err
	}
	up := c.Up
	if up == "" {
		up = fmt.Sprintf("%s::%s", q(col.Name), c.Type)
	}
	hidden := c.NewName == ""
	name := c.NewName
	if hidden {
		name = shadowName(col.Name)
	}
	down := c.Down
	if down == "" {
		down = fmt.Sprintf("%s::%s", q(name), col.Type)
	}
	if hidden {
		// The rollback rebuilds the old column from the shadow, which then
		// carries the column's name again.
		down = fmt.Sprintf("%s::%s", q(shadowName(col.Name)), col.Type)
	}
	f, err := planReshape(s, c, reshape{
		table:  t,
		olds:   []*schema.Column{col},
		news:   []change.Target{{Name: name, Type: c.Type, Up: up}},
		down:   map[string]string{col.Name: down},
		hidden: hidden,
	})
	if err != nil {
		return nil, err
	}
	if hidden {
		f.deploy = fmt.Sprintf("N+1 may rely on %s.%s being %s only after contract", t.QName(), col.Name, c.Type)
	} else {
		f.deploy = fmt.Sprintf("N+1 reads and writes %s.%s (%s)", t.QName(), name, c.Type)
	}
	return f, nil
}
