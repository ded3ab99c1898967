package media

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/msn-bridge/msn-bridge/bridge"
	"github.com/msn-bridge/msn-bridge/internal/testenv/pgtest"
	"github.com/msn-bridge/msn-bridge/msn"
	"github.com/msn-bridge/msn-bridge/msn/msntest"
)

const fileSize = 1 << 20

func gate(t *testing.T) {
	if os.Getenv("MSN_MEDIA_BENCH") != "1" {
		t.Skip("set MSN_MEDIA_BENCH=1 to measure media through the bridge")
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// cpuTime is the CPU time (user + system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

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

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// tap is the frontend of the measured accounts: it reads every File to its end, as a frontend
// posting it would, and counts contacts' pictures shown.
type tap struct {
	files   chan int64 // bytes read of each File
	avatars atomic.Int64
}

func (f *tap) Name() string { return "tap" }

func (f *tap) HandleEvent(_ context.Context, _ *bridge.Account, evt bridge.Event) error {
	switch e := evt.(type) {
	case bridge.File:
		if e.FromMe {
			return nil
		}
		rc, err := e.Open()
		if err != nil {
			f.files <- -1
			return nil
		}
		n, err := io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			n = -1
		}
		f.files <- n
	case bridge.ContactAvatar:
		if e.Avatar != "" {
			f.avatars.Add(1)
		}
	}
	return nil
}

var owner = bridge.FrontendUser{Frontend: "tap", UserID: "owner"}

// newStore opens a fresh SQLite database with the bridge's schema.
func newStore(t *testing.T) *bridge.Store {
	t.Helper()
	db := pgtest.Open(t, pgtest.SQLiteDriver, pgtest.SQLiteDSN(t))
	cipher, err := bridge.NewCipher(make([]byte, bridge.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	store := bridge.NewStore(db, cipher, zerolog.Nop())
	if err = store.Upgrade(context.Background()); err != nil {
		t.Fatal(err)
	}
	return store
}

// saveLogins stores handles as logged in, so that a core started on store logs them in.
func saveLogins(t *testing.T, store *bridge.Store, handles []string) {
	t.Helper()
	for _, h := range handles {
		rec := &bridge.AccountRecord{Handle: h, DesiredStatus: bridge.StatusOnline, LoggedIn: true}
		if err := store.SaveLogin(context.Background(), rec, "pw", owner); err != nil {
			t.Fatal(err)
		}
	}
}

// startCore starts a core on store, which logs its stored accounts in, with fe attached; reg
// receives its metrics.
func startCore(t *testing.T, srv *msntest.Server, store *bridge.Store, media bridge.MediaConfig,
	fe bridge.Frontend, reg prometheus.Registerer) *bridge.Core {
	t.Helper()
	ctx := context.Background()
	metrics, err := bridge.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	core, err := bridge.NewCore(bridge.Config{
		MSN: msn.Config{Server: srv.NSAddr(), LoginURL: srv.LoginURL(), AllowInsecurePassport: true,
			PingInterval: time.Hour, RequestTimeout: time.Minute},
		LoginRate:  1000,
		LoginBurst: 200,
		Media:      media,
		// The account's send budget lifted: by default a file costs nudge_cost (10) of 5 parts
		// a second, so back-to-back files wait 2 s each for their turn, which is policy, not cost.
		SendLimit: bridge.SendLimitConfig{Rate: 1000, Burst: 1000},
	}, bridge.Options{Store: store, Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel), Metrics: metrics})
	if err != nil {
		t.Fatal(err)
	}
	core.AddFrontend(fe)
	if err = core.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopCore(t, core) })
	return core
}

func stopCore(t *testing.T, core *bridge.Core) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := core.Stop(ctx); err != nil {
		t.Errorf("stopping the core: %v", err)
	}
}

