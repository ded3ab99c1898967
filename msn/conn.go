package msn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// conn is one MSNP TCP connection (notification server or switchboard): a reader goroutine, a
// serialised writer, a per-connection TrID counter and the table of requests waiting for their
// reply.
//
// Replies are matched by TrID and command name: a command whose TrID has a waiter completes it
// when its name is one the waiter expects, or when it is a numeric error. Everything else
// (TrID-less commands, TrID 0 pushes, ILN/IRO that carry a request's TrID, replies nobody waits
// for) goes to the async callback, which runs on the reader goroutine and must not block.
//
// The Command given to the async callback and to a waiter's hook is the Reader's, valid only
// during the call (see Reader): they keep its strings, or a Clone, never the Command, its Args
// slice or its Payload. A waiter receives a Clone.
type conn struct {
	nc      net.Conn
	rd      *Reader
	log     zerolog.Logger
	async   func(*Command)
	onClose func(*conn, error)

	writeTimeout time.Duration

	wmu sync.Mutex // serialises writes

	mu      sync.Mutex
	nextID  uint32
	pending map[uint32]*waiter
	err     error // set once the connection is closed

	closed chan struct{} // closed when the connection is closed (by either side)
	done   chan struct{} // closed when the reader goroutine has returned
	once   sync.Once
}

type waiter struct {
	name   string
	expect []string
	ch     chan reply // buffered 1
	// hook, when set, runs on the reader goroutine with a successful reply before any later
	// command is dispatched (used to learn a session id before the JOI that follows it).
	hook func(*Command)
}

type reply struct {
	cmd *Command
	err error
}

// errNotSent marks a request that failed before any byte of it was written, so resending it
// elsewhere cannot duplicate it.
var errNotSent = errors.New("request not sent")

// newConn wraps nc; run starts its reader goroutine. async receives every command that is not a
// reply; onClose (may be nil) runs once on the reader goroutine after the connection is closed,
// with the connection and the cause. Neither may block.
func newConn(nc net.Conn, rule PayloadRule, log zerolog.Logger, writeTimeout time.Duration, async func(*Command), onClose func(*conn, error)) *conn {
	c := &conn{
		nc:           nc,
		rd:           NewReader(nc, rule),
		log:          log,
		async:        async,
		writeTimeout: writeTimeout,
		nextID:       1,
		pending:      make(map[uint32]*waiter),
		closed:       make(chan struct{}),
		done:         make(chan struct{}),
		onClose:      onClose,
	}
	return c
}

// run starts the reader goroutine. It must be called exactly once.
func (c *conn) run() { go c.readLoop(c.onClose) }

// dial opens a TCP connection to addr within timeout, respecting ctx.
func dial(ctx context.Context, addr string, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("failed to connect to %s: %w", addr, err)
	}
	return nc, nil
}

func (c *conn) readLoop(onClose func(*conn, error)) {
	defer close(c.done)
	var cause error
	for {
		cmd, err := c.rd.ReadCommand()
		if err != nil {
			cause = err
			break
		}
		c.dispatch(cmd)
	}
	if errors.Is(cause, io.EOF) {
		cause = io.EOF
	}
	c.closeWith(cause)
	if onClose != nil {
		onClose(c, c.Err())
	}
}

func (c *conn) dispatch(cmd *Command) {
	if id, ok := cmd.TrID(); ok && id != 0 {
		c.mu.Lock()
		w := c.pending[id]
		if w != nil && (cmd.IsError() || slices.Contains(w.expect, cmd.Name)) {
			delete(c.pending, id)
			c.mu.Unlock()
			if cmd.IsError() {
				w.ch <- reply{err: &ServerError{Code: errorCode(cmd.Name), Command: w.name}}
			} else {
				if w.hook != nil {
					w.hook(cmd)
				}
				w.ch <- reply{cmd: cmd.Clone()} // read by another goroutine
			}
			return
		}
		c.mu.Unlock()
	}
	if cmd.IsError() {
		c.log.Debug().Str("code", cmd.Name).Str("line", cmd.String()).Msg("Ignoring error reply nobody waits for")
		return
	}
	if c.async != nil {
		c.async(cmd)
	}
}

func errorCode(name string) int {
	n := 0
	for i := 0; i < len(name); i++ {
		n = n*10 + int(name[i]-'0')
	}
	return n
}

