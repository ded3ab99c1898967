package bridge

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/msn-bridge/msn-bridge/msn"
)

// handlesOf returns the contact handles a frontend event names.
func handlesOf(evt Event) []string {
	switch e := evt.(type) {
	case ContactSnapshot:
		var hs []string
		for _, c := range e.Contacts {
			hs = append(hs, c.Handle)
		}
		return hs
	case ContactPresence:
		return []string{e.Handle}
	case ContactProfile:
		return []string{e.Handle}
	case ListChange:
		return []string{e.Contact.Handle}
	case ContactRequest:
		return []string{e.Handle}
	case Message:
		return []string{e.Sender, string(e.Chat)}
	case Typing:
		return []string{e.Sender, string(e.Chat)}
	case Nudge:
		return []string{e.Sender, string(e.Chat)}
	case ChatMembership:
		return append([]string{e.Handle}, e.Members...)
	}
	return nil
}

// lockedLog is a goroutine-safe log sink.
type lockedLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newLoggingTestCore is newTestCore with the core's log in the returned sink.
func newLoggingTestCore(t *testing.T, cfg Config) (*testCore, *lockedLog) {
	t.Helper()
	logs := &lockedLog{}
	clock := newFakeClock()
	srv := newFakeServer()
	core, err := NewCore(cfg, Options{Store: testStore(t), Log: zerolog.New(logs), Clock: clock, dial: srv.dial, Rand: func() float64 { return 0.5 }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = core.Stop(ctx)
	})
	return &testCore{Core: core, srv: srv, clock: clock}, logs
}

// TestStrangersNeverBecomeContacts is a session (a hostile or buggy server behind it) that
// reports presence and personal messages for 20,000 handles that are not contacts, and names
// handles no contact can have (8 KB long, with a space, markup) in list changes, requests,
// messages, typing and joins. The account gains no contact, the frontend sees none of them,
// and a real contact's presence still comes through after the flood.
func TestStrangersNeverBecomeContacts(t *testing.T) {
	core := newTestCore(t, testStore(t), newFakeServer(), Config{})
	mx := &recorder{name: "matrix"}
	acc := loggedIn(t, core, mx)
	mx.waitFor(t, "online", hasState(StateOnline))
	sess := core.srv.session("alice@example.com")
	heapBefore := liveHeap()

	for i := range 20_000 {
		h := fmt.Sprintf("stranger%05d@evil.example", i)
		if i%2 == 0 {
			sess.emit(&msn.PresenceChanged{Handle: h, Status: msn.StatusOnline, FriendlyName: "Buy now"})
		} else {
			sess.emit(&msn.PersonalMessageChanged{Handle: h, PSM: "spam"})
		}
		if i%1000 == 999 {
			core.clock.fire()
		}
	}
	long := strings.Repeat("a", 8<<10) + "@evil.example"
	for _, h := range []string{long, "eve smith@evil.example", "<b>eve</b>@evil.example", "eve"} {
		sess.emit(&msn.ListChanged{Handle: h, List: msn.ListReverse, Added: true, Name: "Eve"})
		sess.emit(&msn.ListChanged{Handle: h, List: msn.ListForward, Added: false})
		sess.emit(&msn.ContactRequest{Handle: h, Name: "Eve"})
		sess.emit(&msn.MessageReceived{SessionID: "s1", From: h, Text: "hi"})
		sess.emit(&msn.MessageReceived{SessionID: "s2", From: "bob@example.com", Participants: []string{h}, Text: "hi"})
		sess.emit(&msn.TypingReceived{SessionID: "s3", From: h})
		sess.emit(&msn.NudgeReceived{SessionID: "s3", From: h})
		sess.emit(&msn.ParticipantJoined{SessionID: "s4", Handle: h})
	}
	sess.emit(&msn.ListChanged{Handle: "nobody@example.com", List: msn.ListAllow, Added: false})
	sess.emit(&msn.PresenceChanged{Handle: "bob@example.com", Status: msn.StatusAway})
	sess.emit(&msn.MessageReceived{SessionID: "s5", From: "bob@example.com", Text: "sync"})
	mx.waitFor(t, "sync", func(e []Event) bool {
		for _, x := range e {
			if m, ok := x.(Message); ok && m.Text == "sync" {
				return true
			}
		}
		return false
	})
	core.clock.fire()
	evts := mx.waitFor(t, "bob away", func(e []Event) bool {
		for _, x := range e {
			if p, ok := x.(ContactPresence); ok && p.Handle == "bob@example.com" && p.Status == StatusAway {
				return true
			}
		}
		return false
	})
	for _, x := range evts {
		for _, h := range handlesOf(x) {
			if h != "bob@example.com" {
				t.Fatalf("the frontend got %T naming %.80q", x, h)
			}
		}
	}
	if cs := acc.Contacts(); len(cs) != 1 || cs[0].Handle != "bob@example.com" {
		t.Fatalf("alice has %d contacts, want only bob", len(cs))
	}
	// What the flood left behind: nothing of it is kept, by the core or the frontend.
	if grown := liveHeap() - heapBefore; grown > 1<<20 {
		t.Errorf("the live heap grew by %d KiB over the flood", grown>>10)
	}
	runtime.KeepAlive(mx)
}

