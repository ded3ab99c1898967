package msn

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// sbFake is a scripted switchboard: USR → OK, CAL → RINGING + JOI (unless the handle is in
// offline), MSG A → ACK (or NAK for the first nak messages).
type sbFake struct {
	*fakeServer
	mu       sync.Mutex
	msgs     []string // payloads of received MSGs, "mode|payload"
	naks     int
	offline  map[string]bool
	noJoin   bool
	lastConn *fakeConn
}

func newSBFake(t *testing.T) *sbFake {
	sb := &sbFake{fakeServer: newFakeServer(t), offline: map[string]bool{}}
	sb.handle("USR", func(fc *fakeConn, c *Command) {
		sb.mu.Lock()
		sb.lastConn = fc
		sb.mu.Unlock()
		fc.send("USR " + c.Arg(0) + " OK " + testHandle + " Alice")
	})
	sb.handle("CAL", func(fc *fakeConn, c *Command) {
		if sb.offline[c.Arg(1)] {
			fc.send("217 " + c.Arg(0))
			return
		}
		fc.send("CAL " + c.Arg(0) + " RINGING 4xT9Qm2LpZ7cVb3Nk8Rw1Ys5Ud6Ae0H")
		if !sb.noJoin {
			fc.send("JOI " + c.Arg(1) + " Bob")
		}
	})
	sb.handle("MSG", func(fc *fakeConn, c *Command) {
		sb.mu.Lock()
		sb.msgs = append(sb.msgs, c.Arg(1)+"|"+string(c.Payload))
		nak := sb.naks > 0
		if nak {
			sb.naks--
		}
		sb.mu.Unlock()
		if c.Arg(1) == "A" {
			if nak {
				fc.send("NAK " + c.Arg(0))
			} else {
				fc.send("ACK " + c.Arg(0))
			}
		}
	})
	sb.handle("OUT", func(fc *fakeConn, c *Command) { fc.close() })
	return sb
}

func (sb *sbFake) received() []string {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	return append([]string(nil), sb.msgs...)
}

func loginWithSB(t *testing.T) (*Client, *eventLog, *fakeServer, *sbFake) {
	ns := newFakeServer(t)
	ns.escargotNS(escargotSYN, escargotOnline)
	sb := newSBFake(t)
	ns.handle("XFR", func(fc *fakeConn, c *Command) {
		fc.send("XFR " + c.Arg(0) + " SB " + sb.addr() + " CKI 6d1fd4826e7ba63b728a")
	})
	c, l := login(t, testConfig(ns, passportServer(t), nil))
	return c, l, ns, sb
}

