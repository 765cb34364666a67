package gate

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/phasekit/phasekit/pipeline"
)

// Session is a session of the app in pg_stat_activity.
type Session struct {
	PID             int       `json:"pid"`
	ApplicationName string    `json:"application_name"`
	Version         string    `json:"version"`
	User            string    `json:"user"`
	Client          string    `json:"client"`
	BackendStart    time.Time `json:"backend_start"`
	State           string    `json:"state,omitempty"`
}

// LiveVersion counts the sessions of one version of the app.
type LiveVersion struct {
	Version         string `json:"version"`
	ApplicationName string `json:"application_name"`
	Sessions        int    `json:"sessions"`
}

// ClientVersion reads the app version from a session's application_name
// under phasekit's convention: "app/version", optionally followed by a space
// and anything (a host or pod name): "checkout/v42", "checkout/v42 pod-7".
// ok is false for sessions of other apps.
func ClientVersion(app, applicationName string) (version string, ok bool) {
	rest, found := strings.CutPrefix(applicationName, app+"/")
	if !found {
		return "", false
	}
	version, _, _ = strings.Cut(rest, " ")
	return version, version != ""
}

// Sessions lists the app's sessions connected to the current database, by
// version then pid.
func Sessions(ctx context.Context, conn *pgx.Conn, app string) ([]Session, error) {
	rows, err := conn.Query(ctx, `SELECT pid, application_name, coalesce(usename, ''), coalesce(host(client_addr), 'local socket'), backend_start, coalesce(state, '')
		FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND starts_with(application_name, $1)
		ORDER BY pid`, app+"/")
	if err != nil {
		return nil, fmt.Errorf("read pg_stat_activity: %w", err)
	}
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Session, error) {
		var s Session
		err := r.Scan(&s.PID, &s.ApplicationName, &s.User, &s.Client, &s.BackendStart, &s.State)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("read pg_stat_activity: %w", err)
	}
	out := all[:0]
	for _, s := range all {
		if v, ok := ClientVersion(app, s.ApplicationName); ok {
			s.Version = v
			out = append(out, s)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// LiveVersions counts sessions per version.
func LiveVersions(app string, sessions []Session) []LiveVersion {
	var out []LiveVersion
	for _, s := range sessions {
		if n := len(out); n > 0 && out[n-1].Version == s.Version {
			out[n-1].Sessions++
			continue
		}
		out = append(out, LiveVersion{Version: s.Version, ApplicationName: app + "/" + s.Version, Sessions: 1})
	}
	return out
}

// checkClients fails while a session of N is connected.
func checkClients(ctx context.Context, conn *pgx.Conn, pl *pipeline.Pipeline) (Check, error) {
	c := Check{Name: CheckClients, Status: Pass}
	all, err := Sessions(ctx, conn, pl.App)
	if err != nil {
		return c, err
	}
	c.Versions = LiveVersions(pl.App, all)
	var live []string
	for _, v := range c.Versions {
		live = append(live, fmt.Sprintf("%s: %d session(s)", v.ApplicationName, v.Sessions))
	}
	if len(live) == 0 {
		live = []string{"none"}
	}
	c.Evidence = append(c.Evidence, fmt.Sprintf("sessions of %s by application_name %s/<version>: %s", pl.App, pl.App, strings.Join(live, ", ")))
	for _, s := range all {
		switch s.Version {
		case pl.Old:
			c.Sessions = append(c.Sessions, s)
			c.Evidence = append(c.Evidence, fmt.Sprintf("pid %d application_name %q user %s from %s connected since %s (%s)",
				s.PID, s.ApplicationName, s.User, s.Client, s.BackendStart.UTC().Format(time.RFC3339), s.State))
		case pl.New:
		default:
			c.Evidence = append(c.Evidence, fmt.Sprintf("note: pid %d runs %s, neither %s nor %s", s.PID, s.ApplicationName, pl.Old, pl.New))
		}
	}
	if len(c.Sessions) > 0 {
		c.Status = Fail
		var pids []string
		for _, s := range c.Sessions {
			pids = append(pids, fmt.Sprint(s.PID))
		}
		c.Summary = fmt.Sprintf("%d session(s) of %s still connected (application_name %s, pid %s)", len(c.Sessions), pl.Old, pl.ApplicationName(pl.Old), strings.Join(pids, ", "))
		return c, nil
	}
	c.Summary = fmt.Sprintf("no session of %s (application_name %s) is connected", pl.Old, pl.ApplicationName(pl.Old))
	return c, nil
}
