package migrations

import (
	"testing"
	"time"
)

func TestPacedTarget(t *testing.T) {
	const ms = time.Millisecond
	tests := []struct {
		name    string
		target  time.Duration
		allowed float64
		keys    int64
		took    time.Duration
		want    time.Duration
	}{
		{"not paced", 5 * ms, 0, 1000, 3 * ms, 5 * ms},
		{"paced above the batch's own speed", 5 * ms, 500_000, 1000, 3 * ms, 5 * ms}, // 333k rows/s full speed
		{"a quarter of full speed: a quarter of the target", 8 * ms, 100_000, 2000, 5 * ms, 2 * ms},
		{"a tiny allowance stops at the floor", 5 * ms, 500, 1000, 3 * ms, minPacedBatch},
		{"a target under the floor is kept", 500 * time.Microsecond, 500, 1000, 3 * ms, 500 * time.Microsecond},
		{"no timing yet", 5 * ms, 1000, 1000, 0, 5 * ms},
		{"no keys", 5 * ms, 1000, 0, 3 * ms, 5 * ms},
	}
	for _, tc := range tests {
		if got := pacedTarget(tc.target, tc.allowed, tc.keys, tc.took); got != tc.want {
			t.Errorf("%s: pacedTarget(%s, %g, %d, %s) = %s, want %s", tc.name, tc.target, tc.allowed, tc.keys, tc.took, got, tc.want)
		}
	}
}

// TestNextSizeFollowsPacedTarget: the next batch is sized for the paced
// target from the last batch's speed, within the growth and size bounds.
func TestNextSizeFollowsPacedTarget(t *testing.T) {
	o := BackfillOptions{MinBatch: 100, MaxBatch: 50_000}
	// 2,000 keys in 5 ms (400k rows/s), paced to 100k rows/s: a 1.25 ms
	// target, 500 keys.
	target := pacedTarget(5*time.Millisecond, 100_000, 2000, 5*time.Millisecond)
	if got := backfillNextSize(2000, 2000, 5*time.Millisecond, target, o); got != 500 {
		t.Errorf("next size %d, want 500", got)
	}
	// Unpaced, the same batch keeps its size.
	if got := backfillNextSize(2000, 2000, 5*time.Millisecond, 5*time.Millisecond, o); got != 2000 {
		t.Errorf("unpaced next size %d, want 2000", got)
	}
	// Paced down to the floor, never under MinBatch.
	target = pacedTarget(5*time.Millisecond, 500, 150, 5*time.Millisecond)
	if got := backfillNextSize(150, 150, 5*time.Millisecond, target, o); got != 100 {
		t.Errorf("next size at the floor %d, want MinBatch 100", got)
	}
}

// Under the guard a batch aims at the guard's burst when it is shorter
// than the target, and the paced target shrinks from there.
func TestGuardedTarget(t *testing.T) {
	const ms = time.Millisecond
	if got := guardedTarget(5*ms, 500*time.Microsecond, false); got != 500*time.Microsecond {
		t.Errorf("guarded 5 ms target with a 0.5 ms burst: %s", got)
	}
	if got := guardedTarget(2*ms, 10*ms, false); got != 2*ms {
		t.Errorf("a burst longer than the target: %s, want the target", got)
	}
	if got := guardedTarget(5*ms, 0, false); got != 5*ms {
		t.Errorf("no burst yet: %s, want the target", got)
	}
	if got := guardedTarget(5*ms, 500*time.Microsecond, true); got != 5*ms {
		t.Errorf("GuardKeepsBatchTarget: %s, want the target", got)
	}
	// 100 keys in 0.5 ms (200k rows/s) allowed 50k rows/s: paced from the
	// burst, not from 5 ms, and then not under it (it is below the 1 ms floor).
	target := pacedTarget(guardedTarget(5*ms, 500*time.Microsecond, false), 50_000, 100, 500*time.Microsecond)
	if target != 500*time.Microsecond {
		t.Errorf("paced guarded target %s, want 0.5 ms", target)
	}
	o := BackfillOptions{MinBatch: 100, MaxBatch: 50_000}
	if got := backfillNextSize(1000, 1000, 5*ms, target, o); got != 100 {
		t.Errorf("a 1,000-key batch of 5 ms under a 0.5 ms burst: next %d keys, want 100", got)
	}
}
