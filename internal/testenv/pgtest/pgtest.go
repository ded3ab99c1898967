// Package pgtest gives tests fresh, throwaway databases on the two backends
// the bridge supports: SQLite (modernc.org/sqlite, always available) and
// PostgreSQL (github.com/lib/pq, when a server is configured).
//
// PostgreSQL comes from the DSN in $MSN_BRIDGE_TEST_POSTGRES, which must let
// its user create and drop databases, for example
// postgres://msnbridge@127.0.0.1:5433/postgres?sslmode=disable. Each call to
// PostgresDSN creates a uniquely named database and drops it when the test
// ends. When the variable is unset, PostgreSQL tests fail if $CI is set and are
// skipped otherwise. .ci/run starts such a server (scripts/postgres-up.sh).
//
// Storage tests run over both backends with Databases:
//
//	pgtest.Databases(t, func(t *testing.T, b pgtest.Backend) {
//		db := b.Open(t)
//		...
//	})
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	// The database/sql drivers dbutil opens: "postgres" and the bridge's SQLite driver.
	_ "github.com/lib/pq"
	"go.mau.fi/util/dbutil"

	"github.com/msn-bridge/msn-bridge/internal/sqlitedb"
)

// EnvPostgres names the environment variable holding the administrative
// PostgreSQL DSN.
const EnvPostgres = "MSN_BRIDGE_TEST_POSTGRES"

// Driver names, which are also the dbutil database types (config `type`).
const (
	// PostgresDriver is github.com/lib/pq's driver name, the one mautrix uses.
	PostgresDriver = "postgres"
	// SQLiteDriver is the SQLite driver the bridge opens for database type sqlite:
	// modernc.org/sqlite keeping each connection's prepared statements.
	SQLiteDriver = sqlitedb.Driver
)

// sqliteParams are the connection parameters the bridge uses for SQLite.
const sqliteParams = "_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=busy_timeout(5000)&_txlock=immediate"

// adminTimeout bounds creating or dropping one database.
const adminTimeout = 30 * time.Second

// Backend is one database engine for table-driven storage tests.
type Backend struct {
	// Name is the subtest name: "sqlite" or "postgres".
	Name string
	// Driver is the database/sql driver name and dbutil type.
	Driver string

	dsn func(t testing.TB) string
}

// DSN returns the connection string of a fresh, empty database of this
// backend for t, removed when t ends. For PostgreSQL it skips or fails t as
// PostgresDSN does.
func (b Backend) DSN(t testing.TB) string {
	t.Helper()
	return b.dsn(t)
}

// Open opens a fresh, empty database of this backend with dbutil (no upgrade
// table run) and closes it when t ends. It fails t if the database cannot be
// opened or reached.
func (b Backend) Open(t testing.TB) *dbutil.Database {
	t.Helper()
	return Open(t, b.Driver, b.DSN(t))
}

// Backends returns SQLite and PostgreSQL, in that order.
func Backends() []Backend {
	return []Backend{
		{Name: "sqlite", Driver: SQLiteDriver, dsn: SQLiteDSN},
		{Name: "postgres", Driver: PostgresDriver, dsn: PostgresDSN},
	}
}

// Databases runs fn as one subtest of t per backend (see Backends). A missing
// PostgreSQL skips (or, in CI, fails) only the postgres subtest.
func Databases(t *testing.T, fn func(t *testing.T, b Backend)) {
	t.Helper()
	for _, b := range Backends() {
		t.Run(b.Name, func(t *testing.T) { fn(t, b) })
	}
}

