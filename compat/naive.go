package compat

import (
	"fmt"
	"strings"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/phases"
)

// NaiveSQL is the migration as a team would run it in one go: the SQL as
// written, or for a change spec the plain statements it stands for. It is
// what the matrix runs beside the plan to show what the plan avoids.
// Session settings (SET lock_timeout ...) are kept: they are part of it.
func NaiveSQL(p *phases.Plan) (string, error) {
	var b strings.Builder
	for _, c := range p.Changes {
		s, err := naiveStatement(c)
		if err != nil {
			return "", err
		}
		b.WriteString(strings.TrimSpace(s))
		if !strings.HasSuffix(b.String(), ";") {
			b.WriteString(";")
		}
		b.WriteString("\n")
	}
	return b.String(), nil
}

func naiveStatement(c change.Change) (string, error) {
	if !c.Spec {
		return c.SQL, nil
	}
	t := quoteTable(c.Table)
	col := change.QuoteIdent(c.Column)
	switch c.Kind {
	case change.RenameColumn:
		return fmt.Sprintf("ALTER TABLE %s RENAME COLUMN %s TO %s", t, col, change.QuoteIdent(c.NewName)), nil
	case change.RenameTable:
		return fmt.Sprintf("ALTER TABLE %s RENAME TO %s", t, change.QuoteIdent(c.NewName)), nil
	case change.ChangeType:
		using := c.Up
		if using == "" {
			using = col + "::" + c.Type
		}
		s := fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s TYPE %s USING %s", t, col, c.Type, using)
		if c.NewName != "" && c.NewName != c.Column {
			s += fmt.Sprintf("; ALTER TABLE %s RENAME COLUMN %s TO %s", t, col, change.QuoteIdent(c.NewName))
		}
		return s, nil
	case change.SetNotNull:
		s := ""
		if c.Fill != "" {
			s = fmt.Sprintf("UPDATE %s SET %s = %s WHERE %s IS NULL; ", t, col, c.Fill, col)
		}
		return s + fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET NOT NULL", t, col), nil
	case change.SplitColumn:
		var add, set []string
		for _, in := range c.Into {
			add = append(add, fmt.Sprintf("ADD COLUMN %s %s", change.QuoteIdent(in.Name), in.Type))
			set = append(set, fmt.Sprintf("%s = %s", change.QuoteIdent(in.Name), in.Up))
		}
		return fmt.Sprintf("ALTER TABLE %s %s; UPDATE %s SET %s; ALTER TABLE %s DROP COLUMN %s",
			t, strings.Join(add, ", "), t, strings.Join(set, ", "), t, col), nil
	case change.MergeColumns:
		if len(c.Into) != 1 {
			return "", fmt.Errorf("%s: merge into %d columns: want one", c.Pos, len(c.Into))
		}
		in := c.Into[0]
		var drop []string
		for _, f := range c.From {
			drop = append(drop, "DROP COLUMN "+change.QuoteIdent(f))
		}
		return fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s; UPDATE %s SET %s = %s; ALTER TABLE %s %s",
			t, change.QuoteIdent(in.Name), in.Type, t, change.QuoteIdent(in.Name), in.Up, t, strings.Join(drop, ", ")), nil
	case change.RenameEnumValue:
		return fmt.Sprintf("ALTER TYPE %s RENAME VALUE %s TO %s", quoteTable(c.Enum), change.QuoteLiteral(c.Value), change.QuoteLiteral(c.NewName)), nil
	}
	return "", fmt.Errorf("%s: no naive SQL for a %s change spec", c.Pos, c.Kind)
}

// quoteTable quotes "schema.name" as schema-qualified SQL.
func quoteTable(name string) string { return change.QuoteQualified(name) }
