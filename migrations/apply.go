package migrations

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/phasekit/phasekit/internal/dbconn"
	"github.com/phasekit/phasekit/phases"
)

// ApplyOptions selects what Apply runs and how.
type ApplyOptions struct {
	// Phase runs only this phase (the phases before it must be done).
	Phase phases.Kind
	// Until runs every phase up to and including this one. With neither
	// Phase nor Until, Apply runs the next phase that is not done.
	Until phases.Kind
	// DryRun prints what would run and changes nothing.
	DryRun   bool
	DDL      DDLOptions
	Backfill BackfillOptions
	Runner   Runner
	// Out receives one line per step (stdout in the CLI).
	Out io.Writer
	Log *slog.Logger
	// Gate is asked right before the contract phase runs (not on a dry
	// run), on the session's connection, with the ledger in place: an error
	// refuses contract, leaves it pending and is returned as is. Phases
	// before contract in the same run have run by then.
	Gate func(ctx context.Context, conn *pgx.Conn, p *phases.Plan) error
}

// RollbackOptions selects what Rollback undoes.
type RollbackOptions struct {
	// To keeps this phase and the ones before it; "" rolls back the last
	// phase that was started.
	To phases.Kind
	// All rolls back every phase.
	All bool
	// Force rolls back a phase whose rollback cannot restore data.
	Force  bool
	DDL    DDLOptions
	Runner Runner
	Out    io.Writer
	Log    *slog.Logger
}

// LockHeldError is returned when another phasekit runs the same plan.
type LockHeldError struct {
	Hash   string
	PID    int
	Holder string // the holder's application_name: phasekit/VERSION host=... user=...
	Client string
	Since  time.Time
}

func (e *LockHeldError) Error() string {
	return fmt.Sprintf("plan %s is being run by another phasekit: pid %d (%s) from %s, connected since %s", phases.ShortHash(e.Hash), e.PID, e.Holder, e.Client, e.Since.Format(time.RFC3339))
}

// RefusedError is a plan phasekit will not run against this database: it
// was edited after planning, the schema drifted, another plan in flight
// changes the same tables, or the phases asked for are out of order.
type RefusedError struct{ Msg string }

func (e *RefusedError) Error() string { return e.Msg }

// PooledError says the connection goes through a pooler or proxy.
type PooledError struct {
	// Announced is the backend pid the connection's startup announced
	// (BackendKeyData); Server is pg_backend_pid() of the session that ran
	// the query.
	Announced, Server uint32
}

func (e *PooledError) Error() string {
	return fmt.Sprintf("the connection goes through a pooler or proxy (PgBouncer, Pgpool-II, RDS Proxy...): it announced backend pid %d but its queries ran in backend %d. "+
		"phasekit's plan lock is a session advisory lock, which a pool in transaction mode does not keep with the client, so two runners could both hold it: "+
		"connect to PostgreSQL directly, or, if this pool runs in session mode, pass --session-pool", e.Announced, e.Server)
}

// CheckDirect returns a *PooledError unless conn talks to its PostgreSQL
// backend directly. A pooler or proxy answers the client's startup with a
// BackendKeyData of its own (it must route cancel requests), so the pid the
// connection announced differs from pg_backend_pid() of the server session
// that runs its queries. This cannot tell session pooling, where one client
// keeps one server session and locks hold, from transaction pooling, where
// they do not: the caller decides (DDLOptions.SessionPool).
func CheckDirect(ctx context.Context, conn *pgx.Conn) error {
	var server uint32
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&server); err != nil {
		return fmt.Errorf("read the backend pid: %w", err)
	}
	if announced := conn.PgConn().PID(); announced != server {
		return &PooledError{Announced: announced, Server: server}
	}
	return nil
}

// advisoryClass is the first key of phasekit's advisory locks ("phk").
const advisoryClass = 0x70686b

// session is one connection holding a plan's advisory lock.
type session struct {
	conn *pgx.Conn
	dsn  string
	plan *phases.Plan
	log  *slog.Logger
	out  io.Writer
}

