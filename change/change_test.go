package change

import (
	"errors"
	"strings"
	"testing"
)

func TestParseSQLKindsAndPositions(t *testing.T) {
	src := "SET lock_timeout = '2s';\n\n  -- phasekit:allow rename-column v1 is retired\n  ALTER TABLE customer RENAME COLUMN email TO email_address;\nCREATE INDEX ON track (name);\nALTER TABLE t ADD COLUMN x int REFERENCES u (id), ALTER COLUMN y TYPE bigint;\nUPDATE t SET a = 1;\n"
	m, err := ParseSQL("m.sql", src)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		kind      Kind
		line, col int
	}{
		{SessionSetting, 1, 1}, {RenameColumn, 4, 3}, {CreateIndex, 5, 1},
		{AddColumn, 6, 1}, {AddForeignKey, 6, 1}, {ChangeType, 6, 1}, {Data, 7, 1},
	}
	if len(m.Changes) != len(want) {
		t.Fatalf("got %d changes, want %d: %+v", len(m.Changes), len(want), m.Changes)
	}
	for i, w := range want {
		c := m.Changes[i]
		if c.Kind != w.kind || c.Pos.Line != w.line || c.Pos.Col != w.col {
			t.Errorf("change %d: got %s at %d:%d, want %s at %d:%d", i, c.Kind, c.Pos.Line, c.Pos.Col, w.kind, w.line, w.col)
		}
	}
	if a := m.Changes[1].Allowed; len(a) != 1 || a[0].Rule != "rename-column" || a[0].Reason != "v1 is retired" {
		t.Errorf("allow comment not attached: %+v", a)
	}
	if got := m.Changes[2].Definition; got != "CREATE INDEX CONCURRENTLY track_name_idx ON track USING btree (name)" {
		t.Errorf("index definition %q", got)
	}
	if got := m.Changes[4].Definition; !strings.HasSuffix(got, "NOT VALID") || m.Changes[4].Constraint != "t_x_fkey" {
		t.Errorf("inline FK: %q named %q", got, m.Changes[4].Constraint)
	}
	if m.Changes[3].SQL != "ALTER TABLE t ADD COLUMN x int" {
		t.Errorf("ADD COLUMN keeps its inline FK: %q", m.Changes[3].SQL)
	}
}

func TestParseSQLSyntaxErrorPosition(t *testing.T) {
	_, err := ParseSQL("bad.sql", "SELECT 1;\n-- ünïcode comment\nALTER TABLE x RENAM COLUMN a TO b;")
	var ie *InputError
	if !errors.As(err, &ie) {
		t.Fatalf("want *InputError, got %v", err)
	}
	if ie.Pos.Line != 3 || ie.Pos.Col != 15 {
		t.Errorf("syntax error at %s, want bad.sql:3:15", ie.Pos)
	}
}

func TestParseSpec(t *testing.T) {
	good := "changes:\n  - kind: change_type\n    table: invoice\n    column: total\n    type: bigint\n    up: \"round(total * 100)::bigint\"\n    down: \"total / 100.0\"\n"
	m, err := ParseSpec("c.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if c := m.Changes[0]; c.Kind != ChangeType || c.Table != "public.invoice" || c.Pos.Line != 2 {
		t.Errorf("got %+v", c)
	}
	bad := []struct{ name, src, want string }{
		{"unknown field", "changes:\n  - kind: split_column\n    tabel: x\n", "c.yaml:3:5: unknown field \"tabel\" (did you mean \"table\"?)"},
		{"bad kind", "changes:\n  - kind: explode\n", "c.yaml:2:11: unknown kind \"explode\""},
		{"missing field", "changes:\n  - kind: set_not_null\n    table: t\n    column: c\n", "c.yaml:2:5: set_not_null needs 'fill'"},
		{"bad expression", "changes:\n  - kind: set_not_null\n    table: t\n    column: c\n    fill: \"'a' ||\"\n", "c.yaml:5:11: fill: not a valid SQL expression"},
		{"bad yaml", "changes: [\n", "c.yaml:"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSpec("c.yaml", []byte(tc.src))
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("want *InputError, got %v", err)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("got %q, want prefix %q", err, tc.want)
			}
		})
	}
}

func TestQualifyColumns(t *testing.T) {
	got, err := QualifyColumns("split_part(address, ',', 1) || t.other || name", "new", []string{"address", "name"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "(split_part(new.address, ',', 1) || t.other) || new.name"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func FuzzParseSQL(f *testing.F) {
	for _, s := range []string{"ALTER TABLE customer RENAME COLUMN email TO email_address;", "CREATE INDEX ON t (a); DROP TABLE x;", "ALTER TABLE t ADD COLUMN c int NOT NULL DEFAULT random() CHECK (c > 0);", "SELECT 'ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		m, err := ParseSQL("f.sql", src)
		if err == nil && m == nil {
			t.Fatal("nil migration without error")
		}
	})
}

func FuzzParseSpec(f *testing.F) {
	f.Add([]byte("changes:\n  - kind: set_not_null\n    table: t\n    column: c\n    fill: \"0\"\n"))
	f.Add([]byte("changes:\n  - kind: split_column\n    table: t\n    column: a\n    into: [{name: b, type: text, up: a}]\n    down: b\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		_, _ = ParseSpec("f.yaml", src)
	})
}

// Relations names every table a statement touches, the targets of INSERT,
// UPDATE and DELETE included: those are RangeVars held directly by the
// statement, not wrapped in a Node, and a walk over Nodes alone missed them
// (an INSERT then ran before the SET DEFAULT it depends on).
func TestRelationsIncludeDMLTargets(t *testing.T) {
	for src, want := range map[string]string{
		"INSERT INTO t18 (id) VALUES (1) ON CONFLICT DO NOTHING": "public.t18",
		"UPDATE s.t SET a = 1":                       "s.t",
		"DELETE FROM t WHERE a IN (SELECT b FROM u)": "public.t public.u",
		"ALTER TABLE t ALTER COLUMN a SET DEFAULT 1": "public.t",
	} {
		m, err := ParseSQL("m.sql", src)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(m.Changes[0].Relations, " "); got != want {
			t.Errorf("%s: relations %q, want %q", src, got, want)
		}
	}
}
