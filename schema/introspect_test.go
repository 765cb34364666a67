package schema_test

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/phasekit/phasekit/schema"
	"github.com/phasekit/phasekit/verify/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// introspect connects to dsn, runs setup and reads a snapshot.
func introspect(t *testing.T, dsn string, setup ...string) (*schema.Snapshot, *pgx.Conn) {
	t.Helper()
	conn := pgtest.Conn(t, dsn)
	for _, sql := range setup {
		if _, err := conn.Exec(context.Background(), sql); err != nil {
			t.Fatalf("setup %q: %v", sql, err)
		}
	}
	s, err := schema.Introspect(context.Background(), conn)
	if err != nil {
		t.Fatalf("Introspect: %v", err)
	}
	return s, conn
}

func mustTable(t *testing.T, s *schema.Snapshot, name string) *schema.Table {
	t.Helper()
	tb, ok := s.Table(name)
	if !ok {
		t.Fatalf("table %s missing; have %v", name, s.TableNames())
	}
	return tb
}

func mustView(t *testing.T, s *schema.Snapshot, name string) *schema.View {
	t.Helper()
	v, ok := s.Views[name]
	if !ok {
		t.Fatalf("view %s missing", name)
	}
	return v
}

func mustColumn(t *testing.T, tb *schema.Table, name string) *schema.Column {
	t.Helper()
	c, ok := tb.Column(name)
	if !ok {
		t.Fatalf("%s has no column %s; have %v", tb.QName(), name, tb.ColumnNames())
	}
	return c
}

func findConstraint(cs []schema.Constraint, name string) (schema.Constraint, bool) {
	for _, c := range cs {
		if c.Name == name {
			return c, true
		}
	}
	return schema.Constraint{}, false
}

func findIndex(ix []schema.Index, name string) (schema.Index, bool) {
	for _, i := range ix {
		if i.Name == name {
			return i, true
		}
	}
	return schema.Index{}, false
}

