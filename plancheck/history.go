package plancheck

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/phases"
)

// Outcomes of one version of a history replay.
const (
	// Planned: a plan was made and the check proved it: its end state
	// equals the file's and every rollback returns the start.
	Planned = "planned"
	// Refused: phasekit refused to plan the file, saying which statement
	// and why.
	Refused = "refused"
	// CheckFailed: a plan was made but the check found it applies with an
	// error or ends elsewhere than the file; plan refuses such a plan too,
	// so it never reaches a user, but each one is a planner bug.
	CheckFailed = "check failed"
	// Crashed: phasekit failed in a way it should not (a panic, an
	// unexpected error).
	Crashed = "crashed"
)

// VersionResult is what planning one migration file of a history gave.
type VersionResult struct {
	Version string `json:"version"`
	File    string `json:"file"`
	Outcome string `json:"outcome"`
	// Reason is the refusal, failure or crash message.
	Reason string `json:"reason,omitempty"`
	// Phases are the plan's phases, in order.
	Phases []phases.Kind `json:"phases,omitempty"`
	// Statements is how many statements the file has.
	Statements int                 `json:"statements"`
	Check      *phases.CheckResult `json:"check,omitempty"`
	Millis     int64               `json:"millis"`
}

// HistoryOptions tune ReplayHistory.
type HistoryOptions struct {
	// From skips planning (not applying) versions before it.
	From string
	// NoArchive plans with phases.Options.NoArchive.
	NoArchive bool
	// Plan, when set, says which versions to plan and check; the others
	// are only applied (a sample of a long history).
	Plan  func(version string) bool
	Check CheckOptions
}

// ReplayHistory walks an application's migration history: before each
// file, it plans the file against the schema the earlier files built,
// checks the plan, then applies the file as written and goes on. each is
// called with every version's result. It stops at a file PostgreSQL itself
// refuses as written (the history does not apply), returning that error.
func (d *Dev) ReplayHistory(ctx context.Context, files []change.HistoryFile, o HistoryOptions, each func(VersionResult)) error {
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		m, err := change.ReadSQLFile(f.Path)
		if err != nil {
			return fmt.Errorf("%s: %w", f.Path, err)
		}
		if o.From != "" && change.VersionLess(f.Version, o.From) || o.Plan != nil && !o.Plan(f.Version) {
			if err := d.LoadHistory(ctx, []*change.Migration{m}); err != nil {
				return err
			}
			continue
		}
		res, next, err := d.version(ctx, f, m, o)
		each(res)
		if err != nil {
			return err
		}
		if err := d.rebase(ctx, next); err != nil {
			return err
		}
	}
	return nil
}

// version plans and checks one file; next is the database holding the
// file's end state (the next version's base).
func (d *Dev) version(ctx context.Context, f change.HistoryFile, m *change.Migration, o HistoryOptions) (res VersionResult, next string, err error) {
	start := time.Now()
	res = VersionResult{Version: f.Version, File: f.Path, Statements: len(m.Statements)}
	defer func() {
		res.Millis = time.Since(start).Milliseconds()
		if r := recover(); r != nil {
			res.Outcome, res.Reason = Crashed, fmt.Sprintf("panic: %v\n%s", r, debug.Stack())
			err = nil
			if next == "" {
				next, err = d.applyAsWritten(ctx, m)
			}
		}
	}()
	p, replay, err := d.Plan(ctx, []*change.Migration{m}, phases.Options{NoArchive: o.NoArchive}, true, o.Check)
	var se *StatementError
	switch {
	case replay == nil:
		return res, "", err
	case errors.As(err, &se):
		return res, "", fmt.Errorf("the history does not apply as written: %w", err)
	case replay.Failed != nil:
		// Refused at an earlier statement, but the file does not run as
		// written either: the next version has no base to stand on.
		res.Outcome, res.Reason = Refused, err.Error()
		return res, "", fmt.Errorf("the history does not apply as written: %w", replay.Failed)
	}
	next = replay.DB
	if err != nil {
		var pe *phases.PlanError
		if errors.As(err, &pe) {
			res.Outcome, res.Reason = Refused, err.Error()
		} else {
			res.Outcome, res.Reason = Crashed, err.Error()
		}
		return res, next, nil
	}
	for _, ph := range p.Phases {
		res.Phases = append(res.Phases, ph.Kind)
	}
	check := p.Check
	res.Check = check
	switch {
	case !check.Checked:
		res.Outcome, res.Reason = CheckFailed, "not checked: "+check.Reason
	case check.OK():
		res.Outcome = Planned
	default:
		res.Outcome = CheckFailed
		res.Reason = checkSummary(check)
	}
	return res, next, nil
}

// applyAsWritten runs a file as written on a copy of the base, for when the
// replay could not finish.
func (d *Dev) applyAsWritten(ctx context.Context, m *change.Migration) (string, error) {
	db, err := d.copyOf(ctx, d.base)
	if err != nil {
		return "", err
	}
	old := d.base
	d.base = db
	err = d.LoadHistory(ctx, []*change.Migration{m})
	d.base = old
	return db, err
}

// rebase makes db the base the next copies are made from.
func (d *Dev) rebase(ctx context.Context, db string) error {
	if db == "" || db == d.base {
		return nil
	}
	old := d.base
	d.base = db
	if old != d.prefix+"_base" {
		d.drop(old)
	}
	return nil
}

func checkSummary(c *phases.CheckResult) string {
	if c.Error != "" {
		return "the plan fails on PostgreSQL: " + c.Error
	}
	if len(c.Differences) > 0 {
		d := c.Differences[0]
		return fmt.Sprintf("%d object(s) differ from the file's end state, first %s: file %q, plan %q", len(c.Differences), d.Object, d.Want, d.Got)
	}
	for _, rb := range c.Rollbacks {
		if rb.Error != "" && !rb.Irreversible {
			return fmt.Sprintf("rollback after %s fails: %s", rb.After, rb.Error)
		}
		if !rb.Equal && !rb.Irreversible {
			d := rb.Differences[0]
			return fmt.Sprintf("rollback after %s leaves %d object(s) unlike the start, first %s: start %q, after rollback %q", rb.After, len(rb.Differences), d.Object, d.Want, d.Got)
		}
	}
	return "check failed"
}
