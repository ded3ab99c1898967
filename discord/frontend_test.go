package discord

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/msn-bridge/msn-bridge/bridge"
)

// TestLinkedAccountEndToEnd drives one linked account through login, the roster, messages both
// ways, failures, refusals, echoes, deleted webhooks and channels and a gateway drop.
func TestLinkedAccountEndToEnd(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	owner := h.dc.OwnerID()
	h.login()

	// Contacts appear in the pinned roster, grouped by status.
	rosterID := ""
	h.waitFor("roster with every contact", func() bool {
		id, r := h.roster()
		rosterID = id
		return strings.Contains(section(r, "🟢 Online"), escapeMarkdown(bobName)) &&
			strings.Contains(section(r, "🟢 Online"), "building") &&
			strings.Contains(section(r, "🟡 Away"), "Carol") &&
			strings.Contains(section(r, "🔴 Busy"), "Dave") &&
			strings.Contains(section(r, "⚫ Offline"), "Erin")
	})
	cat := h.dc.Channel(h.dc.Channel(rosterID).ParentID)
	if cat == nil || cat.Name != "MSN — "+alice || cat.Type != discordgo.ChannelTypeGuildCategory {
		t.Fatalf("roster channel parent: %+v", cat)
	}

	// MSN → Discord: a webhook message under the contact's sanitised name, mentions off.
	h.bobRx.mu.Lock()
	h.bobRx.echo = true
	h.bobRx.mu.Unlock()
	if err := h.ms.BotSay(bob, alice, "hi *alice* @everyone"); err != nil {
		t.Fatal(err)
	}
	var bobCh string
	h.waitFor("bob's channel", func() bool {
		c := h.dc.ChannelByName("bob-at-example-com")
		if c != nil {
			bobCh = c.ID
		}
		return c != nil && len(h.webhookMessages(c.ID)) == 1
	})
	m := h.webhookMessages(bobCh)[0]
	if m.Author.Username != bobClean {
		t.Errorf("webhook username %q, want %q", m.Author.Username, bobClean)
	}
	if m.AllowedMentions == nil || m.AllowedMentions.Parse == nil || len(m.AllowedMentions.Parse) != 0 {
		t.Errorf("allowed_mentions %+v, want parse: []", m.AllowedMentions)
	}
	if m.Content != `hi \*alice\* \@everyone` {
		t.Errorf("content %q", m.Content)
	}
	if topic := h.dc.Channel(bobCh).Topic; topic != "`"+bob+"` · 🟢 Online · building" {
		t.Errorf("new channel topic %q", topic)
	}

	// Discord → MSN: the owner's message arrives; the echo comes back through the webhook once,
	// and neither the webhook's message nor a non-owner's is sent to MSN.
	h.dc.InjectUserMessage(bobCh, owner, "hello bob")
	h.dc.InjectUserMessage(bobCh, h.eve, "I am not the owner")
	h.waitFor("echo through the webhook", func() bool { return len(h.webhookMessages(bobCh)) == 2 })
	if got := h.webhookMessages(bobCh)[1].Content; got != "echo: hello bob" {
		t.Errorf("echo %q", got)
	}
	if got := h.bobRx.got(); len(got) != 1 || got[0] != "hello bob" {
		t.Fatalf("bob received %q", got)
	}

	// A reply is quoted inline, attachments become links.
	first := h.dc.Messages(bobCh)[0]
	h.dc.InjectUserReply(bobCh, owner, first.ID, "quoting")
	h.waitFor("reply at bob", func() bool { return len(h.bobRx.got()) == 2 })
	if got := h.bobRx.got()[1]; !strings.HasPrefix(got, "> ") || !strings.HasSuffix(got, "\nquoting") {
		t.Errorf("reply sent as %q", got)
	}

	// A message to an offline contact: ❌ and a reply saying why.
	erinCh := h.openChat(erin)
	um := h.dc.InjectUserMessage(erinCh, owner, "are you there?")
	h.waitFor("failure report", func() bool {
		for _, x := range h.dc.Messages(erinCh) {
			if x.MessageReference != nil && x.MessageReference.MessageID == um.ID && strings.Contains(x.Content, "offline") {
				return true
			}
		}
		return false
	})
	h.waitFor("❌ reaction", func() bool {
		for _, x := range h.dc.Messages(erinCh) {
			if x.ID == um.ID {
				for _, r := range x.Reactions {
					if r.Emoji != nil && r.Emoji.Name == "❌" && r.Me {
						return true
					}
				}
			}
		}
		return false
	})
	if topic := h.dc.Channel(erinCh).Topic; topic != "`"+erin+"` · ⚫ Offline" {
		t.Errorf("offline topic %q", topic)
	}

	// A non-owner's command in the account's channel is refused, ephemerally.
	iid, tok := h.slash(h.eve, rosterID, "status", map[string]string{"state": "away"})
	r, text := h.answer(iid, tok)
	if r.Flags&discordgo.MessageFlagsEphemeral == 0 || !strings.Contains(text, "belongs to someone else") {
		t.Errorf("non-owner answer %+v %q", r, text)
	}
	// ... and outside it the non-owner has no account.
	iid, tok = h.slash(h.eve, h.gen, "block", map[string]string{"email": bob})
	if _, text = h.answer(iid, tok); !strings.Contains(text, "no MSN account") {
		t.Errorf("non-owner answer %q", text)
	}
	if acc := h.core.Account(alice); acc == nil {
		t.Fatal("account gone")
	} else if st, _, _ := acc.Profile(); st != bridge.StatusOnline {
		t.Errorf("non-owner changed the status to %v", st)
	}
	// The owner's command works.
	iid, tok = h.slash(owner, rosterID, "status", map[string]string{"state": "away", "psm": "gone fishing"})
	if _, text = h.answer(iid, tok); !strings.Contains(text, "Away") {
		t.Errorf("owner /msn status answer %q", text)
	}
	h.waitFor("own status on MSN", func() bool { return h.ms.Status(alice) == "AWY" && h.ms.PSM(alice) == "gone fishing" })

	// A deleted webhook is recreated and the message still arrives.
	hooks := h.dc.Webhooks()
	for _, w := range hooks {
		if w.ChannelID == bobCh {
			h.dc.DeleteWebhook(w.ID)
		}
	}
	if err := h.ms.BotSay(bob, alice, "after webhook deletion"); err != nil {
		t.Fatal(err)
	}
	h.waitFor("message through a new webhook", func() bool {
		ms := h.webhookMessages(bobCh)
		return len(ms) > 0 && ms[len(ms)-1].Content == "after webhook deletion"
	})

	// A deleted channel is recreated on the next message.
	h.dc.DeleteChannel(bobCh)
	if err := h.ms.BotSay(bob, alice, "after channel deletion"); err != nil {
		t.Fatal(err)
	}
	h.waitFor("message in a new channel", func() bool {
		c := h.dc.ChannelByName("bob-at-example-com")
		if c == nil || c.ID == bobCh {
			return false
		}
		ms := h.webhookMessages(c.ID)
		return len(ms) == 1 && ms[0].Content == "after channel deletion"
	})
	bobCh = h.dc.ChannelByName("bob-at-example-com").ID

	// Gateway drop: the frontend resumes and the bridge keeps working both ways.
	h.dc.DropGateway()
	h.waitFor("resume", func() bool { return h.dc.Stats().Resumes >= 1 })
	h.dc.InjectUserMessage(bobCh, owner, "after resume")
	h.waitFor("message after resume", func() bool {
		got := h.bobRx.got()
		return got[len(got)-1] == "after resume"
	})

	// Nudges both ways.
	iid, tok = h.slash(owner, bobCh, "nudge", nil)
	if _, text = h.answer(iid, tok); !strings.Contains(text, "Nudge sent") {
		t.Errorf("nudge answer %q", text)
	}
	if err := h.ms.BotNudge(bob, alice); err != nil {
		t.Fatal(err)
	}
	h.waitFor("nudge line", func() bool {
		for _, x := range h.dc.Messages(bobCh) {
			if strings.Contains(x.Content, "sent you a nudge") && strings.HasPrefix(x.Content, "*") {
				return true
			}
		}
		return false
	})

	if n := h.dc.Count429(); n != 0 {
		t.Errorf("%d requests got 429: %v", n, h.dc.Routes429())
	}

	// Stop leaves nothing of ours running.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h.fe.Stop(ctx)
	h.waitFor("no goroutines left after Stop", func() bool { return len(ourGoroutines()) == 0 })
}