// Open opens the database at dsn with dbutil using driver (PostgresDriver or
// SQLiteDriver), checks that it answers, and closes it when t ends.
func Open(t testing.TB, driver, dsn string) *dbutil.Database {
	t.Helper()
	db, err := dbutil.NewWithDialect(dsn, driver)
	if err != nil {
		t.Fatalf("failed to open %s database: %v", driver, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	if err := db.RawDB.PingContext(ctx); err != nil {
		t.Fatalf("failed to reach %s database: %v", driver, err)
	}
	return db
}

// SQLiteDSN returns a modernc.org/sqlite DSN for a new database file in a
// temporary directory of t, with the pragmas the bridge uses (foreign keys,
// WAL, commits not flushed each (synchronous NORMAL), 5 s busy timeout, immediate
// transactions). Open it with SQLiteDriver.
func SQLiteDSN(t testing.TB) string {
	t.Helper()
	return "file:" + filepath.Join(t.TempDir(), "test.db") + "?" + sqliteParams
}

// PostgresDSN creates a uniquely named, empty database on the server named by
// $MSN_BRIDGE_TEST_POSTGRES, drops it (forcibly, closing leftover
// connections) when t ends, and returns its DSN for PostgresDriver. Without
// the variable it fails t when $CI is set and skips t otherwise; a set but
// unusable DSN always fails t.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	admin := RequirePostgres(t)
	name := databaseName(t.Name())
	dsn, err := withDatabase(admin, name)
	if err != nil {
		t.Fatalf("failed to derive test database DSN from %s: %v", EnvPostgres, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	if err := adminExec(ctx, admin, "CREATE DATABASE "+quoteIdent(name)); err != nil {
		t.Fatalf("failed to create test database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
		defer cancel()
		err := adminExec(ctx, admin, "DROP DATABASE IF EXISTS "+quoteIdent(name)+" WITH (FORCE)")
		if err != nil {
			t.Errorf("failed to drop test database %s: %v", name, err)
		}
	})
	return dsn
}

// RequirePostgres returns the administrative DSN from $MSN_BRIDGE_TEST_POSTGRES.
// When it is unset it fails t if $CI is set and skips t otherwise.
func RequirePostgres(t testing.TB) string {
	t.Helper()
	admin := os.Getenv(EnvPostgres)
	if admin != "" {
		return admin
	}
	msg := fmt.Sprintf("PostgreSQL tests need %s set to a DSN whose user may create databases "+
		"(e.g. postgres://msnbridge@127.0.0.1:5432/postgres?sslmode=disable); scripts/postgres-up.sh starts a throwaway server", EnvPostgres)
	if inCI() {
		t.Fatal(msg + " (CI is set, so this is a failure)")
	}
	t.Skip(msg)
	return ""
}

// adminExec runs one statement on the administrative connection.
func adminExec(ctx context.Context, adminDSN, stmt string) error {
	db, err := sql.Open(PostgresDriver, adminDSN)
	if err != nil {
		return fmt.Errorf("failed to open admin connection: %w", err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		return err
	}
	return nil
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9_]+`)

// databaseName returns a unique, valid (at most 63 bytes, lower-case)
// PostgreSQL database name derived from a test name.
func databaseName(testName string) string {
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	base := unsafeChars.ReplaceAllString(strings.ToLower(testName), "_")
	base = strings.Trim(base, "_")
	const prefix = "msnbt_"
	maxBase := 63 - len(prefix) - 1 - 2*len(suffix)
	if len(base) > maxBase {
		base = base[:maxBase]
	}
	return prefix + base + "_" + hex.EncodeToString(suffix[:])
}

// withDatabase returns dsn with its database replaced by name. It accepts URL
// DSNs (postgres:// or postgresql://) and key=value DSNs.
func withDatabase(dsn, name string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("failed to parse URL: %w", err)
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	// lib/pq lets a later key override an earlier one.
	return strings.TrimSpace(dsn) + " dbname=" + name, nil
}

// quoteIdent quotes a PostgreSQL identifier.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// inCI reports whether $CI is set to something other than "0" or "false".
func inCI() bool {
	switch os.Getenv("CI") {
	case "", "0", "false", "FALSE", "False":
		return false
	}
	return true
}
