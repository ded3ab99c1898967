package politeness

import (
	"context"
	"sync"
	"time"

	"github.com/msn-bridge/msn-bridge/bridge"
)

// stepClock is a bridge.Clock whose time advances only when its driver steps it, by a fixed
// step per real tick (slower than real time, so that a goroutine the rate limiter let through
// is almost always scheduled before the clock moves on). A process-wide stall (CPU starvation, a GC pause) stops the driver too,
// so time on this clock does not jump under goroutines that were let through the rate limiter
// but not yet scheduled: stamping connections with it measures what the limiter allowed rather
// than how the machine scheduled it.
type stepClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []stepWaiter
}

type stepWaiter struct {
	at time.Time
	fn func()
}

var _ bridge.Clock = (*stepClock)(nil)

func newStepClock() *stepClock { return &stepClock{now: time.Unix(1_000_000, 0)} }

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// SleepUntil implements bridge.Clock.
func (c *stepClock) SleepUntil(ctx context.Context, t time.Time) error {
	ch := make(chan struct{})
	c.mu.Lock()
	if !t.After(c.now) {
		c.mu.Unlock()
		return ctx.Err()
	}
	c.waiters = append(c.waiters, stepWaiter{at: t, fn: func() { close(ch) }})
	c.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// AfterFunc implements bridge.Clock.
func (c *stepClock) AfterFunc(d time.Duration, f func()) func() bool {
	var once sync.Once
	fired := false
	run := func() { once.Do(func() { fired = true; go f() }) }
	c.mu.Lock()
	c.waiters = append(c.waiters, stepWaiter{at: c.now.Add(d), fn: run})
	c.mu.Unlock()
	return func() bool {
		stopped := false
		once.Do(func() { stopped = true })
		return stopped && !fired
	}
}

// drive advances the clock by step every real tick until ctx ends.
func (c *stepClock) drive(ctx context.Context, step, tick time.Duration) {
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		c.mu.Lock()
		c.now = c.now.Add(step)
		var due []func()
		keep := c.waiters[:0]
		for _, w := range c.waiters {
			if w.at.After(c.now) {
				keep = append(keep, w)
			} else {
				due = append(due, w.fn)
			}
		}
		clear(c.waiters[len(keep):])
		c.waiters = keep
		c.mu.Unlock()
		for _, fn := range due {
			fn()
		}
	}
}