// TestPresenceStorm sends 200 presence changes over three contacts in a few seconds and checks
// that the roster and topics end in the final state, with no 429 and the topic budget kept. It
// logs how many Discord requests each presence change cost.
func TestPresenceStorm(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.login()
	contacts := []string{bob, carol, dave}
	chans := map[string]string{}
	for _, c := range contacts {
		chans[c] = h.openChat(c)
	}
	h.waitFor("roster", func() bool {
		_, r := h.roster()
		return strings.Contains(r, "Dave")
	})
	// Let the set-up settle so the count covers the storm only.
	time.Sleep(time.Second)
	before := h.dc.Touched()

	statuses := []string{"NLN", "AWY", "BSY", "IDL", "BRB", "PHN", "LUN"}
	const changes = 200
	for i := 0; i < changes; i++ {
		c := contacts[i%len(contacts)]
		if err := h.ms.SetPresence(c, statuses[i%len(statuses)], fmt.Sprintf("psm %d", i)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	final := map[string][2]string{
		bob:   {"BSY", "final bob"},
		carol: {"AWY", "final carol"},
		dave:  {"FLN", ""},
	}
	for c, st := range final {
		if err := h.ms.SetPresence(c, st[0], st[1]); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{
		bob:   "`" + bob + "` · 🔴 Busy · final bob",
		carol: "`" + carol + "` · 🟡 Away · final carol",
		dave:  "`" + dave + "` · ⚫ Offline",
	}
	h.waitFor("final topics", func() bool {
		for c, topic := range want {
			if h.dc.Channel(chans[c]).Topic != topic {
				return false
			}
		}
		return true
	})
	h.waitFor("final roster", func() bool {
		_, r := h.roster()
		return strings.Contains(section(r, "🔴 Busy"), "final bob") &&
			strings.Contains(section(r, "🟡 Away"), "final carol") &&
			strings.Contains(section(r, "⚫ Offline"), "Dave") &&
			!strings.Contains(r, "psm ")
	})
	// Give deferred work a chance to show up in the counts, then measure.
	time.Sleep(h.cfg.RosterDebounce + time.Second)
	after := h.dc.Touched()

	if n := h.dc.Count429(); n != 0 {
		t.Fatalf("%d requests got 429: %v", n, h.dc.Routes429())
	}
	for c, id := range chans {
		edits := h.dc.TopicEdits(id)
		for i := h.cfg.TopicEditsPerWindow; i < len(edits); i++ {
			if edits[i].Sub(edits[i-h.cfg.TopicEditsPerWindow]) < h.cfg.TopicWindow {
				t.Errorf("%s: %d topic edits within %s: %v", c, h.cfg.TopicEditsPerWindow+1, h.cfg.TopicWindow, edits)
			}
		}
	}
	total := 0
	var parts []string
	for route, n := range after {
		if d := n - before[route]; d > 0 {
			total += d
			parts = append(parts, fmt.Sprintf("%s=%d", route, d))
		}
	}
	sort.Strings(parts)
	t.Logf("presence storm: %d presence changes (+3 final) → %d Discord requests (%.3f per change; %s)",
		changes, total, float64(total)/float64(changes+3), strings.Join(parts, ", "))
	if total >= changes/4 {
		t.Errorf("%d requests for %d presence changes: not coalesced", total, changes)
	}
}
