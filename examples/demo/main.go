// Command demo is the main job on the embedded default: it plans the Chinook
// rename with the phasekit CLI, then applies the plan's files with
// golang-migrate's own runner to a local copy of chinook.dump, one file at a
// time, showing that rows written through the old name are visible through
// the new one while both exist.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/golang-migrate/migrate/v4"
	_ "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	_ "github.com/golang-migrate/migrate/v4/source/file"

	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/verify"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx := context.Background()
	datasets := envOr("PHASEKIT_DATASETS", "../shared/datasets")
	bin, out := envOr("PHASEKIT_BIN", "bin/phasekit"), envOr("DEMO_OUT", "build/demo-plan")
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	step("plan the rename on the shipped Chinook schema")
	cmd := exec.Command(bin, "plan", "--schema", filepath.Join(datasets, "chinook/chinook-schema.sql"), "--out", out, "testdata/demo/rename_email.sql")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("phasekit plan: %w", err)
	}
	plan, err := migrations.ReadPlan(out)
	if err != nil {
		return err
	}
	step("start a throwaway local PostgreSQL and restore chinook.dump into it")
	l, err := verify.StartLocal(ctx, verify.LocalOptions{})
	if err != nil {
		return err
	}
	defer l.Stop()
	if err := l.CreateDatabase(ctx, "chinook", ""); err != nil {
		return err
	}
	dsn := l.DSN("chinook")
	if err := verify.RestoreDump(ctx, dsn, filepath.Join(datasets, "chinook/chinook.dump")); err != nil {
		return err
	}
	conn, err := verify.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	m, err := migrate.New("file://"+out, "pgx5"+strings.TrimPrefix(dsn, "postgres"))
	if err != nil {
		return err
	}
	defer m.Close()
	for _, ph := range plan.Phases {
		if ph.DeployBefore != "" {
			fmt.Printf("   (deploy step: %s)\n", ph.DeployBefore)
		}
		step(fmt.Sprintf("apply phase %s with golang-migrate (%d file(s))", ph.Kind, len(ph.Files)))
		for range ph.Files {
			if err := m.Steps(1); err != nil {
				return fmt.Errorf("phase %s: %w", ph.Kind, err)
			}
		}
		var cols string
		if err := conn.QueryRow(ctx, `SELECT string_agg(attname, ', ' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'customer'::regclass AND attnum > 0 AND NOT attisdropped AND attname LIKE 'email%'`).Scan(&cols); err != nil {
			return err
		}
		fmt.Printf("   customer now has: %s\n", cols)
		if ph.DeployAfter != "" {
			fmt.Printf("   (deploy step: %s)\n", ph.DeployAfter)
		}
		if strings.Contains(cols, "email,") || cols == "email" {
			// v1 writes through the old name; with both columns present the
			// new name sees it too once dual-write is on.
			if _, err := conn.Exec(ctx, `UPDATE customer SET email = 'v1-wrote-this-in-`+string(ph.Kind)+`@example.com' WHERE customer_id = 1`); err != nil {
				return fmt.Errorf("write through the old name after %s: %w", ph.Kind, err)
			}
		}
	}
	var email string
	if err := conn.QueryRow(ctx, `SELECT email_address FROM customer WHERE customer_id = 1`).Scan(&email); err != nil {
		return err
	}
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM customer WHERE email_address IS NULL`).Scan(&n); err != nil {
		return err
	}
	step(fmt.Sprintf("done: customer 1's email_address is %q; %d of 59 rows have no email_address", email, n))
	fmt.Printf("   the plan, its files and PLAN.md are in %s\n", out)
	return nil
}

func step(s string) { fmt.Println("==>", s) }

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
