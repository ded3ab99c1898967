package msn_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/msn-bridge/msn-bridge/msn"
	"github.com/msn-bridge/msn-bridge/msn/msntest"
)

// eventWatch records the events of a client: those about any contact but the one it expects,
// and each event about that one, for a test to wait on.
type eventWatch struct {
	want string
	mu   sync.Mutex
	// others counts events naming another handle, by type; first is one of them.
	others map[string]int
	first  string
	ours   chan msn.Event
}

func newEventWatch(want string) *eventWatch {
	return &eventWatch{want: want, others: map[string]int{}, ours: make(chan msn.Event, 64)}
}

func (w *eventWatch) handler(ev msn.Event) {
	var h string
	switch e := ev.(type) {
	case *msn.PresenceChanged:
		h = e.Handle
	case *msn.PersonalMessageChanged:
		h = e.Handle
	case *msn.ListChanged:
		h = e.Handle
	case *msn.ContactRequest:
		h = e.Handle
	case *msn.GroupChanged:
		h = e.Handle
	case *msn.ParticipantJoined:
		h = e.Handle
	case *msn.MessageReceived:
		h = e.From
	default:
		return
	}
	if h == w.want {
		select {
		case w.ours <- ev:
		default:
		}
		return
	}
	w.mu.Lock()
	if len(w.others) == 0 {
		w.first = fmt.Sprintf("%T %.80q", ev, h)
	}
	w.others[fmt.Sprintf("%T", ev)]++
	w.mu.Unlock()
}

// await waits for an event about the expected contact that ok accepts.
func (w *eventWatch) await(ctx context.Context, t *testing.T, what string, ok func(msn.Event) bool) {
	t.Helper()
	for {
		select {
		case ev := <-w.ours:
			if ok(ev) {
				return
			}
		case <-ctx.Done():
			t.Fatalf("%s: not delivered", what)
		}
	}
}

func (w *eventWatch) checkNoOthers(t *testing.T) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.others) != 0 {
		t.Fatalf("events about other handles: %v (first: %s)", w.others, w.first)
	}
}

// bobAway has the server report bob away, and waits for it: every line the server sent before
// has then been handled, and the connection still works.
func bobAway(ctx context.Context, t *testing.T, srv *msntest.Server, w *eventWatch, status string) {
	t.Helper()
	if err := srv.SetPresence("bob@example.com", status, ""); err != nil {
		t.Fatal(err)
	}
	w.await(ctx, t, "bob's presence "+status, func(ev msn.Event) bool {
		p, ok := ev.(*msn.PresenceChanged)
		return ok && string(p.Status) == status
	})
}

func countLines(logs, msg string) (warn, all int) {
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, msg) {
			all++
			if strings.Contains(line, `"level":"warn"`) {
				warn++
			}
		}
	}
	return warn, all
}

