package matrix

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/net/html"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/msn-bridge/msn-bridge/bridge"
	"github.com/msn-bridge/msn-bridge/msn"
	"github.com/msn-bridge/msn-bridge/msn/msntest"
)

// A hostile contact chooses its friendly name, PSM and messages. Everything it chooses must
// reach Matrix as the characters it is: no link, image, markup or mention, no bidirectional
// override, nothing longer than a cap.

const (
	mallory = "mallory@example.com"
	// hostileMarkup would be a link, an image, a mention pill, bold text and a room ping if it
	// were rendered as Markdown or HTML.
	hostileMarkup = "[verify](https://evil.example) ![x](mxc://evil/x) [admin](https://matrix.to/#/@admin:test) <b>x</b> @room"
	// hostileName ends with a right-to-left override that would reverse what follows it.
	hostileName = hostileMarkup + " \u202Emoc.elpmaxe@bob"
	// hostileHandle is a handle a hostile server may push: markup, with an override.
	hostileHandle = "*[pwn](https://evil.example)*_<i>\u202E@evil.example"
	hostilePSM    = "**urgent** <img src=mxc://evil/y> `code` \u202Eevil"
)

// cleanedName is hostileName as it must be shown: literally, without the override.
var cleanedName = bridge.CleanLine(hostileName, bridge.MaxShownName)

// botNotices returns the bot's notices in room from the index from on.
func (e *glueEnv) botNotices(room id.RoomID, from int) []*event.MessageEventContent {
	var out []*event.MessageEventContent
	msgs := e.fm.Messages(room)
	if from > len(msgs) {
		from = len(msgs)
	}
	for _, ev := range msgs[from:] {
		if ev.Sender != e.fm.BotIntent().GetMXID() {
			continue
		}
		switch msg := ev.Content.Parsed.(type) {
		case *event.MessageEventContent:
			out = append(out, msg)
		case event.MessageEventContent: // bridgev2's state notices
			out = append(out, &msg)
		}
	}
	return out
}

// commandNotice runs a command in the management room and returns the bot's one reply.
func (e *glueEnv) commandNotice(cmd string) *event.MessageEventContent {
	e.t.Helper()
	room, err := e.user().GetManagementRoom(e.ctx)
	must(e.t, err)
	before := len(e.fm.Messages(room))
	e.command(room, cmd)
	replies := e.botNotices(room, before)
	if len(replies) != 1 {
		e.t.Fatalf("%s: %d replies, want 1", cmd, len(replies))
	}
	return replies[0]
}

// assertLiteral checks that a notice shows each of want literally in its body and in the text
// of its formatted body, that the formatted body has no tag but the notice structure, and that
// the notice mentions no one.
func assertLiteral(t *testing.T, what string, msg *event.MessageEventContent, want ...string) {
	t.Helper()
	if msg.Mentions == nil || len(msg.Mentions.UserIDs) != 0 || msg.Mentions.Room {
		t.Errorf("%s: mentions %+v, want explicitly none", what, msg.Mentions)
	}
	shown := msg.Body
	if msg.Format == event.FormatHTML {
		shown = htmlText(t, what, msg.FormattedBody)
	}
	for _, w := range want {
		if !strings.Contains(msg.Body, w) {
			t.Errorf("%s: body %q does not show %q literally", what, msg.Body, w)
		}
		if !strings.Contains(shown, w) {
			t.Errorf("%s: formatted body %q does not show %q literally", what, msg.FormattedBody, w)
		}
	}
	for _, s := range []string{msg.Body, msg.FormattedBody} {
		if strings.ContainsAny(s, "\u202E\u202D\u2066\u2067\u2068\u2069") {
			t.Errorf("%s: %q keeps a bidirectional control", what, s)
		}
	}
}

// htmlText returns the text a client shows for a formatted body, failing on any tag other than
// the structure notices use.
func htmlText(t *testing.T, what, body string) string {
	t.Helper()
	allowed := map[string]bool{"code": true, "ul": true, "li": true, "br": true, "p": true}
	var text strings.Builder
	z := html.NewTokenizer(strings.NewReader(body))
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			return text.String()
		}
		tok := z.Token()
		switch tt {
		case html.StartTagToken, html.EndTagToken, html.SelfClosingTagToken:
			if tok.Data == "a" && (tt == html.EndTagToken || bridgeLink(tok)) {
				continue
			}
			if !allowed[tok.Data] {
				t.Errorf("%s: tag <%s> in formatted body %q", what, tok.Data, body)
			}
		case html.TextToken:
			text.WriteString(tok.Data)
		default:
			t.Errorf("%s: token %v in formatted body %q", what, tt, body)
		}
	}
}

