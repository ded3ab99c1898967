package discord

import (
	"strings"
	"testing"

	"github.com/bwmarrin/discordgo"
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