func open(ctx context.Context, dsn, dir string, runner Runner, sessionPool bool, log *slog.Logger, out io.Writer) (*session, error) {
	p, err := ReadCheckedPlan(dir)
	if err != nil {
		return nil, err
	}
	// A second runner reads who holds the lock from application_name.
	conn, err := dbconn.ConnectWith(ctx, dsn, dbconn.Options{
		ApplicationName: fmt.Sprintf("phasekit/%s host=%s user=%s pid=%d", runner.Version, runner.Host, runner.OSUser, runner.PID)})
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	if out == nil {
		out = io.Discard
	}
	if err := CheckDirect(ctx, conn); err != nil {
		if !sessionPool {
			conn.Close(ctx)
			return nil, err
		}
		log.Warn("connected through a pooler or proxy; going on because the pool is declared session mode (--session-pool)", "detail", err.Error())
	}
	s := &session{conn: conn, dsn: dsn, plan: p, log: log, out: out}
	var got bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1, hashtext($2))", advisoryClass, p.Hash).Scan(&got); err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("take the plan's advisory lock: %w", err)
	}
	if !got {
		held := &LockHeldError{Hash: p.Hash}
		_ = conn.QueryRow(ctx, `SELECT a.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local socket'), a.backend_start
			FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
			WHERE l.locktype = 'advisory' AND l.classid = $1 AND l.objid = hashtext($2)::oid AND l.objsubid = 2 AND l.granted`,
			advisoryClass, p.Hash).Scan(&held.PID, &held.Holder, &held.Client, &held.Since)
		conn.Close(ctx)
		return nil, held
	}
	return s, nil
}

// withLog gives the DDL runner the session's logger unless it has its own.
func (s *session) withLog(o DDLOptions) DDLOptions {
	if o.Log == nil {
		o.Log = s.log
	}
	return o
}

func (s *session) close() {
	ctx := context.Background()
	_, _ = s.conn.Exec(ctx, "SELECT pg_advisory_unlock($1, hashtext($2))", advisoryClass, s.plan.Hash)
	s.conn.Close(ctx)
}

// Apply runs the selected phases of the plan in dir against the database,
// recording progress in the ledger; a run stopped at any point (even by
// kill -9) resumes where it stopped.
func Apply(ctx context.Context, dsn, dir string, opts ApplyOptions) (*PlanStatus, error) {
	s, err := open(ctx, dsn, dir, opts.Runner, opts.DDL.SessionPool, opts.Log, opts.Out)
	if err != nil {
		return nil, err
	}
	defer s.close()
	p := s.plan
	opts.DDL = s.withLog(opts.DDL)
	if opts.DryRun {
		return s.dryRun(ctx, opts)
	}
	// Every refusal comes before the ledger is created: a refused run leaves
	// the database as it was.
	if err := s.refuseConflicts(ctx); err != nil {
		return nil, err
	}
	st, err := s.status(ctx)
	if err != nil {
		return nil, err
	}
	if !started(st) {
		if err := s.refuseDrift(ctx); err != nil {
			return nil, err
		}
	}
	if _, err := selectPhases(p, st, opts); err != nil {
		return nil, err
	}
	if err := s.refuseWithoutPrivileges(ctx); err != nil {
		return nil, err
	}
	if err := ensureLedger(ctx, s.conn); err != nil {
		return nil, err
	}
	if err := registerPlan(ctx, s.conn, p); err != nil {
		return nil, err
	}
	if st, err = s.status(ctx); err != nil {
		return nil, err
	}
	run, err := selectPhases(p, st, opts)
	if err != nil {
		return nil, err
	}
	if len(run) == 0 {
		fmt.Fprintf(s.out, "plan %s: nothing to apply, every phase asked for is done\n", phases.ShortHash(p.Hash))
	}
	done, err := s.doneSteps(ctx)
	if err != nil {
		return nil, err
	}
	steps := Steps(p)
	for _, pi := range run {
		if p.Phases[pi].Kind == phases.Contract && opts.Gate != nil {
			if err := opts.Gate(ctx, s.conn, p); err != nil {
				return nil, err
			}
		}
		if err := s.runPhase(ctx, pi, steps, done, opts); err != nil {
			msg := err.Error()
			_, _ = s.conn.Exec(context.Background(), `UPDATE phasekit.phases SET state = $3, error = $4 WHERE hash = $1 AND position = $2`, p.Hash, pi, StateFailed, msg)
			return nil, fmt.Errorf("phase %s of plan %s: %w", p.Phases[pi].Kind, phases.ShortHash(p.Hash), err)
		}
	}
	return s.status(ctx)
}

