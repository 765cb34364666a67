package migrations_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/golang-migrate/migrate/v4"
	_ "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	_ "github.com/golang-migrate/migrate/v4/source/file"
	"github.com/jackc/pgx/v5"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/schema"
	"github.com/phasekit/phasekit/verify"
	"github.com/phasekit/phasekit/verify/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// probe is run after every migration file: it writes through the shapes that
// exist and checks both shapes see the write.
type probe func(t *testing.T, conn *pgx.Conn, step string)

type acceptCase struct {
	name    string
	dataset string
	sql     string // the naive migration
	spec    string // a change spec instead of SQL (then naive is its SQL equivalent)
	naive   string // what the naive migration is, when sql is not runnable as is
	probe   probe
	// naiveFrom builds the naive migration from the schema, when it must
	// restate objects (views) the plain ALTER cannot keep.
	naiveFrom func(*schema.Snapshot) string
	// probeWrites marks probes that change rows on purpose.
	probeWrites bool
	// noDown marks cases whose contract cannot be rolled back to the
	// original schema (a dropped table).
	noDown bool
}

func TestCatalogueOnChinook(t *testing.T) {
	cases := []acceptCase{
		{name: "rename_column", dataset: "chinook", sql: "ALTER TABLE customer RENAME COLUMN email TO email_address;", probe: renameProbe("customer", "customer_id", "email", "email_address"), probeWrites: true},
		{name: "two_renames_one_table", dataset: "chinook", sql: "ALTER TABLE customer RENAME COLUMN email TO email_address; ALTER TABLE customer RENAME COLUMN phone TO phone_number;", probe: both(renameProbe("customer", "customer_id", "email", "email_address"), renameProbe("customer", "customer_id", "phone", "phone_number")), probeWrites: true},
		{name: "retype_and_rename_one_table", dataset: "chinook", sql: "ALTER TABLE invoice_line RENAME COLUMN unit_price TO price; ALTER TABLE invoice_line ALTER COLUMN quantity TYPE bigint;", probe: countProbe("invoice_line", 2240)},
		{name: "rename_table", dataset: "chinook", sql: "ALTER TABLE artist RENAME TO performer;", probe: tableRenameProbe},
		{name: "change_type", dataset: "chinook", sql: "ALTER TABLE track ALTER COLUMN milliseconds TYPE bigint;", probe: countProbe("track", 3503)},
		{name: "drop_column", dataset: "chinook", sql: "ALTER TABLE customer DROP COLUMN fax;", probe: countProbe("customer", 59)},
		{name: "set_not_null_spec", dataset: "chinook", spec: "changes:\n  - kind: set_not_null\n    table: customer\n    column: company\n    fill: \"'n/a'\"\n",
			naive: "UPDATE customer SET company = 'n/a' WHERE company IS NULL; ALTER TABLE customer ALTER COLUMN company SET DEFAULT 'n/a'; ALTER TABLE customer ALTER COLUMN company SET NOT NULL;", probe: countProbe("customer", 59)},
		{name: "add_foreign_key", dataset: "chinook", sql: "ALTER TABLE employee ADD CONSTRAINT employee_support_fk FOREIGN KEY (reports_to) REFERENCES employee (employee_id) ON DELETE SET NULL;", probe: countProbe("employee", 8)},
		{name: "add_check", dataset: "chinook", sql: "ALTER TABLE invoice ADD CONSTRAINT invoice_total_positive CHECK (total >= 0);", probe: countProbe("invoice", 412)},
		{name: "add_unique", dataset: "chinook", sql: "ALTER TABLE customer ADD CONSTRAINT customer_email_key UNIQUE (email);", probe: countProbe("customer", 59)},
		{name: "create_index", dataset: "chinook", sql: "CREATE INDEX track_name_idx ON track (name);", probe: countProbe("track", 3503)},
		{name: "drop_index", dataset: "chinook", sql: "DROP INDEX track_genre_id_idx;", probe: countProbe("track", 3503)},
		{name: "add_column_volatile", dataset: "chinook", sql: "ALTER TABLE invoice ADD COLUMN token double precision NOT NULL DEFAULT random();", probe: countProbe("invoice", 412)},
		{name: "set_default", dataset: "chinook", sql: "ALTER TABLE customer ALTER COLUMN country SET DEFAULT 'USA';", probe: countProbe("customer", 59)},
		{name: "drop_not_null", dataset: "chinook", sql: "ALTER TABLE customer ALTER COLUMN email DROP NOT NULL;", probe: countProbe("customer", 59)},
		{name: "split_column", dataset: "chinook", spec: `changes:
  - kind: split_column
    table: employee
    column: address
    into:
      - {name: street, type: text, up: "split_part(address, ',', 1)"}
      - {name: unit, type: text, up: "nullif(split_part(address, ',', 2), '')"}
    down: "street || coalesce(',' || unit, '')"
`, naive: "ALTER TABLE employee ADD COLUMN street text, ADD COLUMN unit text; ALTER TABLE employee DROP COLUMN address;", probe: countProbe("employee", 8)},
		{name: "merge_columns", dataset: "chinook", spec: `changes:
  - kind: merge_columns
    table: employee
    from: [first_name, last_name]
    into: [{name: full_name, type: text, up: "first_name || ' ' || last_name"}]
    down_each: {first_name: "split_part(full_name, ' ', 1)", last_name: "split_part(full_name, ' ', 2)"}
`, naive: "ALTER TABLE employee ADD COLUMN full_name text; ALTER TABLE employee DROP COLUMN first_name, DROP COLUMN last_name;", probe: countProbe("employee", 8)},
		{name: "rename_and_retype", dataset: "chinook", spec: `changes:
  - kind: change_type
    table: invoice
    column: total
    new_name: total_cents
    type: bigint
    up: "round(total * 100)::bigint"
    down: "(total_cents / 100.0)::numeric(10,2)"
`, naive: "ALTER TABLE invoice RENAME COLUMN total TO total_cents; ALTER TABLE invoice ALTER COLUMN total_cents TYPE bigint USING round(total_cents * 100)::bigint;", probe: countProbe("invoice", 412)},
		{name: "drop_table", dataset: "chinook", sql: "DROP TABLE playlist_track;", probe: countProbe("playlist", 18)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			runAcceptance(t, tc)
		})
	}
}

