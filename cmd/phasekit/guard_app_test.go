package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/phasekit/phasekit/gate/promtest"
	"github.com/phasekit/phasekit/verify/pgtest"
)

// TestGuardReadsTheAppsLatency: apply --app-latency-query on a real
// Prometheus and PostgreSQL. A query Prometheus refuses is bad input (exit
// 2, nothing touched); a good one is read before the backfill (the probe's
// headroom and the app's baseline, the median of its past minute, come
// from it) and during it: when the app's p99 goes from 2 to 10-20 ms while
// the backfill runs, the guard cuts the backfill, and the ledger and status
// say so.
func TestGuardReadsTheAppsLatency(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	prom := promtest.Start(t)
	prom.Set("app_p99_seconds", 0.002)
	dsn := pgtest.NewDB(t, "")
	conn := pgtest.Conn(t, dsn)
	if _, err := conn.Exec(ctx, `CREATE TABLE big (id bigint PRIMARY KEY, val int NOT NULL);
		INSERT INTO big SELECT i, i % 1000 FROM generate_series(1, 150000) i; ANALYZE big`); err != nil {
		t.Fatal(err)
	}
	plan := filepath.Join(t.TempDir(), "plan")
	if code, _, stderr := phasekit(t, "--dsn", dsn, "plan", "--out", plan, writeFile(t, "m.sql", "ALTER TABLE big ALTER COLUMN val TYPE bigint;\n")); code != 0 {
		t.Fatalf("plan: exit %d\n%s", code, stderr)
	}
	prom.WaitFor(t, "max(app_p99_seconds)", func(v float64) bool { return v == 0.002 }, time.Minute)

	apply := func(query string, more ...string) (int, string, string) {
		args := append([]string{"--dsn", dsn, "apply", "--plan", plan, "--until", "backfill", "--prometheus", prom.URL,
			"--app-latency-query", query, "--app-latency-every", "200ms", "--app-latency-lag", "1h", "--app-latency-baseline", "1m",
			"--probe-baseline", "2s", "--max-rows-per-second", "30000"}, more...)
		return phasekit(t, args...)
	}
	before := tableCount(t, dsn)
	if code, _, stderr := apply("histogram_quantile(0.99,"); code != 2 || !strings.Contains(stderr, "--app-latency-query") || !strings.Contains(stderr, "parse error") {
		t.Fatalf("malformed query: exit %d, want 2 naming the flag and Prometheus's parse error:\n%s", code, stderr)
	}
	if after := tableCount(t, dsn); after != before {
		t.Fatalf("malformed query: %d tables before, %d after", before, after)
	}

	// A query with no value (no such series) stops apply before the first
	// batch, naming the query.
	if code, _, stderr := apply("max(no_such_metric_seconds)"); code == 0 || !strings.Contains(stderr, "query max(no_such_metric_seconds): no value over the last 1m0s") || !strings.Contains(stderr, "without --app-latency-query the guard runs on its probe alone") {
		t.Fatalf("query without a value: exit %d, want a failure naming it:\n%s", code, stderr)
	}
	var walked int64
	if err := conn.QueryRow(ctx, "SELECT coalesce(sum(rows), 0) FROM phasekit.backfills").Scan(&walked); err != nil || walked != 0 {
		t.Fatalf("after the refused start: %d rows walked (%v), want 0", walked, err)
	}

	// The app is slow (10 ms) at the moment the backfill starts, after a
	// history at 2 ms: its baseline is the median of that history, not the
	// moment. It slows down to 20 ms once the backfill has run a batch, and
	// recovers once the guard has cut the backfill.
	prom.Set("app_p99_seconds", 0.01)
	prom.WaitFor(t, "max(app_p99_seconds)", func(v float64) bool { return v == 0.01 }, time.Minute)
	watch := pgtest.Conn(t, dsn)
	waitFor := func(cond string) bool {
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			var ok bool
			if err := watch.QueryRow(ctx, "SELECT EXISTS (SELECT FROM phasekit.backfills WHERE "+cond+")").Scan(&ok); err == nil && ok {
				return true
			}
		}
		return false
	}
	go func() {
		if waitFor("guard IS NOT NULL") {
			prom.Set("app_p99_seconds", 0.02)
			if waitFor("(guard->'app'->>'cuts')::int > 0") {
				time.Sleep(1500 * time.Millisecond) // a scrape and a reading of 20 ms
				prom.Set("app_p99_seconds", 0.002)
			}
		}
	}()
	code, _, stderr := apply("max(app_p99_seconds)")
	if code != 0 {
		t.Fatalf("apply: exit %d\n%s", code, stderr)
	}
	for _, want := range []string{
		"(its baseline plus 1 times the app's p99 of 2ms, read from --app-latency-query)",
		"guard: the app's own p99 before the backfill is 2ms (the median of its readings over the last 1m0s); the backfill slows down whenever it reads above 3.2ms",
		"(limit 3.2ms, baseline 2ms); 1 cut(s) on it",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("progress lacks %q:\n%s", want, stderr)
		}
	}
	var app struct {
		Baseline float64 `json:"baseline_p99_ms"`
		Peak     float64 `json:"peak_p99_ms"`
		Cuts     int     `json:"cuts"`
		Readings int     `json:"readings"`
	}
	var raw []byte
	if err := conn.QueryRow(ctx, "SELECT guard->'app' FROM phasekit.backfills").Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &app); err != nil || app.Baseline != 2 || app.Peak < 10 || app.Cuts != 1 || app.Readings < 2 {
		t.Fatalf("ledger guard.app %s (%v): want baseline 2, a peak of 10 or more, 1 cut, readings", raw, err)
	}
	if code, stdout, _ := phasekit(t, "--dsn", dsn, "status", "--plan", plan); code != 0 || !strings.Contains(stdout, "limit 3.20, baseline 2.00), 1 cut(s) on it") {
		t.Errorf("status: exit %d\n%s", code, stdout)
	}
}