func (s *session) runPhase(ctx context.Context, pi int, steps []Step, done map[uint]bool, opts ApplyOptions) error {
	p := s.plan
	ph := p.Phases[pi]
	r := opts.Runner
	if _, err := s.conn.Exec(ctx, `UPDATE phasekit.phases SET state = $3, started_at = coalesce(started_at, now()), finished_at = NULL, error = NULL, host = $4, os_user = $5, pid = $6, version = $7
		WHERE hash = $1 AND position = $2`, p.Hash, pi, StateRunning, r.Host, r.OSUser, r.PID, r.Version); err != nil {
		return fmt.Errorf("mark phase running: %w", err)
	}
	fmt.Fprintf(s.out, "phase %d/%d %s (apps before: %s; after: %s)\n", pi+1, len(p.Phases), ph.Kind, strings.Join(ph.AppsBefore, ", "), strings.Join(ph.AppsAfter, ", "))
	for _, st := range steps {
		if st.PhaseIndex != pi {
			continue
		}
		if done[st.Version] {
			fmt.Fprintf(s.out, "  %06d_%s: already done\n", st.Version, st.Name)
			continue
		}
		start := time.Now()
		if err := s.runStep(ctx, st, opts); err != nil {
			return fmt.Errorf("step %06d_%s: %w", st.Version, st.Name, err)
		}
		fmt.Fprintf(s.out, "  %06d_%s: done in %s\n", st.Version, st.Name, time.Since(start).Round(time.Millisecond))
	}
	if _, err := s.conn.Exec(ctx, `UPDATE phasekit.phases SET state = $3, finished_at = now() WHERE hash = $1 AND position = $2`, p.Hash, pi, StateDone); err != nil {
		return fmt.Errorf("mark phase done: %w", err)
	}
	if ph.DeployAfter != "" {
		fmt.Fprintf(s.out, "  next: %s\n", ph.DeployAfter)
	}
	return nil
}

// runRecorded runs stmts and the step's ledger record in one transaction;
// after the plan's last step, also the application's version (see
// appVersionStatements).
func (s *session) runRecorded(ctx context.Context, st Step, stmts []phases.Statement, o DDLOptions) error {
	group := append(append([]phases.Statement{}, stmts...), s.recordStep(st.Version)...)
	app, err := s.appVersionStatements(ctx, st.Version)
	if err != nil {
		return err
	}
	return RunGroup(ctx, s.conn, append(group, app...), o)
}

// recordStep marks a step done in the ledger, as statements, so a
// transactional step records itself in its own transaction and a kill can
// never separate the two. The application's own migration version table is
// never written here: see appVersionStatements.
func (s *session) recordStep(v uint) []phases.Statement {
	return []phases.Statement{
		{SQL: fmt.Sprintf("INSERT INTO phasekit.steps (hash, version) VALUES ('%s', %d) ON CONFLICT DO NOTHING", s.plan.Hash, v), Lock: phases.LockRowExclusive, Transactional: true},
	}
}

func (s *session) runStep(ctx context.Context, st Step, opts ApplyOptions) error {
	switch {
	case st.Backfill != nil:
		// The backfill's sessions show as phasekit in pg_stat_activity too.
		pool, err := dbconn.Pool(ctx, s.dsn, dbconn.Options{ApplicationName: s.conn.Config().RuntimeParams["application_name"] + " backfill"})
		if err != nil {
			return err
		}
		defer pool.Close()
		bopts := opts.Backfill
		if bopts.Progress == nil {
			bopts.Progress = s.out
		}
		res, err := Backfill(ctx, pool, *st.Backfill, &ledgerCursor{conn: s.conn, hash: s.plan.Hash, idx: st.BackfillIndex, table: st.Backfill.Table}, bopts)
		if res != nil {
			// Kept even when rows still differ: the contract gate reads it.
			// An empty table saved no cursor, so the row may not exist yet.
			if _, rerr := s.conn.Exec(ctx, `INSERT INTO phasekit.backfills (hash, idx, table_name, remaining, verified_at) VALUES ($1, $2, $3, $4, now())
				ON CONFLICT (hash, idx) DO UPDATE SET remaining = EXCLUDED.remaining, verified_at = EXCLUDED.verified_at`,
				s.plan.Hash, st.BackfillIndex, st.Backfill.Table, res.Remaining); rerr != nil {
				return fmt.Errorf("record backfill verification: %w", rerr)
			}
		}
		if err != nil {
			return err
		}
		return s.runRecorded(ctx, st, nil, opts.DDL)
	case !st.Transactional():
		if err := RunConcurrent(ctx, s.conn, st.Statements[0], opts.DDL); err != nil {
			return err
		}
		return s.runRecorded(ctx, st, nil, opts.DDL)
	default:
		return s.runRecorded(ctx, st, st.Statements, opts.DDL)
	}
}

