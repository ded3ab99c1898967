package discord

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/msn-bridge/msn-bridge/bridge"
	"github.com/msn-bridge/msn-bridge/discord/discordtest"
	"github.com/msn-bridge/msn-bridge/msn/msntest"
)

// TestRestartFindsLayoutAgain restarts the bridge: the account is logged back in from the store,
// the frontend re-attaches to it, and finds its category, roster message, channels and webhooks
// again instead of creating new ones.
func TestRestartFindsLayoutAgain(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.login()
	if err := h.ms.BotSay(bob, alice, "before restart"); err != nil {
		t.Fatal(err)
	}
	h.waitFor("first message", func() bool {
		c := h.dc.ChannelByName("bob-at-example-com")
		return c != nil && len(h.webhookMessages(c.ID)) == 1
	})
	h.waitFor("roster", func() bool { _, r := h.roster(); return strings.Contains(r, "Erin") })
	rosterID, _ := h.roster()
	pins := h.dc.Pins(rosterID)
	channels, hooks := len(h.dc.Channels()), len(h.dc.Webhooks())

	h.stopBridge()
	h.startBridge()
	if err := h.ms.SetPresence(carol, "BSY", "back after restart"); err != nil {
		t.Fatal(err)
	}
	h.waitFor("roster updated after restart", func() bool {
		_, r := h.roster()
		return strings.Contains(section(r, "🔴 Busy"), "back after restart")
	})
	if err := h.ms.BotSay(bob, alice, "after restart"); err != nil {
		t.Fatal(err)
	}
	bobCh := h.dc.ChannelByName("bob-at-example-com").ID
	h.waitFor("message after restart", func() bool { return len(h.webhookMessages(bobCh)) == 2 })
	if got := h.dc.Pins(rosterID); len(got) != len(pins) || got[0] != pins[0] {
		t.Errorf("roster pins %v, were %v", got, pins)
	}
	if n := len(h.dc.Channels()); n != channels {
		t.Errorf("%d channels after restart, were %d", n, channels)
	}
	if n := len(h.dc.Webhooks()); n != hooks {
		t.Errorf("%d webhooks after restart, were %d", n, hooks)
	}
	// The owner's messages in the old channel still reach MSN.
	h.dc.InjectUserMessage(bobCh, h.dc.OwnerID(), "still here")
	h.waitFor("message to bob after restart", func() bool {
		got := h.bobRx.got()
		return len(got) > 0 && got[len(got)-1] == "still here"
	})
}

// TestLinkCodeAttachesToExistingSession links a Discord user to an account already logged in
// for another frontend: the frontend attaches to the same Account, without a second MSN login.
func TestLinkCodeAttachesToExistingSession(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	ctx := context.Background()
	mx := bridge.FrontendUser{Frontend: "matrix", UserID: "@alice:example.org"}
	acc, err := h.core.Login(ctx, mx, alice, alicePW)
	if err != nil {
		t.Fatal(err)
	}
	code, _, err := h.core.IssueLinkCode(ctx, alice, mx)
	if err != nil {
		t.Fatal(err)
	}
	// A wrong code first.
	iid, tok := h.slash(h.dc.OwnerID(), h.gen, "link", map[string]string{"code": "AAAA-BBBB-CCCC"})
	if _, text := h.answer(iid, tok); !strings.Contains(text, "unknown, used or expired") {
		t.Errorf("bad code answer %q", text)
	}
	iid, tok = h.slash(h.dc.OwnerID(), h.gen, "link", map[string]string{"code": code})
	if _, text := h.answer(iid, tok); !strings.Contains(text, "mirrored here too") {
		t.Fatalf("link answer %q", text)
	}
	h.waitFor("roster", func() bool { _, r := h.roster(); return strings.Contains(r, "Erin") })
	if h.core.Account(alice) != acc || acc.State().State != bridge.StateOnline {
		t.Fatalf("account replaced or not online: %v", acc.State())
	}
	if !contains(acc.Attached(), FrontendName) {
		t.Fatalf("attached: %v", acc.Attached())
	}
	// Both frontends' owner can use it; a message from Discord reaches MSN on the same session.
	bobCh := h.openChat(bob)
	h.dc.InjectUserMessage(bobCh, h.dc.OwnerID(), "via discord")
	h.waitFor("message at bob", func() bool { return len(h.bobRx.got()) == 1 })
	if acc.State().State != bridge.StateOnline {
		t.Fatalf("session disturbed: %v", acc.State())
	}
}

