// Package corpus generates a deterministic corpus of migration files and the
// schema they apply to, for benchmarks: the same seed gives the same files.
package corpus

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"

	"github.com/phasekit/phasekit/schema"
)

// Tables is how many tables the generated schema has.
const Tables = 200

// Snapshot is the schema the corpus migrations apply to: Tables tables
// t000..t199, each with id (primary key), c0..c9 text and n0..n4 integer.
func Snapshot() *schema.Snapshot {
	s := &schema.Snapshot{ServerVersion: 150000, Tables: map[string]*schema.Table{}, Views: map[string]*schema.View{}, Enums: map[string]*schema.Enum{}}
	for i := 0; i < Tables; i++ {
		t := &schema.Table{Schema: "public", Name: fmt.Sprintf("t%03d", i), RowEstimate: 100000, SizeBytes: 10 << 20}
		t.Columns = append(t.Columns, schema.Column{Name: "id", Type: "bigint", NotNull: true, Position: 1})
		for c := 0; c < 10; c++ {
			t.Columns = append(t.Columns, schema.Column{Name: fmt.Sprintf("c%d", c), Type: "text", Position: len(t.Columns) + 1})
		}
		for c := 0; c < 5; c++ {
			t.Columns = append(t.Columns, schema.Column{Name: fmt.Sprintf("n%d", c), Type: "integer", NotNull: c%2 == 0, Position: len(t.Columns) + 1})
		}
		t.Constraints = []schema.Constraint{{Name: t.Name + "_pkey", Table: t.QName(), Type: schema.PrimaryKey, Columns: []string{"id"}, Validated: true, Index: t.Name + "_pkey"}}
		t.Indexes = []schema.Index{{Name: t.Name + "_pkey", Columns: []string{"id"}, Unique: true, Primary: true, Valid: true, Constraint: t.Name + "_pkey"}}
		s.Tables[t.QName()] = t
	}
	return s
}

// Write writes files migration files of about perFile statements each into
// dir and returns their paths and the total statement count.
func Write(dir string, files, perFile int, seed int64) ([]string, int, error) {
	rng := rand.New(rand.NewSource(seed))
	var paths []string
	total := 0
	for f := 0; f < files; f++ {
		var b strings.Builder
		b.WriteString("SET lock_timeout = '2s';\n")
		total++
		// Each file uses its own tables and columns, so its statements plan
		// together without clashing.
		used := map[string]bool{}
		for s := 1; s < perFile; s++ {
			t := fmt.Sprintf("t%03d", rng.Intn(Tables))
			col := fmt.Sprintf("c%d", rng.Intn(10))
			num := fmt.Sprintf("n%d", rng.Intn(5))
			if used[t+col] || used[t+num] {
				b.WriteString(fmt.Sprintf("COMMENT ON TABLE %s IS 'file %d';\n", t, f))
				total++
				continue
			}
			used[t+col], used[t+num] = true, true
			switch rng.Intn(10) {
			case 0:
				fmt.Fprintf(&b, "ALTER TABLE %s RENAME COLUMN %s TO %s_renamed;\n", t, col, col)
			case 1:
				fmt.Fprintf(&b, "ALTER TABLE %s ADD COLUMN extra_%d_%d text DEFAULT 'x';\n", t, f, s)
			case 2:
				fmt.Fprintf(&b, "CREATE INDEX %s_%s_%d_idx ON %s (%s);\n", t, col, f, t, col)
			case 3:
				fmt.Fprintf(&b, "ALTER TABLE %s ADD CONSTRAINT %s_%s_%d_chk CHECK (%s >= 0);\n", t, t, num, f, num)
			case 4:
				fmt.Fprintf(&b, "ALTER TABLE %s ALTER COLUMN %s TYPE bigint;\n", t, num)
			case 5:
				fmt.Fprintf(&b, "ALTER TABLE %s DROP COLUMN %s;\n", t, col)
			case 6:
				fmt.Fprintf(&b, "ALTER TABLE %s ALTER COLUMN %s SET DEFAULT 0;\n", t, num)
			case 7:
				fmt.Fprintf(&b, "ALTER TABLE %s ADD CONSTRAINT %s_%s_%d_fk FOREIGN KEY (%s) REFERENCES t000 (id) NOT VALID;\n", t, t, num, f, num)
			case 8:
				fmt.Fprintf(&b, "ALTER TABLE %s ALTER COLUMN %s DROP NOT NULL;\n", t, "n0")
			default:
				fmt.Fprintf(&b, "CREATE TABLE new_%d_%d (id bigint PRIMARY KEY, body text NOT NULL);\n", f, s)
			}
			total++
		}
		p := filepath.Join(dir, fmt.Sprintf("%06d_change.up.sql", f+1))
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			return nil, 0, err
		}
		paths = append(paths, p)
	}
	return paths, total, nil
}
