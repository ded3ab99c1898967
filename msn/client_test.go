package msn

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const (
	bobGUID   = "0574477f-09ae-4d28-aca0-2606ee6a84b5"
	groupGUID = "3b2c8f2e-1111-2222-3333-444455556666"
)

var escargotSYN = []string{
	"GTC A",
	"BLP AL",
	"PRP MFN Alice%20A.",
	"LSG Friends " + groupGUID,
	"LST N=bob@example.com F=Bob C=" + bobGUID + " 11 " + groupGUID,
	"BPR PHH",
	"BPR MOB N",
	"LST N=carol@example.com F=Carol 24 ", // RL|PL, trailing empty group token
	"LST N=tel:15551234567 F=Phone 1",
}

func escargotOnline(fc *fakeConn, trid string) {
	fc.send("ILN " + trid + " NLN bob@example.com Bob%20B%C3%A9 1073791020 %3Cmsnobj%2F%3E")
	fc.sendPayload("UBX bob@example.com", "<Data><PSM>my msn &amp; ducked</PSM><CurrentMedia></CurrentMedia></Data>")
}

func TestLoginEscargot(t *testing.T) {
	ns := newFakeServer(t)
	ns.escargotNS(escargotSYN, escargotOnline)
	pp := passportServer(t)
	logs := &syncBuffer{}
	c, l := login(t, testConfig(ns, pp, logs))

	if got := c.Protocol(); got != "MSNP11" {
		t.Errorf("Protocol = %q", got)
	}
	evs := l.all()
	if len(evs) == 0 {
		waitEvent[*LoggedIn](t, l, nil)
		evs = l.all()
	}
	if _, ok := evs[0].(*LoggedIn); !ok {
		t.Fatalf("first event is %T, want *LoggedIn", evs[0])
	}
	synced := waitEvent[*ContactListSynced](t, l, nil)
	if len(synced.Contacts) != 3 || len(synced.Groups) != 1 {
		t.Fatalf("synced %d contacts, %d groups", len(synced.Contacts), len(synced.Groups))
	}
	req := waitEvent[*ContactRequest](t, l, nil)
	if req.Handle != "carol@example.com" || req.Name != "Carol" {
		t.Errorf("ContactRequest = %+v", req)
	}
	pres := waitEvent[*PresenceChanged](t, l, nil)
	if pres.Handle != "bob@example.com" || pres.Status != StatusOnline || !pres.Initial || pres.FriendlyName != "Bob Bé" || pres.MSNObject != "" || pres.Capabilities != 1073791020 {
		t.Errorf("PresenceChanged = %+v", pres)
	}
	psm := waitEvent[*PersonalMessageChanged](t, l, nil)
	if psm.PSM != "my msn & ducked" {
		t.Errorf("PSM = %q", psm.PSM)
	}
	mail := waitEvent[*MailNotification](t, l, nil)
	if mail.InboxTotal != 3 || mail.InboxUnread != 1 || mail.OfflineMessages != 1 {
		t.Errorf("mail = %+v", mail)
	}

	bob, ok := c.Contact("BOB@example.com")
	if !ok {
		t.Fatal("bob missing")
	}
	if bob.GUID != bobGUID || bob.Lists != ListForward|ListAllow|ListReverse || len(bob.Groups) != 1 || bob.Groups[0] != groupGUID {
		t.Errorf("bob = %+v", bob)
	}
	if bob.DisplayName() != "Bob Bé" || bob.PSM != "my msn & ducked" || bob.Status != StatusOnline {
		t.Errorf("bob presence = %+v", bob)
	}
	carol, _ := c.Contact("carol@example.com")
	if carol.Lists != ListReverse|ListPending || len(carol.Groups) != 0 || carol.Status != StatusOffline {
		t.Errorf("carol = %+v", carol)
	}
	if _, ok := c.Contact("tel:15551234567"); !ok {
		t.Error("phone contact missing")
	}
	self := c.Self()
	if self.FriendlyName != "Alice A." || self.Status != StatusOnline || !self.AllowByDefault || !self.PromptOnAdd {
		t.Errorf("self = %+v", self)
	}
	if g := c.Groups(); len(g) != 1 || g[0].Name != "Friends" {
		t.Errorf("groups = %+v", g)
	}
	seen := strings.Join(ns.seen(), " ")
	if !strings.HasPrefix(seen, "VER CVR USR USR SYN GCF CHG UUX") {
		t.Errorf("command order = %s", seen)
	}

	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	d := waitEvent[*Disconnected](t, l, nil)
	var de *DisconnectError
	if !errors.As(d.Err, &de) || de.Reason != ReasonClosed {
		t.Errorf("Disconnected = %v", d.Err)
	}
	if n := countEvents[*Disconnected](l); n != 1 {
		t.Errorf("%d Disconnected events", n)
	}
	if out := logs.String(); strings.Contains(out, testTicket) || strings.Contains(out, "s3cr3t") {
		t.Errorf("secret in logs: %s", out)
	}
}

