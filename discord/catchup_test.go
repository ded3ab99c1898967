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

// freshGap drops the gateway so that the next connection is a fresh session (the dropped one
// expires while the gateway leaves the reconnect unanswered), runs during while the bridge has
// no gateway, and returns once the fresh session is up.
func (h *harness) freshGap(during func()) {
	h.t.Helper()
	before := h.dc.Stats()
	h.dc.SetMute(true)
	h.dc.DropGateway()
	h.waitFor("a reconnect left unanswered", func() bool { return h.dc.Stats().Unanswered > before.Unanswered })
	during()
	h.dc.SetMute(false)
	h.waitFor("a fresh session", func() bool {
		st := h.dc.Stats()
		return st.Identifies > before.Identifies && h.dc.Connected() == 1
	})
	if st := h.dc.Stats(); st.Resumes != before.Resumes {
		h.t.Fatalf("stats %+v: the dropped session was resumed, the gap was not caught up", st)
	}
}

// TestFreshSessionCatchesUpLongGap: while the bridge has no gateway and its session expires,
// the owner edits a message carried before, and writes 250 messages across three contacts'
// channels (more than two of Discord's pages of 100 in one of them), editing one of them. After
// the fresh session every one reaches its contact once, in order, and before what the owner
// writes afterwards: the earlier message's edit as an edit, the new message with its edited
// text (Discord keeps no other), each once.
func TestFreshSessionCatchesUpLongGap(t *testing.T) {
	h := newHarness(t, harnessOpts{recordAll: true,
		fake:   func(o *discordtest.Options) { o.SessionTimeout = 50 * time.Millisecond },
		feOpts: []Option{func(f *Frontend) { f.gwOpenTimeout = time.Second }}})
	h.login()
	owner := h.dc.OwnerID()
	chats := []struct {
		ch   string
		rx   *recorder
		want []string
	}{{ch: h.openChat(bob), rx: h.bobRx}, {ch: h.openChat(carol), rx: h.carolRx}, {ch: h.openChat(dave), rx: h.daveRx}}
	before := make([]string, len(chats))
	for i := range chats {
		c := &chats[i]
		c.want = append(c.want, "before")
		before[i] = h.dc.InjectUserMessage(c.ch, owner, "before").ID
		h.waitFor("the message before the gap", func() bool { return len(c.rx.got()) >= 1 })
	}

	h.freshGap(func() {
		for i := range chats {
			if !h.dc.InjectUserEdit(chats[i].ch, before[i], "before, edited") {
				t.Fatal("could not edit in the gap")
			}
			chats[i].want = append(chats[i].want, "* before, edited")
		}
		// 150 in bob's channel, 60 in carol's, 40 in dave's, interleaved; the sixth of each
		// edited before the catch-up fetches it.
		counts := []int{150, 60, 40}
		for i := 0; i < 150; i++ {
			for j := range chats {
				if i >= counts[j] {
					continue
				}
				text := fmt.Sprintf("gap %d", i)
				m := h.dc.InjectUserMessage(chats[j].ch, owner, text)
				if m == nil {
					t.Fatal("could not post in the gap")
				}
				if i == 5 {
					text += ", edited"
					if !h.dc.InjectUserEdit(chats[j].ch, m.ID, text) {
						t.Fatal("could not edit in the gap")
					}
				}
				chats[j].want = append(chats[j].want, text)
			}
		}
	})
	for i := range chats {
		c := &chats[i]
		h.dc.InjectUserMessage(c.ch, owner, "after")
		c.want = append(c.want, "after")
	}
	for i := range chats {
		c := &chats[i]
		h.waitFor("every message of the gap", func() bool { return len(c.rx.got()) >= len(c.want) })
		// A duplicate would arrive before this last message: the outbox sends in order.
		h.dc.InjectUserMessage(c.ch, owner, "marker")
		c.want = append(c.want, "marker")
	}
	for i := range chats {
		c := &chats[i]
		h.waitFor("the marker", func() bool { return len(c.rx.got()) >= len(c.want) })
		if got := c.rx.got(); !slices.Equal(got, c.want) {
			t.Errorf("channel %d: got %d messages %q,\nwant %d %q", i, len(got), got, len(c.want), c.want)
		}
	}
}

// TestGapStrangerNotCarried: a guild member who does not own the account writes in a contact's
// channel during a gap that the catch-up fetches, between the owner's messages. Only the
// owner's reach MSN.
func TestGapStrangerNotCarried(t *testing.T) {
	h := newHarness(t, harnessOpts{
		fake:   func(o *discordtest.Options) { o.SessionTimeout = 50 * time.Millisecond },
		feOpts: []Option{func(f *Frontend) { f.gwOpenTimeout = time.Second }}})
	h.login()
	bobCh := h.openChat(bob)
	owner := h.dc.OwnerID()
	h.dc.InjectUserMessage(bobCh, owner, "before")
	h.waitBobGot("the message before the gap", []string{"before"})

	want := []string{"before"}
	h.freshGap(func() {
		for i := 1; i <= 3; i++ {
			if h.dc.InjectUserMessage(bobCh, h.eve, fmt.Sprintf("stranger %d", i)) == nil {
				t.Fatal("the stranger could not post")
			}
			text := fmt.Sprintf("owner %d", i)
			if h.dc.InjectUserMessage(bobCh, owner, text) == nil {
				t.Fatal("could not post in the gap")
			}
			want = append(want, text)
		}
	})
	h.waitFor("the owner's messages of the gap", func() bool { return len(h.bobRx.got()) >= len(want) })
	// Anything the stranger got through would arrive before this last message: the outbox
	// sends in order.
	h.dc.InjectUserMessage(bobCh, owner, "marker")
	want = append(want, "marker")
	h.waitBobGot("the owner's messages only, in order", want)
	if n := h.dc.Touched()["GET /channels/{c}/messages"]; n == 0 {
		t.Error("the gap was not fetched")
	}
}
