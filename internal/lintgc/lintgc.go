// Package lintgc lets `phasekit lint` collect garbage less often: with the
// command line holding "lint" (and no GOGC in the environment) its init sets
// the garbage collector's target to 400% (Go's default is 100%).
//
// lint is short-lived and allocates as it parses: at the default, the
// packages the binary initializes on start (about 3 MB) already trigger a
// collection before main, a few milliseconds of a 16 ms one-file run, and
// the shared lint corpus spends about a tenth of its CPU collecting. At 400%
// a one-file run never collects and the corpus's peak memory grows from
// about 64 to 78 MB (measured, docs/BENCHMARKS.md). The setting is made in
// an init, not in the lint command, so that it holds before the other
// packages' inits run: the command imports this package first, and Go
// initializes it before any package whose import path sorts after it
// (testcontainers, the Docker and Kubernetes clients) that it does not
// import.
package lintgc

import (
	"os"
	"runtime/debug"
	"slices"
)

// Percent is the garbage collector's target lint runs with.
const Percent = 400

func init() {
	if _, set := os.LookupEnv("GOGC"); !set && slices.Contains(os.Args[1:], "lint") {
		debug.SetGCPercent(Percent)
	}
}
