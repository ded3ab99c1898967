package msn_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/msn-bridge/msn-bridge/msn"
	"github.com/msn-bridge/msn-bridge/msn/msntest"
)

// BenchmarkSwitchboardRoundTrip measures one message over an open switchboard between two
// clients logged into msntest over loopback: from SendText until SendText has the ACK and the
// other client has delivered MessageReceived to its handler, whichever comes last.
func BenchmarkSwitchboardRoundTrip(b *testing.B) {
	opts := aliceAndBob("")
	opts.EventLimit = -1
	srv := startServer(b, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	got := make(chan struct{}, 1)
	alice := measureLogin(ctx, b, srv, "alice@example.com", "alicepw", nil)
	defer alice.Close()
	bob := measureLogin(ctx, b, srv, "bob@example.com", "bobpw", func(ev msn.Event) {
		if _, ok := ev.(*msn.MessageReceived); ok {
			got <- struct{}{}
		}
	})
	defer bob.Close()

	send := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := alice.SendText(ctx, "bob@example.com", "hello bob", nil); err != nil {
			b.Fatal(err)
		}
		select {
		case <-got:
		case <-ctx.Done():
			b.Fatal("message not received")
		}
	}
	send() // opens the switchboard: XFR SB, USR, CAL, RNG, ANS, JOI
	for b.Loop() {
		send()
	}
}

func measureLogin(ctx context.Context, tb testing.TB, srv *msntest.Server, handle, pw string, h msn.Handler) *msn.Client {
	tb.Helper()
	c, err := msn.NewClient(msn.Config{Server: srv.NSAddr(), LoginURL: srv.LoginURL(), AllowInsecurePassport: true}, handle, pw, h)
	if err != nil {
		tb.Fatal(err)
	}
	if err := c.Login(ctx); err != nil {
		tb.Fatalf("%s: Login: %v", handle, err)
	}
	return c
}

// TestMeasureIdleClients measures what an idle logged-in client costs: it logs
// MSN_MEASURE_CLIENTS accounts (default 1,000), each with MSN_MEASURE_CONTACTS contacts
// (default 100, all of them other accounts of the run), into one msntest server, waits for the
// presence traffic to settle and logs the heap (runtime.MemStats.HeapInuse), goroutine stacks
// (StackInuse) and goroutines per account. The server's share
// is measured first by logging the same accounts in over raw sockets that send the client's
// login commands and then do nothing; the client's share is the difference. It only runs with
// MSN_MEASURE=1, and it asserts nothing about the figures.
func TestMeasureIdleClients(t *testing.T) {
	if os.Getenv("MSN_MEASURE") == "" {
		t.Skip("set MSN_MEASURE=1 to measure idle clients")
	}
	n := envInt(t, "MSN_MEASURE_CLIENTS", 1000)
	contacts := envInt(t, "MSN_MEASURE_CONTACTS", 100)
	if n < 2 || contacts < 2 || contacts >= n {
		t.Fatalf("need 2 <= contacts (%d) < clients (%d)", contacts, n)
	}
	const parallel = 8
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	srv := msntest.New(msntest.Options{EventLimit: -1})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	handle := func(i int) string { return fmt.Sprintf("user%05d@example.com", i) }
	for i := range n {
		if err := srv.AddAccount(handle(i), "pw", fmt.Sprintf("User %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		for d := 1; d <= contacts/2; d++ {
			if err := srv.AddFriends(handle(i), handle((i+d)%n)); err != nil {
				t.Fatal(err)
			}
		}
	}
	base := settle(ctx, t)
	t.Logf("baseline: %d accounts with %d contacts each: heap in use %.1f MiB, %d goroutines",
		n, contacts, mib(base.heap), base.goroutines)

	// Server share: raw sockets that log in and then stay silent.
	raw := make([]net.Conn, n)
	forEach(ctx, t, n, parallel, func(ctx context.Context, i int) error {
		c, err := rawLogin(ctx, srv, handle(i))
		raw[i] = c
		return err
	})
	server := settle(ctx, t)
	for _, c := range raw {
		_ = c.Close()
	}
	waitFor(ctx, t, "raw sessions to end", func() bool {
		for i := range n {
			if srv.LoggedIn(handle(i)) {
				return false
			}
		}
		return true
	})
	clear(raw)
	base2 := settle(ctx, t)

	// Server and client: msn.Clients with the default configuration.
	clients := make([]*msn.Client, n)
	defer func() {
		for _, c := range clients {
			if c != nil {
				_ = c.Close()
			}
		}
	}()
	forEach(ctx, t, n, parallel, func(ctx context.Context, i int) error {
		c, err := msn.NewClient(msn.Config{Server: srv.NSAddr(), LoginURL: srv.LoginURL(), AllowInsecurePassport: true}, handle(i), "pw", nil)
		if err != nil {
			return err
		}
		clients[i] = c
		return c.Login(ctx)
	})
	both := settle(ctx, t)
	for i := range n {
		if !srv.LoggedIn(handle(i)) {
			t.Fatalf("%s is no longer logged in", handle(i))
		}
	}

	per := func(a, b uint64) float64 { return float64(int64(a)-int64(b)) / float64(n) }
	sh, ss, sg := per(server.heap, base.heap), per(server.stack, base.stack), float64(server.goroutines-base.goroutines)/float64(n)
	bh, bs, bg := per(both.heap, base2.heap), per(both.stack, base2.stack), float64(both.goroutines-base2.goroutines)/float64(n)
	t.Logf("%d idle sessions, %d contacts each, %s, GOMAXPROCS %d", n, contacts, runtime.Version(), runtime.GOMAXPROCS(0))
	t.Logf("server only (raw sockets): %6.0f heap + %5.0f stack bytes, %.2f goroutines per session", sh, ss, sg)
	t.Logf("server + msn.Client:       %6.0f heap + %5.0f stack bytes, %.2f goroutines per session", bh, bs, bg)
	t.Logf("msn.Client share:          %6.0f heap + %5.0f stack bytes, %.2f goroutines per client", bh-sh, bs-ss, bg-sg)
}

type stats struct {
	heap, stack uint64
	goroutines  int
}

// settle waits until the goroutine count stays put for a second (presence fan-out and
// keep-alive pings from recent logins are done), then collects garbage and reads the heap.
func settle(ctx context.Context, t *testing.T) stats {
	t.Helper()
	last, stable := -1, 0
	for stable < 4 {
		select {
		case <-ctx.Done():
			t.Fatal("timed out waiting for the sessions to settle")
		case <-time.After(250 * time.Millisecond):
		}
		if g := runtime.NumGoroutine(); g == last {
			stable++
		} else {
			last, stable = g, 0
		}
	}
	time.Sleep(time.Second)
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return stats{heap: ms.HeapInuse, stack: ms.StackInuse, goroutines: runtime.NumGoroutine()}
}

func waitFor(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// forEach runs fn for 0..n-1 on at most parallel goroutines and fails the test on the first
// error.
func forEach(ctx context.Context, t *testing.T, n, parallel int, fn func(context.Context, int) error) {
	t.Helper()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	next := make(chan int)
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				err := fn(lctx, i)
				cancel()
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("session %d: %w", i, err))
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d of %d logins failed, first: %v", len(errs), n, errs[0])
	}
}

