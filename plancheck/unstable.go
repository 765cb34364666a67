package plancheck

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/phases"
)

// A file can write other rows each time it runs: now(), random(),
// gen_random_uuid() in a default, an INSERT or an UPDATE. The plan then
// differs from the replay on those rows however right it is. settleUnstable
// replays the file a second time to learn which columns it fills differently
// run to run, and compares those tables again without them: the other columns
// row by row, as before, and each unstable column on its NULLs and, where
// both runs of the file show it, on whether every value is distinct or all
// are one. A difference the file does not make of itself stays.
func (d *Dev) settleUnstable(ctx context.Context, r *Replay, gotDB string, diffs []phases.Difference) ([]phases.Difference, []string, error) {
	var tables []string
	for _, df := range diffs {
		if t, ok := strings.CutPrefix(df.Object, "rows of "); ok {
			tables = append(tables, t)
		}
	}
	if len(tables) == 0 || r.migrations == nil {
		return diffs, nil, nil
	}
	again, err := d.Replay(ctx, r.migrations)
	if again != nil {
		defer d.drop(again.DB)
	}
	if err != nil {
		// The file ran once; a second run that fails says nothing about
		// the plan: keep the differences.
		return diffs, nil, nil
	}
	settled := map[string]string{}
	for _, t := range tables {
		note, err := d.settleTable(ctx, t, r.DB, again.DB, gotDB)
		if err != nil {
			return nil, nil, err
		}
		if note != "" {
			settled["rows of "+t] = note
		}
	}
	var kept []phases.Difference
	var notes []string
	for _, df := range diffs {
		if n, ok := settled[df.Object]; ok {
			notes = append(notes, n)
			continue
		}
		kept = append(kept, df)
	}
	return kept, notes, nil
}

// settleTable compares table t (schema.name, as the catalogue names it)
// without the columns two replays of the file (fileDB, againDB) fill
// differently. It returns a note when the plan's rows (gotDB) equal the
// file's that way, "" when they do not or the file is not the reason.
func (d *Dev) settleTable(ctx context.Context, t, fileDB, againDB, gotDB string) (string, error) {
	file, err := d.columnProfiles(ctx, fileDB, t)
	if err != nil {
		return "", err
	}
	again, err := d.columnProfiles(ctx, againDB, t)
	if err != nil {
		return "", err
	}
	var unstable []string
	loose := map[string]bool{}
	for col, p := range file {
		q, ok := again[col]
		if !ok || p == q {
			continue
		}
		if p.nulls != q.nulls || p.rows != q.rows {
			// The file's own runs differ in their NULLs: nothing to
			// compare the plan with.
			return "", nil
		}
		// How many distinct values clock_timestamp() gives a statement
		// depends on how fast it ran: only "every value distinct" (a
		// random uuid) and "one value" (now() in one statement) are kept,
		// when both runs show the same.
		loose[col] = p.shape() == "" || p.shape() != q.shape()
		unstable = append(unstable, col)
	}
	if len(unstable) == 0 {
		return "", nil
	}
	sort.Strings(unstable)
	got, err := d.columnProfiles(ctx, gotDB, t)
	if err != nil {
		return "", err
	}
	var counted []string
	for _, col := range unstable {
		p, q := file[col], got[col]
		if p.nulls != q.nulls || p.rows != q.rows || !loose[col] && p.shape() != q.shape() {
			return "", nil
		}
		if !loose[col] {
			counted = append(counted, col)
		}
	}
	a, err := d.digestWithout(ctx, fileDB, t, unstable)
	if err != nil {
		return "", err
	}
	b, err := d.digestWithout(ctx, gotDB, t, unstable)
	if err != nil {
		return "", err
	}
	if a != b {
		return "", nil
	}
	shape := "NULLs and on whether every value is distinct or all are one"
	if len(counted) < len(unstable) {
		shape = "NULLs (and, where the file's two runs agree on it, on whether every value is distinct or all are one)"
	}
	return fmt.Sprintf("rows of %s compared without %s, which the file fills differently each time it runs (two replays of it differ there), and on %s %s", t, strings.Join(unstable, ", "), pick(len(unstable) == 1, "its", "their"), shape), nil
}

func pick(one bool, a, b string) string {
	if one {
		return a
	}
	return b
}

// profile is one column's values in a table: a digest of their multiset and
// its shape.
type profile struct {
	rows, nulls, distinct int64
	digest                string
}

// shape is "distinct" when every value differs from the others, "one" when
// all are the same, "" otherwise (or with fewer than two values).
func (p profile) shape() string {
	switch n := p.rows - p.nulls; {
	case n < 2:
		return ""
	case p.distinct == n:
		return "distinct"
	case p.distinct == 1:
		return "one"
	}
	return ""
}

// columnProfiles reads every column of table t (phasekit's own aside), by
// name as to_jsonb gives them, as the row digest sees them.
func (d *Dev) columnProfiles(ctx context.Context, db, t string) (map[string]profile, error) {
	conn, err := d.connect(ctx, db)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	q := fmt.Sprintf(`SELECT e.k, (SELECT count(*) FROM %[1]s), count(*) FILTER (WHERE e.v = 'null'::jsonb), count(DISTINCT e.v::text),
		md5(string_agg(e.v::text, E'\n' ORDER BY e.v::text))
		FROM %[1]s x, jsonb_each(to_jsonb(x)) e(k, v) WHERE NOT starts_with(e.k, 'phasekit_') GROUP BY e.k`, change.QuoteQualified(t))
	rows, err := conn.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("profile the columns of %s: %w", t, err)
	}
	out := map[string]profile{}
	var col string
	var p profile
	if _, err := pgx.ForEachRow(rows, []any{&col, &p.rows, &p.nulls, &p.distinct, &p.digest}, func() error {
		out[col] = p
		return nil
	}); err != nil {
		return nil, fmt.Errorf("profile the columns of %s: %w", t, err)
	}
	return out, nil
}

// digestWithout digests table t's rows as readRows does, without the
// columns named.
func (d *Dev) digestWithout(ctx context.Context, db, t string, without []string) (string, error) {
	conn, err := d.connect(ctx, db)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	var n int64
	var digest *string
	if err := conn.QueryRow(ctx, "SELECT "+rowsDigest(change.QuoteQualified(t), "k <> ALL($1)"), without).Scan(&n, &digest); err != nil {
		return "", fmt.Errorf("digest the rows of %s: %w", t, err)
	}
	return digestText(n, digest), nil
}
