package verify

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/phasekit/phasekit/internal/dbconn"
)

// Sandbox is a PostgreSQL server phasekit may create and drop databases on:
// a container, a throwaway local cluster, or a scratch database on an
// existing server. Close removes everything the sandbox made.
//
// Every implementation passes the conformance suite in verify/sandboxtest,
// whose package comment says how to add one.
type Sandbox interface {
	// Provider names the kind: "docker", "local" or "dsn".
	Provider() string
	// Describe is one line for logs and reports (where, which version).
	Describe() string
	// DSN returns a connection URL for database on the sandbox's server.
	DSN(database string) string
	// CreateDatabase creates name as a copy of template ("" for the default).
	CreateDatabase(ctx context.Context, name, template string) error
	// DropDatabase drops name, disconnecting its sessions; a missing
	// database is not an error.
	DropDatabase(ctx context.Context, name string) error
	// Close removes the sandbox: stops the cluster, removes the container,
	// drops the databases it created. Safe to call twice.
	Close() error
}

// Providers.
const (
	ProviderDocker = "docker"
	ProviderLocal  = "local"
	ProviderDSN    = "dsn"
)

// SandboxOptions chooses and configures a sandbox.
type SandboxOptions struct {
	// Provider is docker, local or dsn; "" picks docker when the Docker
	// daemon answers and Image is present, local otherwise.
	Provider string
	// Image is the container image for docker ("" means DefaultImage()).
	Image string
	// DSN is the existing server for the dsn provider.
	DSN string
	// Log receives the server's output; nil discards it.
	Log io.Writer
	// Note receives one-line notices (which provider was picked and why).
	Note func(string)
}

// OpenSandbox starts (or connects to) the sandbox opts ask for.
func OpenSandbox(ctx context.Context, opts SandboxOptions) (Sandbox, error) {
	note := opts.Note
	if note == nil {
		note = func(string) {}
	}
	image := opts.Image
	if image == "" {
		image = DefaultImage()
	}
	switch opts.Provider {
	case "":
		if why := dockerUnusable(ctx, image); why != "" {
			note("sandbox: local PostgreSQL cluster (docker not used: " + why + ")")
			return startLocalSandbox(ctx, opts)
		}
		note("sandbox: docker container from image " + image)
		return StartDocker(ctx, DockerOptions{Image: image, Log: opts.Log})
	case ProviderLocal:
		return startLocalSandbox(ctx, opts)
	case ProviderDocker:
		return StartDocker(ctx, DockerOptions{Image: image, Log: opts.Log})
	case ProviderDSN:
		if opts.DSN == "" {
			return nil, fmt.Errorf("%w: provider dsn needs a server: give --sandbox-dsn", dbconn.ErrConnect)
		}
		return OpenDSNSandbox(ctx, opts.DSN)
	default:
		return nil, fmt.Errorf("unknown sandbox provider %q: want docker, local or dsn", opts.Provider)
	}
}

func startLocalSandbox(ctx context.Context, opts SandboxOptions) (Sandbox, error) {
	return StartLocal(ctx, LocalOptions{Log: opts.Log})
}

// Provider implements Sandbox.
func (l *Local) Provider() string { return ProviderLocal }

// Describe implements Sandbox.
func (l *Local) Describe() string {
	return fmt.Sprintf("local PostgreSQL cluster on 127.0.0.1:%d", l.port)
}

// Close implements Sandbox: it stops the cluster and removes its directory.
func (l *Local) Close() error { return l.Stop() }

// DSNSandbox is a sandbox on an existing server: it creates scratch
// databases there (the role needs CREATEDB) and drops them on Close.
type DSNSandbox struct {
	base *url.URL // the server's DSN as a URL; the database part is replaced

	mu      sync.Mutex
	created map[string]bool
}

// OpenDSNSandbox checks that dsn's server answers and returns a sandbox on it.
func OpenDSNSandbox(ctx context.Context, dsn string) (*DSNSandbox, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: invalid DSN %q: %s", dbconn.ErrConnect, dbconn.Redact(dsn), dbconn.Redact(err.Error()))
	}
	// A URL is the one form whose database part can be swapped reliably;
	// build one from the parsed config.
	u := &url.URL{Scheme: "postgres", Host: fmt.Sprintf("%s:%d", cfg.Host, cfg.Port), Path: "/" + cfg.Database}
	if strings.HasPrefix(cfg.Host, "/") {
		u.Host = ""
		q := url.Values{}
		q.Set("host", cfg.Host)
		q.Set("port", fmt.Sprint(cfg.Port))
		u.RawQuery = q.Encode()
	}
	if cfg.Password != "" {
		u.User = url.UserPassword(cfg.User, cfg.Password)
	} else {
		u.User = url.User(cfg.User)
	}
	if cfg.TLSConfig == nil {
		q := u.Query()
		q.Set("sslmode", "disable")
		u.RawQuery = q.Encode()
	}
	s := &DSNSandbox{base: u, created: map[string]bool{}}
	conn, err := dbconn.Connect(ctx, s.DSN(cfg.Database))
	if err != nil {
		return nil, err
	}
	conn.Close(ctx)
	return s, nil
}

// Provider implements Sandbox.
func (s *DSNSandbox) Provider() string { return ProviderDSN }

// Describe implements Sandbox.
func (s *DSNSandbox) Describe() string {
	return "scratch databases on " + dbconn.Redact(s.DSN(strings.TrimPrefix(s.base.Path, "/")))
}

// DSN implements Sandbox.
func (s *DSNSandbox) DSN(database string) string {
	u := *s.base
	u.Path = "/" + database
	return u.String()
}

// maintenanceDSN is where CREATE and DROP DATABASE run.
func (s *DSNSandbox) maintenanceDSN() string {
	db := strings.TrimPrefix(s.base.Path, "/")
	if db == "" {
		db = "postgres"
	}
	return s.DSN(db)
}

func (s *DSNSandbox) exec(ctx context.Context, sql string) error {
	conn, err := dbconn.Connect(ctx, s.maintenanceDSN())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// CreateDatabase implements Sandbox.
func (s *DSNSandbox) CreateDatabase(ctx context.Context, name, template string) error {
	sql := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if template != "" {
		sql += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	}
	if err := s.exec(ctx, sql); err != nil {
		return fmt.Errorf("create scratch database %s: %w", name, err)
	}
	s.mu.Lock()
	s.created[name] = true
	s.mu.Unlock()
	return nil
}

// DropDatabase implements Sandbox.
func (s *DSNSandbox) DropDatabase(ctx context.Context, name string) error {
	if err := s.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop scratch database %s: %w", name, err)
	}
	s.mu.Lock()
	delete(s.created, name)
	s.mu.Unlock()
	return nil
}

// Close implements Sandbox: it drops every database this sandbox created
// and nothing else.
func (s *DSNSandbox) Close() error {
	s.mu.Lock()
	names := make([]string, 0, len(s.created))
	for n := range s.created {
		names = append(names, n)
	}
	s.mu.Unlock()
	var first error
	for _, n := range names {
		if err := s.DropDatabase(context.Background(), n); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// DockerUnusable returns "" when the docker provider can start image here,
// otherwise why not (no daemon, no image): tests skip on it with the reason.
func DockerUnusable(ctx context.Context, image string) string { return dockerUnusable(ctx, image) }
