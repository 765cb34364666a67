package fleet

import (
	"bytes"
	"io"
	"sync"
)

// lines writes whole lines to a writer shared by targets running at once,
// so that their lines never interleave mid-line. The events and the
// targets' details share one mutex: they may go to the same writer.
type lines struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lines) line(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = io.WriteString(l.w, s+"\n")
}

// prefixed is one target's writer: it cuts what it gets into lines and
// writes each with the target's prefix. A nil l drops everything.
type prefixed struct {
	mu     sync.Mutex
	l      *lines
	prefix string
	buf    []byte
}

func (p *prefixed) Write(b []byte) (int, error) {
	if p.l == nil {
		return len(b), nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexAny(p.buf, "\n\r")
		if i < 0 {
			break
		}
		if i > 0 {
			p.l.line(p.prefix + string(p.buf[:i]))
		}
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

// Flush writes a last line that had no newline.
func (p *prefixed) Flush() {
	if p.l == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.buf) > 0 {
		p.l.line(p.prefix + string(p.buf))
		p.buf = nil
	}
}
