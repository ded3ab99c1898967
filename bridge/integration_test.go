package bridge_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"

	"github.com/msn-bridge/msn-bridge/bridge"
	"github.com/msn-bridge/msn-bridge/bridge/bridgetest"
	"github.com/msn-bridge/msn-bridge/internal/testenv/pgtest"
	"github.com/msn-bridge/msn-bridge/msn"
	"github.com/msn-bridge/msn-bridge/msn/msntest"
)

// These tests run the core against the real msn client and the in-process msntest server over
// loopback sockets. Every test captures the core's and the client's logs at trace level and
// checks at the end that no password or Passport ticket was ever written.

const (
	alice   = "alice@example.com"
	alicePW = "alice-Secret-pw-4711"
	echo    = "echo@example.com"
	bob     = "bob@example.com"
	carol   = "carol@example.com"
	dave    = "dave@example.com"
	davePW  = "dave-Secret-pw-0815"
	erin    = "erin@example.com"
	erinPW  = "erin-Secret-pw-1234"
	quiet   = "quiet@example.com"
)

var (
	matrixOwner  = bridge.FrontendUser{Frontend: "matrix", UserID: "@alice:example.org"}
	discordOwner = bridge.FrontendUser{Frontend: "discord", UserID: "4242"}
)

func TestMain(m *testing.M) {
	// Trace lines are the likeliest to carry raw protocol data: enable them everywhere so the
	// secret checks below see them.
	zerolog.SetGlobalLevel(zerolog.TraceLevel)
	os.Exit(m.Run())
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// env is one msntest server with the bridged account alice and her contacts, and the pieces
// to build cores over one database.
type env struct {
	t    *testing.T
	srv  *msntest.Server
	db   *dbutil.Database
	logs *syncBuffer
	key  []byte
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, nil)
}

// newEnvWith is newEnv with the server's options changed by mutate.
func newEnvWith(t *testing.T, mutate func(*msntest.Options)) *env {
	t.Helper()
	opts := msntest.Options{
		Accounts: []msntest.AccountSpec{
			{Handle: alice, Password: alicePW, Name: "Alice"},
			{Handle: echo, Password: "x", Name: "Echo Bot", Status: "NLN", PSM: "I repeat", Bot: msntest.EchoBot},
			{Handle: bob, Password: "x", Name: "Bob ☕ & Co", Status: "AWY", PSM: "gone fishing <3"},
			{Handle: carol, Password: "x", Name: "Carol"},
			{Handle: dave, Password: davePW, Name: "Dave"},
			{Handle: erin, Password: erinPW, Name: "Erin"},
			{Handle: quiet, Password: "x", Name: "Quiet Bot", Status: "NLN", Bot: func(context.Context, *msntest.BotChat, msntest.BotMessage) {}},
		},
		Friends: [][2]string{{alice, echo}, {alice, bob}, {alice, carol}, {dave, echo}, {dave, quiet}},
	}
	if mutate != nil {
		mutate(&opts)
	}
	srv := msntest.New(opts)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	e := &env{t: t, srv: srv, logs: &syncBuffer{}, key: bytes.Repeat([]byte{7}, bridge.KeySize)}
	t.Cleanup(e.checkSecrets)
	return e
}

// openDB opens a fresh database of backend b (SQLite when b is nil) as the env's database.
func (e *env) openDB(b *pgtest.Backend) {
	e.t.Helper()
	if b == nil {
		e.db = pgtest.Open(e.t, pgtest.SQLiteDriver, pgtest.SQLiteDSN(e.t))
		return
	}
	e.db = b.Open(e.t)
}

func (e *env) logger() zerolog.Logger {
	return zerolog.New(e.logs).Level(zerolog.TraceLevel).With().Timestamp().Logger()
}

func (e *env) msnConfig() msn.Config {
	return msn.Config{
		Server:         e.srv.NSAddr(),
		NexusURL:       e.srv.HTTPSNexusURL(),
		HTTPClient:     &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.srv.CertPool()}}},
		PingInterval:   time.Hour,
		DialTimeout:    2 * time.Second,
		RequestTimeout: 5 * time.Second,
		JoinTimeout:    5 * time.Second,
		AckTimeout:     5 * time.Second,
	}
}

func (e *env) config() bridge.Config {
	return bridge.Config{
		MSN:            e.msnConfig(),
		LoginRate:      50,
		LoginBurst:     50,
		Reconnect:      bridge.ReconnectConfig{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond},
		PresenceWindow: 150 * time.Millisecond,
	}
}

// core builds a Core over the env's database (opened on first use), registers the recorders
// and starts it. It is stopped when the test ends.
func (e *env) core(cfg bridge.Config, fes ...bridge.Frontend) *bridge.Core {
	e.t.Helper()
	if e.db == nil {
		e.openDB(nil)
	}
	cipher, err := bridge.NewCipher(e.key)
	if err != nil {
		e.t.Fatal(err)
	}
	log := e.logger()
	store := bridge.NewStore(e.db, cipher, log)
	if err := store.Upgrade(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	core, err := bridge.NewCore(cfg, bridge.Options{Store: store, Log: log})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, fe := range fes {
		core.AddFrontend(fe)
	}
	if err := core.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { stopCore(e.t, core) })
	return core
}

func stopCore(t *testing.T, core *bridge.Core) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := core.Stop(ctx); err != nil {
		t.Errorf("Stop: %v", err)
	}
}

// login logs alice in for owner and waits until she is online on msntest.
func (e *env) login(core *bridge.Core, owner bridge.FrontendUser) *bridge.Account {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	acc, err := core.Login(ctx, owner, alice, alicePW)
	if err != nil {
		e.t.Fatalf("Login: %v", err)
	}
	e.waitServer("alice online on msntest", func() bool { return e.srv.Online(alice) })
	return acc
}

// logins counts alice's completed Passport ticket presentations (USR TWN S) on msntest.
func (e *env) logins() int {
	n := 0
	for _, ev := range e.srv.EventsFor(alice) {
		if ev.Server == "NS" && ev.Name == "USR" && len(ev.Args) > 3 && ev.Args[1] == "TWN" && ev.Args[2] == "S" {
			n++
		}
	}
	return n
}

