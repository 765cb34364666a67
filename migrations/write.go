// Package migrations turns a Plan into golang-migrate files and back.
package migrations

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/phasekit/phasekit/phases"
)

// DefaultLockTimeout is written at the top of every transactional file, so a
// plain golang-migrate run never queues behind a long transaction for long.
const DefaultLockTimeout = "5s"

// BackfillDirective starts the comment line that carries a backfill step as
// JSON in its up file; phasekit apply reads it and runs keyset batches, while
// plain golang-migrate runs the file's single UPDATE.
const BackfillDirective = "-- phasekit:backfill "

// File is one golang-migrate migration: NNNNNN_<phase>_<what>.up.sql and .down.sql.
type File struct {
	Version uint
	Name    string // <phase>_<what>
	Phase   phases.Kind
	Up      string
	Down    string
}

// Step is one unit of execution, and one golang-migrate file: a group of
// statements sharing a transaction, one statement that cannot run in a
// transaction, or one backfill.
type Step struct {
	Version    uint
	Name       string
	Phase      phases.Kind
	PhaseIndex int
	Statements []phases.Statement
	Backfill   *phases.BackfillStep
	// BackfillIndex numbers the backfill within the plan, for its cursor.
	BackfillIndex int
}

// Transactional reports whether the step runs in one transaction.
func (s Step) Transactional() bool {
	return s.Backfill == nil && (len(s.Statements) != 1 || s.Statements[0].Transactional)
}

// Steps lays the plan out in execution order. Statements that may share a
// transaction share a step; each CONCURRENTLY statement is a step of its own;
// a statement marked NewTransaction starts a new step; each backfill is a step.
func Steps(p *phases.Plan) []Step {
	var out []Step
	backfills := 0
	add := func(pi int, ph phases.Kind, what string, stmts []phases.Statement, b *phases.BackfillStep) {
		st := Step{Version: uint(len(out) + 1), Name: slug(string(ph) + "_" + what), Phase: ph, PhaseIndex: pi, Statements: stmts, Backfill: b}
		if b != nil {
			st.BackfillIndex = backfills
			backfills++
		}
		out = append(out, st)
	}
	for pi, ph := range p.Phases {
		var group []phases.Statement
		flush := func() {
			if len(group) > 0 {
				add(pi, ph.Kind, what(group), group, nil)
				group = nil
			}
		}
		for _, st := range ph.Statements {
			if !st.Transactional {
				flush()
				add(pi, ph.Kind, what([]phases.Statement{st})+"_concurrently", []phases.Statement{st}, nil)
				continue
			}
			if st.NewTransaction {
				flush()
			}
			group = append(group, st)
		}
		flush()
		for i := range ph.Backfills {
			add(pi, ph.Kind, tableName(ph.Backfills[i].Table), nil, &ph.Backfills[i])
		}
	}
	return out
}

// Files renders the plan's steps as golang-migrate migrations, in order.
func Files(p *phases.Plan) []File {
	var out []File
	for _, st := range Steps(p) {
		ph := p.Phases[st.PhaseIndex]
		header := fmt.Sprintf("-- phasekit plan %s, phase %d of %d: %s\n-- apps that must work before: %s; after: %s\n",
			phases.ShortHash(p.Hash), st.PhaseIndex+1, len(p.Phases), ph.Kind, strings.Join(ph.AppsBefore, ", "), strings.Join(ph.AppsAfter, ", "))
		if ph.DeployBefore != "" {
			header += "-- before this phase: " + ph.DeployBefore + "\n"
		}
		f := File{Version: st.Version, Name: st.Name, Phase: st.Phase}
		switch {
		case st.Backfill != nil:
			directive, _ := json.Marshal(st.Backfill)
			f.Up = header + BackfillDirective + string(directive) + "\n" +
				"-- phasekit apply runs this in keyset batches; a plain golang-migrate run does it as one statement.\n" +
				st.Backfill.SQL + ";\n"
			f.Down = header + "-- nothing to undo: the backfilled columns go away with the expand phase's rollback\nSELECT 1;\n"
		case !st.Transactional():
			f.Up = header + "-- runs outside a transaction: keep it alone in this file\n" + st.Statements[0].SQL + ";\n"
			f.Down = header + rollbackSQL(st.Statements[0])
		default:
			f.Up = header + transactionalUp(st.Statements)
			f.Down = header + transactionalDown(st.Statements)
		}
		out = append(out, f)
	}
	return out
}

