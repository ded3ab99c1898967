package discord

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"

	"github.com/msn-bridge/msn-bridge/bridge"
	"github.com/msn-bridge/msn-bridge/discord/discordtest"
	"github.com/msn-bridge/msn-bridge/msn/msntest"
)

// TestSplitCapsParts cuts a huge message into at most the configured number of parts, the last
// one saying how much was left out, and a message that fits is untouched.
func TestSplitCapsParts(t *testing.T) {
	text := strings.Repeat("0123456789", 100_000) // 1,000,000 characters, no break
	parts := splitMessageN(text, 5)
	if len(parts) != 5 {
		t.Fatalf("%d parts, want 5", len(parts))
	}
	shown := 0
	for i, p := range parts {
		if n := utf8.RuneCountInString(p); n > maxMessageLen || n == 0 {
			t.Fatalf("part %d has %d characters", i, n)
		}
		if i < 4 {
			shown += utf8.RuneCountInString(p)
		}
	}
	last := parts[4]
	body, note, ok := strings.Cut(last, "\n*… message truncated, ")
	if !ok || !strings.HasSuffix(note, " characters not shown.*") {
		t.Fatalf("last part does not end with the truncation note: %q", last[max(0, len(last)-80):])
	}
	shown += utf8.RuneCountInString(body)
	hidden, err := strconv.Atoi(strings.TrimSuffix(note, " characters not shown.*"))
	if err != nil || shown+hidden != len(text) {
		t.Fatalf("shown %d + hidden %q != %d", shown, note, len(text))
	}
	if got := splitMessageN(strings.Repeat("a", 2*maxMessageLen), 2); len(got) != 2 || strings.Contains(got[1], "truncated") {
		t.Fatalf("a message of exactly two parts was cut: %d parts", len(got))
	}
}

// TestLongMessageBoundedPosts shows an MSN message of twenty posts' worth as at most
// max_parts_per_message webhook posts, the last saying how much was not shown.
func TestLongMessageBoundedPosts(t *testing.T) {
	h := newHarness(t, harnessOpts{cfg: func(c *Config) { c.MaxPartsPerMessage = 3 }})
	h.login()
	acc := h.core.Account(alice)
	huge := strings.Repeat("spam ", 20*maxMessageLen/5)
	if err := h.fe.HandleEvent(context.Background(), acc, bridge.Message{
		ID: "huge", Chat: bridge.DirectChat(bob), Sender: bob, SenderName: "Bob", Text: huge}); err != nil {
		t.Fatal(err)
	}
	c := h.dc.ChannelByName("bob-at-example-com")
	if c == nil {
		t.Fatal("no channel for bob")
	}
	msgs := h.webhookMessages(c.ID)
	if len(msgs) != 3 {
		t.Fatalf("%d posts for one message, want 3", len(msgs))
	}
	if !strings.Contains(msgs[2].Content, "message truncated") {
		t.Fatalf("last post does not say the message was truncated: %q", msgs[2].Content[len(msgs[2].Content)-80:])
	}
}

// BenchmarkSplitMessage splits 64 KiB and 1 MiB without a cap: the time per byte is the same
// for both (the split is linear), which ns/byte shows.
func BenchmarkSplitMessage(b *testing.B) {
	for _, size := range []int{64 << 10, 1 << 20} {
		text := strings.Repeat("héllo wörld\n", size/14)
		b.Run(strconv.Itoa(size>>10)+"KiB", func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				if len(splitMessage(text)) == 0 {
					b.Fatal("no parts")
				}
			}
		})
	}
}

