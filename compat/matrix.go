// Package compat proves, on a copy of real data, that the app versions a plan
// says will run together actually work at every phase boundary: the
// compatibility matrix, shadow reads, the zeta check, and the same matrix for
// the naive migration, to show what the plan avoids.
package compat

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/phasekit/phasekit/compat/outcome"
	"github.com/phasekit/phasekit/internal/dbconn"
	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/verify"
)

// The two app versions of a plan, as the plan names them.
const (
	Old = phases.Old // "N": the version running before the change
	New = phases.New // "N+1": the version the change is for
)

// The verify run's outcome, as data (package outcome, which the report
// reads without the sandbox machinery).
type (
	Status      = outcome.Status
	Cell        = outcome.Cell
	Boundary    = outcome.Boundary
	Matrix      = outcome.Matrix
	Result      = outcome.Result
	ShadowCheck = outcome.ShadowCheck
	ZetaCell    = outcome.ZetaCell
)

// Statuses. Only StatusFail fails a run.
const (
	StatusPass          = outcome.StatusPass
	StatusFail          = outcome.StatusFail
	StatusExpectedBreak = outcome.StatusExpectedBreak
	StatusExtraPass     = outcome.StatusExtraPass
	StatusBreaks        = outcome.StatusBreaks
)

// Options configures Run.
type Options struct {
	// PlanDir is the plan's directory (plan.json and its migration files).
	PlanDir string
	// Sandbox is where the copies live; Run does not close it.
	Sandbox verify.Sandbox
	// Copy says where the data comes from (a dump file or a source DSN),
	// and how to mask and subset it.
	Copy verify.CopyOptions
	// Old and New are the apps of versions N and N+1.
	Old, New []verify.App
	// Shadow are read-query pairs compared after dual-write and backfill.
	Shadow []ShadowPair
	// Zeta, when set, runs the zeta check at every boundary too.
	Zeta *ZetaOptions
	// SkipNaive leaves out the naive migration's matrix.
	SkipNaive bool
	// CellTimeout bounds one app run; zero means two minutes.
	CellTimeout time.Duration
	// Apply carries lock and backfill settings to each phase's apply.
	Apply migrations.ApplyOptions
	// Progress receives one line per step; nil discards.
	Progress io.Writer
	Log      *slog.Logger
}

// dbNames are the databases one Run uses on the sandbox; a random suffix
// lets runs share a server (the dsn provider, parallel tests).
type dbNames struct{ copy, phased, naive string }

func newDBNames() dbNames {
	var b [4]byte
	_, _ = rand.Read(b[:])
	s := hex.EncodeToString(b[:])
	return dbNames{"phasekit_copy_" + s, "phasekit_phased_" + s, "phasekit_naive_" + s}
}