func (s *session) doneSteps(ctx context.Context) (map[uint]bool, error) {
	rows, err := s.conn.Query(ctx, `SELECT version FROM phasekit.steps WHERE hash = $1`, s.plan.Hash)
	if err != nil {
		return nil, fmt.Errorf("read ledger steps: %w", err)
	}
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, fmt.Errorf("read ledger steps: %w", err)
	}
	out := map[uint]bool{}
	for _, v := range vs {
		out[uint(v)] = true
	}
	return out, nil
}

func (s *session) status(ctx context.Context) (*PlanStatus, error) {
	all, err := Status(ctx, s.conn, s.plan.Hash)
	if err != nil {
		return nil, err
	}
	if len(all) == 0 {
		st := &PlanStatus{Hash: s.plan.Hash, Tables: s.plan.Tables}
		for i, ph := range s.plan.Phases {
			st.Phases = append(st.Phases, PhaseStatus{Position: i, Kind: string(ph.Kind), State: StatePending})
		}
		return st, nil
	}
	return &all[0], nil
}

func started(st *PlanStatus) bool {
	for _, p := range st.Phases {
		if p.State != StatePending && p.State != StateRolledBack {
			return true
		}
	}
	return false
}

// selectPhases returns the positions to run, in order.
func selectPhases(p *phases.Plan, st *PlanStatus, opts ApplyOptions) ([]int, error) {
	find := func(k phases.Kind) (int, error) {
		for i, ph := range p.Phases {
			if ph.Kind == k {
				return i, nil
			}
		}
		var kinds []string
		for _, ph := range p.Phases {
			kinds = append(kinds, string(ph.Kind))
		}
		return 0, &RefusedError{Msg: fmt.Sprintf("the plan has no %s phase (it has: %s)", k, strings.Join(kinds, ", "))}
	}
	isDone := func(i int) bool { return st.Phases[i].State == StateDone }
	var out []int
	switch {
	case opts.Phase != "":
		i, err := find(opts.Phase)
		if err != nil {
			return nil, err
		}
		for j := 0; j < i; j++ {
			if !isDone(j) {
				return nil, &RefusedError{Msg: fmt.Sprintf("phase %s cannot run before %s is done (it is %s)", opts.Phase, p.Phases[j].Kind, st.Phases[j].State)}
			}
		}
		if !isDone(i) {
			out = append(out, i)
		}
	case opts.Until != "":
		// Phases are named, not assumed: every phase the plan has up to
		// the one asked for, in the order phases run, so one pipeline step
		// (--until contract) runs any plan, with or without that phase.
		i := -1
		for j, ph := range p.Phases {
			if ph.Kind.Index() <= opts.Until.Index() {
				i = j
			}
		}
		for j := 0; j <= i; j++ {
			if !isDone(j) {
				out = append(out, j)
			}
		}
	default:
		for j := range p.Phases {
			if !isDone(j) {
				out = append(out, j)
				break
			}
		}
	}
	return out, nil
}

// refuseConflicts refuses a plan when another plan in flight changes one of
// its tables: their triggers and shadow columns would interleave.
func (s *session) refuseConflicts(ctx context.Context) error {
	all, err := Status(ctx, s.conn, "")
	if err != nil {
		return err
	}
	mine := map[string]bool{}
	for _, t := range s.plan.Tables {
		mine[t] = true
	}
	for _, other := range all {
		if other.Hash == s.plan.Hash || !other.InFlight() {
			continue
		}
		for _, t := range other.Tables {
			if mine[t] {
				return &RefusedError{Msg: fmt.Sprintf("plan %s is in flight on %s: finish or roll it back before starting plan %s on the same table", phases.ShortHash(other.Hash), t, phases.ShortHash(s.plan.Hash))}
			}
		}
	}
	return nil
}

