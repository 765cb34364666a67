package phases

import (
	"fmt"
	"strings"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/schema"
)

func init() {
	register(change.SplitColumn, planSplitColumn)
	register(change.MergeColumns, planMergeColumns)
}

// planSplitColumn: one old column becomes several new ones; N writes the old
// column (the trigger derives the new ones with their up expressions), N+1
// writes the new ones (the trigger rebuilds the old one with down).
func planSplitColumn(s *schema.Snapshot, c change.Change) (*fragment, error) {
	t, col, err := lookupTableColumn(s, c)
	if err != nil {
		return nil, err
	}
	f, err := planReshape(s, c, reshape{table: t, olds: []*schema.Column{col}, news: c.Into, down: map[string]string{col.Name: c.Down}})
	if err != nil {
		return nil, err
	}
	var names []string
	for _, n := range c.Into {
		names = append(names, n.Name)
	}
	f.deploy = fmt.Sprintf("N+1 reads and writes %s.(%s)", t.QName(), strings.Join(names, ", "))
	return f, nil
}

// planMergeColumns: several old columns become one.
func planMergeColumns(s *schema.Snapshot, c change.Change) (*fragment, error) {
	t, err := lookupTable(s, c, c.Table)
	if err != nil {
		return nil, err
	}
	var olds []*schema.Column
	for _, name := range c.From {
		col, err := lookupColumn(c, t, name)
		if err != nil {
			return nil, err
		}
		olds = append(olds, col)
		if c.DownEach[name] == "" {
			return nil, &PlanError{Pos: c.Pos, Msg: fmt.Sprintf("merge_columns: down_each has no expression for %s", name)}
		}
	}
	f, err := planReshape(s, c, reshape{table: t, olds: olds, news: c.Into, down: c.DownEach})
	if err != nil {
		return nil, err
	}
	f.deploy = fmt.Sprintf("N+1 reads and writes %s.%s", t.QName(), c.Into[0].Name)
	return f, nil
}