func TestIntrospectPagila(t *testing.T) {
	t.Parallel()
	s, conn := introspect(t, pgtest.NewDB(t, "pagila"))

	if s.ServerVersion < 100000 {
		t.Errorf("ServerVersion = %d, want a server_version_num", s.ServerVersion)
	}

	t.Run("view column dependencies", func(t *testing.T) {
		for _, tc := range []struct{ view, table, column string }{
			{"public.customer_list", "public.address", "phone"},
			{"public.staff_list", "public.address", "phone"},
			{"public.film_list", "public.film", "length"},
			{"public.nicer_but_slower_film_list", "public.film", "length"},
			{"public.rental_by_category", "public.payment", "amount"},
		} {
			v := mustView(t, s, tc.view)
			if !slices.Contains(v.DependsOn, schema.ColumnRef{Relation: tc.table, Column: tc.column}) {
				t.Errorf("%s.DependsOn lacks %s.%s: %v", tc.view, tc.table, tc.column, v.DependsOn)
			}
		}
		var using []string
		for _, v := range s.ViewsUsing("public.address", "phone") {
			using = append(using, v.QName())
		}
		if want := []string{"public.customer_list", "public.staff_list"}; !reflect.DeepEqual(using, want) {
			t.Errorf("ViewsUsing(address, phone) = %v, want %v", using, want)
		}
		// The rule of every view depends on the view itself; that must not
		// make a view a dependency of itself.
		for k, v := range s.Views {
			if slices.Contains(v.DependsOnViews, k) {
				t.Errorf("%s depends on itself", k)
			}
			for _, d := range v.DependsOn {
				if d.Relation == k {
					t.Errorf("%s depends on its own column %s", k, d.Column)
				}
			}
		}
	})

	t.Run("views", func(t *testing.T) {
		v := mustView(t, s, "public.customer_list")
		if v.Materialized {
			t.Error("customer_list reported as materialized")
		}
		if want := []string{"id", "name", "address", "zip code", "phone", "city", "country", "notes", "sid"}; !reflect.DeepEqual(v.Columns, want) {
			t.Errorf("customer_list columns = %v, want %v", v.Columns, want)
		}
		if !strings.Contains(v.Definition, "FROM public.customer cu") {
			t.Errorf("customer_list definition is not schema-qualified:\n%s", v.Definition)
		}
		m := mustView(t, s, "public.rental_by_category")
		if !m.Materialized {
			t.Error("rental_by_category not reported as materialized")
		}
		ix, ok := findIndex(m.Indexes, "rental_category")
		if !ok || !ix.Unique || !reflect.DeepEqual(ix.Columns, []string{"category"}) {
			t.Errorf("rental_by_category index rental_category = %+v (found %v), want unique on category", ix, ok)
		}
	})

	t.Run("partitions", func(t *testing.T) {
		p := mustTable(t, s, "public.payment")
		if !p.Partitioned || p.PartitionOf != "" {
			t.Errorf("payment: Partitioned=%v PartitionOf=%q, want a partitioned root", p.Partitioned, p.PartitionOf)
		}
		parts := 0
		for _, tb := range s.Tables {
			if tb.PartitionOf == "public.payment" {
				parts++
				if tb.Partitioned {
					t.Errorf("%s: leaf partition reported as partitioned", tb.QName())
				}
			}
		}
		if parts == 0 {
			t.Error("no table has PartitionOf = public.payment")
		}
		if got := mustTable(t, s, "public.payment_p2022_01").PartitionOf; got != "public.payment" {
			t.Errorf("payment_p2022_01.PartitionOf = %q", got)
		}
	})

	t.Run("triggers", func(t *testing.T) {
		for _, table := range []string{"public.actor", "public.customer", "public.film"} {
			tb := mustTable(t, s, table)
			i := slices.IndexFunc(tb.Triggers, func(tg schema.Trigger) bool { return tg.Name == "last_updated" })
			if i < 0 {
				t.Errorf("%s has no last_updated trigger: %+v", table, tb.Triggers)
				continue
			}
			tg := tb.Triggers[i]
			if tg.Function != "public.last_updated" || tg.Enabled != "O" || !strings.Contains(tg.Definition, "BEFORE UPDATE ON "+table) {
				t.Errorf("%s trigger = %+v", table, tg)
			}
		}
		// Foreign keys are enforced by internal triggers, which are not the
		// user's and must not be reported.
		for _, tg := range mustTable(t, s, "public.rental").Triggers {
			if strings.HasPrefix(tg.Name, "RI_ConstraintTrigger") {
				t.Errorf("internal trigger reported: %s", tg.Name)
			}
		}
	})

	t.Run("enums and functions", func(t *testing.T) {
		e, ok := s.Enums["public.mpaa_rating"]
		if !ok {
			t.Fatalf("enum mpaa_rating missing: %v", s.Enums)
		}
		if want := []string{"G", "PG", "PG-13", "R", "NC-17"}; !reflect.DeepEqual(e.Values, want) {
			t.Errorf("mpaa_rating = %v, want %v", e.Values, want)
		}
		f, ok := s.Functions["public.last_updated()"]
		if !ok || f.Language != "plpgsql" || !strings.HasPrefix(f.Definition, "CREATE OR REPLACE FUNCTION public.last_updated()") {
			t.Errorf("public.last_updated() = %+v (found %v)", f, ok)
		}
		if _, ok := s.Functions["public.film_in_stock(p_film_id integer, p_store_id integer, OUT p_film_count integer)"]; !ok {
			t.Error("film_in_stock missing or keyed without its identity arguments")
		}
		// Pagila's group_concat is an aggregate, which pg_get_functiondef
		// rejects; its state function _group_concat is an ordinary one.
		for k := range s.Functions {
			if strings.HasPrefix(k, "public.group_concat(") {
				t.Errorf("aggregate reported as a function: %s", k)
			}
		}
		if _, ok := s.Functions["public._group_concat(text, text)"]; !ok {
			t.Error("public._group_concat(text, text) missing")
		}
	})

	t.Run("deterministic", func(t *testing.T) {
		again, err := schema.Introspect(context.Background(), conn)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(s, again) {
			t.Error("two snapshots of an unchanged database differ")
		}
	})
}

