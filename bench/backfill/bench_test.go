package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseLogLine(t *testing.T) {
	tests := []struct {
		line    string
		end     time.Time
		latency time.Duration
		failed  bool
		bad     bool
	}{
		{line: "0 1 11501 0 1795550511 771974", end: time.Unix(1795550511, 771974000), latency: 11501 * time.Microsecond},
		// -R adds the schedule lag; --max-tries other than 1 adds retries.
		{line: "3 17 2500 0 1795550512 5 120 0", end: time.Unix(1795550512, 5000), latency: 2500 * time.Microsecond},
		{line: "1 2 failed 0 1795550511 1 0", end: time.Unix(1795550511, 1000), failed: true},
		{line: "1 2 deadlock 0 1795550511 1", end: time.Unix(1795550511, 1000), failed: true},
		{line: "1 2 3", bad: true},
		{line: "1 2 x 0 1795550511 1", bad: true},
	}
	for _, tc := range tests {
		r, err := parseLogLine(tc.line)
		if tc.bad {
			if err == nil {
				t.Errorf("%q: want an error", tc.line)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.line, err)
			continue
		}
		if !r.end.Equal(tc.end) || r.latency != tc.latency || r.failed != tc.failed {
			t.Errorf("%q: got end %v latency %v failed %v", tc.line, r.end, r.latency, r.failed)
		}
	}
}

func TestSummarizeWindow(t *testing.T) {
	base := time.Unix(1000, 0)
	at := func(client, endMs, latMs int, failed bool) txRecord {
		return txRecord{client: client, end: base.Add(time.Duration(endMs) * time.Millisecond), latency: time.Duration(latMs) * time.Millisecond, failed: failed}
	}
	recs := []txRecord{
		at(0, 100, 1, false),     // due before the window: out
		at(0, 1500, 600, false),  // due before the window, ended inside: out
		at(0, 2000, 2, false),    // in
		at(1, 2500, 3, true),     // failed inside: counted
		at(1, 9000, 6000, false), // due inside, ended after: in
		at(1, 9500, 1, false),    // due after: out, and client 1 caught up
		at(0, 500, 0, true),      // failed before the window: out
	}
	s := summarize(recs, base.Add(time.Second), base.Add(4*time.Second), 3)
	if s.Tx != 2 || s.Failed != 1 || s.Max != 6*time.Second || s.P50 != 2*time.Millisecond || s.Seconds != 3 {
		t.Errorf("got %+v", s)
	}
	// Client 0 logged nothing due after the window, client 2 nothing at all.
	if s.Behind != 2 {
		t.Errorf("behind: got %d, want 2", s.Behind)
	}
}

func TestSplitByVacuum(t *testing.T) {
	base := time.Unix(1000, 0)
	at := func(dueMs, latMs int, failed bool) txRecord {
		return txRecord{end: base.Add(time.Duration(dueMs+latMs) * time.Millisecond), latency: time.Duration(latMs) * time.Millisecond, failed: failed}
	}
	// Autovacuum at work over [2s, 3s) and [5s, 5.5s) of a [1s, 6s] window.
	spans := []span{{base.Add(2 * time.Second), base.Add(3 * time.Second)}, {base.Add(5 * time.Second), base.Add(5500 * time.Millisecond)}}
	recs := []txRecord{
		at(500, 90, false),   // due before the window: neither
		at(1500, 1, false),   // otherwise
		at(1999, 2, false),   // otherwise: due just before the first span
		at(2000, 40, false),  // during: due as it began
		at(2900, 200, false), // during: ended after it, due inside
		at(3000, 3, false),   // otherwise: due as it ended
		at(5200, 50, true),   // failed: neither
		at(5400, 30, false),  // during the second span
		at(6500, 99, false),  // due after the window: neither
	}
	in, out := splitBy(recs, base.Add(time.Second), base.Add(6*time.Second), spans)
	if in.Tx != 3 || in.P99 != 200*time.Millisecond {
		t.Errorf("during: got %+v, want 3 tx, p99 200ms", in)
	}
	if out.Tx != 3 || out.P99 != 3*time.Millisecond {
		t.Errorf("otherwise: got %+v, want 3 tx, p99 3ms", out)
	}
	if got := total(spans); got != 1500*time.Millisecond {
		t.Errorf("total: got %v, want 1.5s", got)
	}
}

