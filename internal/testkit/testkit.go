// Package testkit holds what the tests of every package share: the rule for a
// test whose tool (Docker, Prometheus, PgBouncer, Chromium, an extension) is
// missing. Locally such a test is skipped; with CI=true it fails, because CI
// installs every tool (make setup, make image) and a skip there would hide a
// test that never ran.
//
// Golden files live in the sub-package golden, which defines the -update
// flag; the database helpers are verify/pgtest (throwaway clusters, datasets,
// the docker image) and gate/promtest (a real Prometheus).
package testkit

import (
	"os"
	"testing"
)

// CI reports whether the tests run under CI (CI=true), where a missing tool
// is a failure, not a reason to skip.
func CI() bool { return os.Getenv("CI") == "true" }

// SkipOrFail skips the test with the formatted reason, or fails it when
// CI=true.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if CI() {
		t.Fatalf(format+" (CI=true: a missing tool fails the test)", args...)
	}
	t.Skipf(format, args...)
}

// RequireDocker skips the test, or fails it when CI=true, when why is not
// empty. why is verify's answer to whether Docker and the image can be used
// (verify.DockerUnusable); it is passed in so that verify's own tests can use
// this package without an import cycle. pgtest.DockerImage does both steps.
func RequireDocker(t testing.TB, why string) {
	t.Helper()
	if why != "" {
		SkipOrFail(t, "docker sandbox unusable: %s", why)
	}
}