// checkSecrets fails the test if a password or a Passport ticket seen by msntest appears in
// the captured logs.
func (e *env) checkSecrets() {
	e.t.Helper()
	logs := e.logs.String()
	secrets := []string{alicePW, davePW, erinPW}
	for _, ev := range e.srv.Events() {
		if ev.Name == "USR" && len(ev.Args) > 3 && ev.Args[1] == "TWN" && ev.Args[2] == "S" {
			secrets = append(secrets, strings.TrimPrefix(ev.Args[3], "t="))
		}
	}
	if len(secrets) < 3 && e.logins() > 0 {
		e.t.Error("no Passport ticket found in the server's log to check for")
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(logs, s) {
			e.t.Errorf("secret %.4s… appears in the logs", s)
		}
	}
	if e.logins() > 0 && (!strings.Contains(logs, `"component":"bridge"`) || !strings.Contains(logs, `"level":"debug"`)) {
		e.t.Error("no core or debug log line was captured: the secret check is void")
	}
}

func (e *env) waitServer(what string, cond func() bool) {
	e.t.Helper()
	waitUntil(e.t, what, cond)
}

// waitUntil polls cond for at most 15 s.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// view folds what a frontend was told about the contacts of alice, as a frontend would.
func view(rec *bridgetest.Recorder) map[string]bridge.Contact {
	out := map[string]bridge.Contact{}
	for _, r := range rec.Events() {
		switch e := r.Event.(type) {
		case bridge.ContactSnapshot:
			clear(out)
			for _, c := range e.Contacts {
				out[c.Handle] = c
			}
		case bridge.ContactPresence:
			c := out[e.Handle]
			c.Handle, c.Status, c.MSNStatus, c.Name, c.PSM, c.Media = e.Handle, e.Status, e.MSNStatus, e.Name, e.PSM, e.Media
			out[e.Handle] = c
		case bridge.ContactProfile:
			c := out[e.Handle]
			c.Name = e.Name
			out[e.Handle] = c
		case bridge.ListChange:
			out[e.Contact.Handle] = e.Contact
		}
	}
	return out
}

func waitView(t *testing.T, rec *bridgetest.Recorder, what string, ok func(map[string]bridge.Contact) bool) {
	t.Helper()
	waitUntil(t, rec.Name()+": "+what, func() bool { return ok(view(rec)) })
}

func ofType[T bridge.Event](rec *bridgetest.Recorder) []T {
	var out []T
	for _, r := range rec.Events() {
		if e, ok := r.Event.(T); ok {
			out = append(out, e)
		}
	}
	return out
}

func waitEvent[T bridge.Event](t *testing.T, rec *bridgetest.Recorder, what string, match func(T) bool) T {
	t.Helper()
	r := rec.WaitFor(t, 15*time.Second, what, func(r bridgetest.Recorded) bool {
		e, ok := r.Event.(T)
		return ok && match(e)
	})
	return r.Event.(T)
}

func TestIntegrationLogin(t *testing.T) {
	e := newEnv(t)
	fe := bridgetest.NewRecorder("matrix")
	core := e.core(e.config(), fe)
	ctx := ctxT(t)

	t.Run("wrong password", func(t *testing.T) {
		_, err := core.Login(ctx, matrixOwner, alice, "not-the-password")
		var le *bridge.LoginError
		if !errors.As(err, &le) || !errors.Is(err, bridge.ErrBadCredentials) || le.Retryable {
			t.Fatalf("got %v, want a non-retryable LoginError with ErrBadCredentials", err)
		}
		if _, err := core.Store().GetAccount(ctx, alice); !errors.Is(err, bridge.ErrAccountNotFound) {
			t.Fatalf("account stored after a refused login: %v", err)
		}
		if _, err := core.Store().Credentials(ctx, alice); err == nil {
			t.Fatal("credentials stored after a refused login")
		}
		if core.Account(alice) != nil || e.srv.LoggedIn(alice) {
			t.Fatal("account kept or logged in after a refused login")
		}
	})

	t.Run("server down", func(t *testing.T) {
		down := msntest.New(msntest.Options{})
		if err := down.Start(); err != nil {
			t.Fatal(err)
		}
		down.Close() // its addresses now refuse connections
		cfg := e.config()
		cfg.MSN.Server, cfg.MSN.NexusURL, cfg.MSN.HTTPClient = down.NSAddr(), down.HTTPSNexusURL(), nil
		downCore := e.core(cfg)
		_, err := downCore.Login(ctx, matrixOwner, alice, alicePW)
		var le *bridge.LoginError
		if !errors.As(err, &le) || !le.Retryable || errors.Is(err, bridge.ErrBadCredentials) {
			t.Fatalf("got %v, want a retryable LoginError that is not ErrBadCredentials", err)
		}
		if _, err := downCore.Store().GetAccount(ctx, alice); !errors.Is(err, bridge.ErrAccountNotFound) {
			t.Fatalf("account stored while the server was down: %v", err)
		}
		stopCore(t, downCore)
	})

	t.Run("success", func(t *testing.T) {
		acc, err := core.Login(ctx, matrixOwner, alice, alicePW)
		if err != nil {
			t.Fatal(err)
		}
		// Usable as soon as Login returns.
		if st := acc.State(); st.State != bridge.StateOnline {
			t.Fatalf("state right after Login: %+v", st)
		}
		if _, err := acc.SendText(ctx, "matrix", bridge.DirectChat(echo), "first words", bridge.Format{}); err != nil {
			t.Fatalf("SendText right after Login: %v", err)
		}
		fe.WaitForState(t, alice, bridge.StateOnline)
		want := map[string]bridge.Contact{
			echo:  {Handle: echo, Name: "Echo Bot", Status: bridge.StatusOnline, MSNStatus: "NLN", PSM: "I repeat"},
			bob:   {Handle: bob, Name: "Bob ☕ & Co", Status: bridge.StatusAway, MSNStatus: "AWY", PSM: "gone fishing <3"},
			carol: {Handle: carol, Name: "Carol", Status: bridge.StatusOffline, MSNStatus: "FLN"},
		}
		match := func(got bridge.Contact, w bridge.Contact) bool {
			return got.Name == w.Name && got.Status == w.Status && got.MSNStatus == w.MSNStatus && got.PSM == w.PSM
		}
		waitView(t, fe, "contacts with names, presence and PSM", func(v map[string]bridge.Contact) bool {
			for h, w := range want {
				if !match(v[h], w) {
					return false
				}
			}
			return len(v) == len(want)
		})
		waitEvent(t, fe, "echo of the first words", func(m bridge.Message) bool { return m.Text == "first words" })
		// No presence flap: once shown online, the contacts never appear offline again.
		seen := map[string]bool{}
		for _, r := range fe.Events() {
			var shown []bridge.Contact
			switch ev := r.Event.(type) {
			case bridge.ContactSnapshot:
				shown = ev.Contacts
			case bridge.ContactPresence:
				shown = []bridge.Contact{{Handle: ev.Handle, Status: ev.Status}}
			}
			for _, c := range shown {
				if c.Handle != echo && c.Handle != bob {
					continue
				}
				if c.Status == bridge.StatusOffline && seen[c.Handle] {
					t.Errorf("%s shown offline after it was shown online", c.Handle)
				}
				seen[c.Handle] = seen[c.Handle] || c.Status != bridge.StatusOffline
			}
		}
		for h, w := range want {
			c, ok := acc.Contact(h)
			if !ok || !match(c, w) || !c.Forward || !c.Allowed || !c.Reverse {
				t.Errorf("Contact(%s) = %+v, want %+v on FL/AL/RL", h, c, w)
			}
		}
		rec, err := core.Store().GetAccount(ctx, alice)
		if err != nil || !rec.LoggedIn {
			t.Fatalf("stored account %+v, %v", rec, err)
		}
		if pw, err := core.Store().Credentials(ctx, alice); err != nil || pw != alicePW {
			t.Fatalf("stored credentials: %v", err)
		}
	})
}

