package msn_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/msn-bridge/msn-bridge/msn"
	"github.com/msn-bridge/msn-bridge/msn/msntest"
)

// TestIntegrationChat logs two accounts into msntest and sends a message one way.
func TestIntegrationChat(t *testing.T) {
	srv := startServer(t, aliceAndBob(""))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, srv.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	got := make(chan *msn.MessageReceived, 1)
	mk := func(handle, pw string, h msn.Handler) *msn.Client {
		c, err := msn.NewClient(msn.Config{Server: srv.NSAddr(), NexusURL: srv.HTTPSNexusURL(), CAFile: caFile, PingInterval: time.Hour}, handle, pw, h)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		if err := c.Login(ctx); err != nil {
			t.Fatalf("%s: Login: %v", handle, err)
		}
		return c
	}
	alice := mk("alice@example.com", "alicepw", nil)
	mk("bob@example.com", "bobpw", func(ev msn.Event) {
		if m, ok := ev.(*msn.MessageReceived); ok {
			select {
			case got <- m:
			default:
			}
		}
	})
	if _, ok := alice.Contact("bob@example.com"); !ok {
		t.Fatal("bob not in alice's list")
	}
	if err := alice.SendText(ctx, "bob@example.com", "hello bob", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m.From != "alice@example.com" || m.Text != "hello bob" {
			t.Errorf("got %+v", m)
		}
	case <-ctx.Done():
		t.Fatal("message not received")
	}
}

// startAliceAndBob starts msntest with alice (to log in) and her friend bob, online without a
// socket; it is closed when the test ends.
func startAliceAndBob(t *testing.T) *msntest.Server {
	t.Helper()
	return startServer(t, aliceAndBob("NLN"))
}

// aliceAndBob are the options of a server with alice and bob, friends, bob with the status
// bobStatus ("": offline until he logs in).
func aliceAndBob(bobStatus string) msntest.Options {
	return msntest.Options{
		Accounts: []msntest.AccountSpec{
			{Handle: "alice@example.com", Password: "alicepw", Name: "Alice"},
			{Handle: "bob@example.com", Password: "bobpw", Name: "Bob", Status: bobStatus},
		},
		Friends: [][2]string{{"alice@example.com", "bob@example.com"}},
	}
}

// startServer starts an msntest server with opts, closed when the test ends.
func startServer(tb testing.TB, opts msntest.Options) *msntest.Server {
	tb.Helper()
	srv := msntest.New(opts)
	if err := srv.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(srv.Close)
	return srv
}

// newAlice makes (does not log in) a client for alice on srv with cfg, its server, nexus and a
// one-hour ping interval filled in; its events go to the channel returned, and it is closed when
// the test ends.
func newAlice(t *testing.T, srv *msntest.Server, cfg msn.Config) (*msn.Client, chan msn.Event) {
	t.Helper()
	events := make(chan msn.Event, 256)
	c := newAliceWith(t, srv, cfg, func(ev msn.Event) {
		select {
		case events <- ev:
		default:
			t.Errorf("event channel full, dropped %T", ev)
		}
	})
	return c, events
}