func countEvents[T Event](l *eventLog) int {
	n := 0
	for _, e := range l.all() {
		if _, ok := e.(T); ok {
			n++
		}
	}
	return n
}

func TestLoginDispatchRedirect(t *testing.T) {
	ns := newFakeServer(t)
	ns.escargotNS(nil, nil)
	ds := newFakeServer(t)
	ds.handle("VER", func(fc *fakeConn, c *Command) { fc.send("VER " + c.Arg(0) + " MSNP11 CVR0") })
	ds.handle("CVR", func(fc *fakeConn, c *Command) { fc.send("CVR " + c.Arg(0) + " 1 1 1 a b") })
	ds.handle("USR", func(fc *fakeConn, c *Command) {
		fc.send("XFR " + c.Arg(0) + " NS " + ns.addr() + " 0 " + ds.addr())
	})
	pp := passportServer(t)
	cfg := testConfig(ds, pp, nil)
	c, _ := login(t, cfg)
	if c.Self().Status != StatusOnline {
		t.Fatal("not online")
	}
	if got := strings.Join(ds.seen(), " "); got != "VER CVR USR" {
		t.Errorf("dispatch saw %s", got)
	}
}

func TestLoginFailures(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(ns *fakeServer)
		password  string
		wantIs    error
		wantRetry bool
		check     func(t *testing.T, err error)
	}{
		{
			name:     "passport 401",
			password: "wrong",
			wantIs:   ErrBadCredentials,
		},
		{
			name: "ticket refused twice",
			setup: ticketReply(func(fc *fakeConn, trid string) {
				fc.send("911 " + trid + " extra tokens")
				fc.close()
			}),
			wantIs: ErrBadCredentials,
		},
		{
			name: "no common version",
			setup: func(ns *fakeServer) {
				ns.handle("VER", func(fc *fakeConn, c *Command) { fc.send("VER " + c.Arg(0) + " 0") })
			},
			wantIs: ErrNoCommonVersion,
		},
		{
			name: "server busy",
			setup: func(ns *fakeServer) {
				ns.handle("USR", func(fc *fakeConn, c *Command) { fc.send("600 " + c.Arg(0)); fc.close() })
			},
			wantRetry: true,
			check: func(t *testing.T, err error) {
				var se *ServerError
				if !errors.As(err, &se) || se.Code != 600 || se.Command != "USR" {
					t.Errorf("want *ServerError 600 on USR, got %v", err)
				}
			},
		},
		{
			name: "restricted account",
			setup: ticketReply(func(fc *fakeConn, trid string) {
				fc.send("USR " + trid + " OK alice@example.com Alice 1 1")
			}),
			wantIs: ErrAccountRestricted,
		},
		{
			name: "kicked during login",
			setup: func(ns *fakeServer) {
				ns.handle("SYN", func(fc *fakeConn, c *Command) { fc.send("OUT OTH"); fc.close() })
			},
			check: func(t *testing.T, err error) {
				var de *DisconnectError
				if !errors.As(err, &de) || de.Reason != ReasonOtherLogin {
					t.Errorf("want OTH disconnect, got %v", err)
				}
			},
		},
		{
			name: "connection dropped",
			setup: func(ns *fakeServer) {
				ns.handle("CVR", func(fc *fakeConn, c *Command) { fc.close() })
			},
			wantIs:    ErrClosed,
			wantRetry: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := newFakeServer(t)
			ns.escargotNS(nil, nil)
			if tt.setup != nil {
				tt.setup(ns)
			}
			pp := passportServer(t)
			pw := tt.password
			if pw == "" {
				pw = testPassword
			}
			logs := &syncBuffer{}
			l := newEventLog()
			c, err := NewClient(testConfig(ns, pp, logs), testHandle, pw, l.handler)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = c.Login(ctx)
			if err == nil {
				t.Fatal("Login succeeded")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("err = %v, want %v", err, tt.wantIs)
			}
			if got := Retryable(err); got != tt.wantRetry {
				t.Errorf("Retryable(%v) = %v, want %v", err, got, tt.wantRetry)
			}
			if tt.check != nil {
				tt.check(t, err)
			}
			for _, s := range []string{pw, testTicket, passportEscape(pw)} {
				if strings.Contains(err.Error(), s) || strings.Contains(logs.String(), s) {
					t.Errorf("secret %q leaked: %v", s, err)
				}
			}
			_ = c.Close()
			if evs := l.all(); len(evs) != 0 {
				t.Errorf("failed login delivered events: %T…", evs[0])
			}
		})
	}
}

