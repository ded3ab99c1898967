package scale

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/msn-bridge/msn-bridge/bridge"
	"github.com/msn-bridge/msn-bridge/internal/testenv/pgtest"
	"github.com/msn-bridge/msn-bridge/msn"
)

const contactsPerAccount = 100

// latencyFrontend is a frontend named "matrix" attached to every account. It stands where the
// Matrix glue's HandleEvent is (the glue itself needs a fake MatrixConnector that is not
// importable from here), and measures, for each message from a contact, the bridge's share:
// from the msn client parsing the MSG (Message.Time, taken by the client when it read it) to
// HandleEvent.
type latencyFrontend struct {
	mu       sync.Mutex
	inbound  []time.Duration
	messages atomic.Int64
	events   atomic.Int64
}

func (f *latencyFrontend) Name() string { return "matrix" }

func (f *latencyFrontend) HandleEvent(_ context.Context, _ *bridge.Account, evt bridge.Event) error {
	f.events.Add(1)
	if m, ok := evt.(bridge.Message); ok && !m.FromMe && strings.HasPrefix(m.Text, "lat ") {
		d := time.Since(m.Time)
		f.messages.Add(1)
		f.mu.Lock()
		f.inbound = append(f.inbound, d)
		f.mu.Unlock()
	}
	return nil
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func userHandle(i int) string { return fmt.Sprintf("s%05d@example.com", i) }
func botHandle(i int) string  { return fmt.Sprintf("b%04d@example.com", i) }

// rssBytes returns VmRSS from /proc/self/status (0 when unavailable).
func rssBytes() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

type memSample struct {
	rss, heap  uint64
	goroutines int
}

func sample() memSample {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSample{rss: rssBytes(), heap: ms.HeapAlloc, goroutines: runtime.NumGoroutine()}
}

func (m memSample) String() string {
	return fmt.Sprintf("RSS %.1f MiB, heap %.1f MiB, %d goroutines", float64(m.rss)/(1<<20), float64(m.heap)/(1<<20), m.goroutines)
}

// raiseFileLimit lifts the open-files limit to want (each account holds a client and a server
// socket, plus switchboards): the hard limit too when the process may, else the soft limit to
// the hard one. It returns the soft limit in force.
func raiseFileLimit(t *testing.T, want uint64) uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Logf("getrlimit: %v", err)
		return 0
	}
	if lim.Cur >= want {
		return lim.Cur
	}
	if lim.Max < want {
		raised := syscall.Rlimit{Cur: want, Max: want}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err == nil {
			return want
		}
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Logf("setrlimit: %v", err)
		}
	}
	return lim.Cur
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[min(len(ds)-1, int(p*float64(len(ds))))]
}