// TestImpostorCannotTakeContactChannel: bob.smith is a contact with a channel; bob-smith, whose
// handle gives the same channel name and who is not a contact, writes after a restart. The
// channel stays bob.smith's (the owner's reply reaches bob.smith, not the impostor) and the
// impostor gets a channel of its own under another name.
func TestImpostorCannotTakeContactChannel(t *testing.T) {
	const smith, impostor = "bob.smith@example.com", "bob-smith@example.com"
	h := newHarness(t, harnessOpts{})
	smithRx, impRx := &recorder{}, &recorder{}
	if err := h.ms.AddBot(smith, "x", "Bob Smith", smithRx.bot); err != nil {
		t.Fatal(err)
	}
	if err := h.ms.AddBot(impostor, "x", "Bob Smith", impRx.bot); err != nil {
		t.Fatal(err)
	}
	if err := h.ms.AddFriends(alice, smith); err != nil {
		t.Fatal(err)
	}
	h.login()
	if err := h.ms.BotSay(smith, alice, "hello from the real bob"); err != nil {
		t.Fatal(err)
	}
	var smithCh *discordgo.Channel
	h.waitFor("bob.smith's channel", func() bool {
		smithCh = h.dc.ChannelByName("bob-smith-at-example-com")
		return smithCh != nil && len(h.webhookMessages(smithCh.ID)) == 1
	})
	if !strings.Contains(smithCh.Topic, "`"+smith+"`") {
		t.Errorf("topic %q does not show the exact handle", smithCh.Topic)
	}

	h.stopBridge()
	h.startBridge()
	h.waitFor("alice online again", func() bool {
		acc := h.core.Account(alice)
		return acc != nil && acc.State().State == bridge.StateOnline
	})
	if err := h.ms.BotSay(impostor, alice, "it is me, bob, write here"); err != nil {
		t.Fatal(err)
	}
	var impCh *discordgo.Channel
	h.waitFor("the impostor's message", func() bool {
		for _, c := range h.dc.Channels() {
			for _, m := range h.webhookMessages(c.ID) {
				if strings.Contains(m.Content, "write here") {
					impCh = c
					return true
				}
			}
		}
		return false
	})
	if impCh.ID == smithCh.ID {
		t.Fatal("the impostor's message was shown in bob.smith's channel")
	}
	if impCh.Name == smithCh.Name {
		t.Errorf("both channels are named %q", impCh.Name)
	}
	if !strings.Contains(impCh.Topic, "`"+impostor+"`") {
		t.Errorf("impostor channel topic %q does not show its handle", impCh.Topic)
	}

	h.dc.InjectUserMessage(smithCh.ID, h.dc.OwnerID(), "reply for the real bob")
	h.waitFor("the reply at bob.smith", func() bool { return slices.Contains(smithRx.got(), "reply for the real bob") })
	if got := impRx.got(); len(got) != 0 {
		t.Errorf("the impostor received %q", got)
	}
}

// Hostile text: a contact's name, PSM and message, chosen by a stranger.
const (
	hostileHandle = "mallory_x_@example.com"
	hostileName   = "**Boss** <@123> @here [click](https://evil.example) \u202egnp.exe"
	hostilePSM    = "# heading <@&456> __under__ \u2066@everyone\u2069"
	hostileMsg    = "@everyone <@123> <@&456> [free](https://evil.example) **loud**"
)