// liveHeap returns the bytes of live heap objects after a collection.
func liveHeap() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// TestContactCap is a session listing more contacts than Config.MSN.MaxContacts, then adding
// more: the account keeps that many, ignores the rest, and says so once in its log, across a
// reconnect too.
func TestContactCap(t *testing.T) {
	const max = 10
	core, logs := newLoggingTestCore(t, Config{MSN: msn.Config{MaxContacts: max}})
	mx := &recorder{name: "matrix"}
	acc := loggedIn(t, core, mx)
	mx.waitFor(t, "online", hasState(StateOnline))
	var list []msn.Contact
	for i := range 2 * max {
		list = append(list, msn.Contact{Handle: fmt.Sprintf("c%02d@example.com", i), Lists: msn.ListForward | msn.ListAllow})
	}
	core.srv.mu.Lock()
	core.srv.contacts["alice@example.com"] = list
	core.srv.mu.Unlock()
	from := len(mx.events())
	core.srv.kick("alice@example.com", msn.ReasonNetwork)
	mx.waitFor(t, "online again", func(e []Event) bool { return hasState(StateOnline)(e[from:]) })
	if n := len(acc.Contacts()); n != max {
		t.Fatalf("alice has %d contacts after login, want %d", n, max)
	}
	sess := core.srv.session("alice@example.com")
	for i := range max {
		sess.emit(&msn.ListChanged{Handle: fmt.Sprintf("late%02d@example.com", i), List: msn.ListReverse, Added: true})
		sess.emit(&msn.ContactRequest{Handle: fmt.Sprintf("late%02d@example.com", i)})
	}
	sess.emit(&msn.MessageReceived{SessionID: "s1", From: "c00@example.com", Text: "sync"})
	evts := mx.waitFor(t, "sync", func(e []Event) bool { return countType[Message](e) == 1 })
	if n := len(acc.Contacts()); n != max {
		t.Fatalf("alice has %d contacts, want %d", n, max)
	}
	for _, x := range evts[from:] {
		for _, h := range handlesOf(x) {
			if strings.HasPrefix(h, "late") {
				t.Fatalf("the frontend got %T for %s, beyond the cap", x, h)
			}
		}
	}
	from = len(mx.events())
	core.srv.kick("alice@example.com", msn.ReasonNetwork)
	mx.waitFor(t, "online a third time", func(e []Event) bool { return hasState(StateOnline)(e[from:]) })
	if n := strings.Count(logs.String(), "Contact list full"); n != 1 {
		t.Errorf("the cap was logged %d times, want once:\n%s", n, logs.String())
	}
}
