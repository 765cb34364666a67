package testkit

import (
	"runtime"
	"testing"
)

// recorder is a testing.TB that records whether the test was skipped or
// failed; like the real ones, Skipf and Fatalf end the calling goroutine.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Skipf(format string, args ...any) {
	r.skipped = format
	runtime.Goexit()
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = format
	runtime.Goexit()
}

// run calls f with r on a goroutine of its own and waits for it.
func (r *recorder) run(f func(testing.TB)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
}

func TestSkipOrFail(t *testing.T) {
	for _, tc := range []struct {
		ci                 string
		wantSkip, wantFail bool
	}{
		{"", true, false},
		{"false", true, false},
		{"true", false, true},
	} {
		t.Setenv("CI", tc.ci)
		r := &recorder{TB: t}
		r.run(func(t testing.TB) { SkipOrFail(t, "no %s", "tool") })
		if (r.skipped != "") != tc.wantSkip || (r.failed != "") != tc.wantFail {
			t.Errorf("CI=%q: skipped %q, failed %q", tc.ci, r.skipped, r.failed)
		}
	}
	t.Setenv("CI", "true")
	r := &recorder{TB: t}
	r.run(func(t testing.TB) { RequireDocker(t, "") })
	if r.skipped != "" || r.failed != "" {
		t.Errorf("RequireDocker with Docker usable: skipped %q, failed %q", r.skipped, r.failed)
	}
	r.run(func(t testing.TB) { RequireDocker(t, "daemon not reachable") })
	if r.failed == "" {
		t.Error("RequireDocker under CI=true with Docker unusable did not fail")
	}
}
