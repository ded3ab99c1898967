package msntest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/msn-bridge/msn-bridge/msn"
)

func TestBots(t *testing.T) {
	s := newServer(t, Options{})
	escargotAccounts(t, s)
	if err := s.AddBot("echo@example.com", "x", "Echo Bot", EchoBot); err != nil {
		t.Fatal(err)
	}
	if err := s.AddFriends("alice@example.com", "echo@example.com"); err != nil {
		t.Fatal(err)
	}
	a := login(t, s, "alice@example.com", "alicepw")
	a.send("CHG 10 NLN 0")
	a.expect("CHG 10 NLN 0")
	a.expect("ILN 10 NLN echo@example.com Echo%20Bot 1073741824 %3Cmsnobj%2F%3E")
	a.expectName("UBX")
	a.expectName("MSG")

	// Presence and PSM changes of the bot reach its watchers.
	if err := s.SetPresence("echo@example.com", "AWY", "out for lunch"); err != nil {
		t.Fatal(err)
	}
	a.expect("NLN AWY echo@example.com Echo%20Bot 1073741824 %3Cmsnobj%2F%3E")
	u := a.expectName("UBX")
	if !strings.Contains(string(u.Payload), "<PSM>out for lunch</PSM>") {
		t.Fatalf("UBX %q", u.Payload)
	}

	// CAL the bot: it joins at once and echoes.
	as := openSB(t, s, a, "alice@example.com", "Alice")
	as.send("CAL 2 echo@example.com")
	as.expectName("CAL")
	as.expect("JOI echo@example.com Echo%20Bot")
	as.sendPayload("MSG 3 A", helloMsg)
	as.expect("ACK 3")
	m := as.expect("MSG echo@example.com Echo%20Bot 147")
	if !strings.HasSuffix(string(m.Payload), "\r\n\r\nHello B, this is A over MSNP11") {
		t.Fatalf("echo %q", m.Payload)
	}

	// The bot starts a conversation: an existing 1:1 session is reused.
	if err := s.BotSay("echo@example.com", "alice@example.com", "ping"); err != nil {
		t.Fatal(err)
	}
	m = as.expectName("MSG")
	if !strings.HasSuffix(string(m.Payload), "\r\n\r\nping") {
		t.Fatalf("BotSay %q", m.Payload)
	}
	as.send("OUT")
	as.expectClosed()

	// Without a session: RNG, then IRO with the bot, then the queued messages.
	if err := s.BotTyping("echo@example.com", "alice@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := s.BotSay("echo@example.com", "alice@example.com", "hello\nthere"); err != nil {
		t.Fatal(err)
	}
	bs, rng := answer(t, a, "alice@example.com")
	if rng[4] != "echo@example.com" {
		t.Fatalf("RNG %v", rng)
	}
	bs.expect("IRO 1 1 1 echo@example.com Echo%20Bot")
	bs.expect("ANS 1 OK")
	if m := bs.expectName("MSG"); !strings.Contains(string(m.Payload), "TypingUser: echo@example.com") {
		t.Fatalf("typing %q", m.Payload)
	}
	if m := bs.expectName("MSG"); !strings.HasSuffix(string(m.Payload), "hello\r\nthere") {
		t.Fatalf("text %q", m.Payload)
	}
	if err := s.BotNudge("echo@example.com", "alice@example.com"); err != nil {
		t.Fatal(err)
	}
	bs.expectName("MSG")

	// Errors: a logged-in account is not a bot; an offline user cannot be reached.
	if err := s.SetPresence("alice@example.com", "NLN", ""); err == nil {
		t.Fatal("SetPresence on a logged-in account succeeded")
	}
	if err := s.BotSay("echo@example.com", "bob@example.com", "x"); err == nil {
		t.Fatal("BotSay to an offline user succeeded")
	}
	// Bot goes offline: FLN, and CAL gets 217.
	if err := s.SetOffline("echo@example.com"); err != nil {
		t.Fatal(err)
	}
	a.expect("FLN echo@example.com")
	cs := openSB(t, s, a, "alice@example.com", "Alice")
	cs.send("CAL 2 echo@example.com")
	cs.expect("217 2")
}

