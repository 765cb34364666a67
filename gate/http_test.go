package gate_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phasekit/phasekit/gate"
	"github.com/phasekit/phasekit/gate/promtest"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/verify/pgtest"
)

// answer is one HTTP answer of the gate.
type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) result(t *testing.T) gate.Result {
	t.Helper()
	var r gate.Result
	if err := json.Unmarshal(a.body, &r); err != nil {
		t.Fatalf("status %d, body is not a gate result (%v):\n%s", a.status, err, a.body)
	}
	return r
}

func (a answer) error(t *testing.T) string {
	t.Helper()
	var e gate.HTTPError
	if err := json.Unmarshal(a.body, &e); err != nil || e.Error == "" {
		t.Fatalf("status %d, body is not an error (%v):\n%s", a.status, err, a.body)
	}
	return e.Error
}

func request(t *testing.T, method, url, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, b}
}

// flaggerPayload is what Flagger posts to a confirm-promotion webhook.
const flaggerPayload = `{"name":"checkout","namespace":"shop","phase":"Progressing","checksum":"7c9f8d","metadata":{"type":"confirm-promotion"}}`

// TestHTTPGate serves the contract gate on a real TCP listener against a
// real ledger and Prometheus: 409 while a wave bakes, 200 once injected time
// passes (also to Flagger's POST), 412 with a v41 session named in the JSON,
// 412 when the alarm breaches; unknown paths 404, other methods 405; a
// request under way when the server is told to stop is still answered.
func TestHTTPGate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	prom := promtest.Start(t)
	prom.Set("checkout_error_rate", 0)
	dsn := pgtest.NewDB(t, "chinook")
	conn := pgtest.Conn(t, dsn)
	dir, p := planRename(t, dsn)
	pl := fastPipeline(t, true)
	src, err := gate.NewPrometheus(prom.URL)
	if err != nil {
		t.Fatal(err)
	}
	prom.WaitFor(t, "max(checkout_error_rate)", func(float64) bool { return true }, time.Minute)
	applyUntil(t, dsn, dir, phases.Backfill)
	t0 := time.Now().Add(-40 * time.Second)
	deployAll(t, conn, t0)

	var now atomic.Pointer[time.Time]
	at := func(d time.Duration) time.Time {
		tm := t0.Add(d)
		now.Store(&tm)
		return tm
	}
	clock := func() time.Time {
		if tm := now.Load(); tm != nil {
			return *tm
		}
		return time.Now()
	}
	h := gate.NewHandler(gate.HTTPOptions{DSN: dsn, Plan: p, Pipeline: pl, Alarms: src, Now: clock, Timeout: 20 * time.Second,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveCtx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- gate.Serve(serveCtx, ln, h, 20*time.Second) }()
	t.Cleanup(stop)
	base := "http://" + ln.Addr().String()

	// us-east-1 got v42 at t0+20s and bakes 10s: 5s left at t0+25s.
	checkedAt := at(25 * time.Second)
	a := request(t, http.MethodGet, base+gate.ContractPath, "")
	r := a.result(t)
	if a.status != http.StatusConflict || r.Verdict != gate.NotYet || r.TimeLeft != "5s" || !r.Now.Equal(checkedAt) || a.header.Get("X-Phasekit-Verdict") != "not-yet" {
		t.Fatalf("at t0+25s want 409 not-yet with 5s left: %d\n%s", a.status, a.body)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	// The body is gate contract --format json's: the same checks and
	// evidence as the gate evaluated directly at the same time.
	direct, err := gate.Contract(ctx, conn, gate.Options{Plan: p, Pipeline: pl, Alarms: src, Now: checkedAt})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(direct.Checks)
	got, _ := json.Marshal(r.Checks)
	if string(got) != string(want) || r.Plan != p.Hash || r.Gate != "contract" {
		t.Errorf("HTTP checks differ from the gate's:\n got %s\nwant %s", got, want)
	}
	if w := check(t, &r, gate.CheckBake).Waves; len(w) != 2 || w[1].Left != "5s" {
		t.Errorf("bake evidence %+v", w)
	}

	// Time passes: Flagger's POST gets 200, and so do GET and HEAD.
	at(31 * time.Second)
	a = request(t, http.MethodPost, base+gate.ContractPath, flaggerPayload)
	if r = a.result(t); a.status != http.StatusOK || r.Verdict != gate.Open || len(r.Checks) != 5 {
		t.Fatalf("at t0+31s want 200 open: %d\n%s", a.status, a.body)
	}
	if a = request(t, http.MethodGet, base+gate.ContractPath+"?canary=checkout", ""); a.status != http.StatusOK {
		t.Errorf("GET with a query: %d\n%s", a.status, a.body)
	}
	if a = request(t, http.MethodHead, base+gate.ContractPath, ""); a.status != http.StatusOK || len(a.body) != 0 || a.header.Get("X-Phasekit-Verdict") != "open" {
		t.Errorf("HEAD: %d %v %q", a.status, a.header, a.body)
	}

	// A v41 session: 412, with its pid and application_name as evidence.
	_, pid := connectAs(t, dsn, "checkout/v41")
	a = request(t, http.MethodPost, base+gate.ContractPath, flaggerPayload)
	r = a.result(t)
	c := check(t, &r, gate.CheckClients)
	if a.status != http.StatusPreconditionFailed || r.Verdict != gate.Closed || c.Status != gate.Fail || len(c.Sessions) != 1 || c.Sessions[0].PID != pid || c.Sessions[0].ApplicationName != "checkout/v41" {
		t.Fatalf("with a v41 session want 412 naming pid %d: %d\n%s", pid, a.status, a.body)
	}
	if !strings.Contains(strings.Join(c.Evidence, "\n"), `application_name "checkout/v41"`) {
		t.Errorf("old-clients evidence %q", c.Evidence)
	}

	// Paths and methods.
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/", http.StatusNotFound},
		{http.MethodGet, "/gate", http.StatusNotFound},
		{http.MethodGet, "/gate/contract/", http.StatusNotFound},
		{http.MethodPost, "/gate/expand", http.StatusNotFound},
		{http.MethodGet, "/healthz/x", http.StatusNotFound},
		{http.MethodPut, "/gate/contract", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/gate/contract", http.StatusMethodNotAllowed},
		{http.MethodPost, "/healthz", http.StatusMethodNotAllowed},
	} {
		a := request(t, tc.method, base+tc.path, "")
		if a.status != tc.status {
			t.Errorf("%s %s: %d, want %d\n%s", tc.method, tc.path, a.status, tc.status, a.body)
			continue
		}
		msg := a.error(t)
		if tc.status == http.StatusNotFound && !strings.Contains(msg, gate.ContractPath) {
			t.Errorf("%s %s: the 404 does not say where the gate is: %s", tc.method, tc.path, msg)
		}
		if tc.status == http.StatusMethodNotAllowed && a.header.Get("Allow") == "" {
			t.Errorf("%s %s: 405 without Allow", tc.method, tc.path)
		}
	}
	a = request(t, http.MethodGet, base+gate.HealthPath, "")
	var health gate.Health
	if err := json.Unmarshal(a.body, &health); a.status != http.StatusOK || err != nil || health.Status != "ok" || health.Plan != p.Hash {
		t.Errorf("healthz: %d %v\n%s", a.status, err, a.body)
	}

	// The alarm breaches: 412 with the breaching window. At the real time
	// now, where the datapoints are.
	now.Store(nil)
	prom.Set("checkout_error_rate", 12)
	prom.WaitFor(t, "count_over_time((max(checkout_error_rate) > 5)[5s:1s])", func(v float64) bool { return v >= 4 }, time.Minute)
	a = request(t, http.MethodGet, base+gate.ContractPath, "")
	r = a.result(t)
	if al := check(t, &r, gate.CheckAlarms); a.status != http.StatusPreconditionFailed || al.Status != gate.Fail || len(al.Alarms) != 1 || !al.Alarms[0].Breached || len(al.Alarms[0].Window) != 5 {
		t.Fatalf("after the breach want 412 with the alarm's window: %d\n%s", a.status, a.body)
	}

	// Shut down while a request waits for a lock on the ledger: the server
	// stops accepting at once, answers the request once the lock is gone,
	// then returns nil.
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "LOCK TABLE phasekit.deploys IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	inFlight := make(chan answer, 1)
	go func() {
		resp, err := http.Get(base + gate.ContractPath)
		if err != nil {
			inFlight <- answer{status: -1, body: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		inFlight <- answer{resp.StatusCode, resp.Header, b}
	}()
	waitFor(t, "the request to wait for the lock", func() bool {
		var waiting int
		err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'phasekit.deploys'::regclass").Scan(&waiting)
		return err == nil && waiting == 1
	})
	stop()
	waitFor(t, "the listener to close", func() bool {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	select {
	case err := <-served:
		t.Fatalf("Serve returned with a request under way: %v", err)
	case a := <-inFlight:
		t.Fatalf("the request was answered while the lock was held: %d %s", a.status, a.body)
	default:
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if a := <-inFlight; a.status != http.StatusPreconditionFailed || a.result(t).Verdict != gate.Closed {
		t.Errorf("the request under way at shutdown: %d\n%s", a.status, a.body)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve after a graceful shutdown: %v", err)
	}
}

// TestHTTPGateTimeout: a gate that cannot be evaluated within the timeout
// (the ledger is locked) answers 503 with an error, not a verdict; so does
// an unreachable database.
func TestHTTPGateTimeout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDB(t, "chinook")
	conn := pgtest.Conn(t, dsn)
	dir, p := planRename(t, dsn)
	pl := fastPipeline(t, false)
	applyUntil(t, dsn, dir, phases.Backfill)
	deployAll(t, conn, time.Now().Add(-time.Hour))
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := httptest.NewServer(gate.NewHandler(gate.HTTPOptions{DSN: dsn, Plan: p, Pipeline: pl, Timeout: time.Second, Log: quiet}))
	t.Cleanup(srv.Close)

	if a := request(t, http.MethodGet, srv.URL+gate.ContractPath, ""); a.status != http.StatusOK {
		t.Fatalf("unlocked: %d\n%s", a.status, a.body)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "LOCK TABLE phasekit.deploys IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	a := request(t, http.MethodPost, srv.URL+gate.ContractPath, flaggerPayload)
	if msg := a.error(t); a.status != http.StatusServiceUnavailable || !strings.Contains(msg, "not evaluated within 1s") || a.header.Get("X-Phasekit-Verdict") != "" {
		t.Errorf("locked ledger: %d %q", a.status, msg)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the 503 took %s with a 1s timeout", took)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	// One evaluation at a time: while one waits for the lock, the next
	// waits for its slot without a connection of its own.
	one := httptest.NewServer(gate.NewHandler(gate.HTTPOptions{DSN: dsn, Plan: p, Pipeline: pl, Timeout: 20 * time.Second, MaxConcurrent: 1, Log: quiet}))
	t.Cleanup(one.Close)
	tx, err = conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "LOCK TABLE phasekit.deploys IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	answers := make(chan answer, 2)
	for range 2 {
		go func() {
			resp, err := http.Get(one.URL + gate.ContractPath)
			if err != nil {
				answers <- answer{status: -1, body: []byte(err.Error())}
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			answers <- answer{resp.StatusCode, resp.Header, b}
		}()
	}
	// Another session looks: pg_stat_activity holds still within the
	// locking transaction.
	obs := pgtest.Conn(t, dsn)
	var locker int
	if err := tx.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&locker); err != nil {
		t.Fatal(err)
	}
	sessions := func() (waiting, connected int) {
		err := obs.QueryRow(ctx, `SELECT count(*) FILTER (WHERE wait_event_type = 'Lock'), count(*)
			FROM pg_stat_activity WHERE datname = current_database() AND pid NOT IN (pg_backend_pid(), $1) AND backend_type = 'client backend'`, locker).Scan(&waiting, &connected)
		if err != nil {
			t.Fatal(err)
		}
		return waiting, connected
	}
	waitFor(t, "one evaluation to wait for the lock", func() bool { w, _ := sessions(); return w >= 1 })
	// Both requests have had time to arrive; only one may have connected.
	time.Sleep(300 * time.Millisecond)
	if w, c := sessions(); w != 1 || c != 1 {
		t.Errorf("with --max-concurrent 1: %d session(s) waiting for the lock, %d connected", w, c)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if a := <-answers; a.status != http.StatusOK {
			t.Errorf("queued request: %d\n%s", a.status, a.body)
		}
	}

	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/nosuchdb"
	down := httptest.NewServer(gate.NewHandler(gate.HTTPOptions{DSN: u.String(), Plan: p, Pipeline: pl, Timeout: time.Second, Log: quiet}))
	t.Cleanup(down.Close)
	a = request(t, http.MethodGet, down.URL+gate.ContractPath, "")
	if msg := a.error(t); a.status != http.StatusServiceUnavailable || !strings.Contains(msg, "nosuchdb") {
		t.Errorf("no database: %d %q", a.status, msg)
	}
}

// waitFor polls cond until it holds, for up to 30s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
