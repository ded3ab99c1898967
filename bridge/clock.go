package bridge

import (
	"context"
	"time"
)

// Clock is the time source of the core's timers (rate limiter, backoff, coalescing). Tests
// substitute a fake; production uses SystemClock.
type Clock interface {
	Now() time.Time
	// SleepUntil blocks until t or until ctx is done, returning ctx.Err() in the latter case.
	SleepUntil(ctx context.Context, t time.Time) error
	// AfterFunc calls f in its own goroutine after d; the returned function cancels it and
	// reports whether it stopped f from running.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// SystemClock is the wall clock.
type SystemClock struct{}

var _ Clock = SystemClock{}

func (SystemClock) Now() time.Time { return time.Now() }

func (SystemClock) SleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (SystemClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}
