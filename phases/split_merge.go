package phases

import (
	"fmt"
	"strings"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/schema"
)

func init() {
	register(change.SplitColumn, splitColumn{})
	register(change.MergeColumns, mergeColumns{})
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

// splitColumn: the change spec's split_column.
type splitColumn struct{ recipe }

var _ Recipe = splitColumn{}

func (splitColumn) Plan(s *schema.Snapshot, c change.Change) (*fragment, error) {
	return planSplitColumn(s, c)
}

func (splitColumn) Moves(change.Change) Moves { return Moves{ReadsData: true} }

func (splitColumn) OldShapes(c change.Change) ([]Shape, []string) {
	return []Shape{{Table: c.Table, Column: c.Column}}, nil
}

// mergeColumns: the change spec's merge_columns.
type mergeColumns struct{ recipe }

var _ Recipe = mergeColumns{}

func (mergeColumns) Plan(s *schema.Snapshot, c change.Change) (*fragment, error) {
	return planMergeColumns(s, c)
}

func (mergeColumns) Moves(change.Change) Moves { return Moves{ReadsData: true} }

func (mergeColumns) OldShapes(c change.Change) ([]Shape, []string) {
	var out []Shape
	for _, col := range c.From {
		out = append(out, Shape{Table: c.Table, Column: col})
	}
	return out, nil
}
