package discord

import (
	"net/http"
	"strings"
	"testing"
)

// TestTransientFailuresLoseNothing: 5xx answers to the creation of a contact's channel and to
// bot notices are retried, so the first message of a new contact and a nudge are shown; a
// nudge whose every post fails is reported to the owner in the roster channel.
func TestTransientFailuresLoseNothing(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.login()
	if err := h.ms.BotSay(bob, alice, "first"); err != nil {
		t.Fatal(err)
	}
	var bobCh string
	h.waitFor("bob's message", func() bool {
		c := h.dc.ChannelByName("bob-at-example-com")
		if c != nil {
			bobCh = c.ID
		}
		return c != nil && len(h.webhookMessages(c.ID)) == 1
	})
	var rosterID string
	h.waitFor("the roster", func() bool {
		id, text := h.roster()
		rosterID = id
		return strings.Contains(text, "Bob")
	})

	h.dc.InjectFault("POST /guilds/{g}/channels", 2, http.StatusServiceUnavailable)
	if err := h.ms.BotSay(carol, alice, "hi through the outage"); err != nil {
		t.Fatal(err)
	}
	h.waitFor("carol's first message", func() bool {
		c := h.dc.ChannelByName("carol-at-example-com")
		return c != nil && len(h.webhookMessages(c.ID)) == 1 && h.webhookMessages(c.ID)[0].Content == "hi through the outage"
	})

	nudges := func() (n int) {
		for _, m := range h.dc.Messages(bobCh) {
			if m.WebhookID == "" && strings.Contains(m.Content, "sent you a nudge") {
				n++
			}
		}
		return n
	}
	h.dc.InjectFault("POST /channels/{c}/messages", 2, http.StatusInternalServerError)
	if err := h.ms.BotNudge(bob, alice); err != nil {
		t.Fatal(err)
	}
	h.waitFor("the nudge after retries", func() bool { return nudges() == 1 })

	h.dc.InjectFault("POST /channels/{c}/messages", len(retryDelays)+1, http.StatusGatewayTimeout)
	if err := h.ms.BotNudge(bob, alice); err != nil {
		t.Fatal(err)
	}
	h.waitFor("the lost nudge reported", func() bool {
		for _, m := range h.dc.Messages(rosterID) {
			if strings.Contains(m.Content, "A nudge from") && strings.Contains(m.Content, "could not be shown") {
				return true
			}
		}
		return false
	})
	if n := nudges(); n != 1 {
		t.Errorf("%d nudges shown, want 1", n)
	}
}

// TestFailureReportSurvives5xx: the owner writes to a contact who is offline while Discord
// answers the next ❌ reaction and the next reply with 503s. Both are retried: the owner still
// sees the ❌ on the message and the reply saying why. Before, one 5xx on each lost the report.
func TestFailureReportSurvives5xx(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.login()
	erinCh := h.openChat(erin)
	h.dc.InjectFault("PUT /channels/{c}/messages/{m}/reactions/{e}/@me", 2, http.StatusServiceUnavailable)
	h.dc.InjectFault("POST /channels/{c}/messages", 2, http.StatusServiceUnavailable)
	m := h.dc.InjectUserMessage(erinCh, h.dc.OwnerID(), "are you there")
	h.waitFor("the failure reply", func() bool { return len(failureReplies(h, erinCh, m.ID)) == 1 })
	h.waitFor("the ❌ reaction", func() bool {
		for _, x := range h.dc.Messages(erinCh) {
			if x.ID != m.ID {
				continue
			}
			for _, r := range x.Reactions {
				if r.Emoji != nil && r.Emoji.Name == "❌" {
					return true
				}
			}
		}
		return false
	})
}
