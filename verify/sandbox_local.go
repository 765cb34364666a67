package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// LocalOptions configures StartLocal.
type LocalOptions struct {
	// Log receives the server's log output; nil discards it. Startup errors
	// quote the end of the log either way.
	Log io.Writer
	// Settings are extra server settings passed as -c name=value; they
	// override the defaults (e.g. {"wal_level": "logical"}).
	Settings map[string]string
	// StartTimeout bounds how long StartLocal waits for the server to accept
	// connections; zero means 60 seconds.
	StartTimeout time.Duration
}

// Local is a throwaway PostgreSQL cluster in a temporary directory, listening
// on 127.0.0.1 with trust authentication for the superuser postgres.
type Local struct {
	dir  string // temporary directory: data directory and unix socket
	port int
	acct *account // OS account running the server; nil means the current one
	log  *tailWriter

	cmd     *exec.Cmd
	exited  chan struct{} // closed once the postmaster has exited
	waitErr error         // the postmaster's exit status, set before exited is closed

	// How the server was started, for Restart.
	postgres string
	settings map[string]string
	logTo    io.Writer
	timeout  time.Duration

	stopOnce sync.Once
	stopErr  error
}

// superuser is the role initdb creates; DSN connects as it.
const superuser = "postgres"

// Tries to start on a fresh port when another process grabs the one picked
// between closing the probe listener and the server binding it.
const portAttempts = 5

// defaultSettings trade durability for speed: the cluster is thrown away.
var defaultSettings = map[string]string{
	"listen_addresses":   "127.0.0.1",
	"fsync":              "off",
	"synchronous_commit": "off",
	"full_page_writes":   "off",
	"max_connections":    "100",
}

