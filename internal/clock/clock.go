// Package clock holds the context-aware sleep that the backfill, the DDL
// runner, watch, fleet bakes and the benchmarks wait with.
package clock

import (
	"context"
	"time"
)

// Sleep waits d, or until ctx is done; then it returns ctx.Err().
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