// bridgeLink reports whether an <a> is one the bridge makes itself: a matrix.to link to one of
// its ghosts (whose user ID escapes the handle) or to a room, and nothing else.
func bridgeLink(tok html.Token) bool {
	if len(tok.Attr) != 1 || tok.Attr[0].Key != "href" {
		return false
	}
	href := tok.Attr[0].Val
	return strings.HasPrefix(href, "https://matrix.to/#/@msn_") || strings.HasPrefix(href, "https://matrix.to/#/%21")
}

func TestHostileNameIsTextInNotices(t *testing.T) {
	e := newGlueEnv(t, nil)
	must(t, e.srv.AddBot(mallory, "x", hostileName, (&botInbox{ch: make(chan struct{})}).fn))
	must(t, e.srv.SetPresence(mallory, "NLN", hostilePSM))
	e.mustLogin()
	room, err := e.user().GetManagementRoom(e.ctx)
	must(t, err)
	before := len(e.fm.Messages(room))

	// The contact request notices: mallory adds alice while she is online, and the server
	// pushes a request from a handle that is markup itself.
	// The markup handle goes first: the client refuses it, so by the time mallory's request
	// is shown, it is known that the markup one never will be.
	must(t, e.srv.Send(alice, &msn.Command{Name: "ADC", Args: []string{"0", "RL", "N=" + msn.Encode(hostileHandle), "F=" + msn.Encode(hostileName)}}))
	must(t, e.srv.AddContact(mallory, alice, msntest.FL|msntest.AL))
	must(t, e.srv.Send(alice, &msn.Command{Name: "ADC", Args: []string{"0", "RL", "N=" + mallory, "F=" + msn.Encode(hostileName)}}))
	requestFrom := func(handle string) *event.MessageEventContent {
		t.Helper()
		var req *event.MessageEventContent
		waitServer(t, func() bool {
			for _, n := range e.botNotices(room, before) {
				if strings.Contains(n.Body, "added you to their MSN contact list") && strings.Contains(n.Body, handle) {
					req = n
					return true
				}
			}
			return false
		})
		return req
	}
	assertLiteral(t, "contact request", requestFrom(mallory), mallory, cleanedName, "accept "+mallory)
	for _, n := range e.botNotices(room, before) {
		if strings.Contains(n.Body, "pwn") {
			t.Errorf("a request from a handle that is no handle was shown: %q", n.Body)
		}
	}

	// The list of pending requests.
	assertLiteral(t, "requests", e.commandNotice("requests"), mallory, cleanedName)

	// The contact list, once mallory is on it with a PSM.
	if r := e.command("", "accept "+mallory); !strings.Contains(r, "Accepted") {
		t.Fatalf("accept reply %q", r)
	}
	waitServer(t, func() bool { return e.srv.Lists(alice, mallory)&msntest.FL != 0 })
	must(t, e.srv.SetPresence(mallory, "BSY", hostilePSM)) // now pushed to alice
	acc := e.clientOf().account()
	waitServer(t, func() bool {
		ct, ok := acc.Contact(mallory)
		return ok && ct.Forward && ct.PSM != ""
	})
	assertLiteral(t, "contacts", e.commandNotice("contacts"), mallory, cleanedName,
		bridge.CleanLine(hostilePSM, bridge.MaxShownPSM))

	// The ghost's display name and status message are plain text, cleaned.
	ghost := ghostMXID(mallory)
	waitServer(t, func() bool { return e.fm.Name(ghost) != "" })
	if got, want := e.fm.Name(ghost), cleanedName+" (MSN)"; got != want {
		t.Errorf("ghost display name %q, want %q", got, want)
	}
	waitServer(t, func() bool { return len(e.fm.Presence(ghost)) > 0 })
	p := e.fm.Presence(ghost)
	if got, want := p[len(p)-1].StatusMsg, "Busy - "+bridge.CleanLine(hostilePSM, bridge.MaxShownPSM); got != want {
		t.Errorf("ghost status message %q, want %q", got, want)
	}
}

