package discord

import (
	"fmt"
	"testing"
)

// TestGatewayEndedIsReplaced: a gateway connection closed on the bridge's side, as discordgo
// does when a heartbeat fails, is replaced by the frontend; and a second close of that old
// connection, as a heartbeat goroutine that outlived it does, leaves the new one alone. The
// owner's messages written after each reach MSN.
func TestGatewayEndedIsReplaced(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.login()
	bobCh := h.openChat(bob)
	owner := h.dc.OwnerID()
	want := []string{"before"}
	h.dc.InjectUserMessage(bobCh, owner, "before")
	h.waitBobGot("the message before the close", want)

	old := h.fe.Session()
	conns := h.dc.Stats().Connections
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	h.waitFor("a new gateway connection", func() bool {
		return h.dc.Stats().Connections > conns && h.dc.Connected() == 1
	})
	h.dc.InjectUserMessage(bobCh, owner, "after the close")
	want = append(want, "after the close")
	h.waitBobGot("the message after the close", want)

	conns = h.dc.Stats().Connections
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	h.dc.InjectUserMessage(bobCh, owner, "after the stale close")
	want = append(want, "after the stale close")
	h.waitBobGot("the message after the stale close", want)
	if n := h.dc.Connected(); n != 1 {
		t.Errorf("%d gateway sessions connected, want 1", n)
	}
	if n := h.dc.Stats().Connections; n != conns {
		t.Errorf("the stale close cost %d new connections, want 0", n-conns)
	}
}

// TestOwnerBurstKeepsOrder: messages the owner writes back to back reach MSN in the order
// Discord gave them.
func TestOwnerBurstKeepsOrder(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.login()
	bobCh := h.openChat(bob)
	owner := h.dc.OwnerID()
	h.dc.InjectUserMessage(bobCh, owner, "first")
	h.waitBobGot("the first message", []string{"first"})
	want := []string{"first"}
	for i := 1; i <= 40; i++ {
		text := fmt.Sprintf("burst %d", i)
		if h.dc.InjectUserMessage(bobCh, owner, text) == nil {
			t.Fatal("could not post")
		}
		want = append(want, text)
	}
	h.waitBobGot("the burst, in order", want)
}
