package plancheck

import (
	"context"
	"strings"
	"testing"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/verify/pgtest"
)

// settleTable keeps every difference the file's own runs do not explain.
func TestSettleTableKeepsWhatTheFileDoesNotExplain(t *testing.T) {
	ctx := context.Background()
	d, err := Open(ctx, Options{DevURL: pgtest.Cluster(t).DSN("postgres")})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	m, err := change.ParseSQL("base.sql", `CREATE TABLE "a.b" (id int PRIMARY KEY, v text, at timestamptz, n int);
		INSERT INTO "a.b" SELECT g, 'v' || g, '2026-01-01'::timestamptz + g * interval '1 s', g FROM generate_series(1, 20) g;`)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.LoadHistory(ctx, []*change.Migration{m}); err != nil {
		t.Fatal(err)
	}
	// db runs sql on a new copy of the base.
	db := func(sql string) string {
		name, err := d.copyOf(ctx, d.base)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.drop(name) })
		conn, err := d.connect(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
		return name
	}
	// The file's two runs: "at" shifted by a run-dependent amount, one
	// value per row.
	file := db(`UPDATE "a.b" SET at = at + interval '1 h'`)
	again := db(`UPDATE "a.b" SET at = at + interval '2 h'`)
	cases := []struct {
		name, file, again, got string
		settled                bool
	}{
		{"only_the_unstable_column_differs", file, again, db(`UPDATE "a.b" SET at = at + interval '3 h'`), true},
		{"a_stable_column_differs_too", file, again, db(`UPDATE "a.b" SET at = at + interval '3 h', v = v || '!' WHERE id = 7`), false},
		{"the_unstable_column_has_a_null_more", file, again, db(`UPDATE "a.b" SET at = CASE WHEN id = 3 THEN NULL ELSE at + interval '3 h' END`), false},
		{"the_unstable_column_is_one_value_not_all_distinct", file, again, db(`UPDATE "a.b" SET at = now()`), false},
		{"the_unstable_column_repeats_a_value", file, again, db(`UPDATE "a.b" SET at = '2026-06-01'::timestamptz + (id / 2) * interval '1 s'`), false},
		{"a_row_more", file, again, db(`UPDATE "a.b" SET at = at + interval '3 h'; INSERT INTO "a.b" VALUES (21, 'v21', now(), 21)`), false},
		{"the_file_is_deterministic", file, db(`UPDATE "a.b" SET at = at + interval '1 h'`), db(`UPDATE "a.b" SET at = at + interval '3 h'`), false},
		{"the_files_runs_differ_in_nulls", file, db(`UPDATE "a.b" SET at = NULL WHERE id = 1`), db(`UPDATE "a.b" SET at = at + interval '3 h'`), false},
		// clock_timestamp() per row: the runs repeat values differently,
		// so only the NULLs are counted.
		{"the_files_runs_differ_in_distinct_values", file, db(`UPDATE "a.b" SET at = '2026-01-01' WHERE id <= 3`), db(`UPDATE "a.b" SET at = '2026-01-02' WHERE id <= 5`), true},
		{"the_files_runs_repeat_values_alike", db(`UPDATE "a.b" SET at = '2026-01-01' WHERE id <= 3`), db(`UPDATE "a.b" SET at = '2026-01-02' WHERE id <= 3`), db(`UPDATE "a.b" SET at = at + interval '3 h'`), true},
		{"the_files_runs_differ_in_distinct_values_and_the_plan_in_nulls", file, db(`UPDATE "a.b" SET at = '2026-01-01' WHERE id <= 3`), db(`UPDATE "a.b" SET at = NULL WHERE id <= 5`), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			note, err := d.settleTable(ctx, "public.a.b", tc.file, tc.again, tc.got)
			if err != nil {
				t.Fatal(err)
			}
			if settled := note != ""; settled != tc.settled {
				t.Fatalf("settled %v (%q), want %v", settled, note, tc.settled)
			}
			if tc.settled && !strings.Contains(note, "compared without at,") {
				t.Errorf("note %q does not name the column", note)
			}
		})
	}
}
