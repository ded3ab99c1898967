package sqlitedb

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// openNoBusyWait opens a database on which SQLite itself never waits for a lock
// (busy_timeout 0): a write that finds another connection writing fails at once, unless it
// waited for its turn in the process.
func openNoBusyWait(t *testing.T) *sql.DB {
	t.Helper()
	dsn := "file:" + filepath.Join(t.TempDir(), "w.db") + strings.Replace(params, "busy_timeout(5000)", "busy_timeout(0)", 1)
	db, err := sql.Open(Driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	db.SetMaxOpenConns(4)
	if _, err = db.Exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)`); err != nil {
		t.Fatal(err)
	}
	return db
}

// waitingWriters makes writerWaiting report on the returned channel for the test.
func waitingWriters(t *testing.T) <-chan struct{} {
	ch := make(chan struct{}, 16)
	writerWaiting = func() { ch <- struct{}{} }
	t.Cleanup(func() { writerWaiting = nil })
	return ch
}

func TestWritesWaitForTheirTurn(t *testing.T) {
	db := openNoBusyWait(t)
	waiting := waitingWriters(t)
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err = tx.Exec(`INSERT INTO t (v) VALUES ('in the transaction')`); err != nil {
		t.Fatal(err)
	}
	// Reads on other connections do not wait for the writer.
	var n int
	if err = db.QueryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("read during the transaction: %d rows, %v", n, err)
	}
	// A plain write, and one whose rows are read, wait for the transaction to end.
	errs := make(chan error, 2)
	go func() {
		_, err := db.Exec(`INSERT INTO t (v) VALUES ('exec')`)
		errs <- err
	}()
	go func() {
		var id int64
		errs <- db.QueryRow(`INSERT INTO t (v) VALUES ('returning') RETURNING id`).Scan(&id)
	}()
	for range 2 {
		select {
		case <-waiting:
		case err := <-errs:
			t.Fatalf("a write finished while another connection held a transaction: %v", err)
		case <-time.After(time.Minute):
			t.Fatal("the writes did not start to wait")
		}
	}
	if err = tx.Commit(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("a write that waited for its turn: %v", err)
		}
	}
	if err = db.QueryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil || n != 3 {
		t.Fatalf("%d rows after the writes, want 3 (%v)", n, err)
	}
	if got := writerTimeouts.Load(); got != 0 {
		t.Fatalf("%d writes went on without their turn", got)
	}
}

func TestWriterTurnGivenBackOnRollbackAndErrors(t *testing.T) {
	db := openNoBusyWait(t)
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err = tx.Exec(`INSERT INTO t (v) VALUES ('rolled back')`); err != nil {
		t.Fatal(err)
	}
	if err = tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	// A write that fails (no such table) and one whose rows fail to scan give the turn back.
	if _, err = db.Exec(`INSERT INTO missing (v) VALUES ('x')`); err == nil {
		t.Fatal("insert into a missing table succeeded")
	}
	var s struct{}
	if err = db.QueryRow(`INSERT INTO t (v) VALUES ('x') RETURNING id`).Scan(&s); err == nil {
		t.Fatal("scanning an id into a struct succeeded")
	}
	// A transaction whose context ends is rolled back by database/sql.
	cctx, cancel := context.WithCancel(ctx)
	if tx, err = db.BeginTx(cctx, nil); err != nil {
		t.Fatal(err)
	}
	cancel()
	// Each of these would wait writerWait for a turn never given back.
	old := writerWait
	writerWait = time.Minute
	t.Cleanup(func() { writerWait = old })
	before := writerTimeouts.Load()
	done := make(chan error, 1)
	go func() {
		for i := range 5 {
			if _, err := db.Exec(`INSERT INTO t (v) VALUES (?)`, i); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("writes still waiting: a turn was not given back")
	}
	if writerTimeouts.Load() != before {
		t.Fatal("a write went on without its turn")
	}
}

func TestWriterWaitIsBounded(t *testing.T) {
	db := openNoBusyWait(t)
	waiting := waitingWriters(t)
	old := writerWait
	writerWait = 50 * time.Millisecond
	t.Cleanup(func() { writerWait = old })
	tx, err := db.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err = tx.Exec(`INSERT INTO t (v) VALUES ('held')`); err != nil {
		t.Fatal(err)
	}
	before := writerTimeouts.Load()
	// Past writerWait the write goes on to SQLite, which (busy_timeout 0) says the database
	// is locked, as it would have without the queue.
	_, err = db.Exec(`INSERT INTO t (v) VALUES ('blocked')`)
	select {
	case <-waiting:
	default:
		t.Fatal("the write did not wait for its turn")
	}
	if err == nil || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("write past its wait: %v, want SQLite's database is locked", err)
	}
	if writerTimeouts.Load() != before+1 {
		t.Fatal("the timed-out wait was not counted")
	}
}

func TestWrites(t *testing.T) {
	for q, want := range map[string]bool{
		"INSERT INTO t VALUES (1)":                           true,
		"  insert or replace into t values (1)":              true,
		"REPLACE INTO t VALUES (1)":                          true,
		"update t set v = 1":                                 true,
		"\n-- a comment\nDELETE FROM t":                      true,
		"/* c */ CREATE TABLE x (a)":                         true,
		"WITH a AS (SELECT 1) INSERT INTO t SELECT * FROM a": true,
		"WITH a AS (SELECT 1) SELECT * FROM a":               false,
		"SELECT * FROM t":                                    false,
		"(SELECT 1)":                                         false,
		"PRAGMA wal_checkpoint(PASSIVE)":                     false,
		"":                                                   false,
		"-- only a comment":                                  false,
	} {
		if got := writes(q); got != want {
			t.Errorf("writes(%q) = %v, want %v", q, got, want)
		}
	}
}

// BenchmarkConcurrentWrites has four goroutines, on four connections, insert a row each every
// 2 ms, spread over the period (2,000 a second in all, as the portals of a busy bridge store their messages), and
// reports how long an insert took (µs), queued in the process and with SQLite's busy handler
// alone:
//
//	go test -run '^$' -bench ConcurrentWrites -benchtime 20000x ./internal/sqlitedb/
func BenchmarkConcurrentWrites(b *testing.B) {
	const writers, every = 4, 2 * time.Millisecond
	for _, queued := range []bool{true, false} {
		name := "queued"
		if !queued {
			name = "busy-handler"
		}
		b.Run(name, func(b *testing.B) {
			old := queueWrites
			queueWrites = queued
			db := open(b, Driver, writers)
			queueWrites = old
			var (
				mu  sync.Mutex
				all []time.Duration
				seq atomic.Int64
				wg  sync.WaitGroup
			)
			b.ResetTimer()
			for w := range writers {
				wg.Go(func() {
					time.Sleep(time.Duration(w) * every / writers) // spread over the period
					tick := time.NewTicker(every)
					defer tick.Stop()
					var mine []time.Duration
					for range b.N / writers {
						<-tick.C
						n := seq.Add(1)
						start := time.Now()
						var rowid int64
						err := db.QueryRow(`INSERT INTO message (id, room, body) VALUES ($1, $2, $3) RETURNING rowid`,
							fmt.Sprint("w", n), "r", "a message body").Scan(&rowid)
						mine = append(mine, time.Since(start))
						if err != nil {
							b.Error(err)
							return
						}
					}
					mu.Lock()
					all = append(all, mine...)
					mu.Unlock()
				})
			}
			wg.Wait()
			b.StopTimer()
			if len(all) == 0 {
				return
			}
			slices.Sort(all)
			at := func(q float64) float64 {
				return float64(all[min(len(all)-1, int(q*float64(len(all))))].Microseconds())
			}
			b.ReportMetric(at(0.5), "p50-µs")
			b.ReportMetric(at(0.99), "p99-µs")
			b.ReportMetric(at(0.999), "p99.9-µs")
			b.ReportMetric(at(1), "max-µs")
		})
	}
}
