package gate

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/phases"
)

// BackfillCheck is one backfill's verification, as the ledger recorded it
// when the backfill finished.
type BackfillCheck struct {
	Index int    `json:"index"`
	Table string `json:"table"`
	// Remaining is the verify query's count of rows whose new column IS
	// DISTINCT FROM its expected value; nil when it was not recorded.
	Remaining  *int64     `json:"remaining"`
	VerifiedAt *time.Time `json:"verified_at,omitempty"`
	Status     Status     `json:"status"`
}

// checkBackfills wants every backfill of the plan verified with 0 rows
// differing.
func checkBackfills(ctx context.Context, conn *pgx.Conn, p *phases.Plan) (Check, error) {
	c := Check{Name: CheckBackfill, Status: Pass}
	var steps []migrations.Step
	for _, st := range migrations.Steps(p) {
		if st.Backfill != nil {
			steps = append(steps, st)
		}
	}
	if len(steps) == 0 {
		c.Summary = "the plan has no backfill"
		return c, nil
	}
	all, err := migrations.Status(ctx, conn, p.Hash)
	if err != nil {
		return c, err
	}
	recorded := map[int]migrations.BackfillStatus{}
	if len(all) > 0 {
		for _, b := range all[0].Backfills {
			recorded[b.Index] = b
		}
	}
	var bad []string
	for _, st := range steps {
		bc := BackfillCheck{Index: st.BackfillIndex, Table: st.Backfill.Table, Status: Pass}
		b, ok := recorded[st.BackfillIndex]
		switch {
		case !ok || b.Remaining == nil:
			bc.Status = Fail
			why := "not verified: the backfill has not finished on this database"
			if len(all) == 0 {
				why = "not verified: the plan has not run on this database"
			}
			c.Evidence = append(c.Evidence, fmt.Sprintf("backfill %s: %s", bc.Table, why))
			bad = append(bad, bc.Table+" not verified")
		case *b.Remaining != 0:
			bc.Remaining, bc.VerifiedAt = b.Remaining, b.VerifiedAt
			bc.Status = Fail
			c.Evidence = append(c.Evidence, fmt.Sprintf("backfill %s: verified%s: %d row(s) differ from their expected value", bc.Table, at(b.VerifiedAt), *b.Remaining))
			bad = append(bad, fmt.Sprintf("%s has %d row(s) differing", bc.Table, *b.Remaining))
		default:
			bc.Remaining, bc.VerifiedAt = b.Remaining, b.VerifiedAt
			c.Evidence = append(c.Evidence, fmt.Sprintf("backfill %s: verified%s: 0 rows differ (%d rows walked)", bc.Table, at(b.VerifiedAt), b.Rows))
		}
		c.Backfills = append(c.Backfills, bc)
	}
	if len(bad) > 0 {
		c.Status = Fail
		c.Summary = "backfill verification failed: " + strings.Join(bad, "; ")
		return c, nil
	}
	c.Summary = fmt.Sprintf("%d backfill(s) verified: 0 rows differ", len(steps))
	return c, nil
}

func at(t *time.Time) string {
	if t == nil {
		return ""
	}
	return " at " + t.UTC().Format(time.RFC3339)
}
