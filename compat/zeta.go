package compat

import (
	"context"
	"slices"
	"time"

	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/verify"
)

// ZetaOptions configure the zeta check: the new frontend (N+1) against the
// old backend (N) on the database as production will have it when the new
// frontend ships, and with Reverse the old frontend against the new backend.
type ZetaOptions struct {
	NewFrontend, OldBackend string
	// OldFrontend and NewBackend are run when Reverse is set.
	OldFrontend, NewBackend string
	Reverse                 bool
	// Ready is the backend's readiness check: an http(s) URL or host:port,
	// with {port} replaced by the port phasekit gives the backend in PORT.
	Ready        string
	ReadyTimeout time.Duration
	Timeout      time.Duration
	// Phases limits the boundaries (after these phases; "start" for before
	// the first); empty means every boundary.
	Phases []phases.Kind
}

// ZetaStart names the boundary before the first phase in ZetaOptions.Phases.
const ZetaStart phases.Kind = "start"

func (z *ZetaOptions) wants(kind phases.Kind) bool {
	if len(z.Phases) == 0 {
		return true
	}
	if kind == "" {
		kind = ZetaStart
	}
	return slices.Contains(z.Phases, kind)
}

// runAt runs the zeta pairings at one boundary. The N+1 frontend against
// the N backend must work wherever N must (the old backend is still
// serving); the reverse pairing wherever N+1 must.
func (z *ZetaOptions) runAt(ctx context.Context, dsn string, kind phases.Kind, required []string, step func(string, ...any), boundary string) []ZetaCell {
	if !z.wants(kind) {
		return nil
	}
	type pairing struct {
		name, frontend, backend string
		required                bool
	}
	pairs := []pairing{{"N+1 frontend → N backend", z.NewFrontend, z.OldBackend, slices.Contains(required, Old)}}
	if z.Reverse {
		pairs = append(pairs, pairing{"N frontend → N+1 backend", z.OldFrontend, z.NewBackend, slices.Contains(required, New)})
	}
	var out []ZetaCell
	for _, p := range pairs {
		res := verify.RunZeta(ctx, dsn, verify.ZetaOptions{
			Backend: p.backend, Frontend: p.frontend,
			Ready: z.Ready, ReadyTimeout: z.ReadyTimeout, Timeout: z.Timeout,
		})
		c := ZetaCell{Name: p.name, Required: p.required, Error: res.Error,
			FrontendLog: res.FrontendLog, BackendLog: res.BackendLog, Duration: res.Duration}
		c.Status = cellStatus(p.required, res.Passed, false)
		step("%-26s zeta %-26s %s%s", boundary, p.name, c.Status, errSuffix(c.Error))
		out = append(out, c)
	}
	return out
}
