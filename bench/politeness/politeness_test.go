package politeness

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/msn-bridge/msn-bridge/bridge"
	"github.com/msn-bridge/msn-bridge/internal/testenv/pgtest"
	"github.com/msn-bridge/msn-bridge/msn"
	"github.com/msn-bridge/msn-bridge/msn/msntest"
)

const (
	loginRate  = 200
	loginBurst = 10
	// reconnectCeiling is the backoff ceiling of the first reconnect: with full jitter each
	// account waits uniformly in [0, reconnectCeiling).
	reconnectCeiling = 4 * time.Second
)

// stateRecorder is a frontend that keeps every account's Reconnecting states.
type stateRecorder struct {
	mu           sync.Mutex
	reconnecting map[string][]bridge.AccountState
	online       map[string]int
}

func (r *stateRecorder) Name() string { return "rec" }

func (r *stateRecorder) HandleEvent(_ context.Context, acc *bridge.Account, evt bridge.Event) error {
	st, ok := evt.(bridge.AccountState)
	if !ok {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch st.State {
	case bridge.StateReconnecting:
		r.reconnecting[acc.Handle()] = append(r.reconnecting[acc.Handle()], st)
	case bridge.StateOnline:
		r.online[acc.Handle()]++
	}
	return nil
}

func (r *stateRecorder) count(f func(map[string]int) int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return f(r.online)
}

func handle(i int) string { return fmt.Sprintf("p%04d@example.com", i) }

// TestPoliteness stores 1,000 logged-in accounts, starts a core (which logs them all back in),
// then ends every session with OUT SSD. It checks, on the server's side, that no 1 s window
// holds more than rate + burst login attempts (connections to the notification server, stamped
// by a loopback proxy's accept loop, the closest point to the client's dial; the server's own
// command log is printed too, but its timestamps wait for the server's per-connection goroutines,
// which a loaded machine delays unevenly),
// and that the reconnect delays the core chose are spread (jitter), not one value.
func TestPoliteness(t *testing.T) {
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("POLITENESS_ACCOUNTS")); err == nil && v > 0 {
		n = v
	}
	specs := make([]msntest.AccountSpec, n)
	for i := range specs {
		specs[i] = msntest.AccountSpec{Handle: handle(i), Password: "pw", Name: "P"}
	}
	srv := msntest.New(msntest.Options{Accounts: specs, EventLimit: 50 * n})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)

	clock := newStepClock()
	clockCtx, stopClock := context.WithCancel(context.Background())
	var clockDone sync.WaitGroup
	clockDone.Add(1)
	go func() { defer clockDone.Done(); clock.drive(clockCtx, time.Millisecond, clockTick) }()
	t.Cleanup(func() { stopClock(); clockDone.Wait() })
	proxy := newAcceptLog(t, srv.NSAddr(), clock)

	ctx := context.Background()
	db := pgtest.Open(t, pgtest.SQLiteDriver, pgtest.SQLiteDSN(t))
	key := make([]byte, bridge.KeySize)
	cipher, err := bridge.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel)
	store := bridge.NewStore(db, cipher, log)
	if err = store.Upgrade(ctx); err != nil {
		t.Fatal(err)
	}
	owner := bridge.FrontendUser{Frontend: "rec", UserID: "owner"}
	for i := range n {
		rec := &bridge.AccountRecord{Handle: handle(i), DesiredStatus: bridge.StatusOnline, LoggedIn: true}
		if err = store.SaveLogin(ctx, rec, "pw", owner); err != nil {
			t.Fatal(err)
		}
	}

	core, err := bridge.NewCore(bridge.Config{
		MSN: msn.Config{Server: proxy.addr(), LoginURL: srv.LoginURL(), AllowInsecurePassport: true, PingInterval: time.Hour,
			DialTimeout: 5 * time.Second, RequestTimeout: 20 * time.Second},
		LoginRate:  loginRate,
		LoginBurst: loginBurst,
		Reconnect:  bridge.ReconnectConfig{Initial: reconnectCeiling, Max: reconnectCeiling},
	}, bridge.Options{Store: store, Log: log, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	rec := &stateRecorder{reconnecting: map[string][]bridge.AccountState{}, online: map[string]int{}}
	core.AddFrontend(rec)
	start, clockStart := time.Now(), clock.Now()
	if err = core.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = core.Stop(sctx)
	})
	allOnline := func(times int) func() bool {
		return func() bool {
			return rec.count(func(m map[string]int) int {
				k := 0
				for _, c := range m {
					if c >= times {
						k++
					}
				}
				return k
			}) == n
		}
	}
	waitFor(t, "every account online", 5*time.Minute, allOnline(1))
	restartTook, restartWall := clock.Now().Sub(clockStart), time.Since(start)

	ssd, clockSSD := time.Now(), clock.Now()
	if got := srv.Shutdown(""); got != n {
		t.Fatalf("OUT SSD ended %d sessions, want %d", got, n)
	}
	waitFor(t, "every account back online", 5*time.Minute, allOnline(2))
	stormTook, stormWall := clock.Now().Sub(clockSSD), time.Since(ssd)

	attempts, realAttempts := proxy.times()
	if len(attempts) < 2*n {
		t.Fatalf("server saw %d connections, want at least %d", len(attempts), 2*n)
	}
	worst, worstAt := maxPerWindow(attempts, time.Second)
	worstReal, _ := maxPerWindow(realAttempts, time.Second)
	vers := loginAttempts(srv)
	worstVER, _ := maxPerWindow(vers, time.Second)
	limit := loginRate + loginBurst

	// The delay each account was given after OUT SSD: NextAttempt of its first Reconnecting
	// state after the shutdown, from the moment of the shutdown.
	rec.mu.Lock()
	var delays []time.Duration
	for _, sts := range rec.reconnecting {
		for _, st := range sts {
			if !st.NextAttempt.Before(clockSSD) {
				delays = append(delays, st.NextAttempt.Sub(clockSSD))
				break
			}
		}
	}
	rec.mu.Unlock()
	sort.Slice(delays, func(i, j int) bool { return delays[i] < delays[j] })
	buckets := map[time.Duration]bool{}
	for _, d := range delays {
		buckets[d.Truncate(100*time.Millisecond)] = true
	}

	t.Logf("politeness: %d stored accounts, login_rate %d/s, burst %d, reconnect ceiling %s", n, loginRate, loginBurst, reconnectCeiling)
	t.Logf("restart: all %d online after %s on the core clock (%s wall); OUT SSD to all: all back after %s (%s wall)", n,
		restartTook.Round(10*time.Millisecond), restartWall.Round(10*time.Millisecond), stormTook.Round(10*time.Millisecond), stormWall.Round(10*time.Millisecond))
	t.Logf("login attempts (connections accepted, core clock): %d; most in any 1 s window: %d (at %s), allowed rate + burst = %d",
		len(attempts), worst, worstAt.Sub(clockStart).Round(time.Millisecond), limit)
	t.Logf("the same in wall-clock time: most in any 1 s window %d at accept, %d by the server's command log (VER): both include the machine's scheduling delays",
		worstReal, worstVER)
	if len(delays) > 0 {
		t.Logf("reconnect delays after OUT SSD: %d accounts, min %s, p50 %s, max %s, %d distinct 100 ms buckets of %d",
			len(delays), delays[0].Round(time.Millisecond), delays[len(delays)/2].Round(time.Millisecond),
			delays[len(delays)-1].Round(time.Millisecond), len(buckets), reconnectCeiling/(100*time.Millisecond))
	}

	if worst > limit {
		t.Errorf("%d login attempts in one 1 s window, want at most rate + burst = %d", worst, limit)
	}
	if len(delays) != n {
		t.Errorf("%d accounts reported a reconnect delay after OUT SSD, want %d", len(delays), n)
	}
	// Without jitter every delay would be the same ceiling; full jitter spreads them uniformly
	// over 40 buckets, so with 1,000 accounts nearly all buckets are hit.
	if want := int(reconnectCeiling/(100*time.Millisecond)) / 2; len(buckets) < want {
		t.Errorf("reconnect delays fall in %d distinct 100 ms buckets, want at least %d (jitter)", len(buckets), want)
	}
}