// chatEvent reports whether evt is one of the conversation events both frontends must see
// identically.
func chatEvents(rec *bridgetest.Recorder) []bridge.Event {
	var out []bridge.Event
	for _, r := range rec.Events() {
		switch ev := r.Event.(type) {
		case bridge.Message:
			if !ev.FromMe {
				ev.Time = time.Time{}
				out = append(out, ev)
			}
		case bridge.Nudge:
			if !ev.FromMe {
				ev.Time = time.Time{}
				out = append(out, ev)
			}
		case bridge.Typing:
			out = append(out, ev)
		}
	}
	return out
}

func TestIntegrationTwoFrontends(t *testing.T) {
	e := newEnv(t)
	mx, dc := bridgetest.NewRecorder("matrix"), bridgetest.NewRecorder("discord")
	core := e.core(e.config(), mx, dc)
	acc := e.login(core, matrixOwner)
	ctx := ctxT(t)
	before := e.logins()
	code, _, err := core.IssueLinkCode(ctx, alice, matrixOwner)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := core.RedeemLinkCode(ctx, code, discordOwner); err != nil {
		t.Fatal(err)
	}
	if e.logins() != before {
		t.Fatal("linking a second frontend made a second MSN login")
	}
	dc.WaitForState(t, alice, bridge.StateOnline)

	// A bot's message arrives on both, with its decoded friendly name.
	if err := e.srv.BotSay(echo, alice, "hello from the bot\nsecond line"); err != nil {
		t.Fatal(err)
	}
	for _, fe := range []*bridgetest.Recorder{mx, dc} {
		m := waitEvent(t, fe, "bot message", func(m bridge.Message) bool { return m.Text == "hello from the bot\nsecond line" })
		if m.Chat != bridge.DirectChat(echo) || m.Sender != echo || m.SenderName != "Echo Bot" || m.FromMe || m.ID == "" {
			t.Errorf("%s: message %+v", fe.Name(), m)
		}
	}

	// A reply from matrix reaches the bot (which echoes it), and is shown on discord only.
	id, err := acc.SendText(ctx, "matrix", bridge.DirectChat(echo), "ping from matrix", bridge.Format{Bold: true})
	if err != nil || id == "" {
		t.Fatalf("SendText: %q %v", id, err)
	}
	for _, fe := range []*bridgetest.Recorder{mx, dc} {
		waitEvent(t, fe, "echo", func(m bridge.Message) bool { return m.Text == "ping from matrix" && !m.FromMe && m.Sender == echo })
	}
	mine := waitEvent(t, dc, "own message shown on discord", func(m bridge.Message) bool { return m.FromMe })
	if mine.ID != id || mine.Origin != "matrix" || mine.Text != "ping from matrix" || mine.Chat != bridge.DirectChat(echo) {
		t.Errorf("own message on discord: %+v", mine)
	}
	if len(slices.DeleteFunc(ofType[bridge.Message](mx), func(m bridge.Message) bool { return !m.FromMe })) != 0 {
		t.Error("matrix got its own message back")
	}

	// Typing and nudges from the bot.
	if err := e.srv.BotTyping(echo, alice); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.BotNudge(echo, alice); err != nil {
		t.Fatal(err)
	}
	for _, fe := range []*bridgetest.Recorder{mx, dc} {
		waitEvent(t, fe, "typing", func(ev bridge.Typing) bool { return ev.Sender == echo && ev.Chat == bridge.DirectChat(echo) })
		waitEvent(t, fe, "nudge", func(ev bridge.Nudge) bool { return ev.Sender == echo && !ev.FromMe })
	}

	// Typing and a nudge to the bot: the server sees both, the echo bot nudges back.
	if err := acc.SendTyping(ctx, bridge.DirectChat(echo)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "typing notification on the switchboard", func() bool {
		for _, ev := range e.srv.EventsFor(alice) {
			if ev.Server == "SB" && ev.Name == "MSG" && bytes.Contains(ev.Payload, []byte("text/x-msmsgscontrol")) {
				return true
			}
		}
		return false
	})
	if err := acc.SendNudge(ctx, "discord", bridge.DirectChat(echo)); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, mx, "own nudge shown on matrix", func(n bridge.Nudge) bool { return n.FromMe && n.Origin == "discord" })
	for _, fe := range []*bridgetest.Recorder{mx, dc} {
		waitUntil(t, fe.Name()+": nudge back", func() bool {
			return len(slices.DeleteFunc(ofType[bridge.Nudge](fe), func(n bridge.Nudge) bool { return n.FromMe })) >= 2
		})
	}

	// Both frontends saw the same conversation events in the same order.
	if a, b := chatEvents(mx), chatEvents(dc); !slices.EqualFunc(a, b, func(x, y bridge.Event) bool { return equalEvent(x, y) }) {
		t.Errorf("frontends disagree:\nmatrix:  %+v\ndiscord: %+v", a, b)
	}
}