// waitFor polls cond until it holds, failing the test after max.
func waitFor(t *testing.T, what string, max time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(max)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", max, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// everyoneOnline reports whether every handle is online in core.
func everyoneOnline(core *bridge.Core, handles []string) bool {
	for _, h := range handles {
		if a := core.Account(h); a == nil || a.State().State != bridge.StateOnline {
			return false
		}
	}
	return true
}

// online waits until every handle is online in core with its contacts known.
func online(t *testing.T, core *bridge.Core, handles []string, contacts int, max time.Duration) {
	t.Helper()
	waitFor(t, "the accounts online", max, func() bool {
		for _, h := range handles {
			a := core.Account(h)
			if a == nil || a.State().State != bridge.StateOnline || len(a.Contacts()) < contacts {
				return false
			}
		}
		return true
	})
}

// counter reads msnbridge_media_total{kind, result} from reg.
func counter(t *testing.T, reg *prometheus.Registry, kind, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "msnbridge_media_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["kind"] == kind && labels["result"] == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// cost is what one transfer took: wall time and process CPU.
type cost struct{ wall, cpu time.Duration }

func measure(t *testing.T, run func() error) cost {
	t.Helper()
	runtime.GC()
	w0, c0 := time.Now(), cpuTime()
	if err := run(); err != nil {
		t.Fatal(err)
	}
	return cost{time.Since(w0), cpuTime() - c0}
}

func median(cs []cost) cost {
	w := make([]time.Duration, len(cs))
	c := make([]time.Duration, len(cs))
	for i, x := range cs {
		w[i], c[i] = x.wall, x.cpu
	}
	slices.Sort(w)
	slices.Sort(c)
	return cost{w[len(w)/2], c[len(c)/2]}
}

// TestMediaTransfer moves a 1 MB file each way through the bridge and the same file between
// plain clients on the same server, interleaved round by round.
func TestMediaTransfer(t *testing.T) {
	gate(t)
	const (
		alice = "alice@example.com" // the bridge's account
		bob   = "bob@example.com"   // a bot
		carol = "carol@example.com" // plain clients
		dave  = "dave@example.com"
	)
	srv := msntest.New(msntest.Options{
		Accounts: []msntest.AccountSpec{
			{Handle: alice, Password: "pw", Name: "Alice"},
			{Handle: bob, Password: "pw", Name: "Bob", Status: "NLN"},
			{Handle: carol, Password: "pw", Name: "Carol"},
			{Handle: dave, Password: "pw", Name: "Dave"},
		},
		Friends:    [][2]string{{alice, bob}, {carol, dave}, {carol, bob}, {dave, bob}},
		EventLimit: -1,
	})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	if err := srv.SetBotAcceptFiles(bob, true); err != nil {
		t.Fatal(err)
	}
	fe := &tap{files: make(chan int64, 4)}
	store := newStore(t)
	saveLogins(t, store, []string{alice})
	core := startCore(t, srv, store, bridge.MediaConfig{SpoolDir: t.TempDir()}, fe, prometheus.NewRegistry())
	online(t, core, []string{alice}, 1, time.Minute)
	acc := core.Account(alice)

	// Plain clients: dave accepts every file into io.Discard.
	cfg := msn.Config{Server: srv.NSAddr(), LoginURL: srv.LoginURL(), AllowInsecurePassport: true, PingInterval: time.Hour}
	daveGot := make(chan error, 4)
	var clients sync.WaitGroup
	dc, err := msn.NewClient(cfg, dave, "pw", func(e msn.Event) {
		if o, ok := e.(*msn.FileOffered); ok {
			clients.Add(1)
			go func() {
				defer clients.Done()
				daveGot <- o.Offer.Accept(context.Background(), io.Discard, nil)
			}()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := msn.NewClient(cfg, carol, "pw", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, c := range []*msn.Client{dc, cc} {
		if err = c.Login(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
	}
	t.Cleanup(clients.Wait)

	data := bytes.Repeat([]byte("0123456789abcdef"), fileSize/16)
	outgoing := func(name string) msn.OutgoingFile {
		return msn.OutgoingFile{Name: name, Size: fileSize, Data: bytes.NewReader(data)}
	}
	botFiles := 0
	botGot := func() error {
		botFiles++
		f, err := srv.WaitBotFile(ctx, bob, min(botFiles, 64))
		if err != nil {
			return err
		}
		if f.Err != nil || len(f.Data) != fileSize {
			return fmt.Errorf("bob got %d bytes: %v", len(f.Data), f.Err)
		}
		return nil
	}
	if rounds := envInt("MEDIA_ROUNDS", 5); rounds*2 > 64 {
		t.Fatalf("MEDIA_ROUNDS %d: the bot keeps only 64 files", rounds)
	}
	paths := []struct {
		name string
		run  func() error
	}{
		{"bridge in: bot → client → core → spool → File.Open read", func() error {
			if err := srv.BotSendFile(ctx, bob, alice, "in.bin", data); err != nil {
				return err
			}
			if n := <-fe.files; n != fileSize {
				return fmt.Errorf("the frontend read %d bytes", n)
			}
			return nil
		}},
		{"bridge out: Account.SendFile → core → client → bot", func() error {
			if _, err := acc.SendFile(ctx, "tap", bridge.DirectChat(bob), bridge.OutgoingFile{
				Name: "out.bin", Size: fileSize, MIME: "application/octet-stream", Data: bytes.NewReader(data)}); err != nil {
				return err
			}
			return botGot()
		}},
		{"plain: client → client", func() error {
			if err := cc.SendFile(ctx, dave, outgoing("cc.bin")); err != nil {
				return err
			}
			return <-daveGot
		}},
		{"plain: bot → client", func() error {
			if err := srv.BotSendFile(ctx, bob, dave, "bc.bin", data); err != nil {
				return err
			}
			return <-daveGot
		}},
		{"plain: client → bot", func() error {
			if err := cc.SendFile(ctx, bob, outgoing("cb.bin")); err != nil {
				return err
			}
			return botGot()
		}},
	}
	results := make([][]cost, len(paths))
	for range envInt("MEDIA_ROUNDS", 5) {
		for i, p := range paths {
			results[i] = append(results[i], measure(t, p.run))
		}
	}
	med := make([]cost, len(paths))
	for i := range paths {
		med[i] = median(results[i])
	}
	for i, p := range paths {
		var ws []string
		for _, c := range results[i] {
			ws = append(ws, fmt.Sprintf("%.1f", ms(c.wall)))
		}
		t.Logf("%s: rounds %s ms", p.name, strings.Join(ws, " "))
	}
	base := med[2]
	t.Logf("1 MB file, median of %d rounds (wall, process CPU, and their ratio to client → client):", len(results[0]))
	for i, p := range paths {
		t.Logf("  %-56s %8.1f ms  %8.1f ms CPU   %.2f× / %.2f×", p.name, ms(med[i].wall), ms(med[i].cpu),
			float64(med[i].wall)/float64(base.wall), float64(med[i].cpu)/float64(base.cpu))
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// TestMediaConcurrent samples memory while 100 bots each send a 1 MB file at once, each to its
// own account of the bridge (one msn.Client holds at most 64 switchboards, and the core takes
// two files per account at once by default).
func TestMediaConcurrent(t *testing.T) {
	gate(t)
	n := envInt("MEDIA_TRANSFERS", 100)
	var specs []msntest.AccountSpec
	var friends [][2]string
	bots, users := make([]string, n), make([]string, n)
	for i := range bots {
		bots[i], users[i] = fmt.Sprintf("bot%03d@example.com", i), fmt.Sprintf("user%03d@example.com", i)
		specs = append(specs, msntest.AccountSpec{Handle: bots[i], Password: "pw", Name: "Bot", Status: "NLN"},
			msntest.AccountSpec{Handle: users[i], Password: "pw", Name: "User"})
		friends = append(friends, [2]string{users[i], bots[i]})
	}
	srv := msntest.New(msntest.Options{Accounts: specs, Friends: friends, EventLimit: -1})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	fe := &tap{files: make(chan int64, n)}
	store := newStore(t)
	saveLogins(t, store, users)
	core := startCore(t, srv, store, bridge.MediaConfig{SpoolDir: t.TempDir(), MaxTransfers: n}, fe, prometheus.NewRegistry())
	online(t, core, users, 1, 2*time.Minute)

	data := bytes.Repeat([]byte("0123456789abcdef"), fileSize/16) // shared by every bot
	runtime.GC()
	var ms0 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	rss0 := rssBytes()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var peakHeap, peakRSS uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			peakHeap = max(peakHeap, m.HeapInuse)
			peakRSS = max(peakRSS, rssBytes())
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	start, cpu0 := time.Now(), cpuTime()
	errs := make(chan error, n)
	for i, b := range bots {
		go func() { errs <- srv.BotSendFile(ctx, b, users[i], "f.bin", data) }()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("a bot's transfer: %v", err)
		}
	}
	for range n {
		select {
		case got := <-fe.files:
			if got != fileSize {
				t.Fatalf("the frontend read %d bytes", got)
			}
		case <-ctx.Done():
			t.Fatal("timed out waiting for the files")
		}
	}
	wall, cpu := time.Since(start), cpuTime()-cpu0
	close(stop)
	<-sampled
	t.Logf("%d × 1 MB at once, one per account: %.2f s, %.2f s CPU", n, wall.Seconds(), cpu.Seconds())
	t.Logf("heap in use: %.1f MiB before, peak %.1f MiB (+%.1f); RSS: %.1f MiB before, peak %.1f MiB (+%.1f)",
		mib(ms0.HeapInuse), mib(peakHeap), mib(peakHeap-ms0.HeapInuse), mib(rss0), mib(peakRSS), mib(peakRSS-rss0))
}

// TestMediaAvatarLogin logs in accounts whose contacts all show display pictures, counts the
// fetches, and starts again on the same database.
func TestMediaAvatarLogin(t *testing.T) {
	gate(t)
	accounts, contacts := envInt("MEDIA_ACCOUNTS", 1000), envInt("MEDIA_CONTACTS", 100)
	var specs []msntest.AccountSpec
	users := make([]string, accounts)
	bots := make([]string, contacts)
	for i := range bots {
		bots[i] = fmt.Sprintf("pic%03d@example.com", i)
		specs = append(specs, msntest.AccountSpec{Handle: bots[i], Password: "pw", Name: "Pic", Status: "NLN"})
	}
	friends := make([][2]string, 0, accounts*contacts)
	for i := range users {
		users[i] = fmt.Sprintf("u%04d@example.com", i)
		specs = append(specs, msntest.AccountSpec{Handle: users[i], Password: "pw", Name: "U"})
		for _, b := range bots {
			friends = append(friends, [2]string{users[i], b})
		}
	}
	srv := msntest.New(msntest.Options{Accounts: specs, Friends: friends, EventLimit: -1})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	for i, b := range bots {
		if _, err := srv.SetBotDisplayPicture(b, picture(i)); err != nil {
			t.Fatal(err)
		}
	}
	store := newStore(t)
	saveLogins(t, store, users)
	want := int64(accounts * contacts)
	for run := 1; run <= 2; run++ {
		reg := prometheus.NewRegistry()
		fe := &tap{files: make(chan int64, 1)}
		start, cpu0 := time.Now(), cpuTime()
		core := startCore(t, srv, store, bridge.MediaConfig{}, fe, reg)
		var allOnline time.Duration
		marks := []float64{0.5, 0.9, 0.99, 0.999}
		var reached []string
		waitFor(t, "every account shown every picture", 4*time.Minute, func() bool {
			if allOnline == 0 && everyoneOnline(core, users) {
				allOnline = time.Since(start)
			}
			shown := fe.avatars.Load()
			for len(marks) > 0 && float64(shown) >= marks[0]*float64(want) {
				reached = append(reached, fmt.Sprintf("%g%% at %.1f s", marks[0]*100, time.Since(start).Seconds()))
				marks = marks[1:]
			}
			return shown >= want
		})
		t.Logf("start %d: pictures shown: %s", run, strings.Join(reached, ", "))
		wall, cpu := time.Since(start), cpuTime()-cpu0
		fetched, cached, failed := counter(t, reg, "avatar", "fetched"), counter(t, reg, "avatar", "cached"), counter(t, reg, "avatar", "failed")
		t.Logf("start %d: %d accounts × %d contacts with pictures: %d pictures shown in %.1f s (%.1f s CPU; everyone online at %.1f s); fetches %.0f, from the cache %.0f, failed %.0f",
			run, accounts, contacts, fe.avatars.Load(), wall.Seconds(), cpu.Seconds(), allOnline.Seconds(), fetched, cached, failed)
		switch {
		case run == 1 && fetched != float64(contacts):
			t.Errorf("first start fetched %.0f pictures, want one per picture (%d)", fetched, contacts)
		case run == 2 && fetched != 0:
			t.Errorf("second start fetched %.0f pictures, want none", fetched)
		}
		stopCore(t, core)
	}
}

// picture is a distinct small PNG-like payload for contact i (the core checks size and SHA-1
// against the msnobj and detects the type from the content).
func picture(i int) []byte {
	p := []byte("\x89PNG\r\n\x1a\n")
	return append(p, bytes.Repeat([]byte(fmt.Sprintf("picture %03d ", i)), 200)...)
}