// TestAccountStopsOthersKeepWorking kicks one account (logged in elsewhere): its roster channel
// says so, while another user's account keeps being served.
func TestAccountStopsOthersKeepWorking(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	if err := h.ms.AddAccount("grace@example.com", "grace-pw", "Grace"); err != nil {
		t.Fatal(err)
	}
	if err := h.ms.AddFriends("grace@example.com", bob); err != nil {
		t.Fatal(err)
	}
	h.login()
	h.loginAs(h.eve, "grace@example.com", "grace-pw")
	h.waitFor("both rosters", func() bool {
		_, a := h.rosterOf(alice)
		_, g := h.rosterOf("grace@example.com")
		return strings.Contains(a, "Erin") && strings.Contains(g, escapeMarkdown(bobName))
	})

	if err := h.ms.Kick(alice); err != nil {
		t.Fatal(err)
	}
	aliceRoster := h.rosterChannel(alice).ID
	h.waitFor("logged-in-elsewhere line", func() bool {
		for _, m := range h.dc.Messages(aliceRoster) {
			if strings.Contains(m.Content, "another location") {
				return true
			}
		}
		return false
	})
	h.waitFor("roster header shows the stop", func() bool {
		_, r := h.rosterOf(alice)
		return strings.Contains(r, "Not connected")
	})

	// grace is unaffected, and her channels are hers: alice's owner cannot act there.
	if err := h.ms.BotSay(bob, "grace@example.com", "hi grace"); err != nil {
		t.Fatal(err)
	}
	var graceBob string
	h.waitFor("grace's message", func() bool {
		for _, c := range h.dc.Channels() {
			if c.Name == "bob-at-example-com" && c.ParentID == h.rosterChannel("grace@example.com").ParentID {
				graceBob = c.ID
				return len(h.webhookMessages(c.ID)) == 1
			}
		}
		return false
	})
	iid, tok := h.slash(h.dc.OwnerID(), graceBob, "nudge", nil)
	if _, text := h.answer(iid, tok); !strings.Contains(text, "belongs to someone else") {
		t.Errorf("cross-account command answer %q", text)
	}
	h.dc.InjectUserMessage(graceBob, h.eve, "from grace")
	h.waitFor("grace's message at bob", func() bool {
		got := h.bobRx.got()
		return len(got) == 1 && got[0] == "from grace"
	})
}

// TestRateLimitHonoured injects 429s on webhook executes and channel messages: each is retried
// after retry_after, once, and the messages arrive.
func TestRateLimitHonoured(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.login()
	bobCh := h.openChat(bob)
	h.dc.Inject429("POST /webhooks/{w}/{tok}", 2, 200*time.Millisecond)
	for _, text := range []string{"one", "two", "three"} {
		if err := h.ms.BotSay(bob, alice, text); err != nil {
			t.Fatal(err)
		}
	}
	h.waitFor("three messages", func() bool { return len(h.webhookMessages(bobCh)) == 3 })
	for i, want := range []string{"one", "two", "three"} {
		if got := h.webhookMessages(bobCh)[i].Content; got != want {
			t.Errorf("message %d = %q, want %q (order kept)", i, got, want)
		}
	}
	if n := h.dc.Count429(); n != 2 {
		t.Errorf("%d 429s, want exactly the 2 injected (no storm)", n)
	}
}

