// Package pgtest gives each database test its own PostgreSQL database, copied
// from a template that holds one of the shared datasets, on one throwaway
// cluster per test binary. Call Main from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/phasekit/phasekit/internal/testkit"
	"github.com/phasekit/phasekit/verify"
)

// DatasetsEnv names the environment variable that overrides where the shared
// datasets live (by default ../shared/datasets next to the module root).
const DatasetsEnv = "PHASEKIT_DATASETS"

// LogEnv names the environment variable that, when set, copies the cluster's
// server log to stderr.
const LogEnv = "PHASEKIT_PG_LOG"

var (
	mainCalled atomic.Bool

	clusterOnce sync.Once
	cluster     *verify.Local // written once inside clusterOnce, read-only after
	clusterErr  error

	dbSeq atomic.Int64
)

// Main runs the tests, then stops the cluster and exits with the tests' code.
// An interrupt or SIGTERM also stops the cluster, so that no server or data
// directory is left behind.
func Main(m *testing.M) {
	mainCalled.Store(true)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-sigs:
			fmt.Fprintf(os.Stderr, "pgtest: %v: stopping local PostgreSQL, removing containers\n", sig)
			verify.RemoveContainers()
			if err := stopCluster(); err != nil {
				fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
			}
			os.Exit(1)
		case <-done:
		}
	}()

	code := m.Run()
	signal.Stop(sigs)
	close(done)
	tempDirs.removeAll()
	if err := stopCluster(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// stopCluster stops the cluster if it was started. Going through clusterOnce
// waits out a start in progress and keeps a later call from starting one.
func stopCluster() error {
	clusterOnce.Do(func() { clusterErr = errors.New("pgtest: the cluster has been stopped") })
	if cluster == nil {
		return nil
	}
	if err := cluster.Stop(); err != nil {
		return fmt.Errorf("stop local PostgreSQL: %w", err)
	}
	return nil
}

// Cluster returns the test binary's cluster, starting it on first use.
func Cluster(t testing.TB) *verify.Local {
	t.Helper()
	if !mainCalled.Load() {
		// Without Main nobody stops the cluster and its data directory is left in TMPDIR.
		t.Fatal("pgtest: call pgtest.Main(m) from TestMain in this package")
	}
	clusterOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		var opts verify.LocalOptions
		if os.Getenv(LogEnv) != "" {
			opts.Log = os.Stderr
		}
		cluster, clusterErr = verify.StartLocal(ctx, opts)
	})
	if clusterErr != nil {
		t.Fatalf("pgtest: start local PostgreSQL: %v", clusterErr)
	}
	return cluster
}

// dataset is a shared dataset and how to load it into an empty database.
type dataset struct {
	file string // relative to the datasets directory
	load func(ctx context.Context, dsn, file string) error
}

var datasets = map[string]dataset{
	"chinook":        {"chinook/chinook.dump", verify.RestoreDump},
	"chinook-schema": {"chinook/chinook-schema.sql", verify.LoadSQLFile},
	"pagila":         {"pagila/pagila-schema.sql", verify.LoadSQLFile},
}

// template is the database a dataset is loaded into once, for tests to copy.
type template struct {
	mu     sync.Mutex // held while loading, so other tests of the dataset wait
	loaded bool       // loading was attempted; err says how it went
	err    error
}

// templates is fixed at init, so reading it needs no lock.
var templates = func() map[string]*template {
	m := make(map[string]*template, len(datasets))
	for name := range datasets {
		m[name] = &template{}
	}
	return m
}()

// NewDB creates a database for this test, a copy of dataset ("" for an empty
// database), drops it when the test ends, and returns its DSN. Known
// datasets: "chinook" (data), "chinook-schema" and "pagila" (schema only). The
// test is skipped if the dataset's files are missing.
func NewDB(t testing.TB, dataset string) (dsn string) {
	t.Helper()
	tpl := ""
	var l *verify.Local
	if dataset != "" {
		ds, ok := datasets[dataset]
		if !ok {
			t.Fatalf("pgtest: unknown dataset %q (known: %s)", dataset, knownDatasets())
		}
		file := DatasetFile(t, ds.file) // before starting anything: the test may be skipped
		l = Cluster(t)
		tpl = templateName(dataset)
		if err := ensureTemplate(l, dataset, file); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
	} else {
		l = Cluster(t)
	}

	name := dbName(t)
	if err := l.CreateDatabase(t.Context(), name, tpl); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		// The test's context is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := l.DropDatabase(ctx, name); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return l.DSN(name)
}

