package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// appLatency is the app's monitoring for the guard's --app-latency-query
// (throttle.AppLatency), played by pgbench's per-transaction logs read as
// they grow: the p99 of the transactions that ended in the last window, as
// histogram_quantile over a rate(...[window]) would give it. pgbench writes
// its logs through stdio buffers, so the newest few hundred milliseconds of
// each client thread come late, as a scrape interval makes them.
type appLatency struct {
	dir    string
	window time.Duration
	// keep is how long records are kept: the window, and the span of the
	// app's past MedianP99 may be asked for.
	keep time.Duration

	mu      sync.Mutex
	offsets map[string]int64
	recs    []txRecord
}

func newAppLatency(dir string, window, history time.Duration) *appLatency {
	return &appLatency{dir: dir, window: window, keep: window + history, offsets: map[string]int64{}}
}

// P99 reads the lines written since the last call and returns the p99 of
// the successful transactions that ended within the window.
func (a *appLatency) P99(context.Context) (time.Duration, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	if err := a.read(now); err != nil {
		return 0, err
	}
	p99, ok := a.p99At(now)
	if !ok {
		return 0, errors.New("no transaction of the app ended in the window")
	}
	return p99, nil
}

// MedianP99 is the median of the window's p99 at each second of the span
// before now, as a Prometheus range query of the same p99 at a 1 s step
// gives (throttle.AppHistory).
func (a *appLatency) MedianP99(_ context.Context, span time.Duration) (time.Duration, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	if err := a.read(now); err != nil {
		return 0, err
	}
	var p99s []time.Duration
	for t := now.Add(-span); !t.After(now); t = t.Add(time.Second) {
		if p99, ok := a.p99At(t); ok {
			p99s = append(p99s, p99)
		}
	}
	if len(p99s) == 0 {
		return 0, fmt.Errorf("no transaction of the app ended in the last %s", span)
	}
	slices.Sort(p99s)
	return p99s[len(p99s)/2], nil
}

// read takes in the logs' new lines and drops the records older than keep.
func (a *appLatency) read(now time.Time) error {
	files, err := filepath.Glob(filepath.Join(a.dir, "tx.*"))
	if err != nil {
		return err
	}
	for _, name := range files {
		if err := a.readNew(name); err != nil {
			return err
		}
	}
	from := now.Add(-a.keep)
	keep := a.recs[:0]
	for _, r := range a.recs {
		if !r.end.Before(from) {
			keep = append(keep, r)
		}
	}
	a.recs = keep
	return nil
}

// p99At is the p99 of the successful transactions that ended in the window
// up to t.
func (a *appLatency) p99At(t time.Time) (time.Duration, bool) {
	from := t.Add(-a.window)
	var lat []time.Duration
	for _, r := range a.recs {
		if !r.failed && !r.end.Before(from) && !r.end.After(t) {
			lat = append(lat, r.latency)
		}
	}
	if len(lat) == 0 {
		return 0, false
	}
	slices.Sort(lat)
	return percentile(lat, 0.99), true
}

// readNew parses the complete lines name gained since its last reading.
func (a *appLatency) readNew(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	off := a.offsets[name]
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return err
	}
	buf, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	end := bytes.LastIndexByte(buf, '\n')
	if end < 0 {
		return nil
	}
	for _, line := range bytes.Split(buf[:end], []byte{'\n'}) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		r, err := parseLogLine(string(line))
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		a.recs = append(a.recs, r)
	}
	a.offsets[name] = off + int64(end) + 1
	return nil
}