func TestSendTextReusesSession(t *testing.T) {
	c, l, ns, sb := loginWithSB(t)
	ctx := context.Background()
	if err := c.SendText(ctx, "Bob@example.com", "hello\nworld", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.SendText(ctx, "bob@example.com", "second", &TextFormat{Bold: true, Color: "ff0000"}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(strings.Join(ns.seen(), " "), "XFR"); n != 1 {
		t.Errorf("%d XFR SB, want 1 (session reused)", n)
	}
	msgs := sb.received()
	if len(msgs) != 2 || !strings.HasPrefix(msgs[0], "A|MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8") || !strings.HasSuffix(msgs[0], "\r\n\r\nhello\r\nworld") {
		t.Errorf("messages = %q", msgs)
	}
	j := waitEvent[*ParticipantJoined](t, l, nil)
	if j.SessionID != "4xT9Qm2LpZ7cVb3Nk8Rw1Ys5Ud6Ae0H" || j.Handle != "bob@example.com" {
		t.Errorf("joined = %+v", j)
	}
	if s := c.Sessions(); len(s) != 1 || s[j.SessionID][0] != "bob@example.com" {
		t.Errorf("sessions = %v", s)
	}

	// The peer leaves: the session closes and the next message opens a new one.
	sb.mu.Lock()
	fc := sb.lastConn
	sb.mu.Unlock()
	fc.send("BYE bob@example.com")
	waitEvent[*SessionClosed](t, l, nil)
	if err := c.SendText(ctx, "bob@example.com", "third", nil); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(strings.Join(ns.seen(), " "), "XFR"); n != 2 {
		t.Errorf("%d XFR SB, want 2", n)
	}
}

func TestSendTextConcurrentOpenOnce(t *testing.T) {
	c, _, ns, sb := loginWithSB(t)
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- c.SendText(context.Background(), "bob@example.com", "msg "+string(rune('a'+i)), nil)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := strings.Count(strings.Join(ns.seen(), " "), "XFR"); n != 1 {
		t.Errorf("%d XFR SB, want 1", n)
	}
	if n := len(sb.received()); n != 5 {
		t.Errorf("%d messages", n)
	}
}

func TestSendTextFailures(t *testing.T) {
	t.Run("offline", func(t *testing.T) {
		c, _, _, sb := loginWithSB(t)
		sb.offline["bob@example.com"] = true
		err := c.SendText(context.Background(), "bob@example.com", "hi", nil)
		var se *SendError
		if !errors.As(err, &se) || se.Part != 0 || !errors.Is(err, ErrContactOffline) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("nak retried once", func(t *testing.T) {
		c, _, _, sb := loginWithSB(t)
		sb.naks = 1
		if err := c.SendText(context.Background(), "bob@example.com", "hi", nil); err != nil {
			t.Fatal(err)
		}
		sb.naks = 2
		if err := c.SendText(context.Background(), "bob@example.com", "hi", nil); !errors.Is(err, ErrNAK) {
			t.Fatalf("err = %v, want ErrNAK", err)
		}
	})
	t.Run("no join", func(t *testing.T) {
		ns := newFakeServer(t)
		ns.escargotNS(nil, nil)
		sb := newSBFake(t)
		sb.noJoin = true
		ns.handle("XFR", func(fc *fakeConn, c *Command) {
			fc.send("XFR " + c.Arg(0) + " SB " + sb.addr() + " CKI x")
		})
		cfg := testConfig(ns, passportServer(t), nil)
		cfg.JoinTimeout = 50 * time.Millisecond
		c, _ := login(t, cfg)
		if err := c.SendText(context.Background(), "bob@example.com", "hi", nil); !errors.Is(err, ErrTimeout) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("hidden", func(t *testing.T) {
		ns := newFakeServer(t)
		ns.escargotNS(nil, nil)
		ns.handle("XFR", func(fc *fakeConn, c *Command) { fc.send("913 " + c.Arg(0)) })
		c, _ := login(t, testConfig(ns, passportServer(t), nil))
		err := c.SendText(context.Background(), "bob@example.com", "hi", nil)
		if !errors.Is(err, ErrHidden) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("split parts", func(t *testing.T) {
		c, _, _, sb := loginWithSB(t)
		long := strings.Repeat("ünïcødé wörds ", 400)
		if err := c.SendText(context.Background(), "bob@example.com", long, nil); err != nil {
			t.Fatal(err)
		}
		msgs := sb.received()
		if len(msgs) < 3 {
			t.Fatalf("%d parts", len(msgs))
		}
		for _, m := range msgs {
			if len(m)-2 > MaxMSGPayload {
				t.Errorf("part of %d bytes", len(m)-2)
			}
		}
	})
	t.Run("bad input", func(t *testing.T) {
		c, _, _, _ := loginWithSB(t)
		for _, to := range []string{"", "no-at", testHandle, "tel:123"} {
			if err := c.SendText(context.Background(), to, "x", nil); !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("SendText(%q) = %v", to, err)
			}
		}
		if err := c.SendText(context.Background(), "bob@example.com", "", nil); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("empty text: %v", err)
		}
	})
}

// invitedSession logs a client in and has bob invite it to session 12345678, with the given
// participants (IRO "<handle> <name>"). It returns the switchboard's side of the connection.
func invitedSession(t *testing.T, participants ...string) (*Client, *eventLog, *sbFake, *fakeConn) {
	t.Helper()
	ns := newFakeServer(t)
	ns.escargotNS(escargotSYN, escargotOnline)
	sb := newSBFake(t)
	answered := make(chan *fakeConn, 1)
	sb.handle("ANS", func(fc *fakeConn, c *Command) {
		var lines []string
		for i, p := range participants {
			lines = append(lines, fmt.Sprintf("IRO %s %d %d %s", c.Arg(0), i+1, len(participants), p))
		}
		fc.send(append(lines, "ANS "+c.Arg(0)+" OK")...)
		answered <- fc
	})
	nsConns := make(chan *fakeConn, 1)
	ns.handle("UUX", func(fc *fakeConn, c *Command) { fc.send("UUX " + c.Arg(0) + " 0"); nsConns <- fc })
	c, l := login(t, testConfig(ns, passportServer(t), nil))
	var fc *fakeConn
	select {
	case nfc := <-nsConns:
		nfc.send("RNG 12345678 " + sb.addr() + " CKI Qw8Er7Ty6Ui5Op4As3Df bob@example.com Bob")
	case <-time.After(10 * time.Second):
		t.Fatal("no UUX")
	}
	select {
	case fc = <-answered:
	case <-time.After(10 * time.Second):
		t.Fatal("the invitation was not answered")
	}
	return c, l, sb, fc
}

func TestIncomingSession(t *testing.T) {
	c, l, sb, fc := invitedSession(t, "bob@example.com Bob", "carol@example.com Carol")

	fc.sendPayload("MSG bob@example.com Bob", "MIME-Version: 1.0\r\nContent-Type: text/x-msmsgscontrol\r\nTypingUser: bob@example.com\r\n\r\n\r\n")
	fc.sendPayload("MSG bob@example.com Bob%20B", "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nX-MMS-IM-Format: FN=Arial; EF=B; CO=ff; CS=0; PF=22\r\n\r\nhi\r\nthere \xff")
	fc.sendPayload("MSG bob@example.com Bob", "MIME-Version: 1.0\r\nContent-Type: text/x-msnmsgr-datacast\r\n\r\nID: 1\r\n\r\n")
	fc.sendPayload("MSG bob@example.com Bob", "MIME-Version: 1.0\r\nContent-Type: application/x-msnmsgrp2p\r\nP2P-Dest: alice@example.com\r\n\r\n\x00\x01binary")
	fc.sendPayload("MSG bob@example.com Bob", "MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsinvite; charset=UTF-8\r\n\r\nApplication-Name: File Transfer\r\nInvitation-Command: INVITE\r\nInvitation-Cookie: 42\r\n")
	fc.send("BYE carol@example.com")

	typing := waitEvent[*TypingReceived](t, l, nil)
	if typing.SessionID != "12345678" || typing.From != "bob@example.com" {
		t.Errorf("typing = %+v", typing)
	}
	m := waitEvent[*MessageReceived](t, l, nil)
	if m.Text != "hi\nthere \uFFFD" || m.FromName != "Bob B" || m.Format == nil || !m.Format.Bold || m.Format.Color != "ff0000" || len(m.Participants) != 2 {
		t.Errorf("message = %+v format %+v", m, m.Format)
	}
	waitEvent[*NudgeReceived](t, l, nil)
	left := waitEvent[*ParticipantLeft](t, l, nil)
	if left.Handle != "carol@example.com" {
		t.Errorf("left = %+v", left)
	}
	// The invitation was declined with a CANCEL carrying the same cookie.
	deadline := time.After(10 * time.Second)
	for {
		var found bool
		for _, msg := range sb.received() {
			if strings.HasPrefix(msg, "U|") && strings.Contains(msg, "Invitation-Command: CANCEL\r\nInvitation-Cookie: 42\r\n") {
				found = true
			}
		}
		if found {
			break
		}
		select {
		case <-deadline:
			t.Fatalf("no invitation cancel; got %q", sb.received())
		case <-time.After(10 * time.Millisecond):
		}
	}
	// A group session is addressed by id; Bob's one-to-one sends open a separate session.
	if err := c.SendGroupText(context.Background(), "12345678", "to all", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.SendGroupText(context.Background(), "nope", "x", nil); !errors.Is(err, ErrSessionNotFound) {
		t.Errorf("unknown session: %v", err)
	}
	if err := c.LeaveSession(context.Background(), "12345678"); err != nil {
		t.Fatal(err)
	}
	waitEvent[*SessionClosed](t, l, func(e *SessionClosed) bool { return e.SessionID == "12345678" })
}

func TestTypingAndNudge(t *testing.T) {
	c, _, ns, sb := loginWithSB(t)
	ctx := context.Background()
	// No session yet: typing is skipped, it does not open one.
	if err := c.SendTyping(ctx, "bob@example.com"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.Join(ns.seen(), " "), "XFR") {
		t.Fatal("typing opened a session")
	}
	if err := c.SendNudge(ctx, "bob@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := c.SendTyping(ctx, "bob@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := c.SendText(ctx, "bob@example.com", "sync", nil); err != nil { // ACK orders the stream
		t.Fatal(err)
	}
	got := sb.received()
	if len(got) != 3 || !strings.HasPrefix(got[0], "N|") || !strings.Contains(got[0], "ID: 1") ||
		!strings.HasPrefix(got[1], "U|") || !strings.Contains(got[1], "TypingUser: "+testHandle) {
		t.Errorf("messages = %q", got)
	}
}

// TestSwitchboardInvalidHandles is a switchboard that names participants and senders no valid
// contact has (8 KB long, with a space, with markup): their lines are dropped, no event names
// them, and the session keeps working for the real participant.
func TestSwitchboardInvalidHandles(t *testing.T) {
	c, l, _, sb := loginWithSB(t)
	if err := c.SendText(context.Background(), "bob@example.com", "hi", nil); err != nil {
		t.Fatal(err)
	}
	sb.mu.Lock()
	fc := sb.lastConn
	sb.mu.Unlock()
	long := strings.Repeat("b", 8<<10) + "@evil.example"
	text := "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n"
	for _, h := range []string{long, "eve%20smith@evil.example", "%3Cb%3Eeve%3C%2Fb%3E@evil.example", "eve"} {
		fc.send("JOI "+h+" Eve", "IRO 0 1 1 "+h+" Eve")
		fc.sendPayload("MSG "+h+" Eve", text+"from a bad handle")
	}
	fc.sendPayload("MSG bob@example.com Bob", text+"after")
	waitEvent(t, l, func(m *MessageReceived) bool { return m.Text == "after" })
	for _, ev := range l.all() {
		switch e := ev.(type) {
		case *ParticipantJoined:
			if e.Handle != "bob@example.com" {
				t.Errorf("joined: %.80q", e.Handle)
			}
		case *MessageReceived:
			if e.From != "bob@example.com" {
				t.Errorf("message from %.80q", e.From)
			}
		}
	}
	for id, members := range c.Sessions() {
		if len(members) != 1 || members[0] != "bob@example.com" {
			t.Errorf("session %s members %.200q", id, members)
		}
	}
}

// TestHostileSwitchboardMessages is a contact sending what a client must not take at face value:
// a nudge repeating its ID line a hundred times (one nudge), a body without a Content-Type (not
// text), a wink (no nudge). The text after them arrives alone.
func TestHostileSwitchboardMessages(t *testing.T) {
	_, l, _, fc := invitedSession(t, "bob@example.com Bob")

	fc.sendPayload("MSG bob@example.com Bob", "MIME-Version: 1.0\r\nContent-Type: text/x-msnmsgr-datacast\r\n\r\n"+strings.Repeat("ID: 1\r\n", 100)+"\r\n")
	fc.sendPayload("MSG bob@example.com Bob", "MIME-Version: 1.0\r\n\r\nno content type")
	fc.sendPayload("MSG bob@example.com Bob", "MIME-Version: 1.0\r\nContent-Type: text/x-msnmsgr-datacast\r\n\r\nID: 2\r\nData: <msnobj/>\r\n\r\n")
	fc.sendPayload("MSG bob@example.com Bob", "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nlast")
	waitEvent(t, l, func(e *MessageReceived) bool { return e.Text == "last" })

	nudges, texts := 0, 0
	for _, ev := range l.all() {
		switch ev.(type) {
		case *NudgeReceived:
			nudges++
		case *MessageReceived:
			texts++
		}
	}
	if nudges != 1 || texts != 1 {
		t.Errorf("%d nudges and %d text messages, want 1 and 1", nudges, texts)
	}
}

// TestSwitchboardMemberCap is a switchboard that JOIs valid handles without end: the session
// keeps MaxSessionMembers other participants, emits no join beyond them, and still carries
// messages of those it kept.
func TestSwitchboardMemberCap(t *testing.T) {
	c, l, _, fc := invitedSession(t, "bob@example.com Bob")
	for i := 0; i < 3*MaxSessionMembers; i++ {
		fc.send(fmt.Sprintf("JOI stranger%d@evil.example Stranger", i))
	}
	fc.sendPayload("MSG bob@example.com Bob", "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nafter")
	waitEvent(t, l, func(m *MessageReceived) bool { return m.Text == "after" })
	joined := 0
	for _, ev := range l.all() {
		if _, ok := ev.(*ParticipantJoined); ok {
			joined++
		}
	}
	if joined > MaxSessionMembers {
		t.Errorf("%d joins emitted, want at most %d", joined, MaxSessionMembers)
	}
	for id, members := range c.Sessions() {
		if len(members) > MaxSessionMembers {
			t.Errorf("session %s keeps %d members, want at most %d", id, len(members), MaxSessionMembers)
		}
	}
}

// TestLeavingSessionStillReceives: a message the switchboard relayed before it took the
// client's OUT reaches the client after the OUT went out; it is received, not discarded with
// the socket while the contact believes it delivered.
func TestLeavingSessionStillReceives(t *testing.T) {
	c, l, _, sb := loginWithSB(t)
	ctx := context.Background()
	if err := c.SendText(ctx, "bob@example.com", "hello", nil); err != nil {
		t.Fatal(err)
	}
	j := waitEvent[*ParticipantJoined](t, l, nil)
	sb.handle("OUT", func(fc *fakeConn, _ *Command) {
		fc.sendPayload("MSG bob@example.com Bob", "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nin flight")
		fc.close()
	})
	if err := c.LeaveSession(ctx, j.SessionID); err != nil {
		t.Fatal(err)
	}
	m := waitEvent[*MessageReceived](t, l, nil)
	if m.From != "bob@example.com" || m.Text != "in flight" || m.SessionID != j.SessionID {
		t.Fatalf("received %+v", m)
	}
	waitEvent[*SessionClosed](t, l, func(e *SessionClosed) bool { return e.SessionID == j.SessionID })
	if _, err := c.sessionByID(j.SessionID); err == nil {
		t.Fatal("a session being left is still offered for sending")
	}
}
