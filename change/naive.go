package change

import (
	"fmt"
	"strings"
)

// NaiveSQL is the change as a team would run it in one go: the SQL as
// written, or for a change-spec change the plain statements it stands for.
// A spec kind PostgreSQL has no plain statement for (removing an enum value)
// is an error.
func NaiveSQL(c Change) (string, error) {
	if !c.Spec {
		return c.SQL, nil
	}
	t := QuoteQualified(c.Table)
	col := QuoteIdent(c.Column)
	switch c.Kind {
	case RenameColumn:
		return fmt.Sprintf("ALTER TABLE %s RENAME COLUMN %s TO %s", t, col, QuoteIdent(c.NewName)), nil
	case RenameTable:
		return fmt.Sprintf("ALTER TABLE %s RENAME TO %s", t, QuoteIdent(c.NewName)), nil
	case ChangeType:
		using := c.Up
		if using == "" {
			using = col + "::" + c.Type
		}
		s := fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s TYPE %s USING %s", t, col, c.Type, using)
		if c.NewName != "" && c.NewName != c.Column {
			s += fmt.Sprintf("; ALTER TABLE %s RENAME COLUMN %s TO %s", t, col, QuoteIdent(c.NewName))
		}
		return s, nil
	case SetNotNull:
		s := ""
		if c.Fill != "" {
			s = fmt.Sprintf("UPDATE %s SET %s = %s WHERE %s IS NULL; ", t, col, c.Fill, col)
		}
		return s + fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET NOT NULL", t, col), nil
	case SplitColumn:
		var add, set []string
		for _, in := range c.Into {
			add = append(add, fmt.Sprintf("ADD COLUMN %s %s", QuoteIdent(in.Name), in.Type))
			set = append(set, fmt.Sprintf("%s = %s", QuoteIdent(in.Name), in.Up))
		}
		return fmt.Sprintf("ALTER TABLE %s %s; UPDATE %s SET %s; ALTER TABLE %s DROP COLUMN %s",
			t, strings.Join(add, ", "), t, strings.Join(set, ", "), t, col), nil
	case MergeColumns:
		if len(c.Into) != 1 {
			return "", fmt.Errorf("%s: merge into %d columns: want one", c.Pos, len(c.Into))
		}
		in := c.Into[0]
		var drop []string
		for _, f := range c.From {
			drop = append(drop, "DROP COLUMN "+QuoteIdent(f))
		}
		return fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s; UPDATE %s SET %s = %s; ALTER TABLE %s %s",
			t, QuoteIdent(in.Name), in.Type, t, QuoteIdent(in.Name), in.Up, t, strings.Join(drop, ", ")), nil
	case RenameEnumValue:
		return fmt.Sprintf("ALTER TYPE %s RENAME VALUE %s TO %s", QuoteQualified(c.Enum), QuoteLiteral(c.Value), QuoteLiteral(c.NewName)), nil
	}
	return "", fmt.Errorf("%s: no naive SQL for a %s change spec", c.Pos, c.Kind)
}
