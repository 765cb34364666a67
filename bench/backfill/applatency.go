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

	mu      sync.Mutex
	offsets map[string]int64
	recs    []txRecord
}

func newAppLatency(dir string, window time.Duration) *appLatency {
	return &appLatency{dir: dir, window: window, offsets: map[string]int64{}}
}

// P99 reads the lines written since the last call and returns the p99 of
// the successful transactions that ended within the window.
func (a *appLatency) P99(context.Context) (time.Duration, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	files, err := filepath.Glob(filepath.Join(a.dir, "tx.*"))
	if err != nil {
		return 0, err
	}
	for _, name := range files {
		if err := a.readNew(name); err != nil {
			return 0, err
		}
	}
	from := time.Now().Add(-a.window)
	keep := a.recs[:0]
	var lat []time.Duration
	for _, r := range a.recs {
		if r.end.Before(from) {
			continue
		}
		keep = append(keep, r)
		if !r.failed {
			lat = append(lat, r.latency)
		}
	}
	a.recs = keep
	if len(lat) == 0 {
		return 0, errors.New("no transaction of the app ended in the window")
	}
	slices.Sort(lat)
	return percentile(lat, 0.99), nil
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