// TestScale logs N accounts with 100 contacts each in, then relays messages at a fixed rate both
// ways over a set of chats, and reports memory, goroutines, login time and the bridge's share
// of the relay latency. It asserts only counts: every account online, every message relayed.
func TestScale(t *testing.T) {
	n, rate, seconds := 200, 200, 5
	if os.Getenv("MSN_SCALE") == "1" {
		n, rate, seconds = 10000, 1000, 10
	}
	n = envInt("SCALE_ACCOUNTS", n)
	rate = envInt("SCALE_RATE", rate)
	seconds = envInt("SCALE_SECONDS", seconds)
	pool := max(contactsPerAccount, n/10)
	// This process holds one notification-server socket per account and one switchboard socket
	// per chat (up to 1,000), plus the database and the child's pipes.
	need := uint64(n + 2*min(n, 1000) + 1000)
	nofile := raiseFileLimit(t, need)
	if nofile > 0 && nofile < need {
		t.Skipf("open-files limit %d is below the %d this size needs", nofile, need)
	}

	base := sample()
	srv := startServer(t, n, pool)
	withServer := sample()

	ctx := context.Background()
	db := pgtest.Open(t, pgtest.SQLiteDriver, pgtest.SQLiteDSN(t))
	cipher, err := bridge.NewCipher(make([]byte, bridge.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel)
	store := bridge.NewStore(db, cipher, log)
	if err = store.Upgrade(ctx); err != nil {
		t.Fatal(err)
	}
	owner := bridge.FrontendUser{Frontend: "matrix", UserID: "@owner:test"}
	for i := range n {
		rec := &bridge.AccountRecord{Handle: userHandle(i), DesiredStatus: bridge.StatusOnline, LoggedIn: true}
		if err = store.SaveLogin(ctx, rec, "pw", owner); err != nil {
			t.Fatal(err)
		}
	}
	core, err := bridge.NewCore(bridge.Config{
		MSN: msn.Config{Server: srv.nsAddr, LoginURL: srv.loginURL, PingInterval: time.Hour,
			DialTimeout: 10 * time.Second, RequestTimeout: 60 * time.Second, JoinTimeout: 30 * time.Second, AckTimeout: 30 * time.Second},
		LoginRate:  5000,
		LoginBurst: 100,
	}, bridge.Options{Store: store, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	fe := &latencyFrontend{}
	core.AddFrontend(fe)
	start := time.Now()
	if err = core.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		_ = core.Stop(sctx)
	})
	waitFor(t, "every account online", 10*time.Minute, func() bool {
		online := 0
		for _, a := range core.Accounts() {
			if a.State().State == bridge.StateOnline && len(a.Contacts()) == contactsPerAccount {
				online++
			}
		}
		return online == n
	})
	loginTook := time.Since(start)
	time.Sleep(time.Second) // let the presence burst of the logins settle
	idle := sample()
	if path := os.Getenv("SCALE_HEAPPROFILE"); path != "" {
		writeHeapProfile(t, path)
	}

	// Chats: up to 1,000 (account, contact) pairs, warmed up with one message each way so the
	// measured messages use open switboards, as in a conversation.
	pairs := min(n, 1000)
	chatOf := func(i int) (*bridge.Account, string) {
		return core.Account(userHandle(i)), botHandle(contactOf(i, 0, pool))
	}
	for i := range pairs {
		acc, bot := chatOf(i)
		srv.say(bot, acc.Handle(), "warm")
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		if _, err := acc.SendText(sctx, "matrix", bridge.DirectChat(bot), "warm", bridge.Format{}); err != nil {
			t.Fatalf("warm-up send: %v", err)
		}
		cancel()
	}

	// Traffic: rate messages per second, alternating directions, for seconds.
	total := rate * seconds
	sentAt := make(map[string]time.Time, total/2)
	var sends sync.WaitGroup
	var sendFailures atomic.Int64
	interval := time.Second / time.Duration(rate)
	tick := time.NewTicker(interval)
	trafficStart := time.Now()
	for k := range total {
		<-tick.C
		acc, bot := chatOf(k / 2 % pairs)
		text := fmt.Sprintf("lat %d", k)
		if k%2 == 0 {
			srv.say(bot, acc.Handle(), text)
			continue
		}
		sentAt[text] = time.Now()
		sends.Add(1)
		go func() {
			defer sends.Done()
			sctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			if _, err := acc.SendText(sctx, "matrix", bridge.DirectChat(bot), text, bridge.Format{}); err != nil {
				sendFailures.Add(1)
			}
		}()
	}
	tick.Stop()
	trafficTook := time.Since(trafficStart)
	sends.Wait()
	inboundWant := int64((total + 1) / 2)
	waitFor(t, "every message relayed", 2*time.Minute, func() bool {
		got := 0
		for text := range sentAt {
			if _, ok := srv.received(text); ok {
				got++
			}
		}
		return fe.messages.Load() == inboundWant && int64(got)+sendFailures.Load() == int64(len(sentAt)) || len(srv.errors()) > 0
	})
	if errs := srv.errors(); len(errs) > 0 {
		t.Fatalf("BotSay failed: %v", errs[0])
	}
	after := sample()

	fe.mu.Lock()
	in := append([]time.Duration(nil), fe.inbound...)
	fe.mu.Unlock()
	var out []time.Duration
	for text, at := range sentAt {
		if got, ok := srv.received(text); ok {
			out = append(out, got.Sub(at))
		}
	}

	perAccount := func(s memSample) float64 { return float64(s.heap-withServer.heap) / float64(n) / 1024 }
	t.Logf("scale: %d accounts × %d contacts (%d bot contacts in msntest, in its own process), GOMAXPROCS %d", n, contactsPerAccount, pool, runtime.GOMAXPROCS(0))
	t.Logf("before:           %s", base)
	t.Logf("all logged in:    %s in %s (%.0f logins/s)", idle, loginTook.Round(10*time.Millisecond), float64(n)/loginTook.Seconds())
	t.Logf("idle per account: %.1f KiB heap (msn client + core account + frontend queue), %.2f goroutines",
		perAccount(idle), float64(idle.goroutines-withServer.goroutines)/float64(n))
	t.Logf("traffic:          %d messages in %s (%.0f msg/s offered), %d send failures",
		total, trafficTook.Round(10*time.Millisecond), float64(total)/trafficTook.Seconds(), sendFailures.Load())
	t.Logf("MSN → frontend, bridge share (client parsed MSG → HandleEvent): p50 %s, p99 %s, max %s (%d messages)",
		percentile(in, 0.5), percentile(in, 0.99), percentile(in, 1), len(in))
	t.Logf("frontend → MSN (SendText called → contact received it in msntest's process, an upper bound of the bridge share): p50 %s, p99 %s, max %s (%d messages)",
		percentile(out, 0.5), percentile(out, 0.99), percentile(out, 1), len(out))
	t.Logf("after traffic:    %s; %.1f KiB heap per account", after, perAccount(after))
	if sendFailures.Load() > 0 {
		t.Errorf("%d sends failed", sendFailures.Load())
	}
}

// writeHeapProfile writes a heap profile (after a GC, so in-use figures are live memory) to path,
// for go tool pprof -top -inuse_space.
func writeHeapProfile(t *testing.T, path string) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, max time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(max)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