// newAliceWith is newAlice with the events going to h.
func newAliceWith(t *testing.T, srv *msntest.Server, cfg msn.Config, h msn.Handler) *msn.Client {
	t.Helper()
	cfg.Server, cfg.NexusURL = srv.NSAddr(), srv.HTTPSNexusURL()
	if cfg.PingInterval == 0 {
		cfg.PingInterval = time.Hour
	}
	cfg.HTTPClient = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.CertPool()}}}
	c, err := msn.NewClient(cfg, "alice@example.com", "alicepw", h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestIntegrationLoginEventOrder checks the documented order: LoggedIn first, then
// ContactListSynced after it.
func TestIntegrationLoginEventOrder(t *testing.T) {
	srv := startAliceAndBob(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	events := make(chan msn.Event, 64)
	c, err := msn.NewClient(msn.Config{Server: srv.NSAddr(), NexusURL: srv.HTTPSNexusURL(), PingInterval: time.Hour,
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.CertPool()}}}},
		"alice@example.com", "alicepw", func(ev msn.Event) {
			select {
			case events <- ev:
			default:
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		select {
		case ev := <-events:
			_, first := ev.(*msn.LoggedIn)
			if i == 0 && !first {
				t.Fatalf("first event is %T, want *msn.LoggedIn", ev)
			}
			if _, ok := ev.(*msn.ContactListSynced); ok {
				return
			}
		case <-ctx.Done():
			t.Fatal("ContactListSynced not delivered")
		}
	}
}

// TestIntegrationInvitationDuringLogin has a contact start a conversation while the client is
// authenticated but still downloading its list (SYN held up by the server). The invitation is
// answered once logged in and the message delivered after LoggedIn; when the login fails
// instead, the invitation is left unanswered (so the contact's side is not told "delivered")
// and the log says so.
func TestIntegrationInvitationDuringLogin(t *testing.T) {
	// start logs alice in with SYN held up and has bob invite her once USR OK is in.
	start := func(t *testing.T) (*msntest.Server, *msn.Client, chan msn.Event, chan error, *lockedBuffer, context.Context) {
		srv := startAliceAndBob(t)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		t.Cleanup(cancel)
		srv.SetDelay("SYN", 300*time.Millisecond)
		logs := &lockedBuffer{}
		c, events := newAlice(t, srv, msn.Config{Log: zerolog.New(logs)})
		loginErr := make(chan error, 1)
		go func() { loginErr <- c.Login(ctx) }()
		for !srv.LoggedIn("alice@example.com") {
			select {
			case err := <-loginErr:
				t.Fatalf("Login returned %v before the invitation was sent", err)
			case <-ctx.Done():
				t.Fatal("alice never authenticated")
			case <-time.After(5 * time.Millisecond):
			}
		}
		if err := srv.BotSay("bob@example.com", "alice@example.com", "are you there?"); err != nil {
			t.Fatal(err)
		}
		return srv, c, events, loginErr, logs, ctx
	}

	t.Run("delivered after login", func(t *testing.T) {
		_, _, events, loginErr, _, ctx := start(t)
		select {
		case err := <-loginErr:
			if err != nil {
				t.Fatal(err)
			}
		case <-ctx.Done():
			t.Fatal("Login did not return")
		}
		seenLoggedIn := false
		for {
			select {
			case ev := <-events:
				switch ev := ev.(type) {
				case *msn.LoggedIn:
					seenLoggedIn = true
				case *msn.MessageReceived:
					if !seenLoggedIn {
						t.Fatal("message delivered before LoggedIn")
					}
					if ev.From != "bob@example.com" || ev.Text != "are you there?" {
						t.Fatalf("got %+v", ev)
					}
					return
				}
			case <-ctx.Done():
				t.Fatal("the message sent during login was not delivered")
			}
		}
	})

	t.Run("login fails", func(t *testing.T) {
		srv, c, events, loginErr, logs, ctx := start(t)
		for !strings.Contains(logs.String(), "Switchboard invitation during login") {
			select {
			case <-ctx.Done():
				t.Fatal("the invitation never reached the client")
			case <-time.After(5 * time.Millisecond):
			}
		}
		if err := srv.DropConnection("alice@example.com"); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-loginErr:
			if err == nil {
				t.Fatal("Login succeeded on a dropped connection")
			}
		case <-ctx.Done():
			t.Fatal("Login did not return")
		}
		_ = c.Close()
		if n := len(events); n != 0 {
			t.Errorf("%d events delivered after a failed login", n)
		}
		if !strings.Contains(logs.String(), `"invitations":1`) {
			t.Errorf("the log does not report the unanswered invitation:\n%s", logs.String())
		}
	})
}

