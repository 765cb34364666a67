package verify

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/phasekit/phasekit/internal/dbconn"
)

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
