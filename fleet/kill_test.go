package fleet_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/phasekit/phasekit/fleet"
	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/verify/pgtest"
)

// The test binary runs a rollout as a child process when childEnv is set,
// so that a test can kill a real process with SIGKILL. The fleet file, plan
// directory and phase come in the environment, with the targets' DSNs.
const (
	childEnv   = "PHASEKIT_FLEET_CHILD"
	childFleet = "PHASEKIT_FLEET_CHILD_FILE"
	childPlan  = "PHASEKIT_FLEET_CHILD_PLAN"
	childPhase = "PHASEKIT_FLEET_CHILD_PHASE"
)

func child() int {
	f, err := fleet.Load(os.Getenv(childFleet))
	if err == nil {
		err = f.Resolve(nil)
	}
	if err == nil {
		_, err = fleet.Apply(context.Background(), f, os.Getenv(childPlan), fleet.ApplyOptions{
			Phase: phases.Kind(os.Getenv(childPhase)), DDL: fastDDL(),
			Runner: migrations.CurrentRunner("test-child"), Out: os.Stdout, Detail: os.Stdout,
		})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

// TestKillNineAndResume kills a real process running fleet apply with
// SIGKILL, once while a target of wave 2 runs expand and once during wave
// 1's bake, and checks that fleet apply run again skips the targets done,
// resumes the bake rather than starting it over, and finishes every target.
func TestKillNineAndResume(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the test binary as a child process and kills it")
	}
	t.Parallel()
	for _, tc := range []struct {
		name, killAt string
	}{
		// c's detail lines come on stdout too: killed between expand's two
		// steps, c is left with the phase running, its first step done.
		{"during a target", "    c |   000001_expand_customer: done"},
		{"during a bake", "wave one-box: baking 2s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			names := []string{"a", "b", "c", "d", "e"}
			s := newShards(t, names...)
			dir, plan := planDir(t, s.dsn["a"], renameAndIndex)
			file := filepath.Join(t.TempDir(), "fleet.yaml")
			body := fleetFile(
				wave{name: "one-box", bake: "2s", targets: names[:1]},
				wave{name: "eu", maxParallel: 1, targets: names[1:4]},
				wave{name: "us", targets: names[4:]},
			)
			if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}

			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), childEnv+"=1", childFleet+"="+file, childPlan+"="+dir, childPhase+"=expand")
			for k, v := range s.env {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var seen []string
			killed := false
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				seen = append(seen, sc.Text())
				if !killed && strings.HasPrefix(sc.Text(), tc.killAt) {
					if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
						t.Fatal(err)
					}
					killed = true
				}
			}
			err = cmd.Wait()
			var ee *exec.ExitError
			if !killed || !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("the child was not killed at %q (%v):\n%s\n%s", tc.killAt, err, strings.Join(seen, "\n"), stderr.String())
			}
			var at []string
			for _, n := range names {
				at = append(at, n+": "+ledger(t, s.dsn[n], plan.Hash))
			}
			midPhase := strings.HasPrefix(ledger(t, s.dsn["c"], plan.Hash), "expand=running")
			t.Logf("killed at %q; ledgers: %s", tc.killAt, strings.Join(at, "; "))

			f, err := fleet.Load(file)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Resolve(s.lookup); err != nil {
				t.Fatal(err)
			}
			// The killed process's sessions end when their backends notice;
			// until then a target's plan lock may still be held.
			var rep *fleet.Report
			var out, detail *syncBuffer
			start := time.Now()
			for attempt := 0; ; attempt++ {
				out, detail = &syncBuffer{}, &syncBuffer{}
				rep, err = fleet.Apply(context.Background(), f, dir, fleet.ApplyOptions{Phase: phases.Expand, DDL: fastDDL(), Runner: migrations.CurrentRunner("test"), Out: out, Detail: detail})
				if err == nil || !strings.Contains(err.Error(), "is being run by another phasekit") || attempt == 50 {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil {
				t.Fatalf("rerun after the kill: %v\n%s", err, out.String())
			}
			t.Logf("rerun took %s:\n%s", time.Since(start).Round(time.Millisecond), out.String())
			if rep.Waves[0].Targets[0].State != fleet.AlreadyDone || (tc.name == "during a target" && rep.Waves[1].Targets[0].State != fleet.AlreadyDone) {
				t.Errorf("targets done before the kill were not skipped: %s", targetStates(rep))
			}
			// Killed between c's two steps, the rerun does only the second.
			if midPhase && (!strings.Contains(detail.String(), "    c |   000001_expand_customer: already done") || !strings.Contains(detail.String(), "    c |   000002_expand_customer_concurrently: done")) {
				t.Errorf("c did not resume where it was killed:\n%s", detail.String())
			}
			if tc.name == "during a target" && !midPhase {
				t.Logf("the kill did not land between c's steps this time")
			}
			if tc.name == "during a bake" && !strings.Contains(out.String(), "of the 2s bake left") {
				t.Errorf("the bake was not resumed:\n%s", out.String())
			}
			for _, n := range names {
				if got := ledger(t, s.dsn[n], plan.Hash); !strings.HasPrefix(got, "expand=done ") {
					t.Errorf("%s: %s", n, got)
				}
				var valid bool
				if err := pgtest.Conn(t, s.dsn[n]).QueryRow(context.Background(), "SELECT indisvalid FROM pg_index WHERE indexrelid = 'customer_country_idx'::regclass").Scan(&valid); err != nil || !valid {
					t.Errorf("%s: index customer_country_idx valid %v (%v)", n, valid, err)
				}
				if !strings.HasSuffix(columns(t, s.dsn[n]), ",email_address") {
					t.Errorf("%s: columns %s", n, columns(t, s.dsn[n]))
				}
			}
		})
	}
}
