package compat

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/big"
	"os"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	pg "github.com/pganalyze/pg_query_go/v6"
	"gopkg.in/yaml.v3"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/internal/dbconn"
	"github.com/phasekit/phasekit/phases"
)

// ShadowPair is a read done two ways: through the old shape and through the
// new one. After dual-write and after backfill both run on the copy in one
// snapshot and their results must agree (GitHub's Scientist, for schemas).
//
// The first column of each query is the row key. After dual-write, rows the
// backfill has not reached yet read NULL through the new path: a key whose
// other new-path columns are all NULL is counted as pending there, not as a
// difference. After backfill every row must agree.
type ShadowPair struct {
	Name string `yaml:"name" json:"name"`
	Old  string `yaml:"old" json:"old"`
	New  string `yaml:"new" json:"new"`
	// Phases are the phases after which the pair runs; empty means
	// dual-write and backfill.
	Phases []phases.Kind `yaml:"phases,omitempty" json:"phases,omitempty"`
	Pos    change.Pos    `yaml:"-" json:"pos"`
}

// maxDiffs is how many differing rows a check shows.
const maxDiffs = 5

func (p ShadowPair) runsAfter(k phases.Kind) bool {
	if k == "" {
		return false
	}
	if len(p.Phases) == 0 {
		return k == phases.DualWrite || k == phases.Backfill
	}
	return slices.Contains(p.Phases, k)
}

