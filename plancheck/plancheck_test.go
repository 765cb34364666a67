package plancheck_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/plancheck"
	"github.com/phasekit/phasekit/verify/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// dev opens a dev server on the test binary's cluster with base loaded.
func dev(t *testing.T, base string) *plancheck.Dev {
	t.Helper()
	ctx := context.Background()
	d, err := plancheck.Open(ctx, plancheck.Options{DevURL: pgtest.Cluster(t).DSN("postgres")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	m, err := change.ParseSQL("base.sql", base)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.LoadHistory(ctx, []*change.Migration{m}); err != nil {
		t.Fatal(err)
	}
	return d
}

func planChecked(t *testing.T, base, sql string) (*phases.Plan, error) {
	t.Helper()
	m, err := change.ParseSQL("m.sql", sql)
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := dev(t, base).Plan(context.Background(), []*change.Migration{m}, phases.Options{}, true, plancheck.CheckOptions{})
	return p, err
}

func phaseList(p *phases.Plan) string {
	var ks []string
	for _, ph := range p.Phases {
		ks = append(ks, string(ph.Kind))
	}
	return strings.Join(ks, ",")
}

const chinookish = `
CREATE TABLE customer (customer_id serial PRIMARY KEY, email varchar(60) NOT NULL, company varchar(80), country varchar(40));
CREATE TABLE acct (id int PRIMARY KEY, code varchar(20) NOT NULL UNIQUE CHECK (code <> ''), parent int REFERENCES acct);
CREATE INDEX acct_lower_code ON acct (lower(code)) WHERE code <> 'x';
INSERT INTO acct SELECT g, 'a' || g, nullif(g - 1, 0) FROM generate_series(1, 20) g;
CREATE TABLE invoice (invoice_id serial PRIMARY KEY, customer_id int NOT NULL REFERENCES customer, total numeric(10,2) NOT NULL, deleted boolean NOT NULL DEFAULT false);
CREATE INDEX invoice_customer_id_idx ON invoice (customer_id);
CREATE TABLE selfservice_errors (id uuid PRIMARY KEY, seen_at timestamp NOT NULL);
CREATE TABLE t (id serial PRIMARY KEY, a int, b varchar(20) DEFAULT 'x');
CREATE INDEX i ON t (a);
INSERT INTO customer (email, company, country) SELECT 'c' || g || '@x', CASE WHEN g % 2 = 0 THEN 'co' END, 'US' FROM generate_series(1, 50) g;
INSERT INTO invoice (customer_id, total, deleted) SELECT 1 + g % 50, g, g % 7 = 0 FROM generate_series(1, 200) g;
INSERT INTO t (a, b) SELECT g, 'v' || g FROM generate_series(1, 100) g;
`

// Each file is either refused with a reason, or planned so that the plan,
// applied through every phase and purge on PostgreSQL, leaves what the file
// leaves, and every rollback returns the start (Check).
func TestPlanEqualsFile(t *testing.T) {
	cases := []struct {
		name, sql string
		phases    string // the plan's phases; "" to skip
		refuse    string // substring of the refusal
	}{
		// issue 12: a subcommand is never lost.
		{name: "retype_and_drop_not_null_in_one_statement", sql: `ALTER TABLE "selfservice_errors" ALTER COLUMN "seen_at" TYPE timestamp, ALTER COLUMN "seen_at" DROP NOT NULL;`, phases: "expand"},
		{name: "real_retype_and_drop_not_null", sql: `ALTER TABLE invoice ALTER COLUMN total TYPE numeric(14,2) USING total * 1, ALTER COLUMN total DROP NOT NULL;`},
		// Statements see what the statements before them did.
		{name: "add_column_then_drop_default", sql: "ALTER TABLE invoice ADD COLUMN channel text NOT NULL DEFAULT 'web'; ALTER TABLE invoice ALTER COLUMN channel DROP DEFAULT;", phases: "expand,contract"},
		{name: "rename_table_then_alter", sql: "ALTER TABLE t RENAME TO t2; ALTER TABLE t2 ADD COLUMN x int;", phases: "expand,contract"},
		{name: "add_column_then_index_and_not_null", sql: "ALTER TABLE customer ADD COLUMN tier int DEFAULT 0; CREATE INDEX customer_tier_idx ON customer (tier); ALTER TABLE customer ALTER COLUMN tier SET NOT NULL;", phases: "expand,contract"},
		{name: "two_drops_first_removes_the_foreign_key", sql: "ALTER TABLE invoice DROP COLUMN customer_id; DROP TABLE customer;", phases: "expand,contract"},
		// No-ops mean what PostgreSQL says.
		{name: "add_column_if_not_exists_existing", sql: "ALTER TABLE customer ADD COLUMN IF NOT EXISTS email varchar(60);", phases: ""},
		{name: "set_not_null_on_not_null", sql: "ALTER TABLE customer ALTER COLUMN email SET NOT NULL;", phases: ""},
		{name: "same_type_again", sql: "ALTER TABLE invoice ALTER COLUMN customer_id TYPE integer, ALTER COLUMN customer_id SET NOT NULL;", phases: ""},
		// A column added with its constraint inline.
		{name: "inline_check", sql: "ALTER TABLE customer ADD COLUMN code varchar(64) NULL CHECK (code IS NULL OR code <> '');", phases: "expand,validate"},
		{name: "inline_references", sql: "ALTER TABLE invoice ADD COLUMN referrer_id int REFERENCES customer (customer_id);", phases: "expand,validate"},
		// Key columns widen with everything that depends on them.
		{name: "widen_serial_primary_key_referenced", sql: "ALTER TABLE customer ALTER COLUMN customer_id TYPE bigint;", phases: "expand,dual-write,backfill,validate,contract"},
		{name: "widen_foreign_key_column_indexed", sql: "ALTER TABLE invoice ALTER COLUMN customer_id TYPE bigint, ALTER COLUMN total DROP NOT NULL;", phases: "expand,dual-write,backfill,validate,contract"},
		{name: "widen_key_and_references", sql: "ALTER TABLE customer ALTER COLUMN customer_id TYPE bigint; ALTER TABLE invoice ALTER COLUMN customer_id TYPE bigint;"},
		{name: "references_retyped_then_key", sql: "ALTER TABLE invoice ALTER COLUMN customer_id TYPE bigint; ALTER TABLE customer ALTER COLUMN customer_id TYPE bigint;", refuse: "change the key first (move this statement before"},
		{name: "retype_then_drop", sql: "ALTER TABLE t ALTER COLUMN a TYPE bigint; ALTER TABLE t DROP COLUMN a;", refuse: "is dropped at"},
		{name: "new_unique_then_retype", sql: "ALTER TABLE t ADD CONSTRAINT t_b_key UNIQUE (b); ALTER TABLE t ALTER COLUMN b TYPE varchar(10);", refuse: "separate migrations"},
		{name: "retype_unique_checked_expression_indexed", sql: "ALTER TABLE acct ALTER COLUMN code TYPE varchar(10);", phases: "expand,dual-write,backfill,validate,contract"},
		{name: "retype_self_referenced_key", sql: "ALTER TABLE acct ALTER COLUMN id TYPE bigint;", phases: "expand,dual-write,backfill,validate,contract"},
		// Catalogue-only type changes stay catalogue-only.
		{name: "varchar_growth_indexed", sql: "CREATE INDEX customer_email_idx ON customer (email); ALTER TABLE customer ALTER COLUMN email TYPE varchar(200);", phases: "expand"},
		{name: "varchar_to_text", sql: "ALTER TABLE customer ALTER COLUMN country TYPE text;", phases: "expand"},
		// Constraints N may violate wait for contract.
		{name: "check_in_contract", sql: "ALTER TABLE invoice ADD CONSTRAINT invoice_total_positive CHECK (total >= 0);", phases: "contract"},
		{name: "unique_in_contract", sql: "ALTER TABLE customer ADD CONSTRAINT customer_email_key UNIQUE (email);", phases: "contract"},
		// Data statements travel with the step they prepare.
		{name: "delete_then_drop_column", sql: "DELETE FROM invoice WHERE deleted; ALTER TABLE invoice DROP COLUMN deleted;", phases: "contract"},
		{name: "fill_then_set_not_null", sql: "UPDATE customer SET company = 'n/a' WHERE company IS NULL; ALTER TABLE customer ALTER COLUMN company SET DEFAULT 'n/a'; ALTER TABLE customer ALTER COLUMN company SET NOT NULL;", phases: "expand,contract"},
		// DO blocks are read.
		{name: "do_block_with_queries", sql: "DO $$ BEGIN UPDATE customer SET country = 'USA' WHERE country = 'US'; END $$;", phases: "expand"},
		{name: "do_block_with_ddl", sql: "DO $$ BEGIN ALTER TABLE customer DROP COLUMN company; END $$;", refuse: "on the scratch copy it dropped column public.customer.company"},
		// A DO block whose DDL the replay saw do only what N cannot notice
		// runs as written (Mattermost's conditional ALTERs).
		{name: "do_block_widens_and_adds", sql: "DO $$ BEGIN IF (SELECT character_maximum_length FROM information_schema.columns WHERE table_name = 't' AND column_name = 'b') < 300 THEN ALTER TABLE t ALTER COLUMN b TYPE varchar(300); END IF; ALTER TABLE t ADD COLUMN IF NOT EXISTS c int DEFAULT 0; ALTER TABLE t ALTER COLUMN a SET DEFAULT 1; END $$;", phases: "expand"},
		{name: "do_block_that_does_nothing_here", sql: "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM information_schema.tables WHERE table_name = 't') THEN ALTER TABLE t DROP COLUMN a; END IF; END $$;", phases: "expand"},
		{name: "do_block_sets_not_null", sql: "DO $$ BEGIN ALTER TABLE t ALTER COLUMN a SET NOT NULL; END $$;", refuse: "set public.t.a NOT NULL"},
		{name: "do_block_rewrites", sql: "DO $$ BEGIN ALTER TABLE t ALTER COLUMN a TYPE bigint; END $$;", refuse: "on the scratch copy it rewrote public.i, public.t"},
		{name: "do_block_builds_an_index", sql: "DO $$ BEGIN CREATE INDEX t_b ON t (b); END $$;", refuse: "built or dropped an index of public.t"},
		{name: "do_block_adds_a_check", sql: "DO $$ BEGIN ALTER TABLE t ADD CONSTRAINT a_pos CHECK (a > 0); END $$;", refuse: "changed a constraint of public.t"},
		// issue 16's shapes.
		{name: "drop_and_recreate_index_unique", sql: "DROP INDEX i; CREATE UNIQUE INDEX i ON t (b);", phases: "contract"},
		{name: "drop_and_recreate_index", sql: "DROP INDEX IF EXISTS i; CREATE INDEX IF NOT EXISTS i ON t (a, b);", phases: "expand,contract"},
		{name: "retype_then_set_default", sql: "ALTER TABLE t ALTER COLUMN b TYPE text; ALTER TABLE t ALTER COLUMN b SET DEFAULT 'y';", phases: "expand"},
		{name: "retype_then_index", sql: "ALTER TABLE invoice ALTER COLUMN total TYPE numeric(12,4); CREATE UNIQUE INDEX invoice_total_key ON invoice (total);"},
		{name: "column_renamed_then_table_renamed", sql: "ALTER TABLE t RENAME COLUMN a TO a2; ALTER TABLE t RENAME TO t3;", refuse: "separate migrations"},
		{name: "drop_view_then_recreate", sql: "CREATE VIEW v AS SELECT customer_id, email FROM customer; DROP VIEW v; CREATE VIEW v AS SELECT customer_id, email, country FROM customer;", phases: "expand"},
		{name: "drop_function", sql: "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'; DROP FUNCTION f();", phases: "expand,contract"},
		// Indexes of a materialized view (Mattermost's 000118).
		{name: "matview_index", sql: "CREATE MATERIALIZED VIEW mv AS SELECT country, count(*) AS n FROM customer GROUP BY country; CREATE INDEX CONCURRENTLY IF NOT EXISTS mv_n ON mv (n); CREATE UNIQUE INDEX mv_country ON mv (country);", phases: "expand"},
		{name: "matview_index_dropped", sql: "CREATE MATERIALIZED VIEW mv AS SELECT country, count(*) AS n FROM customer GROUP BY country; CREATE INDEX mv_n ON mv (n); DROP INDEX IF EXISTS mv_n;", phases: "expand,contract"},
		{name: "drop_type_still_used_by_a_retyped_column", sql: "CREATE TYPE mood AS ENUM ('a', 'b'); ALTER TABLE customer ADD COLUMN m mood; ALTER TABLE customer ALTER COLUMN m TYPE text; DROP TYPE mood;"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := planChecked(t, chinookish, tc.sql)
			if tc.refuse != "" {
				var pe *phases.PlanError
				if !errors.As(err, &pe) || !strings.Contains(err.Error(), tc.refuse) {
					t.Fatalf("want a refusal containing %q, got plan %v, error %v", tc.refuse, p != nil, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !p.Check.OK() {
				t.Fatalf("check failed: %+v", p.Check)
			}
			if tc.phases != "" || tc.name == "add_column_if_not_exists_existing" || tc.name == "set_not_null_on_not_null" || tc.name == "same_type_again" {
				if got := phaseList(p); got != tc.phases {
					t.Errorf("phases %q, want %q", got, tc.phases)
				}
			}
		})
	}
}

// A file that writes other values each time it runs (now(), a random
// default, a stamping UPDATE) is checked without those columns, and says so.
func TestPlanOfAFileThatFillsDifferentlyEachRun(t *testing.T) {
	cases := []struct{ name, sql, column string }{
		{"stable_default_now", "ALTER TABLE t ADD COLUMN created timestamptz NOT NULL DEFAULT now();", "created"},
		{"volatile_default", "ALTER TABLE t ADD COLUMN uid uuid NOT NULL DEFAULT gen_random_uuid();", "uid"},
		{"stamping_update_then_not_null", "ALTER TABLE invoice ADD COLUMN seen timestamptz; UPDATE invoice SET seen = now() WHERE deleted; ALTER TABLE invoice DROP COLUMN deleted;", "seen"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := planChecked(t, chinookish, tc.sql)
			if err != nil {
				t.Fatal(err)
			}
			if !p.Check.OK() {
				t.Fatalf("check failed: %+v", p.Check)
			}
			if len(p.Check.Unstable) != 1 || !strings.Contains(p.Check.Unstable[0], "compared without "+tc.column+",") {
				t.Fatalf("unstable %q, want one note naming %s", p.Check.Unstable, tc.column)
			}
		})
	}
}

const partitioned = `
CREATE TYPE addr AS (street text, city text);
CREATE DOMAIN mail AS text CHECK (VALUE LIKE '%@%');
CREATE TABLE users (id serial PRIMARY KEY, home addr, email mail, note text);
INSERT INTO users (home, email) SELECT ROW('s' || g, 'c')::addr, 'u' || g || '@x' FROM generate_series(1, 20) g;
CREATE TABLE events (id bigint GENERATED ALWAYS AS IDENTITY, user_id int, at timestamptz NOT NULL, kind text, amount int, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE events_2027 PARTITION OF events FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
INSERT INTO events (user_id, at, kind, amount) SELECT 1 + g % 20, '2026-06-01'::timestamptz + g * interval '1 day', 'k', g FROM generate_series(1, 300) g;
CREATE INDEX events_2026_kind ON events_2026 (kind);
ALTER TABLE events_2027 ADD CONSTRAINT events_2027_user_fk FOREIGN KEY (user_id) REFERENCES users (id);
`

// Shapes found replaying outside histories: an index on a partitioned table
// (PostgreSQL refuses CONCURRENTLY there), and a column dropped before the
// type, domain or function it uses (an archived column would keep it).
func TestPlanPartitionedIndexesAndDropsBeforeTheirTypes(t *testing.T) {
	cases := []struct{ name, sql, phases, finding string }{
		// ON ONLY the parent, each partition's CONCURRENTLY, attached.
		{"index_on_partitioned_table", "CREATE INDEX events_user ON events (user_id);", "expand", ""},
		{"unique_index_on_partitioned_table", "CREATE UNIQUE INDEX events_id_at ON events (id, at);", "contract", ""},
		// A partition's matching index or key is attached, and dropped with
		// the new one on rollback: the rollback makes it again.
		{"index_attaching_a_partitions_own", "CREATE INDEX events_kind ON events (kind);", "expand", "writes to every partition wait"},
		{"foreign_key_on_partitioned_table", "ALTER TABLE events ADD CONSTRAINT events_user_fk FOREIGN KEY (user_id) REFERENCES users (id);", "contract", "cannot add a NOT VALID foreign key"},
		{"unique_constraint_on_partitioned_table", "ALTER TABLE events ADD CONSTRAINT events_uq UNIQUE (id, at, kind);", "contract", "reads and writes of every partition wait"},
		// The partitions are rewritten, not the parent (it has no storage):
		// a shadow column, not a catalogue-only step; purge leaves the
		// partitions' inherited copies to the parent's drop.
		{"retype_on_partitioned_table", "ALTER TABLE events ALTER COLUMN amount TYPE bigint;", "expand,dual-write,backfill,contract", ""},
		{"drop_column_then_its_type", "ALTER TABLE users DROP COLUMN home; DROP TYPE addr;", "contract", ""},
		{"drop_column_then_its_domain", "ALTER TABLE users DROP COLUMN email; DROP DOMAIN mail;", "contract", ""},
	}
	t.Run("retype_under_a_partitions_own_key", func(t *testing.T) {
		t.Parallel()
		_, err := planChecked(t, partitioned, "ALTER TABLE events ALTER COLUMN user_id TYPE bigint;")
		var pe *phases.PlanError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), "partition public.events_2027 of public.events has an index or constraint on user_id") {
			t.Fatalf("want the refusal naming events_2027, got %v", err)
		}
	})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := planChecked(t, partitioned, tc.sql)
			if err != nil {
				t.Fatal(err)
			}
			if !p.Check.OK() {
				t.Fatalf("check failed: %+v", p.Check)
			}
			if got := phaseList(p); got != tc.phases {
				t.Errorf("phases %q, want %q", got, tc.phases)
			}
			if strings.HasPrefix(tc.phases, "contract") && !strings.Contains(tc.name, "drop") && !strings.Contains(strings.Join(p.Deploy, "; "), "must not rely on") {
				// Enforced in contract: the deploy step says so, as the
				// recipes off partitioned tables do.
				t.Errorf("deploy %q says nothing of what N+1 must not rely on", p.Deploy)
			}
			if tc.finding != "" {
				found := false
				for _, f := range p.Findings {
					found = found || strings.Contains(f.Message, tc.finding)
				}
				if !found {
					t.Errorf("no finding saying %q: %+v", tc.finding, p.Findings)
				}
			}
			if strings.HasSuffix(tc.name, "index_on_partitioned_table") {
				var sql []string
				for _, ph := range p.Phases {
					for _, st := range ph.Statements {
						sql = append(sql, st.SQL)
					}
				}
				all := strings.Join(sql, "\n")
				for _, want := range []string{" ON ONLY events ", "CONCURRENTLY events_2026_", "CONCURRENTLY events_2027_", "ATTACH PARTITION public.events_2027_"} {
					if !strings.Contains(all, want) {
						t.Errorf("plan lacks %q:\n%s", want, all)
					}
				}
			}
		})
	}
}

// A DO block PostgreSQL refuses as written (River's templated names) is bad
// input in PostgreSQL's words, not a refusal made without seeing it run.
func TestDoBlockPostgreSQLRefuses(t *testing.T) {
	_, err := planChecked(t, chinookish, "DO $$ BEGIN IF to_regclass('/* TEMPLATE: schema */t') IS NOT NULL THEN ALTER TABLE t RENAME TO t_old; END IF; END $$;")
	var se *plancheck.StatementError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "invalid name syntax") {
		t.Fatalf("want PostgreSQL's refusal, got %v", err)
	}
}
