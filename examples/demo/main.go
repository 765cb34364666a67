// Command demo is the main job on the embedded default: on a throwaway local
// PostgreSQL with a copy of chinook.dump, it plans the Chinook rename with the
// phasekit CLI, applies the plan phase by phase with phasekit apply (an app
// write through the old name between phases shows both names stay in sync),
// shows status, and checks that golang-migrate's own runner applies the same
// files to a second copy.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/golang-migrate/migrate/v4"
	_ "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	_ "github.com/golang-migrate/migrate/v4/source/file"

	"github.com/phasekit/phasekit/internal/dbconn"
	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/pipeline"
	"github.com/phasekit/phasekit/verify"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

var (
	datasets = envOr("PHASEKIT_DATASETS", "../shared/datasets")
	bin      = envOr("PHASEKIT_BIN", "bin/phasekit")
	out      = envOr("DEMO_OUT", "build/demo-plan")
	app      = envOr("PHASEKIT_APP", "bin/app")

	pipelineFile = "testdata/pipeline/pipeline.yaml"
)

func run() error {
	ctx := context.Background()
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	step("plan the rename on the shipped Chinook schema, bound to the deploy pipeline")
	if err := phasekit("plan", "--schema", filepath.Join(datasets, "chinook/chinook-schema.sql"), "--pipeline", pipelineFile, "--out", out, "testdata/demo/rename_email.sql"); err != nil {
		return err
	}
	if err := phasekit("plan", "--schema", filepath.Join(datasets, "chinook/chinook-schema.sql"), "--pipeline", pipelineFile, "testdata/demo/rename_email.sql"); err != nil {
		return err
	}
	plan, err := migrations.ReadPlan(out)
	if err != nil {
		return err
	}
	if err := verifyStep(); err != nil {
		return err
	}
	step("start a throwaway local PostgreSQL and restore chinook.dump into it twice")
	l, err := verify.StartLocal(ctx, verify.LocalOptions{})
	if err != nil {
		return err
	}
	defer l.Stop()
	for _, db := range []string{"chinook", "chinook_migrate"} {
		if err := l.CreateDatabase(ctx, db, ""); err != nil {
			return err
		}
		if err := verify.RestoreDump(ctx, l.DSN(db), filepath.Join(datasets, "chinook/chinook.dump")); err != nil {
			return err
		}
	}
	dsn := l.DSN("chinook")
	conn, err := dbconn.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for _, ph := range plan.Phases {
		args := []string{"--dsn", dsn, "apply", "--plan", out, "--phase", string(ph.Kind)}
		if ph.Kind == phases.Contract {
			prom, err := deployAndGate(ctx, dsn)
			if err != nil {
				return err
			}
			defer prom.stop()
			args = append(args, "--pipeline", pipelineFile, "--prometheus", prom.url)
		}
		step("phasekit apply --phase " + string(ph.Kind))
		if err := phasekit(args...); err != nil {
			return err
		}
		var cols string
		if err := conn.QueryRow(ctx, `SELECT string_agg(attname, ', ' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'customer'::regclass AND attnum > 0 AND NOT attisdropped AND attname LIKE 'email%'`).Scan(&cols); err != nil {
			return err
		}
		fmt.Printf("   customer now has: %s\n", cols)
		if strings.HasPrefix(cols, "email,") {
			// App version N still writes through the old name.
			if _, err := conn.Exec(ctx, `UPDATE customer SET email = 'v1-wrote-this-after-`+string(ph.Kind)+`@example.com' WHERE customer_id = 1`); err != nil {
				return fmt.Errorf("write through the old name after %s: %w", ph.Kind, err)
			}
		}
	}
	step("phasekit status")
	if err := phasekit("--dsn", dsn, "status", "--plan", out); err != nil {
		return err
	}
	var email string
	if err := conn.QueryRow(ctx, `SELECT email_address FROM customer WHERE customer_id = 1`).Scan(&email); err != nil {
		return err
	}
	fmt.Printf("   customer 1's email_address: %q (written by N through the old name)\n", email)

	step("golang-migrate's own runner applies the same files to the second copy")
	m, err := migrate.New("file://"+out, "pgx5"+strings.TrimPrefix(l.DSN("chinook_migrate"), "postgres"))
	if err != nil {
		return err
	}
	defer m.Close()
	if err := m.Up(); err != nil {
		return fmt.Errorf("golang-migrate up: %w", err)
	}
	v, _, err := m.Version()
	if err != nil {
		return err
	}
	fmt.Printf("   golang-migrate is at version %d of %d\n", v, len(migrations.Steps(plan)))
	step("phasekit report: the DBA review, with live table sizes, the pipeline and the verify result")
	if err := phasekit("report", "--plan", out, "--dsn", dsn, "--verify", "build/verify.json",
		"--pipeline", "testdata/pipeline/pipeline.yaml", "--format", "html", "--out", "build/report.html"); err != nil {
		return err
	}
	if abs, err := filepath.Abs("build/report.html"); err == nil {
		fmt.Println("   report:", abs)
	}
	step("done: the plan, its files and PLAN.md are in " + out)
	return nil
}

