package msn

import (
	"fmt"
	"time"
)

// keepalive is the state of the NS keepalive (docs/protocol.md §3.12), guarded by Client.mu. It
// runs no goroutine of its own: one timer at a time is scheduled, either for the next PNG or, while
// a PNG is unanswered, for its PingTimeout deadline. Each scheduled step counts in Client.wg until
// it has run or been stopped, so Close waits for a PNG being written.
type keepalive struct {
	ns      *conn
	timer   *time.Timer // the scheduled step, nil when none
	gen     uint32      // bumped by every arm and stop: a step of an older arm does nothing
	waiting bool        // a PNG is out and its QNG has not come yet
}

// keepaliveArmLocked schedules the next keepalive step in d, replacing the scheduled one. c.mu
// must be held with the session online, so that the Add never races with Close's Wait.
func (c *Client) keepaliveArmLocked(d time.Duration) {
	c.keepaliveStopLocked()
	gen := c.ka.gen
	c.wg.Add(1)
	c.ka.timer = time.AfterFunc(d, func() {
		defer c.wg.Done()
		c.keepaliveStep(gen)
	})
}

// keepaliveStopLocked cancels the scheduled step; a step already running does nothing more
// than finish its write. c.mu must be held.
func (c *Client) keepaliveStopLocked() {
	c.ka.gen++
	if c.ka.timer != nil && c.ka.timer.Stop() {
		c.wg.Done() // the step will not run
	}
	c.ka.timer = nil
}

// keepaliveStep runs on its timer's goroutine. At a PNG's deadline it declares the connection
// dead; otherwise it sends PNG (which may block on a slow socket, but never blocks the reader)
// and schedules the deadline, unless the QNG has already come.
func (c *Client) keepaliveStep(gen uint32) {
	c.mu.Lock()
	if gen != c.ka.gen || c.state != stateOnline {
		c.mu.Unlock()
		return
	}
	ns := c.ka.ns
	c.ka.timer = nil
	if c.ka.waiting {
		c.ka.waiting = false
		c.mu.Unlock()
		c.log.Warn().Dur("timeout", c.cfg.PingTimeout).Msg("No answer to keepalive, dropping connection")
		ns.closeWith(fmt.Errorf("no QNG within %s: %w", c.cfg.PingTimeout, ErrTimeout))
		return
	}
	c.ka.waiting = true // a QNG that comes from now on answers this PNG
	c.mu.Unlock()
	c.leaveIdleSessions()
	if err := ns.send(&Command{Name: "PNG"}); err != nil {
		return // the connection is closed: its reader ends the session
	}
	c.mu.Lock()
	if gen == c.ka.gen && c.ka.waiting && c.state == stateOnline {
		c.keepaliveArmLocked(c.cfg.PingTimeout)
	}
	c.mu.Unlock()
}

// handleQNG takes the answer to a PNG (n: seconds until the next one, -1 when unreadable) and
// schedules the next PNG. A QNG while no PNG is out is ignored. It runs on the reader goroutine
// and does not block.
func (c *Client) handleQNG(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ka.waiting || c.state != stateOnline {
		return
	}
	c.ka.waiting = false
	interval := time.Duration(n) * time.Second
	if n < 0 {
		interval = 45 * time.Second
	}
	interval = min(max(interval, minServerPingInterval), maxServerPingInterval)
	if c.cfg.PingInterval > 0 {
		interval = c.cfg.PingInterval
	}
	c.keepaliveArmLocked(interval)
}
