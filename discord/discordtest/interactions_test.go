package discordtest

import (
	"net/http"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
)

var loginCommand = &discordgo.ApplicationCommand{Name: "login", Description: "Log in to MSN"}

func registerCommands(t *testing.T, srv *Server, sess *discordgo.Session) []*discordgo.ApplicationCommand {
	t.Helper()
	cmds, err := sess.ApplicationCommandBulkOverwrite(srv.ApplicationID(), srv.GuildID(), []*discordgo.ApplicationCommand{
		loginCommand,
		{Name: "status", Description: "Set your MSN status", Options: []*discordgo.ApplicationCommandOption{
			{Type: discordgo.ApplicationCommandOptionString, Name: "status", Description: "online, away, …", Required: true},
		}},
	})
	if err != nil {
		t.Fatalf("ApplicationCommandBulkOverwrite: %v", err)
	}
	return cmds
}

func TestCommandsBulkOverwrite(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{})
	sess := newSession(t, srv, "")
	first := registerCommands(t, srv, sess)
	if len(first) != 2 || first[0].ID == "" || first[0].ApplicationID != srv.ApplicationID() || first[0].GuildID != srv.GuildID() {
		t.Fatalf("commands = %+v", first)
	}
	again := registerCommands(t, srv, sess)
	if again[0].ID != first[0].ID {
		t.Errorf("overwrite changed the id of an unchanged command: %s → %s", first[0].ID, again[0].ID)
	}
	if got := srv.Commands(srv.GuildID()); len(got) != 2 {
		t.Errorf("Commands = %v", got)
	}
	listed, err := sess.ApplicationCommands(srv.ApplicationID(), srv.GuildID())
	if err != nil || len(listed) != 2 {
		t.Errorf("ApplicationCommands = %v, %v", listed, err)
	}
}

func TestSlashCommandModalEphemeral(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{})
	sess := openSession(t, srv)
	inters := events[*discordgo.InteractionCreate](sess)
	cmds := registerCommands(t, srv, sess)
	ch := generalID(t, srv)

	iid, tok := srv.InjectSlashCommand(srv.OwnerID(), ch, discordgo.ApplicationCommandInteractionData{Name: "login"})
	if iid == "" || tok == "" {
		t.Fatal("InjectSlashCommand refused")
	}
	ic := wait(t, inters, "INTERACTION_CREATE (command)", func(e *discordgo.InteractionCreate) bool { return e.ID == iid })
	if ic.Type != discordgo.InteractionApplicationCommand || ic.ApplicationCommandData().Name != "login" ||
		ic.ApplicationCommandData().ID != cmds[0].ID || ic.Member == nil || ic.Member.User.ID != srv.OwnerID() || ic.Token != tok {
		t.Fatalf("interaction = %+v", ic.Interaction)
	}
	if ic.AppPermissions == 0 || ic.GuildID != srv.GuildID() || ic.ChannelID != ch {
		t.Errorf("interaction context = perms %d guild %s channel %s", ic.AppPermissions, ic.GuildID, ic.ChannelID)
	}
	modal := &discordgo.InteractionResponse{
		Type: discordgo.InteractionResponseModal,
		Data: &discordgo.InteractionResponseData{
			CustomID: "login-modal",
			Title:    "MSN login",
			Components: []discordgo.MessageComponent{discordgo.ActionsRow{Components: []discordgo.MessageComponent{
				discordgo.TextInput{CustomID: "password", Label: "Password", Style: discordgo.TextInputShort, Required: true},
			}}},
		},
	}
	if err := sess.InteractionRespond(ic.Interaction, modal); err != nil {
		t.Fatalf("respond with modal: %v", err)
	}
	if err := sess.InteractionRespond(ic.Interaction, modal); restCode(err) != 40060 {
		t.Errorf("second response: %v, want 40060", err)
	}
	rs := srv.InteractionResponses(iid)
	if len(rs) != 2 || !rs[0].Accepted || rs[0].Type != discordgo.InteractionResponseModal || rs[0].CustomID != "login-modal" ||
		rs[0].Title != "MSN login" || rs[1].Accepted || rs[1].Code != 40060 {
		t.Fatalf("responses = %+v", rs)
	}

	sid, _ := srv.InjectModalSubmit(srv.OwnerID(), ch, discordgo.ModalSubmitInteractionData{
		CustomID: "login-modal",
		Components: []discordgo.MessageComponent{&discordgo.ActionsRow{Components: []discordgo.MessageComponent{
			&discordgo.TextInput{CustomID: "password", Value: "hunter2"},
		}}},
	})
	sub := wait(t, inters, "INTERACTION_CREATE (modal submit)", func(e *discordgo.InteractionCreate) bool { return e.ID == sid })
	data := sub.ModalSubmitData()
	row, ok := data.Components[0].(*discordgo.ActionsRow)
	if data.CustomID != "login-modal" || !ok || row.Components[0].(*discordgo.TextInput).Value != "hunter2" {
		t.Fatalf("modal submit data = %+v", data)
	}
	err := sess.InteractionRespond(sub.Interaction, &discordgo.InteractionResponse{
		Type: discordgo.InteractionResponseChannelMessageWithSource,
		Data: &discordgo.InteractionResponseData{Content: "Logged in.", Flags: discordgo.MessageFlagsEphemeral},
	})
	if err != nil {
		t.Fatalf("ephemeral response: %v", err)
	}
	if err := sess.InteractionRespond(sub.Interaction, modal); restCode(err) != 40060 {
		t.Errorf("modal in answer to a modal submit after a response: %v, want 40060", err)
	}
	orig := srv.Original(sub.Token)
	if orig == nil || orig.Content != "Logged in." || !orig.Ephemeral {
		t.Fatalf("original = %+v", orig)
	}
	for _, m := range srv.Messages(ch) {
		if m.ID == orig.ID {
			t.Error("an ephemeral response was stored in the channel")
		}
	}
	got, err := sess.InteractionResponse(sub.Interaction)
	if err != nil || got.Content != "Logged in." {
		t.Errorf("InteractionResponse = %v, %v", got, err)
	}
}

