// Package fleet rolls a plan's phase out over many databases that share one
// schema (shards, tenants, regions), wave by wave: one box first, then waves
// by region or zone, each within its failure budget and followed by its bake
// while the alarms are checked. Each database keeps its own advisory lock and
// ledger (package migrations), so a rollout stopped at any point resumes
// where it stopped. docs/fleet.md describes the file and the policy.
package fleet

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/phasekit/phasekit/change"
)

// Fleet is a parsed, checked fleet file.
type Fleet struct {
	// File is the file it was read from.
	File  string
	Waves []Wave
}

// Wave is a group of targets rolled out together, in order.
type Wave struct {
	Name string
	// MaxParallel is how many targets of the wave run at once (default 1).
	MaxParallel int
	// MaxFailures is the wave's failure budget: the rollout stops after the
	// wave when more targets than this failed (default 0).
	MaxFailures int
	// Bake is how long the rollout waits after the wave, checking alarms,
	// before the next wave starts (0: no wait).
	Bake    time.Duration
	Targets []Target
	Pos     change.Pos
}

// Target is one database of the fleet.
type Target struct {
	Name string
	// Env is the environment variable that holds the target's DSN.
	Env string
	// DSN is the value of Env, set by Resolve; never printed unredacted.
	DSN string
	Pos change.Pos
	// EnvPos is where the dsn reference is written.
	EnvPos change.Pos
}

// Load reads and checks a fleet file; see Parse. It does not read the
// environment: call Resolve before running anything.
func Load(file string) (*Fleet, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, &change.InputError{Pos: change.Pos{File: file, Line: 1, Col: 1}, Msg: fmt.Sprintf("read fleet file: %v", err)}
	}
	return Parse(file, data)
}

// Resolve reads every target's DSN from its environment variable through
// lookup (os.LookupEnv when nil). It checks all targets up front, so that a
// rollout never starts half-configured: an *UnsetError names every variable
// that is unset or empty (the targets whose variables are set still get
// their DSN, for fleet status).
func (f *Fleet) Resolve(lookup func(string) (string, bool)) error {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	unset := &UnsetError{}
	var first *Target
	seen := map[string]*Target{}
	for wi := range f.Waves {
		for ti := range f.Waves[wi].Targets {
			t := &f.Waves[wi].Targets[ti]
			v, ok := lookup(t.Env)
			if !ok || strings.TrimSpace(v) == "" {
				state := "is not set"
				if ok {
					state = "is empty"
				}
				unset.Vars = append(unset.Vars, t.Env)
				unset.what = append(unset.what, fmt.Sprintf("%s (target %s) %s", t.Env, t.Name, state))
				if first == nil {
					first = t
				}
				continue
			}
			t.DSN = v
			if other, dup := seen[v]; dup {
				return &change.InputError{Pos: t.EnvPos, Msg: fmt.Sprintf("target %s (%s) has the same DSN as target %s (%s, at %s): one database would be two targets", t.Name, t.Env, other.Name, other.Env, other.EnvPos)}
			}
			seen[v] = t
		}
	}
	if first == nil {
		return nil
	}
	msg := "environment variable " + unset.what[0]
	if len(unset.what) > 1 {
		msg = fmt.Sprintf("%d environment variables are not set: %s", len(unset.what), strings.Join(unset.what, "; "))
	}
	unset.Err = &change.InputError{Pos: first.EnvPos, Msg: msg + ": set every target's DSN variable before running (nothing was started)"}
	return unset
}

// UnsetError lists the DSN variables Resolve did not find. It is bad input:
// it unwraps to a *change.InputError at the first one's position.
type UnsetError struct {
	Vars []string
	Err  *change.InputError
	what []string
}

func (e *UnsetError) Error() string { return e.Err.Error() }
func (e *UnsetError) Unwrap() error { return e.Err }

// TargetCount is the number of targets in all waves.
func (f *Fleet) TargetCount() int {
	n := 0
	for _, w := range f.Waves {
		n += len(w.Targets)
	}
	return n
}
