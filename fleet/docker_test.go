package fleet_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phasekit/phasekit/fleet"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/verify"
	"github.com/phasekit/phasekit/verify/pgtest"
)

// dockerShards starts one PostgreSQL container of image per name, each with
// Chinook restored into database chinook, and adds them to s. The
// containers are removed when the test ends.
func (s *shards) dockerShards(t *testing.T, image string, names ...string) {
	t.Helper()
	dump := pgtest.DatasetFile(t, "chinook/chinook.dump")
	// Started concurrently: each takes seconds.
	dockers := make([]*verify.Docker, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Go(func() {
			// t.Context(): testcontainers may tie the container's log
			// stream to it, so it must last as long as the container.
			dockers[i], errs[i] = verify.StartDocker(t.Context(), verify.DockerOptions{Image: image})
			if errs[i] != nil {
				errs[i] = fmt.Errorf("%s: %w", n, errs[i])
			}
		})
	}
	wg.Wait()
	for i, d := range dockers {
		if d == nil {
			continue
		}
		t.Cleanup(func() {
			if err := d.Close(); err != nil {
				t.Errorf("%s: %v", names[i], err)
			}
		})
	}
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	dsns := make([]string, len(names))
	for i, d := range dockers {
		wg.Go(func() {
			if err := d.CreateDatabase(ctx, "chinook", ""); err != nil {
				errs[i] = fmt.Errorf("%s: %w", names[i], err)
				return
			}
			dsns[i] = d.DSN("chinook")
			if err := verify.RestoreDump(ctx, dsns[i], dump); err != nil {
				errs[i] = fmt.Errorf("%s: restore chinook: %w", names[i], err)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i, n := range names {
		s.dsn[n] = dsns[i]
		s.env[envName(n)] = dsns[i]
	}
}

// TestRolloutDockerWave rolls expand out over a wave on the local cluster,
// then a wave of two PostgreSQL containers, each its own server; fleet
// status reads the same from every ledger, and a rerun skips them all.
func TestRolloutDockerWave(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	image := pgtest.DockerImage(t)
	s := newShards(t, "local-a", "local-b")
	s.dockerShards(t, image, "ctr-a", "ctr-b")
	before := columns(t, s.dsn["local-a"])
	if got := columns(t, s.dsn["ctr-a"]); got != before {
		t.Fatalf("the containers' customer differs from the local one: %s", got)
	}
	dir, plan := planDir(t, s.dsn["local-a"], rename)
	f := s.loadFleet(t,
		wave{name: "local", maxParallel: 2, bake: "10m", targets: []string{"local-a", "local-b"}},
		wave{name: "containers", maxParallel: 2, targets: []string{"ctr-a", "ctr-b"}},
	)
	var checks int
	var out syncBuffer
	opts := options(phases.Expand, newClock(), &out, nil)
	opts.Alarm, opts.AlarmInterval = func(context.Context) (bool, string, error) {
		checks++
		return false, "", nil
	}, 5*time.Minute
	rep, err := fleet.Apply(ctx, f, dir, opts)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if got, want := targetStates(rep), "local-a=applied local-b=applied ctr-a=applied ctr-b=applied"; rep.Outcome != fleet.OutcomeDone || got != want {
		t.Fatalf("outcome %s\n got %s\nwant %s\n%s", rep.Outcome, got, want, out.String())
	}
	// Before the first wave; at the start, after 5m and at the end of
	// local's 10m bake; once after the containers' wave, which starts only
	// once local has baked.
	baked, started := strings.Index(out.String(), "wave local: baked 10m"), strings.Index(out.String(), "ctr-a: applying expand")
	if checks != 1+3+1 || baked < 0 || started < baked {
		t.Errorf("%d alarm checks\n%s", checks, out.String())
	}
	applied := "expand=done dual-write=pending backfill=pending contract=pending"
	for _, n := range []string{"local-a", "local-b", "ctr-a", "ctr-b"} {
		if got := ledger(t, s.dsn[n], plan.Hash); got != applied {
			t.Errorf("%s: ledger %s", n, got)
		}
		if got := columns(t, s.dsn[n]); got != before+",email_address" {
			t.Errorf("%s: columns %s", n, got)
		}
	}

	st, err := fleet.Status(ctx, f, dir, fleet.StatusOptions{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, ts := range st.Targets {
		if !ts.Reachable {
			rows = append(rows, ts.Target+"=unreachable")
			continue
		}
		rows = append(rows, ts.Target+"="+ts.Phases[0].State)
	}
	if got, want := strings.Join(rows, " "), "local-a=done local-b=done ctr-a=done ctr-b=done"; got != want {
		t.Errorf("status\n got %s\nwant %s", got, want)
	}

	rep, err = fleet.Apply(ctx, f, dir, options(phases.Expand, newClock(), &syncBuffer{}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := targetStates(rep); strings.Count(got, "=already done") != 4 {
		t.Errorf("rerun: %s", got)
	}
}
