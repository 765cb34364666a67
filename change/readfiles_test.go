package change

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// ReadFiles keeps path order, and fails with the first failing path's
// error whatever order the workers finish in.
func TestReadFilesOrderAndFirstError(t *testing.T) {
	var paths []string
	for i := range 50 {
		paths = append(paths, fmt.Sprintf("f%02d.sql", i))
	}
	read := func(p string) (*Migration, error) {
		return ParseSQL(p, "ALTER TABLE t RENAME COLUMN a TO b;")
	}
	ms, err := ReadFiles(paths, read)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range ms {
		if m.File != paths[i] {
			t.Fatalf("migration %d is %s, want %s", i, m.File, paths[i])
		}
	}
	failing := map[string]bool{"f17.sql": true, "f18.sql": true, "f40.sql": true}
	_, err = ReadFiles(paths, func(p string) (*Migration, error) {
		if failing[p] {
			return nil, errors.New(p)
		}
		return read(p)
	})
	if err == nil || err.Error() != "f17.sql" {
		t.Fatalf("got %v, want the error of f17.sql", err)
	}
}

// walk visits the same nodes as ranging over every populated message field
// with protobuf reflection, in the fields' declaration order.
func TestWalkMatchesProtoreflect(t *testing.T) {
	src := `ALTER TABLE t ADD COLUMN x int REFERENCES u (id) CHECK (x > 0), ALTER COLUMN y TYPE bigint USING y::bigint;
UPDATE t SET a = (SELECT max(b) FROM u JOIN v ON u.id = v.id WHERE v.c IN (1, 2)) FROM w WHERE t.id = w.id;
CREATE INDEX CONCURRENTLY ON s.t (lower(email)) INCLUDE (id) WHERE deleted_at IS NULL;
SELECT setval('t_id_seq', coalesce((SELECT max(id) FROM t), 1), false);
CREATE VIEW v AS SELECT 'a'::text AS k, CASE WHEN x THEN 1 ELSE 2 END FROM t;`
	tree, err := pg.Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	var reflectWalk func(m protoreflect.Message, f func(*pg.Node))
	reflectWalk = func(m protoreflect.Message, f func(*pg.Node)) {
		if n, ok := m.Interface().(*pg.Node); ok {
			f(n)
		}
		fds := m.Descriptor().Fields()
		for i := 0; i < fds.Len(); i++ {
			fd := fds.Get(i)
			if fd.Message() == nil || fd.IsMap() || !m.Has(fd) {
				continue
			}
			if fd.IsList() {
				l := m.Get(fd).List()
				for j := 0; j < l.Len(); j++ {
					reflectWalk(l.Get(j).Message(), f)
				}
			} else {
				reflectWalk(m.Get(fd).Message(), f)
			}
		}
	}
	for i, raw := range tree.Stmts {
		var got, want []string
		walk(raw.Stmt, func(n *pg.Node) { got = append(got, fmt.Sprintf("%p", n)) })
		reflectWalk(raw.Stmt.ProtoReflect(), func(n *pg.Node) { want = append(want, fmt.Sprintf("%p", n)) })
		if len(got) < 10 || strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("statement %d: walk visited %d nodes, protobuf reflection %d, or in another order", i, len(got), len(want))
		}
	}
}

// scan gives the tokens pg.Scan gives, and its errors.
func TestScanMatchesPgScan(t *testing.T) {
	for _, src := range []string{
		"", "  ", "-- only a comment",
		"SELECT 1; /* a */ -- b\nSELECT 2",
		"-- phasekit:allow x y\nALTER TABLE t /* in */ RENAME a TO b; SELECT $$ -- not a comment $$, 'é', E'\\n'",
		"select 'unterminated", "/* unterminated",
	} {
		want, werr := pg.Scan(src)
		got, gerr := scan(src)
		if (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
			t.Errorf("%q: error %v, pg.Scan's %v", src, gerr, werr)
			continue
		}
		if werr != nil {
			continue
		}
		if len(got) != len(want.Tokens) {
			t.Errorf("%q: %d tokens, pg.Scan %d", src, len(got), len(want.Tokens))
			continue
		}
		for i, w := range want.Tokens {
			comment := w.Token == pg.Token_SQL_COMMENT || w.Token == pg.Token_C_COMMENT
			if got[i] != (token{start: int(w.Start), end: int(w.End), comment: comment}) {
				t.Errorf("%q: token %d is %+v, pg.Scan's %v", src, i, got[i], w)
			}
		}
	}
}
