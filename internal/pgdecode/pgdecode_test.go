package pgdecode

import (
	"os"
	"path/filepath"
	"testing"

	pg "github.com/pganalyze/pg_query_go/v6"
	"github.com/pganalyze/pg_query_go/v6/parser"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/phasekit/phasekit/internal/corpus"
)

// inputs are the repository's migrations and a generated corpus.
func inputs(t testing.TB) []string {
	var out []string
	for _, root := range []string{"../../testdata", "../../examples", "../../plancheck/testdata", "../../change/testdata", "../../phases/testdata"} {
		_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err == nil && filepath.Ext(path) == ".sql" {
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, string(b))
			}
			return nil
		})
	}
	paths, _, err := corpus.Write(t.TempDir(), 100, 10, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return append(out, handWritten...)
}

// handWritten are statements with what the test data lacks: literals of
// every kind, escapes, unusual strings and numbers, rarer statements.
var handWritten = []string{
	"SELECT 1.5e10, 'x', E'\\\\n', B'101', X'ff', true, NULL, $1, (ARRAY[1,2])[1], row(1, 2)",
	"CREATE FUNCTION f(a int) RETURNS SETOF t LANGUAGE plpgsql AS $$ BEGIN RETURN; END $$",
	"WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT * FROM r TABLESAMPLE bernoulli (5)",
	"MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = s.a WHEN NOT MATCHED THEN INSERT VALUES (s.id)",
	"CREATE TABLE p (a int, b text COLLATE \"C\") PARTITION BY RANGE (a); ALTER TYPE e ADD VALUE 'x' BEFORE 'y'",
	"SELECT json_object('a': 1), xmlelement(name a), count(*) FILTER (WHERE x) OVER (PARTITION BY y ORDER BY z ROWS 2 PRECEDING)",
	"SELECT 'ünïcödé', \"ident with space\", 1::numeric(10,2)",
	"SELECT 'tab\there', 'ctl\x01\x1f', 'quote\"s and \\ back', '<>&', '☃ 😀', E'\\u2603 \\U0001F600', U&'d\\0061t\\+000061'",
	"SELECT 9223372036854775807, -2147483648, 2147483648, 1e-400, .5, 0x1F, 1_000",
	"COMMENT ON TABLE t IS $body$multi\nline ' \" $ text$body$",
}

// TestParseSameTree checks that the generated decoder gives the tree
// protobuf-go gives, and that it does not give up on any of the inputs.
func TestParseSameTree(t *testing.T) {
	for _, src := range handWritten {
		if _, err := pg.Parse(src); err != nil {
			t.Errorf("%.60q does not parse: %v", src, err)
		}
	}
	n := 0
	for _, src := range inputs(t) {
		b, err := parser.ParseToProtobuf(src)
		if err != nil {
			continue
		}
		want := &pg.ParseResult{}
		if err := proto.Unmarshal(b, want); err != nil {
			t.Fatal(err)
		}
		got := &pg.ParseResult{}
		if err := decodeParseResult(b, got); err != nil {
			t.Errorf("%.60q: the decoder gave up: %v", src, err)
			continue
		}
		if !proto.Equal(got, want) {
			t.Errorf("%.60q: the decoder's tree differs from protobuf-go's", src)
		}
		tree, err := Parse(src)
		if err != nil || !proto.Equal(tree, want) {
			t.Errorf("%.60q: Parse differs from protobuf-go's decoding (%v)", src, err)
		}
		n++
	}
	if n < 150 {
		t.Errorf("decoded %d inputs, want the test data's", n)
	}
}

// TestParseFallsBack: bytes the decoder was not written for go through
// protobuf-go (here, an unknown field, which protobuf-go keeps).
func TestParseFallsBack(t *testing.T) {
	b := []byte{0xf8, 0x3f, 0x01} // field 1023, varint 1
	if err := decodeParseResult(b, &pg.ParseResult{}); err == nil {
		t.Fatal("the decoder accepted an unknown field")
	}
}

func BenchmarkDecode(b *testing.B) {
	var bufs [][]byte
	for _, src := range inputs(b) {
		if p, err := parser.ParseToProtobuf(src); err == nil {
			bufs = append(bufs, p)
		}
	}
	b.Run("generated", func(b *testing.B) {
		for range b.N {
			for _, p := range bufs {
				_ = decodeParseResult(p, &pg.ParseResult{})
			}
		}
	})
	b.Run("protobuf-go", func(b *testing.B) {
		for range b.N {
			for _, p := range bufs {
				_ = proto.Unmarshal(p, &pg.ParseResult{})
			}
		}
	})
}

