package discord

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/msn-bridge/msn-bridge/discord/discordtest"
)

// TestRosterNameAsDiscordStoresIt: a roster channel name configured with capitals and spaces is
// stored by Discord lower case with hyphens; after a restart the bridge finds that channel
// again instead of making another one at every start.
func TestRosterNameAsDiscordStoresIt(t *testing.T) {
	h := newHarness(t, harnessOpts{cfg: func(c *Config) { c.RosterChannelName = "MSN  Contacts" }})
	h.login()
	h.waitFor("roster", func() bool { _, r := h.roster(); return strings.Contains(r, "Erin") })
	rosterID, _ := h.roster()

	h.stopBridge()
	h.startBridge()
	if err := h.ms.SetPresence(carol, "BSY", "back after restart"); err != nil {
		t.Fatal(err)
	}
	h.waitFor("roster updated after restart", func() bool {
		_, r := h.roster()
		return strings.Contains(section(r, "🔴 Busy"), "back after restart")
	})
	var rosters []string
	for _, c := range h.dc.Channels() {
		if c.Type == discordgo.ChannelTypeGuildText && c.Name == "msn-contacts" {
			rosters = append(rosters, c.ID)
		}
	}
	if len(rosters) != 1 || rosters[0] != rosterID {
		t.Errorf("roster channels after restart %v, want only %s", rosters, rosterID)
	}
}

// withWebhookPace sets the frontend's per-channel webhook limit.
func withWebhookPace(n int, per time.Duration) Option {
	return func(f *Frontend) { f.hooks = newHookPacer(n, per, time.Now) }
}

// TestRefusedWebhookUsernameFallsBack: Discord refuses a contact's name as a webhook username
// (50035); the message is still shown, under a plainer name, and the next one goes straight
// under the name that worked.
func TestRefusedWebhookUsernameFallsBack(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.dc.RefuseUsernames("builder")
	h.login()
	for _, text := range []string{"first", "second"} {
		if err := h.ms.BotSay(bob, alice, text); err != nil {
			t.Fatal(err)
		}
	}
	var bobCh string
	h.waitFor("both messages", func() bool {
		c := h.dc.ChannelByName("bob-at-example-com")
		if c == nil {
			return false
		}
		bobCh = c.ID
		return len(h.webhookMessages(c.ID)) == 2
	})
	for i, m := range h.webhookMessages(bobCh) {
		if want := []string{"first", "second"}[i]; m.Content != want || m.Author.Username != fallbackUsername {
			t.Errorf("message %d = %q by %q, want %q by %q", i, m.Content, m.Author.Username, want, fallbackUsername)
		}
	}
	refused := 0
	for _, r := range h.dc.Requests() {
		if r.Route == "POST /webhooks/{w}/{tok}" && r.Status == 400 {
			refused++
		}
	}
	// The name is plain already, so only it was tried before the fallback, and only once.
	if refused != 1 {
		t.Errorf("%d refused executes, want 1", refused)
	}
}

func TestPlainUsername(t *testing.T) {
	for in, want := range map[string]string{
		"Zoë ✨  Smith":          "Zo Smith",
		"Bob (you, via matrix)": "Bob (you via matrix)",
		"✨✨":                    "",
	} {
		if got := plainUsername(in); got != want {
			t.Errorf("plainUsername(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestWebhookBurstQueuesWithinChannelLimit: a burst of MSN messages in one chat waits for the
// channel's webhook limit instead of meeting 429s, and every message is shown, in order.
func TestWebhookBurstQueuesWithinChannelLimit(t *testing.T) {
	const limit, per = 4, 2 * time.Second
	h := newHarness(t, harnessOpts{
		fake:   func(o *discordtest.Options) { o.WebhookChannelLimit = discordtest.Limit{Requests: limit, Per: per} },
		feOpts: []Option{withWebhookPace(limit, per)},
	})
	h.login()
	var want []string
	for i := 1; i <= 10; i++ {
		text := fmt.Sprintf("burst %d", i)
		want = append(want, text)
		if err := h.ms.BotSay(bob, alice, text); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	h.waitFor("the whole burst", func() bool {
		c := h.dc.ChannelByName("bob-at-example-com")
		if c == nil {
			return false
		}
		got = got[:0]
		for _, m := range h.webhookMessages(c.ID) {
			got = append(got, m.Content)
		}
		return len(got) >= len(want)
	})
	if !slices.Equal(got, want) {
		t.Errorf("shown %q, want %q", got, want)
	}
	if n := h.dc.Routes429()["POST /webhooks/{w}/{tok}"]; n != 0 {
		t.Errorf("%d webhook executes got 429", n)
	}
}
