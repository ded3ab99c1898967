package discordtest

import (
	"errors"
	"net/http"
	"net/url"
	"testing"

	"github.com/bwmarrin/discordgo"
)

// TestInjectFault: injected faults fail the next matching requests (a dropped connection, then
// 503 and 500 with Discord's body), change nothing, and are used up.
func TestInjectFault(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{})
	sess := newSession(t, srv, "")
	ch := generalID(t, srv)
	wh, err := sess.WebhookCreate(ch, "msn-bob", "")
	if err != nil {
		t.Fatal(err)
	}
	const execute = "POST /webhooks/{w}/{tok}"
	srv.InjectFault(execute, 1, NetworkFailure)
	srv.InjectFault(execute, 1, http.StatusServiceUnavailable)
	srv.InjectFault(execute, 1, http.StatusInternalServerError)
	params := &discordgo.WebhookParams{Content: "hi"}
	var ue *url.Error
	if _, err = sess.WebhookExecute(wh.ID, wh.Token, true, params); !errors.As(err, &ue) {
		t.Errorf("first execute: %v, want a network error", err)
	}
	for _, status := range []int{http.StatusServiceUnavailable, http.StatusInternalServerError} {
		var re *discordgo.RESTError
		if _, err = sess.WebhookExecute(wh.ID, wh.Token, true, params); !errors.As(err, &re) || re.Response.StatusCode != status {
			t.Errorf("execute: %v, want %d", err, status)
		}
	}
	if n := len(srv.Messages(ch)); n != 0 {
		t.Fatalf("%d messages stored by failed requests", n)
	}
	if _, err = sess.WebhookExecute(wh.ID, wh.Token, true, params); err != nil {
		t.Fatalf("execute after the faults: %v", err)
	}
}

// TestChannelOverwritesAndView: a channel created in a category without overwrites starts with
// the category's; CanView follows @everyone and member overwrites, and the guild owner sees all.
func TestChannelOverwritesAndView(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{Users: []*discordgo.User{{Username: "eve"}, {Username: "frank"}}})
	sess := newSession(t, srv, "")
	eve, frank := srv.Users()[0].ID, srv.Users()[1].ID
	cat, err := sess.GuildChannelCreateComplex(srv.GuildID(), discordgo.GuildChannelCreateData{
		Name: "private", Type: discordgo.ChannelTypeGuildCategory,
		PermissionOverwrites: []*discordgo.PermissionOverwrite{
			{ID: srv.GuildID(), Type: discordgo.PermissionOverwriteTypeRole, Deny: discordgo.PermissionViewChannel},
			{ID: eve, Type: discordgo.PermissionOverwriteTypeMember, Allow: discordgo.PermissionViewChannel},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	child, err := sess.GuildChannelCreateComplex(srv.GuildID(), discordgo.GuildChannelCreateData{
		Name: "inside", Type: discordgo.ChannelTypeGuildText, ParentID: cat.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(child.PermissionOverwrites) != 2 {
		t.Fatalf("child overwrites %+v, want the category's", child.PermissionOverwrites)
	}
	for _, c := range []string{cat.ID, child.ID} {
		if !srv.CanView(eve, c) || srv.CanView(frank, c) || !srv.CanView(srv.OwnerID(), c) {
			t.Errorf("channel %s: eve %v frank %v owner %v", c, srv.CanView(eve, c), srv.CanView(frank, c), srv.CanView(srv.OwnerID(), c))
		}
	}
	if !srv.CanView(frank, generalID(t, srv)) {
		t.Error("frank cannot see #general")
	}
}

// TestEscapedMentionsMentionNoOne: a backslash before a mention makes it text, as in Discord.
func TestEscapedMentionsMentionNoOne(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{})
	sess := newSession(t, srv, "")
	ch := generalID(t, srv)
	m, err := sess.ChannelMessageSend(ch, `\@everyone \<@`+srv.OwnerID()+`>`)
	if err != nil {
		t.Fatal(err)
	}
	if m.MentionEveryone || len(m.Mentions) != 0 {
		t.Errorf("escaped mentions: everyone %v, users %v", m.MentionEveryone, m.Mentions)
	}
	m, err = sess.ChannelMessageSend(ch, `\\@everyone <@`+srv.OwnerID()+`>`)
	if err != nil {
		t.Fatal(err)
	}
	if !m.MentionEveryone || len(m.Mentions) != 1 {
		t.Errorf("mentions after an escaped backslash: everyone %v, users %v", m.MentionEveryone, m.Mentions)
	}
}
