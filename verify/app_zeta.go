package verify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/phasekit/phasekit/internal/dbconn"
)

// ZetaOptions configure RunZeta: one frontend against one backend.
type ZetaOptions struct {
	// Backend and Frontend are shell commands (sh -c), each run in its own
	// process group with the database in its environment as for a
	// CommandApp. The backend also gets PORT and BACKEND_ADDR
	// (127.0.0.1:PORT) to listen on; the frontend gets BACKEND_URL
	// (http://127.0.0.1:PORT) and PORT.
	Backend, Frontend string
	// Ready is how to tell the backend is up: an http(s) URL that must
	// answer 2xx, or host:port to dial, with {port} replaced by PORT; ""
	// dials 127.0.0.1:PORT.
	Ready string
	// ReadyTimeout bounds the wait for Ready (default 30 s).
	ReadyTimeout time.Duration
	// Timeout bounds the frontend's run; zero means only ctx does.
	Timeout time.Duration
	// StopGrace is how long the backend has to exit after SIGTERM before
	// it is killed (default 5 s).
	StopGrace time.Duration
}

// ZetaResult is how one frontend/backend pairing went.
type ZetaResult struct {
	// Passed is true when the frontend exited 0.
	Passed bool
	// Error says why not, in one line.
	Error string
	// FrontendLog and BackendLog are the commands' combined stdout and
	// stderr, truncated and with passwords redacted.
	FrontendLog, BackendLog string
	Duration                time.Duration
}

// Zeta defaults.
const (
	DefaultReadyTimeout = 30 * time.Second
	DefaultStopGrace    = 5 * time.Second
)

// RunZeta starts the backend on a free port on 127.0.0.1 against the
// database at dsn, waits until it is ready, runs the frontend against it,
// then stops the backend (SIGTERM to its process group, SIGKILL after
// StopGrace) and reaps it, whatever happened. The pairing passes if the
// frontend exits 0.
func RunZeta(ctx context.Context, dsn string, o ZetaOptions) (res ZetaResult) {
	start := time.Now()
	defer func() { res.Duration = time.Since(start) }()
	if strings.TrimSpace(o.Backend) == "" || strings.TrimSpace(o.Frontend) == "" {
		return ZetaResult{Error: "zeta check: both a backend and a frontend command are needed"}
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = DefaultReadyTimeout
	}
	if o.StopGrace <= 0 {
		o.StopGrace = DefaultStopGrace
	}
	vars, secret, err := dbconn.Env(dsn)
	if err != nil {
		return ZetaResult{Error: err.Error()}
	}
	// Another process could take the port before the backend does; the
	// backend then fails to start and says so in its log.
	port, err := freePort()
	if err != nil {
		return ZetaResult{Error: "zeta check: " + err.Error()}
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	check, err := parseReady(o.Ready, addr, port)
	if err != nil {
		return ZetaResult{Error: err.Error()}
	}
	vars = append(vars, "PORT="+strconv.Itoa(port))

	backend, err := startProc(o.Backend, "", dbconn.ChildEnv(append(vars, "BACKEND_ADDR="+addr)...))
	if err != nil {
		return ZetaResult{Error: "backend: " + err.Error()}
	}
	defer func() {
		backend.stop(o.StopGrace)
		res.BackendLog = dbconn.RedactOutput(backend.out.String(), secret)
		res.Error = dbconn.RedactOutput(res.Error, secret)
	}()

	if err := waitReady(ctx, check, backend, o.ReadyTimeout); err != nil {
		return ZetaResult{Error: err.Error()}
	}

	fe := runCommand(ctx, o.Frontend, "", dbconn.ChildEnv(append(vars, "BACKEND_URL=http://"+addr)...), o.Timeout)
	res = ZetaResult{Passed: fe.passed, FrontendLog: dbconn.RedactOutput(fe.output, secret)}
	if !fe.passed {
		res.Error = "frontend: " + fe.errorLine()
		if backend.exited() {
			res.Error += " (the backend had exited: " + backend.exitText() + ")"
		}
	}
	return res
}

// readyCheck is one attempt at telling whether the backend is up.
type readyCheck struct {
	what  string // for messages: the URL or address
	probe func(ctx context.Context) error
}

func parseReady(ready, addr string, port int) (readyCheck, error) {
	target := strings.ReplaceAll(strings.TrimSpace(ready), "{port}", strconv.Itoa(port))
	if target == "" {
		target = addr
	}
	if strings.HasPrefix(target, "http://") || strings.HasPrefix(target, "https://") {
		req, err := http.NewRequest(http.MethodGet, target, nil)
		if err != nil {
			return readyCheck{}, fmt.Errorf("zeta check: ready URL %q: %w", target, err)
		}
		// A local backend is never behind a proxy.
		client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
		return readyCheck{what: target, probe: func(ctx context.Context) error {
			resp, err := client.Do(req.WithContext(ctx))
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode < 200 || resp.StatusCode > 299 {
				return errors.New(resp.Status)
			}
			return nil
		}}, nil
	}
	if _, _, err := net.SplitHostPort(target); err != nil {
		return readyCheck{}, fmt.Errorf("zeta check: ready check %q: want an http(s) URL or host:port", ready)
	}
	return readyCheck{what: target, probe: func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", target)
		if err != nil {
			return err
		}
		return c.Close()
	}}, nil
}

// waitReady polls check until it succeeds, the backend exits, timeout
// passes or ctx ends.
func waitReady(ctx context.Context, check readyCheck, backend *proc, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		last = check.probe(pctx)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-backend.done:
			msg := "backend exited before it was ready (" + backend.exitText() + ")"
			backend.finish() // its last words
			if l := lastErrorLine(backend.stderr.String()); l != "" {
				msg += ": " + l
			}
			return errors.New(msg)
		case <-deadline.C:
			return fmt.Errorf("backend not ready after %v: %s: %v", timeout, check.what, last)
		case <-ctx.Done():
			return fmt.Errorf("waiting for the backend: %w", ctx.Err())
		case <-tick.C:
		}
	}
}
