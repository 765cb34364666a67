package change

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"

	pg "github.com/pganalyze/pg_query_go/v6"
	"github.com/pganalyze/pg_query_go/v6/parser"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/phasekit/phasekit/internal/pgdecode"
)

// ReadFile reads one input by its extension: a .sql migration or a .yaml
// (.yml) change spec. Every problem with the input itself (an unknown
// extension, a file that cannot be read, bad SQL or YAML) comes back as an
// *InputError naming the file, so the CLI exits with 2.
func ReadFile(path string) (*Migration, error) {
	return readFile(path, printer{})
}

// ReadFileForLint reads an input as ReadFile does, with what the lint rules
// read and no more: from a .sql file, the changes' Definition is empty and
// their SQL and Replay are the statement as written, where ReadFile prints
// each ALTER TABLE subcommand and each dropped object as a statement of its
// own with PostgreSQL's deparser. Findings are the same; planning, replay and
// lint's data checks need ReadFile.
func ReadFileForLint(path string) (*Migration, error) {
	return readFile(path, printer{skip: true})
}

func readFile(path string, p printer) (*Migration, error) {
	var (
		m   *Migration
		err error
	)
	switch strings.ToLower(filepath.Ext(path)) {
	case ".sql":
		m, err = readSQLFile(path, p)
	case ".yaml", ".yml":
		m, err = ReadSpecFile(path)
	default:
		return nil, &InputError{Pos: Pos{File: path, Line: 1, Col: 1}, Msg: "not a .sql migration or a .yaml change spec"}
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return nil, &InputError{Pos: Pos{File: path, Line: 1, Col: 1}, Msg: "cannot read the file: " + pe.Err.Error()}
	}
	return m, err
}

// ReadSQLFile reads a migration file and parses it.
func ReadSQLFile(path string) (*Migration, error) {
	return readSQLFile(path, printer{})
}

// ReadSQLFileForLint is ReadSQLFile with what the lint rules read and no
// more, as ReadFileForLint.
func ReadSQLFileForLint(path string) (*Migration, error) {
	return readSQLFile(path, printer{skip: true})
}

func readSQLFile(path string, p printer) (*Migration, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read migration: %w", err)
	}
	return parseSQL(path, string(b), p)
}

// ParseSQL parses the SQL text of one migration file into changes. A syntax
// error comes back as an *InputError naming file:line:col.
func ParseSQL(file, src string) (*Migration, error) {
	return parseSQL(file, src, printer{})
}

func parseSQL(file, src string, p printer) (*Migration, error) {
	lines := newLineIndex(src)
	tree, err := pgdecode.Parse(src)
	if err != nil {
		return nil, syntaxError(file, src, lines, err)
	}
	// PostgreSQL's scanner finds the comments: the "-- phasekit:allow"
	// ones, and those before each statement. A file without that text has
	// no allow comment, and between a statement's location (just past the
	// previous semicolon) and its first token there is nothing but
	// whitespace and comments, which skipBlank steps over as the scanner
	// does: the scanner, a seventh of lint's time, only runs when needed
	// (and on a NUL byte, where the C scanner and parser stop reading).
	var toks []token
	var allows []Allow
	scanned := strings.Contains(src, "phasekit:allow") || strings.IndexByte(src, 0) >= 0
	if scanned {
		toks, err = scan(src)
		if err != nil {
			return nil, syntaxError(file, src, lines, err)
		}
		allows = allowComments(file, src, lines, toks)
	}

	m := &Migration{File: file}
	if n := len(tree.Stmts); n > 0 {
		// One change a statement is the rule (an ALTER TABLE with several
		// subcommands gives more): room for them up front saves copying
		// these large structs as the slices grow.
		m.Statements = make([]Statement, 0, n)
		m.Changes = make([]Change, 0, n)
	}
	for _, raw := range tree.Stmts {
		start, end := stmtBounds(src, raw, toks, scanned)
		text := strings.TrimSpace(src[start:end])
		pos := lines.pos(file, start)
		changes := classify(raw.Stmt, text, p)
		stmt := len(m.Statements)
		auto := autocommit(raw.Stmt)
		m.Statements = append(m.Statements, Statement{Pos: pos, SQL: text, Autocommit: auto, Transaction: raw.Stmt.GetTransactionStmt() != nil})
		rels := relations(raw.Stmt)
		if len(changes) == 1 && changes[0].Replay == "" {
			changes[0].Replay = text
		}
		var stmtAllows []Allow
		for len(allows) > 0 && allows[0].Pos.Offset < end {
			stmtAllows = append(stmtAllows, allows[0])
			allows = allows[1:]
		}
		for i := range changes {
			changes[i].Pos = pos
			changes[i].Stmt = stmt
			changes[i].Autocommit = auto
			changes[i].Relations = rels
			changes[i].Allowed = stmtAllows
			if changes[i].SQL == "" {
				changes[i].SQL = text
			}
		}
		m.Changes = append(m.Changes, changes...)
	}
	return m, nil
}

