package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/phasekit/phasekit/internal/clock"
)

// controlWrap is where the control's file wraps around: it is rewritten in
// place from then on, as PostgreSQL recycles WAL segments.
const controlWrap = 1 << 30

// writeLikeWAL writes bytesPerSec to file for d, in one chunk per period
// each followed by a sync, as a backfill committing every period writes and
// flushes its WAL. It returns the bytes written. The chunks are random bytes
// (nothing along the way can compress them) and the file wraps at 1 GiB.
func writeLikeWAL(ctx context.Context, file string, bytesPerSec float64, period, d time.Duration) (int64, error) {
	if bytesPerSec <= 0 || period <= 0 || d <= 0 {
		return 0, fmt.Errorf("I/O control: rate %.0f B/s, period %s and duration %s must be positive", bytesPerSec, period, d)
	}
	f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, fmt.Errorf("I/O control: %w", err)
	}
	defer f.Close()
	chunk := make([]byte, max(1, int(bytesPerSec*period.Seconds())))
	fillRandom(chunk)
	var written, off int64
	start := time.Now()
	for n := int64(1); ; n++ {
		if off+int64(len(chunk)) > controlWrap {
			off = 0
		}
		k, err := f.WriteAt(chunk, off)
		written += int64(k)
		off += int64(k)
		if err != nil {
			return written, fmt.Errorf("I/O control: write %s: %w", file, err)
		}
		if err := f.Sync(); err != nil {
			return written, fmt.Errorf("I/O control: sync %s: %w", file, err)
		}
		// Sleep until the n-th period is over, so a slow sync is caught up
		// rather than lowering the rate.
		next := start.Add(time.Duration(n) * period)
		if !next.Before(start.Add(d)) {
			return written, nil
		}
		if err := clock.Sleep(ctx, time.Until(next)); err != nil {
			return written, err
		}
	}
}

// fillRandom fills b with bytes from a xorshift generator: incompressible
// enough for a disk, and cheap.
func fillRandom(b []byte) {
	x := uint64(0x9e3779b97f4a7c15)
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
}