func TestDeferredResponseAndFollowups(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{})
	sess := openSession(t, srv)
	inters := events[*discordgo.InteractionCreate](sess)
	created := events[*discordgo.MessageCreate](sess)
	ch := generalID(t, srv)
	iid, tok := srv.InjectSlashCommand(srv.OwnerID(), ch, discordgo.ApplicationCommandInteractionData{
		Name:    "status",
		Options: []*discordgo.ApplicationCommandInteractionDataOption{{Name: "status", Type: discordgo.ApplicationCommandOptionString, Value: "away"}},
	})
	ic := wait(t, inters, "INTERACTION_CREATE", func(e *discordgo.InteractionCreate) bool { return e.ID == iid })
	if v := ic.ApplicationCommandData().Options[0].StringValue(); v != "away" {
		t.Errorf("option = %q", v)
	}

	if _, err := sess.FollowupMessageCreate(ic.Interaction, true, &discordgo.WebhookParams{Content: "too early"}); restCode(err) != 10015 {
		t.Errorf("followup before any response: %v, want 10015", err)
	}
	if err := sess.InteractionRespond(ic.Interaction, &discordgo.InteractionResponse{Type: discordgo.InteractionResponseDeferredChannelMessageWithSource}); err != nil {
		t.Fatalf("defer: %v", err)
	}
	orig := srv.Original(tok)
	if orig == nil || orig.Flags&discordgo.MessageFlagsLoading == 0 {
		t.Fatalf("deferred original = %+v", orig)
	}
	wait(t, created, "MESSAGE_CREATE of the deferred response", func(e *discordgo.MessageCreate) bool { return e.ID == orig.ID })

	done := "Status set to Away."
	edited, err := sess.InteractionResponseEdit(ic.Interaction, &discordgo.WebhookEdit{Content: &done})
	if err != nil || edited.Content != done || edited.Flags&discordgo.MessageFlagsLoading != 0 {
		t.Fatalf("InteractionResponseEdit = %+v, %v", edited, err)
	}
	f, err := sess.FollowupMessageCreate(ic.Interaction, true, &discordgo.WebhookParams{Content: "and one more thing", Flags: discordgo.MessageFlagsEphemeral})
	if err != nil {
		t.Fatalf("followup: %v", err)
	}
	more := "and two more things"
	if _, err := sess.FollowupMessageEdit(ic.Interaction, f.ID, &discordgo.WebhookEdit{Content: &more}); err != nil {
		t.Fatalf("followup edit: %v", err)
	}
	fs := srv.Followups(tok)
	if len(fs) != 1 || fs[0].Content != more || !fs[0].Ephemeral || fs[0].EditedTimestamp == nil {
		t.Fatalf("followups = %+v", fs)
	}
	if err := sess.FollowupMessageDelete(ic.Interaction, f.ID); err != nil || len(srv.Followups(tok)) != 0 {
		t.Errorf("followup delete: %v, left %d", err, len(srv.Followups(tok)))
	}
	if err := sess.InteractionResponseDelete(ic.Interaction); err != nil || srv.Original(tok) != nil {
		t.Errorf("response delete: %v", err)
	}
	if touched := srv.Touched(); touched["PATCH /webhooks/{w}/{tok}/messages/{m}"] != 2 || touched["POST /webhooks/{w}/{tok}"] != 2 {
		t.Errorf("touched = %v", touched)
	}
}

