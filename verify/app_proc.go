package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"
)

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
