package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/id"
)

const params = "?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=busy_timeout(5000)&_txlock=immediate"

// testDriver registers a caching driver keeping size statements under a name of its own.
var testDrivers sync.Map

func testDriver(t testing.TB, size int) string {
	name := fmt.Sprintf("%s-test-%d", Driver, size)
	if _, loaded := testDrivers.LoadOrStore(name, true); !loaded {
		db, err := sql.Open(base, "")
		if err != nil {
			t.Fatal(err)
		}
		sql.Register(name, &cachingDriver{base: db.Driver(), size: size})
		_ = db.Close()
	}
	return name
}

func open(t testing.TB, driverName string, conns int) *sql.DB {
	t.Helper()
	db, err := sql.Open(driverName, "file:"+filepath.Join(t.TempDir(), "t.db")+params)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	if _, err = db.Exec(`CREATE TABLE message (id TEXT PRIMARY KEY, room TEXT NOT NULL, body TEXT)`); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err = db.Exec(`INSERT INTO message (id, room, body) VALUES ($1, $2, $3)`, fmt.Sprint("m", i), "r", fmt.Sprint("body ", i)); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

// kept returns the queries the (only) connection of db keeps prepared, and how many it prepared.
func kept(t *testing.T, db *sql.DB) (queries []string, prepares int) {
	t.Helper()
	c, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Raw(func(dc any) error {
		cc := dc.(*conn)
		for el := cc.lru.Front(); el != nil; el = el.Next() {
			queries = append(queries, el.Value.(*cached).query)
		}
		prepares = cc.prepares
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return queries, prepares
}

func body(t *testing.T, q interface {
	QueryRow(string, ...any) *sql.Row
}, id string) string {
	t.Helper()
	var b string
	if err := q.QueryRow(`SELECT body FROM message WHERE id=$1`, id).Scan(&b); err != nil {
		t.Fatalf("reading %s: %v", id, err)
	}
	return b
}

func TestRepeatedQueriesArePreparedOnce(t *testing.T) {
	db := open(t, Driver, 1)
	_, before := kept(t, db)
	for i := range 100 {
		if got, want := body(t, db, fmt.Sprint("m", i%10)), fmt.Sprint("body ", i%10); got != want {
			t.Fatalf("query %d: got %q, want %q", i, got, want)
		}
		if _, err := db.Exec(`UPDATE message SET room=$1 WHERE id=$2`, fmt.Sprint("room", i), "m1"); err != nil {
			t.Fatal(err)
		}
	}
	_, after := kept(t, db)
	if after-before != 2 {
		t.Fatalf("200 runs of 2 queries prepared %d statements, want 2", after-before)
	}
	var room string
	if err := db.QueryRow(`SELECT room FROM message WHERE id='m1'`).Scan(&room); err != nil || room != "room99" {
		t.Fatalf("the kept UPDATE's last run: room %q, %v; want room99", room, err)
	}
}

// A transaction reads rows of a query while it runs the same query again: the second run must
// not reset the statement the first is reading from.
func TestBusyStatementRunsUnprepared(t *testing.T) {
	db := open(t, Driver, 1)
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	const q = `SELECT id FROM message WHERE room=$1 ORDER BY id`
	outer, err := tx.Query(q, "r")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for outer.Next() {
		var id string
		if err = outer.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		// The same query, while outer is open on its kept statement.
		inner, err := tx.Query(q, "r")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for inner.Next() {
			n++
		}
		if err = inner.Close(); err != nil || n != 10 {
			t.Fatalf("inner query: %d rows, %v; want 10", n, err)
		}
	}
	if err = outer.Err(); err != nil {
		t.Fatal(err)
	}
	outer.Close()
	if len(ids) != 10 || ids[0] != "m0" || ids[9] != "m9" {
		t.Fatalf("outer query read %v, want m0…m9", ids)
	}
	if err = tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func TestCacheIsBounded(t *testing.T) {
	db := open(t, testDriver(t, 3), 1)
	// Keep the first query busy (its rows open on a connection of their own is impossible
	// with one connection, so in a transaction) while more distinct queries than the cache
	// holds run.
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	const busy = `SELECT id FROM message ORDER BY id`
	cursor, err := tx.Query(busy)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		var n int
		if err = tx.QueryRow(fmt.Sprintf(`SELECT count(*) + %d FROM message`, i)).Scan(&n); err != nil || n != 10+i {
			t.Fatalf("query %d: %d, %v", i, n, err)
		}
	}
	n := 0
	for cursor.Next() {
		n++
	}
	if n != 10 {
		t.Fatalf("the busy query read %d rows after the evictions, want 10", n)
	}
	cursor.Close()
	if err = tx.Commit(); err != nil {
		t.Fatal(err)
	}
	queries, _ := kept(t, db)
	if len(queries) > 3 {
		t.Fatalf("the connection keeps %d statements, more than its 3: %q", len(queries), queries)
	}
	if want := `SELECT count(*) + 7 FROM message`; len(queries) == 0 || queries[0] != want {
		t.Fatalf("most recently used %q, want %q", queries, want)
	}
}

func TestErrorsLeaveTheConnectionUsable(t *testing.T) {
	db := open(t, Driver, 1)
	if _, err := db.Exec(`SELEKT nothing`); err == nil {
		t.Fatal("a syntax error was accepted")
	}
	const insert = `INSERT INTO message (id, room, body) VALUES ($1, 'r', 'x')`
	if _, err := db.Exec(insert, "new"); err != nil {
		t.Fatal(err)
	}
	// The kept INSERT fails on the primary key, then runs again.
	if _, err := db.Exec(insert, "new"); err == nil {
		t.Fatal("a duplicate primary key was accepted")
	}
	if _, err := db.Exec(insert, "newer"); err != nil {
		t.Fatalf("the statement after its constraint error: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := db.QueryContext(ctx, `SELECT body FROM message WHERE id=$1`, "m1"); !errors.Is(err, context.Canceled) {
		t.Fatalf("a canceled query: %v, want context.Canceled", err)
	}
	if got := body(t, db, "m1"); got != "body 1" {
		t.Fatalf("after the canceled query: %q", got)
	}
	if got := body(t, db, "newer"); got != "x" {
		t.Fatalf("the row inserted after the error: %q", got)
	}
}

// A kept statement sees the schema as it is when it runs: an upgrade that changes a table
// between two runs (SQLite prepares the statement again itself).
func TestKeptStatementAfterSchemaChange(t *testing.T) {
	db := open(t, Driver, 1)
	const q = `SELECT * FROM message WHERE id=$1`
	columns := func() []string {
		r, err := db.Query(q, "m1")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		cols, err := r.Columns()
		if err != nil {
			t.Fatal(err)
		}
		return cols
	}
	if got := columns(); len(got) != 3 {
		t.Fatalf("columns before the upgrade: %q", got)
	}
	if _, err := db.Exec(`ALTER TABLE message ADD COLUMN edited INTEGER NOT NULL DEFAULT 0`); err != nil {
		t.Fatal(err)
	}
	if got := columns(); len(got) != 4 || got[3] != "edited" {
		t.Fatalf("columns after the upgrade: %q", got)
	}
}

func TestColumnTypes(t *testing.T) {
	db := open(t, Driver, 1)
	for range 2 { // prepared, then kept
		r, err := db.Query(`SELECT id, body FROM message LIMIT 1`)
		if err != nil {
			t.Fatal(err)
		}
		types, err := r.ColumnTypes()
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got := types[0].DatabaseTypeName(); got != "TEXT" {
			t.Fatalf("column type %q, want TEXT", got)
		}
	}
}

// Goroutines sharing a pool of connections (run with -race): each connection's statements are
// its own.
func TestConcurrentUse(t *testing.T) {
	db := open(t, Driver, 3)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				id := fmt.Sprintf("g%d-%d", g, i)
				if _, err := db.Exec(`INSERT INTO message (id, room, body) VALUES ($1, $2, $3)`, id, "c", id); err != nil {
					errs <- err
					return
				}
				var b string
				if err := db.QueryRow(`SELECT body FROM message WHERE id=$1`, id).Scan(&b); err != nil || b != id {
					errs <- fmt.Errorf("%s read back %q, %v", id, b, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM message WHERE room='c'`).Scan(&n); err != nil || n != 1600 {
		t.Fatalf("%d rows, %v; want 1600", n, err)
	}
}

// BenchmarkQuery compares a lookup by primary key, of the shape bridgev2 runs before every
// message it bridges to Matrix, with the statement kept and prepared each time:
//
//	go test -run '^$' -bench Query ./internal/sqlitedb/
//
// A write read with QueryRow (INSERT … RETURNING) pays for the automatic checkpoint it owes:
// with wal_autocheckpoint(1) the database file holds the row as soon as Scan returns, rather
// than after the next statement on the connection finishes.
func TestReturningWritePaysItsCheckpoint(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.db")
	db, err := sql.Open(Driver, "file:"+path+params+"&_pragma=wal_autocheckpoint(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err = db.Exec(`CREATE TABLE blob (id INTEGER PRIMARY KEY, b BLOB)`); err != nil {
		t.Fatal(err)
	}
	size := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	const blob = 256 << 10
	for round := range 3 {
		before := size()
		var id int64
		if err = db.QueryRow(`INSERT INTO blob (b) VALUES ($1) RETURNING id`, make([]byte, blob)).Scan(&id); err != nil {
			t.Fatal(err)
		}
		if after := size(); after < before+blob {
			t.Fatalf("round %d: database file %d bytes after the insert, %d before: the insert's checkpoint did not run", round, after, before)
		}
	}
}

// The rows of a write read to the end by the caller are not stepped again when they close
// (SQLite would run the finished statement a second time), and a multi-row RETURNING read with
// QueryRow inserts each row once.
func TestReturningWriteRunsOnce(t *testing.T) {
	db := open(t, Driver, 1)
	count := func() (n int) {
		if err := db.QueryRow(`SELECT count(*) FROM message`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	start := count()
	var id string
	if err := db.QueryRow(`INSERT INTO message (id, room) VALUES ('a1', 'r'), ('a2', 'r'), ('a3', 'r') RETURNING id`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	rs, err := db.Query(`INSERT INTO message (id, room) VALUES ('b1', 'r'), ('b2', 'r') RETURNING id`)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for rs.Next() {
		if err = rs.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err = rs.Err(); err != nil {
		t.Fatal(err)
	}
	if err = rs.Close(); err != nil {
		t.Fatal(err)
	}
	if got := count(); got != start+5 || strings.Join(ids, ",") != "b1,b2" {
		t.Fatalf("%d rows added, returned %v; want 5 and [b1 b2]", got-start, ids)
	}
	// Unprepared, as when the kept statement is busy: its rows open in the same transaction.
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	const insert = `INSERT INTO message (id, room) VALUES ($1, 'r') RETURNING id`
	if rs, err = tx.Query(insert, "c1"); err != nil {
		t.Fatal(err)
	}
	for rs.Next() {
	}
	if err = tx.QueryRow(insert, "c2").Scan(&id); err != nil || id != "c2" {
		t.Fatalf("unprepared insert: %q, %v", id, err)
	}
	if err = rs.Close(); err != nil {
		t.Fatal(err)
	}
	if err = tx.Commit(); err != nil {
		t.Fatal(err)
	}
	start += 2
	// A write that fails (a duplicate key) reports it, and nothing more is written.
	if err = db.QueryRow(`INSERT INTO message (id, room) VALUES ('a1', 'r') RETURNING id`).Scan(&id); err == nil {
		t.Fatal("a duplicate insert reported no error")
	}
	if got := count(); got != start+5 {
		t.Fatalf("%d rows after the failed insert, want %d", got-start, 5)
	}
}

func TestWritesRows(t *testing.T) {
	for query, want := range map[string]bool{
		"INSERT INTO message (rowid) VALUES (1) RETURNING rowid": true,
		"UPDATE t SET a = 1\n\t\tRETURNING bridge_id, user_mxid": true,
		"delete from t returning *":                              true,
		"INSERT INTO t VALUES (1) RETURNING(a)":                  true,
		"SELECT returning_at, is_returning FROM t":               false,
		"SELECT * FROM message WHERE room = $1":                  false,
		"":                                                       false,
		"r":                                                      false,
	} {
		if got := writesRows(query); got != want {
			t.Errorf("writesRows(%q) = %v, want %v", query, got, want)
		}
	}
}

func BenchmarkQuery(b *testing.B) {
	const q = `SELECT id, room, body FROM message WHERE (room=$1 OR room='') AND id=$2`
	for _, driverName := range []string{Driver, base} {
		b.Run(driverName, func(b *testing.B) {
			db := open(b, driverName, 1)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				var id, room, bd string
				if err := db.QueryRow(q, "r", fmt.Sprint("m", i%10)).Scan(&id, &room, &bd); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBridgedMessage runs what bridgev2 asks of the database for every message it bridges
// to Matrix, on its own schema: the duplicate check (all parts of the message ID), then the
// insert of the new message, against a table of 10,000 messages, with the statements kept
// and prepared each time:
//
//	go test -run '^$' -bench BridgedMessage ./internal/sqlitedb/
func BenchmarkBridgedMessage(b *testing.B) {
	ctx := context.Background()
	for _, driverName := range []string{Driver, base} {
		b.Run(driverName, func(b *testing.B) {
			db, err := dbutil.NewWithDialect("file:"+filepath.Join(b.TempDir(), "b.db")+params, driverName)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			bdb := database.New("msn", database.MetaTypes{}, db)
			if err = bdb.Upgrade(ctx); err != nil {
				b.Fatal(err)
			}
			key := networkid.PortalKey{ID: "bob@example.com", Receiver: "alice@example.com"}
			if err = bdb.Portal.Insert(ctx, &database.Portal{BridgeID: "msn", PortalKey: key, MXID: "!room:test"}); err != nil {
				b.Fatal(err)
			}
			if err = bdb.Ghost.Insert(ctx, &database.Ghost{BridgeID: "msn", ID: "bob@example.com"}); err != nil {
				b.Fatal(err)
			}
			n := 0
			insert := func() {
				n++
				err := bdb.Message.Insert(ctx, &database.Message{
					ID: networkid.MessageID(fmt.Sprint("msg", n)), Room: key, SenderID: "bob@example.com",
					MXID: id.EventID(fmt.Sprintf("$ev%d", n)), Timestamp: time.UnixMilli(int64(n)),
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			for range 10000 {
				insert()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				parts, err := bdb.Message.GetAllPartsByID(ctx, key.Receiver, networkid.MessageID(fmt.Sprint("msg", n+1)))
				if err != nil || len(parts) != 0 {
					b.Fatalf("duplicate check: %d parts, %v", len(parts), err)
				}
				insert()
			}
		})
	}
}

// goroutinesCreated is how many goroutines the process has started.
func goroutinesCreated() uint64 {
	s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// A statement whose context can be cancelled but has no deadline runs without a goroutine of
// its own; one cancelled before it starts does not run.
func TestCancellableStatementsStartNoGoroutine(t *testing.T) {
	db := open(t, testDriver(t, 16), 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	update := func(ctx context.Context) error {
		_, err := c.ExecContext(ctx, `UPDATE message SET body = $1 WHERE id = $2`, "x", "m1")
		return err
	}
	if err := update(ctx); err != nil { // prepared and kept
		t.Fatal(err)
	}
	const n = 200
	before := goroutinesCreated()
	for range n {
		if err := update(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// The checkpointer and the test runner may start one now and then; the driver used to start
	// one per statement.
	if started := goroutinesCreated() - before; started > n/10 {
		t.Errorf("%d statements with a cancellable context started %d goroutines", n, started)
	}

	done, stop := context.WithCancel(context.Background())
	stop()
	if _, err := c.ExecContext(done, `UPDATE message SET body = $1 WHERE id = $2`, "not run", "m2"); !errors.Is(err, context.Canceled) {
		t.Errorf("a statement with an ended context: err %v, want context.Canceled", err)
	}
	if b := body(t, db, "m2"); b != "body 2" {
		t.Errorf("the statement with an ended context ran: body %q", b)
	}
}

// A statement whose context has a deadline is still interrupted when the deadline passes.
func TestDeadlineInterruptsStatement(t *testing.T) {
	db := open(t, testDriver(t, 16), 1)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	var n int64
	// Counts for ever, unless interrupted.
	err := db.QueryRowContext(ctx, `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c`).Scan(&n)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("an endless statement with a deadline: err %v, count %d; want context.DeadlineExceeded", err, n)
	}
	if got := body(t, db, "m3"); got != "body 3" {
		t.Errorf("after the interruption: body %q", got)
	}
}
