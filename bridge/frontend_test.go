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
	total := func(e []Event) (delivered, dropped int) {
		for _, x := range e {
			switch v := x.(type) {
			case Message:
				delivered++
			case EventsDropped:
				dropped += v.Count
				if len(v.Chats) != 1 || v.Chats[0] != "bob@x" {
					t.Errorf("drop notice chats: %v", v.Chats)
				}
			}
		}
		return
	}
	evts := slow.waitFor(t, "every message delivered or announced", func(e []Event) bool {
		d, x := total(e)
		return d+x == 10
	})
	if _, dropped := total(evts); dropped == 0 {
		t.Fatal("a stuck frontend with a queue of 3 dropped nothing")
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
