package migrations_test

import (
	"bytes"
	"context"
	"errors"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/migrations"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/verify/pgtest"
)

// backfillPool connects a pool to dsn and closes it when the test ends.
var backfillPool = migrations.BackfillPool

// planBackfill plans migration against the database, runs its expand and
// dual-write phases, and returns its one backfill step: the step and trigger
// are exactly what phasekit apply would run.
func planBackfill(t testing.TB, dsn, migration string) phases.BackfillStep {
	t.Helper()
	ctx := context.Background()
	m, err := change.ParseSQL("migration.sql", migration)
	if err != nil {
		t.Fatal(err)
	}
	plan := planLive(t, dsn, m)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, k := range []phases.Kind{phases.Expand, phases.DualWrite} {
		ph := plan.Phase(k)
		if ph == nil {
			t.Fatalf("plan of %q has no %s phase", migration, k)
		}
		for _, st := range ph.Statements {
			if _, err := conn.Exec(ctx, st.SQL); err != nil {
				t.Fatalf("%s: %s: %v", k, st.SQL, err)
			}
		}
	}
	bf := plan.Phase(phases.Backfill)
	if bf == nil || len(bf.Backfills) != 1 {
		t.Fatalf("plan of %q: want one backfill step, got phase %+v", migration, bf)
	}
	return bf.Backfills[0]
}

// backfillChecksum is an md5 over the table's rows in key order, leaving out
// the columns named in except.
func backfillChecksum(t testing.TB, conn *pgx.Conn, table, key string, except ...string) string {
	t.Helper()
	var sum string
	err := conn.QueryRow(context.Background(),
		`SELECT coalesce(md5(string_agg((to_jsonb(r) - $1::text[])::text, E'\n' ORDER BY `+key+`)), '') FROM `+table+` r`,
		except).Scan(&sum)
	if err != nil {
		t.Fatalf("checksum %s: %v", table, err)
	}
	return sum
}

func backfillCount(t testing.TB, conn *pgx.Conn, query string) int64 {
	t.Helper()
	var n int64
	if err := conn.QueryRow(context.Background(), query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// backfillFakeTime is a clock that moves only when the backfill sleeps, so the
// sleeps can be checked exactly, whatever the machine's speed.
type backfillFakeTime struct {
	mu     sync.Mutex
	now    time.Time
	step   time.Duration // added on every reading
	sleeps []time.Duration
}

func newBackfillFakeTime(step time.Duration) *backfillFakeTime {
	return &backfillFakeTime{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), step: step}
}

func (f *backfillFakeTime) Clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(f.step)
	return f.now
}

func (f *backfillFakeTime) Sleep(_ context.Context, d time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sleeps = append(f.sleeps, d)
	f.now = f.now.Add(d)
	return nil
}

func (f *backfillFakeTime) total() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	var sum time.Duration
	for _, d := range f.sleeps {
		sum += d
	}
	return sum
}

var errBackfillKilled = errors.New("simulated kill -9")

// backfillRecordingStore wraps a MemoryCursor: it records every Save and fails the
// failAt-th one (0: never), as a process killed mid-batch would.
type backfillRecordingStore struct {
	*migrations.MemoryCursor
	failAt int
	clock  func() time.Time
	saves  []backfillSave
}

type backfillSave struct {
	at     time.Time
	cursor []string
	rows   int64
}

func (s *backfillRecordingStore) Save(ctx context.Context, tx pgx.Tx, cursor, upper []string, rows int64) error {
	if s.failAt > 0 && len(s.saves)+1 == s.failAt {
		return errBackfillKilled
	}
	var at time.Time
	if s.clock != nil {
		at = s.clock()
	}
	s.saves = append(s.saves, backfillSave{at, cursor, rows})
	return s.MemoryCursor.Save(ctx, tx, cursor, upper, rows)
}

const backfillTrackRows = 3503

func TestBackfillFillsEveryRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDB(t, "chinook")
	conn := pgtest.Conn(t, dsn)
	step := planBackfill(t, dsn, "ALTER TABLE track ALTER COLUMN milliseconds TYPE bigint;")
	shadow := step.Set[0].Column
	if n := backfillCount(t, conn, step.Verify); n != backfillTrackRows {
		t.Fatalf("before the backfill Verify counts %d rows, want %d", n, backfillTrackRows)
	}
	others := backfillChecksum(t, conn, "track", "track_id", shadow)
	pool := backfillPool(t, dsn)

	// MaxReplicationLag runs the real pg_stat_replication query (no replica: no lag).
	opts := migrations.BackfillOptions{InitialBatch: 200, MaxReplicationLag: time.Second}
	res, err := migrations.Backfill(ctx, pool, step, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows != backfillTrackRows || res.Walked != backfillTrackRows || res.Remaining != 0 || res.Resumed {
		t.Errorf("result %+v: want %d rows updated and walked, 0 remaining, not resumed", res, backfillTrackRows)
	}
	if res.Batches < 2 {
		t.Errorf("%d batches for %d rows from an initial batch of 200", res.Batches, backfillTrackRows)
	}
	if n := backfillCount(t, conn, "SELECT count(*) FROM track WHERE "+shadow+" IS DISTINCT FROM milliseconds::bigint"); n != 0 {
		t.Errorf("%d rows not filled", n)
	}
	if got := backfillChecksum(t, conn, "track", "track_id", shadow); got != others {
		t.Errorf("the backfill changed columns other than %s", shadow)
	}

	// Running it again is harmless: nothing left to update.
	again, err := migrations.Backfill(ctx, pool, step, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	if again.Rows != 0 || again.Remaining != 0 {
		t.Errorf("second run %+v: want 0 rows updated, 0 remaining", again)
	}
}

// TestBackfillCompositeKey walks Chinook's playlist_track by its primary key
// (playlist_id, track_id) in batches that end mid-playlist.
func TestBackfillCompositeKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDB(t, "chinook")
	conn := pgtest.Conn(t, dsn)
	// Key columns cannot be retyped by the planner, so the dual-write setup
	// is written here.
	if _, err := conn.Exec(ctx, `
		ALTER TABLE playlist_track ADD COLUMN pair text;
		CREATE FUNCTION fill_pair() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN NEW.pair := NEW.playlist_id || ':' || NEW.track_id; RETURN NEW; END $$;
		CREATE TRIGGER fill_pair BEFORE INSERT OR UPDATE ON playlist_track FOR EACH ROW EXECUTE FUNCTION fill_pair();`); err != nil {
		t.Fatal(err)
	}
	total := backfillCount(t, conn, "SELECT count(*) FROM playlist_track")
	step := phases.BackfillStep{
		Table: "public.playlist_track",
		Key:   []string{"playlist_id", "track_id"},
		Set:   []phases.Assignment{{Column: "pair", Expr: "playlist_id || ':' || track_id", Type: "text"}},
		Where: "pair IS DISTINCT FROM (playlist_id || ':' || track_id)",
	}
	for _, tc := range []struct {
		name string
		// store returns the store and, after the run, the cursors it saved.
		store func() (migrations.CursorStore, func() [][]string)
	}{
		{"six round trips a batch", func() (migrations.CursorStore, func() [][]string) {
			rec := &backfillRecordingStore{MemoryCursor: &migrations.MemoryCursor{}}
			return rec, func() [][]string {
				var out [][]string
				for _, s := range rec.saves {
					out = append(out, s.cursor)
				}
				return out
			}
		}},
		{"one statement a batch", func() (migrations.CursorStore, func() [][]string) {
			sql := newSQLCursor(t, dsn, 0)
			return sql, func() [][]string { return sql.cursors(t) }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The table as the trigger leaves it for new writes, pair empty.
			if _, err := conn.Exec(ctx, `ALTER TABLE playlist_track DISABLE TRIGGER fill_pair;
				UPDATE playlist_track SET pair = NULL;
				ALTER TABLE playlist_track ENABLE TRIGGER fill_pair;`); err != nil {
				t.Fatal(err)
			}
			store, saved := tc.store()
			res, err := migrations.Backfill(ctx, backfillPool(t, dsn), step, store, migrations.BackfillOptions{MinBatch: 1000, MaxBatch: 1000})
			if err != nil {
				t.Fatal(err)
			}
			wantBatches := int((total + 999) / 1000)
			if res.Rows != total || res.Remaining != 0 || res.Batches != wantBatches {
				t.Errorf("result %+v: want %d rows in %d batches, 0 remaining", res, total, wantBatches)
			}
			if left := backfillCount(t, conn, "SELECT count(*) FROM playlist_track WHERE "+step.Where); left != 0 {
				t.Errorf("%d rows left unfilled", left)
			}
			// Batches of 1000 end inside playlists, so the cursor's second column matters.
			cursors := saved()
			if len(cursors) != wantBatches {
				t.Errorf("%d cursors saved, want one a batch (%d)", len(cursors), wantBatches)
			}
			midPlaylist := false
			for i, c := range cursors {
				if len(c) != 2 {
					t.Fatalf("save %d: cursor %v, want (playlist_id, track_id)", i, c)
				}
				var next int64
				err := conn.QueryRow(ctx, `SELECT count(*) FROM playlist_track WHERE playlist_id = $1::int AND track_id > $2::int`, c[0], c[1]).Scan(&next)
				if err != nil {
					t.Fatal(err)
				}
				if next > 0 && i < len(cursors)-1 {
					midPlaylist = true
				}
			}
			if !midPlaylist {
				t.Errorf("no batch ended inside a playlist; cursors: %v", cursors)
			}
		})
	}
}

