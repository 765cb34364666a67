package plancheck_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
)

// The differential fuzzer's generator: a random schema with rows, and a
// random migration file over it (1 to 8 statements drawn from what the
// catalogue plans and what real files do). It keeps a small model of the
// schema as its statements change it, so most statements are valid; the
// ones PostgreSQL refuses anyway make the case invalid, not a failure.

type genColumn struct {
	name, typ string
	notNull   bool
	def       string
	unique    bool
	check     string // a CHECK on this column, "" when none
	ref       string // referenced table when it is a foreign key
}

type genTable struct {
	name    string
	pk      string // primary key column
	serial  bool
	cols    []*genColumn
	indexes []string // index names
}

type genSchema struct {
	rng    *rand.Rand
	tables []*genTable
	views  []string
	enums  bool
	n      int // name counter
	sql    []string
}

var genTypes = []string{"integer", "bigint", "smallint", "text", "varchar(20)", "varchar(40)", "numeric(10,2)", "boolean", "timestamp", "date", "jsonb", "mood"}

func (g *genSchema) name(prefix string) string {
	g.n++
	return fmt.Sprintf("%s%d", prefix, g.n)
}

func (g *genSchema) pick(n int) int { return g.rng.IntN(n) }

func (g *genSchema) chance(p float64) bool { return g.rng.Float64() < p }

// value is a literal of the type that satisfies the generator's checks.
func (g *genSchema) value(typ string) string {
	switch typ {
	case "integer", "bigint", "smallint":
		return fmt.Sprint(g.pick(1000))
	case "text", "varchar(20)", "varchar(40)", "varchar(10)", "varchar(200)":
		return fmt.Sprintf("'v%d'", g.pick(1000))
	case "numeric(10,2)", "numeric(12,2)":
		return fmt.Sprintf("%d.%02d", g.pick(1000), g.pick(100))
	case "boolean":
		return []string{"true", "false"}[g.pick(2)]
	case "timestamp":
		return fmt.Sprintf("'2024-01-%02d 10:00'", 1+g.pick(28))
	case "date":
		return fmt.Sprintf("'2024-02-%02d'", 1+g.pick(28))
	case "jsonb":
		return fmt.Sprintf(`'{"k": %d}'`, g.pick(100))
	case "mood":
		return []string{"'happy'", "'sad'", "'ok'"}[g.pick(3)]
	}
	return "NULL"
}

// newSchema writes a schema of 2 to 4 tables with rows.
func newSchema(seed uint64) *genSchema {
	g := &genSchema{rng: rand.New(rand.NewPCG(seed, 0x70686b))}
	g.sql = append(g.sql, "CREATE TYPE mood AS ENUM ('happy', 'sad', 'ok');")
	nt := 2 + g.pick(3)
	for i := 0; i < nt; i++ {
		t := &genTable{name: g.name("t"), pk: "id", serial: g.chance(0.6)}
		// Now and then the last table is partitioned (by hash of its key:
		// a UNIQUE there would have to hold the key).
		partitioned := i == nt-1 && g.chance(0.25)
		var defs []string
		if t.serial {
			defs = append(defs, "id serial PRIMARY KEY")
		} else {
			defs = append(defs, "id integer PRIMARY KEY")
		}
		nc := 2 + g.pick(5)
		for j := 0; j < nc; j++ {
			c := &genColumn{name: g.name("c"), typ: genTypes[g.pick(len(genTypes))]}
			d := c.name + " " + c.typ
			if g.chance(0.3) {
				c.notNull = true
				c.def = g.value(c.typ)
				d += " NOT NULL DEFAULT " + c.def
			}
			if c.typ == "integer" && g.chance(0.3) {
				c.check = c.name + " >= 0"
				d += " CHECK (" + c.check + ")"
			}
			if (c.typ == "text" || c.typ == "varchar(40)") && !partitioned && g.chance(0.2) {
				c.unique = true
				d += " UNIQUE"
			}
			if i > 0 && c.typ == "integer" && c.check == "" && g.chance(0.4) {
				c.ref = g.tables[g.pick(i)].name
				d += " REFERENCES " + c.ref
			}
			t.cols = append(t.cols, c)
			defs = append(defs, d)
		}
		if partitioned {
			g.sql = append(g.sql, fmt.Sprintf("CREATE TABLE %s (%s) PARTITION BY HASH (id);", t.name, strings.Join(defs, ", ")))
			for r := 0; r < 2; r++ {
				g.sql = append(g.sql, fmt.Sprintf("CREATE TABLE %s_p%d PARTITION OF %s FOR VALUES WITH (MODULUS 2, REMAINDER %d);", t.name, r, t.name, r))
			}
		} else {
			g.sql = append(g.sql, fmt.Sprintf("CREATE TABLE %s (%s);", t.name, strings.Join(defs, ", ")))
		}
		for k := 0; k < g.pick(3); k++ {
			c := t.cols[g.pick(len(t.cols))]
			if c.typ == "jsonb" {
				continue
			}
			ix := g.name("ix")
			expr := c.name
			if c.typ == "text" && g.chance(0.3) {
				expr = "lower(" + c.name + ")"
			}
			where := ""
			if g.chance(0.2) {
				where = " WHERE " + c.name + " IS NOT NULL"
			}
			g.sql = append(g.sql, fmt.Sprintf("CREATE INDEX %s ON %s ((%s))%s;", ix, t.name, expr, where))
			t.indexes = append(t.indexes, ix)
		}
		g.tables = append(g.tables, t)
		// Rows: 20 per table, keys 1..20, references to existing keys.
		for r := 1; r <= 20; r++ {
			cols := []string{"id"}
			vals := []string{fmt.Sprint(r)}
			for _, c := range t.cols {
				v := g.value(c.typ)
				switch {
				case c.ref != "":
					v = fmt.Sprint(1 + g.pick(20))
				case c.unique:
					v = fmt.Sprintf("'u%d_%d'", r, g.pick(1000))
				case !c.notNull && g.chance(0.2):
					v = "NULL"
				}
				cols = append(cols, c.name)
				vals = append(vals, v)
			}
			g.sql = append(g.sql, fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s);", t.name, strings.Join(cols, ", "), strings.Join(vals, ", ")))
		}
		if t.serial {
			g.sql = append(g.sql, fmt.Sprintf("SELECT setval('%s_id_seq', 20);", t.name))
		}
	}
	if g.chance(0.5) {
		t := g.tables[g.pick(len(g.tables))]
		v := g.name("v")
		c := t.cols[g.pick(len(t.cols))]
		g.sql = append(g.sql, fmt.Sprintf("CREATE VIEW %s AS SELECT id, %s FROM %s;", v, c.name, t.name))
		g.views = append(g.views, v)
	}
	return g
}