// TestHostileTextStaysText: every notice, embed, topic and webhook name that shows a hostile
// contact's name, PSM or handle shows it literally (escaped, one line, no bidirectional
// controls), its message mentions no one, and every post suppresses mentions except the
// owner's ping on a contact request.
func TestHostileTextStaysText(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	if err := h.ms.AddBot(hostileHandle, "x", hostileName, nil); err != nil {
		t.Fatal(err)
	}
	if err := h.ms.AddFriends(alice, hostileHandle); err != nil {
		t.Fatal(err)
	}
	if err := h.ms.SetPresence(hostileHandle, "NLN", hostilePSM); err != nil {
		t.Fatal(err)
	}
	// A stranger with the same name asks to be a contact: it is listed by /msn requests.
	if err := h.ms.AddBot("mallory3@example.com", "x", hostileName, nil); err != nil {
		t.Fatal(err)
	}
	if err := h.ms.AddContact("mallory3@example.com", alice, msntest.FL|msntest.AL); err != nil {
		t.Fatal(err)
	}
	h.login()
	owner := h.dc.OwnerID()
	h.waitFor("the hostile contact in the roster", func() bool {
		_, r := h.roster()
		return strings.Contains(r, "mallory")
	})
	acc := h.core.Account(alice)
	ctx := context.Background()
	if err := h.fe.HandleEvent(ctx, acc, bridge.ContactRequest{Handle: "mallory2@example.com", Name: hostileName}); err != nil {
		t.Fatal(err)
	}
	if err := h.ms.BotNudge(hostileHandle, alice); err != nil {
		t.Fatal(err)
	}
	if err := h.ms.BotSay(hostileHandle, alice, hostileMsg); err != nil {
		t.Fatal(err)
	}
	if err := h.fe.HandleEvent(ctx, acc, bridge.ListChange{Kind: bridge.ListRemovedYou,
		Contact: bridge.Contact{Handle: hostileHandle, Name: hostileName}}); err != nil {
		t.Fatal(err)
	}
	var ch *discordgo.Channel
	h.waitFor("the nudge and the message", func() bool {
		if ch = h.dc.ChannelByName(chatChannelName(bridge.DirectChat(hostileHandle))); ch == nil {
			return false
		}
		msgs := h.dc.Messages(ch.ID)
		return len(msgs) >= 2 && len(h.webhookMessages(ch.ID)) == 1
	})
	iid, tok := h.slash(owner, h.gen, "requests", nil)
	h.answer(iid, tok)

	type shownText struct{ where, text string }
	var all []shownText
	for _, c := range h.dc.Channels() {
		all = append(all, shownText{"topic of " + c.Name, c.Topic}, shownText{"name of channel", c.Name})
		for _, m := range h.dc.Messages(c.ID) {
			where := "message in " + c.Name
			if m.Type != discordgo.MessageTypeDefault && m.Type != discordgo.MessageTypeReply {
				continue // system messages (pins)
			}
			all = append(all, shownText{where, m.Content})
			// A webhook's username is shown as is, without Markdown: it must only be clean.
			if u := m.Author.Username; strings.ContainsAny(u, "\u202e\u2066@") {
				t.Errorf("author in %s: %q", c.Name, u)
			}
			for _, e := range m.Embeds {
				all = append(all, shownText{"embed title", e.Title})
				for _, f := range e.Fields {
					all = append(all, shownText{"embed field", f.Name}, shownText{"embed field", f.Value})
				}
			}
			if m.Author.ID == owner {
				continue
			}
			am := m.AllowedMentions
			switch {
			case am == nil || am.Parse == nil || len(am.Parse) != 0 || len(am.Roles) != 0:
				t.Errorf("%s %q: allowed_mentions %+v", where, m.Content, am)
			case len(am.Users) > 1 || len(am.Users) == 1 && am.Users[0] != owner:
				t.Errorf("%s %q: may mention %v", where, m.Content, am.Users)
			}
			for _, u := range m.Mentions {
				if u.ID != owner {
					t.Errorf("%s %q mentions %s", where, m.Content, u.ID)
				}
			}
			if m.MentionEveryone || len(m.MentionRoles) > 0 {
				t.Errorf("%s %q mentions everyone or a role", where, m.Content)
			}
		}
	}
	if o := h.dc.Original(tok); o == nil || !strings.Contains(o.Content, "mallory3") {
		t.Errorf("/msn requests answered %+v", o)
	} else {
		all = append(all, shownText{"/msn requests", o.Content})
	}
	raw := []string{"**Boss**", "[click](", "[free](", "**loud**", "__under__", "\u202e", "\u2066"}
	mentions := []string{"<@123>", "<@&456>", "@here", "@everyone"}
	seen := 0
	for _, s := range all {
		if strings.Contains(s.text, "Boss") || strings.Contains(s.text, "loud") {
			seen++
		}
		for _, r := range raw {
			if strings.Contains(s.text, r) {
				t.Errorf("%s shows %q raw: %q", s.where, r, s.text)
			}
		}
		for _, m := range mentions {
			for i := strings.Index(s.text, m); i >= 0; i = strings.Index(s.text[i+1:], m) + i + 1 {
				if i == 0 || s.text[i-1] != '\\' {
					t.Errorf("%s has an unescaped %q: %q", s.where, m, s.text)
					break
				}
				if strings.Index(s.text[i+1:], m) < 0 {
					break
				}
			}
		}
	}
	if seen < 5 {
		t.Errorf("the hostile name was shown only %d times; the test saw too little", seen)
	}
}