func TestBackfillEmptyTable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDB(t, "chinook")
	conn := pgtest.Conn(t, dsn)
	if _, err := conn.Exec(ctx, "DELETE FROM invoice_line"); err != nil {
		t.Fatal(err)
	}
	step := planBackfill(t, dsn, "ALTER TABLE invoice_line ALTER COLUMN quantity TYPE bigint;")
	store := &migrations.MemoryCursor{}
	res, err := migrations.Backfill(ctx, backfillPool(t, dsn), step, store, migrations.BackfillOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows != 0 || res.Batches != 0 || res.Walked != 0 || res.Remaining != 0 {
		t.Errorf("result %+v on an empty table: want nothing done and 0 remaining", res)
	}
	if cursor, _, _, _ := store.Load(ctx); cursor != nil {
		t.Errorf("cursor %v saved for an empty table", cursor)
	}
}

// TestBackfillIdentityAndGenerated: an identity key, a stored generated
// column and a last_update trigger; the backfill fills the shadow column and
// leaves every other column as it was.
func TestBackfillIdentityAndGenerated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDB(t, "")
	conn := pgtest.Conn(t, dsn)
	if _, err := conn.Exec(ctx, `
		CREATE TABLE line (
			id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			qty int NOT NULL,
			price numeric(10,2) NOT NULL,
			total numeric GENERATED ALWAYS AS (qty * price) STORED,
			weight int,
			last_update timestamptz NOT NULL DEFAULT now());
		CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN NEW.last_update := now(); RETURN NEW; END $$;
		CREATE TRIGGER last_updated BEFORE UPDATE ON line FOR EACH ROW EXECUTE FUNCTION touch();
		INSERT INTO line (qty, price, weight) SELECT g % 7, g / 10.0, nullif(g % 5, 0) FROM generate_series(1, 5000) g;
		ALTER TABLE line DISABLE TRIGGER last_updated;
		UPDATE line SET last_update = '2020-01-01';
		ALTER TABLE line ENABLE TRIGGER last_updated;`); err != nil {
		t.Fatal(err)
	}
	step := planBackfill(t, dsn, "ALTER TABLE line ALTER COLUMN weight TYPE bigint;")
	shadow := step.Set[0].Column
	others := backfillChecksum(t, conn, "line", "id", shadow)
	res, err := migrations.Backfill(ctx, backfillPool(t, dsn), step, nil, migrations.BackfillOptions{InitialBatch: 500})
	if err != nil {
		t.Fatal(err)
	}
	// A NULL weight already has its NULL shadow: 1000 rows need no update.
	if res.Rows != 4000 || res.Walked != 5000 || res.Remaining != 0 {
		t.Errorf("result %+v: want 4000 rows updated, 5000 walked, 0 remaining", res)
	}
	if n := backfillCount(t, conn, "SELECT count(*) FROM line WHERE "+shadow+" IS DISTINCT FROM weight::bigint"); n != 0 {
		t.Errorf("%d rows not filled", n)
	}
	if got := backfillChecksum(t, conn, "line", "id", shadow); got != others {
		t.Errorf("the backfill changed columns other than %s (last_update, total or identity)", shadow)
	}
	// New rows still get an identity value and a generated total.
	var total string
	if err := conn.QueryRow(ctx, "INSERT INTO line (qty, price, weight) VALUES (3, 2.5, 9) RETURNING total::text").Scan(&total); err != nil {
		t.Fatal(err)
	}
	if total != "7.50" {
		t.Errorf("generated total of a new row = %s, want 7.50", total)
	}
}

