package scale

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"runtime/trace"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"

	"github.com/msn-bridge/msn-bridge/bridge"
	"github.com/msn-bridge/msn-bridge/internal/testenv/pgtest"
	"github.com/msn-bridge/msn-bridge/matrix"
	"github.com/msn-bridge/msn-bridge/msn"
)

const contactsPerAccount = 100

// tapFrontend is a second frontend attached to the accounts of the measured chats. It measures
// the core's own share of a contact's message, which ends where a frontend is handed the event:
// from the msn client parsing the MSG (Message.Time) to HandleEvent.
type tapFrontend struct {
	mu      sync.Mutex
	inbound []time.Duration
}

func (f *tapFrontend) Name() string { return "tap" }

func (f *tapFrontend) HandleEvent(_ context.Context, _ *bridge.Account, evt bridge.Event) error {
	if m, ok := evt.(bridge.Message); ok && !m.FromMe && strings.HasPrefix(m.Text, "lat ") {
		d := time.Since(m.Time)
		f.mu.Lock()
		f.inbound = append(f.inbound, d)
		f.mu.Unlock()
	}
	return nil
}

// cpuTime is the CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuTicks are the machine's CPU time counters from /proc/stat ("cpu" line): all of them
// summed, and steal, the time the hypervisor ran something else while this machine's virtual
// CPUs wanted to run. Both are 0 when /proc cannot tell.
func cpuTicks() (total, steal uint64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line)
	if len(fields) < 9 || fields[0] != "cpu" {
		return 0, 0
	}
	// user, nice, system, idle, iowait, irq, softirq, steal; guest time is in user already.
	for _, f := range fields[1:9] {
		v, _ := strconv.ParseUint(f, 10, 64)
		total += v
		steal = v // the last one read is steal
	}
	return total, steal
}

// stealShare is the share of the machine's CPU time the hypervisor took between two cpuTicks
// readings (0 when unknown).
func stealShare(total0, steal0, total1, steal1 uint64) float64 {
	if total1 <= total0 {
		return 0
	}
	return float64(steal1-steal0) / float64(total1-total0)
}

// wakeProbe measures how late this process runs a goroutine that is due to wake: one goroutine
// sleeps 1 ms over and over and records by how much each sleep overran. On a virtual machine
// whose idle CPUs halt, most of it is the hypervisor's delay in running a halted virtual CPU
// again, and every hand-off on the message path (the msn reader, the frontend's delivery,
// bridgev2's portal loop, the homeserver's handler) can pay the same delay.
type wakeProbe struct {
	stop, done chan struct{}
	late       []time.Duration
}

func startWakeProbe() *wakeProbe {
	p := &wakeProbe{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			select {
			case <-p.stop:
				return
			default:
			}
			start := time.Now()
			time.Sleep(time.Millisecond)
			p.late = append(p.late, time.Since(start)-time.Millisecond)
		}
	}()
	return p
}

// finish stops the probe and returns the overrun of every sleep.
func (p *wakeProbe) finish() []time.Duration {
	close(p.stop)
	<-p.done
	return p.late
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
	ms         runtime.MemStats
}