// TestPrintVacuum: the autovacuum table lists the runs that met autovacuum,
// named and ordered as in the main table, and says so when none did.
func TestPrintVacuum(t *testing.T) {
	base := time.Unix(1000, 0)
	met := outcome{window: 10 * time.Second, app: appStats{P99: 4 * time.Millisecond},
		waits:        waits{vacuum: []span{{base, base.Add(2 * time.Second)}}},
		duringVacuum: splitStats{Tx: 80, P99: 9 * time.Millisecond}, outsideVacuum: splitStats{Tx: 320, P99: 3 * time.Millisecond}}
	r := newResults(2_000_000)
	r.series["baseline"] = []outcome{{window: 10 * time.Second}}
	r.series[defaults.key] = []outcome{{window: 10 * time.Second}, met}
	r.series["guard2"] = []outcome{met}
	var b strings.Builder
	printVacuum(&b, config{reps: 2}, r)
	want := "| phasekit, defaults (guard 1.5x) #2 | 2.0 | 20% | 80 | 9.00 | 320 | 3.00 | 4.00 |\n| guard 2x | 2.0 | 20% |"
	if got := b.String(); !strings.Contains(got, want) || strings.Contains(got, "#1") {
		t.Errorf("got:\n%s\nwant the two runs that met autovacuum, in order:\n%s", got, want)
	}
	b.Reset()
	printVacuum(&b, config{reps: 1}, newResults(1000))
	if got := b.String(); !strings.Contains(got, "not seen") {
		t.Errorf("no run met autovacuum: got %q", got)
	}
}

func TestPercentile(t *testing.T) {
	var lat []time.Duration
	for i := 1; i <= 200; i++ {
		lat = append(lat, time.Duration(i))
	}
	if got := percentile(lat, 0.99); got != 198 {
		t.Errorf("p99 of 1..200 = %d, want 198", got)
	}
	if got := percentile(lat, 0.50); got != 100 {
		t.Errorf("p50 of 1..200 = %d, want 100", got)
	}
	if got := percentile(lat[:1], 0.99); got != 1 {
		t.Errorf("p99 of one value = %d, want 1", got)
	}
}

func TestTargets(t *testing.T) {
	p99 := func(ms int) outcome {
		return outcome{app: appStats{Tx: 100, P99: time.Duration(ms) * time.Millisecond}}
	}
	pk := func(ms int, rate int64) outcome {
		o := p99(ms)
		o.rows, o.took = rate, time.Second
		return o
	}
	r := newResults(2_000_000)
	// Medians: baseline 10 ms; defaults 14 ms at 90,000 rows/s; guard off
	// at 150,000 rows/s.
	r.series["baseline"] = []outcome{p99(9), p99(50), p99(10)}
	r.series[defaults.key] = []outcome{pk(14, 90_000), pk(400, 95_000), pk(11, 80_000)}
	r.series[unguarded.key] = []outcome{pk(30, 150_000), pk(30, 140_000), pk(30, 200_000)}
	got := targets(r)
	if len(got) != 4 || !got[0].pass || !got[1].pass || got[2].pass || !got[3].pass {
		t.Fatalf("got %+v", got)
	}
	if !strings.Contains(got[0].measured, "1.40x") || !strings.Contains(got[2].measured, "150,000") {
		t.Errorf("measured: %q, %q", got[0].measured, got[2].measured)
	}
	// A median p99 just over 1.5x, a median rate under pgroll's and one
	// failed transaction in any run, the sweep's included, fail.
	r.series[defaults.key][0].app.P99 = 15*time.Millisecond + time.Microsecond
	r.series[defaults.key][2].app.P99 = 16 * time.Millisecond
	r.series[defaults.key][0].rows = 80_000
	r.series["guard2"] = []outcome{{app: appStats{Failed: 1}}}
	if got := targets(r); got[0].pass || got[1].pass || got[3].pass {
		t.Errorf("want the p99, rate and failure targets to fail: %+v", got)
	}
}

func TestTradeoffSVG(t *testing.T) {
	r := newResults(2_000_000)
	r.series["baseline"] = []outcome{{app: appStats{Tx: 100, P99: 2 * time.Millisecond}}}
	r.series["naive"] = []outcome{{rows: 2_000_000, took: 8 * time.Second, app: appStats{Tx: 100, P99: 40 * time.Millisecond}}}
	r.series[defaults.key] = []outcome{{rows: 2_000_000, took: 20 * time.Second, app: appStats{Tx: 100, P99: 3 * time.Millisecond}}}
	svg := tradeoffSVG(r)
	for _, want := range []string{"<svg", "defaults (guard 1.5x) (100,000, 3.00 ms)", "naive UPDATE (250,000, 40.00 ms)", "baseline p99 2.00 ms", "pgroll 86,906 rows/s", "</svg>"} {
		if !strings.Contains(svg, want) {
			t.Errorf("svg lacks %q", want)
		}
	}
	if strings.Contains(svg, "NaN") || strings.Contains(svg, "Inf") {
		t.Errorf("svg has a NaN or Inf coordinate:\n%s", svg)
	}
}