// lockedBuffer is an io.Writer for logs written from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A one-to-one session without a message for SessionIdleTimeout is left at the next keepalive,
// and the next message to the contact opens a new one; with a negative timeout it stays.
func TestIntegrationIdleSessionLeft(t *testing.T) {
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		left    bool
	}{{"timeout", 300 * time.Millisecond, true}, {"never", -1, false}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startAliceAndBob(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, events := newAlice(t, srv, msn.Config{SessionIdleTimeout: tc.timeout, PingInterval: 100 * time.Millisecond})
			if err := c.Login(ctx); err != nil {
				t.Fatal(err)
			}
			if err := srv.BotSay("bob@example.com", "alice@example.com", "hi"); err != nil {
				t.Fatal(err)
			}
			var session string
			// Wait for bob's message, then for its session to close: up to 3 s when it
			// should (the timeout and many keepalives), 1.5 s when it should not.
			wait := time.After(20 * time.Second)
			for session == "" {
				select {
				case ev := <-events:
					if m, ok := ev.(*msn.MessageReceived); ok {
						session = m.SessionID
					}
				case <-wait:
					t.Fatal("bob's message never arrived")
				}
			}
			limit := 1500 * time.Millisecond
			if tc.left {
				limit = 3 * time.Second
			}
			closed := false
			deadline := time.After(limit)
		loop:
			for {
				select {
				case ev := <-events:
					if sc, ok := ev.(*msn.SessionClosed); ok && sc.SessionID == session {
						closed = true
						break loop
					}
				case <-deadline:
					break loop
				}
			}
			if closed != tc.left {
				t.Fatalf("session closed: %v, want %v", closed, tc.left)
			}
			if err := c.SendText(ctx, "bob@example.com", "still there?", nil); err != nil {
				t.Fatalf("SendText after the idle session: %v", err)
			}
		})
	}
}

// TestIntegrationSessionLimitLeavesTheIdlest: Escargot never closes an idle switchboard, so at
// MaxSessions a new conversation must make room. With a limit of 2, a third contact's invitation
// and a send to a contact without a session each leave the session active least recently.
func TestIntegrationSessionLimitLeavesTheIdlest(t *testing.T) {
	contacts := []string{"bob@example.com", "carol@example.com", "dave@example.com"}
	opts := msntest.Options{Accounts: []msntest.AccountSpec{{Handle: "alice@example.com", Password: "alicepw", Name: "Alice"}}}
	for _, h := range contacts {
		opts.Accounts = append(opts.Accounts, msntest.AccountSpec{Handle: h, Password: "pw", Name: h, Status: "NLN"})
		opts.Friends = append(opts.Friends, [2]string{"alice@example.com", h})
	}
	srv := msntest.New(opts)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, events := newAlice(t, srv, msn.Config{MaxSessions: 2})
	if err := c.Login(ctx); err != nil {
		t.Fatal(err)
	}

	sessionOf := map[string]string{} // contact → session id of its message
	var closed []string
	// await reads events until a message from from arrives.
	await := func(from string) {
		t.Helper()
		for {
			select {
			case ev := <-events:
				switch ev := ev.(type) {
				case *msn.MessageReceived:
					if ev.From == from {
						sessionOf[from] = ev.SessionID
						return
					}
				case *msn.SessionClosed:
					closed = append(closed, ev.SessionID)
				}
			case <-ctx.Done():
				t.Fatalf("no message from %s (sessions closed so far: %v)", from, closed)
			}
		}
	}
	for _, h := range contacts {
		if err := srv.BotSay(h, "alice@example.com", "hi from "+h); err != nil {
			t.Fatal(err)
		}
		await(h)
		time.Sleep(10 * time.Millisecond) // distinct last-activity times
	}
	// awaitClosed reads events until n sessions have closed.
	awaitClosed := func(n int, why string) {
		t.Helper()
		for len(closed) < n {
			select {
			case ev := <-events:
				if sc, ok := ev.(*msn.SessionClosed); ok {
					closed = append(closed, sc.SessionID)
				}
			case <-ctx.Done():
				t.Fatalf("no session was closed for %s", why)
			}
		}
	}
	// dave's invitation left bob's session, the idlest.
	awaitClosed(1, "dave's")
	if closed[0] != sessionOf["bob@example.com"] {
		t.Fatalf("closed session %s, want bob's %s (carol's %s, dave's %s)", closed[0], sessionOf["bob@example.com"],
			sessionOf["carol@example.com"], sessionOf["dave@example.com"])
	}
	// Writing to bob again needs a new session: carol's goes, and the message is acknowledged.
	if err := c.SendText(ctx, "bob@example.com", "back to you", nil); err != nil {
		t.Fatalf("SendText to bob at the session limit: %v", err)
	}
	awaitClosed(2, "the send to bob")
	if closed[1] != sessionOf["carol@example.com"] {
		t.Errorf("second closed session %s, want carol's %s", closed[1], sessionOf["carol@example.com"])
	}
}