func sample() memSample {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSample{rss: rssBytes(), heap: ms.HeapAlloc, goroutines: runtime.NumGoroutine(), ms: ms}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func (m memSample) String() string {
	return fmt.Sprintf("RSS %.1f MiB, heap %.1f MiB, %d goroutines", mib(m.rss), mib(m.heap), m.goroutines)
}

// detail is where the runtime's memory is: live heap, heap spans kept but not live, stacks,
// the runtime's own structures, and what was returned to the OS.
func (m memSample) detail() string {
	return fmt.Sprintf("heap in use %.1f MiB (live %.1f), heap idle not released %.1f MiB, stacks %.1f MiB, runtime other %.1f MiB, released %.1f MiB, sys %.1f MiB",
		mib(m.ms.HeapInuse), mib(m.ms.HeapAlloc), mib(m.ms.HeapIdle-m.ms.HeapReleased), mib(m.ms.StackInuse),
		mib(m.ms.MSpanInuse+m.ms.MCacheInuse+m.ms.BuckHashSys+m.ms.GCSys+m.ms.OtherSys), mib(m.ms.HeapReleased), mib(m.ms.Sys))
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

// TestScale logs N accounts with 100 contacts each in, with the Matrix frontend attached to
// every one, then relays messages at a fixed rate both ways over a set of chats, and reports
// memory, goroutines, login time and the bridge's share of the relay latency. It asserts only
// counts: every account online, every message relayed, no login shown an error on Matrix.
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
	// The bridge's pool (database.max_open_conns in config.example.yaml; for SQLite the bridge
	// keeps as many idle, see cmd/bridge's DatabaseConfig): every SQLite connection has its own
	// page cache, outside the Go heap.
	dbPool := readExample(t).Database
	conns := envInt("SCALE_DBCONNS", dbPool.MaxOpenConns)
	db.RawDB.SetMaxOpenConns(conns)
	db.RawDB.SetMaxIdleConns(max(conns, dbPool.MaxIdleConns))
	cipher, err := bridge.NewCipher(make([]byte, bridge.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel)
	store := bridge.NewStore(db, cipher, log)
	if err = store.Upgrade(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		rec := &bridge.AccountRecord{Handle: userHandle(i), DesiredStatus: bridge.StatusOnline, LoggedIn: true}
		owner := bridge.FrontendUser{Frontend: matrix.FrontendName, UserID: string(mxUserOf(i))}
		if err = store.SaveLogin(ctx, rec, "pw", owner); err != nil {
			t.Fatal(err)
		}
	}
	provisionMatrix(ctx, t, db, n)
	stored := sample()

	core, err := bridge.NewCore(bridge.Config{
		MSN: msn.Config{Server: srv.nsAddr, LoginURL: srv.loginURL, AllowInsecurePassport: true,
			DialTimeout: 10 * time.Second, RequestTimeout: 60 * time.Second, JoinTimeout: 30 * time.Second, AckTimeout: 30 * time.Second},
		LoginRate:  5000,
		LoginBurst: 100,
	}, bridge.Options{Store: store, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	// As the bridge starts: the stored accounts loaded, the frontend (it connects the stored
	// logins to them), then the logins.
	start := time.Now()
	if err = core.Load(ctx); err != nil {
		t.Fatal(err)
	}
	mx := startMatrix(ctx, t, core, db, log)
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
			st := a.State()
			if st.State == bridge.StateStopped {
				t.Fatalf("account %s stopped: %s %v", a.Handle(), st.Reason, st.Err)
			}
			if st.State == bridge.StateOnline && len(a.Contacts()) == contactsPerAccount {
				online++
			}
		}
		return online == n
	})
	loginTook := time.Since(start)
	// Idle once the frontend has shown what the logins brought (every contact list and the
	// presence that followed): the core's deliveries run only while they have events, so the
	// goroutine count then stops changing.
	settled := waitSettled(t, 5*time.Minute)
	idle := sample()
	if path := os.Getenv("SCALE_HEAPPROFILE"); path != "" {
		writeHeapProfile(t, path)
	}

	// Chats: up to 1,000 (account, contact) pairs, warmed up with one message each way so the
	// measured messages use open switchboards and existing portals, as in a conversation.
	pairs := min(n, 1000)
	chatOf := func(i int) (*bridge.Account, string) {
		return core.Account(userHandle(i)), botHandle(contactOf(i, 0, pool))
	}
	for i := range pairs {
		acc, bot := chatOf(i)
		srv.say(bot, acc.Handle(), "warm")
	}
	rooms := make([]id.RoomID, pairs)
	waitFor(t, "a portal for every chat", 5*time.Minute, func() bool {
		for i := range pairs {
			if rooms[i] == "" {
				_, bot := chatOf(i)
				if rooms[i] = mx.room(ctx, i, bot); rooms[i] == "" {
					return false
				}
			}
		}
		return true
	})
	// Then one more message each way: bridgev2 looks a portal's membership of the login up
	// again after it made the room, once.
	for i := range pairs {
		acc, bot := chatOf(i)
		srv.say(bot, acc.Handle(), "warm again")
		mx.send(i, rooms[i], fmt.Sprintf("warm %d", i))
	}
	waitFor(t, "the warm-up messages relayed", 5*time.Minute, func() bool {
		got, _ := mx.inbound("warm again")
		ok, failed := mx.outcomes("warm ")
		return got == pairs && ok+len(failed) == pairs
	})
	if _, failed := mx.outcomes("warm "); len(failed) > 0 {
		t.Fatalf("%d warm-up sends failed, first %q", len(failed), failed[0])
	}

	tap := &tapFrontend{}
	for i := range pairs {
		acc, _ := chatOf(i)
		acc.Attach(tap)
	}

	// Traffic: rate messages per second, alternating directions, for seconds.
	cpuBefore, serverCPUBefore := cpuTime(), srv.cpuTime()
	ticks0, steal0 := cpuTicks()
	pool0 := db.RawDB.Stats()
	total := rate * seconds
	sentAt := make(map[string]time.Time, total/2)
	interval := time.Second / time.Duration(rate)
	if path := os.Getenv("SCALE_HEAPPROFILE"); path != "" {
		// With this one as -base, what the traffic allocated (-sample_index=alloc_space). It
		// collects first, so the traffic starts on a fresh heap when profiling.
		writeHeapProfile(t, path+".before")
	}
	var mem0, mem1 runtime.MemStats
	runtime.ReadMemStats(&mem0)
	trafficStart := time.Now()
	stopProfiles := startTrafficProfiles(t)
	probe := startWakeProbe()
	for k := range total {
		// Message k is due at k intervals from the start: a loop that fell behind (a ticker
		// drops the ticks it missed) catches up, so the rate offered is the rate asked for.
		if d := time.Until(trafficStart.Add(time.Duration(k) * interval)); d > 0 {
			time.Sleep(d)
		}
		i := k / 2 % pairs
		acc, bot := chatOf(i)
		text := fmt.Sprintf("lat %d", k)
		if k%2 == 0 {
			srv.say(bot, acc.Handle(), text)
			continue
		}
		sentAt[text] = time.Now()
		mx.send(i, rooms[i], text)
	}
	stopProfiles()
	wakeLate := probe.finish()
	trafficTook := time.Since(trafficStart)
	cpuTraffic, serverCPU := cpuTime()-cpuBefore, srv.cpuTime()-serverCPUBefore
	ticks1, steal1 := cpuTicks()
	pool1 := db.RawDB.Stats()
	inboundWant := (total + 1) / 2
	waitFor(t, "every message relayed", 2*time.Minute, func() bool {
		got, _ := mx.inbound("lat ")
		ok, failed := mx.outcomes("lat ")
		received := 0
		for text := range sentAt {
			if _, ok := srv.received(text); ok {
				received++
			}
		}
		return got == inboundWant && ok+len(failed) == len(sentAt) && received+len(failed) == len(sentAt) || len(srv.errors()) > 0
	})
	runtime.ReadMemStats(&mem1)
	if errs := srv.errors(); len(errs) > 0 {
		t.Fatalf("BotSay failed: %v", errs[0])
	}
	after := sample()
	if path := os.Getenv("SCALE_HEAPPROFILE"); path != "" {
		writeHeapProfile(t, path+".after")
	}
	// After the traffic, so that the collections it forces do not move the traffic's own.
	afterGC := measureCollections(t, os.Getenv("SCALE_GCPROFILE"))

	_, in := mx.inbound("lat ")
	if path := os.Getenv("SCALE_LATDUMP"); path != "" {
		mx.dumpInbound(t, path, "lat ")
	}
	_, failed := mx.outcomes("lat ")
	var out []time.Duration
	for text, at := range sentAt {
		if got, ok := srv.received(text); ok {
			out = append(out, got.Sub(at))
		}
	}

	perAccount := func(s memSample) float64 { return float64(s.heap-withServer.heap) / float64(n) / 1024 }
	t.Logf("scale: %d accounts × %d contacts (%d bot contacts in msntest, in its own process), Matrix frontend on matrixtest, GOMAXPROCS %d, GOMEMLIMIT %s",
		n, contactsPerAccount, pool, runtime.GOMAXPROCS(0), memLimit())
	t.Logf("before:           %s", base)
	t.Logf("stored:           %s (core and bridgev2 rows of every account written)", stored)
	t.Logf("all logged in:    %s in %s (%.0f logins/s), idle %s later", idle, loginTook.Round(10*time.Millisecond), float64(n)/loginTook.Seconds(), settled.Round(100*time.Millisecond))
	t.Logf("idle memory:      %s", idle.detail())
	t.Logf("idle per account: %.1f KiB heap (msn client + core account + Matrix login), %.2f goroutines",
		perAccount(idle), float64(idle.goroutines-withServer.goroutines)/float64(n))
	t.Logf("traffic:          %d messages in %s (%.0f msg/s offered), %d sends reported failed",
		total, trafficTook.Round(10*time.Millisecond), float64(total)/trafficTook.Seconds(), len(failed))
	t.Logf("traffic CPU:       %.2f cores of this process (%s in %s), %.2f of msntest's; hypervisor steal %.1f%% of the machine's CPU time",
		cpuTraffic.Seconds()/trafficTook.Seconds(), cpuTraffic.Round(time.Millisecond), trafficTook.Round(10*time.Millisecond),
		serverCPU.Seconds()/trafficTook.Seconds(), 100*stealShare(ticks0, steal0, ticks1, steal1))
	// From the start of the traffic until the last message was relayed: the allocations set
	// how often the collector runs, and under the memory limit a collection in the traffic is
	// what the p99 pays (docs/reliability.md, "the contacts, packed").
	t.Logf("traffic memory:    %.1f KB and %.0f allocations per message (this process, everything it did meanwhile); %d collections",
		float64(mem1.TotalAlloc-mem0.TotalAlloc)/float64(total)/1000, float64(mem1.Mallocs-mem0.Mallocs)/float64(total), mem1.NumGC-mem0.NumGC)
	lateOver := 0
	for _, d := range wakeLate {
		if d > time.Millisecond {
			lateOver++
		}
	}
	t.Logf("wake-up lateness:  a goroutine sleeping 1 ms woke late by p50 %s, p99 %s, max %s; %d of %d sleeps more than 1 ms late",
		percentile(wakeLate, 0.5), percentile(wakeLate, 0.99), percentile(wakeLate, 1), lateOver, len(wakeLate))
	tap.mu.Lock()
	coreShare := append([]time.Duration(nil), tap.inbound...)
	tap.mu.Unlock()
	t.Logf("MSN → frontend, core share (client parsed MSG → a frontend's HandleEvent): p50 %s, p99 %s, max %s (%d messages)",
		percentile(coreShare, 0.5), percentile(coreShare, 0.99), percentile(coreShare, 1), len(coreShare))
	t.Logf("MSN → Matrix, bridge share (client parsed MSG → ghost's event reached the homeserver): p50 %s, p99 %s, max %s (%d messages)",
		percentile(in, 0.5), percentile(in, 0.99), percentile(in, 1), len(in))
	t.Logf("Matrix → MSN (event handed to bridgev2 → contact received it in msntest's process, an upper bound of the bridge share): p50 %s, p99 %s, max %s (%d messages)",
		percentile(out, 0.5), percentile(out, 0.99), percentile(out, 1), len(out))
	t.Logf("after traffic:    %s; %.1f KiB heap per account", after, perAccount(after))
	t.Logf("after traffic:    %s", after.detail())
	t.Logf("a collection:     %s", afterGC)
	t.Logf("database pool:    during the traffic %d connections closed as more than the idle limit (each reopened: its schema read and statements parsed again), %d waits for a connection (%s in all); %d open of %d after",
		pool1.MaxIdleClosed-pool0.MaxIdleClosed, pool1.WaitCount-pool0.WaitCount, (pool1.WaitDuration - pool0.WaitDuration).Round(time.Millisecond),
		pool1.OpenConnections, pool1.MaxOpenConnections)
	if len(failed) > 0 {
		t.Errorf("%d sends reported failed, first %q", len(failed), failed[0])
	}
	if bad := mx.badStates(); len(bad) > 0 {
		t.Errorf("%d logins were shown an error state on Matrix, first: %s", len(bad), bad[0])
	}
}

// startTrafficProfiles starts the CPU profile (SCALE_CPUPROFILE), the execution traces
// (SCALE_TRACE, its first 3 s; SCALE_GCTRACE, the seconds around its first collection) and the
// lock and blocking profiles (SCALE_MUTEXPROFILE) of the traffic; the returned func stops them.
func startTrafficProfiles(t *testing.T) (stop func()) {
	create := func(env string) *os.File {
		path := os.Getenv(env)
		if path == "" {
			return nil
		}
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	var stops []func()
	if f := create("SCALE_CPUPROFILE"); f != nil {
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
		stops = append(stops, func() { pprof.StopCPUProfile(); f.Close() })
	}
	if f := create("SCALE_TRACE"); f != nil {
		if err := trace.Start(f); err != nil {
			t.Fatal(err)
		}
		stopTrace := sync.OnceFunc(func() { trace.Stop(); f.Close() })
		time.AfterFunc(3*time.Second, stopTrace)
		stops = append(stops, stopTrace)
	}
	if path := os.Getenv("SCALE_GCTRACE"); path != "" {
		stops = append(stops, traceFirstCollection(t, path))
	}
	if path := os.Getenv("SCALE_MUTEXPROFILE"); path != "" {
		// Where goroutines waited on a lock (the .mutex file) or blocked at all (.block, events
		// of 100 µs and more) during the traffic.
		runtime.SetMutexProfileFraction(1)
		runtime.SetBlockProfileRate(int((100 * time.Microsecond).Nanoseconds()))
		stops = append(stops, func() {
			for _, name := range []string{"mutex", "block"} {
				f, err := os.Create(path + "." + name)
				if err != nil {
					t.Error(err)
					continue
				}
				if err = pprof.Lookup(name).WriteTo(f, 0); err != nil {
					t.Error(err)
				}
				f.Close()
			}
			runtime.SetMutexProfileFraction(0)
			runtime.SetBlockProfileRate(0)
		})
	}
	return func() {
		for _, stop := range stops {
			stop()
		}
	}
}

// measureCollections runs three collections once the traffic is over and says what one costs:
// its wall time (the two Ps mark as idle workers then, so the marking of a collection in the
// traffic, at a quarter of the CPU and what is idle, takes longer) and the collector's CPU.
// That is the part of the tail the heap's layout decides, with far less noise than the p99.
// With path set, a CPU profile of the three is written there.
func measureCollections(t *testing.T, path string) string {
	t.Helper()
	if path != "" {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	gcCPU := func() float64 {
		s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
		metrics.Read(s)
		return s[0].Value.Float64()
	}
	var walls, cpus []time.Duration
	for range 3 {
		cpu0, start := gcCPU(), time.Now()
		runtime.GC()
		walls = append(walls, time.Since(start))
		cpus = append(cpus, time.Duration((gcCPU()-cpu0)*float64(time.Second)))
	}
	return fmt.Sprintf("a forced collection takes %s (median of 3; %s–%s), %s of the collector's CPU",
		percentile(walls, 0.5).Round(time.Millisecond), percentile(walls, 0).Round(time.Millisecond),
		percentile(walls, 1).Round(time.Millisecond), percentile(cpus, 0.5).Round(time.Millisecond))
}

// traceFirstCollection keeps an execution trace of the last seconds in a flight recorder and
// writes it to path once the first collection that starts after the call has ended and 200 ms
// more have passed: the window that holds most of the slow messages, for go tool trace. The
// returned func stops it (writing nothing if no collection came).
func traceFirstCollection(t *testing.T, path string) (stop func()) {
	fr := trace.NewFlightRecorder(trace.FlightRecorderConfig{MinAge: 3 * time.Second})
	if err := fr.Start(); err != nil {
		t.Fatal(err)
	}
	cycles := func() uint64 {
		s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	start := cycles()
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			if cycles() == start {
				continue
			}
			time.Sleep(200 * time.Millisecond)
			f, err := os.Create(path)
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := fr.WriteTo(f); err != nil {
				t.Error(err)
			}
			f.Close()
			t.Logf("execution trace of the first collection in the traffic written to %s", path)
			return
		}
	}()
	return func() {
		close(done)
		<-finished
		fr.Stop()
	}
}

// memLimit is the runtime's soft memory limit, "none" when unset.
func memLimit() string {
	if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
		return fmt.Sprintf("%.0f MiB", mib(uint64(l)))
	}
	return "none"
}

// writeHeapProfile writes a heap profile (after a GC, so in-use figures are live memory) to path,
// for go tool pprof -top -inuse_space, and the goroutines of that moment beside it
// (path.goroutines.txt).
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
	g, err := os.Create(path + ".goroutines.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := pprof.Lookup("goroutine").WriteTo(g, 1); err != nil {
		t.Fatal(err)
	}
}

// waitSettled waits until the number of goroutines has not changed for 2 s (bounded by max),
// and returns how long that took.
func waitSettled(t *testing.T, max time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	last, since := runtime.NumGoroutine(), time.Now()
	for time.Since(since) < 2*time.Second {
		if time.Since(start) > max {
			t.Fatalf("the goroutine count never settled (%d)", runtime.NumGoroutine())
		}
		time.Sleep(100 * time.Millisecond)
		if n := runtime.NumGoroutine(); n != last {
			last, since = n, time.Now()
		}
	}
	return time.Since(start)
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
