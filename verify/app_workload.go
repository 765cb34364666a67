package verify

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	pg "github.com/pganalyze/pg_query_go/v6"
	"github.com/pganalyze/pg_query_go/v6/parser"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/internal/dbconn"
)

// WorkloadApp is an app given as its SQL: a file of statements (from
// pg_stat_statements, say) run one by one, each in its own transaction on
// one connection; the app passes if every statement succeeds. A statement
// with placeholders $1..$n takes its values from a comment line before it:
//
//	-- params: 42, 'x@example.com', NULL
//
// The values are SQL literals (numbers, strings, true/false, NULL; a cast
// such as '1 day'::interval is allowed and its type ignored). They are read
// with the PostgreSQL parser when the file is loaded and sent as text, so
// the server reads each as the type it inferred for its parameter, as it
// would a value from psql's \bind.
type WorkloadApp struct {
	name, file string
	stmts      []workStmt
}

type workStmt struct {
	pos  change.Pos
	sql  string
	args []any // string, or nil for NULL
}

// LoadWorkload reads and parses a workload file. A malformed file comes back
// as a *change.InputError naming file:line:col. An empty name means the
// file's base name.
func LoadWorkload(name, file string) (*WorkloadApp, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, &change.InputError{Pos: change.Pos{File: file}, Msg: "cannot read the workload: " + err.Error()}
	}
	if name == "" {
		name = filepath.Base(file)
	}
	return parseWorkload(name, file, string(b))
}

// Name returns the name given to LoadWorkload.
func (w *WorkloadApp) Name() string { return w.name }

// Statements is the number of statements in the workload.
func (w *WorkloadApp) Statements() int { return len(w.stmts) }

// Run runs every statement against dsn. It goes on past a failed statement
// (Output shows them all); Error names the first.
func (w *WorkloadApp) Run(ctx context.Context, dsn string) AppResult {
	start := time.Now()
	res := AppResult{Passed: true}
	conn, err := dbconn.Connect(ctx, dsn)
	if err != nil {
		return AppResult{Error: err.Error(), Duration: time.Since(start)}
	}
	defer conn.Close(context.Background())
	out := newCapBuffer(outputHead, outputTail)
	for _, s := range w.stmts {
		t0 := time.Now()
		tag, err := conn.Exec(ctx, s.sql, s.args...)
		if err == nil {
			fmt.Fprintf(out, "%s: %s (%v)\n", s.pos, tag, time.Since(t0).Round(time.Microsecond))
			continue
		}
		msg := fmt.Sprintf("%s: %s", s.pos, truncateLine(strings.Join(strings.Fields(err.Error()), " ")))
		fmt.Fprintln(out, msg)
		if res.Passed {
			res.Passed, res.Error = false, msg
		}
		if ctx.Err() != nil || conn.IsClosed() {
			fmt.Fprintf(out, "stopped: %s\n", w.stoppedBecause(ctx))
			break
		}
	}
	res.Output = out.String()
	res.Duration = time.Since(start)
	return res
}

func (w *WorkloadApp) stoppedBecause(ctx context.Context) string {
	if err := ctx.Err(); err != nil {
		return err.Error()
	}
	return "the connection was lost"
}

// parseWorkload splits src into statements with the PostgreSQL parser and
// binds each to its params comment.
func parseWorkload(name, file, src string) (*WorkloadApp, error) {
	bad := func(offset int, format string, args ...any) error {
		return &change.InputError{Pos: srcPos(file, src, offset), Msg: fmt.Sprintf(format, args...)}
	}
	tree, err := pg.Parse(src)
	if err != nil {
		return nil, bad(parseErrorOffset(src, err), "syntax error: %v", err)
	}
	scan, err := pg.Scan(src)
	if err != nil {
		return nil, bad(parseErrorOffset(src, err), "syntax error: %v", err)
	}
	toks := scan.Tokens

	type paramsComment struct {
		start, end int // the comment token
		list       int // where the values start
		used       bool
	}
	var comments []*paramsComment
	for _, t := range toks {
		if t.Token != pg.Token_SQL_COMMENT {
			continue
		}
		body := src[t.Start:t.End]
		rest := strings.TrimLeft(strings.TrimPrefix(body, "--"), " \t")
		if !strings.HasPrefix(rest, "params:") {
			continue
		}
		comments = append(comments, &paramsComment{start: int(t.Start), end: int(t.End), list: int(t.End) - len(rest) + len("params:")})
	}

	w := &WorkloadApp{name: name, file: file}
	ti := 0
	for _, raw := range tree.Stmts {
		loc := int(raw.StmtLocation)
		end := len(src)
		if raw.StmtLen > 0 {
			end = loc + int(raw.StmtLen)
		}
		// The statement starts at its first token that is not a comment;
		// the comments before it are its own.
		start, maxParam := -1, 0
		for ti < len(toks) && int(toks[ti].Start) < loc {
			ti++
		}
		for ; ti < len(toks) && int(toks[ti].Start) < end; ti++ {
			t := toks[ti]
			if t.Token == pg.Token_SQL_COMMENT || t.Token == pg.Token_C_COMMENT {
				continue
			}
			if start < 0 {
				start = int(t.Start)
			}
			if t.Token == pg.Token_PARAM {
				n, err := strconv.Atoi(src[t.Start+1 : t.End])
				if err != nil || n < 1 {
					return nil, bad(int(t.Start), "bad placeholder %s", src[t.Start:t.End])
				}
				maxParam = max(maxParam, n)
			}
		}
		if start < 0 {
			start = loc
		}
		if _, ok := raw.Stmt.Node.(*pg.Node_TransactionStmt); ok {
			return nil, bad(start, "transaction control is not supported: each statement of a workload runs in its own transaction")
		}
		var pc *paramsComment
		for _, c := range comments {
			if c.start < loc || c.start >= end {
				continue
			}
			if pc != nil {
				return nil, bad(c.start, "a second params comment for the statement at %s", srcPos(file, src, start))
			}
			pc = c
		}
		s := workStmt{pos: srcPos(file, src, start), sql: strings.TrimSpace(src[start:end])}
		switch {
		case pc == nil && maxParam > 0:
			return nil, bad(start, "the statement uses $1..$%d but no \"-- params:\" comment before it gives their values", maxParam)
		case pc != nil:
			pc.used = true
			args, off, err := parseParams(src[pc.list:pc.end])
			if err != nil {
				return nil, bad(pc.list+off, "params: %v", err)
			}
			if maxParam == 0 {
				return nil, bad(pc.start, "params comment for a statement without placeholders")
			}
			if len(args) != maxParam {
				return nil, bad(pc.start, "%d params for a statement that uses %d ($1..$%d)", len(args), maxParam, maxParam)
			}
			s.args = args
		}
		w.stmts = append(w.stmts, s)
	}
	for _, c := range comments {
		if !c.used {
			return nil, bad(c.start, "params comment with no statement after it")
		}
	}
	if len(w.stmts) == 0 {
		return nil, bad(0, "no statements")
	}
	return w, nil
}