// TestBackfillResumesAfterKill: a run dies after three committed batches;
// the next run starts from the saved cursor, walks only what is left, and
// the table ends exactly as after an uninterrupted run. The run dies in
// the fourth batch's cursor save: in the process (a store in memory), or
// on the server in the batch's one statement (a store that saves with a
// statement: the batch's UPDATE must roll back with it, and the connection
// go back to the pool usable).
func TestBackfillResumesAfterKill(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const migration = "ALTER TABLE track ALTER COLUMN milliseconds TYPE bigint;"
	fixed := migrations.BackfillOptions{MinBatch: 500, MaxBatch: 500}

	cleanDSN := pgtest.NewDB(t, "chinook")
	cleanStep := planBackfill(t, cleanDSN, migration)
	if _, err := migrations.Backfill(ctx, backfillPool(t, cleanDSN), cleanStep, nil, fixed); err != nil {
		t.Fatal(err)
	}
	want := backfillChecksum(t, pgtest.Conn(t, cleanDSN), "track", "track_id")

	for _, tc := range []struct {
		name string
		// stores returns the store the first run dies in and the one the
		// second run resumes from, and the pool's DSN suffix.
		stores func(t *testing.T, dsn string) (dies, resumes migrations.CursorStore, pool string)
		died   func(err error) bool
	}{
		{
			name: "killed in the process",
			stores: func(t *testing.T, dsn string) (migrations.CursorStore, migrations.CursorStore, string) {
				mem := &migrations.MemoryCursor{}
				return &backfillRecordingStore{MemoryCursor: mem, failAt: 4}, mem, ""
			},
			died: func(err error) bool { return errors.Is(err, errBackfillKilled) },
		},
		{
			name: "one statement a batch, the cursor's part fails on the server",
			stores: func(t *testing.T, dsn string) (migrations.CursorStore, migrations.CursorStore, string) {
				sql := newSQLCursor(t, dsn, 4)
				// One connection: the resumed run reuses the one the failed batch had.
				return sql, sql, "&pool_max_conns=1"
			},
			died: func(err error) bool {
				return err != nil && strings.Contains(err.Error(), "save cursor") && strings.Contains(err.Error(), "22012")
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dsn := pgtest.NewDB(t, "chinook")
			conn := pgtest.Conn(t, dsn)
			step := planBackfill(t, dsn, migration)
			dies, resumes, suffix := tc.stores(t, dsn)
			pool := backfillPool(t, dsn+suffix)
			_, err := migrations.Backfill(ctx, pool, step, dies, fixed)
			if !tc.died(err) {
				t.Fatalf("first run: err = %v, want it to die in batch 4's cursor save", err)
			}
			if !strings.Contains(err.Error(), "backfill public.track (batch 4") {
				t.Errorf("error %q does not say which table and batch failed", err)
			}
			// The fourth batch rolled back with its cursor: three batches are in.
			if left := backfillCount(t, conn, step.Verify); left != backfillTrackRows-1500 {
				t.Fatalf("after the kill %d rows are left, want %d", left, backfillTrackRows-1500)
			}
			cursor, _, rows, err := resumes.Load(ctx)
			if err != nil || rows != 1500 || len(cursor) != 1 {
				t.Fatalf("saved cursor %v after %d rows (%v), want one key after 1500 rows", cursor, rows, err)
			}

			res, err := migrations.Backfill(ctx, pool, step, resumes, fixed)
			if err != nil {
				t.Fatal(err)
			}
			// Nothing is redone: the cursor committed with its batch.
			if !res.Resumed || res.Batches != 5 || res.Rows != backfillTrackRows-1500 || res.Walked != backfillTrackRows || res.Remaining != 0 {
				t.Errorf("resumed run %+v: want resumed, 5 batches, %d rows updated, %d walked, 0 remaining", res, backfillTrackRows-1500, backfillTrackRows)
			}
			if got := backfillChecksum(t, conn, "track", "track_id"); got != want {
				t.Errorf("table after kill and resume differs from an uninterrupted run")
			}
		})
	}
}