// TestOnlineOfflineCategories moves a contact channel to the offline category and back.
func TestOnlineOfflineCategories(t *testing.T) {
	h := newHarness(t, harnessOpts{cfg: func(c *Config) { c.OnlineOfflineCategories = true }})
	h.login()
	daveCh := h.openChat(dave)
	online := h.dc.Channel(daveCh).ParentID
	if err := h.ms.SetPresence(dave, "FLN", ""); err != nil {
		t.Fatal(err)
	}
	h.waitFor("moved to the offline category", func() bool {
		p := h.dc.Channel(h.dc.Channel(daveCh).ParentID)
		return p != nil && p.Name == "MSN — "+alice+" (offline)"
	})
	if err := h.ms.SetPresence(dave, "NLN", "back"); err != nil {
		t.Fatal(err)
	}
	h.waitFor("moved back", func() bool { return h.dc.Channel(daveCh).ParentID == online })
	h.waitFor("topic", func() bool { return h.dc.Channel(daveCh).Topic == "`"+dave+"` · 🟢 Online · back" })
	if n := h.dc.Count429(); n != 0 {
		t.Errorf("%d 429s: %v", n, h.dc.Routes429())
	}
}

// TestRequestsAndGroupChats covers contact requests with buttons and multi-party chats.
func TestRequestsAndGroupChats(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	if err := h.ms.AddAccount("frank@example.com", "x", "Frank"); err != nil {
		t.Fatal(err)
	}
	if err := h.ms.AddContact("frank@example.com", alice, msntest.FL|msntest.AL); err != nil {
		t.Fatal(err)
	}
	h.login()
	acc := h.core.Account(alice)
	owner := h.dc.OwnerID()

	// /msn requests lists frank with buttons.
	iid, tok := h.slash(owner, h.gen, "requests", nil)
	if _, text := h.answer(iid, tok); !strings.Contains(text, "frank@example.com") {
		t.Fatalf("requests answer %q", text)
	}
	if o := h.dc.Original(tok); o == nil || len(o.Components) != 1 {
		t.Fatalf("requests answer without buttons: %+v", o)
	}

	// A request shown in the roster channel: a non-owner's click is refused, the owner's
	// accepts.
	ctx := context.Background()
	if err := h.fe.HandleEvent(ctx, acc, bridge.ContactRequest{Handle: "frank@example.com", Name: "Frank"}); err != nil {
		t.Fatal(err)
	}
	rosterID := h.rosterChannel(alice).ID
	var req *discordtest.Message
	h.waitFor("request message", func() bool {
		for _, m := range h.dc.Messages(rosterID) {
			if strings.Contains(m.Content, "added you") && len(m.Components) == 1 {
				req = m
				return true
			}
		}
		return false
	})
	row, ok := req.Components[0].(*discordgo.ActionsRow)
	if !ok || len(row.Components) != 2 {
		t.Fatalf("request components %#v", req.Components)
	}
	accept := row.Components[0].(*discordgo.Button).CustomID
	iid, tok = h.dc.InjectComponent(h.eve, rosterID, req.ID, discordgo.MessageComponentInteractionData{
		CustomID: accept, ComponentType: discordgo.ButtonComponent})
	if _, text := h.answer(iid, tok); !strings.Contains(text, "belongs to someone else") {
		t.Errorf("non-owner click answer %q", text)
	}
	iid, tok = h.dc.InjectComponent(owner, rosterID, req.ID, discordgo.MessageComponentInteractionData{
		CustomID: accept, ComponentType: discordgo.ButtonComponent})
	if _, text := h.answer(iid, tok); !strings.Contains(text, "Accepted") {
		t.Fatalf("owner click answer %q", text)
	}
	h.waitFor("frank on alice's lists", func() bool {
		return h.ms.Lists(alice, "frank@example.com")&msntest.FL != 0
	})

	// A multi-party chat gets its own channel with join and leave lines.
	chat := bridge.GroupChat("42")
	events := []bridge.Event{
		bridge.ChatMembership{Chat: chat, Handle: carol, Joined: true, Members: []string{bob, carol}},
		bridge.Message{ID: "m1", Chat: chat, Sender: carol, SenderName: "Carol", Text: "hello both"},
		bridge.ChatMembership{Chat: chat, Handle: bob, Joined: false, Members: []string{carol}},
		bridge.ChatMembership{Chat: chat, Handle: alice, Joined: false},
	}
	for _, e := range events {
		if err := h.fe.HandleEvent(ctx, acc, e); err != nil {
			t.Fatal(err)
		}
	}
	g := h.dc.ChannelByName("group-42")
	if g == nil {
		t.Fatal("no group channel")
	}
	var lines []string
	for _, m := range h.dc.Messages(g.ID) {
		lines = append(lines, m.Author.Username+": "+m.Content)
	}
	all := strings.Join(lines, "\n")
	for _, want := range []string{"Group conversation with", "Carol: hello both", "left the conversation", "conversation was closed"} {
		if !strings.Contains(all, want) {
			t.Errorf("group channel lacks %q:\n%s", want, all)
		}
	}
}

