package verify

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
)

// ErrConnect marks a failure to reach or log in to a database: bad input to
// the CLI (exit 2), never a half-done change.
var ErrConnect = errors.New("cannot connect")

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

// Connect opens one connection, telling a malformed DSN and an unreachable or
// refusing server apart from other errors, with the password redacted.
func Connect(ctx context.Context, dsn string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: invalid DSN %q: %s", ErrConnect, Redact(dsn), Redact(err.Error()))
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w to %s: %s", ErrConnect, Redact(dsn), Redact(err.Error()))
	}
	return conn, nil
}