// Conn connects to dsn and closes the connection when the test ends.
func Conn(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("pgtest: connect to test database: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// DatasetFile returns the path of a file in the shared datasets directory,
// e.g. "chinook/chinook-schema.sql", skipping the test if it is not there.
func DatasetFile(t testing.TB, rel string) string {
	t.Helper()
	dir, err := datasetsDir()
	if err != nil {
		t.Skipf("pgtest: dataset file %s not available: %v (set %s)", rel, err, DatasetsEnv)
	}
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if _, err := os.Stat(p); err != nil {
		t.Skipf("pgtest: dataset file %s not available: %v (set %s to the datasets directory)", rel, err, DatasetsEnv)
	}
	return p
}

// datasetsDir is $PHASEKIT_DATASETS, else ../shared/datasets next to the
// directory holding go.mod. It is looked up on every call so that a test can
// point it elsewhere with t.Setenv.
func datasetsDir() (string, error) {
	if d := os.Getenv(DatasetsEnv); d != "" {
		return d, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find module root: %w", err)
	}
	for dir := wd; ; {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(filepath.Dir(dir), "shared", "datasets"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod in %s or above", wd)
		}
		dir = parent
	}
}

// ensureTemplate loads dataset into its template database the first time it
// is asked for; a failed load is not retried, so each later test fails fast
// with the same error.
func ensureTemplate(l *verify.Local, dataset, file string) error {
	tp := templates[dataset]
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if !tp.loaded {
		tp.loaded = true
		tp.err = loadTemplate(l, dataset, file)
	}
	return tp.err
}

func loadTemplate(l *verify.Local, dataset, file string) (err error) {
	// Not the first test's context: other tests wait on this load and must
	// not fail because that one test ended.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	name := templateName(dataset)
	if err := l.CreateDatabase(ctx, name, ""); err != nil {
		return fmt.Errorf("load dataset %s: %w", dataset, err)
	}
	defer func() {
		if err != nil {
			_ = l.DropDatabase(context.Background(), name)
		}
	}()
	if err := datasets[dataset].load(ctx, l.DSN(name), file); err != nil {
		return fmt.Errorf("load dataset %s into template database %s: %w", dataset, name, err)
	}
	// CREATE DATABASE ... TEMPLATE fails while anyone is connected to the
	// template; refusing connections keeps a stray one from breaking copies.
	conn, err := pgx.Connect(ctx, l.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("load dataset %s: connect to local PostgreSQL: %w", dataset, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"); err != nil {
		return fmt.Errorf("load dataset %s: mark %s as a template: %w", dataset, name, err)
	}
	return nil
}

func templateName(dataset string) string {
	return "pgtest_tpl_" + strings.ReplaceAll(dataset, "-", "_")
}

// dbName derives a unique database name from the test's name, so that a
// database left behind by a crash says which test made it.
func dbName(t testing.TB) string {
	var b strings.Builder
	underscore := false
	for _, r := range strings.ToLower(t.Name()) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			underscore = false
		} else if !underscore {
			b.WriteByte('_')
			underscore = true
		}
	}
	slug := strings.Trim(b.String(), "_")
	if len(slug) > 40 { // identifiers are cut at 63 bytes
		slug = slug[:40]
	}
	return "t_" + slug + "_" + strconv.FormatInt(dbSeq.Add(1), 10)
}

func knownDatasets() string {
	names := []string{`""`}
	for name := range datasets {
		names = append(names, strconv.Quote(name))
	}
	sort.Strings(names[1:])
	return strings.Join(names, ", ")
}

// DockerImage returns the image the docker sandbox runs (verify.DefaultImage:
// $PHASEKIT_IMAGE when set), skipping the test when Docker or the image is
// unusable, or failing it when CI=true, since CI builds the image first.
func DockerImage(t testing.TB) string {
	t.Helper()
	image := verify.DefaultImage()
	testkit.RequireDocker(t, verify.DockerUnusable(t.Context(), image))
	return image
}