func equalEvent(a, b bridge.Event) bool {
	switch x := a.(type) {
	case bridge.Message:
		y, ok := b.(bridge.Message)
		return ok && reflect.DeepEqual(x, y)
	case bridge.Nudge:
		y, ok := b.(bridge.Nudge)
		return ok && x == y
	case bridge.Typing:
		y, ok := b.(bridge.Typing)
		return ok && x == y
	}
	return false
}

func TestIntegrationPresenceStorm(t *testing.T) {
	e := newEnv(t)
	fe := bridgetest.NewRecorder("matrix")
	cfg := e.config()
	cfg.PresenceWindow = 300 * time.Millisecond
	core := e.core(cfg, fe)
	e.login(core, matrixOwner)
	waitView(t, fe, "initial presence", func(v map[string]bridge.Contact) bool { return v[bob].PSM == "gone fishing <3" })
	fe.Reset()

	statuses := []string{"NLN", "BSY", "AWY", "BRB", "PHN", "LUN", "IDL"}
	const rounds = 40
	changes := 0
	for i := range rounds {
		for _, h := range []string{bob, echo} {
			if err := e.srv.SetPresence(h, statuses[i%len(statuses)], "psm "+strings.Repeat("x", i%5)); err != nil {
				t.Fatal(err)
			}
			changes += 2 // status and PSM
		}
	}
	// Final states, different from every state of the storm.
	if err := e.srv.SetPresence(bob, "LUN", "final bob"); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.SetPresence(echo, "", "final echo"); err != nil { // offline
		t.Fatal(err)
	}
	waitView(t, fe, "final presence", func(v map[string]bridge.Contact) bool {
		return v[bob].MSNStatus == "LUN" && v[bob].PSM == "final bob" && v[echo].Status == bridge.StatusOffline
	})
	// Wait until the last window was flushed, then check the final event per contact.
	waitUntil(t, "last presence event", func() bool {
		ps := ofType[bridge.ContactPresence](fe)
		last := map[string]bridge.ContactPresence{}
		for _, p := range ps {
			last[p.Handle] = p
		}
		return last[bob].PSM == "final bob" && last[bob].Status == bridge.StatusLunch && last[echo].Status == bridge.StatusOffline
	})
	ps := ofType[bridge.ContactPresence](fe)
	if len(ps) > changes/5 {
		t.Errorf("%d presence events for %d changes: not coalesced", len(ps), changes)
	}
	t.Logf("%d presence events for %d changes", len(ps), changes)
}

func TestIntegrationSendFailures(t *testing.T) {
	e := newEnv(t)
	fe := bridgetest.NewRecorder("matrix")
	core := e.core(e.config(), fe)
	acc := e.login(core, matrixOwner)
	ctx := ctxT(t)

	t.Run("contact offline", func(t *testing.T) {
		_, err := acc.SendText(ctx, "matrix", bridge.DirectChat(carol), "are you there?", bridge.Format{})
		var se *bridge.SendError
		if !errors.As(err, &se) || se.Reason != bridge.FailureContactOffline || !errors.Is(err, msn.ErrContactOffline) {
			t.Fatalf("got %v, want a SendError with reason %s", err, bridge.FailureContactOffline)
		}
		if !strings.Contains(err.Error(), "offline") {
			t.Errorf("error %q does not say the contact is offline", err)
		}
		err = acc.SendNudge(ctx, "matrix", bridge.DirectChat(carol))
		if !errors.As(err, &se) || se.Reason != bridge.FailureContactOffline {
			t.Fatalf("nudge: got %v, want a SendError with reason %s", err, bridge.FailureContactOffline)
		}
	})

	t.Run("one NAK is retried", func(t *testing.T) {
		if err := e.srv.NAKNext(alice); err != nil {
			t.Fatal(err)
		}
		if _, err := acc.SendText(ctx, "matrix", bridge.DirectChat(echo), "after a nak", bridge.Format{}); err != nil {
			t.Fatalf("SendText after one NAK: %v", err)
		}
		waitEvent(t, fe, "echo after NAK", func(m bridge.Message) bool { return m.Text == "after a nak" && m.Sender == echo })
	})

	t.Run("NAK every time is reported", func(t *testing.T) {
		e.srv.NAKAll(true)
		defer e.srv.NAKAll(false)
		_, err := acc.SendText(ctx, "matrix", bridge.DirectChat(echo), "never delivered", bridge.Format{})
		var se *bridge.SendError
		if !errors.As(err, &se) || se.Reason != bridge.FailureNAK || se.Part != 0 {
			t.Fatalf("got %v, want a SendError with reason %s", err, bridge.FailureNAK)
		}
	})

	t.Run("switchboard closed", func(t *testing.T) {
		if _, err := acc.SendText(ctx, "matrix", bridge.DirectChat(echo), "before close", bridge.Format{}); err != nil {
			t.Fatal(err)
		}
		waitEvent(t, fe, "echo before close", func(m bridge.Message) bool { return m.Text == "before close" })
		if bridge.OpenChats(acc) == 0 {
			t.Fatal("the conversation with the bot is not tracked")
		}
		if n := e.srv.CloseSwitchboards(alice); n == 0 {
			t.Fatal("no switchboard to close")
		}
		waitUntil(t, "the client to see the switchboard close", func() bool { return bridge.OpenChats(acc) == 0 })
		if _, err := acc.SendText(ctx, "matrix", bridge.DirectChat(echo), "after close", bridge.Format{}); err != nil {
			t.Fatalf("SendText after the switchboard closed: %v", err)
		}
		waitEvent(t, fe, "echo after close", func(m bridge.Message) bool { return m.Text == "after close" })
	})

	t.Run("switchboard closes while sending", func(t *testing.T) {
		// A message written just as the switchboard closes may or may not have arrived: it is
		// reported, never lost silently, and the next one goes through a new switchboard.
		if e.srv.CloseSwitchboards(alice) == 0 {
			t.Fatal("no switchboard to close")
		}
		_, err := acc.SendText(ctx, "matrix", bridge.DirectChat(echo), "racing the close", bridge.Format{})
		var se *bridge.SendError
		if err != nil && (!errors.As(err, &se) || se.Reason != bridge.FailureSwitchboardClosed) {
			t.Fatalf("got %v, want nil or a SendError with reason %s", err, bridge.FailureSwitchboardClosed)
		}
		if _, err := acc.SendText(ctx, "matrix", bridge.DirectChat(echo), "after the race", bridge.Format{}); err != nil {
			t.Fatalf("SendText after the race: %v", err)
		}
		waitEvent(t, fe, "echo after the race", func(m bridge.Message) bool { return m.Text == "after the race" })
	})

	t.Run("message to self", func(t *testing.T) {
		_, err := acc.SendText(ctx, "matrix", bridge.DirectChat(alice), "to myself", bridge.Format{})
		var se *bridge.SendError
		if !errors.As(err, &se) || se.Reason != bridge.FailureInvalid {
			t.Fatalf("message to self: %v", err)
		}
	})
}