// TestBackfillUnderConcurrentInserts: INSERTs run for the whole backfill;
// it still ends, at the bound fixed when it started, and the trigger filled
// every new row.
func TestBackfillUnderConcurrentInserts(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dsn := pgtest.NewDB(t, "")
	conn := pgtest.Conn(t, dsn)
	if _, err := conn.Exec(ctx, `
		CREATE TABLE event (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, n int NOT NULL, payload text);
		INSERT INTO event (n, payload) SELECT g, 'seed' FROM generate_series(1, 30000) g;`); err != nil {
		t.Fatal(err)
	}
	step := planBackfill(t, dsn, "ALTER TABLE event ALTER COLUMN n TYPE bigint;")

	insertCtx, stopInserts := context.WithCancel(ctx)
	var inserted atomic.Int64
	started := make(chan struct{})
	insertErr := make(chan error, 1)
	go func() {
		ins, err := pgx.Connect(ctx, dsn)
		if err != nil {
			close(started)
			insertErr <- err
			return
		}
		defer ins.Close(context.Background())
		for i := 0; ; i++ {
			tag, err := ins.Exec(insertCtx, "INSERT INTO event (n, payload) SELECT g, 'live' FROM generate_series(1, 50) g")
			if insertCtx.Err() != nil {
				insertErr <- nil
				return
			}
			if err != nil {
				if i == 0 {
					close(started)
				}
				insertErr <- err
				return
			}
			inserted.Add(tag.RowsAffected())
			if i == 0 {
				close(started)
			}
		}
	}()
	<-started
	// Throttled to last about a second, so the inserts overlap it.
	res, err := migrations.Backfill(ctx, backfillPool(t, dsn), step, nil, migrations.BackfillOptions{MaxRowsPerSecond: 30000, MinBatch: 1000})
	during := inserted.Load()
	stopInserts()
	if ierr := <-insertErr; ierr != nil {
		t.Fatalf("inserter: %v", ierr)
	}
	if err != nil {
		t.Fatal(err)
	}
	if during == 0 {
		t.Fatal("no row was inserted during the backfill")
	}
	totalRows := backfillCount(t, conn, "SELECT count(*) FROM event")
	if res.Remaining != 0 || res.Walked < 30000 || res.Walked >= totalRows {
		t.Errorf("result %+v with %d rows at the end: want 0 remaining, at least the 30000 seed rows walked and the later inserts left to the trigger", res, totalRows)
	}
	if left := backfillCount(t, conn, step.Verify); left != 0 {
		t.Errorf("after the inserts stopped Verify counts %d rows", left)
	}
	t.Logf("%d rows inserted during a %s backfill of %d rows", during, res.Elapsed.Round(time.Millisecond), res.Walked)
}

