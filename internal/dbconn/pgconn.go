package dbconn

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrConnect marks a failure to reach or log in to a database: bad input to
// the CLI (exit 2), never a half-done change.
var ErrConnect = errors.New("cannot connect")

// Options tune a connection.
type Options struct {
	// ApplicationName shows in pg_stat_activity ("" keeps the DSN's).
	ApplicationName string
	// Params are more run-time parameters (session settings) for the
	// connection's startup.
	Params map[string]string
}

// ParseConfig parses a DSN, with the password redacted from the error.
func ParseConfig(dsn string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: invalid DSN %q: %s", ErrConnect, Redact(dsn), Redact(err.Error()))
	}
	return cfg, nil
}

// Connect opens one connection, telling a malformed DSN and an unreachable or
// refusing server apart from other errors, with the password redacted.
func Connect(ctx context.Context, dsn string) (*pgx.Conn, error) {
	return ConnectWith(ctx, dsn, Options{})
}

// ConnectWith is Connect with options.
func ConnectWith(ctx context.Context, dsn string, o Options) (*pgx.Conn, error) {
	cfg, err := ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	o.apply(cfg.RuntimeParams)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w to %s: %s", ErrConnect, Redact(dsn), Redact(err.Error()))
	}
	return conn, nil
}

// Pool opens a connection pool with options.
func Pool(ctx context.Context, dsn string, o Options) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: invalid DSN %q: %s", ErrConnect, Redact(dsn), Redact(err.Error()))
	}
	o.apply(cfg.ConnConfig.RuntimeParams)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w to %s: %s", ErrConnect, Redact(dsn), Redact(err.Error()))
	}
	return pool, nil
}

func (o Options) apply(params map[string]string) {
	if o.ApplicationName != "" {
		params["application_name"] = o.ApplicationName
	}
	for k, v := range o.Params {
		params[k] = v
	}
}

// Redact hides the password of every DSN in s (URL or key=value form).
func Redact(s string) string {
	fields := strings.Fields(s)
	for i, f := range fields {
		if isURL(f) {
			if _, err := url.Parse(f); err != nil {
				// An unparsable URL still shows its password: hide what lies
				// between the user's colon and the last @ before the host.
				fields[i] = redactRawURL(f)
				continue
			}
		}
		if u, err := url.Parse(f); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
			if _, has := u.User.Password(); has {
				u.User = url.UserPassword(u.User.Username(), "xxxxx")
			}
			q := u.Query()
			if q.Has("password") {
				q.Set("password", "xxxxx")
				u.RawQuery = q.Encode()
			}
			fields[i] = u.String()
			continue
		}
		if strings.HasPrefix(strings.ToLower(f), "password=") {
			fields[i] = "password=xxxxx"
		}
	}
	if len(fields) == 0 {
		return s
	}
	return strings.Join(fields, " ")
}

func isURL(s string) bool {
	l := strings.ToLower(s)
	return strings.HasPrefix(l, "postgres://") || strings.HasPrefix(l, "postgresql://")
}

// redactRawURL hides the password of a URL url.Parse rejects.
func redactRawURL(s string) string {
	i := strings.Index(s, "://") + 3
	rest := s[i:]
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return s
	}
	colon := strings.IndexByte(rest[:at], ':')
	if colon < 0 {
		return s
	}
	return s[:i] + rest[:colon] + ":xxxxx" + rest[at:]
}

// RedactOutput hides password, and any DSN's password, in a program's
// output, keeping its lines and spacing where there is nothing to hide.
func RedactOutput(s, password string) string {
	// A very short password would match too much to replace by value; a
	// DSN holding it is still caught below.
	if len(password) >= 4 {
		s = strings.ReplaceAll(s, password, "xxxxx")
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		low := strings.ToLower(l)
		if strings.Contains(low, "postgres") && strings.Contains(low, "://") || strings.Contains(low, "password=") {
			lines[i] = Redact(l)
		}
	}
	return strings.Join(lines, "\n")
}

// Env returns the environment that points a client at dsn (DATABASE_URL and
// libpq's PG* variables), and the password, to redact from what the client
// prints.
func Env(dsn string) (vars []string, password string, err error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's message quotes the DSN with its password hidden, which
		// Redact cannot do for a DSN that does not parse.
		return nil, "", fmt.Errorf("%w: invalid DSN: %s", ErrConnect, Redact(err.Error()))
	}
	return []string{
		"DATABASE_URL=" + dsn,
		"PGHOST=" + cfg.Host,
		"PGPORT=" + strconv.Itoa(int(cfg.Port)),
		"PGUSER=" + cfg.User,
		"PGPASSWORD=" + cfg.Password,
		"PGDATABASE=" + cfg.Database,
		"PGSSLMODE=" + SSLMode(cfg),
	}, cfg.Password, nil
}

// SSLMode recovers libpq's sslmode from what pgx made of it: pgx keeps the
// TLS settings of each connection attempt, not the word.
func SSLMode(cfg *pgx.ConnConfig) string {
	plainFallback, tlsFallback := false, false
	for _, fb := range cfg.Fallbacks {
		if fb.Host != cfg.Host || fb.Port != cfg.Port {
			continue // another host of a multi-host DSN
		}
		if fb.TLSConfig == nil {
			plainFallback = true
		} else {
			tlsFallback = true
		}
	}
	t := cfg.TLSConfig
	switch {
	case t == nil && tlsFallback:
		return "allow"
	case t == nil:
		return "disable" // also a Unix socket, where TLS does not apply
	case plainFallback:
		return "prefer"
	case !t.InsecureSkipVerify && t.ServerName != "":
		return "verify-full"
	case t.VerifyPeerCertificate != nil:
		return "verify-ca"
	default:
		return "require"
	}
}

// ChildEnv is this process's environment with vars set, for a child
// process; PGHOSTADDR and PGSERVICE, which would override vars, are left out.
func ChildEnv(vars ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "PGHOSTADDR" || k == "PGSERVICE" {
			continue
		}
		env = append(env, kv)
	}
	// exec.Cmd keeps the last value of a repeated key.
	return append(env, vars...)
}