// loginsStable checks, after a pause long enough for several reconnect attempts, that alice
// logged in to msntest exactly want times.
func loginsStable(t *testing.T, e *env, want int) {
	t.Helper()
	// A reconnect would come within a few backoff ceilings (100 ms); give it ten times that.
	time.Sleep(time.Second)
	if got := e.logins(); got != want {
		t.Fatalf("%d MSN logins, want %d", got, want)
	}
}

func TestIntegrationKick(t *testing.T) {
	e := newEnv(t)
	fe := bridgetest.NewRecorder("matrix")
	core := e.core(e.config(), fe)
	acc := e.login(core, matrixOwner)
	if err := e.srv.Kick(alice); err != nil {
		t.Fatal(err)
	}
	st := fe.WaitForState(t, alice, bridge.StateStopped)
	if st.Reason != bridge.StopOtherLocation || st.Err == nil {
		t.Fatalf("stopped with %+v, want reason %s", st, bridge.StopOtherLocation)
	}
	loginsStable(t, e, 1)
	if s := acc.State(); s.State != bridge.StateStopped {
		t.Fatalf("state %+v", s)
	}
	for _, r := range fe.Events() {
		if s, ok := r.Event.(bridge.AccountState); ok && s.State == bridge.StateReconnecting {
			t.Fatalf("reconnecting after OUT OTH: %+v", s)
		}
	}
	ctx := ctxT(t)
	rec, err := core.Store().GetAccount(ctx, alice)
	if err != nil || rec.LoggedIn {
		t.Fatalf("stored account after OUT OTH: %+v %v", rec, err)
	}
	// The owner may take the session back explicitly.
	if err := acc.Reconnect(ctx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "back online", func() bool { return acc.State().State == bridge.StateOnline && e.srv.Online(alice) })
}

func TestIntegrationReconnect(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault func(*msntest.Server) error
	}{
		{"drop", func(s *msntest.Server) error { return s.DropConnection(alice) }},
		{"shutdown", func(s *msntest.Server) error {
			if s.Shutdown(alice) != 1 {
				return errors.New("no session shut down")
			}
			return nil
		}},
		{"rct0", func(s *msntest.Server) error { return s.RCT(alice, 0) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			fe := bridgetest.NewRecorder("matrix")
			core := e.core(e.config(), fe)
			acc := e.login(core, matrixOwner)
			if err := tc.fault(e.srv); err != nil {
				t.Fatal(err)
			}
			st := fe.WaitForState(t, alice, bridge.StateReconnecting)
			if st.Attempt != 1 || st.Err == nil || st.NextAttempt.IsZero() {
				t.Errorf("reconnecting state %+v", st)
			}
			waitUntil(t, "second login", func() bool { return e.logins() == 2 })
			waitUntil(t, "back online", func() bool { return acc.State().State == bridge.StateOnline && e.srv.Online(alice) })
			// Messages flow on the new session.
			ctx := ctxT(t)
			if _, err := acc.SendText(ctx, "matrix", bridge.DirectChat(echo), "after "+tc.name, bridge.Format{}); err != nil {
				t.Fatal(err)
			}
			waitEvent(t, fe, "echo", func(m bridge.Message) bool { return m.Text == "after "+tc.name })
			// One snapshot per login: the frontend can reconcile the contact list.
			if n := len(ofType[bridge.ContactSnapshot](fe)); n < 2 {
				t.Errorf("%d contact snapshots, want one per login", n)
			}
		})
	}
}

func TestIntegrationRCTFloor(t *testing.T) {
	e := newEnv(t)
	fe := bridgetest.NewRecorder("matrix")
	core := e.core(e.config(), fe)
	e.login(core, matrixOwner)
	before := time.Now()
	if err := e.srv.RCT(alice, 5); err != nil {
		t.Fatal(err)
	}
	st := fe.WaitForState(t, alice, bridge.StateReconnecting)
	if st.NextAttempt.Before(before.Add(5 * time.Minute)) {
		t.Fatalf("next attempt %v is before the 5 min the server asked for", st.NextAttempt.Sub(before))
	}
	loginsStable(t, e, 1)
}

