package verify

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/phasekit/phasekit/internal/dbconn"
)

// DumpSchema returns pg_dump --schema-only of a database, leaving out
// phasekit's own schema and golang-migrate's version table, normalised so two
// dumps compare equal when the schemas are equal: comments, blank lines and
// the random \restrict keys are dropped, and the columns of each CREATE TABLE
// are sorted (a column added by a plan sits last, where a plain ALTER keeps
// it in place; order is not part of what an app may rely on by name).
func DumpSchema(ctx context.Context, dsn string) (string, error) {
	bin, err := clientBinary("pg_dump")
	if err != nil {
		return "", err
	}
	cmd := clientCommand(ctx, bin, dsn, "--schema-only", "--no-owner", "--no-privileges",
		"--exclude-schema=phasekit", "--exclude-table=public.schema_migrations")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("pg_dump --schema-only of %s: %w: %s", dbconn.Redact(dsn), err, strings.TrimSpace(errb.String()))
	}
	return NormalizeDump(out.String()), nil
}

// archiveMarker names the columns and tables phasekit archives instead of
// dropping (phases.ArchivePrefix); they are phasekit's own objects.
const archiveMarker = "phasekit_archived_"

// NormalizeDump normalises pg_dump --schema-only text; see DumpSchema. It
// also leaves out phasekit's archived columns (a line of a CREATE TABLE) and
// every statement that names one (their comments, indexes, constraints).
func NormalizeDump(dump string) string {
	var out []string
	var table, stmt []string
	inTable := false
	for _, line := range strings.Split(dump, "\n") {
		trimmed := strings.TrimSpace(line)
		if !inTable && !strings.HasPrefix(line, "CREATE TABLE ") && trimmed != "" && !strings.HasPrefix(trimmed, "--") {
			// Outside CREATE TABLE, gather whole statements to drop those
			// that name an archived object.
			stmt = append(stmt, line)
			if strings.HasSuffix(trimmed, ";") || strings.HasPrefix(trimmed, `\`) {
				if !strings.Contains(strings.Join(stmt, "\n"), archiveMarker) {
					for _, l := range stmt {
						if t := strings.TrimSpace(l); !strings.HasPrefix(t, `\restrict`) && !strings.HasPrefix(t, `\unrestrict`) {
							out = append(out, l)
						}
					}
				}
				stmt = nil
			}
			continue
		}
		switch {
		case trimmed == "" || strings.HasPrefix(trimmed, "--"):
			continue
		case inTable && strings.Contains(line, archiveMarker):
			continue
		case strings.HasPrefix(trimmed, `\restrict`) || strings.HasPrefix(trimmed, `\unrestrict`):
			continue
		case strings.HasPrefix(line, "CREATE TABLE ") && strings.HasSuffix(trimmed, "("):
			inTable = true
			out = append(out, line)
			table = nil
		case inTable && strings.HasPrefix(trimmed, ")"):
			sort.Strings(table)
			out = append(out, table...)
			out = append(out, line)
			inTable = false
		case inTable:
			table = append(table, strings.TrimSuffix(trimmed, ","))
		default:
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// DumpSchemaFile writes pg_dump --schema-only of a database to file, without
// owners, privileges or phasekit's own schema: what a scratch copy of its
// schema is loaded from.
func DumpSchemaFile(ctx context.Context, dsn, file string) error {
	bin, err := clientBinary("pg_dump")
	if err != nil {
		return err
	}
	cmd := clientCommand(ctx, bin, dsn, "--schema-only", "--no-owner", "--no-privileges", "--exclude-schema=phasekit", "-f", file)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("pg_dump --schema-only of %s: %w: %s", dbconn.Redact(dsn), err, strings.TrimSpace(errb.String()))
	}
	return nil
}
