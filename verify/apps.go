package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	pg "github.com/pganalyze/pg_query_go/v6"
	"github.com/pganalyze/pg_query_go/v6/parser"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/internal/dbconn"
)

// App is one version of an application under test: run against a database,
// it passes or fails.
type App interface {
	// Name is how reports name the app ("v1 check", "v2.sql").
	Name() string
	// Run runs the app once against the database at dsn.
	Run(ctx context.Context, dsn string) AppResult
}

// AppResult is how one run of an App went.
type AppResult struct {
	Passed bool
	// Output is the app's combined stdout and stderr (for a workload, one
	// line per statement), truncated in the middle past about 64 KiB, with
	// passwords redacted.
	Output string
	// Error is one line saying why the app failed, e.g. the SQL error
	// `ERROR: column "email" does not exist (SQLSTATE 42703)`.
	Error    string
	Duration time.Duration
}

// CommandApp is an app run as a shell command (sh -c) with the database in
// its environment: DATABASE_URL (the DSN as given) and PGHOST, PGPORT,
// PGUSER, PGPASSWORD, PGDATABASE and PGSSLMODE, which replace inherited
// ones; an inherited PGHOSTADDR or PGSERVICE is dropped, as it would send
// libpq clients elsewhere. The command passes if it exits 0. It runs in its
// own process group, which is killed when it exits, times out or ctx ends,
// so that nothing it started outlives it.
type CommandApp struct {
	// AppName is what Name returns (a field cannot share the method's name).
	AppName string
	// Command is the shell command line.
	Command string
	// Dir is the working directory; "" is phasekit's.
	Dir string
	// Timeout bounds one run; zero means only ctx does.
	Timeout time.Duration
}

// Name returns AppName.
func (a CommandApp) Name() string { return a.AppName }

// Run runs the command once against dsn.
func (a CommandApp) Run(ctx context.Context, dsn string) AppResult {
	start := time.Now()
	vars, secret, err := dbconn.Env(dsn)
	if err != nil {
		return AppResult{Error: err.Error(), Duration: time.Since(start)}
	}
	r := runCommand(ctx, a.Command, a.Dir, dbconn.ChildEnv(vars...), a.Timeout)
	return AppResult{
		Passed:   r.passed,
		Output:   dbconn.RedactOutput(r.output, secret),
		Error:    dbconn.RedactOutput(r.errorLine(), secret),
		Duration: time.Since(start),
	}
}

// Output limits: the start of a long output says how the app came up, the
// end why it stopped.
const (
	outputHead   = 16 << 10
	outputTail   = 48 << 10
	errorLineMax = 1000
)

// capBuffer keeps the first head and the last tail bytes written to it.
type capBuffer struct {
	mu         sync.Mutex
	head, tail []byte
	headMax    int
	tailMax    int
	total      int64
}

func newCapBuffer(head, tail int) *capBuffer { return &capBuffer{headMax: head, tailMax: tail} }

func (b *capBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(p)
	b.total += int64(n)
	if room := b.headMax - len(b.head); room > 0 {
		k := min(room, len(p))
		b.head = append(b.head, p[:k]...)
		p = p[k:]
	}
	b.tail = append(b.tail, p...)
	if len(b.tail) > 2*b.tailMax {
		b.tail = append(b.tail[:0], b.tail[len(b.tail)-b.tailMax:]...)
	}
	return n, nil
}

func (b *capBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	tail := b.tail
	if len(tail) > b.tailMax {
		tail = tail[len(tail)-b.tailMax:]
	}
	omitted := b.total - int64(len(b.head)) - int64(len(tail))
	if omitted <= 0 {
		return strings.ToValidUTF8(string(b.head)+string(tail), "\uFFFD")
	}
	// Cut at a line start where one is near, and never inside a character.
	if i := strings.IndexByte(string(tail[:min(len(tail), 1024)]), '\n'); i >= 0 {
		omitted += int64(i + 1)
		tail = tail[i+1:]
	}
	for len(tail) > 0 && !utf8.RuneStart(tail[0]) {
		tail = tail[1:]
		omitted++
	}
	return strings.ToValidUTF8(fmt.Sprintf("%s\n[... %d bytes omitted ...]\n%s", b.head, omitted, tail), "\uFFFD")
}

// proc is a shell command running in its own process group, its output
// captured.
type proc struct {
	cmd    *exec.Cmd
	out    *capBuffer // stdout and stderr
	stderr *capBuffer // stderr alone, for the error line
	pipes  []*os.File // our read ends
	copies sync.WaitGroup
	done   chan struct{} // closed once the leader is reaped and its group killed
	err    error         // from Wait; read after done
}