// Run copies the data into the sandbox once, then runs the plan phase by
// phase on one clone and the naive migration on another, running at each
// boundary every app version and reporting which must, and which did, work.
// An error means the run could not happen (bad input, no sandbox, the copy
// failed); a cell that fails is in the Result, not an error.
func Run(ctx context.Context, opts Options) (*Result, error) {
	start := time.Now()
	plan, err := migrations.ReadPlan(opts.PlanDir)
	if err != nil {
		return nil, err
	}
	if len(plan.Phases) == 0 {
		return nil, fmt.Errorf("%s: the plan has no phases: nothing to verify", opts.PlanDir)
	}
	if len(opts.Old) == 0 && len(opts.New) == 0 && opts.Zeta == nil && len(opts.Shadow) == 0 {
		return nil, errors.New("nothing to run: give app versions (--old-app/--new-app, --old-workload/--new-workload), shadow reads or a zeta check")
	}
	r := &runner{opts: opts, plan: plan, progress: opts.Progress, db: newDBNames()}
	// Without a backfill phase nothing is pending: shadow reads are strict.
	r.backfilled = !slices.ContainsFunc(plan.Phases, func(p phases.Phase) bool { return p.Kind == phases.Backfill })
	if r.progress == nil {
		r.progress = io.Discard
	}
	if r.opts.CellTimeout == 0 {
		r.opts.CellTimeout = 2 * time.Minute
	}
	if r.opts.Log == nil {
		r.opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	res := &Result{Plan: plan.Hash, Sources: plan.Sources, Sandbox: opts.Sandbox.Describe()}

	sb := opts.Sandbox
	copyDB := r.db.copy
	r.step("copy the data into %s", sb.Describe())
	if err := sb.CreateDatabase(ctx, copyDB, ""); err != nil {
		return nil, err
	}
	defer sb.DropDatabase(context.WithoutCancel(ctx), copyDB)
	res.Copy, err = verify.CopyData(ctx, sb.DSN(copyDB), opts.Copy)
	if err != nil {
		return nil, err
	}
	r.step("copied: %s", res.Copy)

	res.Phased = r.phased(ctx)
	if !opts.SkipNaive {
		m := r.naive(ctx)
		res.Naive = &m
	}
	res.Failures = failures(res)
	res.Passed = len(res.Failures) == 0
	res.Duration = time.Since(start)
	return res, nil
}

type runner struct {
	opts       Options
	backfilled bool // the backfill phase has run: shadow reads are strict
	plan       *phases.Plan
	progress   io.Writer
	db         dbNames
}

func (r *runner) step(format string, args ...any) {
	fmt.Fprintf(r.progress, "verify: "+format+"\n", args...)
}

// phased runs the plan phase by phase on a clone of the copy.
func (r *runner) phased(ctx context.Context) Matrix {
	m := Matrix{Name: "phased plan"}
	sb := r.opts.Sandbox
	if err := sb.CreateDatabase(ctx, r.db.phased, r.db.copy); err != nil {
		m.Error = err.Error()
		return m
	}
	defer sb.DropDatabase(context.WithoutCancel(ctx), r.db.phased)
	dsn := sb.DSN(r.db.phased)

	first := r.plan.Phases[0]
	m.Boundaries = append(m.Boundaries, r.boundary(ctx, r.db.phased, "before "+string(first.Kind), "", first.AppsBefore, false))
	for _, ph := range r.plan.Phases {
		name := "after " + string(ph.Kind)
		r.step("apply %s", ph.Kind)
		opts := r.opts.Apply
		opts.Phase, opts.Until = ph.Kind, ""
		opts.Out = io.Discard
		opts.Log = r.opts.Log
		t0 := time.Now()
		_, err := migrations.Apply(ctx, dsn, r.opts.PlanDir, opts)
		if err != nil {
			m.Boundaries = append(m.Boundaries, Boundary{Name: name, Phase: ph.Kind, Required: ph.AppsAfter,
				ApplyError: dbconn.Redact(err.Error()), ApplyTime: time.Since(t0)})
			m.Error = fmt.Sprintf("phase %s could not be applied: %s", ph.Kind, dbconn.Redact(err.Error()))
			return m
		}
		if ph.Kind == phases.Backfill {
			r.backfilled = true
		}
		b := r.boundary(ctx, r.db.phased, name, ph.Kind, ph.AppsAfter, false)
		b.ApplyTime = time.Since(t0)
		m.Boundaries = append(m.Boundaries, b)
	}
	return m
}

// naive runs the migration as written, all at once, on another clone.
func (r *runner) naive(ctx context.Context) Matrix {
	m := Matrix{Name: "naive migration"}
	sql, err := NaiveSQL(r.plan)
	if err != nil {
		m.Error = err.Error()
		return m
	}
	m.SQL = sql
	sb := r.opts.Sandbox
	if err := sb.CreateDatabase(ctx, r.db.naive, r.db.copy); err != nil {
		m.Error = err.Error()
		return m
	}
	defer sb.DropDatabase(context.WithoutCancel(ctx), r.db.naive)
	dsn := sb.DSN(r.db.naive)
	m.Boundaries = append(m.Boundaries, r.boundary(ctx, r.db.naive, "before naive migration", "", []string{Old}, true))

	r.step("run the naive migration")
	t0 := time.Now()
	if err := execScript(ctx, dsn, sql); err != nil {
		m.Boundaries = append(m.Boundaries, Boundary{Name: "after naive migration", ApplyError: err.Error(), ApplyTime: time.Since(t0)})
		m.Error = "the naive migration failed: " + err.Error()
		return m
	}
	// During a rollout both versions run while the migration lands: the old
	// one until every instance is replaced.
	b := r.boundary(ctx, r.db.naive, "after naive migration", "", []string{Old, New}, true)
	b.ApplyTime = time.Since(t0)
	m.Boundaries = append(m.Boundaries, b)
	return m
}

// boundary runs every app of both versions against the database db holds
// at this point of the rollout. Each cell runs on a copy of its own, so what
// one app writes (fixed keys, as most fixtures and integration tests use)
// never meets another cell or a later boundary; two cells run at once.
func (r *runner) boundary(ctx context.Context, db, name string, kind phases.Kind, required []string, naive bool) Boundary {
	b := Boundary{Name: name, Phase: kind, Required: required}
	type job struct {
		version string
		app     verify.App
		req     bool
	}
	var jobs []job
	for _, v := range []struct {
		version string
		apps    []verify.App
	}{{Old, r.opts.Old}, {New, r.opts.New}} {
		for _, app := range v.apps {
			jobs = append(jobs, job{v.version, app, slices.Contains(required, v.version)})
		}
	}
	b.Cells = make([]Cell, len(jobs))
	r.parallel(len(jobs), func(i int) {
		j := jobs[i]
		c := Cell{Version: j.version, App: j.app.Name(), Required: j.req}
		err := r.onCopy(ctx, db, func(dsn string) {
			cctx, cancel := context.WithTimeout(ctx, r.opts.CellTimeout)
			res := j.app.Run(cctx, dsn)
			cancel()
			c.Error, c.Output, c.Duration = res.Error, res.Output, res.Duration
			c.Status = cellStatus(j.req, res.Passed, naive)
		})
		if err != nil {
			c.Error, c.Status = "copy for this cell: "+dbconn.Redact(err.Error()), cellStatus(j.req, false, naive)
		}
		if c.Status == StatusFail {
			c.Error += r.windowNote()
		}
		b.Cells[i] = c
	})
	for _, c := range b.Cells {
		r.step("%-26s %-4s %-18s %s%s", name, c.Version, c.App, c.Status, errSuffix(c.Error))
	}
	if naive {
		return b
	}
	dsn := r.opts.Sandbox.DSN(db)
	for _, p := range r.opts.Shadow {
		if !p.runsAfter(kind) {
			continue
		}
		// Reads only: on the boundary's database itself.
		sc := p.Check(ctx, dsn, !r.backfilled)
		r.step("%-26s shadow %-14s %s", name, p.Name, passWord(sc.Passed))
		b.Shadow = append(b.Shadow, sc)
	}
	if z := r.opts.Zeta; z != nil {
		if err := r.onCopy(ctx, db, func(dsn string) {
			b.Zeta = z.runAt(ctx, dsn, kind, required, r.step, name)
		}); err != nil {
			b.Zeta = append(b.Zeta, ZetaCell{Name: "zeta", Required: true, Status: StatusFail, Error: "copy for the zeta check: " + dbconn.Redact(err.Error())})
		}
	}
	return b
}

// onCopy runs f on a fresh copy of db, dropped afterwards.
func (r *runner) onCopy(ctx context.Context, db string, f func(dsn string)) error {
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "phasekit_cell_" + hex.EncodeToString(b[:])
	sb := r.opts.Sandbox
	if err := sb.CreateDatabase(ctx, name, db); err != nil {
		return err
	}
	defer sb.DropDatabase(context.WithoutCancel(ctx), name)
	f(sb.DSN(name))
	return nil
}

// parallel runs f(0..n-1), two at a time.
func (r *runner) parallel(n int, f func(i int)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			f(i)
		}()
	}
	wg.Wait()
}

