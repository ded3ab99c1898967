// Package sqlitedb registers Driver: the pure-Go SQLite driver (modernc.org/sqlite) with each
// connection keeping the statements it has prepared.
//
// database/sql prepares, runs and finalizes a statement for every query that is not an explicit
// sql.Stmt, and neither dbutil nor bridgev2 prepare theirs: every message bridged to Matrix ran
// SQLite's parser and planner on the same dozen queries again. In the scale benchmark (2,000
// accounts, 1,000 msg/s) parsing was a quarter of the bridge's CPU, and bridgev2's duplicate
// check before each message to Matrix took 260 µs at the median. Kept statements cost a few KiB
// of SQLite memory each, bounded by the cache size per connection.
//
// The driver also keeps SQLite's WAL checkpoints off the queries' path: a write with a
// RETURNING clause pays for the checkpoint it owes (see writesRows), and a database in WAL mode
// is checkpointed in the background (see CheckpointInterval), and the writes of one sql.DB queue
// in the process instead of polling SQLite's lock (see writer.go). A statement whose context can
// be cancelled but has no deadline runs without the goroutine modernc would start to interrupt
// it (see statementContext).
package sqlitedb

import (
	"container/list"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"reflect"
	"regexp"

	_ "modernc.org/sqlite" // registers "sqlite", which Driver wraps
)

// Driver is the database/sql driver name to open SQLite with. Its DSNs are modernc.org/sqlite's.
// dbutil reads a driver name beginning with "sqlite" as the SQLite dialect.
const Driver = "sqlite-stmtcache"

// base is the name the wrapped driver registers.
const base = "sqlite"

// CacheSize is how many prepared statements one connection keeps, least recently used first
// out. The bridge's queries (its own and bridgev2's) that run more than once number fewer.
const CacheSize = 128

func init() {
	db, err := sql.Open(base, "")
	if err != nil {
		panic("sqlitedb: the modernc.org/sqlite driver is not registered: " + err.Error())
	}
	d := db.Driver()
	_ = db.Close()
	sql.Register(Driver, &cachingDriver{base: d, size: CacheSize})
}

// Open opens a database with Driver (the caching driver), as sql.Open(Driver, dsn).
func Open(dsn string) (*sql.DB, error) { return sql.Open(Driver, dsn) }

type cachingDriver struct {
	base driver.Driver
	size int
}

func (d *cachingDriver) Open(name string) (driver.Conn, error) {
	c, err := d.base.Open(name)
	if err != nil {
		return nil, err
	}
	return newConn(c, d.size)
}

// The interfaces database/sql needs from a connection to use it without falling back to the
// deprecated forms; modernc's conn has them all.
type baseConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
}

// conn is one SQLite connection and its statements. database/sql uses a connection from one
// goroutine at a time, so conn needs no lock; a statement is busy while rows read from it are
// open (a transaction can run a query while it reads another's rows), and a query that finds
// its statement busy runs unprepared.
type conn struct {
	baseConn
	size  int
	stmts map[string]*list.Element // of *cached
	lru   list.List                // front: most recently used
	// prepares counts the statements prepared to keep, for tests.
	prepares int
	// w is the writer's turn of the connection's sql.DB (see writer.go), tx the transaction
	// running on the connection.
	w  *writer
	tx *tx
}

type cached struct {
	query string
	stmt  baseStmt
	busy  bool
	// returning is set for a statement with a RETURNING clause (see writesRows).
	returning bool
	// writes is set for a statement that writes (see writes).
	writes bool
}

// The statement interfaces conn uses; modernc's stmt has them.
type baseStmt interface {
	driver.Stmt
	driver.StmtExecContext
	driver.StmtQueryContext
}

var errMissingInterfaces = errors.New("sqlitedb: the SQLite driver's connection lacks the context interfaces")