// verifyStep runs the compatibility matrix and the zeta check of the plan
// with the sample app's two versions on a fresh copy of chinook.dump.
func verifyStep() error {
	step("phasekit verify: v1 and v2 of the sample app at every phase boundary on a copy of chinook.dump, the naive migration, the zeta check")
	dump := filepath.Join(datasets, "chinook/chinook.dump")
	t0 := time.Now()
	// No --provider: docker when its image is here, else the local cluster.
	err := phasekit("verify", "--plan", out, "--data", dump,
		"--old-app", app+" -version v1 check", "--new-app", app+" -version v2 check",
		"--old-workload", "testdata/apps/chinook/v1.sql", "--new-workload", "testdata/apps/chinook/v2.sql",
		"--shadow", "testdata/apps/chinook/shadow.yaml", "--mask", "customer.email=email",
		"--backend", app+" -version v1 serve", "--frontend", app+" -version v2 frontend",
		"--ready", "http://127.0.0.1:{port}/health",
		"--junit", "build/verify.xml", "--out", "build/verify.json")
	if err != nil {
		return err
	}
	fmt.Printf("   verify took %s (JUnit in build/verify.xml, result in build/verify.json)\n", time.Since(t0).Round(10*time.Millisecond))
	return nil
}

func phasekit(args ...string) error {
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("phasekit %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

func step(s string) { fmt.Println("==>", s) }

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// deployAndGate plays the release pipeline between backfill and contract:
// v42 deploys to every stage and prod wave (recorded as it would be, hours
// ago, so that the bakes are over), then the contract gate is asked, with a
// real Prometheus for the pipeline's alarms.
func deployAndGate(ctx context.Context, dsn string) (*promServer, error) {
	pl, err := pipeline.Load(pipelineFile)
	if err != nil {
		return nil, err
	}
	step("record deploy: v42 through every stage and prod wave of " + pipelineFile)
	at := time.Now().Add(-12 * time.Hour)
	for _, st := range pl.Stages {
		waves := []string{""}
		if len(st.Waves) > 0 {
			waves = nil
			for _, w := range st.Waves {
				waves = append(waves, w.Name)
			}
		}
		for _, w := range waves {
			args := []string{"--dsn", dsn, "record", "deploy", "--pipeline", pipelineFile, "--stage", st.Name, "--version", pl.New, "--at", at.UTC().Format(time.RFC3339)}
			if w != "" {
				args = append(args, "--wave", w)
			}
			if err := phasekitQuiet(args...); err != nil {
				return nil, err
			}
			at = at.Add(time.Hour)
		}
	}
	fmt.Printf("   recorded %s on every stage, the last prod wave %s ago\n", pl.New, time.Since(at.Add(-time.Hour)).Round(time.Minute))
	prom, err := startPrometheus(ctx)
	if err != nil {
		return nil, err
	}
	step("phasekit gate contract (Prometheus at " + prom.url + ")")
	if err := phasekit("--dsn", dsn, "gate", "contract", "--plan", out, "--pipeline", pipelineFile, "--prometheus", prom.url); err != nil {
		prom.stop()
		return nil, err
	}
	return prom, nil
}

func phasekitQuiet(args ...string) error {
	cmd := exec.Command(bin, args...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("phasekit %s: %w\n%s", strings.Join(args, " "), err, b)
	}
	return nil
}