// TestLoginRefused answers a wrong password and a malformed address ephemerally, and stores
// nothing.
func TestLoginRefused(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	for _, tc := range []struct{ handle, password, want string }{
		{alice, "wrong", "refused the e-mail address or password"},
		{"not-an-address", "x", "not an MSN address"},
	} {
		first, text := h.submitLogin(h.dc.OwnerID(), tc.handle, tc.password)
		if first.Flags&discordgo.MessageFlagsEphemeral == 0 || !strings.Contains(text, tc.want) {
			t.Errorf("login %s answered %q (flags %d)", tc.handle, text, first.Flags)
		}
		if strings.Contains(text, tc.password) && tc.password != "x" {
			t.Errorf("answer shows the password: %q", text)
		}
	}
	if h.core.Account(alice) != nil || h.rosterChannel(alice) != nil {
		t.Fatal("a refused login left an account or channels behind")
	}
}

// TestEditsAndDeletes: MSN cannot change or take back a message it delivered. An edit of the
// owner's message is carried as a new message, "* " and the new text, once per change; an
// update that is no edit sends nothing; deleting a delivered message says in the channel that
// the contact still has it; an edit that fails is reported on the message.
func TestEditsAndDeletes(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	owner := h.dc.OwnerID()
	h.login()
	bobCh := h.openChat(bob)

	m := h.dc.InjectUserMessage(bobCh, owner, "helo bob")
	h.waitFor("the message at bob", func() bool { return len(h.bobRx.got()) == 1 })
	h.dc.InjectUserEdit(bobCh, m.ID, "hello bob")
	h.waitFor("the edit at bob", func() bool { return len(h.bobRx.got()) == 2 })
	if got := h.bobRx.got()[1]; got != "* hello bob" {
		t.Errorf("edit carried as %q", got)
	}

	// The same text again (an edit that changed nothing MSN sees), and an update without
	// edited_timestamp (a link preview arriving): nothing is sent. A later message shows that
	// nothing was queued before it.
	h.dc.InjectUserEdit(bobCh, m.ID, "hello bob")
	preview := *h.dc.Messages(bobCh)[0].Message
	preview.Content, preview.EditedTimestamp = "something else", nil
	if err := h.dc.Dispatch("MESSAGE_UPDATE", &preview); err != nil {
		t.Fatal(err)
	}
	h.dc.InjectUserMessage(bobCh, owner, "next")
	h.waitFor("the next message at bob", func() bool { return len(h.bobRx.got()) >= 3 })
	if got := h.bobRx.got(); len(got) != 3 || got[2] != "next" {
		t.Errorf("bob received %q, want the next message third and last", got)
	}

	// Deleting the delivered message: a notice in the channel. Deleting someone else's message
	// (here eve's, never sent to MSN) says nothing.
	other := h.dc.InjectUserMessage(bobCh, h.eve, "not the owner")
	h.dc.InjectUserDelete(bobCh, other.ID)
	h.dc.InjectUserDelete(bobCh, m.ID)
	notices := func() int {
		n := 0
		for _, x := range h.dc.Messages(bobCh) {
			if strings.Contains(x.Content, "Deleted here only") {
				n++
			}
		}
		return n
	}
	h.waitFor("the delete notice", func() bool { return notices() == 1 })

	// An edit to a contact gone offline fails, and says so on the message.
	erinCh := h.openChat(erin)
	em := h.dc.InjectUserMessage(erinCh, owner, "are you there")
	h.waitFor("the first failure", func() bool { return len(failureReplies(h, erinCh, em.ID)) == 1 })
	h.dc.InjectUserEdit(erinCh, em.ID, "are you there?")
	h.waitFor("the edit's failure", func() bool { return len(failureReplies(h, erinCh, em.ID)) == 2 })
	if got := failureReplies(h, erinCh, em.ID)[1]; !strings.HasPrefix(got, "❌ Edit not delivered: ") || !strings.Contains(got, "offline") {
		t.Errorf("edit failure %q", got)
	}
	if notices() != 1 {
		t.Errorf("%d delete notices, want 1", notices())
	}
}