func TestIntrospectChinook(t *testing.T) {
	t.Parallel()
	s, _ := introspect(t, pgtest.NewDB(t, "chinook"), "ANALYZE")

	customer := mustTable(t, s, "customer")
	if email := mustColumn(t, customer, "email"); email.Type != "character varying(60)" || !email.NotNull {
		t.Errorf("customer.email = %+v, want character varying(60) NOT NULL", *email)
	}
	if got := customer.PrimaryKeyColumns(); !reflect.DeepEqual(got, []string{"customer_id"}) {
		t.Errorf("customer primary key = %v", got)
	}
	pk, ok := findConstraint(customer.Constraints, "customer_pkey")
	if !ok || pk.Type != schema.PrimaryKey || pk.Index != "customer_pkey" || !pk.Validated {
		t.Errorf("customer_pkey = %+v (found %v)", pk, ok)
	}
	ix, ok := findIndex(customer.Indexes, "customer_pkey")
	if !ok || !ix.Primary || !ix.Unique || !ix.Valid || ix.Constraint != "customer_pkey" {
		t.Errorf("index customer_pkey = %+v (found %v)", ix, ok)
	}

	want := schema.Constraint{
		Name:       "customer_support_rep_id_fkey",
		Table:      "public.customer",
		Type:       schema.ForeignKey,
		Columns:    []string{"support_rep_id"},
		Definition: "FOREIGN KEY (support_rep_id) REFERENCES public.employee(employee_id)",
		RefTable:   "public.employee",
		RefColumns: []string{"employee_id"},
		Validated:  true,
	}
	if fk, _ := findConstraint(customer.Constraints, want.Name); !reflect.DeepEqual(fk, want) {
		t.Errorf("customer FK =\n %+v\nwant\n %+v", fk, want)
	}
	employee := mustTable(t, s, "employee")
	if fk, _ := findConstraint(employee.ReferencedBy, want.Name); !reflect.DeepEqual(fk, want) {
		t.Errorf("employee.ReferencedBy has %+v, want %+v", employee.ReferencedBy, want)
	}
	// employee.reports_to references employee itself: a constraint of the
	// table, not a key on another table.
	if _, ok := findConstraint(employee.ReferencedBy, "employee_reports_to_fkey"); ok {
		t.Error("self-referencing FK listed in employee.ReferencedBy")
	}
	if _, ok := findConstraint(employee.Constraints, "employee_reports_to_fkey"); !ok {
		t.Error("employee_reports_to_fkey missing from employee.Constraints")
	}

	track := mustTable(t, s, "track")
	if track.RowEstimate <= 0 || track.SizeBytes <= 0 {
		t.Errorf("track after ANALYZE: RowEstimate=%d SizeBytes=%d, want both > 0", track.RowEstimate, track.SizeBytes)
	}
	for i, c := range track.Columns {
		if c.Position != i+1 {
			t.Errorf("track column %s at index %d has Position %d", c.Name, i, c.Position)
		}
	}
}