// startProc starts command with sh -c. The caller must call finish.
func startProc(command, dir string, env []string) (*proc, error) {
	if strings.TrimSpace(command) == "" {
		return nil, errors.New("no command")
	}
	p := &proc{
		out:    newCapBuffer(outputHead, outputTail),
		stderr: newCapBuffer(0, 8<<10),
		done:   make(chan struct{}),
	}
	rOut, wOut, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	rErr, wErr, err := os.Pipe()
	if err != nil {
		rOut.Close()
		wOut.Close()
		return nil, err
	}
	cmd := exec.Command("sh", "-c", command)
	cmd.Dir = dir
	cmd.Env = env
	// Our own pipes rather than exec's: Wait then returns when the command
	// exits, not when the last process holding its output does, so that we
	// can kill the group's stragglers first.
	cmd.Stdout, cmd.Stderr = wOut, wErr
	cmd.SysProcAttr = sysProcAttr(nil)
	err = cmd.Start()
	wOut.Close()
	wErr.Close()
	if err != nil {
		rOut.Close()
		rErr.Close()
		return nil, fmt.Errorf("start %q: %w", command, err)
	}
	p.cmd = cmd
	p.pipes = []*os.File{rOut, rErr}
	p.copies.Add(2)
	go p.copy(p.out, rOut)
	go p.copy(io.MultiWriter(p.out, p.stderr), rErr)
	go func() {
		p.err = cmd.Wait()
		p.signal(syscall.SIGKILL)
		close(p.done)
	}()
	return p, nil
}

func (p *proc) copy(w io.Writer, r *os.File) {
	defer p.copies.Done()
	_, _ = io.Copy(w, r)
}

// pid is the leader's process id, which is also the group's id.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// signal sends sig to the whole process group.
func (p *proc) signal(sig syscall.Signal) {
	if err := syscall.Kill(-p.pid(), sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		_ = p.cmd.Process.Signal(sig)
	}
}

// exited reports whether the leader has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the group and SIGKILL after grace, then finishes.
// It reports whether SIGKILL was needed.
func (p *proc) stop(grace time.Duration) (killed bool) {
	if !p.exited() {
		p.signal(syscall.SIGTERM)
		t := time.NewTimer(grace)
		select {
		case <-p.done:
		case <-t.C:
			p.signal(syscall.SIGKILL)
			killed = true
		}
		t.Stop()
	}
	p.finish()
	return killed
}

// finish waits for the leader to exit and for its output. A process that
// left the group (setsid) and still holds the pipes gets 2 s before they
// are closed under it.
func (p *proc) finish() {
	<-p.done
	copied := make(chan struct{})
	go func() { p.copies.Wait(); close(copied) }()
	select {
	case <-copied:
	case <-time.After(2 * time.Second):
		for _, f := range p.pipes {
			f.Close()
		}
		<-copied
	}
	for _, f := range p.pipes {
		f.Close()
	}
}

// exitText says how the leader ended: "exit status 3", "signal: killed".
func (p *proc) exitText() string {
	if p.err == nil {
		return "exit status 0"
	}
	return p.err.Error()
}

// cmdResult is how one command run went.
type cmdResult struct {
	passed bool
	output string
	stderr string
	failed string // one line: why it did not pass
}

// errorLine is the one-line reason the command failed, "" if it passed.
func (r cmdResult) errorLine() string { return r.failed }

// runCommand runs command to completion, killing its process group when
// timeout (if positive) passes or ctx ends.
func runCommand(ctx context.Context, command, dir string, env []string, timeout time.Duration) cmdResult {
	p, err := startProc(command, dir, env)
	if err != nil {
		return cmdResult{failed: err.Error()}
	}
	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	var stopped string
	select {
	case <-p.done:
	case <-expired:
		p.signal(syscall.SIGKILL)
		stopped = fmt.Sprintf("timed out after %v", timeout)
	case <-ctx.Done():
		p.signal(syscall.SIGKILL)
		stopped = "cancelled: " + ctx.Err().Error()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			stopped = "timed out: " + ctx.Err().Error()
		}
	}
	p.finish()
	r := cmdResult{output: p.out.String(), stderr: p.stderr.String()}
	switch {
	case stopped != "":
		r.failed = stopped
	case p.err == nil:
		r.passed = true
	default:
		r.failed = lastErrorLine(r.stderr)
		if r.failed == "" {
			r.failed = p.exitText()
		}
	}
	return r
}

// errorWords mark a line of output that says what went wrong.
var errorWords = []string{"error", "fatal", "panic", "fail", "exception", "sqlstate", "does not exist", "not found", "denied", "refused"}

// lastErrorLine returns the last non-empty line of s that looks like an
// error, "" if none does.
func lastErrorLine(s string) string {
	lines := strings.Split(s, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l == "" {
			continue
		}
		low := strings.ToLower(l)
		for _, w := range errorWords {
			if strings.Contains(low, w) {
				return truncateLine(l)
			}
		}
	}
	return ""
}

func truncateLine(l string) string {
	if len(l) <= errorLineMax {
		return l
	}
	cut := errorLineMax
	for cut > 0 && !utf8.RuneStart(l[cut]) {
		cut--
	}
	return l[:cut] + "..."
}

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