func TestLongNameIsCapped(t *testing.T) {
	e := newGlueEnv(t, nil)
	long := strings.Repeat("ab\u202E", 120) // 240 visible characters once cleaned
	must(t, e.srv.AddBot(mallory, "x", long, (&botInbox{ch: make(chan struct{})}).fn))
	must(t, e.srv.SetPresence(mallory, "NLN", strings.Repeat("p", 200)+strings.Repeat("q", 200)))
	must(t, e.srv.AddFriends(alice, mallory))
	e.mustLogin()
	acc := e.clientOf().account()
	waitServer(t, func() bool { ct, ok := acc.Contact(mallory); return ok && ct.PSM != "" })
	msg := e.commandNotice("contacts")
	shownName := bridge.CleanLine(long, bridge.MaxShownName)
	if n := utf8.RuneCountInString(shownName); n != bridge.MaxShownName {
		t.Fatalf("cleaned name has %d characters, want %d", n, bridge.MaxShownName)
	}
	assertLiteral(t, "contacts", msg, shownName, bridge.CleanLine(strings.Repeat("p", 200)+strings.Repeat("q", 200), bridge.MaxShownPSM))
	if strings.Contains(msg.Body, strings.Repeat("ab", bridge.MaxShownName/2+1)) || strings.Contains(msg.Body, strings.Repeat("q", 200)) {
		t.Errorf("contacts reply shows the name or PSM uncut: %q", msg.Body)
	}
}

func TestContactMessageIsText(t *testing.T) {
	e := newGlueEnv(t, nil)
	e.mustLogin()
	text := "<b>bold?</b> @room https://matrix.to/#/@alice:test " + hostileMarkup + " \u202Edesrever"
	must(t, e.srv.BotSay(bob, alice, text))
	portal := e.portal(bob)
	ev := e.waitMessage(portal.MXID, ghostMXID(bob), "bold?")
	msg := ev.Content.Parsed.(*event.MessageEventContent)
	if want := bridge.CleanText(text); msg.Body != want {
		t.Errorf("body %q, want %q", msg.Body, want)
	}
	if msg.Format != "" || msg.FormattedBody != "" {
		t.Errorf("unstyled message has a formatted body %q", msg.FormattedBody)
	}
	assertLiteral(t, "message", msg, "<b>bold?</b> @room https://matrix.to/#/@alice:test "+hostileMarkup)
}

var truncatedRe = regexp.MustCompile(`… \(message truncated, (\d+) characters not shown\)$`)

func TestHugeMessageIsOneTruncatedEvent(t *testing.T) {
	e := newGlueEnv(t, nil)
	e.mustLogin()
	unit := `x<"é ` // escaped quotes and a two-byte character make the JSON longer than the text
	text := strings.Repeat(unit, (1<<20-1024)/len(unit))
	must(t, e.srv.BotSay(bob, alice, text))
	must(t, e.srv.BotSay(bob, alice, "after the big one"))
	portal := e.portal(bob)
	e.waitMessage(portal.MXID, ghostMXID(bob), "after the big one")
	var bodies []string
	for _, ev := range e.fm.Messages(portal.MXID) {
		if msg, ok := ev.Content.Parsed.(*event.MessageEventContent); ok && ev.Sender == ghostMXID(bob) {
			bodies = append(bodies, msg.Body)
		}
	}
	if len(bodies) != 2 {
		t.Fatalf("%d events from bob, want the big message as one and the next", len(bodies))
	}
	body := bodies[0]
	m := truncatedRe.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("big message does not end with the truncation note: …%q", body[max(0, len(body)-100):])
	}
	kept := strings.TrimSuffix(body, m[0])
	if !strings.HasPrefix(text, kept) || len(kept) < 8<<10 {
		t.Errorf("shown part (%d bytes) is not a long prefix of the message", len(kept))
	}
	hidden, _ := strconv.Atoi(m[1])
	if want := utf8.RuneCountInString(text) - utf8.RuneCountInString(kept); hidden != want {
		t.Errorf("note says %d characters not shown, want %d", hidden, want)
	}
	if n := encodedLen(body); n > DefaultConfig().MaxMessageSize {
		t.Errorf("body takes %d bytes of the event, over the %d cap", n, DefaultConfig().MaxMessageSize)
	}
}