// TestIntrospectShapes covers what the sample databases lack: identity and
// generated columns, dropped columns, expression indexes, unvalidated and
// exclusion constraints, views over views, disabled triggers, and the
// phasekit schema, which must stay invisible.
func TestIntrospectShapes(t *testing.T) {
	t.Parallel()
	s, _ := introspect(t, pgtest.NewDB(t, ""), `
CREATE TYPE item_kind AS ENUM ('a', 'b');
CREATE TABLE item (
	id     int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	alt_id bigint GENERATED BY DEFAULT AS IDENTITY,
	gone   int,
	name   text NOT NULL DEFAULT 'x',
	price  int,
	qty    int,
	total  int GENERATED ALWAYS AS (price * qty) STORED,
	kind   item_kind DEFAULT 'a',
	CONSTRAINT item_name_key UNIQUE (name)
);
ALTER TABLE item DROP COLUMN gone;
ALTER TABLE item ADD CONSTRAINT item_qty_positive CHECK (qty > 0) NOT VALID;
CREATE INDEX item_lower_name ON item (lower(name), price) INCLUDE (qty);
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
CREATE TRIGGER item_touch BEFORE UPDATE ON item FOR EACH ROW EXECUTE FUNCTION touch();
ALTER TABLE item DISABLE TRIGGER item_touch;
CREATE VIEW item_names WITH (security_barrier = true) AS SELECT id, name FROM item;
COMMENT ON VIEW item_names IS 'names only';
CREATE VIEW item_names_upper AS SELECT id, upper(name) AS name FROM item_names;
CREATE VIEW item_count AS SELECT count(*) AS n FROM item;
CREATE SCHEMA phasekit;
CREATE TABLE phasekit.ledger (id int PRIMARY KEY);
CREATE VIEW phasekit.ledger_view AS SELECT id FROM phasekit.ledger;
CREATE TYPE phasekit.state AS ENUM ('a', 'b');
CREATE FUNCTION phasekit.f() RETURNS int LANGUAGE sql AS 'SELECT 1';
-- A session search_path must not change what the snapshot says.
SET search_path = phasekit, public;
`)

	item := mustTable(t, s, "public.item")
	if got, want := item.ColumnNames(), []string{"id", "alt_id", "name", "price", "qty", "total", "kind"}; !reflect.DeepEqual(got, want) {
		t.Errorf("columns = %v, want %v (dropped column left out)", got, want)
	}
	for _, tc := range []schema.Column{
		{Name: "id", Type: "integer", NotNull: true, Identity: "a", Position: 1, Sequence: "public.item_id_seq"},
		{Name: "alt_id", Type: "bigint", NotNull: true, Identity: "d", Position: 2, Sequence: "public.item_alt_id_seq"},
		{Name: "name", Type: "text", NotNull: true, Default: "'x'::text", Position: 4},
		{Name: "total", Type: "integer", Generated: "(price * qty)", Position: 7},
		// Qualified although the session's search_path makes public visible.
		{Name: "kind", Type: "public.item_kind", Default: "'a'::public.item_kind", Position: 8},
	} {
		if got := mustColumn(t, item, tc.Name); !reflect.DeepEqual(*got, tc) {
			t.Errorf("column %s =\n %+v\nwant\n %+v", tc.Name, *got, tc)
		}
	}

	if c, ok := findConstraint(item.Constraints, "item_qty_positive"); !ok || c.Type != schema.Check || c.Validated || !reflect.DeepEqual(c.Columns, []string{"qty"}) {
		t.Errorf("item_qty_positive = %+v (found %v), want an unvalidated CHECK on qty", c, ok)
	}
	if c, ok := findConstraint(item.Constraints, "item_name_key"); !ok || c.Type != schema.Unique || c.Index != "item_name_key" {
		t.Errorf("item_name_key = %+v (found %v)", c, ok)
	}
	var names []string
	for _, c := range item.Constraints {
		names = append(names, c.Name)
	}
	if want := []string{"item_name_key", "item_pkey", "item_qty_positive"}; !reflect.DeepEqual(names, want) {
		t.Errorf("constraints = %v, want %v (sorted by name)", names, want)
	}
	ix, ok := findIndex(item.Indexes, "item_lower_name")
	if !ok || !reflect.DeepEqual(ix.Columns, []string{"", "price"}) || ix.Unique || ix.Constraint != "" {
		t.Errorf("item_lower_name = %+v (found %v), want key columns [\"\" price] and no INCLUDE column", ix, ok)
	}
	if len(item.Triggers) != 1 || item.Triggers[0].Enabled != "D" || item.Triggers[0].Function != "public.touch" {
		t.Errorf("triggers = %+v, want disabled item_touch calling public.touch", item.Triggers)
	}
	if item.RowEstimate != -1 && s.ServerVersion >= 140000 {
		t.Errorf("RowEstimate of a never-analysed table = %d, want -1", item.RowEstimate)
	}

	nv := mustView(t, s, "public.item_names")
	if !reflect.DeepEqual(nv.Options, []string{"security_barrier=true"}) || nv.Comment != "names only" {
		t.Errorf("item_names options %v comment %q", nv.Options, nv.Comment)
	}
	upper := mustView(t, s, "public.item_names_upper")
	if !reflect.DeepEqual(upper.DependsOnViews, []string{"public.item_names"}) {
		t.Errorf("item_names_upper.DependsOnViews = %v", upper.DependsOnViews)
	}
	if !slices.Contains(upper.DependsOn, schema.ColumnRef{Relation: "public.item_names", Column: "name"}) {
		t.Errorf("item_names_upper.DependsOn = %v, want the view column it reads", upper.DependsOn)
	}
	var using []string
	for _, v := range s.ViewsUsing("public.item", "name") {
		using = append(using, v.QName())
	}
	if want := []string{"public.item_names", "public.item_names_upper"}; !reflect.DeepEqual(using, want) {
		t.Errorf("ViewsUsing(item, name) = %v, want %v (dependencies first)", using, want)
	}
	// count(*) reads no column of item, so no column change can break it.
	if count := mustView(t, s, "public.item_count"); len(count.DependsOn) != 0 || len(count.DependsOnViews) != 0 {
		t.Errorf("item_count depends on %v / %v, want nothing", count.DependsOn, count.DependsOnViews)
	}

	for _, keys := range [][]string{s.TableNames(), keysOf(s.Views), keysOf(s.Enums), keysOf(s.Functions)} {
		for _, k := range keys {
			if strings.HasPrefix(k, "phasekit.") {
				t.Errorf("phasekit object reported: %s", k)
			}
		}
	}
	if _, ok := s.Functions["public.touch()"]; !ok {
		t.Errorf("public.touch() missing: %v", keysOf(s.Functions))
	}
}

// TestIntrospectInTransaction checks that Introspect run inside the caller's
// transaction leaves that transaction open and its search_path as it was.
func TestIntrospectInTransaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn := pgtest.Conn(t, pgtest.NewDB(t, ""))
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `CREATE TABLE uncommitted (id int); SET LOCAL search_path = public, pg_catalog`); err != nil {
		t.Fatal(err)
	}
	s, err := schema.Introspect(ctx, conn)
	if err != nil {
		t.Fatalf("Introspect: %v", err)
	}
	if _, ok := s.Table("uncommitted"); !ok {
		t.Error("table created in the caller's transaction not seen")
	}
	if st := conn.PgConn().TxStatus(); st != 'T' {
		t.Fatalf("transaction status after Introspect = %q, want still open", st)
	}
	var path string
	if err := tx.QueryRow(ctx, `SHOW search_path`).Scan(&path); err != nil {
		t.Fatal(err)
	}
	if path != "public, pg_catalog" {
		t.Errorf("search_path after Introspect = %q, want it restored", path)
	}

	// A failed transaction cannot be read; Introspect must say so, not panic
	// or return an empty snapshot.
	_, _ = tx.Exec(ctx, `SELECT 1/0`)
	if _, err := schema.Introspect(ctx, conn); err == nil {
		t.Error("Introspect in a failed transaction returned no error")
	}
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
