package gate

import (
	"strings"
	"testing"
	"time"

	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/pipeline"
)

// TestCheckBake: every prod wave must run N+1 for its bake; the time left
// counts the waves still to deploy one after the other.
func TestCheckBake(t *testing.T) {
	pl, err := pipeline.Load("../testdata/pipeline/pipeline.yaml")
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	d := func(stage, wave, version string, at time.Duration) migrations.Deploy {
		return migrations.Deploy{App: "checkout", Stage: stage, Wave: wave, Version: version, At: t0.Add(at)}
	}
	// one-box 2h, us-east-1 1h, us-west-2 1h30m.
	all := []migrations.Deploy{
		d("alpha", "", "v42", 0),
		d("prod", "one-box", "v42", time.Hour),
		d("prod", "us-east-1", "v42", 3*time.Hour),
		d("prod", "us-west-2", "v42", 4*time.Hour),
	}
	for _, tc := range []struct {
		name    string
		deploys []migrations.Deploy
		now     time.Duration
		status  Status
		left    string
		atLeast bool
		summary string
	}{
		{"all baked", all, 5*time.Hour + 30*time.Minute, Pass, "0s", false, "v42 has baked in all 3 prod wave(s)"},
		{"last wave baking", all, 5 * time.Hour, Wait, "30m", false, "prod/us-west-2 has 30m of bake left"},
		{"last wave not deployed", all[:3], 4 * time.Hour, Wait, "1h30m", true, "prod/us-west-2 has no v42"},
		{"only one-box, halfway", all[:2], 2 * time.Hour, Wait, "3h30m", true, "prod/one-box has 1h of bake left; prod/us-east-1 has no v42; prod/us-west-2 has no v42"},
		{"nothing in prod", all[:1], 0, Wait, "4h30m", true, "prod/one-box has no v42"},
		{"deploys after now are not seen", all, 3*time.Hour + 30*time.Minute, Wait, "2h", true, "prod/us-west-2 has no v42"},
		{"rolled back to v41", append(append([]migrations.Deploy{}, all...), d("prod", "us-east-1", "v41", 5*time.Hour)), 6 * time.Hour, Wait, "1h", true, "prod/us-east-1 runs v41"},
		{"redeploy does not restart the bake", append(append([]migrations.Deploy{}, all...), d("prod", "us-west-2", "v42", 5*time.Hour)), 5*time.Hour + 30*time.Minute, Pass, "0s", false, "v42 has baked"},
		{"back to v42 restarts it", append(append([]migrations.Deploy{}, all...), d("prod", "us-west-2", "v41", 5*time.Hour), d("prod", "us-west-2", "v42", 6*time.Hour)), 6*time.Hour + 30*time.Minute, Wait, "1h", false, "prod/us-west-2 has 1h of bake left"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, left, atLeast, _ := checkBake(pl, tc.deploys, t0.Add(tc.now))
			if c.Status != tc.status || pipeline.FormatDuration(left) != tc.left || atLeast != tc.atLeast || !strings.Contains(c.Summary, tc.summary) {
				t.Errorf("got %s, left %s (at least %v): %s\nwant %s, %s (%v): %s\n%s", c.Status, left, atLeast, c.Summary, tc.status, tc.left, tc.atLeast, tc.summary, strings.Join(c.Evidence, "\n"))
			}
			if len(c.Waves) != 3 {
				t.Errorf("waves %+v", c.Waves)
			}
		})
	}
}