// Deleting a message that has not reached MSN yet withdraws it: a message queued behind a slow
// send is never sent, and the owner is told so. Deleting the one being sent cannot stop it, and
// once it is delivered the owner is told the contact has it.
func TestDeleteWithdrawsWhatIsNotSent(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	owner := h.dc.OwnerID()
	h.login()
	bobCh := h.openChat(bob)
	h.ms.SetDelay("MSG", 1500*time.Millisecond)
	sending := h.dc.InjectUserMessage(bobCh, owner, "on its way")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		ev, err := h.ms.WaitFor(ctx, alice, "MSG")
		if err != nil {
			t.Fatalf("the first message never reached the server: %v", err)
		}
		if strings.Contains(string(ev.Payload), "on its way") {
			break
		}
	}
	queued := h.dc.InjectUserMessage(bobCh, owner, "never mind")
	h.dc.InjectUserEdit(bobCh, sending.ID, "on its way!")
	// Gateway events are handled concurrently: the deletes come once both are queued, as a
	// person's would.
	h.fe.mu.Lock()
	p := h.fe.portals[alice]
	h.fe.mu.Unlock()
	h.waitFor("both queued", func() bool {
		p.pending.mu.Lock()
		defer p.pending.mu.Unlock()
		return p.pending.count[queued.ID] == 1 && p.pending.count[sending.ID] == 2
	})
	h.dc.InjectUserDelete(bobCh, queued.ID)
	h.dc.InjectUserDelete(bobCh, sending.ID)
	h.ms.SetDelay("MSG", 0)
	notice := func(text string) int {
		n := 0
		for _, x := range h.dc.Messages(bobCh) {
			if strings.Contains(x.Content, text) {
				n++
			}
		}
		return n
	}
	h.waitFor("both notices", func() bool {
		return notice("Deleted before it was sent") == 1 && notice("the contact still has it") == 1
	})
	h.dc.InjectUserMessage(bobCh, owner, "last")
	h.waitFor("the last message at bob", func() bool { got := h.bobRx.got(); return len(got) > 0 && got[len(got)-1] == "last" })
	if got := h.bobRx.got(); !slices.Equal(got, []string{"on its way", "last"}) {
		t.Errorf("bob received %q, want the message being sent and the last one, not the withdrawn one or the edit", got)
	}
}

// failureReplies are the bot's failure replies to a message, in order.
func failureReplies(h *harness, channelID, messageID string) []string {
	var out []string
	for _, x := range h.dc.Messages(channelID) {
		if x.MessageReference != nil && x.MessageReference.MessageID == messageID && strings.HasPrefix(x.Content, "❌") {
			out = append(out, x.Content)
		}
	}
	return out
}