// closeWith closes the connection with cause (nil = local close) and fails every waiter.
func (c *conn) closeWith(cause error) {
	c.once.Do(func() {
		if cause == nil {
			cause = ErrClosed
		}
		c.mu.Lock()
		c.err = cause
		pending := c.pending
		c.pending = make(map[uint32]*waiter)
		c.mu.Unlock()
		close(c.closed)
		_ = c.nc.Close()
		for _, w := range pending {
			w.ch <- reply{err: fmt.Errorf("%w: %w", ErrClosed, cause)}
		}
	})
}

// Close closes the connection and waits for the reader goroutine.
func (c *conn) Close() error {
	c.closeWith(nil)
	<-c.done
	return nil
}

// awaiting reports whether a command sent on c still waits for its reply.
func (c *conn) awaiting() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending) > 0
}

// Err returns why the connection closed, or nil while it is open.
func (c *conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Closed returns a channel closed when the connection closes.
func (c *conn) Closed() <-chan struct{} { return c.closed }

// send writes a command without a TrID (PNG, OUT) or with one the caller chose.
func (c *conn) send(cmd *Command) error {
	select {
	case <-c.closed:
		return fmt.Errorf("%w: %w", ErrClosed, errNotSent)
	default:
	}
	buf := cmd.AppendTo(make([]byte, 0, 64+len(cmd.Payload)))
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.writeTimeout > 0 {
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	}
	if _, err := c.nc.Write(buf); err != nil {
		c.closeWith(err)
		return fmt.Errorf("failed to write %s: %w: %w", cmd.Name, ErrClosed, err)
	}
	return nil
}

// start sends a request with a fresh TrID and registers a waiter for its reply. expect lists
// the reply names (default: the request's own name). args exclude the TrID.
func (c *conn) start(name string, args []string, payload []byte, expect ...string) (uint32, *waiter, error) {
	return c.startHook(nil, name, args, payload, expect...)
}

func (c *conn) startHook(hook func(*Command), name string, args []string, payload []byte, expect ...string) (uint32, *waiter, error) {
	if len(expect) == 0 {
		expect = []string{name}
	}
	w := &waiter{name: name, expect: expect, ch: make(chan reply, 1), hook: hook}
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return 0, nil, fmt.Errorf("%w: %w: %w", ErrClosed, errNotSent, err)
	}
	id := c.nextID
	c.nextID++
	if c.nextID == 0 {
		c.nextID = 1
	}
	c.pending[id] = w
	c.mu.Unlock()
	full := make([]string, 0, len(args)+1)
	full = append(full, uitoa(id))
	full = append(full, args...)
	if err := c.send(&Command{Name: name, Args: full, Payload: payload}); err != nil {
		c.forget(id)
		return 0, nil, err
	}
	return id, w, nil
}

func (c *conn) forget(id uint32) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// wait waits for the reply of request id, at most timeout (0 = only ctx).
func (c *conn) wait(ctx context.Context, id uint32, w *waiter, timeout time.Duration) (*Command, error) {
	var timer <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		timer = t.C
	}
	select {
	case r := <-w.ch:
		return r.cmd, r.err
	case <-ctx.Done():
		c.forget(id)
		return nil, fmt.Errorf("%s: %w", w.name, ctx.Err())
	case <-timer:
		c.forget(id)
		return nil, fmt.Errorf("no reply to %s after %s: %w", w.name, timeout, ErrTimeout)
	}
}

// call sends a request and waits for its reply (or a numeric error, returned as *ServerError).
func (c *conn) call(ctx context.Context, timeout time.Duration, name string, args []string, payload []byte, expect ...string) (*Command, error) {
	return c.callHook(ctx, timeout, nil, name, args, payload, expect...)
}

// callHook is call with a hook run on the reader goroutine when the reply arrives.
func (c *conn) callHook(ctx context.Context, timeout time.Duration, hook func(*Command), name string, args []string, payload []byte, expect ...string) (*Command, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	id, w, err := c.startHook(hook, name, args, payload, expect...)
	if err != nil {
		return nil, err
	}
	return c.wait(ctx, id, w, timeout)
}

func uitoa(n uint32) string {
	var b [10]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return string(b[i:])
}

// post sends a request with a fresh TrID without waiting for any reply (MSG U/N).
func (c *conn) post(name string, args []string, payload []byte) error {
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return fmt.Errorf("%w: %w: %w", ErrClosed, errNotSent, err)
	}
	id := c.nextID
	c.nextID++
	if c.nextID == 0 {
		c.nextID = 1
	}
	c.mu.Unlock()
	full := make([]string, 0, len(args)+1)
	full = append(full, uitoa(id))
	full = append(full, args...)
	return c.send(&Command{Name: name, Args: full, Payload: payload})
}
