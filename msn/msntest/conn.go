package msntest

import (
	"net"
	"sync"
	"time"

	"github.com/msn-bridge/msn-bridge/msn"
)

// writeTimeout bounds one socket write. A peer that does not read for this long is dropped, so a
// stuck test client cannot pin server memory.
const writeTimeout = 10 * time.Second

// conn is the part shared by NS, dispatch and SB connections: the socket and an output buffer
// drained by one writer goroutine. Queueing never blocks, so handlers may send while holding
// Server.mu. Lock order: Server.mu before conn.mu.
type conn struct {
	nc     net.Conn
	remote string
	limit  int // most bytes that may wait for the writer before the peer counts as stuck

	mu        sync.Mutex
	out       []byte
	closing   bool // flush what is queued, then close
	closed    bool
	wake      chan struct{} // cap 1: "out or closing changed"
	done      chan struct{} // closed once the socket is closed
	closeOnce sync.Once
}

func newConn(nc net.Conn, limit int) *conn {
	return &conn{
		nc:     nc,
		remote: nc.RemoteAddr().String(),
		limit:  limit,
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
}

// send queues a command. It reports false when the connection is closing or was dropped for
// having too much unread output.
func (c *conn) send(cmd *msn.Command) bool {
	c.mu.Lock()
	if c.closing || c.closed {
		c.mu.Unlock()
		return false
	}
	c.out = cmd.AppendTo(c.out)
	over := len(c.out) > c.limit
	c.mu.Unlock()
	if over {
		c.kill()
		return false
	}
	c.signal()
	return true
}

// pending returns the bytes waiting for the writer.
func (c *conn) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.out)
}

// sendLine queues a command built from a name and arguments.
func (c *conn) sendLine(name string, args ...string) bool {
	return c.send(&msn.Command{Name: name, Args: args})
}

// sendRaw queues bytes as they are.
func (c *conn) sendRaw(b []byte) bool {
	c.mu.Lock()
	if c.closing || c.closed {
		c.mu.Unlock()
		return false
	}
	c.out = append(c.out, b...)
	c.mu.Unlock()
	c.signal()
	return true
}

// closeAfterFlush lets the writer send what is queued, then closes the socket. Later sends are
// dropped.
func (c *conn) closeAfterFlush() {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	c.signal()
}

// kill closes the socket at once, dropping queued output.
func (c *conn) kill() {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.out = nil
		c.mu.Unlock()
		_ = c.nc.Close()
		close(c.done)
	})
}

func (c *conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// writeLoop drains the output buffer until the connection closes. It is the connection's only
// writer.
func (c *conn) writeLoop() {
	var spare []byte
	for {
		select {
		case <-c.wake:
		case <-c.done:
			return
		}
		c.mu.Lock()
		buf := c.out
		c.out = spare[:0]
		closing := c.closing
		c.mu.Unlock()
		if len(buf) > 0 {
			_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
			if _, err := c.nc.Write(buf); err != nil {
				c.kill()
				return
			}
		}
		// Keep a small buffer for reuse; give big bursts (a long SYN) back to the GC.
		if cap(buf) <= 4096 {
			spare = buf[:0]
		} else {
			spare = nil
		}
		if closing {
			c.mu.Lock()
			empty := len(c.out) == 0
			c.mu.Unlock()
			if empty {
				c.kill()
				return
			}
			c.signal()
		}
	}
}