// TestEncodeSameTree checks that the generated encoder's bytes decode (with
// protobuf-go) to the tree encoded, and that Deparse prints every statement
// of the inputs as pg_query_go's Deparse does.
func TestEncodeSameTree(t *testing.T) {
	n := 0
	for _, src := range inputs(t) {
		tree, err := pg.Parse(src)
		if err != nil {
			continue
		}
		var back pg.ParseResult
		if err := proto.Unmarshal(appendParseResult(nil, tree), &back); err != nil || !proto.Equal(&back, tree) {
			t.Errorf("%.60q: the encoder's bytes decode to another tree (%v)", src, err)
			continue
		}
		for _, st := range tree.Stmts {
			one := &pg.ParseResult{Version: tree.Version, Stmts: []*pg.RawStmt{{Stmt: st.Stmt}}}
			want, errWant := pg.Deparse(one)
			got, errGot := Deparse(one)
			if got != want || (errWant == nil) != (errGot == nil) {
				t.Errorf("%.60q: Deparse prints %q (%v), pg_query_go %q (%v)", src, got, errGot, want, errWant)
			}
			n++
		}
	}
	if n < 500 {
		t.Errorf("deparsed %d statements, want the test data's", n)
	}
}

func TestEndMessageLongLength(t *testing.T) {
	b, at := startMessage([]byte{7}, 3)
	for i := range 300 {
		b = append(b, byte(i))
	}
	b = endMessage(b, at)
	num, typ, k := protowire.ConsumeTag(b[1:])
	v, m := protowire.ConsumeBytes(b[1+k:])
	if num != 3 || typ != protowire.BytesType || m < 0 || len(v) != 300 || v[299] != byte(299%256) || 1+k+m != len(b) {
		t.Errorf("a 300-byte message reads back as field %d, %d bytes", num, len(v))
	}
}

// TestJSONSameTree checks that reading pg_query's JSON gives the tree
// protobuf-go decodes from its protobuf, and that it gives up on none of
// the inputs.
func TestJSONSameTree(t *testing.T) {
	n := 0
	for _, src := range inputs(t) {
		b, err := parser.ParseToProtobuf(src)
		if err != nil {
			continue
		}
		want := &pg.ParseResult{}
		if err := proto.Unmarshal(b, want); err != nil {
			t.Fatal(err)
		}
		js, err := parser.ParseToJSON(src)
		if err != nil {
			t.Fatal(err)
		}
		got := &pg.ParseResult{}
		d := &jdec{b: []byte(js)}
		if !jsonParseResult(d, got) || !d.end() {
			t.Errorf("%.60q: the JSON reader gave up at byte %d: %.80q", src, d.i, js[min(d.i, len(js)):])
			continue
		}
		if !proto.Equal(got, want) {
			t.Errorf("%.60q: the JSON reader's tree differs from protobuf-go's", src)
		}
		n++
	}
	if n < 150 {
		t.Errorf("read %d inputs, want the test data's", n)
	}
}

func BenchmarkParse(b *testing.B) {
	srcs := inputs(b)
	b.Run("protobuf", func(b *testing.B) {
		for range b.N {
			for _, s := range srcs {
				if p, err := parser.ParseToProtobuf(s); err == nil {
					_ = decodeParseResult(p, &pg.ParseResult{})
				}
			}
		}
	})
	b.Run("json", func(b *testing.B) {
		for range b.N {
			for _, s := range srcs {
				if js, err := parser.ParseToJSON(s); err == nil {
					_ = jsonParseResult(&jdec{b: []byte(js)}, &pg.ParseResult{})
				}
			}
		}
	})
}

// TestParseErrorsSame: on a syntax error, or an input with no statement,
// Parse returns what pg_query_go's Parse returns.
func TestParseErrorsSame(t *testing.T) {
	for _, src := range []string{"", "-- only a comment", ";;", "SELEC 1", "SELECT 'unterminated", "SELECT 1; ALTER TABLE", "CREATE TABLE t (a int,)"} {
		want, errWant := pg.Parse(src)
		got, errGot := Parse(src)
		if (errWant == nil) != (errGot == nil) || errWant != nil && errWant.Error() != errGot.Error() {
			t.Errorf("%q: Parse fails with %v, pg_query_go's with %v", src, errGot, errWant)
			continue
		}
		if errWant == nil && !proto.Equal(got, want) {
			t.Errorf("%q: Parse's tree differs from pg_query_go's", src)
		}
		var pe, pw *parser.Error
		if errWant != nil {
			pe, pw = errGot.(*parser.Error), errWant.(*parser.Error)
			if *pe != *pw {
				t.Errorf("%q: error %+v, pg_query_go's %+v", src, *pe, *pw)
			}
		}
	}
}
