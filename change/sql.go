package change

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"

	pg "github.com/pganalyze/pg_query_go/v6"
	"github.com/pganalyze/pg_query_go/v6/parser"
)

// ReadFile reads one input by its extension: a .sql migration or a .yaml
// (.yml) change spec. Every problem with the input itself (an unknown
// extension, a file that cannot be read, bad SQL or YAML) comes back as an
// *InputError naming the file, so the CLI exits with 2.
func ReadFile(path string) (*Migration, error) {
	var (
		m   *Migration
		err error
	)
	switch strings.ToLower(filepath.Ext(path)) {
	case ".sql":
		m, err = ReadSQLFile(path)
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
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read migration: %w", err)
	}
	return ParseSQL(path, string(b))
}

// ParseSQL parses the SQL text of one migration file into changes. A syntax
// error comes back as an *InputError naming file:line:col.
func ParseSQL(file, src string) (*Migration, error) {
	lines := newLineIndex(src)
	tree, err := pg.Parse(src)
	if err != nil {
		return nil, syntaxError(file, src, lines, err)
	}
	scan, err := pg.Scan(src)
	if err != nil {
		return nil, syntaxError(file, src, lines, err)
	}
	allows := allowComments(file, src, lines, scan.Tokens)

	m := &Migration{File: file}
	for _, raw := range tree.Stmts {
		start, end := stmtBounds(src, raw, scan.Tokens)
		text := strings.TrimSpace(src[start:end])
		pos := lines.pos(file, start)
		changes := classify(raw.Stmt, text)
		stmt := len(m.Statements)
		m.Statements = append(m.Statements, Statement{Pos: pos, SQL: text, Autocommit: autocommit(raw.Stmt), Transaction: raw.Stmt.GetTransactionStmt() != nil})
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
// or whitespace and without its trailing semicolon.
func stmtBounds(src string, raw *pg.RawStmt, toks []*pg.ScanToken) (int, int) {
	start := int(raw.StmtLocation)
	end := len(src)
	if raw.StmtLen > 0 {
		end = start + int(raw.StmtLen)
	}
	i := sort.Search(len(toks), func(i int) bool { return int(toks[i].Start) >= start })
	for ; i < len(toks) && int(toks[i].Start) < end; i++ {
		if !isComment(toks[i]) {
			start = int(toks[i].Start)
			break
		}
	}
	return start, end
}

func isComment(t *pg.ScanToken) bool {
	return t.Token == pg.Token_SQL_COMMENT || t.Token == pg.Token_C_COMMENT
}

// allowComments finds "-- phasekit:allow rule-id reason" comments. Each one
// silences its rule for the statement that follows it (or the one it sits in).
func allowComments(file, src string, lines lineIndex, toks []*pg.ScanToken) []Allow {
	var out []Allow
	for _, t := range toks {
		if !isComment(t) {
			continue
		}
		body := src[t.Start:t.End]
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
			Pos:    lines.pos(file, int(t.Start)),
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
