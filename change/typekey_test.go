package change

import (
	"slices"
	"testing"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// TestTypeKeyFields fails when pg_query's TypeName, A_Const or Integer gain
// a field typeKey does not read: the cache would then mix up type names
// that print differently.
func TestTypeKeyFields(t *testing.T) {
	for _, tt := range []struct {
		m    proto.Message
		want []protoreflect.Name
	}{
		{&pg.TypeName{}, []protoreflect.Name{"names", "type_oid", "setof", "pct_type", "typmods", "typemod", "array_bounds", "location"}},
		{&pg.A_Const{}, []protoreflect.Name{"ival", "fval", "boolval", "sval", "bsval", "isnull", "location"}},
		{&pg.Integer{}, []protoreflect.Name{"ival"}},
	} {
		fs := tt.m.ProtoReflect().Descriptor().Fields()
		var got []protoreflect.Name
		for i := range fs.Len() {
			got = append(got, fs.Get(i).Name())
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s fields: %v, typeKey was written for %v", tt.m.ProtoReflect().Descriptor().Name(), got, tt.want)
		}
	}
}

// TestDeparseTypeCache checks that cached type names print as the deparser
// prints them, for names that differ only in a modifier, an array bound, a
// schema or quoting.
func TestDeparseTypeCache(t *testing.T) {
	types := []string{
		"bigint", "int", "integer", "int4", "text", "varchar(255)", "varchar(256)", "character varying", "varchar",
		"numeric(10,2)", "numeric(10)", "numeric(2,10)", "numeric", "int[]", "int[3]", "int[][]", "int[3][4]", "int ARRAY",
		"timestamptz", "timestamp with time zone", "timestamp(3)", "time(3) with time zone", "interval", "interval day to second(3)",
		"interval year to month", `"char"`, "char(3)", "bit varying(5)", "double precision", "public.mytype", `"My Type"`,
		"myschema.\"My Type\"[]", "float(24)", "float(53)", "boolean", "jsonb", "uuid", "bigserial", "serial",
	}
	for round := 0; round < 2; round++ { // the second round reads the cache
		for _, typ := range types {
			tree, err := pg.Parse("ALTER TABLE t ADD COLUMN c " + typ)
			if err != nil {
				t.Fatalf("%s: %v", typ, err)
			}
			tn := tree.Stmts[0].Stmt.GetAlterTableStmt().Cmds[0].GetAlterTableCmd().Def.GetColumnDef().TypeName
			if got, want := deparseType(tn), deparseTypeName(tn); got != want {
				t.Errorf("round %d: %s prints %q from the cache, %q from the deparser", round, typ, got, want)
			}
		}
	}
	// %TYPE and SETOF only occur in function signatures.
	tree, err := pg.Parse("CREATE FUNCTION f(a t.c%TYPE, b int) RETURNS SETOF int LANGUAGE sql AS 'select 1'")
	if err != nil {
		t.Fatal(err)
	}
	fn := tree.Stmts[0].Stmt.GetCreateFunctionStmt()
	for round := 0; round < 2; round++ {
		for _, tn := range []*pg.TypeName{fn.Parameters[0].GetFunctionParameter().ArgType, fn.Parameters[1].GetFunctionParameter().ArgType, fn.ReturnType} {
			if got, want := deparseType(tn), deparseTypeName(tn); got != want {
				t.Errorf("round %d: %q from the cache, %q from the deparser", round, got, want)
			}
		}
	}
}