func TestMedianOf(t *testing.T) {
	runs := []outcome{
		{rows: 100, took: time.Second, window: time.Second, wal: 30, app: appStats{Tx: 5, P99: 3, Failed: 1}},
		{rows: 300, took: time.Second, window: time.Second, wal: 10, app: appStats{Tx: 9, P99: 1}},
		{rows: 200, took: time.Second, window: time.Second, wal: 20, app: appStats{Tx: 7, P99: 2, Failed: 2}},
	}
	m := medianOf(runs)
	if m.rate != 200 || m.walRate != 20 || m.p99 != 2 || m.tx != 7 || m.failed != 3 {
		t.Errorf("got %+v", m)
	}
	// An even count takes the lower middle.
	if m := medianOf(runs[:2]); m.rate != 100 || m.p99 != 1 {
		t.Errorf("two runs: got %+v", m)
	}
	if m := medianOf(nil); m != (medians{}) {
		t.Errorf("no runs: got %+v", m)
	}
}

func TestThousands(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567.4: "1,234,567", 10_000_000: "10,000,000"} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestWriteLikeWAL(t *testing.T) {
	file := filepath.Join(t.TempDir(), "wal.dat")
	// 1 MB/s in 10 ms periods for 200 ms: 20 chunks of 10,000 bytes.
	n, err := writeLikeWAL(context.Background(), file, 1e6, 10*time.Millisecond, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if n != 200_000 {
		t.Errorf("wrote %d bytes, want 200000", n)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != n {
		t.Errorf("file holds %d bytes, want %d", fi.Size(), n)
	}
	if _, err := writeLikeWAL(context.Background(), file, 0, time.Millisecond, time.Second); err == nil {
		t.Error("a zero rate must be refused")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := writeLikeWAL(ctx, file, 1e6, 10*time.Millisecond, time.Second); err == nil {
		t.Error("a cancelled context must stop the writer")
	}
}

func TestOnlyFlagRefusals(t *testing.T) {
	for _, tc := range []struct{ arg, want string }{
		{"cap,nope", `no variant "nope"`},
		{"cap_control", "cap_control is the I/O control of cap, which must come before it"},
		{"cap_control,cap", "must come before it"},
	} {
		var out, errOut strings.Builder
		if code := realMain([]string{"-only", tc.arg}, &out, &errOut); code != 2 {
			t.Errorf("-only %s: exit %d, want 2 (stderr %q)", tc.arg, code, errOut.String())
		}
		if !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("-only %s: stderr %q, want it to say %q", tc.arg, errOut.String(), tc.want)
		}
	}
	if _, ok := variantByKey("cap1ms"); !ok {
		t.Error("cap1ms is not a variant")
	}
}

// appLatency reads pgbench's logs as they grow: only complete lines, only
// transactions that ended within its window, failed ones left out.
func TestAppLatencyReadsGrowingLogs(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "tx.123")
	now := time.Now()
	line := func(client int, us int64, ago time.Duration) string {
		end := now.Add(-ago)
		return fmt.Sprintf("%d 1 %d 0 %d %d 0\n", client, us, end.Unix(), end.Nanosecond()/1000)
	}
	write := func(s string) {
		f, err := os.OpenFile(log, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	a := newAppLatency(dir, 10*time.Second, 30*time.Second)
	if _, err := a.P99(context.Background()); err == nil {
		t.Fatal("no log yet: want an error, not a p99")
	}
	// An old transaction outside the window, a failed one, and a line cut
	// in the middle, as a stdio buffer leaves it.
	write(line(0, 90000, time.Minute) + line(1, 2000, time.Second) + "2 1 failed 0 1 1 0\n" + "3 1 5000 0 ")
	if got, err := a.P99(context.Background()); err != nil || got != 2*time.Millisecond {
		t.Fatalf("p99 %s, %v; want 2ms (the old, failed and partial lines left out)", got, err)
	}
	// The rest of the cut line arrives: it counts.
	end := now.Add(-time.Second)
	write(fmt.Sprintf("%d %d 0\n", end.Unix(), end.Nanosecond()/1000))
	if got, err := a.P99(context.Background()); err != nil || got != 5*time.Millisecond {
		t.Fatalf("p99 %s, %v; want 5ms once the line is complete", got, err)
	}
	// The past: 1ms transactions from 25 to 12 seconds ago make most of
	// the last 30 s's 10 s windows, and their median is 1ms.
	var past strings.Builder
	for ago := 25 * time.Second; ago >= 12*time.Second; ago -= 500 * time.Millisecond {
		past.WriteString(line(4, 1000, ago))
	}
	write(past.String())
	if got, err := a.MedianP99(context.Background(), 30*time.Second); err != nil || got != time.Millisecond {
		t.Fatalf("median p99 %s, %v; want 1ms", got, err)
	}
}
