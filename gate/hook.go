package gate

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/pipeline"
)

// HookOptions configure the gate apply asks before contract.
type HookOptions struct {
	// Pipeline is nil when apply was given none: then no gate is checked
	// and Warn gets one line saying so.
	Pipeline *pipeline.Pipeline
	Alarms   AlarmSource
	Now      time.Time
	// Force runs contract whatever the gate says; Reason is then required
	// and kept in the ledger with the gate's result, Runner and the time.
	Force  bool
	Reason string
	Runner migrations.Runner
	// Out receives the gate's result as text; Warn the warnings. Nil
	// discards.
	Out, Warn io.Writer
}

// ContractHook returns the function migrations.ApplyOptions.Gate calls
// before contract: it checks the gate and refuses with *NotOpenError unless
// it is open or forced.
func ContractHook(o HookOptions) func(ctx context.Context, conn *pgx.Conn, p *phases.Plan) error {
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Warn == nil {
		o.Warn = io.Discard
	}
	return func(ctx context.Context, conn *pgx.Conn, p *phases.Plan) error {
		if o.Pipeline == nil {
			fmt.Fprintln(o.Warn, "phasekit: warning: running contract without checking its gate (pass --pipeline and --prometheus to check it)")
			return nil
		}
		res, err := Contract(ctx, conn, Options{Plan: p, Pipeline: o.Pipeline, Alarms: o.Alarms, Now: o.Now})
		if err != nil {
			return fmt.Errorf("contract gate: %w", err)
		}
		WriteText(o.Out, res)
		if res.Verdict == Open {
			return nil
		}
		if !o.Force {
			return &NotOpenError{Result: res}
		}
		b, err := json.Marshal(res)
		if err != nil {
			return fmt.Errorf("contract gate: %w", err)
		}
		if err := migrations.RecordOverride(ctx, conn, p.Hash, migrations.Override{
			Phase: string(phases.Contract), Verdict: string(res.Verdict), Reason: o.Reason, Gate: b, ForcedBy: o.Runner.Who(),
		}); err != nil {
			return err
		}
		fmt.Fprintf(o.Warn, "phasekit: warning: the contract gate is %s; forced by %s: %q (kept in phasekit.overrides)\n", res.Verdict, o.Runner.Who(), o.Reason)
		return nil
	}
}