func (t *genTable) col(name string) *genColumn {
	for _, c := range t.cols {
		if c.name == name {
			return c
		}
	}
	return nil
}

// migration draws 1 to 8 statements over the schema.
func (g *genSchema) migration() []string {
	var out []string
	n := 1 + g.pick(8)
	for len(out) < n {
		if s := g.statement(); s != "" {
			out = append(out, s)
		}
	}
	// Now and then a statement inside a DO block, as Mattermost writes its
	// ALTERs: planned from what the replay saw it do, or refused.
	if i := g.pick(len(out)); g.chance(0.15) && !strings.Contains(out[i], "CONCURRENTLY") && !strings.Contains(out[i], "$") {
		out[i] = "DO $do$ BEGIN " + out[i] + " END $do$;"
	}
	return out
}

func (g *genSchema) statement() string {
	t := g.tables[g.pick(len(g.tables))]
	var c *genColumn
	if len(t.cols) > 0 {
		c = t.cols[g.pick(len(t.cols))]
	}
	switch g.pick(22) {
	case 0:
		nc := &genColumn{name: g.name("a"), typ: genTypes[g.pick(len(genTypes))]}
		s := fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s", t.name, nc.name, nc.typ)
		switch g.pick(5) {
		case 0:
			nc.notNull, nc.def = true, g.value(nc.typ)
			s += " NOT NULL DEFAULT " + nc.def
		case 1:
			s += " DEFAULT " + g.value(nc.typ)
		case 2:
			if nc.typ == "integer" {
				s += " CHECK (" + nc.name + " IS NULL OR " + nc.name + " > 0)"
			}
		case 3:
			if nc.typ == "integer" && t != g.tables[0] {
				s += " REFERENCES " + g.tables[0].name
			}
		}
		t.cols = append(t.cols, nc)
		return s + ";"
	case 1:
		if c == nil {
			return ""
		}
		return fmt.Sprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s %s;", t.name, c.name, c.typ)
	case 2:
		if c == nil || c.ref != "" {
			return ""
		}
		t.cols = slices.DeleteFunc(t.cols, func(x *genColumn) bool { return x == c })
		return fmt.Sprintf("ALTER TABLE %s DROP COLUMN %s CASCADE;", t.name, c.name)
	case 3:
		if c == nil {
			return ""
		}
		old := c.name
		c.name = g.name("r")
		return fmt.Sprintf("ALTER TABLE %s RENAME COLUMN %s TO %s;", t.name, old, c.name)
	case 4, 5:
		if c == nil {
			return ""
		}
		to := map[string][]string{
			"integer": {"bigint", "integer", "numeric(12,2)", "text"}, "smallint": {"integer", "bigint"}, "bigint": {"bigint", "numeric(20,0)"},
			"text": {"varchar(200)", "text"}, "varchar(20)": {"varchar(40)", "text", "varchar(10)"}, "varchar(40)": {"varchar(200)", "text"},
			"numeric(10,2)": {"numeric(12,2)", "numeric(10,2)"}, "timestamp": {"timestamp", "date"}, "date": {"timestamp"},
			"boolean": {"boolean"}, "jsonb": {"jsonb", "text"}, "mood": {"text"},
		}[c.typ]
		if len(to) == 0 {
			return ""
		}
		nt := to[g.pick(len(to))]
		s := fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s TYPE %s", t.name, c.name, nt)
		if g.chance(0.3) {
			s += fmt.Sprintf(", ALTER COLUMN %s DROP NOT NULL", c.name)
			c.notNull = false
		}
		c.typ = nt
		return s + ";"
	case 6:
		if c == nil {
			return ""
		}
		c.def = g.value(c.typ)
		return fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET DEFAULT %s;", t.name, c.name, c.def)
	case 7:
		if c == nil {
			return ""
		}
		c.def = ""
		return fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s DROP DEFAULT;", t.name, c.name)
	case 8:
		if c == nil {
			return ""
		}
		c.notNull = false
		return fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s DROP NOT NULL;", t.name, c.name)
	case 9:
		if c == nil {
			return ""
		}
		v := g.value(c.typ)
		c.notNull = true
		return fmt.Sprintf("UPDATE %s SET %s = %s WHERE %s IS NULL; ALTER TABLE %s ALTER COLUMN %s SET NOT NULL;", t.name, c.name, v, c.name, t.name, c.name)
	case 10:
		if c == nil || c.typ == "jsonb" {
			return ""
		}
		ix := g.name("ix")
		t.indexes = append(t.indexes, ix)
		unique := ""
		if c.unique {
			unique = "UNIQUE "
		}
		return fmt.Sprintf("CREATE %sINDEX %s ON %s (%s);", unique, ix, t.name, c.name)
	case 11:
		if len(t.indexes) == 0 {
			return ""
		}
		ix := t.indexes[g.pick(len(t.indexes))]
		if c == nil || c.typ == "jsonb" {
			return fmt.Sprintf("DROP INDEX IF EXISTS %s;", ix)
		}
		// Dropped and created again under the same name, another definition.
		return fmt.Sprintf("DROP INDEX IF EXISTS %s; CREATE INDEX %s ON %s (%s, id);", ix, ix, t.name, c.name)
	case 12:
		if c == nil || c.typ != "integer" {
			return ""
		}
		return fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s CHECK (%s IS NULL OR %s > -1000000);", t.name, g.name("ck"), c.name, c.name)
	case 13:
		if c == nil || !c.unique {
			return ""
		}
		return fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s UNIQUE (%s, id);", t.name, g.name("uq"), c.name)
	case 14:
		if c == nil {
			return ""
		}
		v := g.name("v")
		g.views = append(g.views, v)
		return fmt.Sprintf("CREATE VIEW %s AS SELECT id, %s FROM %s;", v, c.name, t.name)
	case 15:
		if len(g.views) == 0 {
			return ""
		}
		v := g.views[g.pick(len(g.views))]
		g.views = slices.DeleteFunc(g.views, func(x string) bool { return x == v })
		return fmt.Sprintf("DROP VIEW IF EXISTS %s;", v)
	case 16:
		if c == nil {
			return ""
		}
		return fmt.Sprintf("UPDATE %s SET %s = %s WHERE id %% 3 = 0;", t.name, c.name, g.value(c.typ))
	case 17:
		if c == nil || c.ref != "" {
			return ""
		}
		t.cols = slices.DeleteFunc(t.cols, func(x *genColumn) bool { return x == c })
		return fmt.Sprintf("DELETE FROM %s WHERE id %% 7 = 0 AND %s IS NULL; ALTER TABLE %s DROP COLUMN %s CASCADE;", t.name, c.name, t.name, c.name)
	case 18:
		old := t.name
		t.name = g.name("t")
		return fmt.Sprintf("ALTER TABLE %s RENAME TO %s;", old, t.name)
	case 19:
		return fmt.Sprintf("ALTER TABLE %s ALTER COLUMN id TYPE bigint;", t.name)
	case 20:
		if c == nil {
			return ""
		}
		return fmt.Sprintf("COMMENT ON COLUMN %s.%s IS 'c%d';", t.name, c.name, g.pick(100))
	case 21:
		return fmt.Sprintf("INSERT INTO %s (id) VALUES (%d) ON CONFLICT DO NOTHING;", t.name, 1000+g.pick(1000))
	}
	return ""
}