func newConn(c driver.Conn, size int) (driver.Conn, error) {
	bc, ok := c.(baseConn)
	if !ok {
		_ = c.Close()
		return nil, errMissingInterfaces
	}
	return &conn{baseConn: bc, size: size, stmts: make(map[string]*list.Element)}, nil
}

// prepared returns the kept statement for query, preparing and keeping it if it is new; nil
// (and no error) when the statement is busy or cannot be kept, for the caller to run query
// unprepared.
func (c *conn) prepared(ctx context.Context, query string) (*cached, error) {
	if el, ok := c.stmts[query]; ok {
		e := el.Value.(*cached)
		if e.busy {
			return nil, nil
		}
		c.lru.MoveToFront(el)
		return e, nil
	}
	st, err := c.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.prepares++
	bs, ok := st.(baseStmt)
	if !ok {
		_ = st.Close()
		return nil, nil
	}
	e := &cached{query: query, stmt: bs, returning: writesRows(query), writes: writes(query)}
	c.stmts[query] = c.lru.PushFront(e)
	c.evict()
	return e, nil
}

// evict closes the least recently used statements that are not busy until at most size are
// kept.
func (c *conn) evict() {
	for el := c.lru.Back(); el != nil && len(c.stmts) > c.size; {
		prev := el.Prev()
		if e := el.Value.(*cached); !e.busy {
			c.lru.Remove(el)
			delete(c.stmts, e.query)
			_ = e.stmt.Close()
		}
		el = prev
	}
}

func (c *conn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	e, err := c.prepared(ctx, query)
	if err != nil {
		return nil, err
	}
	if e == nil {
		defer c.turn(ctx, writes(query))()
		sctx, err := statementContext(ctx)
		if err != nil {
			return nil, err
		}
		return c.baseConn.ExecContext(sctx, query, args)
	}
	defer c.turn(ctx, e.writes)()
	sctx, err := statementContext(ctx)
	if err != nil {
		return nil, err
	}
	e.busy = true
	defer func() { e.busy = false }()
	return e.stmt.ExecContext(sctx, args)
}

func (c *conn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	e, err := c.prepared(ctx, query)
	if err != nil {
		return nil, err
	}
	if e == nil {
		w := writes(query)
		release := c.turn(ctx, w)
		sctx, err := statementContext(ctx)
		if err != nil {
			release()
			return nil, err
		}
		r, err := c.baseConn.QueryContext(sctx, query, args)
		if err != nil {
			release()
			return nil, err
		}
		returning := writesRows(query)
		if !w && !returning {
			return r, nil
		}
		return wrapRows(r, returning, release), nil
	}
	release := c.turn(ctx, e.writes)
	sctx, err := statementContext(ctx)
	if err != nil {
		release()
		return nil, err
	}
	e.busy = true
	r, err := e.stmt.QueryContext(sctx, args)
	if err != nil {
		e.busy = false
		release()
		return nil, err
	}
	return wrapRows(r, e.returning, func() { e.busy = false; release() }), nil
}