// stmtBounds returns the byte range of a statement without leading comments
// or whitespace and without its trailing semicolon: with the scanner's
// tokens when scanned, else with skipBlank.
func stmtBounds(src string, raw *pg.RawStmt, toks []token, scanned bool) (int, int) {
	start := int(raw.StmtLocation)
	end := len(src)
	if raw.StmtLen > 0 {
		end = start + int(raw.StmtLen)
	}
	if !scanned {
		if i := skipBlank(src, start); i < end {
			start = i
		}
		return start, end
	}
	i := sort.Search(len(toks), func(i int) bool { return toks[i].start >= start })
	for ; i < len(toks) && toks[i].start < end; i++ {
		if !toks[i].comment {
			start = toks[i].start
			break
		}
	}
	return start, end
}

// skipBlank returns the offset of the first byte at or after i that is
// neither whitespace nor in a comment, as PostgreSQL's scanner reads them
// (scan.l): whitespace is space, \t, \n, \r, \v and \f; "--" starts a
// comment that runs to the next \n or \r; "/*" starts one that runs to its
// "*/", nesting. Outside a token both always start a comment (the scanner
// prefers them to an operator). It returns len(src) when there is none.
func skipBlank(src string, i int) int {
	for i < len(src) {
		switch c := src[i]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f':
			i++
		case c == '-' && i+1 < len(src) && src[i+1] == '-':
			for i < len(src) && src[i] != '\n' && src[i] != '\r' {
				i++
			}
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			i += 2
			for depth := 1; depth > 0 && i < len(src); {
				switch {
				case src[i] == '/' && i+1 < len(src) && src[i+1] == '*':
					depth++
					i += 2
				case src[i] == '*':
					for i < len(src) && src[i] == '*' {
						i++
					}
					if i < len(src) && src[i] == '/' {
						depth--
						i++
					}
				default:
					i++
				}
			}
		default:
			return i
		}
	}
	return len(src)
}

// token is what ParseSQL needs of a scanner token: its byte range and
// whether it is a comment.
type token struct {
	start, end int
	comment    bool
}

// scanFields are the field numbers of pg_query's ScanResult.tokens and
// ScanToken's start, end and token, read from the generated descriptors on
// first use (not at init: that builds pg_query's whole file descriptor,
// about a millisecond that every phasekit command would pay).
var scanFields = sync.OnceValue(func() (f struct{ tokens, start, end, kind protowire.Number }) {
	number := func(m proto.Message, name protoreflect.Name) protowire.Number {
		return m.ProtoReflect().Descriptor().Fields().ByName(name).Number()
	}
	f.tokens = number(&pg.ScanResult{}, "tokens")
	f.start = number(&pg.ScanToken{}, "start")
	f.end = number(&pg.ScanToken{}, "end")
	f.kind = number(&pg.ScanToken{}, "token")
	return f
})

