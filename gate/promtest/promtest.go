// Package promtest starts a real Prometheus (the prometheus binary, Debian's
// package) for a test, scraping every second an exporter inside the test
// whose gauges the test sets: the test makes an alarm breach by setting a
// gauge. Without the binary the test is skipped, unless CI=true (then it
// fails).
package promtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/phasekit/phasekit/internal/testkit"
)

// ScrapeInterval is how often the test's Prometheus scrapes the exporter.
const ScrapeInterval = time.Second

// Server is a running Prometheus and the exporter it scrapes.
type Server struct {
	// URL is Prometheus's address, http://127.0.0.1:PORT.
	URL string
	api v1.API

	mu     sync.Mutex
	gauges map[string]float64
}

// Start starts Prometheus for the test and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		testkit.SkipOrFail(t, "promtest: prometheus is not installed: run make setup (apt-get install prometheus)")
	}
	s := &Server{gauges: map[string]float64{}}
	exporter := httptest.NewServer(http.HandlerFunc(s.serveMetrics))
	t.Cleanup(exporter.Close)

	dir := t.TempDir()
	config := filepath.Join(dir, "prometheus.yml")
	body := fmt.Sprintf(`global:
  scrape_interval: %s
  evaluation_interval: %s
scrape_configs:
  - job_name: phasekit-test
    static_configs:
      - targets: ['%s']
`, ScrapeInterval, ScrapeInterval, exporter.Listener.Addr())
	if err := os.WriteFile(config, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	// The free port may be taken between choosing it and Prometheus binding it.
	for attempt := 0; attempt < 3; attempt++ {
		if lastErr = s.start(t, bin, config, filepath.Join(dir, fmt.Sprintf("data%d", attempt))); lastErr == nil {
			return s
		}
	}
	t.Fatalf("promtest: %v", lastErr)
	return nil
}

func (s *Server) start(t testing.TB, bin, config, data string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	var logs bytes.Buffer
	cmd := exec.Command(bin, "--config.file="+config, "--storage.tsdb.path="+data, "--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start prometheus: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	s.URL = "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			return fmt.Errorf("prometheus exited at start: %s", logs.String())
		default:
		}
		if resp, err := http.Get(s.URL + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("prometheus not ready after 30s: %s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Cleanup(stop)
	c, err := api.NewClient(api.Config{Address: s.URL})
	if err != nil {
		stop()
		return err
	}
	s.api = v1.NewAPI(c)
	return nil
}

// Set sets a gauge the exporter serves from now on.
func (s *Server) Set(name string, v float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gauges[name] = v
}

func (s *Server) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.gauges))
	for n := range s.gauges {
		names = append(names, n)
	}
	sort.Strings(names)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	for _, n := range names {
		fmt.Fprintf(w, "# TYPE %s gauge\n%s %s\n", n, n, strconv.FormatFloat(s.gauges[n], 'g', -1, 64))
	}
}

// WaitFor waits until the instant query gives a value for which ok is true,
// and returns when (the sample's time); it fails the test after timeout.
func (s *Server) WaitFor(t testing.TB, query string, ok func(float64) bool, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		val, _, _, err := s.api.Query(context.Background(), query, time.Now())
		if err == nil {
			if vec, isVec := val.(model.Vector); isVec && len(vec) > 0 && ok(float64(vec[0].Value)) {
				return vec[0].Timestamp.Time()
			}
			last = val.String()
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("promtest: %s did not reach the wanted value within %s (last: %s)", query, timeout, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
