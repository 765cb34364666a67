// Command phasekit turns a destructive PostgreSQL schema change into
// backward-compatible phases (expand, dual-write, backfill, contract) that
// old and new app versions can share during a rollout.
package main

import (
	"os"

	// First: it sets lint's garbage collector target before the other
	// packages' inits allocate.
	_ "github.com/phasekit/phasekit/internal/lintgc"
)

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}