// LoadShadow reads a YAML list of shadow pairs:
//
//   - name: customer emails
//     old: SELECT customer_id, email FROM customer
//     new: SELECT customer_id, email_address FROM customer
//
// Both queries are parsed with PostgreSQL's parser; errors name file:line:col.
func LoadShadow(file string) ([]ShadowPair, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, &change.InputError{Pos: change.Pos{File: file}, Msg: err.Error()}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &change.InputError{Pos: yamlErrPos(file, err), Msg: "invalid YAML: " + yamlErrMsg(err)}
	}
	if len(doc.Content) == 0 {
		return nil, &change.InputError{Pos: change.Pos{File: file, Line: 1, Col: 1}, Msg: "no shadow pairs: want a list of {name, old, new}"}
	}
	list := doc.Content[0]
	if list.Kind != yaml.SequenceNode {
		return nil, &change.InputError{Pos: nodePos(file, list), Msg: "want a list of shadow pairs {name, old, new}"}
	}
	var out []ShadowPair
	for _, n := range list.Content {
		var p ShadowPair
		if err := n.Decode(&p); err != nil {
			return nil, &change.InputError{Pos: nodePos(file, n), Msg: yamlErrMsg(err)}
		}
		p.Pos = nodePos(file, n)
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if k := n.Content[i].Value; k != "name" && k != "old" && k != "new" && k != "phases" {
					return nil, &change.InputError{Pos: nodePos(file, n.Content[i]), Msg: fmt.Sprintf("unknown key %q: want name, old, new, phases", k)}
				}
			}
		}
		for _, f := range []struct{ key, sql string }{{"name", p.Name}, {"old", p.Old}, {"new", p.New}} {
			if strings.TrimSpace(f.sql) == "" {
				return nil, &change.InputError{Pos: p.Pos, Msg: fmt.Sprintf("shadow pair needs %q", f.key)}
			}
		}
		for _, key := range []string{"old", "new"} {
			vn := valueNode(n, key)
			sql := p.Old
			if key == "new" {
				sql = p.New
			}
			if err := checkQuery(sql); err != nil {
				return nil, &change.InputError{Pos: nodePos(file, vn), Msg: fmt.Sprintf("shadow pair %q, %s query: %s", p.Name, key, err)}
			}
		}
		for _, k := range p.Phases {
			if !slices.Contains(phases.Order, k) {
				return nil, &change.InputError{Pos: nodePos(file, valueNode(n, "phases")), Msg: fmt.Sprintf("unknown phase %q", k)}
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// checkQuery parses sql and requires one SELECT.
func checkQuery(sql string) error {
	tree, err := pg.Parse(sql)
	if err != nil {
		return err
	}
	if len(tree.Stmts) != 1 || tree.Stmts[0].Stmt.GetSelectStmt() == nil {
		return errors.New("want exactly one SELECT")
	}
	return nil
}

func valueNode(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return m
}

func nodePos(file string, n *yaml.Node) change.Pos {
	return change.Pos{File: file, Line: n.Line, Col: n.Column}
}

// yamlErrPos finds "line N" in a yaml.v3 error.
func yamlErrPos(file string, err error) change.Pos {
	pos := change.Pos{File: file, Line: 1, Col: 1}
	var n int
	if _, e := fmt.Sscanf(strings.TrimPrefix(err.Error(), "yaml: "), "line %d:", &n); e == nil {
		pos.Line = n
	}
	return pos
}

func yamlErrMsg(err error) string {
	s := strings.TrimPrefix(err.Error(), "yaml: ")
	if i := strings.Index(s, ": "); strings.HasPrefix(s, "line ") && i > 0 {
		s = s[i+2:]
	}
	return s
}

// Check runs both queries in one REPEATABLE READ snapshot and compares them
// by key. With pendingOK, new-path rows whose non-key columns are all NULL
// count as pending backfill rather than as differences.
func (p ShadowPair) Check(ctx context.Context, dsn string, pendingOK bool) ShadowCheck {
	sc := ShadowCheck{Name: p.Name}
	fail := func(err error) ShadowCheck {
		sc.Error = dbconn.Redact(err.Error())
		sc.Summary = "could not run: " + sc.Error
		return sc
	}
	conn, err := dbconn.Connect(ctx, dsn)
	if err != nil {
		return fail(err)
	}
	defer conn.Close(context.Background())
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback(context.Background())
	oldRows, err := textRows(ctx, tx.Conn().PgConn(), p.Old)
	if err != nil {
		return fail(fmt.Errorf("old query: %w", err))
	}
	newRows, err := textRows(ctx, tx.Conn().PgConn(), p.New)
	if err != nil {
		return fail(fmt.Errorf("new query: %w", err))
	}
	oldByKey, newByKey := byKey(oldRows), byKey(newRows)
	keys := make([]string, 0, len(oldByKey)+len(newByKey))
	for k := range oldByKey {
		keys = append(keys, k)
	}
	for k := range newByKey {
		if _, ok := oldByKey[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, compareValues)
	for _, k := range keys {
		o, okO := oldByKey[k]
		n, okN := newByKey[k]
		sc.Rows++
		switch {
		case okO && okN && rowsEqual(o, n):
			continue
		case okO && okN && pendingOK && restNull(n):
			sc.Pending++
			continue
		}
		sc.Differ++
		if len(sc.Diffs) < maxDiffs {
			sc.Diffs = append(sc.Diffs, fmt.Sprintf("key %s: old %s, new %s", k, showRow(o, okO), showRow(n, okN)))
		}
	}
	sc.Passed = sc.Differ == 0
	switch {
	case sc.Passed && sc.Pending > 0:
		sc.Summary = fmt.Sprintf("%s agree, %d not yet backfilled", rows(sc.Rows-sc.Pending), sc.Pending)
	case sc.Passed:
		sc.Summary = rows(sc.Rows) + " agree"
	default:
		sc.Summary = fmt.Sprintf("%d of %d rows differ; first: %s", sc.Differ, sc.Rows, sc.Diffs[0])
	}
	return sc
}

func rows(n int) string {
	if n == 1 {
		return "1 row"
	}
	return fmt.Sprintf("%d rows", n)
}

// row is one result row in text form; nil is SQL NULL.
type row [][]byte

// textRows runs sql with the simple protocol, which returns every value as
// text, so that results of different types compare by what they print.
func textRows(ctx context.Context, c *pgconn.PgConn, sql string) ([]row, error) {
	results, err := c.Exec(ctx, sql).ReadAll()
	if err != nil {
		return nil, err
	}
	if len(results) != 1 {
		return nil, fmt.Errorf("want one result, got %d", len(results))
	}
	var out []row
	for _, r := range results[0].Rows {
		out = append(out, row(r))
	}
	return out, nil
}

func byKey(rows []row) map[string]row {
	m := make(map[string]row, len(rows))
	for _, r := range rows {
		if len(r) == 0 {
			continue
		}
		m[showValue(r[0])] = r
	}
	return m
}

func rowsEqual(a, b row) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !valuesEqual(a[i], b[i]) {
			return false
		}
	}
	return true
}

// valuesEqual compares two text values; numbers compare by value, so that
// 1.98 (numeric) equals 1.9800 (numeric(12,4)) and 2 equals 2.0.
func valuesEqual(a, b []byte) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	if bytes.Equal(a, b) {
		return true
	}
	x, okx := new(big.Rat).SetString(string(a))
	y, oky := new(big.Rat).SetString(string(b))
	return okx && oky && x.Cmp(y) == 0
}

func restNull(r row) bool {
	for _, v := range r[1:] {
		if v != nil {
			return false
		}
	}
	return len(r) > 1
}

func showValue(v []byte) string {
	if v == nil {
		return "NULL"
	}
	return string(v)
}

func showRow(r row, ok bool) string {
	if !ok {
		return "(missing)"
	}
	parts := make([]string, len(r))
	for i, v := range r {
		parts[i] = showValue(v)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// compareValues orders keys numerically when both are numbers.
func compareValues(a, b string) int {
	x, okx := new(big.Rat).SetString(a)
	y, oky := new(big.Rat).SetString(b)
	if okx && oky {
		return x.Cmp(y)
	}
	return strings.Compare(a, b)
}

// execScript runs a multi-statement script with the simple protocol in one
// implicit transaction, as psql -1 would; the error carries SQLSTATE.
func execScript(ctx context.Context, dsn, sql string) error {
	conn, err := dbconn.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.PgConn().Exec(ctx, sql).ReadAll()
	return sqlError(err)
}

// sqlError renders a server error as psql does: ERROR: message (SQLSTATE).
func sqlError(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %s (SQLSTATE %s)", pe.Severity, pe.Message, pe.Code)
	}
	return err
}
