// Command plancheck times the plan check (docs/plan-check.md): planning a
// migration with the replay alone, and with the check (the plan applied
// through every phase and purge, compared with the file, rolled back from
// every boundary), on a generated 50-table schema and on the shipped Chinook
// and Pagila schemas. It prints a table of medians and the target: the check
// adds under 3 s on the 50-table schema with local binaries.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/plancheck"
)

func main() {
	reps := flag.Int("reps", 3, "repetitions (medians are printed)")
	datasets := flag.String("datasets", "../shared/datasets", "the shared datasets directory")
	flag.Parse()
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "phasekit-bench-check-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(dir)
	gen := filepath.Join(dir, "fifty.sql")
	if err := os.WriteFile(gen, []byte(fiftyTables()), 0o644); err != nil {
		fail(err)
	}
	cases := []struct{ name, schema, sql string }{
		{"50 tables (generated)", gen, "ALTER TABLE t07 RENAME COLUMN c1 TO c1_renamed;\nALTER TABLE t12 ALTER COLUMN n1 TYPE bigint;\nALTER TABLE t20 ADD COLUMN flag boolean NOT NULL DEFAULT false;\nCREATE INDEX t33_c2_idx ON t33 (c2);\n"},
		{"Chinook", filepath.Join(*datasets, "chinook/chinook-schema.sql"), "ALTER TABLE customer RENAME COLUMN email TO email_address;\n"},
		{"Pagila", filepath.Join(*datasets, "pagila/pagila-schema.sql"), "ALTER TABLE film ALTER COLUMN length TYPE integer;\n"},
	}
	fmt.Printf("%-22s %14s %14s %12s\n", "schema", "replay+plan", "with check", "check adds")
	var fifty time.Duration
	for _, c := range cases {
		m, err := change.ParseSQL("bench.sql", c.sql)
		if err != nil {
			fail(err)
		}
		var plain, checked []time.Duration
		for r := 0; r < *reps; r++ {
			for _, check := range []bool{false, true} {
				d, err := plancheck.Open(ctx, plancheck.Options{})
				if err != nil {
					fail(err)
				}
				if err := d.LoadSchemaFile(ctx, c.schema); err != nil {
					fail(err)
				}
				t0 := time.Now()
				p, _, err := d.Plan(ctx, []*change.Migration{m}, phases.Options{}, check, plancheck.CheckOptions{})
				took := time.Since(t0)
				d.Close()
				if err != nil {
					fail(fmt.Errorf("%s: %w", c.name, err))
				}
				if check && !p.Check.OK() {
					fail(fmt.Errorf("%s: the check failed: %+v", c.name, p.Check))
				}
				if check {
					checked = append(checked, took)
				} else {
					plain = append(plain, took)
				}
			}
		}
		a, b := median(plain), median(checked)
		if strings.HasPrefix(c.name, "50") {
			fifty = b - a
		}
		fmt.Printf("%-22s %14s %14s %12s\n", c.name, round(a), round(b), round(b-a))
	}
	verdict := "PASS"
	if fifty >= 3*time.Second {
		verdict = "FAIL"
	}
	fmt.Printf("\ntarget: the check adds under 3 s on a 50-table schema: %s (%s)\n", verdict, round(fifty))
}

// fiftyTables is a deterministic 50-table schema: keys, foreign keys to the
// table before, indexes, a check, a view every tenth table, 20 rows each.
func fiftyTables() string {
	var b strings.Builder
	for i := 0; i < 50; i++ {
		fmt.Fprintf(&b, "CREATE TABLE t%02d (id serial PRIMARY KEY, c1 text, c2 varchar(40) NOT NULL DEFAULT 'x', n1 integer CHECK (n1 >= 0), n2 bigint", i)
		if i > 0 {
			fmt.Fprintf(&b, ", parent_id integer REFERENCES t%02d", i-1)
		}
		b.WriteString(", created_at timestamp NOT NULL DEFAULT now());\n")
		fmt.Fprintf(&b, "CREATE INDEX t%02d_c2 ON t%02d (c2);\n", i, i)
		fmt.Fprintf(&b, "INSERT INTO t%02d (c1, c2, n1, n2) SELECT 'a' || g, 'b' || g, g, g * 10 FROM generate_series(1, 20) g;\n", i)
		if i%10 == 9 {
			fmt.Fprintf(&b, "CREATE VIEW v%02d AS SELECT id, c1, n1 FROM t%02d;\n", i, i)
		}
	}
	return b.String()
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration{}, ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func round(d time.Duration) string { return d.Round(10 * time.Millisecond).String() }

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench/plancheck:", err)
	os.Exit(1)
}
