package pgtest_test

import (
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/phasekit/phasekit/verify/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func count(t *testing.T, conn *pgx.Conn, sql string) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(t.Context(), sql).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// Each parallel test gets its own copy: a write in one is not seen by the
// other, even when the other looks after the write has happened.
func TestNewDBIsolatesParallelTests(t *testing.T) {
	written := make(chan struct{})
	t.Run("group", func(t *testing.T) {
		t.Run("writer", func(t *testing.T) {
			t.Parallel()
			defer close(written)
			conn := pgtest.Conn(t, pgtest.NewDB(t, "chinook"))
			if n := count(t, conn, "select count(*) from customer"); n != 59 {
				t.Fatalf("fresh chinook copy has %d customers, want 59", n)
			}
			if _, err := conn.Exec(t.Context(), "delete from invoice_line; delete from invoice; delete from customer"); err != nil {
				t.Fatal(err)
			}
			if n := count(t, conn, "select count(*) from customer"); n != 0 {
				t.Fatalf("after delete: %d customers, want 0", n)
			}
		})
		t.Run("reader", func(t *testing.T) {
			t.Parallel()
			conn := pgtest.Conn(t, pgtest.NewDB(t, "chinook"))
			<-written
			if n := count(t, conn, "select count(*) from customer"); n != 59 {
				t.Errorf("reader sees %d customers after the writer deleted its own, want 59", n)
			}
		})
		for _, name := range []string{"a", "b", "c", "d"} {
			t.Run("copy "+name, func(t *testing.T) {
				t.Parallel()
				conn := pgtest.Conn(t, pgtest.NewDB(t, "chinook"))
				if _, err := conn.Exec(t.Context(), "insert into genre (name) values ($1)", name); err != nil {
					t.Fatal(err)
				}
				if n := count(t, conn, "select count(*) from genre"); n != 26 {
					t.Errorf("genre count = %d, want 25 from chinook plus this test's row", n)
				}
			})
		}
	})
}

func TestNewDBDatasets(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		dataset string
		query   string
		want    int
	}{
		{"empty", "", "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'public'", 0},
		{"chinook rows", "chinook", "select count(*) from track", 3503},
		{"chinook-schema tables", "chinook-schema", "select count(*) from information_schema.tables where table_schema = 'public'", 11},
		{"chinook-schema no rows", "chinook-schema", "select count(*) from customer", 0},
		{"pagila views", "pagila", "select count(*) from information_schema.views where table_schema = 'public'", 7},
		{"pagila triggers", "pagila", "select count(*) from pg_trigger where not tgisinternal", 15},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			conn := pgtest.Conn(t, pgtest.NewDB(t, tt.dataset))
			if n := count(t, conn, tt.query); n != tt.want {
				t.Errorf("%s = %d, want %d", tt.query, n, tt.want)
			}
		})
	}
}

func TestNewDBDropsDatabaseOnCleanup(t *testing.T) {
	t.Parallel()
	var name string
	t.Run("user", func(t *testing.T) {
		dsn := pgtest.NewDB(t, "chinook-schema")
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			t.Fatal(err)
		}
		name = cfg.Database
		// Left open on purpose: a forgotten connection must not keep the database alive.
		leftOpen, err := pgx.Connect(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		_ = leftOpen
	})
	if name == "" {
		t.Fatal("subtest did not create a database")
	}
	conn := pgtest.Conn(t, pgtest.Cluster(t).DSN("postgres"))
	if n := count(t, conn, "select count(*) from pg_database where datname = '"+name+"'"); n != 0 {
		t.Errorf("database %s still exists after its test ended", name)
	}
}

func TestNewDBSkipsWithoutDataset(t *testing.T) {
	t.Setenv(pgtest.DatasetsEnv, t.TempDir())
	var inner *testing.T
	t.Run("chinook", func(t *testing.T) {
		inner = t
		pgtest.NewDB(t, "chinook")
		t.Error("NewDB returned although the dataset is missing")
	})
	if !inner.Skipped() {
		t.Error("test was not skipped")
	}
}

func TestDatasetFile(t *testing.T) {
	p := pgtest.DatasetFile(t, "chinook/chinook-schema.sql")
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
}
