package sqlitedb

import (
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/msn-bridge/msn-bridge/internal/testenv/goroutines"
)

const pkg = "github.com/msn-bridge/msn-bridge/internal/sqlitedb"

// fastCheckpoints makes the checkpointers of databases opened during the test run every 10 ms.
func fastCheckpoints(t *testing.T) {
	prev := checkpointEvery
	checkpointEvery = 10 * time.Millisecond
	t.Cleanup(func() { checkpointEvery = prev })
}

func autocheckpoint(t *testing.T, db *sql.DB) (pages int) {
	t.Helper()
	if err := db.QueryRow(`PRAGMA wal_autocheckpoint`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	return pages
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// A file database in WAL mode gets a checkpointer: the pool's connections checkpoint only
// past FallbackCheckpointPages, and what they write reaches the database file without any
// statement of theirs checkpointing it. DB.Close stops the checkpointer.
func TestCheckpointerCopiesTheWAL(t *testing.T) {
	fastCheckpoints(t)
	before := goroutines.Started(pkg)
	path := filepath.Join(t.TempDir(), "t.db")
	db, err := sql.Open(Driver, "file:"+path+params)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(2)
	if _, err = db.Exec(`CREATE TABLE blob (id INTEGER PRIMARY KEY, b BLOB)`); err != nil {
		t.Fatal(err)
	}
	if got := autocheckpoint(t, db); got != FallbackCheckpointPages {
		t.Fatalf("the pool's wal_autocheckpoint is %d, want %d", got, FallbackCheckpointPages)
	}
	if got := goroutines.Started(pkg) - before; got != 1 {
		t.Fatalf("%d checkpointers running, want 1", got)
	}
	// 256 KiB is 64 pages, far below the pool's own threshold.
	const blob = 256 << 10
	start := fileSize(t, path)
	if _, err = db.Exec(`INSERT INTO blob (b) VALUES ($1)`, make([]byte, blob)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for fileSize(t, path) < start+blob {
		if time.Now().After(deadline) {
			t.Fatalf("the database file is %d bytes 10 s after a %d-byte insert (%d before): no checkpoint ran", fileSize(t, path), blob, start)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err = db.Close(); err != nil {
		t.Fatal(err)
	}
	// Close returns once the checkpointer closed done, which it does as it returns: its goroutine
	// may still be on its way out for a moment.
	if got := goroutines.Await(pkg, before, 10*time.Second); got != before {
		t.Fatalf("%d checkpointers running after Close, want %d:\n%s", got, before, goroutines.Dump())
	}
}

// Databases that keep SQLite's own checkpoints: a DSN that sets wal_autocheckpoint, an
// in-memory database, a read-only one.
func TestNoCheckpointer(t *testing.T) {
	fastCheckpoints(t)
	dir := t.TempDir()
	existing := filepath.Join(dir, "ro.db")
	if db, err := sql.Open(Driver, "file:"+existing+params); err != nil {
		t.Fatal(err)
	} else if _, err = db.Exec(`CREATE TABLE t (a)`); err != nil {
		t.Fatal(err)
	} else {
		_ = db.Close()
	}
	for name, c := range map[string]struct {
		dsn   string
		pages int
	}{
		"dsn sets it": {"file:" + filepath.Join(dir, "own.db") + params + "&_pragma=wal_autocheckpoint(50)", 50},
		"in memory":   {":memory:", 1000},
		"read-only":   {"file:" + existing + "?mode=ro", 1000},
		"query only":  {"file:" + existing + params + "&_query_only=true", 1000},
	} {
		t.Run(name, func(t *testing.T) {
			// Every database opened before is closed, but the checkpointer of the one above
			// may still be on its way out (see TestCheckpointerCopiesTheWAL).
			before := goroutines.Await(pkg, 0, 10*time.Second)
			db, err := sql.Open(Driver, c.dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if got := autocheckpoint(t, db); got != c.pages {
				t.Errorf("wal_autocheckpoint %d, want %d", got, c.pages)
			}
			if got := goroutines.Started(pkg) - before; got != 0 {
				t.Errorf("%d checkpointers started, want none", got)
			}
		})
	}
}