// StartLocal creates a cluster with initdb in a fresh temporary directory and
// starts it on a free port of 127.0.0.1. Stop removes it again. When the
// process runs as root, the server runs as the OS user postgres, because
// PostgreSQL refuses to run as root.
func StartLocal(ctx context.Context, opts LocalOptions) (_ *Local, err error) {
	initdb, postgres, err := serverBinaries()
	if err != nil {
		return nil, err
	}
	acct, err := serverAccount()
	if err != nil {
		return nil, err
	}
	removeStaleClusters()
	dir, err := os.MkdirTemp("", clusterDirPrefix)
	if err != nil {
		return nil, fmt.Errorf("create directory for local PostgreSQL: %w", err)
	}
	l := &Local{dir: dir, acct: acct, log: newTailWriter(16 << 10)}
	defer func() {
		// A half-started cluster must not outlive the failed call.
		if err != nil {
			_ = l.Stop()
		}
	}()
	if acct != nil {
		if err := os.Chown(dir, acct.uid, acct.gid); err != nil {
			return nil, fmt.Errorf("hand %s to OS user %s: %w", dir, acct.name, err)
		}
	}
	logTo := io.Writer(l.log)
	if opts.Log != nil {
		logTo = io.MultiWriter(l.log, lenientWriter{opts.Log})
	}

	if err := l.initdb(ctx, initdb, logTo); err != nil {
		return nil, err
	}
	timeout := opts.StartTimeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	l.postgres, l.settings, l.logTo, l.timeout = postgres, opts.Settings, logTo, timeout
	if err = l.boot(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

// boot starts the server with the settings StartLocal kept, on a fresh
// port each attempt while another process grabs the one picked.
func (l *Local) boot(ctx context.Context) error {
	for attempt := 1; ; attempt++ {
		err := l.start(ctx, l.postgres, l.settings, l.logTo, l.timeout)
		if err == nil || !errors.Is(err, errPortInUse) || attempt == portAttempts {
			return err
		}
	}
}

func (l *Local) initdb(ctx context.Context, initdb string, logTo io.Writer) error {
	cmd := exec.CommandContext(ctx, initdb,
		"-D", l.dataDir(),
		"-U", superuser,
		"-A", "trust",
		"-E", "UTF8",
		"--locale=C",
		// Skipping the final fsync of the new cluster saves most of initdb's time.
		"--no-sync",
	)
	cmd.Dir = l.dir // the server account may not be able to enter our working directory
	cmd.SysProcAttr = sysProcAttr(l.acct)
	out, err := cmd.CombinedOutput()
	_, _ = logTo.Write(out)
	if err != nil {
		return fmt.Errorf("initdb %s: %w\n%s", l.dataDir(), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// errPortInUse reports that the server could not bind the port it was given.
var errPortInUse = errors.New("port already in use")

// start runs the postmaster on a free port and waits until it accepts connections.
func (l *Local) start(ctx context.Context, postgres string, extra map[string]string, logTo io.Writer, timeout time.Duration) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	l.port = port
	settings := map[string]string{}
	for k, v := range defaultSettings {
		settings[k] = v
	}
	for k, v := range extra {
		settings[k] = v
	}
	settings["port"] = strconv.Itoa(port)
	// The socket lives in our directory so that clusters never collide on /tmp/.s.PGSQL.*.
	settings["unix_socket_directories"] = l.dir
	names := make([]string, 0, len(settings))
	for k := range settings {
		names = append(names, k)
	}
	sort.Strings(names)
	args := []string{"-D", l.dataDir()}
	for _, k := range names {
		args = append(args, "-c", k+"="+settings[k])
	}

	l.log.reset() // a failed attempt's log would be misread as this one's
	cmd := exec.Command(postgres, args...)
	cmd.Dir = l.dir
	cmd.Stdout = logTo
	cmd.Stderr = logTo
	cmd.SysProcAttr = sysProcAttr(l.acct)
	// Backends inherit the log pipe; if the postmaster is killed they may hold
	// it open for a while, and Wait must not hang on them.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	exited := make(chan struct{})
	l.cmd, l.exited = cmd, exited
	go func() {
		l.waitErr = cmd.Wait()
		close(exited)
	}()

	cfg, err := pgx.ParseConfig(l.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("parse local DSN: %w", err)
	}
	cfg.ConnectTimeout = 2 * time.Second
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-exited:
			tail := l.log.String()
			if strings.Contains(tail, "Address already in use") {
				return fmt.Errorf("start postgres on port %d: %w", port, errPortInUse)
			}
			return fmt.Errorf("postgres exited during startup (%v):\n%s", l.waitErr, tail)
		case <-ctx.Done():
			return fmt.Errorf("wait for postgres to accept connections: %w", ctx.Err())
		case <-deadline.C:
			return fmt.Errorf("postgres did not accept connections within %v: %w\n%s", timeout, err, l.log.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (l *Local) dataDir() string { return filepath.Join(l.dir, "data") }

// Port returns the TCP port the server listens on at 127.0.0.1.
func (l *Local) Port() int { return l.port }

// DSN returns a connection URL for database as the superuser postgres.
func (l *Local) DSN(database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(superuser),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(l.port)),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Provider implements Sandbox.
func (l *Local) Provider() string { return ProviderLocal }

// Describe implements Sandbox.
func (l *Local) Describe() string {
	return fmt.Sprintf("local PostgreSQL cluster on 127.0.0.1:%d", l.port)
}

// Close implements Sandbox: it stops the cluster and removes its directory.
func (l *Local) Close() error { return l.Stop() }

// CreateDatabase creates database name as a copy of template; an empty
// template means the server's default (template1).
func (l *Local) CreateDatabase(ctx context.Context, name, template string) error {
	sql := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if template != "" {
		sql += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	}
	// A throwaway cluster runs with fsync off, so the checkpoints of
	// FILE_COPY cost little and copying files beats WAL-logging every
	// block (PostgreSQL 15's default): about 40% faster here. Older
	// servers do not know STRATEGY.
	if template != "" {
		if err := l.exec(ctx, sql+" STRATEGY FILE_COPY"); err == nil {
			return nil
		} else if !strings.Contains(err.Error(), "strategy") && !strings.Contains(err.Error(), "syntax") {
			return fmt.Errorf("create database %s from template %s: %w", name, template, err)
		}
	}
	if err := l.exec(ctx, sql); err != nil {
		if template != "" {
			return fmt.Errorf("create database %s from template %s: %w", name, template, err)
		}
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// DropDatabase drops database name, disconnecting its sessions. A database
// that does not exist is not an error, so cleanups can run twice.
func (l *Local) DropDatabase(ctx context.Context, name string) error {
	if err := l.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// exec runs one statement in the postgres maintenance database. A connection
// per call is cheap next to CREATE DATABASE and leaves nothing to close.
func (l *Local) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, l.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("connect to local PostgreSQL on port %d: %w", l.port, err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// Stop shuts the server down (fast shutdown, escalating to immediate and then
// SIGKILL if it lingers) and removes its directory. Calling it again returns
// the first call's result.
func (l *Local) Stop() error {
	l.stopOnce.Do(func() {
		var errs []error
		if l.cmd != nil {
			errs = append(errs, l.shutdown())
		}
		if err := os.RemoveAll(l.dir); err != nil {
			errs = append(errs, fmt.Errorf("remove local PostgreSQL directory: %w", err))
		}
		l.stopErr = errors.Join(errs...)
	})
	return l.stopErr
}

func (l *Local) shutdown() error {
	select {
	case <-l.exited:
		// It exited on its own: a crash is worth reporting, a clean exit is not.
		if l.waitErr != nil {
			return fmt.Errorf("local PostgreSQL had already exited (%v):\n%s", l.waitErr, l.log.String())
		}
		return nil
	default:
	}
	steps := []struct {
		sig  os.Signal
		wait time.Duration
	}{
		{syscall.SIGINT, 10 * time.Second}, // fast shutdown: disconnect clients, checkpoint
		{syscall.SIGQUIT, 5 * time.Second}, // immediate shutdown
		{os.Kill, 5 * time.Second},
	}
	for _, s := range steps {
		if err := l.cmd.Process.Signal(s.sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
			// Not every platform can deliver every signal; try the next one.
			continue
		}
		select {
		case <-l.exited:
			return nil
		case <-time.After(s.wait):
		}
	}
	return fmt.Errorf("stop local PostgreSQL (pid %d): still running after SIGKILL", l.cmd.Process.Pid)
}

// clusterDirPrefix names the temporary directories of local clusters.
const clusterDirPrefix = "phasekit-pg-"

// staleAge is how old a cluster directory without a live server must be
// before another StartLocal removes it; a young one may be mid-initdb.
const staleAge = 10 * time.Minute

// removeStaleClusters deletes cluster directories left by processes that died
// without calling Stop (a test binary killed by -timeout, say): their servers
// stopped when the parent died, but the directories are tens of megabytes
// each. Best effort: anything it cannot judge or remove stays.
func removeStaleClusters() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), clusterDirPrefix+"*"))
	for _, dir := range dirs {
		fi, err := os.Stat(dir)
		if err != nil || !fi.IsDir() || time.Since(fi.ModTime()) < staleAge {
			continue
		}
		if pid, ok := postmasterPID(dir); ok && processAlive(pid) {
			continue
		}
		_ = os.RemoveAll(dir)
	}
}

// postmasterPID reads the server's pid from postmaster.pid, if there is one.
func postmasterPID(dir string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	if err != nil {
		return 0, false
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	return pid, err == nil && pid > 0
}

// processAlive errs on the side of alive: a process we may not signal exists.
func processAlive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = p.Signal(syscall.Signal(0))
	return err == nil || errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EPERM)
}

// freePort asks the kernel for an unused port on 127.0.0.1.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port on 127.0.0.1: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// account is an OS user the server runs as.
type account struct {
	name     string
	uid, gid int
}

// serverAccount returns the account to run initdb and postgres as: nil (the
// current user) unless we are root, which PostgreSQL refuses.
func serverAccount() (*account, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, and PostgreSQL refuses to run as root: "+
			"create an OS user postgres (installing postgresql-15 does) or run as another user: %w", err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return nil, fmt.Errorf("uid %q of OS user postgres: %w", u.Uid, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return nil, fmt.Errorf("gid %q of OS user postgres: %w", u.Gid, err)
	}
	return &account{name: u.Username, uid: uid, gid: gid}, nil
}

// tailWriter keeps the last max bytes written, so that errors can quote the
// end of the server log without holding all of it.
type tailWriter struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func newTailWriter(max int) *tailWriter { return &tailWriter{max: max} }

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if over := len(w.buf) - w.max; over > 0 {
		w.buf = append(w.buf[:0], w.buf[over:]...)
	}
	return len(p), nil
}

func (w *tailWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.TrimSpace(string(w.buf))
}

func (w *tailWriter) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = w.buf[:0]
}

// lenientWriter swallows the caller's write errors: io.MultiWriter stops at
// the first error, and a server whose log pipe stops draining blocks.
type lenientWriter struct{ w io.Writer }

func (w lenientWriter) Write(p []byte) (int, error) {
	_, _ = w.w.Write(p)
	return len(p), nil
}
