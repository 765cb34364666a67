package verify_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/phasekit/phasekit/verify"
	"github.com/phasekit/phasekit/verify/pgtest"
)

// chinookTables are the tables of the chinook dataset.
var chinookTables = []string{"album", "artist", "customer", "employee", "genre", "invoice",
	"invoice_line", "media_type", "playlist", "playlist_track", "track"}

func TestCopyDataFormats(t *testing.T) {
	t.Parallel()
	dump := pgtest.DatasetFile(t, "chinook/chinook.dump")
	src := pgtest.NewDB(t, "chinook")
	dir := t.TempDir()
	pgDump(t, src, "--format=directory", "--file="+filepath.Join(dir, "chinook.dir"))
	pgDump(t, src, "--format=tar", "--file="+filepath.Join(dir, "chinook.tar"))
	pgDump(t, src, "--format=plain", "--no-owner", "--no-privileges", "--file="+filepath.Join(dir, "chinook.sql"))

	tests := []struct {
		name   string
		opts   verify.CopyOptions
		method string
	}{
		{"custom archive", verify.CopyOptions{Data: dump, Jobs: 2}, "pg_restore -j 2"},
		{"directory archive", verify.CopyOptions{Data: filepath.Join(dir, "chinook.dir"), Jobs: 2}, "pg_restore -j 2"},
		{"tar archive", verify.CopyOptions{Data: filepath.Join(dir, "chinook.tar"), Jobs: 2}, "pg_restore"},
		{"plain SQL", verify.CopyOptions{Data: filepath.Join(dir, "chinook.sql")}, "psql"},
		{"live source", verify.CopyOptions{SourceDSN: src, Jobs: 2}, "stream"},
	}
	want := tableCounts(t, src)
	var wantRows int64
	for _, n := range want {
		wantRows += n
	}
	wantSchema := dumpSchema(t, src)
	wantSeqs := sequenceValues(t, src)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dst := pgtest.NewDB(t, "")
			rep, err := verify.CopyData(t.Context(), dst, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Log(rep)
			if !strings.HasPrefix(rep.Method, tt.method) || (tt.method == "pg_restore" && rep.Method != "pg_restore") {
				t.Errorf("Method = %q, want %q", rep.Method, tt.method)
			}
			if got := tableCounts(t, dst); !equalCounts(got, want) {
				t.Errorf("row counts = %v, want the source's %v", got, want)
			}
			if rep.Tables != len(chinookTables) || rep.Rows != wantRows {
				t.Errorf("report says %d tables, %d rows; want %d, %d", rep.Tables, rep.Rows, len(chinookTables), wantRows)
			}
			if rep.Bytes < 1<<20 {
				t.Errorf("report says the target has %d bytes", rep.Bytes)
			}
			if got := dumpSchema(t, dst); got != wantSchema {
				t.Errorf("schema of the copy differs from the source's:\n%s", firstDiff(got, wantSchema))
			}
			if got := sequenceValues(t, dst); got != wantSeqs {
				t.Errorf("sequences = %s, want %s", got, wantSeqs)
			}
		})
	}
}

func TestCopyDataRefusesNonEmptyTarget(t *testing.T) {
	t.Parallel()
	dst := pgtest.NewDB(t, "chinook-schema")
	_, err := verify.CopyData(t.Context(), dst, verify.CopyOptions{Data: pgtest.DatasetFile(t, "chinook/chinook.dump")})
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("err = %v, want a refusal of the non-empty target", err)
	}
}

func TestCopyDataNeedsOneSource(t *testing.T) {
	t.Parallel()
	for _, opts := range []verify.CopyOptions{{}, {Data: "x.dump", SourceDSN: "postgres://localhost/x"}} {
		if _, err := verify.CopyData(t.Context(), "postgres://localhost/none", opts); err == nil || !strings.Contains(err.Error(), "either") {
			t.Errorf("CopyData(%+v) err = %v, want one of a dump file or a source DSN", opts, err)
		}
	}
}

