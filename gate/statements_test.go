package gate_test

import (
	"strings"
	"testing"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/gate"
	"github.com/phasekit/phasekit/phases"
)

// TestUses: which normalized statements (as pg_stat_statements keeps them)
// use customer.email or the table album, through the parse tree.
func TestUses(t *testing.T) {
	shapes := []gate.Shape{{Table: "public.customer", Column: "email"}, {Table: "public.album"}}
	for _, tc := range []struct {
		sql  string
		want string // shapes found, comma-separated
	}{
		{"SELECT email FROM customer WHERE customer_id = $1", "public.customer.email"},
		{"SELECT c.email FROM customer c WHERE c.customer_id = $1", "public.customer.email"},
		{"SELECT public.customer.email FROM public.customer", "public.customer.email"},
		{"SELECT first_name FROM customer WHERE lower(email) = lower($1)", "public.customer.email"},
		{"UPDATE customer SET email = $1 WHERE customer_id = $2", "public.customer.email"},
		{"INSERT INTO customer (customer_id, first_name, email) VALUES ($1, $2, $3)", "public.customer.email"},
		{"INSERT INTO customer (customer_id, email_address) VALUES ($1, $2) ON CONFLICT (customer_id) DO UPDATE SET email = EXCLUDED.email_address", "public.customer.email"},
		{"COPY customer (customer_id, email) TO STDOUT", "public.customer.email"},
		{"EXPLAIN SELECT email FROM customer", "public.customer.email"},
		{"SELECT * FROM invoice i WHERE i.customer_id IN (SELECT customer_id FROM customer WHERE email LIKE $1)", "public.customer.email"},
		{"WITH x AS (SELECT email FROM customer) SELECT count(*) FROM x", "public.customer.email"},
		{"SELECT title FROM album WHERE album_id = $1", "table public.album"},
		{"DELETE FROM public.album WHERE album_id = $1", "table public.album"},
		{"SELECT a.title, c.email FROM album a, customer c", "public.customer.email, table public.album"},
		// Not uses:
		{"SELECT email_address FROM customer WHERE customer_id = $1", ""},
		{"SELECT * FROM customer", ""},                                                             // survives the contract
		{"INSERT INTO customer VALUES ($1, $2)", ""},                                               // positional: no name
		{"SELECT e.email FROM employee e JOIN customer c ON c.support_rep_id = e.employee_id", ""}, // employee's email
		{"SELECT email FROM employee", ""},
		{"SELECT email FROM other.customer", ""},
		{"SELECT $1 AS email FROM invoice", ""},
		{"ALTER TABLE customer RENAME COLUMN email TO email_address", ""}, // DDL: phasekit's own
		{"DROP TABLE album", ""},
		{"SELECT title FROM albums", ""},
		{"SELECT 'email' FROM customer", ""},
	} {
		got, err := gate.Uses(tc.sql, shapes)
		if err != nil {
			t.Errorf("%s: %v", tc.sql, err)
			continue
		}
		var names []string
		for _, s := range got {
			names = append(names, s.String())
		}
		if g := strings.Join(names, ", "); g != tc.want {
			t.Errorf("%s\n got %q\nwant %q", tc.sql, g, tc.want)
		}
	}
	if _, err := gate.Uses("SELEC email FROM customer", shapes); err == nil {
		t.Error("a statement that does not parse gave no error")
	}
}

// TestOldShapes: what the contract of each change kind takes away by name.
func TestOldShapes(t *testing.T) {
	contract := []phases.Phase{{Kind: phases.Contract}}
	p := &phases.Plan{Phases: contract, Changes: []change.Change{
		{Kind: change.RenameColumn, Table: "public.customer", Column: "email", NewName: "email_address"},
		{Kind: change.DropColumn, Table: "public.customer", Column: "fax"},
		{Kind: change.MergeColumns, Table: "public.customer", From: []string{"first_name", "last_name"}},
		{Kind: change.RenameTable, Table: "public.album", NewName: "record"},
		{Kind: change.ChangeType, Table: "public.invoice", Column: "total", Type: "numeric(12,2)"},
		{Kind: change.CreateIndex, Table: "public.invoice"},
	}}
	shapes, notes := gate.OldShapes(p)
	var got []string
	for _, s := range shapes {
		got = append(got, s.String())
	}
	if g := strings.Join(got, ", "); g != "public.customer.email, public.customer.fax, public.customer.first_name, public.customer.last_name, table public.album" {
		t.Errorf("shapes %s", g)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "public.invoice.total keeps the column's name") {
		t.Errorf("notes %q", notes)
	}
	p.Phases = []phases.Phase{{Kind: phases.Expand}}
	if shapes, _ := gate.OldShapes(p); len(shapes) != 0 {
		t.Errorf("a plan without contract takes away %v", shapes)
	}
}
