package plancheck

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/schema"
)

// Replay is a migration replayed on a copy of the base schema.
type Replay struct {
	// Observed holds, per change (over all migrations, in order), what the
	// replay saw; see phases.Observed.
	Observed []*phases.Observed
	// DB is the copy holding the migration's end state: the file as written.
	DB string
	// Millis is how long the replay took.
	Millis int64
	// Unreplayable names the first statement with no plain SQL (a change
	// spec's remove_enum_value): the replay stops there and the plan cannot
	// be checked.
	Unreplayable string
	// Failed is the statement PostgreSQL refused, which ended the replay:
	// DB then holds the statements before it only.
	Failed *StatementError
	// migrations are what was replayed, for a second run (settleUnstable).
	migrations []*change.Migration
}

// StatementError is a statement PostgreSQL refused during the replay, on
// the schema the statements before it left.
type StatementError struct {
	Pos change.Pos
	SQL string
	Err error
}

func (e *StatementError) Error() string {
	msg := e.Err.Error()
	var pe *pgconn.PgError
	if errors.As(e.Err, &pe) {
		msg = fmt.Sprintf("ERROR: %s (SQLSTATE %s)", pe.Message, pe.Code)
		if pe.Detail != "" {
			msg += "; " + pe.Detail
		}
	}
	return fmt.Sprintf("%s: PostgreSQL refuses this statement on the schema the statements before it leave: %s", e.Pos, msg)
}

func (e *StatementError) Unwrap() error { return e.Err }

// Replay runs the migrations on a new copy of the base schema, statement by
// statement, and records for every change the schema before it and what
// running it did. A statement PostgreSQL refuses ends the replay with a
// *StatementError; the observations up to it are returned with it.
func (d *Dev) Replay(ctx context.Context, ms []*change.Migration) (*Replay, error) {
	db, err := d.copyOf(ctx, d.base)
	if err != nil {
		return nil, err
	}
	conn, err := d.connect(ctx, db)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	start := time.Now()
	r := &Replay{DB: db, migrations: ms}
	defer func() { r.Millis = time.Since(start).Milliseconds() }()
	rp := &replayer{conn: conn}
	if rp.current, err = schema.Introspect(ctx, conn); err != nil {
		return nil, err
	}
	for _, m := range ms {
		byStmt := map[int][]int{}
		base := len(r.Observed)
		for i, c := range m.Changes {
			byStmt[c.Stmt] = append(byStmt[c.Stmt], base+i)
			r.Observed = append(r.Observed, nil)
		}
		for si, st := range m.Statements {
			idx := byStmt[si]
			changes := make([]change.Change, len(idx))
			for k, i := range idx {
				changes[k] = m.Changes[i-base]
			}
			if st.SQL == "" {
				if r.Unreplayable == "" {
					r.Unreplayable = fmt.Sprintf("%s: no plain SQL stands for this change, so the replay (and the plan check) stops here", st.Pos)
				}
				return r, nil
			}
			obs, err := rp.statement(ctx, st, changes)
			for k, i := range idx {
				if k < len(obs) {
					r.Observed[i] = obs[k]
				}
			}
			if err != nil {
				r.Failed = &StatementError{Pos: st.Pos, SQL: st.SQL, Err: err}
				return r, r.Failed
			}
		}
	}
	return r, nil
}

type replayer struct {
	conn    *pgx.Conn
	current *schema.Snapshot // the schema now, outside any transaction
}

// statement runs one statement and observes each of its changes.
func (rp *replayer) statement(ctx context.Context, st change.Statement, changes []change.Change) ([]*phases.Observed, error) {
	conn := rp.conn
	obs := make([]*phases.Observed, len(changes))
	for i := range obs {
		obs[i] = &phases.Observed{Before: rp.current}
	}
	if st.Transaction {
		// Every statement runs in a transaction of its own here.
		return obs, nil
	}
	if st.Autocommit {
		rel0, err := relfilenodes(ctx, conn)
		if err != nil {
			return obs, err
		}
		if _, err := conn.Exec(ctx, st.SQL); err != nil {
			return obs, err
		}
		after, err := schema.Introspect(ctx, conn)
		if err != nil {
			return obs, err
		}
		rel1, err := relfilenodes(ctx, conn)
		if err != nil {
			return obs, err
		}
		for i, c := range changes {
			obs[i].After = after
			obs[i].Rewritten = rewritten(rel0, rel1)
			// Building or dropping an index that is (not) there: nothing.
			obs[i].NoOp = phases.SnapshotShows(c) && unchanged(rp.current, after, rel0, rel1)
		}
		rp.current = after
		return obs, nil
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return obs, err
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if len(changes) > 1 {
		// Each change alone, in a savepoint, to see the schema between them;
		// then the statement as written, which is what counts.
		if _, err := tx.Exec(ctx, "SAVEPOINT phasekit_replay"); err != nil {
			return obs, err
		}
		cur := rp.current
		for i, c := range changes {
			obs[i].Before = cur
			if c.Replay == "" {
				continue
			}
			rel0, err := relfilenodes(ctx, conn)
			if err != nil {
				return obs, err
			}
			if _, err := tx.Exec(ctx, "SAVEPOINT phasekit_change"); err != nil {
				return obs, err
			}
			if err := execAroundViews(ctx, tx, c.Replay, []change.Change{c}, cur); err != nil {
				// Alone it fails (it needs its sibling subcommands): the
				// rest is planned against the schema so far.
				if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT phasekit_change"); err != nil {
					return obs, err
				}
				break
			}
			after, err := schema.Introspect(ctx, conn)
			if err != nil {
				return obs, err
			}
			rel1, err := relfilenodes(ctx, conn)
			if err != nil {
				return obs, err
			}
			obs[i].After = after
			obs[i].Rewritten = rewritten(rel0, rel1)
			obs[i].NoOp = phases.SnapshotShows(c) && unchanged(cur, after, rel0, rel1)
			cur = after
		}
		if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT phasekit_replay"); err != nil {
			return obs, err
		}
	}
	rel0, err := relfilenodes(ctx, conn)
	if err != nil {
		return obs, err
	}
	if err := execAroundViews(ctx, tx, st.SQL, changes, rp.current); err != nil {
		return obs, err
	}
	var xid *int64
	if err := tx.QueryRow(ctx, "SELECT txid_current_if_assigned()").Scan(&xid); err != nil {
		return obs, err
	}
	after, err := schema.Introspect(ctx, conn)
	if err != nil {
		return obs, err
	}
	rel1, err := relfilenodes(ctx, conn)
	if err != nil {
		return obs, err
	}
	if err := tx.Commit(ctx); err != nil {
		return obs, err
	}
	if len(changes) == 1 {
		obs[0].After = after
		obs[0].Rewritten = rewritten(rel0, rel1)
		// ALTER TABLE takes a transaction id even when it skips (IF NOT
		// EXISTS, SET NOT NULL on a NOT NULL column): the snapshot tells.
		obs[0].NoOp = xid == nil || phases.SnapshotShows(changes[0]) && unchanged(rp.current, after, rel0, rel1)
	} else if xid == nil {
		for i := range obs {
			obs[i].NoOp = true
		}
	}
	rp.current = after
	return obs, nil
}

