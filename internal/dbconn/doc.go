// Package dbconn is phasekit's one place for connecting to PostgreSQL:
// parsing a DSN, connecting with options (application_name, session
// settings), the error that marks a connection failure as bad input
// (ErrConnect), password redaction for every message that shows a DSN, and
// the PG* environment a client program or an app under test gets.
//
// It sits below everything that connects (the executor, the gate, fleets,
// the report, the sandboxes, the plan check), as pgx's own pgconn sits below
// pgx: nothing reaches up into a feature package for a connection helper.
package dbconn
