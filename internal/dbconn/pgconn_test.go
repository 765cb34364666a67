package dbconn_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/phasekit/phasekit/internal/dbconn"
)

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://u:secret@h:5432/db", "postgres://u:xxxxx@h:5432/db"},
		{"postgresql://u:secret@h/db?password=also", "postgresql://u:xxxxx@h/db?password=xxxxx"},
		{"host=h user=u password=secret dbname=d", "host=h user=u password=xxxxx dbname=d"},
		// url.Parse rejects these; the password must still not show.
		{"postgres://x:secret@[::1/db", "postgres://x:xxxxx@[::1/db"},
		{"postgres://x:sec@ret@h:99999999/db", "postgres://x:xxxxx@h:99999999/db"},
		{"postgres://u@h/db", "postgres://u@h/db"},
	} {
		if got := dbconn.Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestConnectBadDSNHidesPassword(t *testing.T) {
	_, err := dbconn.Connect(t.Context(), "postgres://x:secret@[::1/db")
	if err == nil || !errors.Is(err, dbconn.ErrConnect) || strings.Contains(err.Error(), "secret") {
		t.Fatalf("got %v", err)
	}
}