// parseParams reads a comma-separated list of SQL literals by parsing it
// as a select list. On error it also returns the offset in list to blame.
func parseParams(list string) ([]any, int, error) {
	const prefix = "SELECT "
	src := prefix + list
	at := func(offset int) int { return min(max(offset-len(prefix), 0), len(list)) }
	tree, err := pg.Parse(src)
	if err != nil {
		return nil, at(parseErrorOffset(src, err)), err
	}
	var sel *pg.SelectStmt
	if len(tree.Stmts) == 1 {
		sel = tree.Stmts[0].Stmt.GetSelectStmt()
	}
	if sel == nil || len(sel.TargetList) == 0 || sel.FromClause != nil || sel.WhereClause != nil ||
		sel.GroupClause != nil || sel.HavingClause != nil || sel.SortClause != nil || sel.LimitCount != nil ||
		sel.LimitOffset != nil || sel.DistinctClause != nil || sel.IntoClause != nil || sel.WindowClause != nil {
		return nil, 0, errors.New("want a comma-separated list of literals: 42, 'text', NULL")
	}
	args := make([]any, 0, len(sel.TargetList))
	for i, n := range sel.TargetList {
		rt := n.GetResTarget()
		if rt == nil || rt.Name != "" {
			return nil, at(int(rt.GetLocation())), fmt.Errorf("value %d: want a literal, without AS", i+1)
		}
		v := rt.Val
		if tc := v.GetTypeCast(); tc != nil {
			v = tc.Arg
		}
		c := v.GetAConst()
		if c == nil {
			return nil, at(int(rt.Location)), fmt.Errorf("value %d: want a literal (number, 'string', true/false or NULL)", i+1)
		}
		switch {
		case c.Isnull:
			args = append(args, nil)
		case c.GetIval() != nil:
			args = append(args, strconv.Itoa(int(c.GetIval().Ival)))
		case c.GetFval() != nil:
			args = append(args, c.GetFval().Fval)
		case c.GetSval() != nil:
			args = append(args, c.GetSval().Sval)
		case c.GetBoolval() != nil:
			args = append(args, strconv.FormatBool(c.GetBoolval().Boolval))
		default:
			return nil, at(int(rt.Location)), fmt.Errorf("value %d: unsupported literal", i+1)
		}
	}
	return args, 0, nil
}

// parseErrorOffset is the byte offset in src that a parser error points at.
func parseErrorOffset(src string, err error) int {
	var pe *parser.Error
	if !errors.As(err, &pe) || pe.Cursorpos <= 0 {
		return 0
	}
	// Cursorpos counts characters from 1.
	chars := pe.Cursorpos - 1
	for i := range src {
		if chars == 0 {
			return i
		}
		chars--
	}
	return len(src)
}

// srcPos is the line and column (in characters, from 1) of a byte offset.
func srcPos(file, src string, offset int) change.Pos {
	offset = min(max(offset, 0), len(src))
	before := src[:offset]
	lineStart := strings.LastIndexByte(before, '\n') + 1
	return change.Pos{
		File:   file,
		Line:   strings.Count(before, "\n") + 1,
		Col:    utf8.RuneCountInString(before[lineStart:]) + 1,
		Offset: offset,
	}
}