// loginAttempts returns the times at which the server received the first command (VER) of a
// notification-server connection, one per login attempt, sorted. VER is the closest the server
// sees to the moment the client was let through the rate limiter (the dial).
func loginAttempts(srv *msntest.Server) []time.Time {
	var out []time.Time
	for _, ev := range srv.Events() {
		if ev.Server == "NS" && ev.Name == "VER" {
			out = append(out, ev.Time)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return out
}

// maxPerWindow returns the largest number of times within any window [t, t+w) and its start.
func maxPerWindow(times []time.Time, w time.Duration) (int, time.Time) {
	best, at := 0, time.Time{}
	j := 0
	for i := range times {
		for j < len(times) && times[j].Sub(times[i]) < w {
			j++
		}
		if j-i > best {
			best, at = j-i, times[i]
		}
	}
	return best, at
}

func waitFor(t *testing.T, what string, max time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(max)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// acceptLog is a loopback TCP proxy in front of the notification server that records when each
// connection was accepted.
type acceptLog struct {
	ln     net.Listener
	clock  bridge.Clock
	mu     sync.Mutex
	at     []time.Time // on clock
	atReal []time.Time
}

func newAcceptLog(t *testing.T, target string, clock bridge.Clock) *acceptLog {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &acceptLog{ln: ln, clock: clock}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.at = append(p.at, clock.Now())
			p.atReal = append(p.atReal, time.Now())
			p.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				pipe(c, target)
			}()
		}
	}()
	return p
}

// pipe copies between c and a new connection to target until either side closes.
func pipe(c net.Conn, target string) {
	defer c.Close()
	up, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(up, c)
		_ = up.Close()
		close(done)
	}()
	_, _ = io.Copy(c, up)
	_ = c.Close()
	<-done
}

func (p *acceptLog) addr() string { return p.ln.Addr().String() }

// times returns the accept times on the clock and on the wall clock, each sorted.
func (p *acceptLog) times() (clock, wall []time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	clock, wall = append([]time.Time(nil), p.at...), append([]time.Time(nil), p.atReal...)
	sort.Slice(clock, func(i, j int) bool { return clock[i].Before(clock[j]) })
	sort.Slice(wall, func(i, j int) bool { return wall[i].Before(wall[j]) })
	return clock, wall
}
