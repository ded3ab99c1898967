package sqlitedb

import (
	"context"
	"database/sql/driver"
	"regexp"
	"strings"
	"sync/atomic"
	"time"
)

// The writes of one sql.DB queue in the process, one at a time, before they reach SQLite.
//
// SQLite lets one connection write at a time. Another connection that wants to write finds the
// lock taken and sleeps in its busy handler, 1, 2, 5, 10 ms and longer (SQLite's schedule),
// before it looks again: it is not woken when the lock frees. In the scale benchmark (1,000
// msg/s, every message one insert into bridgev2's message table) 3% of the inserts slept at
// least 1 ms so, and every event behind them in their portal waited as long. Queued here, the
// next writer starts as soon as the one before it finished, in the order they came.
// BenchmarkConcurrentWrites (four connections, 2,000 inserts a second) measures both on one
// machine: the queue cut an insert's p99 from 10–19 ms to 2.9–3.2 ms and its p99.9 from 34–39 ms
// to 8–10 ms, for a p50 of 140–170 µs instead of 55–100 µs.
//
// A write is a transaction that is not read-only (from its BEGIN to its COMMIT or ROLLBACK) or,
// outside one, a statement that writes (see writes): until it returns, or for a statement whose
// rows are read, until they close. Reads never queue. A writer that waits longer than
// writerWait goes on to SQLite without its turn, where busy_timeout decides as before: a
// goroutine that holds a transaction and writes on another connection is then as stuck as
// SQLite would leave it, not stuck forever.

// queueWrites turns the queue on for the sql.DBs opened after it is set (off: SQLite's busy
// handler alone, for the benchmark that compares the two).
var queueWrites = true

// writerWait is how long a write waits for its turn before it goes on to SQLite without it.
var writerWait = 5 * time.Second

// writerTimeouts counts the writes that went on without their turn, for tests.
var writerTimeouts atomic.Int64

// writerWaiting, when set (by tests), is called when a write starts to wait for its turn.
var writerWaiting func()

// writer is the turn to write of one sql.DB's connections.
type writer struct{ turn chan struct{} }

func newWriter() *writer {
	if !queueWrites {
		return nil
	}
	return &writer{turn: make(chan struct{}, 1)}
}

// acquire waits for the turn; it reports whether it got it (false: ctx ended or writerWait
// passed, and the caller goes on without).
func (w *writer) acquire(ctx context.Context) bool {
	select {
	case w.turn <- struct{}{}:
		return true
	default:
	}
	if writerWaiting != nil {
		writerWaiting()
	}
	t := time.NewTimer(writerWait)
	defer t.Stop()
	select {
	case w.turn <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	case <-t.C:
		writerTimeouts.Add(1)
		return false
	}
}

func (w *writer) release() { <-w.turn }

// turn takes the writer's turn for a statement of c that writes outside a transaction; the
// returned func gives it back (and does nothing when no turn was taken).
func (c *conn) turn(ctx context.Context, writes bool) func() {
	if c.w == nil || c.tx != nil || !writes || !c.w.acquire(ctx) {
		return func() {}
	}
	w := c.w
	var done bool
	return func() {
		if !done {
			done = true
			w.release()
		}
	}
}

// BeginTx starts a transaction; one that may write takes the writer's turn until it ends.
func (c *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	release := func() {}
	if !opts.ReadOnly {
		release = c.turn(ctx, true)
	}
	sctx, err := statementContext(ctx)
	if err != nil {
		release()
		return nil, err
	}
	t, err := c.baseConn.BeginTx(sctx, opts)
	if err != nil {
		release()
		return nil, err
	}
	c.tx = &tx{Tx: t, c: c, release: release}
	return c.tx, nil
}

// tx is a transaction of conn, which gives the writer's turn back when it ends.
type tx struct {
	driver.Tx
	c       *conn
	release func()
}

func (t *tx) Commit() error   { defer t.end(); return t.Tx.Commit() }
func (t *tx) Rollback() error { defer t.end(); return t.Tx.Rollback() }

func (t *tx) end() {
	if t.c.tx == t {
		t.c.tx = nil
	}
	t.release()
}

// writes reports whether a statement outside a transaction writes: its first word is one that
// changes the database, or it is a WITH … INSERT, UPDATE or DELETE. What it cannot tell
// (PRAGMA, say) it leaves to SQLite's own locking.
func writes(query string) bool {
	switch firstWord(query) {
	case "INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER":
		return true
	case "WITH":
		return writingCTE.MatchString(query)
	}
	return false
}

var writingCTE = regexp.MustCompile(`(?i)\b(insert|update|delete|replace)\b`)

// firstWord is the first keyword of query, upper case, after white space and comments.
func firstWord(q string) string {
	for {
		q = strings.TrimLeft(q, " \t\r\n\f(")
		switch {
		case strings.HasPrefix(q, "--"):
			i := strings.IndexByte(q, '\n')
			if i < 0 {
				return ""
			}
			q = q[i+1:]
		case strings.HasPrefix(q, "/*"):
			i := strings.Index(q, "*/")
			if i < 0 {
				return ""
			}
			q = q[i+2:]
		default:
			end := 0
			for end < len(q) && (q[end] >= 'a' && q[end] <= 'z' || q[end] >= 'A' && q[end] <= 'Z') {
				end++
			}
			return strings.ToUpper(q[:end])
		}
	}
}