// execAroundViews runs a statement; when PostgreSQL refuses a type change
// because views read the column ("cannot alter type of a column used by a
// view or rule"), it runs it the way the plan does and a team would: the
// views dropped, the statement, the views created again from their own
// definitions. That is the file's meaning the plan is checked against.
func execAroundViews(ctx context.Context, tx pgx.Tx, sql string, changes []change.Change, current *schema.Snapshot) error {
	if _, err := tx.Exec(ctx, "SAVEPOINT phasekit_statement"); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, sql)
	var pe *pgconn.PgError
	if err == nil || !errors.As(err, &pe) || pe.Code != "0A000" || !strings.Contains(pe.Message, "used by a view or rule") {
		return err
	}
	var views []*schema.View
	seen := map[string]bool{}
	for _, c := range changes {
		if c.Column == "" {
			continue
		}
		for _, v := range current.ViewsUsing(c.Table, c.Column) {
			if v.Materialized {
				return err
			}
			if !seen[v.QName()] {
				seen[v.QName()] = true
				views = append(views, v)
			}
		}
	}
	if len(views) == 0 {
		return err
	}
	if _, rerr := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT phasekit_statement"); rerr != nil {
		return rerr
	}
	for i := len(views) - 1; i >= 0; i-- {
		if _, err := tx.Exec(ctx, "DROP VIEW "+pgx.Identifier{views[i].Schema, views[i].Name}.Sanitize()); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(ctx, sql); err != nil {
		return err
	}
	for _, v := range views {
		if _, err := tx.Exec(ctx, phases.CreateViewSQL(v)); err != nil {
			return err
		}
	}
	return nil
}

// sameSchema compares two snapshots, row estimates and sizes aside.
func sameSchema(a, b *schema.Snapshot) bool {
	if a == nil || b == nil {
		return false
	}
	return len(phasesDiff(a, b)) == 0
}

// relfilenodes maps every table and index of the user's schemas to its
// storage file: a new one means PostgreSQL rewrote it.
func relfilenodes(ctx context.Context, conn *pgx.Conn) (map[string]uint32, error) {
	rows, err := conn.Query(ctx, `SELECT n.nspname || '.' || c.relname, c.relfilenode FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'i', 'm', 't') AND `+userObjects)
	if err != nil {
		return nil, fmt.Errorf("read relfilenodes: %w", err)
	}
	out := map[string]uint32{}
	var name string
	var node uint32
	_, err = pgx.ForEachRow(rows, []any{&name, &node}, func() error {
		out[name] = node
		return nil
	})
	return out, err
}

// unchanged tells that a statement left the schema as it was: the same
// snapshot, and no table, index or materialized view came or went (the
// snapshot does not hold everything, so a statement it sees no trace of may
// still have made or dropped one).
func unchanged(a, b *schema.Snapshot, rel0, rel1 map[string]uint32) bool {
	return sameSchema(a, b) && sameRelations(rel0, rel1)
}

// sameRelations tells that the same relations (by name) are there.
func sameRelations(before, after map[string]uint32) bool {
	if len(before) != len(after) {
		return false
	}
	for name := range before {
		if _, ok := after[name]; !ok {
			return false
		}
	}
	return true
}

func rewritten(before, after map[string]uint32) []string {
	var out []string
	for name, node := range after {
		if old, ok := before[name]; ok && old != node {
			out = append(out, name)
		}
	}
	return out
}

// phasesDiff is what differs between two snapshots (see phases).
func phasesDiff(a, b *schema.Snapshot) []string {
	return phases.SchemaDiff(a, b)
}