// TestPagilaViews: the columns Pagila's views read are renamed and retyped
// for real; no view is ever broken, and a backfill leaves last_update alone.
func TestPagilaViews(t *testing.T) {
	cases := []acceptCase{
		{name: "rename_phone", dataset: "pagila", sql: "ALTER TABLE address RENAME COLUMN phone TO phone_number;", probe: viewsProbe("customer_list", "staff_list")},
		{name: "rename_enum_value", dataset: "pagila", sql: "ALTER TYPE mpaa_rating RENAME VALUE 'G' TO 'General';", probe: both(viewsProbe("film_list", "nicer_but_slower_film_list"), ratingProbe("G", "General")), probeWrites: true},
		{name: "remove_enum_value", dataset: "pagila", spec: "changes:\n  - kind: remove_enum_value\n    enum: mpaa_rating\n    value: NC-17\n    replacement: R\n",
			naiveFrom: func(s *schema.Snapshot) string {
				return "UPDATE film SET rating = 'R' WHERE rating = 'NC-17'; DROP VIEW nicer_but_slower_film_list; DROP VIEW film_list;" +
					"ALTER TYPE mpaa_rating RENAME TO mpaa_rating_old; CREATE TYPE mpaa_rating AS ENUM ('G', 'PG', 'PG-13', 'R');" +
					"ALTER TABLE film ALTER COLUMN rating DROP DEFAULT, ALTER COLUMN rating TYPE mpaa_rating USING rating::text::mpaa_rating, ALTER COLUMN rating SET DEFAULT 'G';" +
					"DROP TYPE mpaa_rating_old;" +
					"CREATE VIEW film_list AS " + s.Views["public.film_list"].Definition +
					"CREATE VIEW nicer_but_slower_film_list AS " + s.Views["public.nicer_but_slower_film_list"].Definition
			}, probe: both(viewsProbe("film_list", "nicer_but_slower_film_list"), ratingProbe("NC-17", "R")), probeWrites: true},
		{name: "retype_length", dataset: "pagila", sql: "ALTER TABLE film ALTER COLUMN length TYPE integer;", naiveFrom: func(s *schema.Snapshot) string {
			return "DROP VIEW nicer_but_slower_film_list; DROP VIEW film_list; ALTER TABLE film ALTER COLUMN length TYPE integer;" +
				"CREATE VIEW film_list AS " + s.Views["public.film_list"].Definition +
				"CREATE VIEW nicer_but_slower_film_list AS " + s.Views["public.nicer_but_slower_film_list"].Definition
		}, probe: viewsProbe("film_list", "nicer_but_slower_film_list")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			runAcceptance(t, tc)
		})
	}
}