func TestIntegrationRestart(t *testing.T) {
	pgtest.Databases(t, func(t *testing.T, b pgtest.Backend) {
		e := newEnv(t)
		e.openDB(&b)
		ctx := ctxT(t)
		fe1 := bridgetest.NewRecorder("matrix")
		core1 := e.core(e.config(), fe1)
		acc := e.login(core1, matrixOwner)
		if err := acc.SetName(ctx, "matrix", "Alice (bridged)"); err != nil {
			t.Fatal(err)
		}
		if err := acc.SetPSM(ctx, "matrix", "mirrored <everywhere>"); err != nil {
			t.Fatal(err)
		}
		if err := acc.SetStatus(ctx, "matrix", bridge.StatusBusy); err != nil {
			t.Fatal(err)
		}
		// Applied on MSN at once: the account is online as soon as Login returned.
		if e.srv.FriendlyName(alice) != "Alice (bridged)" || e.srv.PSM(alice) != "mirrored <everywhere>" || e.srv.Status(alice) != "BSY" {
			t.Fatalf("profile on msntest: %q %q %q", e.srv.FriendlyName(alice), e.srv.PSM(alice), e.srv.Status(alice))
		}
		stopCore(t, core1)
		waitUntil(t, "logged out of msntest", func() bool { return !e.srv.LoggedIn(alice) })
		// Someone changed the name elsewhere meanwhile: the bridge restores the chosen one.
		if err := e.srv.SetFriendlyName(alice, "Changed Elsewhere"); err != nil {
			t.Fatal(err)
		}

		fe2 := bridgetest.NewRecorder("matrix")
		core2 := e.core(e.config(), fe2)
		acc2 := core2.Account(alice)
		if acc2 == nil {
			t.Fatal("stored account not loaded")
		}
		fe2.WaitForState(t, alice, bridge.StateOnline)
		waitUntil(t, "profile restored on msntest", func() bool {
			return e.srv.FriendlyName(alice) == "Alice (bridged)" && e.srv.PSM(alice) == "mirrored <everywhere>" && e.srv.Status(alice) == "BSY"
		})
		if st, psm, name := acc2.Profile(); st != bridge.StatusBusy || psm != "mirrored <everywhere>" || name != "Alice (bridged)" {
			t.Errorf("profile after restart: %v %q %q", st, psm, name)
		}
		if e.logins() != 2 {
			t.Errorf("%d MSN logins, want 2", e.logins())
		}
		// The name the server had is never shown: no flapping display name.
		for _, p := range ofType[bridge.OwnProfile](fe2) {
			if p.Name != "Alice (bridged)" {
				t.Errorf("own profile shown with name %q", p.Name)
			}
		}
		if err := e.srv.BotSay(echo, alice, "welcome back"); err != nil {
			t.Fatal(err)
		}
		waitEvent(t, fe2, "message after restart", func(m bridge.Message) bool { return m.Text == "welcome back" })
		if _, err := acc2.SendText(ctx, "matrix", bridge.DirectChat(echo), "I am back", bridge.Format{}); err != nil {
			t.Fatal(err)
		}
		waitEvent(t, fe2, "echo after restart", func(m bridge.Message) bool { return m.Text == "I am back" })
	})
}

// peer is a plain msn client logged in to msntest as another user, with the events it got.
type peer struct {
	*msn.Client
	mu     sync.Mutex
	events []msn.Event
}

func (e *env) peer(handle, password string) *peer {
	e.t.Helper()
	p := &peer{}
	cfg := e.msnConfig()
	cfg.Log = e.logger()
	c, err := msn.NewClient(cfg, handle, password, func(ev msn.Event) {
		p.mu.Lock()
		p.events = append(p.events, ev)
		p.mu.Unlock()
	})
	if err != nil {
		e.t.Fatal(err)
	}
	p.Client = c
	e.t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := c.Login(ctx); err != nil {
		e.t.Fatalf("%s: Login: %v", handle, err)
	}
	return p
}

// waitMessage waits until the peer received text from sender.
func (p *peer) waitMessage(t *testing.T, sender, text string) *msn.MessageReceived {
	t.Helper()
	var got *msn.MessageReceived
	waitUntil(t, p.Handle()+": message "+text, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, ev := range p.events {
			if m, ok := ev.(*msn.MessageReceived); ok && m.From == sender && m.Text == text {
				got = m
				return true
			}
		}
		return false
	})
	return got
}

func TestIntegrationContactManagement(t *testing.T) {
	e := newEnv(t)
	// quiet already allows alice, so she sees its presence once she adds it.
	if err := e.srv.AddContact(quiet, alice, msntest.AL); err != nil {
		t.Fatal(err)
	}
	fe := bridgetest.NewRecorder("matrix")
	core := e.core(e.config(), fe)
	acc := e.login(core, matrixOwner)
	ctx := ctxT(t)
	lists := func(owner, contact string) msntest.ListBits { return e.srv.Lists(owner, contact) }
	waitList := func(kind bridge.ListChangeKind, handle string) bridge.ListChange {
		t.Helper()
		return waitEvent(t, fe, string(kind)+" "+handle, func(c bridge.ListChange) bool {
			return c.Kind == kind && c.Contact.Handle == handle
		})
	}

	if err := acc.AddContact(ctx, "Quiet@Example.com", ""); err != nil {
		t.Fatal(err)
	}
	if c := waitList(bridge.ListAdded, quiet).Contact; !c.Forward || c.Name != "Quiet Bot" {
		t.Errorf("added contact %+v", c)
	}
	// The allow-list half of the add follows the forward-list event.
	waitUntil(t, "quiet allowed", func() bool { c, _ := acc.Contact(quiet); return c.Allowed })
	if l := lists(alice, quiet); l&msntest.FL == 0 || l&msntest.AL == 0 {
		t.Errorf("msntest lists of quiet after add: %v", l)
	}
	waitView(t, fe, "added contact's presence", func(v map[string]bridge.Contact) bool { return v[quiet].Status == bridge.StatusOnline })

	if err := acc.Block(ctx, bob); err != nil {
		t.Fatal(err)
	}
	if c := waitList(bridge.ListBlocked, bob).Contact; !c.Blocked || c.Allowed {
		t.Errorf("blocked contact %+v", c)
	}
	if l := lists(alice, bob); l&msntest.BL == 0 || l&msntest.AL != 0 {
		t.Errorf("msntest lists of bob after block: %v", l)
	}
	if err := acc.Unblock(ctx, bob); err != nil {
		t.Fatal(err)
	}
	if c := waitList(bridge.ListUnblocked, bob).Contact; c.Blocked {
		t.Errorf("unblocked contact %+v", c)
	}
	waitUntil(t, "bob allowed again", func() bool { c, _ := acc.Contact(bob); return c.Allowed && !c.Blocked })
	if l := lists(alice, bob); l&msntest.BL != 0 || l&msntest.AL == 0 {
		t.Errorf("msntest lists of bob after unblock: %v", l)
	}

	if err := acc.RemoveContact(ctx, quiet); err != nil {
		t.Fatal(err)
	}
	if c := waitList(bridge.ListRemoved, quiet).Contact; c.Forward {
		t.Errorf("removed contact %+v", c)
	}
	if l := lists(alice, quiet); l&msntest.FL != 0 {
		t.Errorf("msntest lists of quiet after remove: %v", l)
	}

	// Requests: dave and erin add alice; she accepts dave (adding him back) and declines erin,
	// blocking her.
	for _, p := range []struct{ handle, pw, name string }{{dave, davePW, "Dave"}, {erin, erinPW, "Erin"}} {
		c := e.peer(p.handle, p.pw)
		if err := c.AddContact(ctx, alice, ""); err != nil {
			t.Fatalf("%s adds alice: %v", p.handle, err)
		}
		req := waitEvent(t, fe, "request from "+p.handle, func(r bridge.ContactRequest) bool { return r.Handle == p.handle })
		if req.Name != p.name {
			t.Errorf("request %+v, want name %q", req, p.name)
		}
	}
	waitUntil(t, "two pending requests", func() bool { return len(acc.PendingRequests()) == 2 })

	if err := acc.AcceptRequest(ctx, dave, true); err != nil {
		t.Fatal(err)
	}
	if c := waitList(bridge.ListAdded, dave).Contact; !c.Forward || !c.Allowed || !c.Reverse {
		t.Errorf("accepted contact %+v", c)
	}
	if l := lists(alice, dave); l&msntest.FL == 0 || l&msntest.AL == 0 || l&msntest.PL != 0 {
		t.Errorf("msntest lists of dave after accept: %v", l)
	}
	if err := acc.DeclineRequest(ctx, erin, true); err != nil {
		t.Fatal(err)
	}
	if c := waitList(bridge.ListBlocked, erin).Contact; !c.Blocked || c.Forward {
		t.Errorf("declined contact %+v", c)
	}
	if l := lists(alice, erin); l&msntest.BL == 0 || l&msntest.AL != 0 || l&msntest.PL != 0 || l&msntest.FL != 0 {
		t.Errorf("msntest lists of erin after decline: %v", l)
	}
	waitUntil(t, "no pending requests", func() bool { return len(acc.PendingRequests()) == 0 })

	// Bad input is refused before anything reaches MSN.
	if err := acc.AddContact(ctx, "not a handle", ""); !errors.Is(err, bridge.ErrInvalidHandle) {
		t.Errorf("AddContact with a bad handle: %v", err)
	}
	if err := acc.Block(ctx, alice); !errors.Is(err, bridge.ErrInvalidArgument) {
		t.Errorf("Block self: %v", err)
	}
}

