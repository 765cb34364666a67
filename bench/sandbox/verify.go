package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"
)

// verifyTarget is the demo verify's wall-time target.
const verifyTarget = 20 * time.Second

// timeDemoVerify plans the demo rename and runs phasekit verify on it as
// make demo does (matrix, naive migration, shadow reads, zeta), runs times,
// and returns each run's wall time, sorted.
func timeDemoVerify(phasekit, app, datasets string, runs int, stderr io.Writer) ([]time.Duration, error) {
	dir, err := os.MkdirTemp("", "phasekit-bench-verify-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	plan := filepath.Join(dir, "plan")
	if out, err := exec.Command(phasekit, "plan", "--schema", filepath.Join(datasets, "chinook", "chinook-schema.sql"),
		"--out", plan, "testdata/demo/rename_email.sql").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("plan: %w\n%s", err, out)
	}
	var took []time.Duration
	for i := 0; i < runs; i++ {
		t0 := time.Now()
		cmd := exec.Command(phasekit, "verify", "--plan", plan, "--data", filepath.Join(datasets, "chinook", "chinook.dump"),
			"--old-app", app+" -version v1 check", "--new-app", app+" -version v2 check",
			"--old-workload", "testdata/apps/chinook/v1.sql", "--new-workload", "testdata/apps/chinook/v2.sql",
			"--shadow", "testdata/apps/chinook/shadow.yaml", "--mask", "customer.email=email",
			"--backend", app+" -version v1 serve", "--frontend", app+" -version v2 frontend",
			"--ready", "http://127.0.0.1:{port}/health")
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("verify: %w\n%s", err, out)
		}
		took = append(took, time.Since(t0))
		fmt.Fprintf(stderr, "sandbox: demo verify run %d: %s\n", i+1, took[i].Round(time.Millisecond))
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	return took, nil
}

func printVerify(w io.Writer, took []time.Duration) {
	med := took[len(took)/2]
	verdict := "meets"
	if med > verifyTarget {
		verdict = "MISSES"
	}
	fmt.Fprintf(w, "\ndemo verify (plan + matrix + naive + shadow + zeta on chinook.dump, provider %s): median %s of %d runs (min %s, max %s): %s the %s target\n",
		provider(), med.Round(time.Millisecond), len(took), took[0].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond), verdict, verifyTarget)
}

func provider() string {
	if img := os.Getenv("PHASEKIT_IMAGE"); img != "" {
		return "default (docker if " + img + " is present, else local)"
	}
	return "default"
}
