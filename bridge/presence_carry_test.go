package bridge

import (
	"testing"

	"github.com/msn-bridge/msn-bridge/msn"
)

// After a reconnect the new session's contact list comes before its contacts' presence: the
// frontends must not see a present contact go offline and back, and must see a contact the
// server no longer reports as present go offline once the grace ends.
func TestReconnectCarriesPresenceOver(t *testing.T) {
	const bob, carol = "bob@example.com", "carol@example.com"
	core := newTestCore(t, testStore(t), newFakeServer(), Config{})
	mx := &recorder{name: "matrix"}
	acc := loggedIn(t, core, mx)
	core.srv.mu.Lock()
	core.srv.contacts["alice@example.com"] = append(core.srv.contacts["alice@example.com"],
		msn.Contact{Handle: carol, StoredName: "Carol", Lists: msn.ListForward | msn.ListAllow, Status: msn.StatusOffline})
	core.srv.mu.Unlock()
	mx.waitFor(t, "online", hasState(StateOnline))
	sess := core.srv.session("alice@example.com")
	sess.emit(&msn.ListChanged{Handle: carol, List: msn.ListForward, Added: true, Name: "Carol"})
	sess.emit(&msn.PresenceChanged{Handle: bob, Status: msn.StatusOnline, Initial: true})
	sess.emit(&msn.PersonalMessageChanged{Handle: bob, PSM: "fishing"})
	sess.emit(&msn.PresenceChanged{Handle: carol, Status: msn.StatusBusy, Initial: true})
	sess.emit(&msn.MessageReceived{SessionID: "1", From: bob, Text: "sync"})
	mx.waitFor(t, "sync", func(e []Event) bool { return countType[Message](e) == 1 })
	core.clock.fire()
	mx.waitFor(t, "bob and carol present", func(e []Event) bool { return countType[ContactPresence](e) == 2 })

	from := len(mx.events())
	core.srv.kick("alice@example.com", msn.ReasonNetwork)
	mx.waitFor(t, "online again", func(e []Event) bool { return hasState(StateOnline)(e[from:]) })
	// The server reports bob (and his PSM) again, not carol.
	sess = core.srv.session("alice@example.com")
	sess.emit(&msn.PresenceChanged{Handle: bob, Status: msn.StatusOnline, Initial: true})
	sess.emit(&msn.PersonalMessageChanged{Handle: bob, PSM: "fishing"})
	sess.emit(&msn.MessageReceived{SessionID: "2", From: bob, Text: "sync"})
	mx.waitFor(t, "sync", func(e []Event) bool { return countType[Message](e) == 2 })
	core.clock.fire() // presence window and grace
	core.clock.fire() // the flush the grace scheduled, if any
	evts := mx.waitFor(t, "carol offline", func(e []Event) bool {
		for _, x := range e[from:] {
			if p, ok := x.(ContactPresence); ok && p.Handle == carol && p.Status == StatusOffline {
				return true
			}
		}
		return false
	})

	var snaps int
	var carolSeen []Status
	for _, x := range evts[from:] {
		switch e := x.(type) {
		case ContactSnapshot:
			snaps++
			for _, c := range e.Contacts {
				switch c.Handle {
				case bob:
					if c.Status != StatusOnline || c.PSM != "fishing" {
						t.Errorf("bob in the snapshot after the reconnect: %+v", c)
					}
				case carol:
					carolSeen = append(carolSeen, c.Status)
				}
			}
		case ContactPresence:
			if e.Handle == bob {
				t.Errorf("bob's presence shown again after the reconnect: %+v", e)
			}
			if e.Handle == carol {
				carolSeen = append(carolSeen, e.Status)
			}
		}
	}
	if snaps != 1 {
		t.Errorf("%d snapshots after the reconnect, want 1", snaps)
	}
	if len(carolSeen) != 2 || carolSeen[0] != StatusBusy || carolSeen[1] != StatusOffline {
		t.Errorf("carol shown %v after the reconnect, want busy (carried) then offline", carolSeen)
	}
	if c, _ := acc.Contact(carol); c.Status != StatusOffline {
		t.Errorf("carol in the model: %+v", c)
	}
}
