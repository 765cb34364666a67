package verify_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/phasekit/phasekit/verify"
	"github.com/phasekit/phasekit/verify/pgtest"
)

func TestParseSubset(t *testing.T) {
	tests := []struct {
		in   string
		want verify.Subset
	}{
		{"invoice=invoice_id <= 50", verify.Subset{Schema: "public", Table: "invoice", Where: "invoice_id <= 50"}},
		{"customer=country = 'USA'", verify.Subset{Schema: "public", Table: "customer", Where: "country = 'USA'"}},
		{` Sales."Order" = total >= 10 `, verify.Subset{Schema: "sales", Table: "Order", Where: "total >= 10"}},
	}
	for _, tt := range tests {
		got, err := verify.ParseSubset(tt.in)
		if err != nil {
			t.Errorf("ParseSubset(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseSubset(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
	bad := []struct{ in, why string }{
		{"invoice", "want table=WHERE"},
		{"invoice=", "no condition"},
		{"invoice=  ", "no condition"},
		{"a.b.c=true", "is not table or schema.table"},
		{"=true", "empty name"},
	}
	for _, tt := range bad {
		_, err := verify.ParseSubset(tt.in)
		if err == nil || !errors.Is(err, verify.ErrBadCopyOption) || !strings.Contains(err.Error(), tt.in) || !strings.Contains(err.Error(), tt.why) {
			t.Errorf("ParseSubset(%q) = %v, want ErrBadCopyOption naming the value and saying %q", tt.in, err, tt.why)
		}
	}
}

func TestSubsetCopy(t *testing.T) {
	t.Parallel()
	src := pgtest.NewDB(t, "chinook")
	srcConn := pgtest.Conn(t, src)
	srcCounts := tableCounts(t, src)
	dump := pgtest.DatasetFile(t, "chinook/chinook.dump")
	// Employee 6 manages 7 and 8 (employee.reports_to): removing 6 orphans
	// them, a self-reference the cleanup has to follow twice.
	const underSix = `WITH RECURSIVE gone AS (SELECT employee_id FROM employee WHERE employee_id = 6
		UNION SELECT e.employee_id FROM employee e JOIN gone g ON e.reports_to = g.employee_id)
		SELECT count(*) FROM employee WHERE employee_id NOT IN (SELECT employee_id FROM gone)`
	tests := []struct {
		name    string
		subsets []string
		kept    map[string]string // table: query on the source for the rows it keeps
	}{
		{"invoices", []string{"invoice=invoice_id <= 50"}, map[string]string{
			"invoice":      "SELECT count(*) FROM invoice WHERE invoice_id <= 50",
			"invoice_line": "SELECT count(*) FROM invoice_line WHERE invoice_id <= 50",
		}},
		{"customers", []string{"customer=country = 'USA'"}, map[string]string{
			"customer":     "SELECT count(*) FROM customer WHERE country = 'USA'",
			"invoice":      "SELECT count(*) FROM invoice JOIN customer USING (customer_id) WHERE country = 'USA'",
			"invoice_line": "SELECT count(*) FROM invoice_line JOIN invoice USING (invoice_id) JOIN customer USING (customer_id) WHERE country = 'USA'",
		}},
		{"both", []string{"invoice=invoice_id <= 50", "customer=country = 'USA'"}, map[string]string{
			"customer":     "SELECT count(*) FROM customer WHERE country = 'USA'",
			"invoice":      "SELECT count(*) FROM invoice JOIN customer USING (customer_id) WHERE country = 'USA' AND invoice_id <= 50",
			"invoice_line": "SELECT count(*) FROM invoice_line JOIN invoice USING (invoice_id) JOIN customer USING (customer_id) WHERE country = 'USA' AND invoice_id <= 50",
		}},
		{"self-reference", []string{"employee=employee_id <> 6"}, map[string]string{
			"employee": underSix,
		}},
	}
	for _, tt := range tests {
		var subsets []verify.Subset
		for _, s := range tt.subsets {
			sub, err := verify.ParseSubset(s)
			if err != nil {
				t.Fatal(err)
			}
			subsets = append(subsets, sub)
		}
		want := map[string]int64{}
		for table, n := range srcCounts {
			want[table] = n
		}
		for table, q := range tt.kept {
			want[table] = int64(queryInt(t, srcConn, q))
			if want[table] == 0 || want[table] == srcCounts[table] {
				t.Fatalf("%s: %s keeps %d of %d rows: the case tests nothing", tt.name, table, want[table], srcCounts[table])
			}
		}
		for _, from := range []string{"dump", "source"} {
			t.Run(tt.name+" from "+from, func(t *testing.T) {
				t.Parallel()
				opts := verify.CopyOptions{Data: dump, Subsets: subsets, Jobs: 2}
				if from == "source" {
					opts = verify.CopyOptions{SourceDSN: src, Subsets: subsets, Jobs: 2}
				}
				dst := pgtest.NewDB(t, "")
				rep, err := verify.CopyData(t.Context(), dst, opts)
				if err != nil {
					t.Fatal(err)
				}
				t.Log(rep)
				if got := tableCounts(t, dst); !equalCounts(got, want) {
					t.Errorf("row counts = %v, want %v", got, want)
				}
				if bad := danglingRows(t, dst); len(bad) > 0 {
					t.Errorf("dangling foreign keys after subsetting: %v", bad)
				}
				var total int64
				for _, n := range want {
					total += n
				}
				if rep.Rows != total {
					t.Errorf("report says %d rows, want %d", rep.Rows, total)
				}
				if len(rep.Subset) != len(tt.kept) {
					t.Errorf("report lists %d tables (%+v), want %d", len(rep.Subset), rep.Subset, len(tt.kept))
				}
				for _, sc := range rep.Subset {
					if sc.Kept != want[sc.Table] || sc.Kept+sc.Removed != srcCounts[sc.Table] {
						t.Errorf("report: %s kept %d removed %d, want kept %d of %d", sc.Table, sc.Kept, sc.Removed, want[sc.Table], srcCounts[sc.Table])
					}
				}
			})
		}
	}
}

func TestSubsetErrors(t *testing.T) {
	t.Parallel()
	src := pgtest.NewDB(t, "chinook")
	dump := pgtest.DatasetFile(t, "chinook/chinook.dump")
	tests := []struct {
		subset string
		why    string
	}{
		{"invoice=no_such_column > 1", `column "no_such_column" does not exist`},
		{"invoice=invoice_id <=", "syntax error"},
		{"no_such_table=true", "no table no_such_table"},
		// Fails on the data only, not on the empty tables of a restore's pre-data.
		{"invoice=100 / (invoice_id - 7) > 0", "division by zero"},
		// The condition is SQL pasted into queries: a second statement must not run.
		{"invoice=true; DROP TABLE customer", "syntax error"},
		// Shaped to make a valid script of the check query: the extended
		// protocol refuses it.
		{"invoice=true), false); DROP TABLE customer; SELECT count(*) FROM invoice WHERE NOT coalesce((true",
			"cannot insert multiple commands"},
	}
	for _, tt := range tests {
		sub, err := verify.ParseSubset(tt.subset)
		if err != nil {
			t.Fatal(err)
		}
		for _, opts := range []verify.CopyOptions{{SourceDSN: src}, {Data: dump}} {
			opts.Subsets = []verify.Subset{sub}
			_, err := verify.CopyData(t.Context(), pgtest.NewDB(t, ""), opts)
			if err == nil || !errors.Is(err, verify.ErrBadCopyOption) || !strings.Contains(err.Error(), tt.subset) || !strings.Contains(err.Error(), tt.why) {
				t.Errorf("subset %q (dump %q): err = %v, want ErrBadCopyOption naming the subset and saying %q", tt.subset, opts.Data, err, tt.why)
			}
		}
	}
	if n := queryInt(t, pgtest.Conn(t, src), "SELECT count(*) FROM customer"); n != 59 {
		t.Errorf("source has %d customers after the subset tests, want 59", n)
	}
}

// A subset's condition sees the original values of a masked column, from a
// dump as from a live source.
func TestSubsetSeesOriginalValues(t *testing.T) {
	t.Parallel()
	src := pgtest.NewDB(t, "chinook")
	want := queryInt(t, pgtest.Conn(t, src), "SELECT count(*) FROM customer WHERE email LIKE '%@gmail.com'")
	if want == 0 {
		t.Fatal("no gmail customers in chinook: the test tests nothing")
	}
	sub, err := verify.ParseSubset("customer=email LIKE '%@gmail.com'")
	if err != nil {
		t.Fatal(err)
	}
	mask, err := verify.ParseMask("customer.email=email")
	if err != nil {
		t.Fatal(err)
	}
	for _, opts := range []verify.CopyOptions{
		{SourceDSN: src},
		{Data: pgtest.DatasetFile(t, "chinook/chinook.dump")},
	} {
		opts.Subsets, opts.Masks = []verify.Subset{sub}, []verify.Mask{mask}
		dst := pgtest.NewDB(t, "")
		if _, err := verify.CopyData(t.Context(), dst, opts); err != nil {
			t.Fatal(err)
		}
		conn := pgtest.Conn(t, dst)
		if n := queryInt(t, conn, "SELECT count(*) FROM customer"); n != want {
			t.Errorf("dump %q: %d customers kept, want the %d with a gmail address", opts.Data, n, want)
		}
		if n := queryInt(t, conn, "SELECT count(*) FROM customer WHERE email LIKE '%@gmail.com'"); n != 0 {
			t.Errorf("dump %q: %d gmail addresses survived masking", opts.Data, n)
		}
	}
}
