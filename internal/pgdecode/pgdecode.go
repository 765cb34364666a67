// Package pgdecode hands parse trees between pg_query (C) and Go without
// protobuf-go.
//
// pg_query_go's Parse has PostgreSQL's parser encode the tree as protobuf
// (protobuf-c), then decodes it with protobuf-go, and its Deparse encodes a
// tree with protobuf-go for the C deparser: for phasekit lint, the encoding
// and decoding cost several times the parsing, and the first of either in a
// process also pays about 2 ms while protobuf-go builds pg_query's
// descriptors and the coders of its ~270 node types. Here Parse asks for the
// tree as JSON, cheaper to write in C, and reads it into pg_query_go's Go
// structs (json_gen.go); Deparse encodes with encode_gen.go; decode_gen.go
// decodes protobuf for the fallback; walk_gen.go walks a tree. All four are
// generated from pg_query_go's types (go generate), one plain function a
// message.
//
// Anything the readers were not written for (a field they do not know, a
// type they do not expect, a string that is not UTF-8, which protobuf-go
// refuses) makes them give up, and Parse decodes with protobuf-go instead,
// so the result is always what pg_query_go's Parse returns:
// TestJSONSameTree and TestParseSameTree check the trees on the
// repository's test data and a generated corpus, TestParseErrorsSame the
// errors, TestEncodeSameTree the encoder (the bytes decode to the same tree
// and every statement of the test data deparses the same).
package pgdecode

//go:generate go run ./gen

import (
	"errors"
	"unicode/utf8"
	"unsafe"

	pg "github.com/pganalyze/pg_query_go/v6"
	"github.com/pganalyze/pg_query_go/v6/parser"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Parse parses src as pg_query_go's Parse does.
//
// It asks pg_query for the tree as JSON (pg_query_parse) and reads that
// (json_gen.go): PostgreSQL's parser itself is a small part of
// pg_query_parse_protobuf, whose protobuf-c encoding visits every one of
// Node's ~270 oneof members for each node; writing JSON costs the C side a
// third of that, and reading it here costs about what decoding protobuf
// does (BenchmarkParse: 38% less in all). On a parse error, or anything
// the JSON reader does not expect, it parses again through protobuf, so
// errors and trees are pg_query_go's.
func Parse(src string) (*pg.ParseResult, error) {
	if js, err := parser.ParseToJSON(src); err == nil {
		tree := &pg.ParseResult{}
		// Read in place: the reader never writes, and copies the strings
		// it keeps.
		d := &jdec{b: unsafe.Slice(unsafe.StringData(js), len(js))}
		if jsonParseResult(d, tree) && d.end() {
			return tree, nil
		}
	}
	b, err := parser.ParseToProtobuf(src)
	if err != nil {
		return nil, err
	}
	tree := &pg.ParseResult{}
	if decodeParseResult(b, tree) == nil {
		return tree, nil
	}
	tree = &pg.ParseResult{}
	if err := proto.Unmarshal(b, tree); err != nil {
		return nil, err
	}
	return tree, nil
}

// errBad makes the generated decoder give up.
var errBad = errors.New("pgdecode: unexpected input")

func bytesField(typ protowire.Type, b []byte) ([]byte, int) {
	if typ != protowire.BytesType {
		return nil, -1
	}
	return protowire.ConsumeBytes(b)
}

func stringField(typ protowire.Type, b []byte) (string, int) {
	v, n := bytesField(typ, b)
	if n < 0 || !utf8.Valid(v) {
		return "", -1
	}
	return string(v), n
}

func varintField(typ protowire.Type, b []byte) (uint64, int) {
	if typ != protowire.VarintType {
		return 0, -1
	}
	return protowire.ConsumeVarint(b)
}

// appendUint64s reads a repeated uint64, packed or not.
func appendUint64s(typ protowire.Type, b []byte, out *[]uint64) int {
	switch typ {
	case protowire.VarintType:
		v, n := protowire.ConsumeVarint(b)
		if n >= 0 {
			*out = append(*out, v)
		}
		return n
	case protowire.BytesType:
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return n
		}
		for len(v) > 0 {
			x, k := protowire.ConsumeVarint(v)
			if k < 0 {
				return k
			}
			*out = append(*out, x)
			v = v[k:]
		}
		return n
	}
	return -1
}

// noFields decodes a message with no fields: any field is unexpected.
func noFields(b []byte) error {
	if len(b) > 0 {
		return errBad
	}
	return nil
}

// Deparse prints tree as pg_query_go's Deparse does, encoding it with the
// generated encoder rather than protobuf-go.
func Deparse(tree *pg.ParseResult) (string, error) {
	return parser.DeparseFromProtobuf(appendParseResult(make([]byte, 0, 256), tree))
}

// startMessage appends the tag of a message field and a one-byte length to
// fill in by endMessage; it returns where the length is.
func startMessage(b []byte, num protowire.Number) ([]byte, int) {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return append(b, 0), len(b)
}

// endMessage writes the length of the message appended since startMessage,
// moving it along when the length takes more than a byte.
func endMessage(b []byte, at int) []byte {
	n := len(b) - at - 1
	if n < 0x80 {
		b[at] = byte(n)
		return b
	}
	k := protowire.SizeVarint(uint64(n))
	b = append(b, make([]byte, k-1)...)
	copy(b[at+k:], b[at+1:at+1+n])
	protowire.AppendVarint(b[at:at], uint64(n))
	return b
}

// appendPacked appends a repeated uint64, packed, as protobuf-go writes it.
func appendPacked(b []byte, num protowire.Number, xs []uint64) []byte {
	if len(xs) == 0 {
		return b
	}
	n := 0
	for _, x := range xs {
		n += protowire.SizeVarint(x)
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(n))
	for _, x := range xs {
		b = protowire.AppendVarint(b, x)
	}
	return b
}

// Walk calls f with n and every message below it, depth first, each
// message's fields in declaration order: the nodes and the messages held
// directly (an INSERT's target RangeVar is no Node). For a oneof, f sees the
// member, not the wrapper holding it.
func Walk(n *pg.Node, f func(any)) {
	walkNode(n, f)
}
