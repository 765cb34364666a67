package compat

import (
	"strings"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/phases"
)

// NaiveSQL is the migration as a team would run it in one go: the SQL as
// written, or for a change spec the plain statements it stands for. It is
// what the matrix runs beside the plan to show what the plan avoids.
// Session settings (SET lock_timeout ...) are kept: they are part of it.
func NaiveSQL(p *phases.Plan) (string, error) {
	var b strings.Builder
	for _, c := range p.Changes {
		s, err := change.NaiveSQL(c)
		if err != nil {
			return "", err
		}
		b.WriteString(strings.TrimSpace(s))
		if !strings.HasSuffix(b.String(), ";") {
			b.WriteString(";")
		}
		b.WriteString("\n")
	}
	return b.String(), nil
}
