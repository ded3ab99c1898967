package discord

import (
	"fmt"
	"testing"
	"time"
)

// TestGatewayEndedIsReplaced: the session's gateway connection is closed on the bridge's side
// — as discordgo's heartbeat does when a write fails, also with a heartbeat that outlived its own
// connection and closes the one that replaced it — again as soon as each new one is up. The
// frontend opens the next connection every time (a fresh session: Discord ends one the client
// closes with 1000), and every message the owner wrote meanwhile reaches MSN once, in order.
func TestGatewayEndedIsReplaced(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.login()
	bobCh := h.openChat(bob)
	owner := h.dc.OwnerID()
	want := []string{"before"}
	h.dc.InjectUserMessage(bobCh, owner, "before")
	h.waitBobGot("the message before the closes", want)

	for i := 1; i <= 3; i++ {
		conns := h.dc.Stats().Connections
		if err := h.fe.Session().Close(); err != nil {
			t.Fatal(err)
		}
		text := fmt.Sprintf("while closed %d", i)
		if h.dc.InjectUserMessage(bobCh, owner, text) == nil {
			t.Fatal("could not post")
		}
		want = append(want, text)
		h.waitFor("a new gateway connection", func() bool { return h.dc.Stats().Connections > conns && h.dc.Connected() == 1 })
	}
	h.dc.InjectUserMessage(bobCh, owner, "after")
	want = append(want, "after")
	h.waitBobGot("every message once, in order", want)
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

// TestGatewayOpenThatHangsIsCut: after a drop the gateway accepts the new connection and then
// leaves the RESUME unanswered, as a hung gateway node would. The frontend cuts that connection
// after its open timeout and tries again; once the gateway answers, the owner's message written
// meanwhile reaches MSN.
func TestGatewayOpenThatHangsIsCut(t *testing.T) {
	h := newHarness(t, harnessOpts{feOpts: []Option{func(f *Frontend) { f.gwOpenTimeout = 2 * time.Second }}})
	h.login()
	bobCh := h.openChat(bob)
	owner := h.dc.OwnerID()
	want := []string{"before"}
	h.dc.InjectUserMessage(bobCh, owner, "before")
	h.waitBobGot("the message before the drop", want)

	h.dc.SetMute(true)
	h.dc.DropGateway()
	h.waitFor("a connection left unanswered", func() bool { return h.dc.Stats().Unanswered >= 1 })
	h.dc.InjectUserMessage(bobCh, owner, "while hung")
	want = append(want, "while hung")
	h.dc.SetMute(false)
	h.waitFor("a connected gateway", func() bool { return h.dc.Connected() == 1 })
	h.dc.InjectUserMessage(bobCh, owner, "after")
	want = append(want, "after")
	h.waitBobGot("every message once, in order", want)
}
