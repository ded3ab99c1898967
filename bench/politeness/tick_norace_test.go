//go:build !race

package politeness

import "time"

// clockTick is the real time per millisecond of the core's clock: the core runs at a quarter
// of real speed, so a goroutine the limiter let through reaches the server before the clock
// moves on by much.
const clockTick = 4 * time.Millisecond