func TestR2MSessionIDs(t *testing.T) {
	s := twoFriends(t, Options{Dialect: R2M})
	a := online(t, s, "alice@example.com", "alicepw")
	b := online(t, s, "bob@example.com", "bobpw")
	as := openSB(t, s, a, "alice@example.com", "Alice")
	as.send("CAL 2 bob@example.com")
	sid := as.expectName("CAL").Arg(2)
	if len(sid) != 8 || strings.Trim(sid, "0123456789") != "" {
		t.Fatalf("R2M session id %q", sid)
	}
	_, rng := answer(t, b, "bob@example.com")
	if rng[0] != sid {
		t.Fatalf("RNG %v", rng)
	}
}

// TestBotInvitationOfEndedLogin: a bot's message waits for the user to answer the invitation
// (RNG). When the login that was rung ends first, the message is reported undelivered, and the
// bot's next message invites the user's new login instead of waiting behind an invitation
// nobody can answer any more.
func TestBotInvitationOfEndedLogin(t *testing.T) {
	s := twoFriends(t, Options{})
	if err := s.AddBot("bot@example.com", "x", "Bot", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.AddFriends("alice@example.com", "bot@example.com"); err != nil {
		t.Fatal(err)
	}
	a1 := online(t, s, "alice@example.com", "alicepw")
	if err := s.BotSay("bot@example.com", "alice@example.com", "first"); err != nil {
		t.Fatal(err)
	}
	oldRNG := a1.until(func(c *msn.Command) bool { return c.Name == "RNG" })
	if err := s.DropConnection("alice@example.com"); err != nil {
		t.Fatal(err)
	}
	a1.expectClosed()

	a2 := online(t, s, "alice@example.com", "alicepw")
	if err := s.BotSay("bot@example.com", "alice@example.com", "second"); err != nil {
		t.Fatal(err)
	}
	// The RNG, if any, is written before the reply to a command sent after BotSay returned.
	a2.send("PNG")
	rng := a2.until(func(c *msn.Command) bool { return c.Name == "RNG" || c.Name == "QNG" })
	if rng.Name != "RNG" {
		t.Fatal("the new login was not invited: the message waits behind the ended login's invitation")
	}
	bs := dialRaw(t, rng.Arg(1))
	bs.send("ANS 1 alice@example.com " + rng.Arg(3) + " " + rng.Arg(0))
	bs.expect("IRO 1 1 1 bot@example.com Bot")
	bs.expect("ANS 1 OK")
	if m := bs.expectName("MSG"); !strings.HasSuffix(string(m.Payload), "\r\n\r\nsecond") {
		t.Fatalf("got %q, want the second message only", m.Payload)
	}

	// The first message was dropped and is reported; the old invitation cannot deliver it late.
	und := s.Undelivered()
	if len(und) != 1 || und[0].From != "bot@example.com" || und[0].To != "alice@example.com" || und[0].Body() != "first" {
		t.Fatalf("undelivered %+v, want the first message", und)
	}
	old := dialRaw(t, oldRNG.Arg(1))
	old.send("ANS 1 alice@example.com " + oldRNG.Arg(3) + " " + oldRNG.Arg(0))
	old.expect("911 1")
}

// TestBotReplyAfterSessionEnded: a bot that answers in a session its last user has left is
// told the reply went nowhere, instead of having it held for a session nobody can join.
func TestBotReplyAfterSessionEnded(t *testing.T) {
	s := twoFriends(t, Options{})
	chats := make(chan *BotChat, 1)
	if err := s.AddBot("bot@example.com", "x", "Bot", func(_ context.Context, chat *BotChat, msg BotMessage) {
		if msg.IsText() {
			chats <- chat
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddFriends("alice@example.com", "bot@example.com"); err != nil {
		t.Fatal(err)
	}
	a := online(t, s, "alice@example.com", "alicepw")
	as := openSB(t, s, a, "alice@example.com", "Alice")
	as.send("CAL 2 bot@example.com")
	as.expectName("CAL")
	as.expect("JOI bot@example.com Bot")
	as.sendPayload("MSG 3 A", helloMsg)
	as.expect("ACK 3")
	chat := <-chats
	if err := chat.Say("while you are here"); err != nil {
		t.Fatalf("reply in a live session: %v", err)
	}
	as.expectName("MSG")
	as.send("OUT")
	as.expectClosed()
	if err := chat.Say("too late"); !errors.Is(err, ErrNotOnline) {
		t.Fatalf("reply after the user left: %v, want ErrNotOnline", err)
	}
}
