package migrations

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/phases"
)

// The application's own golang-migrate version table belongs to the
// application: phasekit never creates it and, unless a plan was made with
// plan --app-version-table, never writes it. With that option the plan
// carries the version of the application's migration file it implements, and
// apply sets the table to that version in the transaction of the plan's last
// step, so golang-migrate counts the file as applied exactly when its whole
// effect is there. It does so only when the table exists, holds one clean row
// (or none) and a lower version; the previous value is kept in
// phasekit.app_versions and put back when that last step is rolled back.

// lastStep is the version of the plan's last step, 0 for an empty plan.
func lastStep(p *phases.Plan) uint {
	steps := Steps(p)
	if len(steps) == 0 {
		return 0
	}
	return steps[len(steps)-1].Version
}

// appVersionStatements returns what sets the application's version after
// step v, when v is the plan's last step and the plan asks for it.
func (s *session) appVersionStatements(ctx context.Context, v uint) ([]phases.Statement, error) {
	av := s.plan.AppVersion
	if av == nil || v != lastStep(s.plan) {
		return nil, nil
	}
	table := change.QuoteQualified(av.Table)
	var exists bool
	if err := s.conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&exists); err != nil {
		return nil, fmt.Errorf("look up the application's version table %s: %w", av.Table, err)
	}
	if !exists {
		fmt.Fprintf(s.out, "  app version: %s does not exist; phasekit does not create it, so version %d is not recorded there\n", av.Table, av.Version)
		return nil, nil
	}
	rows, err := s.conn.Query(ctx, fmt.Sprintf(`SELECT version::bigint, dirty::bool FROM %s`, table))
	if err != nil {
		return nil, fmt.Errorf("read the application's version table %s (want golang-migrate's version bigint, dirty boolean): %w", av.Table, err)
	}
	type row struct {
		version int64
		dirty   bool
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		return x, r.Scan(&x.version, &x.dirty)
	})
	if err != nil {
		return nil, fmt.Errorf("read the application's version table %s: %w", av.Table, err)
	}
	var previous *int64
	switch {
	case len(got) > 1:
		fmt.Fprintf(s.out, "  app version: %s has %d rows, not golang-migrate's one: left as it is\n", av.Table, len(got))
		return nil, nil
	case len(got) == 1 && got[0].dirty:
		fmt.Fprintf(s.out, "  app version: %s is dirty at %d: left as it is (fix the application's migration state first)\n", av.Table, got[0].version)
		return nil, nil
	case len(got) == 1 && got[0].version >= av.Version:
		fmt.Fprintf(s.out, "  app version: %s is at %d already, not below %d: left as it is\n", av.Table, got[0].version, av.Version)
		return nil, nil
	case len(got) == 1:
		previous = &got[0].version
	}
	set := fmt.Sprintf("INSERT INTO %s (version, dirty) SELECT %d, false WHERE NOT EXISTS (SELECT 1 FROM %s)", table, av.Version, table)
	if previous != nil {
		// Guarded, so a runner that moved it meanwhile is not overwritten.
		set = fmt.Sprintf("UPDATE %s SET version = %d, dirty = false WHERE version = %d AND NOT dirty", table, av.Version, *previous)
	}
	prev := "NULL"
	if previous != nil {
		prev = fmt.Sprint(*previous)
	}
	fmt.Fprintf(s.out, "  app version: %s set to %d (%s), was %s\n", av.Table, av.Version, av.File, prev)
	return []phases.Statement{
		{SQL: fmt.Sprintf("INSERT INTO phasekit.app_versions (hash, table_name, previous, set_to) VALUES (%s, %s, %s, %d) ON CONFLICT (hash) DO UPDATE SET previous = EXCLUDED.previous, set_to = EXCLUDED.set_to, set_at = now()",
			change.QuoteLiteral(s.plan.Hash), change.QuoteLiteral(av.Table), prev, av.Version), Lock: phases.LockRowExclusive, Transactional: true},
		{SQL: set, Lock: phases.LockRowExclusive, Transactional: true, Table: av.Table},
	}, nil
}

// appVersionRestore returns what puts the application's version back when
// step v, the plan's last, is rolled back: only if phasekit set it and it
// still holds what phasekit set.
func (s *session) appVersionRestore(ctx context.Context, v uint) ([]phases.Statement, error) {
	if v != lastStep(s.plan) {
		return nil, nil
	}
	var table string
	var previous *int64
	var setTo int64
	err := s.conn.QueryRow(ctx, `SELECT table_name, previous, set_to FROM phasekit.app_versions WHERE hash = $1`, s.plan.Hash).Scan(&table, &previous, &setTo)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read phasekit.app_versions: %w", err)
	}
	q := change.QuoteQualified(table)
	restore := fmt.Sprintf("DELETE FROM %s WHERE version = %d AND NOT dirty", q, setTo)
	if previous != nil {
		restore = fmt.Sprintf("UPDATE %s SET version = %d WHERE version = %d AND NOT dirty", q, *previous, setTo)
	}
	fmt.Fprintf(s.out, "  app version: %s put back from %d\n", table, setTo)
	return []phases.Statement{
		{SQL: restore, Lock: phases.LockRowExclusive, Transactional: true, Table: table},
		{SQL: fmt.Sprintf("DELETE FROM phasekit.app_versions WHERE hash = %s", change.QuoteLiteral(s.plan.Hash)), Lock: phases.LockRowExclusive, Transactional: true},
	}, nil
}