func TestIntegrationGroupChat(t *testing.T) {
	e := newEnv(t)
	if err := e.srv.AddFriends(alice, dave); err != nil {
		t.Fatal(err)
	}
	fe := bridgetest.NewRecorder("matrix")
	core := e.core(e.config(), fe)
	acc := e.login(core, matrixOwner)
	ctx := ctxT(t)
	d := e.peer(dave, davePW)

	t.Run("one-to-one becomes a group", func(t *testing.T) {
		if err := d.SendText(ctx, alice, "hi alice", nil); err != nil {
			t.Fatal(err)
		}
		m := waitEvent(t, fe, "dave's message", func(m bridge.Message) bool { return m.Text == "hi alice" })
		if m.Chat != bridge.DirectChat(dave) || m.SenderName != "Dave" {
			t.Fatalf("message %+v", m)
		}
		var sid string
		for id, members := range d.Sessions() {
			if slices.Equal(members, []string{alice}) {
				sid = id
			}
		}
		if sid == "" {
			t.Fatalf("dave's sessions: %v", d.Sessions())
		}
		if err := d.InviteToSession(ctx, sid, echo); err != nil {
			t.Fatal(err)
		}
		cm := waitEvent(t, fe, "echo joins", func(c bridge.ChatMembership) bool { return c.Handle == echo && c.Joined })
		if !cm.Chat.IsGroup() || cm.Chat.GroupID() != sid || !slices.Equal(cm.Members, []string{dave, echo}) {
			t.Fatalf("membership %+v, want group %s with dave and echo", cm, sid)
		}
		if _, err := acc.SendText(ctx, "matrix", cm.Chat, "hello group", bridge.Format{}); err != nil {
			t.Fatal(err)
		}
		d.waitMessage(t, alice, "hello group")
		// The echo bot got it too: it says it again to everyone.
		got := waitEvent(t, fe, "echo in the group", func(m bridge.Message) bool { return m.Sender == echo && m.Text == "hello group" })
		if got.Chat != cm.Chat {
			t.Errorf("echo arrived in %s, want %s", got.Chat, cm.Chat)
		}
		d.waitMessage(t, echo, "hello group")
		if err := acc.SendTyping(ctx, cm.Chat); err != nil {
			t.Errorf("typing in a group: %v", err)
		}

		// Dave leaves: the others are told, and alice can still talk to the bot there.
		if err := d.LeaveSession(ctx, sid); err != nil {
			t.Fatal(err)
		}
		left := waitEvent(t, fe, "dave leaves", func(c bridge.ChatMembership) bool { return c.Handle == dave && !c.Joined })
		if left.Chat != cm.Chat || !slices.Equal(left.Members, []string{echo}) {
			t.Errorf("leave %+v", left)
		}
		if _, err := acc.SendText(ctx, "matrix", cm.Chat, "still here", bridge.Format{}); err != nil {
			t.Fatal(err)
		}
		waitEvent(t, fe, "echo after dave left", func(m bridge.Message) bool { return m.Sender == echo && m.Text == "still here" && m.Chat == cm.Chat })
	})

	t.Run("invited into a group", func(t *testing.T) {
		if err := d.SendText(ctx, quiet, "psst", nil); err != nil {
			t.Fatal(err)
		}
		var sid string
		for id, members := range d.Sessions() {
			if slices.Equal(members, []string{quiet}) {
				sid = id
			}
		}
		if sid == "" {
			t.Fatalf("dave's sessions: %v", d.Sessions())
		}
		if err := d.InviteToSession(ctx, sid, alice); err != nil {
			t.Fatal(err)
		}
		cm := waitEvent(t, fe, "group with quiet", func(c bridge.ChatMembership) bool {
			return c.Joined && c.Chat == bridge.GroupChat(sid) && len(c.Members) == 2
		})
		if !slices.Equal(cm.Members, []string{dave, quiet}) {
			t.Errorf("membership %+v", cm)
		}
		if _, err := acc.SendText(ctx, "matrix", cm.Chat, "hi both", bridge.Format{}); err != nil {
			t.Fatal(err)
		}
		d.waitMessage(t, alice, "hi both")
		if err := d.SendGroupText(ctx, sid, "dave to the group", nil); err != nil {
			t.Fatal(err)
		}
		m := waitEvent(t, fe, "dave in the group", func(m bridge.Message) bool { return m.Text == "dave to the group" })
		if m.Chat != cm.Chat {
			t.Errorf("group message in %s, want %s", m.Chat, cm.Chat)
		}
	})
}