// TestIntegrationPassportRedirectElsewhere is a Passport login server that redirects to a
// server of someone else (another loopback port, plain http). The client must not send the
// password there, must fail the login with ErrInsecurePassport and must not treat it as
// retryable.
func TestIntegrationPassportRedirectElsewhere(t *testing.T) {
	srv := startAliceAndBob(t)
	var got, leaked atomic.Int32
	trap := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		if strings.Contains(r.Header.Get("Authorization"), "alicepw") {
			leaked.Add(1)
		}
	}))
	defer trap.Close()
	for _, loc := range []string{trap.URL + "/login2.srf", strings.Replace(srv.HTTPSLoginURL(), "https://", "http://", 1)} {
		srv.PassportRedirectTo(loc)
		c, _ := newAlice(t, srv, msn.Config{})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := c.Login(ctx)
		cancel()
		if !errors.Is(err, msn.ErrInsecurePassport) || msn.Retryable(err) {
			t.Fatalf("redirect to %s: Login = %v, want a lasting ErrInsecurePassport", loc, err)
		}
		if strings.Contains(err.Error(), "alicepw") {
			t.Fatalf("password in error: %v", err)
		}
	}
	if got.Load() != 0 || leaked.Load() != 0 {
		t.Fatalf("the other server got %d requests, %d with the password", got.Load(), leaked.Load())
	}
	// The same origin is still followed.
	srv.PassportRedirectTo("")
	srv.PassportRedirect(true)
	c, _ := newAlice(t, srv, msn.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Login(ctx); err != nil {
		t.Fatalf("same-origin redirect: %v", err)
	}
}

// TestIntegrationBlockUnblock moves a friend from the allow list to the block list and back;
// repeating either is not an error.
func TestIntegrationBlockUnblock(t *testing.T) {
	srv := startAliceAndBob(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, _ := newAlice(t, srv, msn.Config{})
	if err := c.Login(ctx); err != nil {
		t.Fatal(err)
	}
	lists := func() msn.List {
		ct, ok := c.Contact("bob@example.com")
		if !ok {
			t.Fatal("bob is not a contact")
		}
		return ct.Lists & (msn.ListAllow | msn.ListBlock)
	}
	steps := []struct {
		name string
		do   func(context.Context, string) error
		want msn.List
	}{
		{"block", c.BlockContact, msn.ListBlock},
		{"block again", c.BlockContact, msn.ListBlock},
		{"unblock", c.UnblockContact, msn.ListAllow},
		{"unblock again", c.UnblockContact, msn.ListAllow},
	}
	for _, s := range steps {
		if err := s.do(ctx, "bob@example.com"); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := lists(); got != s.want {
			t.Errorf("after %s bob is on %v, want %v", s.name, got, s.want)
		}
	}
}