// windowNote is what the plan states about the window a failing cell ran
// in: what N+1 may rely on only later, and column positions.
func (r *runner) windowNote() string {
	notes := append([]string{}, r.plan.Deploy...)
	if r.plan.Check != nil {
		notes = append(notes, r.plan.Check.Limits...)
	}
	if len(notes) == 0 {
		return ""
	}
	return " (the plan states for this rollout: " + strings.Join(notes, "; ") + ")"
}

func errSuffix(e string) string {
	if e == "" {
		return ""
	}
	return ": " + e
}

func passWord(ok bool) string {
	if ok {
		return "pass"
	}
	return "FAIL"
}

func cellStatus(required, passed, naive bool) Status {
	switch {
	case passed && (required || naive):
		return StatusPass
	case passed:
		return StatusExtraPass
	case naive && required:
		return StatusBreaks
	case required:
		return StatusFail
	default:
		return StatusExpectedBreak
	}
}

// failures lists why a result fails: required cells of the phased plan,
// shadow checks, required zeta cells, a phase that would not apply.
func failures(res *Result) []string {
	var out []string
	m := res.Phased
	if m.Error != "" {
		out = append(out, m.Error)
	}
	for _, b := range m.Boundaries {
		for _, c := range b.Cells {
			if c.Status == StatusFail {
				out = append(out, fmt.Sprintf("%s: %s (%s) failed: %s", b.Name, c.Version, c.App, c.Error))
			}
		}
		for _, s := range b.Shadow {
			if !s.Passed {
				out = append(out, fmt.Sprintf("%s: shadow read %s: %s", b.Name, s.Name, s.Summary))
			}
		}
		for _, z := range b.Zeta {
			if z.Status == StatusFail {
				out = append(out, fmt.Sprintf("%s: zeta %s: %s", b.Name, z.Name, z.Error))
			}
		}
	}
	return out
}
