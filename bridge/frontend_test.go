package bridge

import (
	"context"
	"testing"
	"time"
)

func TestFrontendQueueOverflowIsNotSilent(t *testing.T) {
	core := newTestCore(t, testStore(t), newFakeServer(), Config{FrontendQueueSize: 3})
	acc := newAccount(core.Core, &AccountRecord{Handle: "alice@example.com"})
	slow := &recorder{name: "slow", block: make(chan struct{})}
	fast := &recorder{name: "fast"}
	acc.Attach(slow)
	acc.Attach(fast)

	acc.mu.Lock()
	for i := 0; i < 10; i++ {
		acc.emitLocked(Message{Chat: DirectChat("bob@x"), Text: "m"}, "")
		// Presence is coalesced: it never fills the queue.
		acc.emitLocked(ContactPresence{Handle: "bob@x", Status: Status(i % 3)}, "")
	}
	acc.mu.Unlock()

	// The fast frontend is served while the slow one is stuck: every message is delivered or
	// announced as dropped.
	fast.waitFor(t, "all messages", func(e []Event) bool {
		n := countType[Message](e)
		for _, x := range e {
			if d, ok := x.(EventsDropped); ok {
				n += d.Count
			}
		}
		return n == 10
	})

	close(slow.block)
	evts := slow.waitFor(t, "drop notice", func(e []Event) bool { return countType[EventsDropped](e) == 1 })
	time.Sleep(50 * time.Millisecond)
	evts = slow.events()
	var dropped EventsDropped
	for _, e := range evts {
		if d, ok := e.(EventsDropped); ok {
			dropped = d
		}
	}
	got := countType[Message](evts)
	if got+dropped.Count != 10 || dropped.Count == 0 || len(dropped.Chats) != 1 {
		t.Fatalf("delivered %d, dropped %+v: every message must be delivered or announced", got, dropped)
	}
	if n := countType[ContactPresence](evts); n > 2 {
		t.Fatalf("presence not coalesced in the queue: %d updates", n)
	}
	acc.detachAll(context.Background())
}

func TestFrontendPanicDoesNotStopDelivery(t *testing.T) {
	core := newTestCore(t, testStore(t), newFakeServer(), Config{})
	acc := newAccount(core.Core, &AccountRecord{Handle: "alice@example.com"})
	bad := &recorder{name: "bad", panics: true}
	acc.Attach(bad)
	acc.mu.Lock()
	acc.emitLocked(Message{Text: "1"}, "")
	acc.emitLocked(Message{Text: "2"}, "")
	acc.mu.Unlock()
	bad.waitFor(t, "both messages despite panics", func(e []Event) bool { return countType[Message](e) == 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	acc.Detach(ctx, "bad")
	if len(acc.Attached()) != 0 {
		t.Fatal("still attached")
	}
}
