package verify

import (
	"context"
	"time"

	"github.com/phasekit/phasekit/internal/dbconn"
)

// App is one version of an application under test: run against a database,
// it passes or fails.
type App interface {
	// Name is how reports name the app ("v1 check", "v2.sql").
	Name() string
	// Run runs the app once against the database at dsn.
	Run(ctx context.Context, dsn string) AppResult
}

// AppResult is how one run of an App went.
type AppResult struct {
	Passed bool
	// Output is the app's combined stdout and stderr (for a workload, one
	// line per statement), truncated in the middle past about 64 KiB, with
	// passwords redacted.
	Output string
	// Error is one line saying why the app failed, e.g. the SQL error
	// `ERROR: column "email" does not exist (SQLSTATE 42703)`.
	Error    string
	Duration time.Duration
}

// CommandApp is an app run as a shell command (sh -c) with the database in
// its environment: DATABASE_URL (the DSN as given) and PGHOST, PGPORT,
// PGUSER, PGPASSWORD, PGDATABASE and PGSSLMODE, which replace inherited
// ones; an inherited PGHOSTADDR or PGSERVICE is dropped, as it would send
// libpq clients elsewhere. The command passes if it exits 0. It runs in its
// own process group, which is killed when it exits, times out or ctx ends,
// so that nothing it started outlives it.
type CommandApp struct {
	// AppName is what Name returns (a field cannot share the method's name).
	AppName string
	// Command is the shell command line.
	Command string
	// Dir is the working directory; "" is phasekit's.
	Dir string
	// Timeout bounds one run; zero means only ctx does.
	Timeout time.Duration
}

// Name returns AppName.
func (a CommandApp) Name() string { return a.AppName }

// Run runs the command once against dsn.
func (a CommandApp) Run(ctx context.Context, dsn string) AppResult {
	start := time.Now()
	vars, secret, err := dbconn.Env(dsn)
	if err != nil {
		return AppResult{Error: err.Error(), Duration: time.Since(start)}
	}
	r := runCommand(ctx, a.Command, a.Dir, dbconn.ChildEnv(vars...), a.Timeout)
	return AppResult{
		Passed:   r.passed,
		Output:   dbconn.RedactOutput(r.output, secret),
		Error:    dbconn.RedactOutput(r.errorLine(), secret),
		Duration: time.Since(start),
	}
}