// refuseWithoutPrivileges refuses, before any change, a role that could not
// finish the plan: ALTER TABLE needs the table's owner, the ledger needs
// CREATE on the database (or an existing phasekit schema it can write).
func (s *session) refuseWithoutPrivileges(ctx context.Context) error {
	var role string
	var super, createDB, ledger bool
	if err := s.conn.QueryRow(ctx, `SELECT current_user, rolsuper, has_database_privilege(current_database(), 'CREATE'),
		coalesce(has_schema_privilege('phasekit', 'CREATE'), false) FROM pg_roles WHERE rolname = current_user`).Scan(&role, &super, &createDB, &ledger); err != nil {
		// has_schema_privilege errors when the schema does not exist yet.
		if err := s.conn.QueryRow(ctx, `SELECT current_user, rolsuper, has_database_privilege(current_database(), 'CREATE') FROM pg_roles WHERE rolname = current_user`).Scan(&role, &super, &createDB); err != nil {
			return fmt.Errorf("check privileges: %w", err)
		}
	}
	if super {
		return nil
	}
	if !createDB && !ledger {
		return &RefusedError{Msg: fmt.Sprintf("role %s cannot create phasekit's ledger schema: it needs CREATE on the database (or an existing phasekit schema it may write)", role)}
	}
	for _, t := range s.plan.Tables {
		var owner bool
		err := s.conn.QueryRow(ctx, `SELECT pg_has_role(current_user, c.relowner, 'USAGE') FROM pg_class c WHERE c.oid = to_regclass($1)`, t).Scan(&owner)
		if errors.Is(err, pgx.ErrNoRows) {
			continue // a table the plan creates, or a type
		}
		if err != nil {
			return fmt.Errorf("check privileges on %s: %w", t, err)
		}
		if !owner {
			return &RefusedError{Msg: fmt.Sprintf("role %s does not own table %s: ALTER TABLE needs its owner (or a role that is a member of it)", role, t)}
		}
	}
	return nil
}

// refuseDrift refuses a plan whose tables no longer look as they did when it
// was planned.
func (s *session) refuseDrift(ctx context.Context) error {
	if s.plan.SchemaFingerprint == "" {
		return nil
	}
	snap, err := schemaOf(ctx, s.conn)
	if err != nil {
		return err
	}
	if got := phases.Fingerprint(snap, s.plan.Tables); got != s.plan.SchemaFingerprint {
		return &RefusedError{Msg: fmt.Sprintf("the schema of %s changed since the plan was made (drift): plan again against this database", strings.Join(s.plan.Tables, ", "))}
	}
	return nil
}

func (s *session) dryRun(ctx context.Context, opts ApplyOptions) (*PlanStatus, error) {
	st, err := s.status(ctx)
	if err != nil {
		return nil, err
	}
	run, err := selectPhases(s.plan, st, opts)
	if err != nil {
		return nil, err
	}
	for _, pi := range run {
		fmt.Fprintf(s.out, "would run phase %s:\n", s.plan.Phases[pi].Kind)
		for _, step := range Steps(s.plan) {
			if step.PhaseIndex != pi {
				continue
			}
			if step.Backfill != nil {
				fmt.Fprintf(s.out, "  %06d_%s: backfill %s in keyset batches\n", step.Version, step.Name, step.Backfill.Table)
				continue
			}
			for _, stmt := range step.Statements {
				fmt.Fprintf(s.out, "  %06d_%s: %s [%s]\n", step.Version, step.Name, firstLine(stmt.SQL), stmt.Lock)
			}
		}
	}
	return st, nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}