// TestPermissionsFollowOwner: eve links alice's account and sees its channels; after eve logs
// out she sees none of them, and after frank logs in to the same account only frank does.
func TestPermissionsFollowOwner(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	frank := h.dc.AddUser("frank")
	h.loginAs(h.eve, alice, alicePW)
	if err := h.ms.BotSay(bob, alice, "hello eve"); err != nil {
		t.Fatal(err)
	}
	h.waitFor("bob's channel", func() bool {
		c := h.dc.ChannelByName("bob-at-example-com")
		return c != nil && len(h.webhookMessages(c.ID)) == 1
	})
	// accountChannels are alice's category and the channels in it.
	accountChannels := func() []*discordgo.Channel {
		var cat string
		for _, c := range h.dc.Channels() {
			if c.Type == discordgo.ChannelTypeGuildCategory && c.Name == "MSN — "+alice {
				cat = c.ID
			}
		}
		var out []*discordgo.Channel
		for _, c := range h.dc.Channels() {
			if cat != "" && (c.ID == cat || c.ParentID == cat) {
				out = append(out, c)
			}
		}
		return out
	}
	sees := func(user string) (n int) {
		for _, c := range accountChannels() {
			if h.dc.CanView(user, c.ID) {
				n++
			}
		}
		return n
	}
	h.waitFor("the roster channel", func() bool { return len(accountChannels()) == 3 })
	if n, all := sees(h.eve), len(accountChannels()); n != all {
		t.Fatalf("eve, the owner, sees %d of %d channels", n, all)
	}
	if n := sees(frank); n != 0 {
		t.Fatalf("frank sees %d channels of an account he does not own", n)
	}

	iid, tok := h.slash(h.eve, h.rosterChannel(alice).ID, "logout", nil)
	if _, text := h.answer(iid, tok); !strings.Contains(text, "Logged out") {
		t.Fatalf("logout answered %q", text)
	}
	h.waitFor("eve's access removed", func() bool { return sees(h.eve) == 0 })

	h.loginAs(frank, alice, alicePW)
	h.waitFor("frank's access", func() bool { return sees(frank) == len(accountChannels()) })
	if n := sees(h.eve); n != 0 {
		t.Errorf("eve still sees %d channels after frank took the account", n)
	}
	// A channel created from now on is frank's too, and not eve's.
	if err := h.ms.BotSay(carol, alice, "hello frank"); err != nil {
		t.Fatal(err)
	}
	h.waitFor("carol's channel", func() bool {
		c := h.dc.ChannelByName("carol-at-example-com")
		return c != nil && len(h.webhookMessages(c.ID)) == 1
	})
	carolCh := h.dc.ChannelByName("carol-at-example-com").ID
	if !h.dc.CanView(frank, carolCh) || h.dc.CanView(h.eve, carolCh) {
		t.Errorf("carol's channel: frank sees it %v, eve sees it %v", h.dc.CanView(frank, carolCh), h.dc.CanView(h.eve, carolCh))
	}
}