// The core's own Passport client (shared by its sessions) verifies the server's certificate:
// against msntest's self-signed one a login fails with a certificate error, not as bad
// credentials, and succeeds once msn.ca_file trusts that certificate.
func TestCorePassportClientVerifiesTLS(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.MSN.HTTPClient = nil
	core := e.core(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_, err := core.Login(ctx, matrixOwner, alice, alicePW)
	var uerr x509.UnknownAuthorityError
	if err == nil || errors.Is(err, bridge.ErrBadCredentials) || !errors.As(err, &uerr) || !errors.Is(err, bridge.ErrUnverifiedCertificate) {
		t.Fatalf("login against an untrusted certificate: %v, want an unknown authority error", err)
	}

	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, e.srv.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.MSN.CAFile = caFile
	core2 := e.core(cfg)
	e.login(core2, matrixOwner)
}

// TestIntegrationContactRequestsOnce: a contact request is announced at the first login (the
// session is online before the frontend attaches), once: a reconnect does not announce it
// again; a contact the server still flags pending but that is on the allow list is no request,
// and its flag is cleared on the server.
func TestIntegrationContactRequestsOnce(t *testing.T) {
	e := newEnv(t)
	for _, err := range []error{
		e.srv.AddContact(dave, alice, msntest.FL),
		e.srv.AddContact(erin, alice, msntest.FL),
		e.srv.AddContact(alice, erin, msntest.AL),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	fe := bridgetest.NewRecorder("matrix")
	core := e.core(e.config(), fe)
	acc := e.login(core, matrixOwner)
	waitEvent(t, fe, "dave's request", func(r bridge.ContactRequest) bool { return r.Handle == dave })
	e.waitServer("erin's stale pending flag cleared", func() bool { return e.srv.Lists(alice, erin)&msntest.PL == 0 })

	if err := e.srv.DropConnection(alice); err != nil {
		t.Fatal(err)
	}
	fe.WaitForState(t, alice, bridge.StateReconnecting)
	waitUntil(t, "back online", func() bool { return acc.State().State == bridge.StateOnline && e.srv.Online(alice) })
	// Events are delivered in order: once the echo is seen, a repeated request would be too.
	if _, err := acc.SendText(ctxT(t), "matrix", bridge.DirectChat(echo), "after the reconnect", bridge.Format{}); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, fe, "echo", func(m bridge.Message) bool { return m.Text == "after the reconnect" && !m.FromMe })
	counts := map[string]int{}
	for _, r := range ofType[bridge.ContactRequest](fe) {
		counts[r.Handle]++
	}
	if counts[dave] != 1 || counts[erin] != 0 {
		t.Fatalf("requests announced %v, want dave once and erin never", counts)
	}
	if reqs := acc.PendingRequests(); len(reqs) != 1 || reqs[0].Handle != dave {
		t.Fatalf("PendingRequests = %+v, want dave alone", reqs)
	}
}

// TestIntegrationGroupNames: a multi-party chat carries the friendly names the switchboard
// gives its members, so a participant who is no contact of the account is named, not shown
// by handle.
func TestIntegrationGroupNames(t *testing.T) {
	e := newEnv(t)
	if err := e.srv.AddFriends(alice, dave); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.AddFriends(dave, erin); err != nil {
		t.Fatal(err)
	}
	fe := bridgetest.NewRecorder("matrix")
	core := e.core(e.config(), fe)
	e.login(core, matrixOwner)
	ctx := ctxT(t)
	d := e.peer(dave, davePW)
	e.peer(erin, erinPW)
	if err := d.SendText(ctx, alice, "hi alice", nil); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, fe, "dave's message", func(m bridge.Message) bool { return m.Text == "hi alice" })
	var sid string
	for id, members := range d.Sessions() {
		if slices.Equal(members, []string{alice}) {
			sid = id
		}
	}
	if err := d.InviteToSession(ctx, sid, erin); err != nil {
		t.Fatal(err)
	}
	cm := waitEvent(t, fe, "erin joins", func(c bridge.ChatMembership) bool { return c.Handle == erin && c.Joined })
	if cm.Names[erin] != "Erin" || cm.Names[dave] != "Dave" {
		t.Fatalf("membership names %v, want erin as Erin and dave as Dave", cm.Names)
	}
}

// TestIntegrationServerNotices: a maintenance announcement and a session the server closes
// for a shutdown or for a while reach the frontends as ServerNotice, not only the log.
func TestIntegrationServerNotices(t *testing.T) {
	e := newEnv(t)
	fe := bridgetest.NewRecorder("matrix")
	core := e.core(e.config(), fe)
	acc := e.login(core, matrixOwner)
	payload := "MIME-Version: 1.0\r\nContent-Type: application/x-msmsgssystemmessage\r\n\r\nType: 1\r\nArg1: 5\r\n"
	if err := e.srv.InjectLine(alice, []byte(fmt.Sprintf("MSG Hotmail Hotmail %d\r\n%s", len(payload), payload))); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, fe, "maintenance notice", func(n bridge.ServerNotice) bool {
		return n.Kind == bridge.NoticeMaintenance && n.Minutes == 5
	})
	if e.srv.Shutdown(alice) != 1 {
		t.Fatal("no session shut down")
	}
	waitEvent(t, fe, "shutdown notice", func(n bridge.ServerNotice) bool { return n.Kind == bridge.NoticeShutdown })
	waitUntil(t, "back online", func() bool { return acc.State().State == bridge.StateOnline && e.srv.Online(alice) })
	if err := e.srv.RCT(alice, 0); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, fe, "retry-later notice", func(n bridge.ServerNotice) bool { return n.Kind == bridge.NoticeRetryLater })
}