// Rollback undoes phases of the plan in dir, newest first, running each done
// step's rollback statements in reverse.
func Rollback(ctx context.Context, dsn, dir string, opts RollbackOptions) (*PlanStatus, error) {
	s, err := open(ctx, dsn, dir, opts.Runner, opts.DDL.SessionPool, opts.Log, opts.Out)
	if err != nil {
		return nil, err
	}
	defer s.close()
	p := s.plan
	opts.DDL = s.withLog(opts.DDL)
	if err := ensureLedger(ctx, s.conn); err != nil {
		return nil, err
	}
	st, err := s.status(ctx)
	if err != nil {
		return nil, err
	}
	var undo []int
	for i := len(p.Phases) - 1; i >= 0; i-- {
		state := st.Phases[i].State
		if state == StatePending || state == StateRolledBack {
			continue
		}
		if opts.To != "" && p.Phases[i].Kind == opts.To {
			break
		}
		undo = append(undo, i)
		if opts.To == "" && !opts.All {
			break
		}
	}
	if opts.To != "" {
		found := false
		for _, ph := range p.Phases {
			found = found || ph.Kind == opts.To
		}
		if !found {
			return nil, &RefusedError{Msg: fmt.Sprintf("the plan has no %s phase", opts.To)}
		}
	}
	for _, pi := range undo {
		if !p.Phases[pi].Reversible && !opts.Force {
			return nil, &RefusedError{Msg: fmt.Sprintf("rolling back %s cannot restore the data it removed; pass --force to roll back the schema anyway", p.Phases[pi].Kind)}
		}
	}
	done, err := s.doneSteps(ctx)
	if err != nil {
		return nil, err
	}
	steps := Steps(p)
	for _, pi := range undo {
		fmt.Fprintf(s.out, "rolling back phase %s\n", p.Phases[pi].Kind)
		for i := len(steps) - 1; i >= 0; i-- {
			step := steps[i]
			if step.PhaseIndex != pi || !done[step.Version] {
				continue
			}
			if err := s.undoStep(ctx, step, opts); err != nil {
				_, _ = s.conn.Exec(context.Background(), `UPDATE phasekit.phases SET state = $3, error = $4 WHERE hash = $1 AND position = $2`, p.Hash, pi, StateFailed, "rollback: "+err.Error())
				return nil, fmt.Errorf("roll back step %06d_%s: %w", step.Version, step.Name, err)
			}
			fmt.Fprintf(s.out, "  %06d_%s: rolled back\n", step.Version, step.Name)
		}
		if _, err := s.conn.Exec(ctx, `UPDATE phasekit.phases SET state = $3, finished_at = now(), error = NULL WHERE hash = $1 AND position = $2`, p.Hash, pi, StateRolledBack); err != nil {
			return nil, fmt.Errorf("mark phase rolled back: %w", err)
		}
	}
	return s.status(ctx)
}

// runUnrecorded runs a step's rollback statements and removes the step
// from the ledger in one transaction; for the plan's last step it also puts
// back the application's version phasekit set.
func (s *session) runUnrecorded(ctx context.Context, st Step, stmts []phases.Statement, o DDLOptions) error {
	group := append(append([]phases.Statement{}, stmts...), s.unrecordStep(st.Version)...)
	app, err := s.appVersionRestore(ctx, st.Version)
	if err != nil {
		return err
	}
	return RunGroup(ctx, s.conn, append(group, app...), o)
}

// unrecordStep removes a step from the ledger.
func (s *session) unrecordStep(v uint) []phases.Statement {
	return []phases.Statement{
		{SQL: fmt.Sprintf("DELETE FROM phasekit.steps WHERE hash = '%s' AND version = %d", s.plan.Hash, v), Lock: phases.LockRowExclusive, Transactional: true},
	}
}

func (s *session) undoStep(ctx context.Context, step Step, opts RollbackOptions) error {
	if step.Backfill != nil {
		if _, err := s.conn.Exec(ctx, `DELETE FROM phasekit.backfills WHERE hash = $1 AND idx = $2`, s.plan.Hash, step.BackfillIndex); err != nil {
			return fmt.Errorf("forget backfill cursor: %w", err)
		}
		return s.runUnrecorded(ctx, step, nil, opts.DDL)
	}
	if !step.Transactional() {
		for _, r := range step.Statements[0].Rollback {
			if err := RunConcurrent(ctx, s.conn, phases.Statement{SQL: r, Lock: phases.LockShareUpdateExclusive, Table: step.Statements[0].Table}, opts.DDL); err != nil {
				return err
			}
		}
		return s.runUnrecorded(ctx, step, nil, opts.DDL)
	}
	var stmts []phases.Statement
	for i := len(step.Statements) - 1; i >= 0; i-- {
		for _, r := range step.Statements[i].Rollback {
			stmts = append(stmts, phases.Statement{SQL: r, Lock: phases.LockAccessExclusive, Transactional: true, Table: step.Statements[i].Table})
		}
	}
	return s.runUnrecorded(ctx, step, stmts, opts.DDL)
}
