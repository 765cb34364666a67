package plancheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/phases"
)

// CheckOptions tune Check.
type CheckOptions struct {
	// NoRollbacks skips the rollback checks.
	NoRollbacks bool
}

// Check applies the plan through every phase and purge on a new copy of the
// base schema with phasekit's executor and compares the result with the
// replay's end state (the file as written); then, on further copies, applies
// it up to each phase boundary, rolls everything back and compares with the
// base. The replay must be of the migrations the plan was made from.
func (d *Dev) Check(ctx context.Context, p *phases.Plan, r *Replay, o CheckOptions) (*phases.CheckResult, error) {
	start := time.Now()
	res := &phases.CheckResult{Checked: true, Server: d.Server}
	if r.Unreplayable != "" {
		return &phases.CheckResult{Reason: r.Unreplayable}, nil
	}
	// The check is of what the phases do; the application's version table
	// is bookkeeping apply keeps apart.
	cp := *p
	cp.AppVersion, cp.Binding, cp.Check = nil, nil, nil
	dir, err := os.MkdirTemp("", "phasekit-check-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	planDir := filepath.Join(dir, "plan")
	if _, err := migrations.Write(planDir, &cp, func(*phases.Plan) string { return "" }); err != nil {
		return nil, err
	}
	want, err := d.catalog(ctx, r.DB, true)
	if err != nil {
		return nil, err
	}
	baseCat, err := d.catalog(ctx, d.base, true)
	if err != nil {
		return nil, err
	}
	// One copy serves every check while the phases can be rolled back:
	// apply through each boundary and roll everything back, then apply all
	// and purge. A phase that cannot be undone leaves residue, so the
	// boundaries from the first such phase on get a fresh copy each.
	firstIrreversible := len(cp.Phases)
	for k, ph := range cp.Phases {
		if !ph.Reversible {
			firstIrreversible = k
			break
		}
	}
	shared, err := d.copyOf(ctx, d.base)
	if err != nil {
		return nil, err
	}
	defer d.drop(shared)
	if !o.NoRollbacks {
		res.Rollbacks = make([]phases.RollbackCheck, len(cp.Phases))
		for k := range cp.Phases {
			rb := &res.Rollbacks[k]
			rb.After = cp.Phases[k].Kind
			rb.Irreversible = k >= firstIrreversible
			db := shared
			if rb.Irreversible {
				if db, err = d.copyOf(ctx, d.base); err != nil {
					return nil, err
				}
			}
			got, err := d.cycle(ctx, db, planDir, &cp, k, true)
			if db != shared {
				d.drop(db)
			}
			if err != nil {
				rb.Error = err.Error()
				continue
			}
			rb.Differences = Compare(baseCat, got, true)
			rb.Equal = len(rb.Differences) == 0
		}
	}
	db := shared
	if !o.NoRollbacks && firstIrreversible < len(cp.Phases) {
		if db, err = d.copyOf(ctx, d.base); err != nil {
			return nil, err
		}
		defer d.drop(db)
	}
	got, err := d.cycle(ctx, db, planDir, &cp, len(cp.Phases)-1, false)
	if err != nil {
		res.Error = err.Error()
	} else {
		res.Differences = Compare(want, got, true)
		if res.Differences, res.Unstable, err = d.settleUnstable(ctx, r, db, res.Differences); err != nil {
			return nil, err
		}
		res.Limits = PositionLimits(want, got)
		res.Equal = len(res.Differences) == 0
	}
	res.Millis = time.Since(start).Milliseconds() + r.Millis
	return res, nil
}

func (d *Dev) catalog(ctx context.Context, db string, rows bool) (*Catalog, error) {
	conn, err := d.connect(ctx, db)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	return ReadCatalog(ctx, conn, rows)
}

// cycle applies the plan up to phase index last on db, then purges (or,
// with rollback, rolls every phase back), and returns db's catalogue.
func (d *Dev) cycle(ctx context.Context, db, planDir string, p *phases.Plan, last int, rollback bool) (*Catalog, error) {
	if last < 0 {
		// A plan with nothing to run: the base as it is.
		return d.catalog(ctx, db, true)
	}
	dsn := d.sb.DSN(db)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ddl := migrations.DDLOptions{LockTimeout: time.Second, MaxAttempts: 3, Log: quiet}
	runner := migrations.Runner{Host: "plancheck", OSUser: "phasekit", PID: os.Getpid(), Version: "plan check"}
	if _, err := migrations.Apply(ctx, dsn, planDir, migrations.ApplyOptions{
		Until: p.Phases[last].Kind, DDL: ddl, Runner: runner, Out: io.Discard, Log: quiet,
		Backfill: migrations.BackfillOptions{TargetBatch: migrations.DefaultBatchTarget},
	}); err != nil {
		return nil, fmt.Errorf("apply through %s: %w", p.Phases[last].Kind, err)
	}
	if rollback {
		if _, err := migrations.Rollback(ctx, dsn, planDir, migrations.RollbackOptions{All: true, Force: true, DDL: ddl, Runner: runner, Out: io.Discard, Log: quiet}); err != nil {
			return nil, fmt.Errorf("roll back from %s: %w", p.Phases[last].Kind, err)
		}
	} else {
		conn, err := d.connect(ctx, db)
		if err != nil {
			return nil, err
		}
		// Archives of every age: the end state is after purge.
		_, err = migrations.Purge(ctx, conn, -time.Hour, false, ddl, io.Discard)
		conn.Close(context.Background())
		if err != nil {
			return nil, fmt.Errorf("purge: %w", err)
		}
	}
	return d.catalog(ctx, db, true)
}

// Plan plans migrations against the base schema, each statement against the
// schema the ones before it leave (a replay), and with check proves the
// plan (Check). It returns the replay too: its database holds the file's
// end state. A change the planner refuses comes back as its
// *phases.PlanError (the planner's message names what is missing, with a
// suggestion), a statement PostgreSQL refuses as a *StatementError.
func (d *Dev) Plan(ctx context.Context, ms []*change.Migration, opts phases.Options, check bool, co CheckOptions) (*phases.Plan, *Replay, error) {
	snap, err := d.Snapshot(ctx)
	if err != nil {
		return nil, nil, err
	}
	replay, replayErr := d.Replay(ctx, ms)
	if replay == nil {
		return nil, nil, replayErr
	}
	opts.Observed = replay.Observed
	p, err := phases.BuildWith(opts, snap, ms...)
	var pe *phases.PlanError
	var se *StatementError
	if err != nil && errors.As(err, &pe) && errors.As(replayErr, &se) && (posBefore(se.Pos, pe.Pos) || se.Pos == pe.Pos && pe.Observed) {
		// The planner stopped after the statement PostgreSQL refused: it saw
		// no schema for it, so PostgreSQL's word is the one to give. At that
		// statement, the planner's message names the nearest name, unless
		// it is one that needed to see the statement run (a DO block's).
		return nil, replay, replayErr
	}
	if err != nil {
		return nil, replay, err
	}
	if replayErr != nil {
		return nil, replay, replayErr
	}
	if !check {
		p.Check = &phases.CheckResult{Reason: "skipped (--no-check)"}
		return p, replay, nil
	}
	res, err := d.Check(ctx, p, replay, co)
	if err != nil {
		return nil, replay, fmt.Errorf("check the plan: %w", err)
	}
	p.Check = res
	return p, replay, nil
}

// posBefore tells a position in an earlier statement of the same file.
func posBefore(a, b change.Pos) bool {
	return a.File == b.File && a.Offset < b.Offset
}