func TestComponentUpdateMessage(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{})
	sess := openSession(t, srv)
	inters := events[*discordgo.InteractionCreate](sess)
	updated := events[*discordgo.MessageUpdate](sess)
	ch := generalID(t, srv)
	req, err := sess.ChannelMessageSendComplex(ch, &discordgo.MessageSend{
		Content: "bob@hotmail.com wants to add you",
		Components: []discordgo.MessageComponent{discordgo.ActionsRow{Components: []discordgo.MessageComponent{
			discordgo.Button{Label: "Accept", Style: discordgo.SuccessButton, CustomID: "accept:bob"},
			discordgo.Button{Label: "Decline", Style: discordgo.DangerButton, CustomID: "decline:bob"},
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(req.Components) != 1 {
		t.Fatalf("components not echoed: %+v", req.Components)
	}
	iid, _ := srv.InjectComponent(srv.OwnerID(), ch, req.ID, discordgo.MessageComponentInteractionData{CustomID: "accept:bob", ComponentType: discordgo.ButtonComponent})
	ic := wait(t, inters, "INTERACTION_CREATE (button)", func(e *discordgo.InteractionCreate) bool { return e.ID == iid })
	if ic.MessageComponentData().CustomID != "accept:bob" || ic.Message == nil || ic.Message.ID != req.ID || len(ic.Message.Components) != 1 {
		t.Fatalf("component interaction = %+v", ic.Interaction)
	}
	err = sess.InteractionRespond(ic.Interaction, &discordgo.InteractionResponse{
		Type: discordgo.InteractionResponseUpdateMessage,
		Data: &discordgo.InteractionResponseData{Content: "Accepted bob@hotmail.com", Components: []discordgo.MessageComponent{}},
	})
	if err != nil {
		t.Fatalf("update message: %v", err)
	}
	wait(t, updated, "MESSAGE_UPDATE", func(e *discordgo.MessageUpdate) bool {
		return e.ID == req.ID && e.Content == "Accepted bob@hotmail.com"
	})
	if id, _ := srv.InjectComponent(srv.OwnerID(), ch, "1", discordgo.MessageComponentInteractionData{}); id != "" {
		t.Error("InjectComponent accepted an unknown message")
	}
}

func TestInteractionDeadline(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{InteractionDeadline: time.Millisecond})
	iid, tok := srv.InjectSlashCommand(srv.OwnerID(), generalID(t, srv), discordgo.ApplicationCommandInteractionData{Name: "login"})
	time.Sleep(20 * time.Millisecond)
	resp, body := raw(t, srv, "POST", "/interactions/"+iid+"/"+tok+"/callback", "", "application/json", []byte(`{"type":4,"data":{"content":"late"}}`))
	if code, _ := body["code"].(float64); resp.StatusCode != http.StatusNotFound || code != 10062 {
		t.Errorf("late response: %d %v, want 404 10062", resp.StatusCode, body)
	}
	if rs := srv.InteractionResponses(iid); len(rs) != 1 || rs[0].Accepted || rs[0].Code != 10062 || rs[0].Content != "late" {
		t.Errorf("recorded = %+v, want one rejected attempt", rs)
	}
	if id, _ := srv.InjectSlashCommand("1", generalID(t, srv), discordgo.ApplicationCommandInteractionData{Name: "x"}); id != "" {
		t.Error("InjectSlashCommand accepted an unknown user")
	}
}
