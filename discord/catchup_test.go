package discord

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/msn-bridge/msn-bridge/discord/discordtest"
)

// waitBobGot waits until bob has received as many texts as want, then checks they are want.
func (h *harness) waitBobGot(what string, want []string) {
	h.t.Helper()
	h.waitFor(what, func() bool { return len(h.bobRx.got()) >= len(want) })
	got := h.bobRx.got()
	if !slices.Equal(got, want) {
		h.t.Fatalf("%s: bob got %q, want %q", what, got, want)
	}
}

// TestGatewayGapIsCaughtUp: the gateway stops acknowledging heartbeats, discordgo closes with
// 1000 (which ends the session on Discord), and the owner writes to a contact while the bridge
// is away. After the fresh IDENTIFY every message of the gap reaches MSN, once, in order, and
// before what the owner writes afterwards, though Discord fails the first fetches with 503.
func TestGatewayGapIsCaughtUp(t *testing.T) {
	h := newHarness(t, harnessOpts{fake: func(o *discordtest.Options) {
		o.HeartbeatInterval = 200 * time.Millisecond
	}})
	h.login()
	bobCh := h.openChat(bob)
	owner := h.dc.OwnerID()
	h.dc.InjectUserMessage(bobCh, owner, "before")
	h.waitBobGot("the message before the gap", []string{"before"})

	h.dc.SetNoAck(true)
	h.waitFor("the bridge to close its gateway session", func() bool { return h.dc.Stats().Invalidated >= 1 })
	var want = []string{"before"}
	for i := 1; i <= 3; i++ {
		text := fmt.Sprintf("gap %d", i)
		if h.dc.InjectUserMessage(bobCh, owner, text) == nil {
			t.Fatal("could not post in the gap")
		}
		want = append(want, text)
	}
	// Discord fails the first fetches of the gap: the catch-up retries them, with waits long
	// enough that the message written after the reconnect comes while it is still on.
	h.dc.InjectFault("GET /channels/{c}/messages", 3, 503)
	h.dc.SetNoAck(false)
	h.waitFor("a fresh session", func() bool { return h.dc.Stats().Identifies >= 2 && h.dc.Connected() == 1 })
	h.dc.InjectUserMessage(bobCh, owner, "after")
	want = append(want, "after")
	h.waitFor("every message at bob", func() bool { return len(h.bobRx.got()) >= len(want) })
	// A duplicate would arrive before this last message: the outbox sends in order.
	h.dc.InjectUserMessage(bobCh, owner, "marker")
	want = append(want, "marker")
	h.waitBobGot("every message once, in order", want)
	if n := h.dc.Touched()["GET /channels/{c}/messages"]; n < 4 {
		t.Errorf("the gap was fetched %d times, want the 3 failures and a success", n)
	}
	if st := h.dc.Stats(); st.Resumes != 0 {
		t.Errorf("stats %+v: a session ended by a 1000 close was resumed", st)
	}
}

// TestRestartCatchesUp: the owner writes to a contact while the bridge is stopped; after the
// restart those messages reach MSN once, in order, and nothing carried before is sent again.
func TestRestartCatchesUp(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.login()
	bobCh := h.openChat(bob)
	owner := h.dc.OwnerID()
	h.dc.InjectUserMessage(bobCh, owner, "before")
	h.waitBobGot("the message before the restart", []string{"before"})

	h.stopBridge()
	want := []string{"before"}
	for i := 1; i <= 3; i++ {
		text := fmt.Sprintf("while stopped %d", i)
		if h.dc.InjectUserMessage(bobCh, owner, text) == nil {
			t.Fatal("could not post while the bridge was stopped")
		}
		want = append(want, text)
	}
	h.startBridge()
	h.waitFor("the messages written while stopped", func() bool { return len(h.bobRx.got()) >= len(want) })
	// A duplicate would arrive before this last message: the outbox sends in order.
	h.dc.InjectUserMessage(bobCh, owner, "marker")
	want = append(want, "marker")
	h.waitBobGot("every message once, in order", want)
}
