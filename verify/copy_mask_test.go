package verify_test

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phasekit/phasekit/verify"
	"github.com/phasekit/phasekit/verify/pgtest"
)

func TestParseMask(t *testing.T) {
	tests := []struct {
		in   string
		want verify.Mask
	}{
		{"customer.email=email", verify.Mask{Schema: "public", Table: "customer", Column: "email", Strategy: verify.MaskEmail}},
		{"Sales.Customer.Email=HASH", verify.Mask{Schema: "sales", Table: "customer", Column: "email", Strategy: verify.MaskHash}},
		{`"Odd.Name"."Col ""x"""=null`, verify.Mask{Schema: "public", Table: "Odd.Name", Column: `Col "x"`, Strategy: verify.MaskNull}},
		{"customer.phone=fixed:+1 555 0100", verify.Mask{Schema: "public", Table: "customer", Column: "phone", Strategy: verify.MaskFixed, Value: "+1 555 0100"}},
		{"t.c=fixed:a=b:c", verify.Mask{Schema: "public", Table: "t", Column: "c", Strategy: verify.MaskFixed, Value: "a=b:c"}},
		{"t.c=fixed:", verify.Mask{Schema: "public", Table: "t", Column: "c", Strategy: verify.MaskFixed, Value: ""}},
	}
	for _, tt := range tests {
		got, err := verify.ParseMask(tt.in)
		if err != nil {
			t.Errorf("ParseMask(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseMask(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}

	bad := []struct{ in, why string }{
		{"customer.email", "want table.column=STRATEGY"},
		{"customer.email=foo", `unknown strategy "foo"`},
		{"customer.email=", "no strategy"},
		{"email=hash", "is not table.column"},
		{"a.b.c.d=hash", "is not table.column"},
		{"customer.email=fixed", "needs a value"},
		{"customer.email=hash:x", "takes no value"},
		{`"customer.email=hash`, "unterminated"},
		{"customer..email=hash", "empty name"},
		{"my table.email=hash", "needs double quotes"},
	}
	for _, tt := range bad {
		_, err := verify.ParseMask(tt.in)
		if err == nil {
			t.Errorf("ParseMask(%q) succeeded, want an error", tt.in)
			continue
		}
		if !errors.Is(err, verify.ErrBadCopyOption) || !strings.Contains(err.Error(), tt.in) || !strings.Contains(err.Error(), tt.why) {
			t.Errorf("ParseMask(%q) = %v, want ErrBadCopyOption naming the value and saying %q", tt.in, err, tt.why)
		}
	}
}

func TestMaskCopy(t *testing.T) {
	t.Parallel()
	src := pgtest.NewDB(t, "chinook")
	srcConn := pgtest.Conn(t, src)
	var masks []verify.Mask
	for _, s := range []string{"customer.email=email", "employee.email=hash", "customer.fax=null", "customer.phone=fixed:+1 555 0100"} {
		m, err := verify.ParseMask(s)
		if err != nil {
			t.Fatal(err)
		}
		masks = append(masks, m)
	}
	const emails = "SELECT email FROM customer UNION ALL SELECT email FROM employee"
	originals := queryStrings(t, srcConn, emails)
	if len(originals) != 59+8 {
		t.Fatalf("source has %d emails, want 67", len(originals))
	}
	wantCounts := map[string]int{
		"customer.email=email":             59,
		"employee.email=hash":              8,
		"customer.fax=null":                59,
		"customer.phone=fixed:+1 555 0100": queryInt(t, srcConn, "SELECT count(phone) FROM customer"),
	}

	plain := filepath.Join(t.TempDir(), "chinook.sql")
	pgDump(t, src, "--format=plain", "--no-owner", "--no-privileges", "--file="+plain)
	copies := map[string]verify.CopyOptions{
		"dump":   {Data: pgtest.DatasetFile(t, "chinook/chinook.dump"), Masks: masks, Jobs: 2},
		"plain":  {Data: plain, Masks: masks},
		"source": {SourceDSN: src, Masks: masks, Jobs: 2},
	}
	masked := map[string][]string{}
	for _, name := range []string{"dump", "plain", "source"} {
		dst := pgtest.NewDB(t, "")
		rep, err := verify.CopyData(t.Context(), dst, copies[name])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Logf("%s: %s", name, rep)
		conn := pgtest.Conn(t, dst)

		got := queryStrings(t, conn, emails)
		if len(got) != len(originals) {
			t.Errorf("%s: %d emails after masking, want %d", name, len(got), len(originals))
		}
		if kept := intersect(got, originals); len(kept) > 0 {
			t.Errorf("%s: original emails survived masking: %v", name, kept)
		}
		if n := queryInt(t, conn, "SELECT count(DISTINCT email) FROM customer"); n != 59 {
			t.Errorf("%s: %d distinct customer emails after masking, want 59 as in the source", name, n)
		}
		if n := queryInt(t, conn, `SELECT count(*) FROM customer WHERE email !~ '^user_[0-9a-f]{12}@example\.invalid$'`); n != 0 {
			t.Errorf("%s: %d customer emails not of the form user_<hex>@example.invalid", name, n)
		}
		if n := queryInt(t, conn, `SELECT count(*) FROM employee WHERE email !~ '^[0-9a-f]{32}$'`); n != 0 {
			t.Errorf("%s: %d employee emails are not md5 hashes", name, n)
		}
		if n := queryInt(t, conn, "SELECT count(fax) FROM customer"); n != 0 {
			t.Errorf("%s: %d faxes left, want all NULL", name, n)
		}
		if n := queryInt(t, conn, "SELECT count(*) FROM customer WHERE phone IS DISTINCT FROM '+1 555 0100'"); n != 59-wantCounts["customer.phone=fixed:+1 555 0100"] {
			t.Errorf("%s: %d phones are not the fixed value (want only the NULL ones)", name, n)
		}
		for _, mc := range rep.Masked {
			if want := wantCounts[mc.Mask.String()]; int(mc.Rows) != want {
				t.Errorf("%s: report says %s masked %d rows, want %d", name, mc.Mask, mc.Rows, want)
			}
		}
		if len(rep.Masked) != len(masks) {
			t.Errorf("%s: report lists %d masks, want %d", name, len(rep.Masked), len(masks))
		}
		// Not in any row version, index, statistic or other file of the database.
		files := readDatabaseFiles(t, dst)
		for _, e := range originals {
			if bytes.Contains(files, []byte(e)) {
				t.Errorf("%s: original email %s is still in the database's files", name, e)
				break
			}
		}
		masked[name] = queryStrings(t, conn, "SELECT customer_id || ' ' || email FROM customer UNION ALL SELECT employee_id || ' ' || email FROM employee")
	}
	// hash and email are deterministic: copies by any path agree.
	for _, name := range []string{"dump", "plain"} {
		if got, want := strings.Join(masked[name], "\n"), strings.Join(masked["source"], "\n"); got != want {
			t.Errorf("masked values differ between the copies from %s and from the source:\n%s", name, firstDiff(got, want))
		}
	}

	// Another salt gives other values.
	dst := pgtest.NewDB(t, "")
	if _, err := verify.CopyData(t.Context(), dst, verify.CopyOptions{SourceDSN: src, Masks: masks[:1], MaskSalt: "secret"}); err != nil {
		t.Fatal(err)
	}
	if same := intersect(queryStrings(t, pgtest.Conn(t, dst), "SELECT customer_id || ' ' || email FROM customer"), masked["source"]); len(same) > 0 {
		t.Errorf("a different salt gave the same masked values: %v", same[:1])
	}
}

func TestMaskErrors(t *testing.T) {
	t.Parallel()
	src := pgtest.NewDB(t, "chinook")
	dump := pgtest.DatasetFile(t, "chinook/chinook.dump")
	tests := []struct {
		mask string
		why  string
	}{
		{"customer.no_such_column=hash", `table customer has no column "no_such_column"`},
		{"no_such_table.email=hash", "no table no_such_table"},
		{"customer.support_rep_id=hash", "needs a text column"},
		{"customer.email=null", "is NOT NULL"},
		{"customer.support_rep_id=fixed:abc", `"abc" is not a valid integer`},
		{"customer.email=hash,customer.email=email", "masked twice"},
	}
	for _, tt := range tests {
		var masks []verify.Mask
		for _, s := range strings.Split(tt.mask, ",") {
			m, err := verify.ParseMask(s)
			if err != nil {
				t.Fatal(err)
			}
			masks = append(masks, m)
		}
		for _, opts := range []verify.CopyOptions{{SourceDSN: src, Masks: masks}, {Data: dump, Masks: masks}} {
			_, err := verify.CopyData(t.Context(), pgtest.NewDB(t, ""), opts)
			if err == nil || !errors.Is(err, verify.ErrBadCopyOption) || !strings.Contains(err.Error(), tt.why) || !strings.Contains(err.Error(), masks[len(masks)-1].String()) {
				t.Errorf("mask %s (dump %q): err = %v, want ErrBadCopyOption naming the mask and saying %q", tt.mask, opts.Data, err, tt.why)
			}
		}
	}
}

// intersect returns the values of sorted a that are also in sorted b.
func intersect(a, b []string) []string {
	var out []string
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] < b[j]:
			i++
		case a[i] > b[j]:
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	return out
}
