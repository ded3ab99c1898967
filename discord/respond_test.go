package discord

import (
	"testing"
	"time"
)

// TestInteractionAnswersDuringGlobalLimit: a webhook post gets a global 429 that locks every
// discordgo bucket for seconds; a slash command run meanwhile is still answered within
// Discord's 3 s (the fake refuses later answers), since Discord exempts interaction callbacks
// from the global limit. The message held by the limit arrives afterwards.
func TestInteractionAnswersDuringGlobalLimit(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.login()
	if err := h.ms.BotSay(bob, alice, "first"); err != nil {
		t.Fatal(err)
	}
	var bobCh string
	h.waitFor("bob's first message", func() bool {
		c := h.dc.ChannelByName("bob-at-example-com")
		if c != nil {
			bobCh = c.ID
		}
		return c != nil && len(h.webhookMessages(c.ID)) == 1
	})
	before := h.dc.Count429()
	h.dc.InjectGlobal429("POST /webhooks/{w}/{tok}", 1, 6*time.Second)
	if err := h.ms.BotSay(bob, alice, "after the limit"); err != nil {
		t.Fatal(err)
	}
	h.waitFor("the global 429", func() bool { return h.dc.Count429() > before })
	iid, tok := h.slash(h.eve, h.gen, "status", map[string]string{"state": "online"})
	if first, _ := h.answer(iid, tok); !first.Accepted {
		t.Errorf("the answer during a global limit was refused (code %d)", first.Code)
	}
	h.waitFor("the held message", func() bool { return len(h.webhookMessages(bobCh)) == 2 })
}
