package sqlitedb

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Checkpoints of a database in WAL mode run in the background, on a connection of their own.
//
// SQLite's automatic checkpoint (every 1,000 pages of WAL) runs inside the commit that crosses
// the mark: it copies the pages back into the database and fsyncs both files while that
// statement's caller waits, and while the connection is out of the pool. In the scale benchmark
// (10,000 accounts, 1,000 msg/s) that was the tail of bridgev2's message path: each message's
// insert or the next one in its portal waited out a checkpoint a few times a second. With a
// checkpointer per sql.DB the pool's connections checkpoint only past FallbackCheckpointPages
// (should the checkpointer fall behind or fail), and a passive checkpoint every
// CheckpointInterval neither blocks readers nor writers.
const (
	// CheckpointInterval is how often the checkpointer copies the WAL back into the database.
	CheckpointInterval = time.Second
	// FallbackCheckpointPages is the pool connections' wal_autocheckpoint: how large the WAL
	// grows before a commit checkpoints it itself (SQLite's default is 1,000).
	FallbackCheckpointPages = 10000
)

// checkpointEvery is CheckpointInterval, shorter in tests. A checkpointer reads it when it
// starts.
var checkpointEvery = CheckpointInterval

// connector opens the connections of one sql.DB and owns its checkpointer, which DB.Close
// stops (database/sql closes a connector that is an io.Closer).
type connector struct {
	d    *cachingDriver
	name string
	w    *writer

	mu      sync.Mutex
	decided bool // whether this database gets a checkpointer is known
	managed bool // the pool's connections leave checkpoints to the checkpointer
	stop    chan struct{}
	done    chan struct{}
	closed  bool
}

var (
	_ driver.Connector = (*connector)(nil)
	_ io.Closer        = (*connector)(nil)
)

func (d *cachingDriver) OpenConnector(name string) (driver.Connector, error) {
	return &connector{d: d, name: name, w: newWriter()}, nil
}

func (c *connector) Driver() driver.Driver { return c.d }

func (c *connector) Connect(ctx context.Context) (driver.Conn, error) {
	bc, err := c.d.base.Open(c.name)
	if err != nil {
		return nil, err
	}
	cn, err := newConn(bc, c.d.size)
	if err != nil {
		return nil, err
	}
	if err = c.adopt(ctx, cn.(*conn)); err != nil {
		_ = cn.Close()
		return nil, err
	}
	cn.(*conn).w = c.w
	return cn, nil
}

// adopt decides, with the first connection, whether the database gets a checkpointer: it does
// when it is a writable file in WAL mode and the DSN leaves wal_autocheckpoint to the bridge.
// Then every connection of the pool checkpoints only past FallbackCheckpointPages.
func (c *connector) adopt(ctx context.Context, cn *conn) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.decided {
		c.decided = true
		managed, err := c.wantsCheckpointer(ctx, cn)
		if err != nil {
			c.decided = false
			return err
		}
		if managed && !c.closed {
			c.managed = true
			c.stop, c.done = make(chan struct{}), make(chan struct{})
			go c.checkpoints(checkpointEvery, c.stop, c.done)
		}
	}
	if !c.managed {
		return nil
	}
	// On the driver's connection: a statement run once per connection is not worth keeping.
	_, err := cn.baseConn.ExecContext(ctx, "PRAGMA wal_autocheckpoint = "+strconv.Itoa(FallbackCheckpointPages), nil)
	return err
}

func (c *connector) wantsCheckpointer(ctx context.Context, cn *conn) (bool, error) {
	// A DSN that sets wal_autocheckpoint keeps SQLite's checkpoints as set; a read-only pool
	// (dbutil's for SQLite adds _query_only) leaves them to the pool that writes.
	name := strings.ToLower(c.name)
	for _, s := range []string{"wal_autocheckpoint", "query_only", "mode=ro"} {
		if strings.Contains(name, s) {
			return false, nil
		}
	}
	if ro, ok := cn.baseConn.(interface{ IsReadOnly(string) (bool, error) }); ok {
		if readOnly, err := ro.IsReadOnly("main"); err != nil || readOnly {
			return false, err
		}
	}
	mode, err := queryString(ctx, cn.baseConn, "PRAGMA journal_mode")
	if err != nil {
		return false, err
	}
	return strings.EqualFold(mode, "wal"), nil
}

// Close stops the checkpointer and waits for it.
func (c *connector) Close() error {
	c.mu.Lock()
	c.closed = true
	stop, done := c.stop, c.done
	c.stop = nil
	c.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
	return nil
}

// checkpoints runs a passive checkpoint every interval on a connection of its own (opened
// again after an error), until stop closes.
func (c *connector) checkpoints(interval time.Duration, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	var cn driver.Conn
	defer func() {
		if cn != nil {
			_ = cn.Close()
		}
	}()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		err := func() (err error) {
			if cn == nil {
				if cn, err = c.d.base.Open(c.name); err != nil {
					cn = nil
					return err
				}
			}
			x, ok := cn.(driver.ExecerContext)
			if !ok {
				return errMissingInterfaces
			}
			// Its row (busy, frames in the WAL, frames copied) is not needed.
			_, err = x.ExecContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)", nil)
			return err
		}()
		// After an error the next tick opens a new connection; until one works the pool's
		// connections checkpoint past FallbackCheckpointPages, as SQLite would.
		if err != nil && cn != nil {
			_ = cn.Close()
			cn = nil
		}
	}
}

// queryString runs query and returns the first column of its first row, a string.
func queryString(ctx context.Context, q driver.QueryerContext, query string) (string, error) {
	rs, err := q.QueryContext(ctx, query, nil)
	if err != nil {
		return "", err
	}
	defer rs.Close()
	dest := make([]driver.Value, len(rs.Columns()))
	if err = rs.Next(dest); err != nil {
		if err == io.EOF {
			err = errors.New("sqlitedb: " + query + " returned no row")
		}
		return "", err
	}
	v, _ := dest[0].(string)
	return v, nil
}