// statementContext is the context a statement runs with in modernc's driver, which starts a
// goroutine for every statement whose context can end, to interrupt the statement should it
// end while it runs (and a shared-cache or busy wait with it). On bridgev2's message path that
// was a goroutine for each of a message's queries, started and scheduled while the message
// waited: in the scale benchmark a fifth of the waits for a CPU of bridgev2's per-event
// goroutines, during a collection, were these goroutines' turn. A context that can be cancelled
// but has no deadline (a portal's or a connection's lifetime, which ends at shutdown or a
// deletion) gains nothing from that: its statements take microseconds and are better finished
// than interrupted. So such a context is checked once, before the statement starts, and the
// statement runs without its cancellation; a context with a deadline, a bound its caller set,
// keeps the interruption. The writer's turn (writer.go) is waited for with the caller's context
// either way.
func statementContext(ctx context.Context) (context.Context, error) {
	if ctx.Done() == nil {
		return ctx, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if _, bounded := ctx.Deadline(); bounded {
		return ctx, nil
	}
	return context.WithoutCancel(ctx), nil
}

// writesRows reports whether query has a RETURNING clause, which only a statement that writes
// can have (a SELECT holding the word elsewhere, in a string or a name, is only drained).
//
// SQLite runs its WAL hook, and with it the automatic checkpoint, when a step finishes a
// statement that committed. A write whose rows are read with QueryRow (bridgev2 stores each
// message with INSERT … RETURNING rowid) ends in sqlite3_reset instead, and the hook then runs
// in the next statement that finishes on the connection: in the scale benchmark, bridgev2's
// duplicate check before a message went to Matrix paid for the checkpoint, fsyncs included,
// that an earlier insert had owed. Rows of such a statement are read to the end before they
// close, so the write pays for its own checkpoint.
func writesRows(query string) bool { return returningClause.MatchString(query) }

var returningClause = regexp.MustCompile(`(?i)\breturning\b`)

// Close closes the kept statements, then the connection (and the transaction on it, if one is
// left: its writer's turn is given back).
func (c *conn) Close() error {
	if c.tx != nil {
		c.tx.end()
	}
	for _, el := range c.stmts {
		_ = el.Value.(*cached).stmt.Close()
	}
	c.stmts = nil
	c.lru.Init()
	return c.baseConn.Close()
}

// The optional connection interfaces database/sql checks for, passed on.

func (c *conn) ResetSession(ctx context.Context) error {
	if r, ok := c.baseConn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *conn) IsValid() bool {
	if v, ok := c.baseConn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

func (c *conn) Ping(ctx context.Context) error {
	if p, ok := c.baseConn.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

// rows are a kept statement's results, or a writing statement's (drain); closing them reads
// what is left of a writing statement's, then frees the statement for the next query.
type rows struct {
	driver.Rows
	drain   bool
	release func()
}

// Next reads the next row. After the last one (or an error) drain is off: stepping a finished
// SQLite statement again would run it again.
func (r *rows) Next(dest []driver.Value) error {
	err := r.Rows.Next(dest)
	if err != nil {
		r.drain = false
	}
	return err
}

func (r *rows) Close() error {
	var err error
	if r.drain {
		r.drain = false
		dest := make([]driver.Value, len(r.Rows.Columns()))
		for err == nil {
			err = r.Rows.Next(dest)
		}
		// Next stops at the first error or io.EOF, and is not called again.
		if err == io.EOF {
			err = nil
		}
	}
	if cerr := r.Rows.Close(); err == nil {
		err = cerr
	}
	if r.release != nil {
		r.release()
		r.release = nil
	}
	return err
}

// typedRows are rows that describe their columns (modernc's do), for sql.Rows.ColumnTypes.
type typedRows struct {
	rows
	types columnTyper
}

type columnTyper interface {
	driver.RowsColumnTypeDatabaseTypeName
	driver.RowsColumnTypeLength
	driver.RowsColumnTypeNullable
	driver.RowsColumnTypePrecisionScale
	driver.RowsColumnTypeScanType
}

func wrapRows(r driver.Rows, drain bool, release func()) driver.Rows {
	if t, ok := r.(columnTyper); ok {
		return &typedRows{rows: rows{Rows: r, drain: drain, release: release}, types: t}
	}
	return &rows{Rows: r, drain: drain, release: release}
}

func (r *typedRows) ColumnTypeDatabaseTypeName(i int) string {
	return r.types.ColumnTypeDatabaseTypeName(i)
}

func (r *typedRows) ColumnTypeLength(i int) (int64, bool) { return r.types.ColumnTypeLength(i) }

func (r *typedRows) ColumnTypeNullable(i int) (bool, bool) { return r.types.ColumnTypeNullable(i) }

func (r *typedRows) ColumnTypePrecisionScale(i int) (int64, int64, bool) {
	return r.types.ColumnTypePrecisionScale(i)
}

func (r *typedRows) ColumnTypeScanType(i int) reflect.Type { return r.types.ColumnTypeScanType(i) }