// TestIntegrationHostileServerStrangers is a server that sends presence (NLN, ILN, FLN, UBX) for
// 20,000 handles on none of the lists, and handles no valid contact has (8 KB long, with
// spaces, line breaks or markup) in every line that carries one. None of it may reach the
// handler or the contact list; the invalid handles are logged once at warn level; the
// connection keeps working, and a real contact's presence still arrives after the flood.
func TestIntegrationHostileServerStrangers(t *testing.T) {
	opts := aliceAndBob("NLN")
	opts.MaxPendingOutput = 64 << 20
	srv := startServer(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	logs := &lockedBuffer{}
	w := newEventWatch("bob@example.com")
	c := newAliceWith(t, srv, msn.Config{Log: zerolog.New(logs).Level(zerolog.DebugLevel)}, w.handler)
	if err := c.Login(ctx); err != nil {
		t.Fatal(err)
	}
	bobAway(ctx, t, srv, w, "BSY")

	const strangers = 20_000
	var batch strings.Builder
	for i := range strangers {
		h := fmt.Sprintf("stranger%05d@evil.example", i)
		switch i % 4 {
		case 0:
			fmt.Fprintf(&batch, "NLN NLN %s Stranger%%20%d 1073741824 0\r\n", h, i)
		case 1:
			fmt.Fprintf(&batch, "ILN 7 AWY %s Stranger 0\r\n", h)
		case 2:
			psm := "<Data><PSM>buy now</PSM><CurrentMedia></CurrentMedia></Data>"
			fmt.Fprintf(&batch, "UBX %s %d\r\n%s", h, len(psm), psm)
		case 3:
			fmt.Fprintf(&batch, "FLN %s\r\n", h)
		}
		if batch.Len() > 256<<10 || i == strangers-1 {
			if err := srv.InjectLine("alice@example.com", []byte(batch.String())); err != nil {
				t.Fatal(err)
			}
			batch.Reset()
		}
	}
	long := strings.Repeat("a", 8<<10) + "@evil.example"
	psm := "<Data><PSM>x</PSM></Data>"
	bad := []string{
		"NLN NLN " + long + " Long 0\r\n",
		"ILN 8 NLN " + long + " Long 0\r\n",
		"FLN " + long + "\r\n",
		fmt.Sprintf("UBX %s %d\r\n%s", long, len(psm), psm),
		"ADC 0 RL N=" + long + " F=Long\r\n",
		"ADC 0 RL N=eve%20smith@evil.example F=Eve\r\n",
		"ADC 0 RL N=%3Cb%3Eeve%3C/b%3E@evil.example F=Eve\r\n",
		"ADC 0 RL N=bob@example.com%0D%0AOUT F=Bob\r\n",
		"ADC 0 FL N=" + long + " F=Long C=9e1a0c3d-aaaa-bbbb-cccc-ddddeeeeffff\r\n",
		"LST N=" + long + " F=Long C=9e1a0c3d-aaaa-bbbb-cccc-ddddeeeeffff 11\r\n",
		"NLN NLN bob%0D%0A@example.com Bob 0\r\n",
		"RNG 1234 127.0.0.1:1 CKI 99.99 " + long + " Long\r\n",
	}
	for _, line := range bad {
		if err := srv.InjectLine("alice@example.com", []byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	bobAway(ctx, t, srv, w, "AWY")

	w.checkNoOthers(t)
	if got := c.Contacts(); len(got) != 1 || got[0].Handle != "bob@example.com" {
		t.Fatalf("alice has %d contacts, want only bob", len(got))
	}
	warn, all := countLines(logs.String(), "invalid contact handle")
	if warn != 1 || all != len(bad) {
		t.Errorf("invalid handles logged %d times, %d at warn level; want %d, 1", all, warn, len(bad))
	}
	if strings.Contains(logs.String(), "switchboard invitation") {
		t.Error("the invitation of an invalid handle was answered")
	}
	if strings.Contains(logs.String(), strings.Repeat("a", 100)) {
		t.Error("a long handle was logged whole")
	}
	if err := c.SendText(ctx, "bob@example.com", "still here", nil); err != nil {
		t.Fatalf("send after the flood: %v", err)
	}
}

// TestIntegrationContactCap is a server that lists more contacts than Config.MaxContacts: the
// client keeps that many, says so once, ignores what the server adds beyond it, refuses to
// add more itself without asking the server, and keeps working.
func TestIntegrationContactCap(t *testing.T) {
	const listed, max = 80, 50
	opts := aliceAndBob("NLN")
	for i := range listed - 1 {
		opts.Accounts = append(opts.Accounts, msntest.AccountSpec{Handle: fmt.Sprintf("x%02d@example.com", i), Password: "pw"})
	}
	srv := startServer(t, opts)
	for i := range listed - 1 {
		if err := srv.AddContact("alice@example.com", fmt.Sprintf("x%02d@example.com", i), msntest.FL|msntest.AL); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	logs := &lockedBuffer{}
	w := newEventWatch("bob@example.com")
	c := newAliceWith(t, srv, msn.Config{MaxContacts: max, Log: zerolog.New(logs)}, w.handler)
	if err := c.Login(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(c.Contacts()); n != max {
		t.Fatalf("alice has %d contacts, want %d", n, max)
	}
	w.mu.Lock()
	w.others = map[string]int{} // the login's own events about the listed contacts
	w.mu.Unlock()
	if err := srv.InjectLine("alice@example.com", []byte("ADC 0 RL N=newcomer@example.com F=New\r\n")); err != nil {
		t.Fatal(err)
	}
	bobAway(ctx, t, srv, w, "AWY")
	w.checkNoOthers(t)
	if _, ok := c.Contact("newcomer@example.com"); ok {
		t.Error("a contact beyond the cap was added")
	}
	err := c.AddContact(ctx, "x78@example.com", "")
	if !errors.Is(err, msn.ErrContactListFull) {
		t.Fatalf("AddContact beyond the cap: %v", err)
	}
	for _, ev := range srv.EventsFor("alice@example.com") {
		if ev.Name == "ADC" {
			t.Fatalf("AddContact beyond the cap asked the server: %v", ev.Args)
		}
	}
	if warn, all := countLines(logs.String(), "Contact list full"); warn != 1 || all != 1 {
		t.Errorf("the cap was logged %d times (%d at warn level), want once", all, warn)
	}
	if n := len(c.Contacts()); n != max {
		t.Fatalf("alice has %d contacts, want %d", n, max)
	}
	bobAway(ctx, t, srv, w, "BSY")
}

// TestIntegrationPresenceOfNewContact checks that the presence the server sends right after
// the reply to ADC FL (an online contact's ILN) is taken: the reply puts the contact on the
// list before the next line is read, so it is no stranger by then.
func TestIntegrationPresenceOfNewContact(t *testing.T) {
	opts := aliceAndBob("AWY")
	opts.Friends = nil
	srv := startServer(t, opts)
	if err := srv.AddContact("bob@example.com", "alice@example.com", msntest.AL); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for range 10 {
		w := newEventWatch("bob@example.com")
		c := newAliceWith(t, srv, msn.Config{}, w.handler)
		if err := c.Login(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.AddContact(ctx, "bob@example.com", "Bob"); err != nil {
			t.Fatal(err)
		}
		w.await(ctx, t, "bob's presence after ADC FL", func(ev msn.Event) bool {
			p, ok := ev.(*msn.PresenceChanged)
			return ok && p.Status == msn.StatusAway
		})
		if err := c.RemoveContact(ctx, "bob@example.com"); err != nil {
			t.Fatal(err)
		}
		_ = c.Close()
	}
}