// rawLogin logs handle in with the commands an msn.Client sends (VER, CVR, USR TWN I/S with a
// ticket issued by the server, SYN, CHG) and returns the connection, which nothing reads any
// more: the kernel's socket buffer takes the little presence traffic that follows.
func rawLogin(ctx context.Context, srv *msntest.Server, handle string) (net.Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", srv.NSAddr())
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	ticket, err := srv.IssueTicket(handle)
	if err != nil {
		nc.Close()
		return nil, err
	}
	w := bufio.NewWriter(nc)
	r := msn.NewReader(nc, msn.ClientPayloads)
	// step sends a command and reads up to the reply with the same name and TrID.
	step := func(name string, args ...string) (*msn.Command, error) {
		trID := args[0]
		cmd := &msn.Command{Name: name, Args: args}
		if _, err := w.Write(cmd.Marshal()); err != nil {
			return nil, err
		}
		if err := w.Flush(); err != nil {
			return nil, err
		}
		for {
			reply, err := r.ReadCommand()
			if err != nil {
				return nil, fmt.Errorf("waiting for %s: %w", name, err)
			}
			if reply.Arg(0) != trID {
				continue
			}
			if reply.IsError() {
				return nil, fmt.Errorf("%s: error %s", name, reply.Name)
			}
			if reply.Name == name {
				return reply.Clone(), nil
			}
		}
	}
	steps := [][]string{
		{"VER", "1", "MSNP11", "MSNP10", "CVR0"},
		{"CVR", "2", "0x0409", "winnt", "5.1", "i386", "MSNMSGR", msn.DefaultClientVersion, "MSMSGS", handle},
		{"USR", "3", "TWN", "I", handle},
		{"USR", "4", "TWN", "S", ticket},
		{"SYN", "5", "0", "0"},
		{"CHG", "6", "NLN", strconv.Itoa(msn.DefaultCapabilities)},
	}
	for _, s := range steps {
		if _, err := step(s[0], s[1:]...); err != nil {
			nc.Close()
			return nil, err
		}
	}
	_ = nc.SetDeadline(time.Time{})
	return nc, nil
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return n
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
