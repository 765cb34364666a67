package gate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/phasekit/phasekit/internal/dbconn"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/pipeline"
)

// Paths the HTTP gate answers; any other is 404.
const (
	ContractPath = "/gate/contract"
	HealthPath   = "/healthz"
)

// DefaultHTTPTimeout bounds one evaluation of the gate over HTTP: below
// Flagger's default webhook timeout of 10s, so that the caller gets our
// answer rather than its own timeout.
const DefaultHTTPTimeout = 8 * time.Second

// DefaultMaxConcurrent is how many evaluations run at once by default; each
// opens a connection to the database, which a caller retrying in a loop must
// not be able to exhaust.
const DefaultMaxConcurrent = 4

// HTTPOptions configure the HTTP gate.
type HTTPOptions struct {
	// DSN is the database the plan runs on; each request connects afresh.
	DSN      string
	Plan     *phases.Plan
	Pipeline *pipeline.Pipeline
	// Alarms evaluates the pipeline's alarms; nil only when it has none.
	Alarms AlarmSource
	// Timeout bounds one request's evaluation (connect, checks, Prometheus);
	// zero means DefaultHTTPTimeout.
	Timeout time.Duration
	// MaxConcurrent evaluations at once; a request over it waits for a slot
	// within its timeout. Zero means DefaultMaxConcurrent.
	MaxConcurrent int
	// Now gives the time to check at; nil means time.Now. Tests inject a
	// clock to let bakes pass.
	Now func() time.Time
	// Log receives one line per request; nil means slog.Default().
	Log *slog.Logger
}

// HTTPStatus is the status the HTTP gate answers a verdict with: 200 open,
// 409 not yet (try again later), 412 closed (a precondition failed).
func HTTPStatus(v Verdict) int {
	switch v {
	case Open:
		return http.StatusOK
	case NotYet:
		return http.StatusConflict
	}
	return http.StatusPreconditionFailed
}

// HTTPError is the body of an answer that carries no verdict.
type HTTPError struct {
	Gate  string `json:"gate,omitempty"`
	Error string `json:"error"`
}

// Health is the body of /healthz: the process is up and serving this plan.
type Health struct {
	Status   string `json:"status"` // "ok"
	Plan     string `json:"plan"`
	Pipeline string `json:"pipeline"`
}

type httpGate struct {
	o   HTTPOptions
	sem chan struct{}
}

// NewHandler answers the contract gate over HTTP. GET, HEAD or POST
// /gate/contract evaluates the gate afresh (a POST's body, such as Flagger's
// webhook payload, is read and ignored) and answers HTTPStatus(verdict) with
// the Result as JSON, the same as gate contract --format json; 503 with an
// HTTPError when the gate could not be evaluated in time or at all. GET
// /healthz answers 200 without touching the database. Other paths are 404,
// other methods 405.
func NewHandler(o HTTPOptions) http.Handler {
	if o.Timeout <= 0 {
		o.Timeout = DefaultHTTPTimeout
	}
	if o.MaxConcurrent <= 0 {
		o.MaxConcurrent = DefaultMaxConcurrent
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return &httpGate{o: o, sem: make(chan struct{}, o.MaxConcurrent)}
}

func (g *httpGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w}
	attrs := []any{"method", r.Method, "path", r.URL.Path}
	verdict := g.route(rec, r)
	attrs = append(attrs, "status", rec.status)
	if verdict != "" {
		attrs = append(attrs, "verdict", verdict)
	}
	g.o.Log.Info("gate serve", append(attrs, "remote", r.RemoteAddr, "elapsed", time.Since(start).Round(time.Millisecond))...)
}

// route answers r and returns the verdict, if any, for the log.
func (g *httpGate) route(w http.ResponseWriter, r *http.Request) Verdict {
	switch r.URL.Path {
	case ContractPath:
		if !allow(w, r, http.MethodGet, http.MethodHead, http.MethodPost) {
			return ""
		}
		return g.contract(w, r)
	case HealthPath:
		if !allow(w, r, http.MethodGet, http.MethodHead) {
			return ""
		}
		writeJSON(w, http.StatusOK, Health{Status: "ok", Plan: g.o.Plan.Hash, Pipeline: g.o.Pipeline.File})
		return ""
	}
	writeJSON(w, http.StatusNotFound, HTTPError{Error: fmt.Sprintf("no such path %q: the contract gate is at %s, health at %s", r.URL.Path, ContractPath, HealthPath)})
	return ""
}

func (g *httpGate) contract(w http.ResponseWriter, r *http.Request) Verdict {
	// Flagger posts its canary's name, namespace and phase: the gate does
	// not depend on them. Reading the body lets the connection be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
	ctx, cancel := context.WithTimeout(r.Context(), g.o.Timeout)
	defer cancel()
	fail := func(err error) {
		writeJSON(w, http.StatusServiceUnavailable, HTTPError{Gate: "contract", Error: dbconn.Redact(err.Error())})
	}
	select {
	case g.sem <- struct{}{}:
		defer func() { <-g.sem }()
	case <-ctx.Done():
		fail(fmt.Errorf("the gate was not evaluated within %s: %d other evaluation(s) held every slot", g.o.Timeout, g.o.MaxConcurrent))
		return ""
	}
	res, err := g.evaluate(ctx)
	if ctx.Err() != nil {
		// A check cut short by the deadline may read as failed: no verdict.
		fail(fmt.Errorf("the gate was not evaluated within %s: %w", g.o.Timeout, context.Cause(ctx)))
		return ""
	}
	if err != nil {
		fail(err)
		return ""
	}
	w.Header().Set("X-Phasekit-Verdict", string(res.Verdict))
	writeJSON(w, HTTPStatus(res.Verdict), res)
	return res.Verdict
}

func (g *httpGate) evaluate(ctx context.Context) (*Result, error) {
	conn, err := dbconn.Connect(ctx, g.o.DSN)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	return Contract(ctx, conn, Options{Plan: g.o.Plan, Pipeline: g.o.Pipeline, Alarms: g.o.Alarms, Now: g.o.Now()})
}

// allow answers 405 unless r's method is one of methods.
func allow(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	list := strings.Join(methods, ", ")
	w.Header().Set("Allow", list)
	writeJSON(w, http.StatusMethodNotAllowed, HTTPError{Error: fmt.Sprintf("method %s: %s answers %s", r.Method, r.URL.Path, list)})
	return false
}

// writeJSON writes v indented, as gate contract --format json does.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(HTTPError{Error: err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// Serve answers h on ln until ctx is done, then shuts down gracefully: it
// stops accepting connections and lets the requests under way finish
// (timeout bounds each, so within timeout plus a margin). It returns nil
// after a graceful shutdown.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = DefaultHTTPTimeout
	}
	const margin = 5 * time.Second
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: margin,
		ReadTimeout:       margin + timeout,
		WriteTimeout:      margin + timeout,
		IdleTimeout:       time.Minute,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("gate serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), margin+timeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("gate serve on %s: shutdown: %w", ln.Addr(), err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("gate serve on %s: %w", ln.Addr(), err)
	}
	return nil
}
