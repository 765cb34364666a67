// Package pgdecode reads pg_query's parse tree without protobuf-go.
//
// pg_query_go's Parse has PostgreSQL's parser (C) encode the tree as
// protobuf, then decodes it with protobuf-go: a fifth of phasekit lint's
// time, plus about 2 ms the first time in a process, while protobuf-go
// builds pg_query's descriptors and the coders of its ~270 node types.
// decode_gen.go, generated from pg_query_go's types (go generate), decodes
// the same bytes into the same Go structs with one plain function a message.
//
// Anything it was not written for (a field it does not know, a wire type it
// does not expect, a string that is not UTF-8, which protobuf-go refuses)
// makes it give up, and Parse decodes with protobuf-go instead, so the
// result is always what pg_query_go's Parse returns; TestParseSameTree
// checks that on the repository's test data.
package pgdecode

//go:generate go run ./gen

import (
	"errors"
	"unicode/utf8"

	pg "github.com/pganalyze/pg_query_go/v6"
	"github.com/pganalyze/pg_query_go/v6/parser"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Parse parses src as pg_query_go's Parse does.
func Parse(src string) (*pg.ParseResult, error) {
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
