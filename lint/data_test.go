package lint_test

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/lint"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/schema"
	"github.com/phasekit/phasekit/verify/pgtest"
)

func dataInput(name string) string { return filepath.Join("..", "testdata", "lint", "data", name) }

func queryInt(t *testing.T, conn *pgx.Conn, sql string) int64 {
	t.Helper()
	var n int64
	if err := conn.QueryRow(t.Context(), sql).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func queryStrings(t *testing.T, conn *pgx.Conn, sql string) []string {
	t.Helper()
	rows, err := conn.Query(t.Context(), sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

func exec(t *testing.T, conn *pgx.Conn, sql string) {
	t.Helper()
	if _, err := conn.Exec(t.Context(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// lintData lints file and runs the data checks against conn.
func lintData(t *testing.T, conn *pgx.Conn, file string) (*lint.Result, error) {
	t.Helper()
	r, err := lint.Run([]string{file}, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	m, err := change.ReadSQLFile(file)
	if err != nil {
		t.Fatalf("ReadSQLFile: %v", err)
	}
	err = lint.CheckData(t.Context(), conn, r, m.Changes)
	// Whatever happened, the checks' transaction must be over.
	if st := conn.PgConn().TxStatus(); st != 'I' {
		t.Errorf("connection left in transaction status %q after CheckData, want idle", st)
	}
	return r, err
}

// dataWant is one data finding a case expects, described by queries over the
// test's own database rather than by numbers copied from the dataset.
type dataWant struct {
	rule     string
	count    string // SQL: how many duplicated keys or offending rows there are
	members  string // SQL: every value the sample may show, as text
	sampleOf string
}

func TestCheckData(t *testing.T) {
	tests := []struct {
		file  string
		setup string
		want  []dataWant // findings expected, in order; each fixture must have offending rows
		none  string     // SQL that must count 0 when want is empty, so "no finding" is the right answer
	}{
		{file: "unique-country.sql", want: []dataWant{{lint.RuleDataDuplicates,
			`SELECT count(*) FROM (SELECT country FROM customer WHERE country IS NOT NULL GROUP BY country HAVING count(*) > 1) d`,
			`SELECT country FROM customer GROUP BY country HAVING count(*) > 1`, "(country)"}}},
		{file: "unique-email.sql",
			none: `SELECT count(*) FROM (SELECT email FROM customer GROUP BY email HAVING count(*) > 1) d`},
		{file: "unique-country-city.sql", want: []dataWant{{lint.RuleDataDuplicates,
			`SELECT count(*) FROM (SELECT 1 FROM customer WHERE country IS NOT NULL AND city IS NOT NULL GROUP BY country, city HAVING count(*) > 1) d`,
			`SELECT ROW(country, city)::text FROM customer GROUP BY country, city HAVING count(*) > 1`, "(country, city)"}}},
		{file: "unique-index-expression.sql", want: []dataWant{{lint.RuleDataDuplicates,
			`SELECT count(*) FROM (SELECT 1 FROM customer WHERE city IS NOT NULL GROUP BY lower(city) HAVING count(*) > 1) d`,
			`SELECT lower(city) FROM customer GROUP BY lower(city) HAVING count(*) > 1`, "(lower(city))"}}},
		// Only the index's own rows must be unique: USA's customers are left out.
		{file: "unique-index-partial.sql", want: []dataWant{{lint.RuleDataDuplicates,
			`SELECT count(*) FROM (SELECT 1 FROM customer WHERE country <> 'USA' GROUP BY country HAVING count(*) > 1) d`,
			`SELECT country FROM customer WHERE country <> 'USA' GROUP BY country HAVING count(*) > 1`, "(country)"}}},
		// NULLS NOT DISTINCT: the customers without a state collide too.
		{file: "unique-index-nulls-not-distinct.sql", want: []dataWant{{lint.RuleDataDuplicates,
			`SELECT count(*) FROM (SELECT 1 FROM customer GROUP BY state HAVING count(*) > 1) d`,
			`SELECT coalesce(state, 'NULL') FROM customer GROUP BY state HAVING count(*) > 1`, "(state)"}}},
		// A plain index accepts duplicates.
		{file: "plain-index.sql",
			none: `SELECT 0`},
		{file: "set-not-null.sql", want: []dataWant{{lint.RuleDataNulls,
			`SELECT count(*) FROM customer WHERE company IS NULL`,
			`SELECT customer_id::text FROM customer WHERE company IS NULL`, "customer_id"}}},
		// A table without a primary key: rows are named by ctid.
		{file: "primary-key.sql",
			setup: `CREATE TABLE customer_copy AS SELECT * FROM customer;
				INSERT INTO customer_copy SELECT * FROM customer WHERE customer_id <= 3;
				UPDATE customer_copy SET customer_id = NULL WHERE customer_id = 10`,
			want: []dataWant{
				{lint.RuleDataNulls,
					`SELECT count(*) FROM customer_copy WHERE customer_id IS NULL`,
					`SELECT ctid::text FROM customer_copy WHERE customer_id IS NULL`, "ctid"},
				{lint.RuleDataDuplicates,
					`SELECT count(*) FROM (SELECT 1 FROM customer_copy WHERE customer_id IS NOT NULL GROUP BY customer_id HAVING count(*) > 1) d`,
					`SELECT customer_id::text FROM customer_copy GROUP BY customer_id HAVING count(*) > 1`, "(customer_id)"},
			}},
		{file: "check.sql", want: []dataWant{{lint.RuleDataCheckViolations,
			`SELECT count(*) FROM customer WHERE NOT (customer_id < 10)`,
			`SELECT customer_id::text FROM customer WHERE NOT (customer_id < 10)`, "customer_id"}}},
		// REFERENCES without columns: the referenced table's primary key.
		{file: "foreign-key.sql",
			setup: `CREATE TABLE country_ref (name varchar(40) PRIMARY KEY);
				INSERT INTO country_ref VALUES ('USA'), ('Canada'), ('Brazil')`,
			want: []dataWant{{lint.RuleDataOrphans,
				`SELECT count(*) FROM customer WHERE country IS NOT NULL AND country NOT IN (SELECT name FROM country_ref)`,
				`SELECT customer_id::text FROM customer WHERE country NOT IN (SELECT name FROM country_ref)`, "customer_id"}}},
		// A self-reference: the child and the parent are the same table.
		{file: "foreign-key-self.sql",
			setup: `ALTER TABLE employee DROP CONSTRAINT employee_reports_to_fkey;
				UPDATE employee SET reports_to = 99 WHERE employee_id IN (7, 8)`,
			want: []dataWant{{lint.RuleDataOrphans,
				`SELECT count(*) FROM employee e WHERE reports_to IS NOT NULL AND NOT EXISTS (SELECT 1 FROM employee b WHERE b.employee_id = e.reports_to)`,
				`SELECT employee_id::text FROM employee e WHERE NOT EXISTS (SELECT 1 FROM employee b WHERE b.employee_id = e.reports_to)`, "employee_id"}}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			conn := pgtest.Conn(t, pgtest.NewDB(t, "chinook"))
			if tt.setup != "" {
				exec(t, conn, tt.setup)
			}
			if tt.none != "" {
				if n := queryInt(t, conn, tt.none); n != 0 {
					t.Fatalf("fixture changed: %s = %d, want 0", tt.none, n)
				}
			}
			file := dataInput(tt.file)
			r, err := lintData(t, conn, file)
			if err != nil {
				t.Fatalf("CheckData: %v", err)
			}
			if len(r.Data) != len(tt.want) {
				t.Fatalf("data findings = %+v, want %d", r.Data, len(tt.want))
			}
			for i, w := range tt.want {
				d := r.Data[i]
				count := queryInt(t, conn, w.count)
				if count == 0 {
					t.Fatalf("fixture changed: %s = 0, want offending rows", w.count)
				}
				if d.Rule != w.rule || d.Count != count || d.Skipped != "" || d.Allowed != "" {
					t.Errorf("finding %d = %s count %d (skipped %q, allowed %q), want %s count %d", i, d.Rule, d.Count, d.Skipped, d.Allowed, w.rule, count)
				}
				if d.Pos.File != file || d.Pos.Line != 3 || d.Pos.Col != 1 {
					t.Errorf("finding %d at %s, want %s:3:1", i, d.Pos, file)
				}
				if d.SampleOf != w.sampleOf {
					t.Errorf("finding %d: sample of %q, want %q", i, d.SampleOf, w.sampleOf)
				}
				if want := min(count, 5); int64(len(d.Sample)) != want {
					t.Errorf("finding %d: %d sample values %v, want %d", i, len(d.Sample), d.Sample, want)
				}
				members := queryStrings(t, conn, w.members)
				for _, s := range d.Sample {
					if !slices.Contains(members, s) {
						t.Errorf("finding %d: sample value %q is not one of the offending %v", i, s, members)
					}
				}
				if d.Message == "" || !strings.Contains(d.Message, d.Table) {
					t.Errorf("finding %d: message %q does not name the table %s", i, d.Message, d.Table)
				}
			}
			if r.HasErrors() != (len(tt.want) > 0 || hasError(r.Findings)) {
				t.Errorf("HasErrors = %v with %d data findings", r.HasErrors(), len(r.Data))
			}
		})
	}
}

func hasError(fs []phases.Finding) bool {
	for _, f := range fs {
		if f.Severity == phases.Error {
			return true
		}
	}
	return false
}

// A CHECK expression may call a function that writes. The checks run READ
// ONLY, so the write fails, CheckData reports it and no row is gone.
func TestCheckDataNeverWrites(t *testing.T) {
	t.Parallel()
	conn := pgtest.Conn(t, pgtest.NewDB(t, "chinook"))
	exec(t, conn, `CREATE FUNCTION sneaky(id integer) RETURNS boolean LANGUAGE plpgsql AS $$
		BEGIN DELETE FROM invoice_line; RETURN id > 0; END $$`)
	before := queryInt(t, conn, `SELECT count(*) FROM invoice_line`)
	if before == 0 {
		t.Fatal("fixture changed: invoice_line is empty")
	}
	_, err := lintData(t, conn, dataInput("check-writes.sql"))
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "25006" { // read_only_sql_transaction
		t.Fatalf("CheckData error = %v, want the read-only transaction refusing the DELETE", err)
	}
	if !strings.Contains(err.Error(), dataInput("check-writes.sql")+":3:1") {
		t.Errorf("error %q does not name the statement's position", err)
	}
	if after := queryInt(t, conn, `SELECT count(*) FROM invoice_line`); after != before {
		t.Errorf("invoice_line has %d rows after the checks, had %d", after, before)
	}
}

// Checks over a table or column the migration itself creates cannot run;
// they are reported as not run, and the checks after them still run.
func TestCheckDataNewObjects(t *testing.T) {
	t.Parallel()
	conn := pgtest.Conn(t, pgtest.NewDB(t, "chinook"))
	file := dataInput("new-objects.sql")
	r, err := lintData(t, conn, file)
	if err != nil {
		t.Fatalf("CheckData: %v", err)
	}
	type got struct {
		rule    string
		line    int
		skipped bool
		count   int64
	}
	var gotData []got
	for _, d := range r.Data {
		gotData = append(gotData, got{d.Rule, d.Pos.Line, d.Skipped != "", d.Count})
	}
	violations := queryInt(t, conn, `SELECT count(*) FROM customer WHERE NOT (customer_id < 10)`)
	want := []got{
		{lint.RuleDataDuplicates, 4, true, 0},
		{lint.RuleDataNulls, 6, true, 0},
		{lint.RuleDataCheckViolations, 7, false, violations},
	}
	if !slices.Equal(gotData, want) {
		t.Errorf("data = %+v, want %+v", gotData, want)
	}
	for _, d := range r.Data {
		if d.Skipped != "" && !strings.Contains(d.Skipped, "does not exist") {
			t.Errorf("%s at %s skipped because %q, want the missing object named", d.Rule, d.Pos, d.Skipped)
		}
	}
}

// A data rule silenced in the file stays in Data with its reason and does
// not fail the build.
func TestCheckDataAllow(t *testing.T) {
	t.Parallel()
	conn := pgtest.Conn(t, pgtest.NewDB(t, "chinook"))
	r, err := lintData(t, conn, dataInput("allow-data.sql"))
	if err != nil {
		t.Fatalf("CheckData: %v", err)
	}
	nulls := queryInt(t, conn, `SELECT count(*) FROM customer WHERE company IS NULL`)
	if len(r.Data) != 1 || r.Data[0].Rule != lint.RuleDataNulls || r.Data[0].Count != nulls {
		t.Fatalf("data = %+v, want one data-nulls finding counting %d", r.Data, nulls)
	}
	if got, want := r.Data[0].Allowed, "the release job fills company before this runs"; got != want {
		t.Errorf("allowed = %q, want %q", got, want)
	}
	if got := ruleIDs(r.Silenced); !slices.Equal(got, []string{"set-not-null"}) {
		t.Errorf("silenced = %v, want [set-not-null]", got)
	}
	if r.HasErrors() {
		t.Error("HasErrors = true with every finding silenced")
	}
}

// With a schema snapshot, a misspelt table or column fails with the planner's
// error at the statement's position; a correct file passes.
func TestRunWithSchema(t *testing.T) {
	conn := pgtest.Conn(t, pgtest.NewDB(t, "chinook-schema"))
	snap, err := schema.Introspect(t.Context(), conn)
	if err != nil {
		t.Fatalf("Introspect: %v", err)
	}
	tests := []struct {
		files   []string
		wantErr string // "" when the files must lint without error
		line    int    // of the error, which is in the first file
	}{
		{[]string{"typo-table.sql"}, "table public.custmer does not exist (did you mean public.customer?)", 3},
		{[]string{"typo-column.sql"}, "column compnay of table public.customer does not exist (did you mean company?)", 3},
		{[]string{"new-table-typo.sql"}, "table public.custmer does not exist (did you mean public.customer?)", 4},
		{[]string{"rename-column.sql"}, "", 0},
		// Creates a table, then constrains it: the table is new, not missing.
		{[]string{"safe.sql"}, "", 0},
		// The table one file creates exists for the files after it, not before.
		{[]string{"safe.sql", "loyalty-index.sql"}, "", 0},
		{[]string{"loyalty-index.sql", "safe.sql"}, "table public.loyalty does not exist", 3},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.files, "+"), func(t *testing.T) {
			var files []string
			for _, f := range tt.files {
				files = append(files, input(f))
			}
			errFile := files[0]
			r, err := lint.Run(files, snap)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
				plain, err := lint.Run(files, nil)
				if err != nil {
					t.Fatalf("Run without schema: %v", err)
				}
				if !slices.Equal(ruleIDs(r.Findings), ruleIDs(plain.Findings)) {
					t.Errorf("findings with schema %v, without %v: the schema only adds errors", ruleIDs(r.Findings), ruleIDs(plain.Findings))
				}
				return
			}
			var pe *phases.PlanError
			if !errors.As(err, &pe) {
				t.Fatalf("Run error = %v (%T), want a *phases.PlanError", err, err)
			}
			if !strings.HasPrefix(pe.Msg, tt.wantErr) {
				t.Errorf("message %q, want %q", pe.Msg, tt.wantErr)
			}
			if pe.Pos.File != errFile || pe.Pos.Line != tt.line || pe.Pos.Col != 1 {
				t.Errorf("error at %s, want %s:%d:1", pe.Pos, errFile, tt.line)
			}
		})
	}
}
