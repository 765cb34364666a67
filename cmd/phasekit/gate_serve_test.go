package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/phasekit/phasekit/gate"
	"github.com/phasekit/phasekit/verify/pgtest"
)

// syncBuffer is a bytes.Buffer the server's goroutines may write while the
// test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var listening = regexp.MustCompile(`listening on (http://\S+)/gate/contract`)

// TestGateServeCommand starts phasekit gate serve through run() on a free
// port and asks it: 409 while prod bakes, 200 to Flagger's POST once the
// records say it baked, 412 with a v41 session, 404 elsewhere; a stop
// signal ends it with exit 0. Bad flags exit 2 before it listens.
func TestGateServeCommand(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDB(t, "chinook")
	dir := planLiveRename(t, dsn, "backfill")
	pipelineFile := writeFile(t, "pipeline.yaml", "app: checkout\nold: v41\nnew: v42\nstages:\n  - {name: prod, kind: prod, bake: 1h}\n")

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--addr", "8080"}, "want host:port"},
		{[]string{"--plan", dir + "/nope"}, "nope"},
		{[]string{"--pipeline", "nope.yaml"}, "nope.yaml"},
		{[]string{"--pipeline", shipped}, "pass --prometheus URL"},
		{[]string{"--dsn", "postgres://nobody:secret@127.0.0.1:1/db"}, "xxxxx"},
	} {
		args := append([]string{"gate", "serve", "--dsn", dsn, "--addr", "127.0.0.1:0", "--plan", dir, "--pipeline", pipelineFile}, tc.args...)
		code, _, stderr := phasekit(t, args...)
		if code != 2 || !strings.Contains(stderr, tc.want) || strings.Contains(stderr, "secret") {
			t.Errorf("%v: exit %d, want 2 with %q:\n%s", tc.args, code, tc.want, stderr)
		}
	}

	record := func(at time.Duration) {
		t.Helper()
		if code, _, stderr := phasekit(t, "record", "deploy", "--dsn", dsn, "--pipeline", pipelineFile, "--stage", "prod", "--version", "v42", "--at", time.Now().Add(at).Format(time.RFC3339)); code != 0 {
			t.Fatalf("record deploy: exit %d\n%s", code, stderr)
		}
	}
	record(-30 * time.Minute)

	// pgtest.Main stops the cluster on SIGINT and SIGTERM: stop the server
	// with SIGUSR1 instead, through the same code path.
	saved := stopSignals
	stopSignals = []os.Signal{syscall.SIGUSR1}
	t.Cleanup(func() { stopSignals = saved })
	var stdout, stderr syncBuffer
	exited := make(chan int, 1)
	go func() {
		exited <- run([]string{"phasekit", "--dsn", dsn, "gate", "serve", "--addr", "127.0.0.1:0", "--plan", dir, "--pipeline", pipelineFile, "--timeout", "20s"}, &stdout, &stderr)
	}()
	var base string
	deadline := time.Now().Add(time.Minute)
	for base == "" {
		select {
		case code := <-exited:
			t.Fatalf("gate serve exited %d before listening:\n%s", code, stderr.String())
		default:
		}
		if m := listening.FindStringSubmatch(stderr.String()); m != nil {
			base = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("gate serve is not listening after a minute:\n%s", stderr.String())
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}

	ask := func(method, path, body string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", method, path, err, stderr.String())
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, b
	}
	verdict := func(method, body string) (int, gate.Result) {
		t.Helper()
		status, b := ask(method, "/gate/contract", body)
		var r gate.Result
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("%s /gate/contract: %d, not a gate result (%v):\n%s", method, status, err, b)
		}
		return status, r
	}

	if status, r := verdict(http.MethodGet, ""); status != http.StatusConflict || r.Verdict != gate.NotYet || r.TimeLeftSeconds < 25*60 || r.TimeLeftSeconds > 30*60 {
		t.Errorf("30m into a 1h bake: %d %+v", status, r)
	}
	// An earlier v42 record: prod has run v42 for 2h.
	record(-2 * time.Hour)
	flagger := `{"name":"checkout","namespace":"shop","phase":"Progressing","metadata":{}}`
	if status, r := verdict(http.MethodPost, flagger); status != http.StatusOK || r.Verdict != gate.Open || len(r.Checks) != 5 {
		t.Errorf("baked 2h: %d %+v", status, r)
	}
	old := sessionAs(t, dsn, "checkout/v41")
	status, r := verdict(http.MethodPost, flagger)
	if c := r.Check(gate.CheckClients); status != http.StatusPreconditionFailed || r.Verdict != gate.Closed || c == nil || len(c.Sessions) != 1 || c.Sessions[0].ApplicationName != "checkout/v41" {
		t.Errorf("with a v41 session: %d %+v", status, r)
	}
	old.Close(t.Context())
	if status, b := ask(http.MethodGet, "/gate/expand", ""); status != http.StatusNotFound {
		t.Errorf("GET /gate/expand: %d %s", status, b)
	}
	if status, b := ask(http.MethodGet, "/healthz", ""); status != http.StatusOK || !strings.Contains(string(b), `"status": "ok"`) {
		t.Errorf("GET /healthz: %d %s", status, b)
	}

	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-exited:
		if code != 0 || !strings.Contains(stderr.String(), "gate serve: stopped") {
			t.Errorf("after the stop signal: exit %d\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("gate serve still runs 30s after the stop signal:\n%s", stderr.String())
	}
	if stdout.String() != "" {
		t.Errorf("stdout: %q", stdout.String())
	}
}
