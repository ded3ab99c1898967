package discord

import (
	"fmt"
	"strings"
	"testing"

	"github.com/bwmarrin/discordgo"

	"github.com/msn-bridge/msn-bridge/discord/discordtest"
)

// TestCategoryOverflow: the account's category already holds Discord's 50 channels (the roster
// and 49 more), so a new contact's channel goes into a second category of the same name
// numbered "(2)" instead of a duplicate category; after a restart both are found again, the
// contact's channel is reused and nothing is created twice.
func TestCategoryOverflow(t *testing.T) {
	const catName = "MSN — " + alice
	chans := []*discordgo.Channel{
		{ID: "900", Name: "general", Type: discordgo.ChannelTypeGuildText},
		{ID: "1000", Name: catName, Type: discordgo.ChannelTypeGuildCategory},
		{ID: "1001", Name: "msn-contacts", Type: discordgo.ChannelTypeGuildText, ParentID: "1000"},
	}
	for i := range 49 {
		chans = append(chans, &discordgo.Channel{ID: fmt.Sprint(1002 + i), Name: fmt.Sprintf("old-%02d", i),
			Type: discordgo.ChannelTypeGuildText, ParentID: "1000"})
	}
	h := newHarness(t, harnessOpts{fake: func(o *discordtest.Options) { o.Channels = chans }})
	h.login()
	if err := h.ms.BotSay(bob, alice, "hello"); err != nil {
		t.Fatal(err)
	}
	bobChannels := func() (out []*discordgo.Channel) {
		for _, c := range h.dc.Channels() {
			if strings.HasPrefix(c.Name, "bob-at-example-com") {
				out = append(out, c)
			}
		}
		return out
	}
	h.waitFor("bob's message", func() bool {
		cs := bobChannels()
		return len(cs) == 1 && len(h.webhookMessages(cs[0].ID)) == 1
	})
	categories := func() map[string][]string {
		out := map[string][]string{}
		for _, c := range h.dc.Channels() {
			if c.Type == discordgo.ChannelTypeGuildCategory {
				out[c.Name] = append(out[c.Name], c.ID)
			}
		}
		return out
	}
	check := func(when string) {
		t.Helper()
		cats := categories()
		if len(cats[catName]) != 1 || len(cats[catName+" (2)"]) != 1 {
			t.Fatalf("%s: categories %v, want one %q and one %q", when, cats, catName, catName+" (2)")
		}
		cs := bobChannels()
		if len(cs) != 1 || cs[0].ParentID != cats[catName+" (2)"][0] {
			t.Fatalf("%s: bob's channels %d, in %v", when, len(cs), cs)
		}
		rosters := 0
		for _, c := range h.dc.Channels() {
			if c.Name == "msn-contacts" {
				rosters++
			}
		}
		if rosters != 1 {
			t.Fatalf("%s: %d roster channels", when, rosters)
		}
	}
	check("first run")

	h.stopBridge()
	h.startBridge()
	h.waitFor("alice back on MSN", func() bool { return h.ms.LoggedIn(alice) })
	if err := h.ms.BotSay(bob, alice, "again"); err != nil {
		t.Fatal(err)
	}
	h.waitFor("bob's second message", func() bool {
		for _, c := range bobChannels() {
			if ms := h.webhookMessages(c.ID); len(ms) > 0 && ms[len(ms)-1].Content == "again" {
				return true
			}
		}
		return false
	})
	check("after a restart")
	if ms := h.webhookMessages(bobChannels()[0].ID); len(ms) != 2 {
		t.Errorf("bob's channel holds %d messages, want 2", len(ms))
	}
}

// TestGuildFullTold: with the guild at Discord's 500 channels, a new contact's message cannot
// get a channel; the owner is told why, with the message, in the roster channel.
func TestGuildFullTold(t *testing.T) {
	chans := []*discordgo.Channel{{ID: "900", Name: "general", Type: discordgo.ChannelTypeGuildText}}
	for i := range 497 {
		chans = append(chans, &discordgo.Channel{ID: fmt.Sprint(1000 + i), Name: fmt.Sprintf("filler-%03d", i),
			Type: discordgo.ChannelTypeGuildText})
	}
	h := newHarness(t, harnessOpts{fake: func(o *discordtest.Options) { o.Channels = chans }})
	h.login()
	var rosterID string
	h.waitFor("the roster", func() bool {
		id, text := h.roster()
		rosterID = id
		return strings.Contains(text, "contacts online")
	})
	if n := len(h.dc.Channels()); n != 500 {
		t.Fatalf("%d channels, want the guild full at 500", n)
	}
	if err := h.ms.BotSay(bob, alice, "hi from bob"); err != nil {
		t.Fatal(err)
	}
	h.waitFor("the owner told", func() bool {
		for _, m := range h.dc.Messages(rosterID) {
			if strings.Contains(m.Content, "limit of 500 channels") && strings.Contains(m.Content, "hi from bob") {
				return true
			}
		}
		return false
	})
}

// TestCategoryNumbers: numbered category names are recognised for their account only, and stay
// within Discord's 100 characters.
func TestCategoryNumbers(t *testing.T) {
	const tmpl = "MSN — {handle}"
	for _, c := range []struct {
		name string
		n    int
		ok   bool
	}{
		{"MSN — a@x", 1, true},
		{"MSN — a@x (2)", 2, true},
		{"MSN — a@x (12)", 12, true},
		{"MSN — a@x (1)", 0, false},
		{"MSN — a@x (0)", 0, false},
		{"MSN — a@x (x)", 0, false},
		{"MSN — b@x (2)", 0, false},
		{"MSN — a@x (2) (3)", 0, false},
	} {
		n, ok := categoryNumber(c.name, tmpl, "a@x")
		if n != c.n || ok != c.ok {
			t.Errorf("categoryNumber(%q) = %d, %v; want %d, %v", c.name, n, ok, c.n, c.ok)
		}
	}
	long := strings.Repeat("l", 95) + "@x"
	name := numberedCategory(tmpl, long, 17)
	if len([]rune(name)) > 100 || !strings.HasSuffix(name, " (17)") {
		t.Errorf("numberedCategory = %q", name)
	}
	if n, ok := categoryNumber(name, tmpl, long); n != 17 || !ok {
		t.Errorf("a cut name is not recognised: %d, %v", n, ok)
	}
}