// TestWebhookFailuresRetriedOrReported: webhook executes that fail on the network or with 5xx
// are retried, so the message arrives once; when they keep failing, the owner is told in the
// channel, with the text, and no webhook token is shown.
func TestWebhookFailuresRetriedOrReported(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.login()
	if err := h.ms.BotSay(bob, alice, "first"); err != nil {
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

	const execute = "POST /webhooks/{w}/{tok}"
	h.dc.InjectFault(execute, 1, discordtest.NetworkFailure)
	h.dc.InjectFault(execute, 1, http.StatusServiceUnavailable)
	h.dc.InjectFault(execute, 1, http.StatusInternalServerError)
	if err := h.ms.BotSay(bob, alice, "survives the outage"); err != nil {
		t.Fatal(err)
	}
	h.waitFor("the message after retries", func() bool { return len(h.webhookMessages(bobCh)) == 2 })
	if got := h.webhookMessages(bobCh)[1].Content; got != "survives the outage" {
		t.Errorf("second message %q", got)
	}

	h.dc.InjectFault(execute, 100, http.StatusGatewayTimeout)
	if err := h.ms.BotSay(bob, alice, "lost in the outage"); err != nil {
		t.Fatal(err)
	}
	var notice string
	h.waitFor("the failure reported to the owner", func() bool {
		for _, m := range h.dc.Messages(bobCh) {
			if m.WebhookID == "" && strings.Contains(m.Content, "could not be shown") {
				notice = m.Content
				return true
			}
		}
		return false
	})
	if !strings.Contains(notice, "lost in the outage") {
		t.Errorf("notice %q lacks the message text", notice)
	}
	for _, w := range h.dc.Webhooks() {
		if strings.Contains(notice, w.Token) {
			t.Errorf("notice %q shows a webhook token", notice)
		}
	}
}

// TestNetworkErrorWithoutURL: a network failure counts as transient, and its error as the
// frontend logs it names no token.
func TestNetworkErrorWithoutURL(t *testing.T) {
	err := fmt.Errorf("failed: %w", &url.Error{Op: "Post", URL: "https://discord.com/api/v9/webhooks/1/SECRET?wait=true", Err: io.EOF})
	if !transient(context.Background(), err) {
		t.Error("network error not transient")
	}
	if got := bridge.ScrubError(err).Error(); strings.Contains(got, "SECRET") || !errors.Is(bridge.ScrubError(err), io.EOF) {
		t.Errorf("ScrubError = %q", got)
	}
}

// TestFailureTextIsText: an error's text, which may carry a server's words, is shown escaped
// and on one line.
func TestFailureTextIsText(t *testing.T) {
	got := failureText(errors.New("refused: **x** <@1> @everyone\n\u202eline"))
	for _, raw := range []string{"**x**", " <@1>", " @everyone", "\n", "\u202e"} {
		if strings.Contains(got, raw) {
			t.Errorf("failureText shows %q raw: %q", raw, got)
		}
	}
}

// TestBigGroupLineFits: a group of many long handles is announced in one line cut to Discord's
// limit instead of a post Discord refuses.
func TestBigGroupLineFits(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.login()
	var members []string
	for i := range 40 {
		members = append(members, fmt.Sprintf("%s%02d@example.com", strings.Repeat("m", 100), i))
	}
	chat := bridge.GroupChat("77")
	if err := h.fe.HandleEvent(context.Background(), h.core.Account(alice),
		bridge.ChatMembership{Chat: chat, Handle: members[0], Joined: true, Members: members}); err != nil {
		t.Fatal(err)
	}
	g := h.dc.ChannelByName("group-77")
	if g == nil {
		t.Fatal("no group channel")
	}
	msgs := h.dc.Messages(g.ID)
	if len(msgs) != 1 || !strings.HasPrefix(msgs[0].Content, "*👥 Group conversation with") ||
		utf8.RuneCountInString(msgs[0].Content) > maxMessageLen {
		t.Fatalf("group line: %d messages", len(msgs))
	}
}

// TestPermissionsCheckedAtDiscovery: the account's Discord owner changed while the bridge was
// stopped; at start the channels' overwrites are rewritten for the new owner, and the old one
// loses access, even when it logs out before anything else happened.
func TestPermissionsCheckedAtDiscovery(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	frank := h.dc.AddUser("frank")
	h.loginAs(h.eve, alice, alicePW)
	var roster *discordgo.Channel
	h.waitFor("the roster channel", func() bool { roster = h.rosterChannel(alice); return roster != nil })
	if !h.dc.CanView(h.eve, roster.ID) {
		t.Fatal("the owner cannot see the roster")
	}
	h.stopBridge()
	ctx := context.Background()
	if _, err := h.store.RemoveLink(ctx, bridge.FrontendUser{Frontend: FrontendName, UserID: h.eve}, alice); err != nil {
		t.Fatal(err)
	}
	if err := h.store.AddLink(ctx, bridge.FrontendUser{Frontend: FrontendName, UserID: frank}, alice); err != nil {
		t.Fatal(err)
	}
	h.startBridge()
	h.waitFor("frank's access", func() bool { return h.dc.CanView(frank, roster.ID) })
	// The channels are rewritten one by one: eve loses each within the same discovery.
	cat := roster.ParentID
	h.waitFor("eve's access gone from the roster and the category", func() bool {
		return !h.dc.CanView(h.eve, roster.ID) && !h.dc.CanView(h.eve, cat)
	})
}

// TestOldChannelAdoptedForItsContactOnly: a channel of an earlier version (named after the
// contact, no handle in its topic) is still used for the contact on the list it was made for,
// and gets the handle in its topic; a stranger whose handle gives the same name does not get it.
func TestOldChannelAdoptedForItsContactOnly(t *testing.T) {
	const catID, oldID = "900000000000000001", "900000000000000002"
	const stranger = "bob@example-com"
	h := newHarness(t, harnessOpts{fake: func(o *discordtest.Options) {
		o.Channels = []*discordgo.Channel{
			{ID: "900000000000000003", Name: "general", Type: discordgo.ChannelTypeGuildText},
			{ID: catID, Name: "MSN — " + alice, Type: discordgo.ChannelTypeGuildCategory},
			{ID: oldID, Name: "bob-at-example-com", Type: discordgo.ChannelTypeGuildText, ParentID: catID, Topic: "🟢 Online · building"},
		}
	}})
	strangerRx := &recorder{}
	if err := h.ms.AddBot(stranger, "x", "Bob", strangerRx.bot); err != nil {
		t.Fatal(err)
	}
	h.login()
	if err := h.ms.BotSay(stranger, alice, "from the stranger"); err != nil {
		t.Fatal(err)
	}
	if err := h.ms.BotSay(bob, alice, "from bob"); err != nil {
		t.Fatal(err)
	}
	h.waitFor("bob's message in the old channel", func() bool {
		ms := h.webhookMessages(oldID)
		return len(ms) > 0 && ms[len(ms)-1].Content == "from bob"
	})
	h.waitFor("the stranger's message elsewhere", func() bool {
		for _, c := range h.dc.Channels() {
			if c.ID == oldID {
				continue
			}
			for _, m := range h.webhookMessages(c.ID) {
				if m.Content == "from the stranger" {
					return true
				}
			}
		}
		return false
	})
	for _, m := range h.webhookMessages(oldID) {
		if m.Content == "from the stranger" {
			t.Error("the stranger's message was shown in bob's old channel")
		}
	}
	h.waitFor("the handle in the old channel's topic", func() bool {
		return strings.HasPrefix(h.dc.Channel(oldID).Topic, "`"+bob+"`")
	})
	h.dc.InjectUserMessage(oldID, h.dc.OwnerID(), "reply in the old channel")
	h.waitFor("the reply at bob", func() bool { return slices.Contains(h.bobRx.got(), "reply in the old channel") })
	if got := strangerRx.got(); len(got) != 0 {
		t.Errorf("the stranger received %q", got)
	}
}

// TestRosterFieldFitsWhenEscaped: a name made only of Markdown characters, escaped, still fits
// Discord's 256 characters of an embed field name, with its status and block mark.
func TestRosterFieldFitsWhenEscaped(t *testing.T) {
	f := contactField(bridge.Contact{Handle: bob, Name: strings.Repeat("*_", 200), Status: bridge.StatusPhone, Blocked: true,
		PSM: strings.Repeat("<@1>", 300), Media: strings.Repeat("`", 300)})
	if n := utf8.RuneCountInString(f.Name); n > 256 {
		t.Errorf("field name of %d characters", n)
	}
	if n := utf8.RuneCountInString(f.Value); n > 1024 {
		t.Errorf("field value of %d characters", n)
	}
}