// TestBackfillThrottle: with a rate limit, the backfill never gets ahead of
// the rate and sleeps no more than it needs to.
func TestBackfillThrottle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDB(t, "chinook")
	step := planBackfill(t, dsn, "ALTER TABLE track ALTER COLUMN milliseconds TYPE bigint;")
	clock := newBackfillFakeTime(0)
	start := clock.Clock()
	store := &backfillRecordingStore{MemoryCursor: &migrations.MemoryCursor{}, clock: clock.Clock}
	const rate = 1000.0
	res, err := migrations.Backfill(ctx, backfillPool(t, dsn), step, store, migrations.BackfillOptions{
		MinBatch: 100, InitialBatch: 5000, MaxRowsPerSecond: rate, Clock: clock.Clock, Sleep: clock.Sleep,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows != backfillTrackRows || res.Remaining != 0 {
		t.Fatalf("result %+v", res)
	}
	for i, s := range store.saves {
		if i == 0 {
			continue
		}
		// A batch starts only when the rows before it fit the rate.
		due := time.Duration(float64(store.saves[i-1].rows) / rate * float64(time.Second))
		if got := s.at.Sub(start); got < due {
			t.Errorf("batch %d started at %s, before %s: %d rows walked by then exceed %g rows/s", i+1, got, due, store.saves[i-1].rows, rate)
		}
		// And a batch holds at most a second's worth of rows.
		if n := s.rows - store.saves[i-1].rows; n > int64(rate) {
			t.Errorf("batch %d has %d rows, more than a second at %g rows/s", i+1, n, rate)
		}
	}
	// No sleep after the last batch, none longer than needed before it.
	lastStart := store.saves[len(store.saves)-2].rows
	if want := time.Duration(float64(lastStart) / rate * float64(time.Second)); clock.total() != want {
		t.Errorf("slept %s in all (%v), want %s for %d rows at %g rows/s", clock.total(), clock.sleeps, want, lastStart, rate)
	}
}

// TestBackfillPausesOnReplicationLag: while a replica lags more than the
// limit no batch runs, and the pause is logged.
func TestBackfillPausesOnReplicationLag(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDB(t, "chinook")
	step := planBackfill(t, dsn, "ALTER TABLE track ALTER COLUMN milliseconds TYPE bigint;")
	clock := newBackfillFakeTime(0)
	store := &backfillRecordingStore{MemoryCursor: &migrations.MemoryCursor{}}
	polls := 0
	var savesWhileLagging int
	lag := func(context.Context) (time.Duration, error) {
		polls++
		if polls <= 3 {
			savesWhileLagging = len(store.saves)
			return 5 * time.Second, nil
		}
		return 0, nil
	}
	var out bytes.Buffer
	res, err := migrations.Backfill(ctx, backfillPool(t, dsn), step, store, migrations.BackfillOptions{
		MaxReplicationLag: time.Second, LagPoll: 250 * time.Millisecond, Lag: lag,
		Clock: clock.Clock, Sleep: clock.Sleep, Progress: &out,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Remaining != 0 || savesWhileLagging != 0 {
		t.Errorf("result %+v, %d batches committed while the replica lagged", res, savesWhileLagging)
	}
	if want := []time.Duration{250 * time.Millisecond, 250 * time.Millisecond, 250 * time.Millisecond}; !backfillEqualDurations(clock.sleeps, want) {
		t.Errorf("sleeps %v, want %v", clock.sleeps, want)
	}
	for _, want := range []string{"paused: replication lag 5s exceeds 1s", "resuming after a pause of 750ms"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("progress output lacks %q:\n%s", want, out.String())
		}
	}
}

func backfillEqualDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestBackfillRetriesLockedBatch: a batch that meets a row lock past
// lock_timeout is rolled back and retried after a backoff; when the lock
// outlasts the retries the error names the table, the batch and the cause.
func TestBackfillRetriesLockedBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name         string
		release      bool // the lock holder commits during the first backoff
		oneStatement bool // a store that saves with a statement: each batch is one statement, on one connection
	}{
		{"lock released", true, false}, {"lock held", false, false},
		{"one statement, lock released", true, true}, {"one statement, lock held", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dsn := pgtest.NewDB(t, "chinook")
			var store migrations.CursorStore // nil: a MemoryCursor, six round trips a batch
			var sql *sqlCursor
			poolDSN := dsn
			if tc.oneStatement {
				sql = newSQLCursor(t, dsn, 0)
				store = sql
				// One connection: the retry reuses the one the timed-out batch had.
				poolDSN += "&pool_max_conns=1"
			}
			pool := backfillPool(t, poolDSN)
			step := planBackfill(t, dsn, "ALTER TABLE track ALTER COLUMN milliseconds TYPE bigint;")
			holder, err := pgtest.Conn(t, dsn).Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer holder.Rollback(ctx)
			if _, err := holder.Exec(ctx, "SELECT 1 FROM track WHERE track_id = 10 FOR UPDATE"); err != nil {
				t.Fatal(err)
			}
			var sleeps []time.Duration
			sleep := func(_ context.Context, d time.Duration) error {
				sleeps = append(sleeps, d)
				if tc.release && len(sleeps) == 1 {
					return holder.Commit(ctx)
				}
				return nil
			}
			var out bytes.Buffer
			res, err := migrations.Backfill(ctx, pool, step, store, migrations.BackfillOptions{
				LockTimeout: 50 * time.Millisecond, Retries: 2, Sleep: sleep, Progress: &out,
			})
			if !strings.Contains(out.String(), "backfill public.track: batch 1 failed (") || !strings.Contains(out.String(), "(SQLSTATE 55P03)); retrying in 50ms") {
				t.Errorf("no retry logged:\n%s", out.String())
			}
			if tc.release {
				if err != nil || res.Remaining != 0 || res.Rows != backfillTrackRows || len(sleeps) != 1 {
					t.Errorf("result %+v, err %v after %v backoffs: want every row filled after one retry", res, err, sleeps)
				}
				if sql != nil {
					if _, _, rows, _ := sql.Load(ctx); rows != backfillTrackRows {
						t.Errorf("the cursor's store says %d rows walked, want %d", rows, backfillTrackRows)
					}
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "backfill public.track (batch 1, ") || !strings.Contains(err.Error(), "SQLSTATE 55P03") {
				t.Errorf("err = %v, want the lock timeout of batch 1 of public.track", err)
			}
			if want := []time.Duration{50 * time.Millisecond, 100 * time.Millisecond}; !backfillEqualDurations(sleeps, want) {
				t.Errorf("backoffs %v, want %v", sleeps, want)
			}
		})
	}
}

func TestBackfillRefusesTableWithoutKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDB(t, "")
	conn := pgtest.Conn(t, dsn)
	if _, err := conn.Exec(ctx, `
		CREATE TABLE loose (a int, b text NOT NULL, c bigint);
		CREATE UNIQUE INDEX loose_a ON loose (a);
		INSERT INTO loose SELECT g, 'b' || (g % 3), NULL FROM generate_series(1, 100) g;`); err != nil {
		t.Fatal(err)
	}
	pool := backfillPool(t, dsn)
	for _, tc := range []struct {
		name string
		key  []string
		want string
	}{
		{"no key given, none in the table", nil, "backfill public.loose: refused: the table has no primary key or unique index over NOT NULL columns: keyset batches cannot walk it; add a primary key first"},
		{"unique but nullable", []string{"a"}, "backfill public.loose: refused: no primary key or unique index over NOT NULL columns lies within key (a)"},
		{"not null but not unique", []string{"b"}, "lies within key (b)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			step := phases.BackfillStep{
				Table: "public.loose", Key: tc.key,
				Set:   []phases.Assignment{{Column: "c", Expr: "a::bigint", Type: "bigint"}},
				Where: "c IS DISTINCT FROM a::bigint",
			}
			_, err := migrations.Backfill(ctx, pool, step, nil, migrations.BackfillOptions{})
			if !errors.Is(err, migrations.ErrNoBackfillKey) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want ErrNoBackfillKey saying %q", err, tc.want)
			}
		})
	}
	if n := backfillCount(t, conn, "SELECT count(*) FROM loose WHERE c IS NOT NULL"); n != 0 {
		t.Errorf("a refused backfill filled %d rows", n)
	}
}

func TestBackfillProgress(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		tty   bool
		check func(t *testing.T, out string)
	}{
		{"plain", false, func(t *testing.T, out string) {
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if strings.Contains(out, "\r") || strings.Contains(out, "\x1b") || !strings.HasSuffix(out, "\n") {
				t.Errorf("plain output has terminal controls or an unfinished line: %q", out)
			}
			// The clock moves 2s per reading, so a few progress lines fall due.
			if len(lines) < 4 {
				t.Errorf("want a start line, progress lines and a done line; got:\n%s", out)
			}
			for _, l := range lines {
				if !strings.HasPrefix(l, "backfill public.track: ") {
					t.Errorf("line %q does not name the table", l)
				}
			}
			if !strings.Contains(lines[1], " of ~3503 rows (") || !strings.Contains(lines[1], "rows/s, ETA ") {
				t.Errorf("progress line %q lacks rows, rows/s or ETA", lines[1])
			}
			if last := lines[len(lines)-1]; !strings.Contains(last, "done: 3503 rows updated") || !strings.Contains(last, "verify: 0 rows differ") {
				t.Errorf("last line %q does not report the rows and the verification", last)
			}
		}},
		{"tty", true, func(t *testing.T, out string) {
			if strings.Count(out, "\r") < 3 || !strings.Contains(out, "rows/s ETA ") || !strings.Contains(out, "] 100% 3503/3503 rows") {
				t.Errorf("want a bar redrawn in place reaching 100%% with rows/s and ETA; got %q", out)
			}
			if !strings.HasSuffix(out, "verify: 0 rows differ\n") {
				t.Errorf("output does not end with the done line: %q", out)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dsn := pgtest.NewDB(t, "chinook")
			step := planBackfill(t, dsn, "ALTER TABLE track ALTER COLUMN milliseconds TYPE bigint;")
			step.RowEstimate = backfillTrackRows
			clock := newBackfillFakeTime(2 * time.Second)
			var out bytes.Buffer
			_, err := migrations.Backfill(ctx, backfillPool(t, dsn), step, nil, migrations.BackfillOptions{
				MinBatch: 500, MaxBatch: 500, Progress: &out, TTY: tc.tty, Clock: clock.Clock, Sleep: clock.Sleep,
			})
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, out.String())
		})
	}
}