func runAcceptance(t *testing.T, tc acceptCase) {
	ctx := context.Background()
	dsn := pgtest.NewDB(t, tc.dataset)
	conn := pgtest.Conn(t, dsn)
	if tc.dataset == "pagila" {
		seedPagila(t, conn)
	}
	before, err := verify.DumpSchema(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	sumsBefore := dataChecksum(t, conn, nil)

	var m *change.Migration
	if tc.spec != "" {
		m, err = change.ParseSpec("change.yaml", []byte(tc.spec))
	} else {
		m, err = change.ParseSQL("migration.sql", tc.sql)
	}
	if err != nil {
		t.Fatal(err)
	}
	snap, err := verify.SnapshotFromDSN(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := phases.Build(snap, m)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "plan")
	files, err := migrations.Write(dir, plan, func(*phases.Plan) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	// Tables the plan does not touch keep their data at every step.
	untouched := map[string]bool{}
	for _, tbl := range plan.Tables {
		untouched[tbl] = true
	}
	mg, err := migrate.New("file://"+dir, "pgx5"+strings.TrimPrefix(dsn, "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer mg.Close()
	for _, f := range files {
		if err := mg.Steps(1); err != nil {
			t.Fatalf("up %06d_%s: %v", f.Version, f.Name, err)
		}
		if tc.probe != nil {
			tc.probe(t, conn, "after up "+f.Name)
		}
		sameSums(t, "after up "+f.Name+", a table the plan does not touch", dataChecksum(t, conn, untouched), sumsBefore)
	}

	// After contract the schema is what the naive migration makes.
	naiveDSN := pgtest.NewDB(t, tc.dataset)
	naiveConn := pgtest.Conn(t, naiveDSN)
	if tc.dataset == "pagila" {
		seedPagila(t, naiveConn)
	}
	naive := tc.naive
	if naive == "" {
		naive = tc.sql
	}
	if tc.naiveFrom != nil {
		naive = tc.naiveFrom(snap)
	}
	if _, err := naiveConn.Exec(ctx, naive); err != nil {
		t.Fatalf("naive migration: %v", err)
	}
	want, err := verify.DumpSchema(ctx, naiveDSN)
	if err != nil {
		t.Fatal(err)
	}
	got, err := verify.DumpSchema(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("schema after contract differs from the naive migration's:\n%s", diff(want, got))
	}
	if tc.noDown {
		return
	}
	for i := len(files) - 1; i >= 0; i-- {
		if err := mg.Steps(-1); err != nil {
			t.Fatalf("down %06d_%s: %v", files[i].Version, files[i].Name, err)
		}
		if tc.probe != nil && i > 0 {
			tc.probe(t, conn, "after down "+files[i].Name)
		}
	}
	after, err := verify.DumpSchema(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("schema after rolling every phase back differs from the original:\n%s", diff(before, after))
	}
	// Back at the start, every row is as it was, unless the probe wrote on
	// purpose or a phase could not keep the data (a dropped column).
	reversible := true
	for _, ph := range plan.Phases {
		reversible = reversible && ph.Reversible
	}
	if reversible && !tc.probeWrites {
		sameSums(t, "after rolling every phase back", sumsBefore, dataChecksum(t, conn, nil))
	}
}

// dataChecksum is a checksum of every row of every table in public, table
// by table, rows as JSON (so column order does not count: a column re-added
// by a rollback comes last) in text order; skip leaves tables out.
func dataChecksum(t *testing.T, conn *pgx.Conn, skip map[string]bool) map[string]string {
	t.Helper()
	ctx := context.Background()
	rows, err := conn.Query(ctx, `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	sums := map[string]string{}
	for _, tbl := range tables {
		if skip["public."+tbl] || tbl == "schema_migrations" {
			continue
		}
		var sum string
		if err := conn.QueryRow(ctx, `SELECT coalesce(md5(string_agg(to_jsonb(r)::text, E'\n' ORDER BY to_jsonb(r)::text)), '') FROM public.`+tbl+` r`).Scan(&sum); err != nil {
			t.Fatal(err)
		}
		sums[tbl] = sum
	}
	return sums
}

func sameSums(t *testing.T, what string, a, b map[string]string) {
	t.Helper()
	for k, v := range a {
		if w, ok := b[k]; ok && w != v {
			t.Errorf("%s: data of %s changed", what, k)
		}
	}
}

func diff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	in := func(l []string) map[string]bool {
		m := map[string]bool{}
		for _, x := range l {
			m[x] = true
		}
		return m
	}
	am, bm := in(al), in(bl)
	var out []string
	for _, x := range al {
		if !bm[x] {
			out = append(out, "- "+x)
		}
	}
	for _, x := range bl {
		if !am[x] {
			out = append(out, "+ "+x)
		}
	}
	return strings.Join(out, "\n")
}

func hasColumn(t *testing.T, conn *pgx.Conn, table, col string) bool {
	t.Helper()
	var ok bool
	err := conn.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = $1::regclass AND attname = $2 AND NOT attisdropped)`, "public."+table, col).Scan(&ok)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func hasSyncTrigger(t *testing.T, conn *pgx.Conn, table string) bool {
	t.Helper()
	var ok bool
	err := conn.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = $1::regclass AND tgname = $2)`, "public."+table, phases.SyncTrigger).Scan(&ok)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// renameProbe writes through the old name and through the new one (when both
// exist) and checks each write is visible under both names.
func renameProbe(table, key, oldc, newc string) probe {
	return func(t *testing.T, conn *pgx.Conn, step string) {
		ctx := context.Background()
		hasOld, hasNew := hasColumn(t, conn, table, oldc), hasColumn(t, conn, table, newc)
		if hasOld && hasNew && !hasSyncTrigger(t, conn, table) {
			// Between expand and dual-write only N runs, and N never reads
			// the new column; the two are kept equal from dual-write on.
			hasNew = false
		}
		for _, via := range []string{oldc, newc} {
			if (via == oldc && !hasOld) || (via == newc && !hasNew) {
				continue
			}
			// Short (phone is varchar(24)) and new at every step, so each
			// write really changes the row.
			val := fmt.Sprintf("p%d-%s", probeSeq.Add(1), via[:1])
			if _, err := conn.Exec(ctx, `UPDATE `+table+` SET `+via+` = $1 WHERE `+key+` = 1`, val); err != nil {
				t.Fatalf("%s: update through %s: %v", step, via, err)
			}
			for _, read := range []string{oldc, newc} {
				if (read == oldc && !hasOld) || (read == newc && !hasNew) {
					continue
				}
				var got string
				if err := conn.QueryRow(ctx, `SELECT `+read+` FROM `+table+` WHERE `+key+` = 1`).Scan(&got); err != nil {
					t.Fatalf("%s: read %s: %v", step, read, err)
				}
				if got != val {
					t.Fatalf("%s: wrote %q through %s, read %q through %s", step, val, via, got, read)
				}
			}
		}
		// An insert through either name is visible through both.
		for _, via := range []string{oldc, newc} {
			if (via == oldc && !hasOld) || (via == newc && !hasNew) {
				continue
			}
			var id int
			cols, vals := "customer_id, first_name, last_name, "+via, "max(customer_id)+1, 'P', 'Q', 'ins-"+via+"'"
			if via != "email" && via != "email_address" {
				// customer.email is NOT NULL: give it through the name it has.
				mail := "email"
				if !hasColumn(t, conn, table, mail) {
					mail = "email_address"
				}
				cols, vals = cols+", "+mail, vals+", 'm@x'"
			}
			err := conn.QueryRow(ctx, `INSERT INTO `+table+` (`+cols+`) SELECT `+vals+` FROM `+table+` RETURNING customer_id`).Scan(&id)
			if err != nil {
				t.Fatalf("%s: insert through %s: %v", step, via, err)
			}
			if hasOld && hasNew {
				var a, b string
				if err := conn.QueryRow(ctx, `SELECT `+oldc+`, `+newc+` FROM `+table+` WHERE customer_id = $1`, id).Scan(&a, &b); err != nil {
					t.Fatalf("%s: %v", step, err)
				}
				if a != b {
					t.Fatalf("%s: insert through %s: %s=%q but %s=%q", step, via, oldc, a, newc, b)
				}
			}
			if _, err := conn.Exec(ctx, `DELETE FROM `+table+` WHERE customer_id = $1`, id); err != nil {
				t.Fatal(err)
			}
		}
	}
}

var probeSeq atomic.Int64

func both(a, b probe) probe {
	return func(t *testing.T, conn *pgx.Conn, step string) {
		a(t, conn, step)
		b(t, conn, step)
	}
}

func tableRenameProbe(t *testing.T, conn *pgx.Conn, step string) {
	ctx := context.Background()
	for _, name := range []string{"artist", "performer"} {
		var exists bool
		if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, "public."+name).Scan(&exists); err != nil {
			t.Fatal(err)
		}
		if !exists {
			continue
		}
		var id int
		if err := conn.QueryRow(ctx, `INSERT INTO `+name+` (artist_id, name) SELECT max(artist_id)+1, 'via `+name+`' FROM `+name+` RETURNING artist_id`).Scan(&id); err != nil {
			t.Fatalf("%s: insert through %s: %v", step, name, err)
		}
		if _, err := conn.Exec(ctx, `DELETE FROM `+name+` WHERE artist_id = $1`, id); err != nil {
			t.Fatalf("%s: delete through %s: %v", step, name, err)
		}
	}
}

func countProbe(table string, want int) probe {
	return func(t *testing.T, conn *pgx.Conn, step string) {
		var n int
		if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if n != want {
			t.Fatalf("%s: %s has %d rows, want %d", step, table, n, want)
		}
	}
}

func viewsProbe(views ...string) probe {
	return func(t *testing.T, conn *pgx.Conn, step string) {
		for _, v := range views {
			var n int
			if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM "+v).Scan(&n); err != nil {
				t.Fatalf("%s: view %s is broken: %v", step, v, err)
			}
		}
		var lu int
		if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM address WHERE last_update <> '2020-01-01'").Scan(&lu); err != nil {
			t.Fatal(err)
		}
		if lu != 0 {
			t.Fatalf("%s: %d address rows had last_update rewritten", step, lu)
		}
	}
}

// ratingProbe checks that every seeded film keeps its rating under the old
// label or the new one, and that N can still write the old label while it
// exists (and N+1 the new one once the type has it).
func ratingProbe(oldLabel, newLabel string) probe {
	return func(t *testing.T, conn *pgx.Conn, step string) {
		ctx := context.Background()
		var n int
		// Simple protocol: removing a label replaces the type, and a statement
		// prepared before that must be prepared again (the plan warns).
		simple := pgx.QueryExecModeSimpleProtocol
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM film WHERE rating::text IN ($1, $2)", simple, oldLabel, newLabel).Scan(&n); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if want := seededRatings[oldLabel]; n != want {
			t.Fatalf("%s: %d films rated %s or %s, want %d", step, n, oldLabel, newLabel, want)
		}
		var labels []string
		if err := conn.QueryRow(ctx, "SELECT enum_range(NULL::mpaa_rating)::text[]", simple).Scan(&labels); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		label := newLabel
		for _, l := range labels {
			if l == oldLabel {
				label = oldLabel
			}
		}
		if _, err := conn.Exec(ctx, "UPDATE film SET rating = $1::text::mpaa_rating WHERE film_id = 1 AND rating::text IN ($1, $2)", simple, label, map[string]string{oldLabel: newLabel, newLabel: oldLabel}[label]); err != nil {
			t.Fatalf("%s: write %s: %v", step, label, err)
		}
	}
}

var seededRatings = map[string]int{"G": 6, "NC-17": 4}

// seedPagila puts a few rows into Pagila (shipped without data) with a fixed
// last_update, so backfills can be checked not to rewrite it.
func seedPagila(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	_, err := conn.Exec(context.Background(), `
		INSERT INTO country (country_id, country) VALUES (1, 'Nowhere');
		INSERT INTO city (city_id, city, country_id) VALUES (1, 'Town', 1);
		INSERT INTO address (address_id, address, district, city_id, postal_code, phone)
		  SELECT g, 'Street ' || g, 'D', 1, '0000', '555-' || g FROM generate_series(1, 20) g;
		SET session_replication_role = replica; -- the seed itself must not fire last_updated
		UPDATE address SET last_update = '2020-01-01';
		RESET session_replication_role;
		INSERT INTO language (language_id, name) VALUES (1, 'English');
		INSERT INTO film (film_id, title, language_id, length) SELECT g, 'Film ' || g, 1, 90 + g FROM generate_series(1, 10) g;
		UPDATE film SET rating = 'NC-17' WHERE film_id > 6;`)
	if err != nil {
		t.Fatal(err)
	}
}