// scan runs PostgreSQL's scanner (pg_query) over src. It decodes the
// scanner's protobuf output itself, keeping three numbers a token:
// pg.Scan's decoding into a message per token cost more than the scan.
func scan(src string) ([]token, error) {
	b, err := parser.ScanToProtobuf(src)
	if err != nil {
		return nil, err
	}
	fields := scanFields()
	isToken := func(num protowire.Number, typ protowire.Type) bool {
		return num == fields.tokens && typ == protowire.BytesType
	}
	// Count the tokens first, to allocate them once: growing the slice
	// token by token allocated about as much as the rest of ParseSQL.
	n := 0
	err = eachField(b, func(num protowire.Number, typ protowire.Type, _ []byte, _ uint64) error {
		if isToken(num, typ) {
			n++
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pg_query scan result: %w", err)
	}
	toks := make([]token, 0, n)
	err = eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if !isToken(num, typ) {
			return nil
		}
		var t token
		err := eachField(v, func(num protowire.Number, typ protowire.Type, _ []byte, x uint64) error {
			if typ != protowire.VarintType {
				return nil
			}
			switch num {
			case fields.start:
				t.start = int(int32(x))
			case fields.end:
				t.end = int(int32(x))
			case fields.kind:
				k := pg.Token(int32(x))
				t.comment = k == pg.Token_SQL_COMMENT || k == pg.Token_C_COMMENT
			}
			return nil
		})
		toks = append(toks, t)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pg_query scan result: %w", err)
	}
	return toks, nil
}

// eachField calls f with each field of an encoded protobuf message: its
// number, wire type, and its bytes (length-delimited) or varint value.
func eachField(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := f(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

// allowComments finds "-- phasekit:allow rule-id reason" comments. Each one
// silences its rule for the statement that follows it (or the one it sits in).
func allowComments(file, src string, lines lineIndex, toks []token) []Allow {
	var out []Allow
	for _, t := range toks {
		if !t.comment {
			continue
		}
		body := src[t.start:t.end]
		body = strings.TrimPrefix(body, "--")
		body = strings.TrimPrefix(body, "/*")
		body = strings.TrimSuffix(body, "*/")
		fields := strings.Fields(body)
		if len(fields) < 2 || fields[0] != "phasekit:allow" {
			continue
		}
		out = append(out, Allow{
			Rule:   fields[1],
			Reason: strings.Join(fields[2:], " "),
			Pos:    lines.pos(file, t.start),
		})
	}
	return out
}

func syntaxError(file, src string, lines lineIndex, err error) error {
	offset := 0
	if pe, ok := err.(*parser.Error); ok {
		// Cursorpos counts characters from 1, not bytes.
		offset = charToByte(src, pe.Cursorpos-1)
	}
	return &InputError{Pos: lines.pos(file, offset), Msg: "syntax error: " + err.Error()}
}

func charToByte(src string, chars int) int {
	if chars <= 0 {
		return 0
	}
	n := 0
	for i := range src {
		if n == chars {
			return i
		}
		n++
	}
	return len(src)
}

// lineIndex maps byte offsets to 1-based line and column (in characters).
type lineIndex struct {
	src    string
	starts []int // byte offset of each line start
}

func newLineIndex(src string) lineIndex {
	idx := lineIndex{src: src, starts: []int{0}}
	for i := 0; i < len(src); i++ {
		if src[i] == '\n' {
			idx.starts = append(idx.starts, i+1)
		}
	}
	return idx
}

func (l lineIndex) pos(file string, offset int) Pos {
	offset = min(max(offset, 0), len(l.src))
	line := sort.Search(len(l.starts), func(i int) bool { return l.starts[i] > offset }) - 1
	lineStart := l.starts[line]
	col := utf8.RuneCountInString(l.src[lineStart:offset]) + 1
	return Pos{File: file, Line: line + 1, Col: col, Offset: offset}
}
