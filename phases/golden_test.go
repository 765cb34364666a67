package phases_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/internal/testkit/golden"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/schema"
)

func loadSnapshot(t testing.TB, name string) *schema.Snapshot {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".snapshot.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s schema.Snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

func parse(t testing.TB, input string) *change.Migration {
	t.Helper()
	var m *change.Migration
	var err error
	if strings.HasPrefix(input, "changes:") {
		m, err = change.ParseSpec("change.yaml", []byte(input))
	} else {
		m, err = change.ParseSQL("migration.sql", input)
	}
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestGolden plans one change of each catalogue kind against the Chinook and
// Pagila snapshots and compares the whole plan with its golden file.
func TestGolden(t *testing.T) {
	cases := []struct{ name, snapshot, input string }{
		{"rename_column", "chinook", "ALTER TABLE customer RENAME COLUMN email TO email_address;"},
		{"rename_table", "chinook", "ALTER TABLE artist RENAME TO performer;"},
		{"change_type", "chinook", "ALTER TABLE track ALTER COLUMN milliseconds TYPE bigint;"},
		{"change_type_key", "chinook", "ALTER TABLE invoice ALTER COLUMN invoice_id TYPE bigint;"},
		{"change_type_views", "pagila", "ALTER TABLE film ALTER COLUMN length TYPE integer;"},
		{"rename_column_views", "pagila", "ALTER TABLE address RENAME COLUMN phone TO phone_number;"},
		{"drop_column", "chinook", "ALTER TABLE customer DROP COLUMN fax;"},
		{"drop_column_not_null", "chinook", "ALTER TABLE customer DROP COLUMN email;"},
		{"drop_table", "chinook", "DROP TABLE playlist_track;"},
		{"set_not_null", "chinook", "ALTER TABLE customer ALTER COLUMN company SET NOT NULL;"},
		{"set_not_null_fill", "chinook", "changes:\n  - kind: set_not_null\n    table: customer\n    column: company\n    fill: \"'n/a'\"\n"},
		{"drop_not_null", "chinook", "ALTER TABLE customer ALTER COLUMN email DROP NOT NULL;"},
		{"set_default", "chinook", "ALTER TABLE customer ALTER COLUMN country SET DEFAULT 'USA';"},
		{"drop_default", "chinook", "ALTER TABLE album ALTER COLUMN album_id DROP DEFAULT;"},
		{"add_column_safe", "chinook", "ALTER TABLE customer ADD COLUMN nickname text;"},
		{"add_column_required", "chinook", "ALTER TABLE customer ADD COLUMN tier integer NOT NULL;"},
		{"add_column_volatile", "chinook", "ALTER TABLE invoice ADD COLUMN token uuid NOT NULL DEFAULT gen_random_uuid();"},
		{"add_foreign_key", "chinook", "ALTER TABLE employee ADD FOREIGN KEY (reports_to) REFERENCES employee (employee_id);"},
		{"add_check", "chinook", "ALTER TABLE invoice ADD CONSTRAINT invoice_total_positive CHECK (total >= 0);"},
		{"add_unique", "chinook", "ALTER TABLE customer ADD CONSTRAINT customer_email_key UNIQUE (email);"},
		{"add_primary_key", "chinook", "ALTER TABLE playlist_track DROP CONSTRAINT playlist_track_pkey; ALTER TABLE playlist_track ADD PRIMARY KEY (track_id, playlist_id);"},
		{"create_index", "chinook", "CREATE INDEX ON track (name);"},
		{"drop_index", "chinook", "DROP INDEX track_genre_id_idx;"},
		{"split_column", "chinook", "changes:\n  - kind: split_column\n    table: employee\n    column: address\n    into:\n      - {name: street, type: text, up: \"split_part(address, ',', 1)\"}\n      - {name: unit, type: text, up: \"nullif(split_part(address, ',', 2), '')\"}\n    down: \"street || coalesce(',' || unit, '')\"\n"},
		{"merge_columns", "chinook", "changes:\n  - kind: merge_columns\n    table: customer\n    from: [first_name, last_name]\n    into: [{name: full_name, type: text, up: \"first_name || ' ' || last_name\"}]\n    down_each: {first_name: \"split_part(full_name, ' ', 1)\", last_name: \"split_part(full_name, ' ', 2)\"}\n"},
		{"rename_and_retype", "chinook", "changes:\n  - kind: change_type\n    table: invoice\n    column: total\n    new_name: total_cents\n    type: bigint\n    up: \"round(total * 100)::bigint\"\n    down: \"(total_cents / 100.0)::numeric(10,2)\"\n"},
		{"rename_enum_value", "pagila", "ALTER TYPE mpaa_rating RENAME VALUE 'G' TO 'General';"},
		{"remove_enum_value", "pagila", "changes:\n  - kind: remove_enum_value\n    enum: mpaa_rating\n    value: NC-17\n    replacement: R\n"},
		{"two_changes_one_backfill", "chinook", "ALTER TABLE invoice_line RENAME COLUMN unit_price TO price; ALTER TABLE invoice_line ALTER COLUMN quantity TYPE bigint;"},
		{"safe_and_unknown", "chinook", "SET lock_timeout = '2s'; CREATE TABLE note (id bigint PRIMARY KEY); UPDATE customer SET country = 'X';"},
		{"merged_phases", "chinook", "ALTER TABLE customer RENAME COLUMN email TO email_address; ALTER TABLE customer ADD COLUMN tier int; CREATE INDEX CONCURRENTLY ON customer (country); ALTER TABLE invoice ADD CONSTRAINT invoice_total_positive CHECK (total >= 0);"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := phases.Build(loadSnapshot(t, tc.snapshot), parse(t, tc.input))
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.MarshalIndent(p, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join("testdata", "golden", tc.name+".json"), append(got, '\n'))
		})
	}
}

// TestRefusals: changes the planner must refuse, naming what is in the way.
func TestRefusals(t *testing.T) {
	cases := []struct{ name, snapshot, input, want string }{
		{"drop column under views", "pagila", "ALTER TABLE address DROP COLUMN phone;", "views public.customer_list, public.staff_list read public.address.phone"},
		{"drop table referenced", "chinook", "DROP TABLE invoice;", "foreign keys public.invoice_line.invoice_line_invoice_id_fkey reference public.invoice"},
		{"drop table under views", "pagila", "DROP TABLE address;", "views public.customer_list, public.sales_by_store, public.staff_list read public.address:"},
		{"missing table", "chinook", "ALTER TABLE custmer RENAME COLUMN email TO e;", "table public.custmer does not exist (did you mean public.customer?)"},
		{"missing column", "chinook", "ALTER TABLE customer RENAME COLUMN emial TO e;", "column emial of table public.customer does not exist (did you mean email?)"},
		{"target exists", "chinook", "ALTER TABLE customer RENAME COLUMN email TO phone;", "column phone of table public.customer already exists"},
		{"split under views", "pagila", "changes:\n  - kind: split_column\n    table: address\n    column: phone\n    into: [{name: a, type: text, up: phone}]\n    down: a\n", "views public.customer_list, public.staff_list read phone"},
		{"split a key column", "chinook", "changes:\n  - kind: split_column\n    table: customer\n    column: support_rep_id\n    into: [{name: a, type: int, up: support_rep_id}]\n    down: a\n", "is part of constraint customer_support_rep_id_fkey"},
		{"enum rename to existing", "pagila", "ALTER TYPE mpaa_rating RENAME VALUE 'G' TO 'PG';", "already has a value \"PG\""},
		{"enum bad replacement", "pagila", "changes:\n  - kind: remove_enum_value\n    enum: mpaa_rating\n    value: G\n    replacement: X\n", "replacement \"X\" must be another value"},
		{"enum missing value", "pagila", "ALTER TYPE mpaa_rating RENAME VALUE 'X' TO 'Y';", "has no value \"X\""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := phases.Build(loadSnapshot(t, tc.snapshot), parse(t, tc.input))
			var pe *phases.PlanError
			if !errors.As(err, &pe) {
				t.Fatalf("want *PlanError, got %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %q, want it to contain %q", err, tc.want)
			}
			if pe.Pos.Line == 0 {
				t.Errorf("no position in %v", err)
			}
		})
	}
}

