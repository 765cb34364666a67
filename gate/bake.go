package gate

import (
	"fmt"
	"strings"
	"time"

	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/pipeline"
)

// WaveBake is how long N+1 has baked in one prod wave.
type WaveBake struct {
	Stage string `json:"stage"`
	// Wave is "" for a prod stage without waves.
	Wave string `json:"wave,omitempty"`
	Bake string `json:"bake"`
	// Version is the version the wave runs now (its latest deploy record),
	// "" when none was recorded.
	Version string `json:"version,omitempty"`
	// Since is when N+1 started running there: the first of the latest
	// deploys of N+1 in a row (a redeploy of N+1 does not restart the bake).
	Since  *time.Time `json:"since,omitempty"`
	Baked  string     `json:"baked,omitempty"`
	Left   string     `json:"left,omitempty"`
	Status Status     `json:"status"`
}

// prodPlaces lists the prod stages and waves in pipeline order; a prod stage
// without waves is one place with Wave "" (deploy records store it so).
func prodPlaces(pl *pipeline.Pipeline) []pipeline.WaveRef {
	var out []pipeline.WaveRef
	for _, st := range pl.Stages {
		if st.Kind != pipeline.Prod {
			continue
		}
		if len(st.Waves) == 0 {
			out = append(out, pipeline.WaveRef{Stage: st.Name, Bake: st.Bake})
		}
		for _, w := range st.Waves {
			out = append(out, pipeline.WaveRef{Stage: st.Name, Wave: w.Name, Targets: w.Targets, Bake: w.Bake})
		}
	}
	return out
}

// newSince returns when N+1 started running at a place as of now: the first
// of the trailing run of its deploy records that name N+1, and the version
// the place runs. Records after now are ignored (tests move now back and
// forth).
func newSince(deploys []migrations.Deploy, stage, wave, version string, now time.Time) (since time.Time, running string) {
	for _, d := range deploys {
		if d.Stage != stage || d.Wave != wave || d.At.After(now) {
			continue
		}
		if d.Version != version {
			since = time.Time{}
		} else if running != version {
			since = d.At
		}
		running = d.Version
	}
	return since, running
}

// checkBake checks that N+1 has run in every prod wave for the wave's bake.
// It returns the check, the bake time left (assuming each wave not yet
// deployed gets N+1 as soon as the wave before it has baked; atLeast is then
// set), and when N+1 first reached a prod wave (zero if it has not).
func checkBake(pl *pipeline.Pipeline, deploys []migrations.Deploy, now time.Time) (c Check, left time.Duration, atLeast bool, first time.Time) {
	c = Check{Name: CheckBake, Status: Pass}
	end := now // when the waves so far will have baked
	var waiting []string
	for _, w := range prodPlaces(pl) {
		wb := WaveBake{Stage: w.Stage, Wave: w.Wave, Bake: pipeline.FormatDuration(w.Bake)}
		where := placeName(w.Stage, w.Wave)
		since, running := newSince(deploys, w.Stage, w.Wave, pl.New, now)
		wb.Version = running
		switch {
		case running == "":
			wb.Status = Wait
			atLeast = true
			end = end.Add(w.Bake)
			c.Evidence = append(c.Evidence, fmt.Sprintf("%s: no deploy recorded; %s not deployed yet (bake %s)", where, pl.New, wb.Bake))
			waiting = append(waiting, where+" has no "+pl.New)
		case running != pl.New:
			wb.Status = Wait
			atLeast = true
			end = end.Add(w.Bake)
			c.Evidence = append(c.Evidence, fmt.Sprintf("%s: runs %s, not %s (bake %s)", where, running, pl.New, wb.Bake))
			waiting = append(waiting, where+" runs "+running)
		default:
			s := since
			wb.Since = &s
			if first.IsZero() || since.Before(first) {
				first = since
			}
			baked := now.Sub(since)
			wb.Baked = pipeline.FormatDuration(baked.Round(time.Second))
			end = maxTime(end, since.Add(w.Bake))
			if baked >= w.Bake {
				wb.Status = Pass
				c.Evidence = append(c.Evidence, fmt.Sprintf("%s: %s since %s, baked %s of %s", where, pl.New, since.UTC().Format(time.RFC3339), wb.Baked, wb.Bake))
				break
			}
			wb.Status = Wait
			wb.Left = pipeline.FormatDuration((w.Bake - baked).Round(time.Second))
			c.Evidence = append(c.Evidence, fmt.Sprintf("%s: %s since %s, baked %s of %s: %s left", where, pl.New, since.UTC().Format(time.RFC3339), wb.Baked, wb.Bake, wb.Left))
			waiting = append(waiting, where+" has "+wb.Left+" of bake left")
		}
		if wb.Status == Wait {
			c.Status = Wait
		}
		c.Waves = append(c.Waves, wb)
	}
	left = end.Sub(now)
	if c.Status == Pass {
		c.Summary = fmt.Sprintf("%s has baked in all %d prod wave(s) for their bake time", pl.New, len(c.Waves))
		return c, 0, false, first
	}
	c.Summary = strings.Join(waiting, "; ")
	return c, left, atLeast, first
}

// lastProdDeploy is the latest deploy of N+1 to a prod place up to now.
func lastProdDeploy(pl *pipeline.Pipeline, deploys []migrations.Deploy, now time.Time) time.Time {
	prod := map[string]bool{}
	for _, st := range pl.Stages {
		prod[st.Name] = st.Kind == pipeline.Prod
	}
	var last time.Time
	for _, d := range deploys {
		if prod[d.Stage] && d.Version == pl.New && !d.At.After(now) && d.At.After(last) {
			last = d.At
		}
	}
	return last
}

func placeName(stage, wave string) string {
	if wave == "" {
		return stage
	}
	return stage + "/" + wave
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
