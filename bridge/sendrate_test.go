package bridge

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// stepClock is a virtual clock that moves only when the test advances it: SleepUntil blocks
// until then. AfterFunc timers never fire.
type stepClock struct {
	mu       sync.Mutex
	now      time.Time
	sleepers map[chan struct{}]time.Time
}

func newStepClock() *stepClock {
	return &stepClock{now: time.Date(2005, 6, 1, 12, 0, 0, 0, time.UTC), sleepers: map[chan struct{}]time.Time{}}
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *stepClock) SleepUntil(ctx context.Context, t time.Time) error {
	c.mu.Lock()
	if !t.After(c.now) {
		c.mu.Unlock()
		return ctx.Err()
	}
	ch := make(chan struct{})
	c.sleepers[ch] = t
	c.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.sleepers, ch)
		c.mu.Unlock()
		return ctx.Err()
	}
}

func (c *stepClock) AfterFunc(time.Duration, func()) func() bool { return func() bool { return false } }

// advance moves the clock by d and wakes the sleepers whose time came.
func (c *stepClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for ch, t := range c.sleepers {
		if !t.After(c.now) {
			delete(c.sleepers, ch)
			close(ch)
		}
	}
}

func (c *stepClock) sleeping() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sleepers)
}

// rateEnv is a core with alice logged in on a fake MSN, on a stepClock.
type rateEnv struct {
	core  *Core
	srv   *fakeServer
	clock *stepClock
	acc   *Account
}

func newRateEnv(t *testing.T, limit SendLimitConfig) *rateEnv {
	t.Helper()
	ctx := context.Background()
	srv := newFakeServer()
	srv.passwords["alice@example.com"] = "pw"
	clock := newStepClock()
	core, err := NewCore(Config{SendLimit: limit}, Options{Store: testStore(t), Log: zerolog.Nop(), Clock: clock, dial: srv.dial})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_ = core.Stop(sctx)
	})
	if err = core.Start(ctx); err != nil {
		t.Fatal(err)
	}
	acc, err := core.Login(ctx, matrixUser, "alice@example.com", "pw")
	if err != nil {
		t.Fatal(err)
	}
	return &rateEnv{core: core, srv: srv, clock: clock, acc: acc}
}

func (e *rateEnv) sent() []string {
	e.srv.mu.Lock()
	defer e.srv.mu.Unlock()
	return slices.Clone(e.srv.sent)
}

// waitUntil polls cond for up to 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 2000; i++ {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// A frontend user who pushes 1,000 messages at once into one account: MSN gets the burst, then
// one message per interval in the order they were written, never faster; those beyond the
// queue fail at once as rate_limited, and every one of the 1,000 is either delivered or
// reported.
func TestSendRateQueuesInOrderAndReportsOverflow(t *testing.T) {
	const (
		total    = 1000
		burst    = 5
		queue    = 100
		interval = 100 * time.Millisecond
	)
	e := newRateEnv(t, SendLimitConfig{Rate: 10, Burst: burst, QueueSize: queue})
	chat := DirectChat("bob@example.com")
	results := make([]chan error, total)
	for i := range results {
		results[i] = make(chan error, 1)
		sleeping := e.clock.sleeping()
		go func() {
			_, err := e.acc.SendText(context.Background(), "matrix", chat, fmt.Sprintf("m%d", i), Format{})
			results[i] <- err
		}()
		// Each send either ends at once or takes its place in the queue before the next is
		// written, so the order of writing is known.
		waitUntil(t, fmt.Sprintf("send %d to end or queue", i), func() bool {
			return len(results[i]) == 1 || e.clock.sleeping() == sleeping+1
		})
	}
	want := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("bob@example.com: m%d", i)
		}
		return out
	}
	if got := e.sent(); !slices.Equal(got, want(burst)) {
		t.Fatalf("MSN got %d messages before any time passed, want the burst of %d: %q…", len(got), burst, got[:min(len(got), burst+2)])
	}
	if n := e.clock.sleeping(); n != queue {
		t.Fatalf("%d sends wait, want the queue of %d", n, queue)
	}
	for i := burst + queue; i < total; i++ {
		err := <-results[i]
		var se *SendError
		if !errors.As(err, &se) || se.Reason != FailureRateLimited || !errors.Is(err, ErrRateLimited) {
			t.Fatalf("send %d beyond the queue: %v, want a rate_limited SendError", i, err)
		}
	}
	for k := 1; k <= queue; k++ {
		e.clock.advance(interval)
		waitUntil(t, fmt.Sprintf("message %d", burst+k-1), func() bool { return len(e.sent()) >= burst+k })
		if got := e.sent(); !slices.Equal(got, want(burst+k)) {
			t.Fatalf("after %d intervals MSN got %d messages, want %d in order: %q", k, len(got), burst+k, got[max(0, len(got)-3):])
		}
	}
	for i := 0; i < burst+queue; i++ {
		if err := <-results[i]; err != nil {
			t.Errorf("send %d: %v, want delivered", i, err)
		}
	}
}

// Nudges count heavier than messages, and typing notifications are dropped, not queued, while
// sends wait their turn.
func TestSendRateNudgeCostAndTypingDropped(t *testing.T) {
	e := newRateEnv(t, SendLimitConfig{Rate: 10, Burst: 4, QueueSize: 10, NudgeCost: 3})
	ctx := context.Background()
	chat := DirectChat("bob@example.com")
	if err := e.acc.SendNudge(ctx, "matrix", chat); err != nil {
		t.Fatal(err)
	}
	// 3 of the burst of 4 are gone: the second nudge waits for two more intervals.
	done := make(chan error, 1)
	go func() { done <- e.acc.SendNudge(ctx, "matrix", chat) }()
	waitUntil(t, "the second nudge to wait", func() bool { return e.clock.sleeping() == 1 })
	for i := 0; i < 20; i++ {
		if err := e.acc.SendTyping(ctx, chat); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.sent(); !slices.Equal(got, []string{"bob@example.com: (nudge)"}) {
		t.Fatalf("MSN got %q while the second nudge waits, want the first nudge alone", got)
	}
	e.clock.advance(100 * time.Millisecond)
	if got := e.sent(); len(got) != 1 {
		t.Fatalf("the second nudge went after one interval: %q", got)
	}
	e.clock.advance(100 * time.Millisecond)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := e.sent(); !slices.Equal(got, []string{"bob@example.com: (nudge)", "bob@example.com: (nudge)"}) {
		t.Fatalf("MSN got %q, want two nudges and no typing", got)
	}
}