func transactionalUp(group []phases.Statement) string {
	var b strings.Builder
	fmt.Fprintf(&b, "SET lock_timeout = '%s';\n", DefaultLockTimeout)
	for _, st := range group {
		if st.Why != "" {
			fmt.Fprintf(&b, "\n-- %s (lock: %s)\n", st.Why, st.Lock)
		}
		b.WriteString(st.SQL + ";\n")
	}
	return b.String()
}

func transactionalDown(group []phases.Statement) string {
	var b strings.Builder
	fmt.Fprintf(&b, "SET lock_timeout = '%s';\n", DefaultLockTimeout)
	for i := len(group) - 1; i >= 0; i-- {
		for _, r := range group[i].Rollback {
			b.WriteString(r + ";\n")
		}
	}
	return b.String()
}

func rollbackSQL(st phases.Statement) string {
	if len(st.Rollback) == 0 {
		return "SELECT 1;\n"
	}
	return strings.Join(st.Rollback, ";\n") + ";\n"
}

func what(group []phases.Statement) string {
	tables := []string{}
	seen := map[string]bool{}
	for _, st := range group {
		if st.Table != "" && !seen[st.Table] {
			seen[st.Table] = true
			tables = append(tables, tableName(st.Table))
		}
	}
	if len(tables) == 0 {
		return "setup"
	}
	if len(tables) > 2 {
		tables = append(tables[:2], "more")
	}
	return strings.Join(tables, "_")
}

func tableName(q string) string {
	if i := strings.LastIndexByte(q, '.'); i >= 0 {
		return q[i+1:]
	}
	return q
}

func slug(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_':
			b.WriteRune(r)
		case r == '-':
			b.WriteRune('_')
		}
	}
	return b.String()
}

// Write writes the plan's golang-migrate files, plan.json and PLAN.md (made by
// render once the phases know their files) into dir, which must be empty or
// not exist.
func Write(dir string, p *phases.Plan, render func(*phases.Plan) string) ([]File, error) {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("write plan: %s is not empty; choose a new directory", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("write plan: %w", err)
	}
	files := Files(p)
	for i := range p.Phases {
		p.Phases[i].Files = nil
	}
	for _, f := range files {
		base := fmt.Sprintf("%06d_%s", f.Version, f.Name)
		for i := range p.Phases {
			if p.Phases[i].Kind == f.Phase {
				p.Phases[i].Files = append(p.Phases[i].Files, base)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, base+".up.sql"), []byte(f.Up), 0o644); err != nil {
			return nil, fmt.Errorf("write plan: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, base+".down.sql"), []byte(f.Down), 0o644); err != nil {
			return nil, fmt.Errorf("write plan: %w", err)
		}
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("write plan.json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "plan.json"), append(b, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("write plan.json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "PLAN.md"), []byte(render(p)), 0o644); err != nil {
		return nil, fmt.Errorf("write PLAN.md: %w", err)
	}
	return files, nil
}

// ReadPlan reads plan.json from a plan directory.
// ReadCheckedPlan reads dir/plan.json and refuses it (*RefusedError) when it
// does not read, or when its phases no longer hash to its hash: edited after
// planning. Every command that runs or judges a plan reads it this way.
func ReadCheckedPlan(dir string) (*phases.Plan, error) {
	p, err := ReadPlan(dir)
	if err != nil {
		return nil, &RefusedError{Msg: err.Error()}
	}
	if got := p.ComputeHash(); got != p.Hash {
		return nil, &RefusedError{Msg: fmt.Sprintf("%s/plan.json was edited after planning (its phases hash to %s, not %s): plan again", dir, phases.ShortHash(got), phases.ShortHash(p.Hash))}
	}
	return p, nil
}

// ReadPlan reads dir/plan.json as it is (no hash check: ReadCheckedPlan).
func ReadPlan(dir string) (*phases.Plan, error) {
	b, err := os.ReadFile(filepath.Join(dir, "plan.json"))
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	var p phases.Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("read plan: %s: %w", filepath.Join(dir, "plan.json"), err)
	}
	return &p, nil
}