func TestServerErrorIsTextInStateNotice(t *testing.T) {
	e := newGlueEnv(t, nil)
	e.mustLogin()
	room, err := e.user().GetManagementRoom(e.ctx)
	must(t, err)
	before := len(e.fm.Messages(room))
	// A revival server's refusal is quoted in the stop notice.
	e.clientOf().sendBridgeState(bridge.AccountState{State: bridge.StateStopped, Reason: bridge.StopServerGone,
		Err: fmt.Errorf("server refused the login: %w", errors.New(hostileName))})
	var msg *event.MessageEventContent
	waitServer(t, func() bool {
		for _, n := range e.botNotices(room, before) {
			if strings.Contains(n.Body, "refused the login") {
				msg = n
				return true
			}
		}
		return false
	})
	msg.Mentions = nonNilMentions(msg.Mentions) // bridgev2 sends its state notices without m.mentions
	assertLiteral(t, "state notice", msg, cleanedName)
}

func nonNilMentions(m *event.Mentions) *event.Mentions {
	if m == nil {
		return &event.Mentions{}
	}
	return m
}

func TestGroupNameIsCleanAndCapped(t *testing.T) {
	e := newGlueEnv(t, nil)
	must(t, e.srv.AddBot(mallory, "x", hostileName, (&botInbox{ch: make(chan struct{})}).fn))
	must(t, e.srv.AddFriends(alice, mallory))
	e.mustLogin()
	acc := e.core.Account(alice)
	waitServer(t, func() bool { ct, ok := acc.Contact(mallory); return ok && ct.Name == hostileName })
	// The server names the other participants; strangers are named by their handles.
	members := []string{mallory}
	for i := range 10 {
		members = append(members, fmt.Sprintf("\u202e%s%d@evil.example", strings.Repeat("x", 60), i))
	}
	chat := bridge.GroupChat("sb-hostile")
	c := e.clientOf()
	must(t, c.handleEvent(e.ctx, acc, bridge.ChatMembership{Chat: chat, Handle: mallory, Joined: true, Members: members}))
	name := *c.groupInfo(chat).Name
	if n := utf8.RuneCountInString(name); n > maxRoomName {
		t.Errorf("group name has %d characters, over %d", n, maxRoomName)
	}
	if !strings.HasPrefix(name, "MSN: "+cleanedName+", ") {
		t.Errorf("group name %q does not start with the cleaned name", name)
	}
	if strings.ContainsRune(name, '\u202e') {
		t.Errorf("group name %q keeps a bidirectional override", name)
	}
}

func TestLongContactListIsSplit(t *testing.T) {
	e := newGlueEnv(t, nil)
	// Names whose escaping makes the formatted body about four times the text.
	name := strings.Repeat(`<"`, bridge.MaxShownName/2)
	var handles []string
	for i := range 250 {
		h := fmt.Sprintf("c%03d@example.com", i)
		must(t, e.srv.AddAccount(h, "x", name))
		must(t, e.srv.AddFriends(alice, h))
		handles = append(handles, h)
	}
	e.mustLogin()
	room, err := e.user().GetManagementRoom(e.ctx)
	must(t, err)
	before := len(e.fm.Messages(room))
	e.command(room, "contacts")
	replies := e.botNotices(room, before)
	if len(replies) < 2 {
		t.Fatalf("%d replies, want the list split over several notices under the event size limit", len(replies))
	}
	var all strings.Builder
	for i, r := range replies {
		assertLiteral(t, fmt.Sprintf("contacts part %d", i), r)
		if n := encodedLen(r.Body) + encodedLen(r.FormattedBody); n > maxNoticeText {
			t.Errorf("part %d takes %d bytes, over %d", i, n, maxNoticeText)
		}
		all.WriteString(r.Body)
	}
	for _, h := range handles {
		if c := strings.Count(all.String(), name+" ("+h+")"); c != 1 {
			t.Errorf("%s listed %d times", h, c)
		}
	}
}
