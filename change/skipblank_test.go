package change

import (
	"os"
	"path/filepath"
	"testing"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// TestSkipBlankAgreesWithScanner checks that statement bounds found with
// skipBlank are those PostgreSQL's scanner gives, on tricky comments and
// whitespace and on every migration of the repository's test data.
func TestSkipBlankAgreesWithScanner(t *testing.T) {
	inputs := []string{
		"SELECT 1",
		"  \t\r\n\v\fSELECT 1;\v\fSELECT 2",
		"-- c\nSELECT 1; -- c\r-- d\n\n  SELECT 2;",
		"/* a */ SELECT 1; /* a /* nested */ still */ SELECT 2; /**/SELECT 3;/***/SELECT 4",
		"SELECT 1; /* ** * / */ /*/ x */ -- /* not a comment start\n SELECT 2",
		"SELECT 1;/*-- */--/* \n/*//**/*/SELECT '--';SELECT 2 -- end without newline",
		"SELECT 1;;; ;SELECT 2; -- trailing",
		"SELECT 1 /* inside */ ; /* before */ SELECT $$ -- $$; SELECT 'x;y' /* after */",
		"CREATE TABLE t (a int); -- phasekit:allow x y\nALTER TABLE t DROP COLUMN a",
		"SELECT 1; SELECT \u00a0x",
	}
	tricky := len(inputs)
	var files []string
	for _, root := range []string{"../testdata", "../examples", "../plancheck/testdata", "testdata"} {
		_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err == nil && filepath.Ext(path) == ".sql" {
				files = append(files, path)
			}
			return nil
		})
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, string(b))
	}
	checked := 0
	for i, src := range inputs {
		tree, err := pg.Parse(src)
		if err != nil {
			if i < tricky {
				t.Fatalf("%q: %v", src, err)
			}
			continue
		}
		toks, err := scan(src)
		if err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		for _, raw := range tree.Stmts {
			ws, we := stmtBounds(src, raw, toks, true)
			gs, ge := stmtBounds(src, raw, nil, false)
			if ws != gs || we != ge {
				t.Errorf("%q: statement at %d: skipBlank gives [%d,%d), the scanner [%d,%d)", src, raw.StmtLocation, gs, ge, ws, we)
			}
			checked++
		}
	}
	if checked < 100 {
		t.Errorf("checked %d statements, want the test data's", checked)
	}
}
