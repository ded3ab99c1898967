//go:build race

package politeness

import "time"

// clockTick is the real time per millisecond of the core's clock. The race detector slows
// every goroutine several times over, so the core's clock runs slower still: a goroutine the
// limiter let through must reach the server before the clock moves on by much.
const clockTick = 8 * time.Millisecond