// The copy from a live source reads one snapshot: rows committed on the
// source after CopyData has started its transaction are not copied.
func TestCopyDataFromSourceIgnoresLaterWrites(t *testing.T) {
	t.Parallel()
	src := pgtest.NewDB(t, "chinook")
	dst := pgtest.NewDB(t, "")
	conn := pgtest.Conn(t, src)
	// A lock on genre holds the copy after it has exported its snapshot
	// and while it waits for its ACCESS SHARE lock on the tables.
	tx, err := conn.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), "LOCK TABLE genre IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := verify.CopyData(context.Background(), dst, verify.CopyOptions{SourceDSN: src, Jobs: 2})
		done <- err
	}()
	waitFor(t, src, "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'genre'::regclass")
	if _, err := tx.Exec(t.Context(), "INSERT INTO genre (genre_id, name) VALUES (1000, 'written during the copy')"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, pgtest.Conn(t, dst), "SELECT count(*) FROM genre"); n != 25 {
		t.Errorf("copy has %d genres, want the 25 of the snapshot", n)
	}
}

// pgDump writes a dump of dsn with pg_dump.
func pgDump(t *testing.T, dsn string, args ...string) {
	t.Helper()
	bin, err := exec.LookPath("pg_dump")
	if err != nil {
		bin = "/usr/lib/postgresql/15/bin/pg_dump"
	}
	out, err := exec.Command(bin, append([]string{"-d", dsn}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("pg_dump %v: %v\n%s", args, err, out)
	}
}

// tableCounts counts the rows of every table in the public schema.
func tableCounts(t *testing.T, dsn string) map[string]int64 {
	t.Helper()
	conn := pgtest.Conn(t, dsn)
	rows, err := conn.Query(t.Context(), "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int64{}
	for _, n := range names {
		counts[n] = int64(queryInt(t, conn, "SELECT count(*) FROM "+pgx.Identifier{n}.Sanitize()))
	}
	return counts
}

func equalCounts(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func queryInt(t *testing.T, conn *pgx.Conn, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(t.Context(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// queryStrings returns the first column of sql's rows, NULLs as "<null>", sorted.
func queryStrings(t *testing.T, conn *pgx.Conn, sql string) []string {
	t.Helper()
	rows, err := conn.Query(t.Context(), sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	vals, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var s *string
		err := r.Scan(&s)
		if s == nil {
			return "<null>", err
		}
		return *s, err
	})
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	sort.Strings(vals)
	return vals
}

func dumpSchema(t *testing.T, dsn string) string {
	t.Helper()
	s, err := verify.DumpSchema(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sequenceValues(t *testing.T, dsn string) string {
	t.Helper()
	return strings.Join(queryStrings(t, pgtest.Conn(t, dsn),
		"SELECT schemaname || '.' || sequencename || '=' || coalesce(last_value::text, 'unset') FROM pg_sequences"), ", ")
}

func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return fmt.Sprintf("line %d: got %q, want %q", i+1, x, y)
		}
	}
	return "(equal)"
}

// waitFor polls sql on dsn until it returns a count above zero.
func waitFor(t *testing.T, dsn, sql string) {
	t.Helper()
	conn := pgtest.Conn(t, dsn)
	for i := 0; i < 300; i++ {
		if queryInt(t, conn, sql) > 0 {
			return
		}
		select {
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("timed out waiting for %s", sql)
}

// danglingRows returns, for every foreign key of dsn's database, the rows
// whose non-NULL key has no parent row, as "constraint: n rows".
func danglingRows(t *testing.T, dsn string) []string {
	t.Helper()
	conn := pgtest.Conn(t, dsn)
	rows, err := conn.Query(t.Context(), `
		SELECT con.conname, con.conrelid::regclass::text, con.confrelid::regclass::text,
		       ARRAY(SELECT quote_ident(attname) FROM unnest(con.conkey) WITH ORDINALITY k(n, i)
		             JOIN pg_attribute ON attrelid = con.conrelid AND attnum = k.n ORDER BY k.i),
		       ARRAY(SELECT quote_ident(attname) FROM unnest(con.confkey) WITH ORDINALITY k(n, i)
		             JOIN pg_attribute ON attrelid = con.confrelid AND attnum = k.n ORDER BY k.i)
		FROM pg_constraint con WHERE con.contype = 'f'`)
	if err != nil {
		t.Fatal(err)
	}
	type fk struct {
		name, child, parent string
		ccols, pcols        []string
	}
	var fks []fk
	for rows.Next() {
		var f fk
		if err := rows.Scan(&f.name, &f.child, &f.parent, &f.ccols, &f.pcols); err != nil {
			t.Fatal(err)
		}
		fks = append(fks, f)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(fks) == 0 {
		t.Fatal("no foreign keys in the copy: the check would pass vacuously")
	}
	var bad []string
	for _, f := range fks {
		var nn, eq []string
		for i := range f.ccols {
			nn = append(nn, "c."+f.ccols[i]+" IS NOT NULL")
			eq = append(eq, "p."+f.pcols[i]+" = c."+f.ccols[i])
		}
		sql := fmt.Sprintf("SELECT count(*) FROM %s c WHERE %s AND NOT EXISTS (SELECT FROM %s p WHERE %s)",
			f.child, strings.Join(nn, " AND "), f.parent, strings.Join(eq, " AND "))
		if n := queryInt(t, conn, sql); n > 0 {
			bad = append(bad, fmt.Sprintf("%s: %d rows", f.name, n))
		}
	}
	return bad
}

// readDatabaseFiles returns the contents of every file of dsn's database in
// the cluster's data directory, after a checkpoint has written them out,
// or skips the test if the files cannot be read.
func readDatabaseFiles(t *testing.T, dsn string) []byte {
	t.Helper()
	conn := pgtest.Conn(t, dsn)
	var dataDir, oid string
	if err := conn.QueryRow(t.Context(), "SELECT current_setting('data_directory'), oid::text FROM pg_database WHERE datname = current_database()").Scan(&dataDir, &oid); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(t.Context(), "CHECKPOINT"); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(dataDir, "base", oid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Skipf("cannot read the database's files: %v", err)
	}
	var all []byte
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Skipf("cannot read the database's files: %v", err)
		}
		all = append(all, b...)
	}
	return all
}

// Types whose binary form names a type oid (arrays and composites of
// user-defined types) must travel as text; generated columns are computed
// again, identity columns keep their values, partitions are copied leaf by
// leaf, and a mask on a partitioned table reaches every partition.
func TestCopyDataFromSourceTypes(t *testing.T) {
	t.Parallel()
	src := pgtest.NewDB(t, "")
	conn := pgtest.Conn(t, src)
	if _, err := conn.Exec(t.Context(), `
		CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
		CREATE TYPE point3 AS (x int, y int, z int);
		CREATE DOMAIN positive AS int CHECK (VALUE > 0);
		CREATE SCHEMA "Odd Schema";
		CREATE TABLE "Odd Schema"."Things" (
			id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			moods mood[],
			mood mood,
			p point3,
			n positive,
			doubled int GENERATED ALWAYS AS (n * 2) STORED,
			tags text[],
			at timestamptz,
			dropped int
		);
		ALTER TABLE "Odd Schema"."Things" DROP COLUMN dropped;
		INSERT INTO "Odd Schema"."Things" (moods, mood, p, n, tags, at)
		SELECT ARRAY['sad', 'happy']::mood[], 'ok', ROW(i, i + 1, i + 2)::point3, i, ARRAY['a', 'b "c"', NULL], '2024-01-01 00:00+02'::timestamptz + i * interval '1 day'
		FROM generate_series(1, 100) i;
		CREATE TABLE events (id int, region text, email text) PARTITION BY LIST (region);
		CREATE TABLE events_eu PARTITION OF events FOR VALUES IN ('eu');
		CREATE TABLE events_us PARTITION OF events FOR VALUES IN ('us');
		INSERT INTO events SELECT i, CASE WHEN i % 2 = 0 THEN 'eu' ELSE 'us' END, 'person' || i || '@example.com' FROM generate_series(1, 50) i;
		CREATE SEQUENCE counter START 7;
		SELECT nextval('counter'), nextval('counter');`); err != nil {
		t.Fatal(err)
	}
	mask, err := verify.ParseMask("events.email=hash")
	if err != nil {
		t.Fatal(err)
	}
	dst := pgtest.NewDB(t, "")
	rep, err := verify.CopyData(t.Context(), dst, verify.CopyOptions{SourceDSN: src, Masks: []verify.Mask{mask}})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rep)
	if got, want := dumpSchema(t, dst), dumpSchema(t, src); got != want {
		t.Errorf("schema of the copy differs:\n%s", firstDiff(got, want))
	}
	const things = `SELECT string_agg(t::text, ';' ORDER BY id) FROM "Odd Schema"."Things" t`
	if got, want := queryStrings(t, pgtest.Conn(t, dst), things), queryStrings(t, conn, things); strings.Join(got, "") != strings.Join(want, "") {
		t.Errorf("rows of Things differ:\n got %.300s\nwant %.300s", got, want)
	}
	dstConn := pgtest.Conn(t, dst)
	if n := queryInt(t, dstConn, `SELECT count(*) FROM events WHERE email ~ '^[0-9a-f]{32}$'`); n != 50 {
		t.Errorf("%d of 50 events have a hashed email", n)
	}
	if n := queryInt(t, dstConn, `SELECT count(*) FROM events_eu`); n != 25 {
		t.Errorf("events_eu has %d rows, want 25", n)
	}
	if n := queryInt(t, dstConn, `SELECT nextval('counter')`); n != 9 {
		t.Errorf("nextval(counter) = %d on the copy, want 9", n)
	}
	if n := queryInt(t, dstConn, `INSERT INTO "Odd Schema"."Things" (n) VALUES (5) RETURNING id`); n != 101 {
		t.Errorf("new identity value = %d, want 101", n)
	}
	if rep.Tables != 3 || rep.Rows != 150 {
		t.Errorf("report says %d tables, %d rows; want 3 (partitions, not their parent), 150", rep.Tables, rep.Rows)
	}
}

// A schema of many tables is restored with pg_restore rather than run as
// one script (one transaction would lock them all), and the streams share
// the tables out between the workers.
func TestCopyDataFromSourceManyTables(t *testing.T) {
	t.Parallel()
	src := pgtest.NewDB(t, "")
	if _, err := pgtest.Conn(t, src).Exec(t.Context(), `
		CREATE TABLE parent (id int PRIMARY KEY);
		INSERT INTO parent SELECT generate_series(1, 10);
		DO $$ BEGIN
			FOR i IN 1..200 LOOP
				EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, parent_id int REFERENCES parent)', i);
				EXECUTE format('INSERT INTO t%s VALUES (1, %s)', i, i % 10 + 1);
			END LOOP;
		END $$;`); err != nil {
		t.Fatal(err)
	}
	dst := pgtest.NewDB(t, "")
	rep, err := verify.CopyData(t.Context(), dst, verify.CopyOptions{SourceDSN: src, Jobs: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rep)
	if rep.Tables != 201 || rep.Rows != 210 {
		t.Errorf("report says %d tables, %d rows; want 201, 210", rep.Tables, rep.Rows)
	}
	conn := pgtest.Conn(t, dst)
	if n := queryInt(t, conn, "SELECT count(*) FROM pg_constraint WHERE contype IN ('p', 'f') AND connamespace = 'public'::regnamespace"); n != 401 {
		t.Errorf("copy has %d primary and foreign keys, want 401", n)
	}
	if n := queryInt(t, conn, "SELECT parent_id FROM t199"); n != 10 {
		t.Errorf("t199.parent_id = %d, want 10", n)
	}
}