// TestPlanIsPure: the same input gives the same plan and hash, and the
// phases come in catalogue order with app windows that never skip a version.
func TestPlanIsPure(t *testing.T) {
	s := loadSnapshot(t, "chinook")
	in := "ALTER TABLE customer RENAME COLUMN email TO email_address;"
	a, err := phases.Build(s, parse(t, in))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := phases.Build(s, parse(t, in))
	if a.Hash != b.Hash || a.Hash == "" {
		t.Errorf("hashes %q and %q", a.Hash, b.Hash)
	}
	prev := []string{phases.Old}
	for _, ph := range a.Phases {
		if strings.Join(ph.AppsBefore, ",") != strings.Join(prev, ",") && ph.Kind != phases.Contract {
			t.Errorf("phase %s: apps before %v, previous phase left %v", ph.Kind, ph.AppsBefore, prev)
		}
		prev = ph.AppsAfter
	}
	if c := a.Phase(phases.Contract); c == nil || c.DeployBefore == "" || strings.Join(c.AppsAfter, ",") != phases.New {
		t.Errorf("contract: %+v", c)
	}
}

// FuzzPlan: any SQL the parser accepts is planned against Chinook without a
// panic; it either plans or fails with a positioned error.
func FuzzPlan(f *testing.F) {
	for _, s := range []string{
		"ALTER TABLE customer RENAME COLUMN email TO email_address;",
		"ALTER TABLE track ALTER COLUMN milliseconds TYPE bigint USING milliseconds * 2;",
		"CREATE TABLE x (id int); ALTER TABLE x ADD COLUMN y int NOT NULL; CREATE INDEX ON x (y);",
		"ALTER TABLE invoice ADD CHECK (total > 0), ADD COLUMN z uuid DEFAULT gen_random_uuid();",
		"DROP TABLE playlist_track, genre CASCADE; DROP INDEX IF EXISTS nope;",
	} {
		f.Add(s)
	}
	snap := loadSnapshot(f, "chinook")
	f.Fuzz(func(t *testing.T, src string) {
		m, err := change.ParseSQL("f.sql", src)
		if err != nil {
			return
		}
		p, err := phases.Build(snap, m)
		var pe *phases.PlanError
		if err != nil && !errors.As(err, &pe) {
			t.Fatalf("unpositioned error: %v", err)
		}
		if err == nil && p.Hash == "" {
			t.Fatal("plan without hash")
		}
	})
}

