package change

import (
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// walkReflect is what walkMessages did before pgdecode.Walk: it walks the
// structs with the reflect package.
func walkReflect(n *pg.Node, f func(any)) {
	if n == nil {
		return
	}
	walkValue(reflect.ValueOf(n), f)
}

// walkValue walks a pointer to a message struct.
func walkValue(p reflect.Value, f func(any)) {
	if p.IsNil() {
		return
	}
	f(p.Interface())
	s := p.Elem()
	for _, c := range childFields(s.Type()) {
		v := s.Field(c.index)
		switch c.kind {
		case childMessage:
			walkValue(v, f)
		case childList:
			for i := 0; i < v.Len(); i++ {
				walkValue(v.Index(i), f)
			}
		case childOneof:
			// A oneof is an interface holding a pointer to a wrapper struct
			// whose one field is the member that is set.
			// (In protobuf-go a member held by pointer is a message.)
			if !v.IsNil() {
				if m := v.Elem().Elem().Field(0); m.Kind() == reflect.Pointer {
					walkValue(m, f)
				}
			}
		}
	}
}

type childKind int

const (
	childMessage childKind = iota // *Message
	childList                     // []*Message
	childOneof                    // a oneof's interface field
)

// childField is a field of a message struct that may hold messages.
type childField struct {
	index int
	kind  childKind
}

// childFieldsCache maps a message struct type to its []childField.
var childFieldsCache sync.Map

func childFields(t reflect.Type) []childField {
	if v, ok := childFieldsCache.Load(t); ok {
		return v.([]childField)
	}
	var out []childField
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue // protobuf's own state, size cache, unknown fields
		}
		switch {
		case isMessagePtr(sf.Type):
			out = append(out, childField{i, childMessage})
		case sf.Type.Kind() == reflect.Slice && isMessagePtr(sf.Type.Elem()):
			out = append(out, childField{i, childList})
		case sf.Type.Kind() == reflect.Interface:
			out = append(out, childField{i, childOneof})
		}
	}
	childFieldsCache.Store(t, out)
	return out
}

// isMessagePtr reports a pointer to a generated message struct.
func isMessagePtr(t reflect.Type) bool {
	return t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct && t.Implements(protoMessage)
}

var protoMessage = reflect.TypeFor[protoreflect.ProtoMessage]()

// TestWalkSameOrder checks that walkMessages visits the messages
// walkReflect visits, in the same order, on the repository's migrations.
func TestWalkSameOrder(t *testing.T) {
	var files []string
	for _, root := range []string{"../testdata", "../examples", "../plancheck/testdata", "testdata"} {
		_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err == nil && filepath.Ext(path) == ".sql" {
				files = append(files, path)
			}
			return nil
		})
	}
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		tree, err := pg.Parse(string(b))
		if err != nil {
			continue
		}
		for _, st := range tree.Stmts {
			var got, want []any
			walkMessages(st.Stmt, func(m any) { got = append(got, m) })
			walkReflect(st.Stmt, func(m any) { want = append(want, m) })
			if len(got) != len(want) {
				t.Fatalf("%s: walked %d messages, the reflect walker %d", f, len(got), len(want))
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("%s: message %d is %T, the reflect walker's %T", f, i, got[i], want[i])
				}
			}
			n += len(got)
		}
	}
	if n < 5000 {
		t.Errorf("walked %d messages, want the test data's", n)
	}
}
