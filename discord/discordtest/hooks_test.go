package discordtest

import (
	"testing"

	"github.com/bwmarrin/discordgo"
)

func TestHumanHooks(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{})
	sess := newSession(t, srv, "")
	sess.Identify.Intents |= discordgo.IntentsGuildMessageReactions
	guilds := events[*discordgo.GuildCreate](sess)
	if err := sess.Open(); err != nil {
		t.Fatalf("Open: %v", err)
	}
	wait(t, guilds, "GUILD_CREATE", nil)
	created := events[*discordgo.MessageCreate](sess)
	updated := events[*discordgo.MessageUpdate](sess)
	deleted := events[*discordgo.MessageDelete](sess)
	reacted := events[*discordgo.MessageReactionAdd](sess)
	ch := generalID(t, srv)
	bob := srv.AddUser("bob")

	m := srv.InjectUserMessage(ch, bob, "a picture", Attachment{Filename: "cat.png", Data: []byte("\x89PNG\r\n\x1a\n")})
	ev := wait(t, created, "MESSAGE_CREATE", func(e *discordgo.MessageCreate) bool { return e.ID == m.ID })
	if ev.Author.ID != bob || ev.Member == nil || len(ev.Attachments) != 1 || ev.Attachments[0].ContentType != "image/png" {
		t.Errorf("human message = %+v", ev.Message)
	}
	if f, ok := srv.File(ev.Attachments[0].ID); !ok || len(f.Data) != 8 {
		t.Errorf("stored file = %+v, %v", f, ok)
	}
	r := srv.InjectUserReply(ch, srv.OwnerID(), m.ID, "nice")
	ev = wait(t, created, "reply", func(e *discordgo.MessageCreate) bool { return e.ID == r.ID })
	if ev.Type != discordgo.MessageTypeReply || ev.ReferencedMessage == nil || ev.ReferencedMessage.ID != m.ID {
		t.Errorf("reply = type %d ref %+v", ev.Type, ev.ReferencedMessage)
	}
	if !srv.InjectUserEdit(ch, m.ID, "a cat picture") {
		t.Fatal("InjectUserEdit: not found")
	}
	wait(t, updated, "MESSAGE_UPDATE", func(e *discordgo.MessageUpdate) bool { return e.ID == m.ID && e.Content == "a cat picture" })
	if !srv.InjectReaction(ch, m.ID, srv.OwnerID(), "👍") {
		t.Fatal("InjectReaction refused")
	}
	wait(t, reacted, "MESSAGE_REACTION_ADD", func(e *discordgo.MessageReactionAdd) bool {
		return e.MessageID == m.ID && e.UserID == srv.OwnerID() && e.Emoji.Name == "👍"
	})
	if !srv.InjectUserDelete(ch, m.ID) {
		t.Fatal("InjectUserDelete: not found")
	}
	wait(t, deleted, "MESSAGE_DELETE", func(e *discordgo.MessageDelete) bool { return e.ID == m.ID })

	for name, ok := range map[string]bool{
		"message in unknown channel": srv.InjectUserMessage("1", bob, "x") != nil,
		"message by unknown user":    srv.InjectUserMessage(ch, "1", "x") != nil,
		"reply to unknown message":   srv.InjectUserReply(ch, bob, "1", "x") != nil,
		"edit of unknown message":    srv.InjectUserEdit(ch, "1", "x"),
		"delete of unknown message":  srv.InjectUserDelete(ch, "1"),
		"unknown webhook":            srv.DeleteWebhook("1"),
		"unknown channel":            srv.DeleteChannel("1"),
	} {
		if ok {
			t.Errorf("%s accepted", name)
		}
	}
}