func TestLoginRespectsContext(t *testing.T) {
	ns := newFakeServer(t)
	ns.escargotNS(nil, nil)
	ns.handle("VER", func(*fakeConn, *Command) {}) // stall
	pp := passportServer(t)
	cfg := testConfig(ns, pp, nil)
	cfg.RequestTimeout = time.Minute
	c, err := NewClient(cfg, testHandle, testPassword, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := c.Login(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Login = %v, want deadline exceeded", err)
	}
}

func TestLoginRequestTimeout(t *testing.T) {
	ns := newFakeServer(t)
	ns.escargotNS(nil, nil)
	ns.handle("CHG", func(*fakeConn, *Command) {}) // Escargot-style silence
	pp := passportServer(t)
	cfg := testConfig(ns, pp, nil)
	cfg.RequestTimeout = 200 * time.Millisecond
	c, err := NewClient(cfg, testHandle, testPassword, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(context.Background()); !errors.Is(err, ErrTimeout) || !Retryable(err) {
		t.Fatalf("Login = %v, want ErrTimeout", err)
	}
}

func TestDisconnectReasons(t *testing.T) {
	tests := []struct {
		line       string
		reason     DisconnectReason
		retryAfter time.Duration
		reconnect  bool
	}{
		{"OUT OTH", ReasonOtherLogin, 0, false},
		{"OUT SSD", ReasonShutdown, 0, true},
		{"OUT RCT 5", ReasonRetryLater, 5 * time.Minute, true},
		{"OUT MIG", ReasonMigrated, 0, true},
		{"OUT TOU", ReasonTerms, 0, false},
		{"OUT", ReasonNone, 0, true},
		{"", ReasonNetwork, 0, true},
	}
	for _, tt := range tests {
		t.Run(string(tt.reason), func(t *testing.T) {
			ns := newFakeServer(t)
			ns.escargotNS(nil, nil)
			var fcs = make(chan *fakeConn, 1)
			ns.handle("UUX", func(fc *fakeConn, c *Command) { fc.send("UUX " + c.Arg(0) + " 0"); fcs <- fc })
			c, l := login(t, testConfig(ns, passportServer(t), nil))
			fc := <-fcs
			if tt.line != "" {
				fc.send(tt.line)
			}
			fc.close()
			d := waitEvent[*Disconnected](t, l, nil)
			var de *DisconnectError
			if !errors.As(d.Err, &de) {
				t.Fatalf("Disconnected.Err = %T %v", d.Err, d.Err)
			}
			if de.Reason != tt.reason || de.RetryAfter != tt.retryAfter || de.ShouldReconnect() != tt.reconnect || Retryable(de) != tt.reconnect {
				t.Errorf("got %+v", de)
			}
			_ = c.Close()
			if n := countEvents[*Disconnected](l); n != 1 {
				t.Errorf("%d Disconnected events", n)
			}
			if err := c.SetStatus(context.Background(), StatusAway); !errors.Is(err, ErrNotConnected) {
				t.Errorf("SetStatus after disconnect = %v", err)
			}
		})
	}
}

func TestKeepalive(t *testing.T) {
	t.Run("answered", func(t *testing.T) {
		ns := newFakeServer(t)
		ns.escargotNS(nil, nil)
		pings := make(chan struct{}, 10)
		ns.handle("PNG", func(fc *fakeConn, c *Command) {
			fc.send("QNG 60")
			select {
			case pings <- struct{}{}:
			default:
			}
		})
		cfg := testConfig(ns, passportServer(t), nil)
		cfg.PingInterval = 20 * time.Millisecond
		login(t, cfg)
		for range 3 {
			select {
			case <-pings:
			case <-time.After(10 * time.Second):
				t.Fatal("no PNG")
			}
		}
	})
	t.Run("dead", func(t *testing.T) {
		ns := newFakeServer(t)
		ns.escargotNS(nil, nil)
		ns.handle("PNG", func(*fakeConn, *Command) {})
		cfg := testConfig(ns, passportServer(t), nil)
		cfg.PingTimeout = 50 * time.Millisecond
		_, l := login(t, cfg)
		d := waitEvent[*Disconnected](t, l, nil)
		var de *DisconnectError
		if !errors.As(d.Err, &de) || de.Reason != ReasonNetwork || !errors.Is(d.Err, ErrTimeout) {
			t.Errorf("Disconnected = %v", d.Err)
		}
	})
}

func TestChallengeAnswered(t *testing.T) {
	ns := newFakeServer(t)
	ns.escargotNS(nil, nil)
	got := make(chan *Command, 1)
	ns.handle("QRY", func(fc *fakeConn, c *Command) { fc.send("QRY " + c.Arg(0)); got <- c })
	ns.handle("UUX", func(fc *fakeConn, c *Command) {
		fc.send("UUX "+c.Arg(0)+" 0", "CHL 0 22210219642164014968")
	})
	login(t, testConfig(ns, passportServer(t), nil))
	select {
	case c := <-got:
		if c.Arg(1) != ProductIDMSNP11 || string(c.Payload) != "85ecb0db8f32113df79ce0892b9a102c" {
			t.Errorf("QRY = %v %q", c.Args, c.Payload)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no QRY")
	}
}

// ticketReply installs a USR handler that starts Passport authentication and answers the
// ticket with reply.
func ticketReply(reply func(fc *fakeConn, trid string)) func(*fakeServer) {
	return func(ns *fakeServer) {
		ns.handle("USR", func(fc *fakeConn, c *Command) {
			if c.Arg(2) == "I" {
				fc.send("USR " + c.Arg(0) + " TWN S ct=1")
				return
			}
			reply(fc, c.Arg(0))
		})
	}
}

func TestHandlerMayCallClient(t *testing.T) {
	ns := newFakeServer(t)
	ns.escargotNS(escargotSYN, escargotOnline)
	ns.handle("PRP", func(fc *fakeConn, c *Command) { fc.send("PRP " + strings.Join(c.Args, " ")) })
	l := newEventLog()
	done := make(chan error, 1)
	var c *Client
	var err error
	c, err = NewClient(testConfig(ns, passportServer(t), nil), testHandle, testPassword, func(ev Event) {
		l.handler(ev)
		if _, ok := ev.(*LoggedIn); ok {
			done <- c.SetFriendlyName(context.Background(), "New Name")
		}
		if _, ok := ev.(*OwnNameChanged); ok && c.Self().FriendlyName == "New Name" {
			_ = c.CloseFromHandler() // must not wait for the delivery it runs on
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitEvent[*Disconnected](t, l, nil)
	_ = c.Close()
}

// Close, called while the handler runs, returns only once that handler call has returned and
// the queued events, Disconnected last, are delivered: after Close the handler is never called.
func TestCloseWaitsForHandler(t *testing.T) {
	ns := newFakeServer(t)
	ns.escargotNS(escargotSYN, escargotOnline)
	entered, release := make(chan struct{}), make(chan struct{})
	var closed, disconnected atomic.Bool
	var late atomic.Int32
	c, err := NewClient(testConfig(ns, passportServer(t), nil), testHandle, testPassword, func(ev Event) {
		if closed.Load() {
			late.Add(1)
		}
		switch ev.(type) {
		case *LoggedIn:
			close(entered)
			<-release
			if closed.Load() {
				t.Error("Close returned while the handler was running")
			}
		case *Disconnected:
			disconnected.Store(true)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Login(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("LoggedIn not delivered")
	}
	done := make(chan struct{})
	go func() {
		_ = c.Close()
		closed.Store(true)
		close(done)
	}()
	// A Close that did not wait for the handler would return meanwhile.
	select {
	case <-done:
	case <-time.After(500 * time.Millisecond):
	}
	close(release)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	if !disconnected.Load() {
		t.Error("Close returned before Disconnected was delivered")
	}
	if n := late.Load(); n != 0 {
		t.Errorf("the handler was called %d times after Close returned", n)
	}
}

// The own-profile events tell the client's own calls, confirmed by the server (Requested), from
// changes the server reports: the SYN burst's name, a pushed PRP MFN or CHG.
func TestOwnProfileEventsMarkRequested(t *testing.T) {
	ns := newFakeServer(t)
	ns.escargotNS(escargotSYN, escargotOnline)
	ns.handle("PRP", func(fc *fakeConn, c *Command) {
		fc.send("PRP "+strings.Join(c.Args, " "), "PRP MFN Pushed%20Name", "CHG 0 AWY 0")
	})
	c, l := login(t, testConfig(ns, passportServer(t), nil))
	if ev := waitEvent[*OwnNameChanged](t, l, nil); ev.Name != "Alice A." || ev.Requested {
		t.Errorf("the SYN burst's name: %+v, want Alice A., not requested", ev)
	}
	if ev := waitEvent[*OwnStatusChanged](t, l, nil); ev.Status != StatusOnline || !ev.Requested {
		t.Errorf("Login's status: %+v, want NLN, requested", ev)
	}
	if ev := waitEvent[*OwnPersonalMessageChanged](t, l, nil); !ev.Requested {
		t.Errorf("Login's personal message: %+v, want requested", ev)
	}
	if err := c.SetFriendlyName(context.Background(), "New Name"); err != nil {
		t.Fatal(err)
	}
	if ev := waitEvent[*OwnNameChanged](t, l, func(e *OwnNameChanged) bool { return e.Name == "New Name" }); !ev.Requested {
		t.Errorf("SetFriendlyName's name: %+v, want requested", ev)
	}
	if ev := waitEvent[*OwnNameChanged](t, l, func(e *OwnNameChanged) bool { return e.Name == "Pushed Name" }); ev.Requested {
		t.Errorf("a pushed name: %+v, want not requested", ev)
	}
	if ev := waitEvent[*OwnStatusChanged](t, l, func(e *OwnStatusChanged) bool { return e.Status == StatusAway }); ev.Requested {
		t.Errorf("a pushed status: %+v, want not requested", ev)
	}
}

// TestSyncDropsInvalidHandles is a SYN listing handles no contact can have: the login still
// completes (the dropped lines count toward the announced total), with the valid contacts only
// and nothing of the others in the events.
func TestSyncDropsInvalidHandles(t *testing.T) {
	ns := newFakeServer(t)
	ns.escargotNS([]string{
		"LST N=" + strings.Repeat("x", 8<<10) + "@evil.example F=Long 11",
		"LST N=bob@example.com F=Bob C=" + bobGUID + " 11",
		"LST N=eve%20smith@evil.example F=Eve 24",
		"LST N=%3Cscript%3E@evil.example F=Eve 24",
		"LST N=dave@example.com F=Dave 0",
	}, escargotOnline)
	c, l := login(t, testConfig(ns, passportServer(t), nil))
	got := c.Contacts()
	if len(got) != 1 || got[0].Handle != "bob@example.com" {
		t.Fatalf("contacts = %+v, want bob only", got)
	}
	for _, ev := range l.all() {
		if r, ok := ev.(*ContactRequest); ok {
			t.Errorf("contact request from %.80q", r.Handle)
		}
	}
}

// TestHostileHotmailMessages is a server whose "Hotmail" messages do not fit the format: counts
// outside <MD><E>, offline messages nested where none are listed, a system message without a
// type, a mailbox change without a sender. Only what the format defines becomes an event.
func TestHostileHotmailMessages(t *testing.T) {
	ns := newFakeServer(t)
	ns.escargotNS(escargotSYN, escargotOnline)
	nsConns := make(chan *fakeConn, 1)
	ns.handle("UUX", func(fc *fakeConn, c *Command) { fc.send("UUX " + c.Arg(0) + " 0"); nsConns <- fc })
	_, l := login(t, testConfig(ns, passportServer(t), nil))
	var fc *fakeConn
	select {
	case fc = <-nsConns:
	case <-time.After(10 * time.Second):
		t.Fatal("no UUX")
	}
	hotmail := func(contentType, body string) {
		fc.sendPayload("MSG Hotmail Hotmail", "MIME-Version: 1.0\r\nContent-Type: "+contentType+"; charset=UTF-8\r\n\r\n"+body)
	}
	hotmail("text/x-msmsgsoimnotification", "Mail-Data: <MD><Q><I>999</I><IU>998</IU></Q><E><I>2</I><IU>1</IU></E><X><M><T>11</T></M></X><M><T>11</T></M></MD>\r\n")
	hotmail("text/x-msmsgsoimnotification", "Mail-Data: <MD><E><I>5</I></E><M>\r\n") // malformed
	hotmail("text/x-msmsgsoimnotification", "Mail-Data: too-large\r\n")
	hotmail("text/x-msmsgsinitialemailnotification", "Inbox-Unread: 4\r\nFolders-Unread: 0\r\n")
	hotmail("text/x-msmsgsactivemailnotification", "Src-Folder: .!!OIM\r\nDest-Folder: .!!trAsH\r\nMessage-Delta: 1\r\n")
	hotmail("text/x-msmsgsemailnotification", "From: Carol\r\nSubject: Hi\r\n")
	hotmail("application/x-msmsgssystemmessage", "Arg1: 5\r\n")
	hotmail("application/x-msmsgssystemmessage", "Type: 1\r\nArg1: 5\r\n")
	waitEvent(t, l, func(e *SystemMessage) bool { return e.Type == 1 })

	var mails []MailNotification
	var systems []SystemMessage
	for _, ev := range l.all() {
		switch ev := ev.(type) {
		case *MailNotification:
			mails = append(mails, *ev)
		case *SystemMessage:
			systems = append(systems, *ev)
		}
	}
	want := []MailNotification{
		{InboxTotal: 3, InboxUnread: 1, OtherTotal: 0, OtherUnread: 0, OfflineMessages: 1}, // login's
		{InboxTotal: 2, InboxUnread: 1, OtherTotal: -1, OtherUnread: -1, OfflineMessages: 1},
		{InboxTotal: -1, InboxUnread: -1, OtherTotal: -1, OtherUnread: -1, OfflineMessages: 26},
		{InboxTotal: -1, InboxUnread: 4, OtherTotal: -1, OtherUnread: -1},
		{InboxTotal: -1, InboxUnread: -1, OtherTotal: -1, OtherUnread: -1, NewMailFrom: "Carol", NewMailSubject: "Hi"},
	}
	if !reflect.DeepEqual(mails, want) {
		t.Errorf("mail notifications:\n got %+v\nwant %+v", mails, want)
	}
	if len(systems) != 1 || systems[0] != (SystemMessage{Type: 1, MinutesUntilShutdown: 5}) {
		t.Errorf("system messages = %+v, want only type 1 in 5 minutes", systems)
	}
}
