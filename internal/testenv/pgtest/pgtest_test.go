package pgtest

import (
	"context"
	"database/sql"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestDatabases(t *testing.T) {
	seen := map[string]bool{}
	Databases(t, func(t *testing.T, b Backend) {
		seen[b.Name] = true
		db := b.Open(t)
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()

		var n int
		err := db.QueryRow(ctx, `SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'parent'`).Scan(&n)
		if b.Driver == SQLiteDriver {
			// SQLite has no information_schema.
			err = db.QueryRow(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE name = 'parent'`).Scan(&n)
		}
		if err != nil {
			t.Fatalf("failed to inspect schema: %v", err)
		}
		if n != 0 {
			t.Fatal("fresh database already has table parent")
		}

		for _, stmt := range []string{
			`CREATE TABLE parent (id INTEGER PRIMARY KEY)`,
			`CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL REFERENCES parent(id))`,
			`INSERT INTO parent (id) VALUES (1)`,
			`INSERT INTO child (id, parent_id) VALUES (1, 1)`,
		} {
			if _, err := db.Exec(ctx, stmt); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		}
		if _, err := db.Exec(ctx, `INSERT INTO child (id, parent_id) VALUES (2, 42)`); err == nil {
			t.Fatal("foreign key was not enforced")
		}
		if b.Driver == SQLiteDriver {
			var mode string
			if err := db.QueryRow(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
				t.Fatal(err)
			}
			if mode != "wal" {
				t.Errorf("journal_mode = %q, want wal", mode)
			}
		}
		err = db.DoTxn(ctx, nil, func(ctx context.Context) error {
			_, err := db.Exec(ctx, `INSERT INTO parent (id) VALUES (2)`)
			return err
		})
		if err != nil {
			t.Fatalf("transaction failed: %v", err)
		}
	})
	if !seen["sqlite"] {
		t.Error("sqlite backend did not run")
	}
}

// TestPostgresDropped checks that each test gets its own database and that it
// is gone once the test has ended.
func TestPostgresDropped(t *testing.T) {
	admin := RequirePostgres(t)
	var names []string
	for range 2 {
		t.Run("db", func(t *testing.T) {
			dsn := PostgresDSN(t)
			u, err := url.Parse(dsn)
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, strings.TrimPrefix(u.Path, "/"))
			// A connection left open must not stop the drop.
			db := Open(t, PostgresDriver, dsn)
			db.RawDB.SetMaxIdleConns(1)
			if _, err := db.Exec(t.Context(), `SELECT 1`); err != nil {
				t.Fatal(err)
			}
		})
	}
	if len(names) != 2 || names[0] == names[1] {
		t.Fatalf("database names = %v, want two distinct", names)
	}
	db, err := sql.Open(PostgresDriver, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, name := range names {
		var n int
		if err := db.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM pg_database WHERE datname = $1`, name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("database %s still exists after its test ended", name)
		}
	}
}

func TestDatabaseName(t *testing.T) {
	long := strings.Repeat("TestSomethingVeryLong/with spaces & Ümlauts", 5)
	for _, name := range []string{"TestX", "TestX/sub_test#01", long} {
		got := databaseName(name)
		if len(got) > 63 {
			t.Errorf("databaseName(%q) = %q, longer than 63 bytes", name, got)
		}
		if unsafeChars.MatchString(got) {
			t.Errorf("databaseName(%q) = %q has unsafe characters", name, got)
		}
		if !strings.HasPrefix(got, "msnbt_") {
			t.Errorf("databaseName(%q) = %q lacks prefix", name, got)
		}
	}
	if databaseName("TestX") == databaseName("TestX") {
		t.Error("databaseName is not unique")
	}
}

func TestWithDatabase(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"postgres://u@127.0.0.1:5432/postgres?sslmode=disable", "postgres://u@127.0.0.1:5432/x?sslmode=disable"},
		{"postgresql://u:p@127.0.0.1/postgres", "postgresql://u:p@127.0.0.1/x"},
		{"postgres://u@127.0.0.1:5432", "postgres://u@127.0.0.1:5432/x"},
		{"host=127.0.0.1 dbname=postgres sslmode=disable", "host=127.0.0.1 dbname=postgres sslmode=disable dbname=x"},
	}
	for _, tt := range tests {
		got, err := withDatabase(tt.in, "x")
		if err != nil || got != tt.want {
			t.Errorf("withDatabase(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestSQLiteDSN(t *testing.T) {
	dsn := SQLiteDSN(t)
	for _, want := range []string{"file:", "/test.db?", "_pragma=foreign_keys(1)", "_pragma=journal_mode(WAL)", "_pragma=synchronous(NORMAL)", "_pragma=busy_timeout(5000)", "_txlock=immediate"} {
		if !strings.Contains(dsn, want) {
			t.Errorf("SQLiteDSN() = %q lacks %q", dsn, want)
		}
	}
}