// TestDependentFunctions: Pagila's functions read columns by name; renaming
// or dropping those columns is flagged with the function's name.
func TestDependentFunctions(t *testing.T) {
	s := loadSnapshot(t, "pagila")
	cases := []struct{ sql, want string }{
		{"ALTER TABLE actor RENAME COLUMN last_update TO updated_at;", "trigger last_updated on public.actor calls public.last_updated, which uses NEW/OLD.last_update"},
		{"ALTER TABLE rental DROP COLUMN return_date;", "function public.inventory_in_stock(p_inventory_id integer) queries public.rental and names a column return_date"},
		{"ALTER TABLE inventory RENAME COLUMN store_id TO shop_id;", "function public.film_in_stock("},
	}
	for _, tc := range cases {
		p, err := phases.Build(s, parse(t, tc.sql))
		if err != nil {
			t.Fatal(err)
		}
		var msgs []string
		for _, f := range p.Findings {
			if f.Rule == phases.RuleDependentFunction {
				msgs = append(msgs, f.Message)
			}
		}
		if !strings.Contains(strings.Join(msgs, "\n"), tc.want) {
			t.Errorf("%s: dependent-function findings %q lack %q", tc.sql, msgs, tc.want)
		}
	}
	// A column no function names gets no such finding.
	p, err := phases.Build(s, parse(t, "ALTER TABLE actor RENAME COLUMN first_name TO given_name;"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range p.Findings {
		if f.Rule == phases.RuleDependentFunction {
			t.Errorf("unexpected: %s", f.Message)
		}
	}
}