// BenchmarkBackfill fills the bigint shadow of a 200,000-row table through
// its dual-write trigger, in batches and as the single UPDATE a plain
// golang-migrate run would do, and reports both rates and their ratio.
func BenchmarkBackfill(b *testing.B) {
	const rows = 200000
	ctx := context.Background()
	dsn := pgtest.NewDB(b, "")
	conn := pgtest.Conn(b, dsn)
	if _, err := conn.Exec(ctx, `
		CREATE TABLE bench (id int PRIMARY KEY, n int NOT NULL, pad text NOT NULL DEFAULT repeat('x', 40));
		INSERT INTO bench (id, n) SELECT g, g % 1000 FROM generate_series(1, 200000) g;`); err != nil {
		b.Fatal(err)
	}
	step := planBackfill(b, dsn, "ALTER TABLE bench ALTER COLUMN n TYPE bigint;")
	pool := backfillPool(b, dsn)
	reset := func() {
		b.Helper()
		// The trigger would refill the shadow, and dual-write's NOT VALID
		// check forbids NULL: each measurement starts from the same stale,
		// vacuumed table.
		for _, sql := range []string{
			"ALTER TABLE bench DISABLE TRIGGER " + phases.SyncTrigger,
			"UPDATE bench SET " + step.Set[0].Column + " = -1",
			"ALTER TABLE bench ENABLE TRIGGER " + phases.SyncTrigger,
			"VACUUM bench",
		} {
			if _, err := conn.Exec(ctx, sql); err != nil {
				b.Fatal(err)
			}
		}
	}
	var batched, naive time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		reset()
		b.StartTimer()
		res, err := migrations.Backfill(ctx, pool, step, nil, migrations.BackfillOptions{})
		if err != nil || res.Rows != rows {
			b.Fatalf("backfill: %+v, %v", res, err)
		}
		batched += res.Elapsed

		b.StopTimer()
		reset()
		b.StartTimer()
		t0 := time.Now()
		if _, err := conn.Exec(ctx, step.SQL); err != nil {
			b.Fatal(err)
		}
		naive += time.Since(t0)
		if left := backfillCount(b, conn, step.Verify); left != 0 {
			b.Fatalf("naive UPDATE left %d rows", left)
		}
	}
	b.ReportMetric(float64(rows*b.N)/batched.Seconds(), "batched-rows/s")
	b.ReportMetric(float64(rows*b.N)/naive.Seconds(), "naive-rows/s")
	b.ReportMetric(math.Round(100*naive.Seconds()/batched.Seconds())/100, "batched/naive")
}

// TestBackfillWALCompression: every batch runs with the wal_compression
// asked for (the rows record the setting their batch saw); a role the
// server does not let set it gets a line saying so and the server's
// setting, and the backfill still fills every row.
func TestBackfillWALCompression(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDB(t, "")
	conn := pgtest.Conn(t, dsn)
	if _, err := conn.Exec(ctx, `CREATE TABLE w (id int PRIMARY KEY, seen text);
		INSERT INTO w SELECT g, NULL FROM generate_series(1, 2500) g`); err != nil {
		t.Fatal(err)
	}
	step := phases.BackfillStep{Table: "public.w", Set: []phases.Assignment{{Column: "seen", Expr: "current_setting('wal_compression')"}},
		Where: "seen IS DISTINCT FROM current_setting('wal_compression')", Verify: "SELECT count(*) FROM w WHERE seen IS NULL"}
	var server string
	if err := conn.QueryRow(ctx, "SHOW wal_compression").Scan(&server); err != nil || server == "pglz" {
		t.Fatalf("server's wal_compression %q (%v): the test needs it to differ from pglz", server, err)
	}

	var log bytes.Buffer
	res, err := migrations.Backfill(ctx, backfillPool(t, dsn), step, nil, migrations.BackfillOptions{InitialBatch: 100, MaxBatch: 300, WALCompression: "pglz", Progress: &log})
	if err != nil {
		t.Fatal(err)
	}
	if res.Batches < 5 {
		t.Fatalf("%d batches: the test wants several", res.Batches)
	}
	if n := backfillCount(t, conn, "SELECT count(*) FROM w WHERE seen IS DISTINCT FROM 'pglz'"); n != 0 {
		t.Errorf("%d rows were filled by a batch without wal_compression pglz", n)
	}
	if strings.Contains(log.String(), "wal_compression") {
		t.Errorf("a superuser was told the setting was refused:\n%s", log.String())
	}

	role := "pk_walc_" + strings.ReplaceAll(strings.TrimPrefix(filepath.Base(t.TempDir()), "Test"), "-", "_")
	if _, err := conn.Exec(ctx, "UPDATE w SET seen = NULL; CREATE ROLE "+role+" LOGIN; GRANT SELECT, UPDATE ON w TO "+role); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = conn.Exec(context.Background(), "DROP OWNED BY "+role+"; DROP ROLE "+role) })
	log.Reset()
	asRole := strings.Replace(dsn, "postgres@", role+"@", 1)
	if _, err := migrations.Backfill(ctx, backfillPool(t, asRole), step, nil, migrations.BackfillOptions{WALCompression: "pglz", Progress: &log}); err != nil {
		t.Fatal(err)
	}
	if n := backfillCount(t, conn, "SELECT count(*) FROM w WHERE seen IS DISTINCT FROM '"+server+"'"); n != 0 {
		t.Errorf("%d rows filled with another setting than the server's %q", n, server)
	}
	if !strings.Contains(log.String(), "wal_compression pglz: not set") || !strings.Contains(log.String(), "permission denied") {
		t.Errorf("the refusal was not said:\n%s", log.String())
	}
}
