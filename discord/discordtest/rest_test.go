package discordtest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
)

func TestChannelLifecycle(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{})
	sess := openSession(t, srv)
	created := events[*discordgo.ChannelCreate](sess)
	updated := events[*discordgo.ChannelUpdate](sess)
	deleted := events[*discordgo.ChannelDelete](sess)

	cat, err := sess.GuildChannelCreateComplex(srv.GuildID(), discordgo.GuildChannelCreateData{Name: "MSN — Online", Type: discordgo.ChannelTypeGuildCategory})
	if err != nil {
		t.Fatalf("create category: %v", err)
	}
	off, err := sess.GuildChannelCreateComplex(srv.GuildID(), discordgo.GuildChannelCreateData{Name: "MSN — Offline", Type: discordgo.ChannelTypeGuildCategory})
	if err != nil {
		t.Fatalf("create category: %v", err)
	}
	ch, err := sess.GuildChannelCreateComplex(srv.GuildID(), discordgo.GuildChannelCreateData{
		Name: "Bob Smith", Type: discordgo.ChannelTypeGuildText, Topic: "bob@hotmail.com", ParentID: cat.ID,
	})
	if err != nil {
		t.Fatalf("create channel: %v", err)
	}
	if ch.Name != "bob-smith" || ch.Topic != "bob@hotmail.com" || ch.ParentID != cat.ID || ch.GuildID != srv.GuildID() {
		t.Errorf("created channel = %q topic %q parent %q guild %q", ch.Name, ch.Topic, ch.ParentID, ch.GuildID)
	}
	wait(t, created, "CHANNEL_CREATE", func(e *discordgo.ChannelCreate) bool { return e.ID == ch.ID })

	// Moving between categories is not a name/topic change.
	for i := 0; i < 4; i++ {
		parent := off.ID
		if i%2 == 1 {
			parent = cat.ID
		}
		if _, err := sess.ChannelEdit(ch.ID, &discordgo.ChannelEdit{ParentID: parent}); err != nil {
			t.Fatalf("move %d: %v", i, err)
		}
	}
	wait(t, updated, "CHANNEL_UPDATE", func(e *discordgo.ChannelUpdate) bool { return e.ID == ch.ID && e.ParentID == cat.ID })
	if n := len(srv.TopicEdits(ch.ID)); n != 0 {
		t.Errorf("parent moves counted as %d topic edits", n)
	}
	got, err := sess.Channel(ch.ID)
	if err != nil || got.ParentID != cat.ID {
		t.Fatalf("Channel = %+v, %v", got, err)
	}
	chans, err := sess.GuildChannels(srv.GuildID())
	if err != nil || len(chans) != 5 {
		t.Fatalf("GuildChannels = %d, %v; want 5", len(chans), err)
	}

	if _, err := sess.ChannelDelete(ch.ID); err != nil {
		t.Fatalf("delete: %v", err)
	}
	wait(t, deleted, "CHANNEL_DELETE", func(e *discordgo.ChannelDelete) bool { return e.ID == ch.ID })
	if _, err := sess.Channel(ch.ID); restCode(err) != 10003 {
		t.Errorf("Channel after delete: %v, want 10003", err)
	}
	if _, err := sess.GuildChannelCreateComplex(srv.GuildID(), discordgo.GuildChannelCreateData{Name: "x", ParentID: generalID(t, srv)}); restCode(err) != 50035 {
		t.Errorf("text channel as parent: %v, want 50035", err)
	}
	if !srv.DeleteChannel(cat.ID) || srv.Channel(cat.ID) != nil {
		t.Error("DeleteChannel did not delete")
	}
	wait(t, deleted, "CHANNEL_DELETE by a human", func(e *discordgo.ChannelDelete) bool { return e.ID == cat.ID })
}

func TestMessageSendEditDelete(t *testing.T) {
	t.Parallel()
	// A roomier message bucket than Discord's 5 per 5 s keeps the test quick.
	srv := newServer(t, Options{
		Users:       []*discordgo.User{{Username: "alice"}},
		RouteLimits: map[string]Limit{"POST /channels/{c}/messages": {50, time.Second}},
	})
	sess := openSession(t, srv)
	created := events[*discordgo.MessageCreate](sess)
	updated := events[*discordgo.MessageUpdate](sess)
	deleted := events[*discordgo.MessageDelete](sess)
	ch := generalID(t, srv)

	m, err := sess.ChannelMessageSend(ch, "hello from msn")
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	if m.Author.ID != srv.BotID() || m.Content != "hello from msn" || m.Timestamp.IsZero() {
		t.Errorf("sent = %+v", m)
	}
	wait(t, created, "MESSAGE_CREATE", func(e *discordgo.MessageCreate) bool { return e.ID == m.ID })

	human := srv.InjectUserMessage(ch, srv.Users()[0].ID, "question?")
	reply, err := sess.ChannelMessageSendReply(ch, "answer", human.Reference())
	if err != nil {
		t.Fatalf("reply: %v", err)
	}
	if reply.Type != discordgo.MessageTypeReply || reply.ReferencedMessage == nil || reply.ReferencedMessage.ID != human.ID {
		t.Errorf("reply = type %d ref %+v", reply.Type, reply.ReferencedMessage)
	}

	file, err := sess.ChannelMessageSendComplex(ch, &discordgo.MessageSend{
		Content: "a file",
		Files:   []*discordgo.File{{Name: "note.txt", ContentType: "text/plain", Reader: strings.NewReader("contents")}},
	})
	if err != nil {
		t.Fatalf("send file: %v", err)
	}
	if len(file.Attachments) != 1 || file.Attachments[0].Filename != "note.txt" || file.Attachments[0].Size != 8 {
		t.Fatalf("attachments = %+v", file.Attachments)
	}
	resp, err := http.Get(file.Attachments[0].URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "contents" {
		t.Errorf("attachment download = %q", body)
	}

	edited, err := sess.ChannelMessageEdit(ch, m.ID, "hello, edited")
	if err != nil {
		t.Fatalf("edit: %v", err)
	}
	if edited.Content != "hello, edited" || edited.EditedTimestamp == nil {
		t.Errorf("edited = %q at %v", edited.Content, edited.EditedTimestamp)
	}
	wait(t, updated, "MESSAGE_UPDATE", func(e *discordgo.MessageUpdate) bool { return e.ID == m.ID && e.Content == "hello, edited" })
	if _, err := sess.ChannelMessageEdit(ch, human.ID, "not mine"); restCode(err) != 50005 {
		t.Errorf("editing a human's message: %v, want 50005", err)
	}

	msgs, err := sess.ChannelMessages(ch, 2, "", "", "")
	if err != nil || len(msgs) != 2 || msgs[0].ID != file.ID {
		t.Fatalf("ChannelMessages = %d, %v; want newest first", len(msgs), err)
	}

	if err := sess.ChannelMessageDelete(ch, m.ID); err != nil {
		t.Fatalf("delete: %v", err)
	}
	wait(t, deleted, "MESSAGE_DELETE", func(e *discordgo.MessageDelete) bool { return e.ID == m.ID })
	if err := sess.ChannelMessageDelete(ch, m.ID); restCode(err) != 10008 {
		t.Errorf("second delete: %v, want 10008", err)
	}
	if _, err := sess.ChannelMessageEdit(ch, m.ID, "x"); restCode(err) != 10008 {
		t.Errorf("edit after delete: %v, want 10008", err)
	}
	if _, err := sess.ChannelMessageSend(ch, ""); restCode(err) != 50006 {
		t.Errorf("empty message: %v, want 50006", err)
	}
	if _, err := sess.ChannelMessageSend(ch, strings.Repeat("x", 2001)); restCode(err) != 50035 {
		t.Errorf("2001 characters: %v, want 50035", err)
	}
	if _, err := sess.ChannelMessageSendReply(ch, "late", m.Reference()); restCode(err) != 50035 {
		t.Errorf("reply to a deleted message: %v, want 50035", err)
	}
	if got := len(srv.Messages(ch)); got != 3 {
		t.Errorf("stored messages = %d, want 3", got)
	}
}

func TestPinsReactionsTyping(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{})
	sess := newSession(t, srv, "")
	ch := generalID(t, srv)
	m, err := sess.ChannelMessageSend(ch, "roster")
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.ChannelMessagePin(ch, m.ID); err != nil {
		t.Fatalf("pin: %v", err)
	}
	pins, err := sess.ChannelMessagesPinned(ch)
	if err != nil || len(pins) != 1 || pins[0].ID != m.ID || !pins[0].Pinned {
		t.Fatalf("pins = %v, %v", pins, err)
	}
	all := srv.Messages(ch)
	if last := all[len(all)-1]; last.Type != discordgo.MessageTypeChannelPinnedMessage {
		t.Errorf("no pin system message, last is type %d", last.Type)
	}
	if err := sess.ChannelMessageUnpin(ch, m.ID); err != nil || len(srv.Pins(ch)) != 0 {
		t.Errorf("unpin: %v, pins %v", err, srv.Pins(ch))
	}
	if err := sess.MessageReactionAdd(ch, m.ID, "⚠️"); err != nil {
		t.Fatalf("react: %v", err)
	}
	if got := srv.Messages(ch)[0].Reactions; len(got) != 1 || got[0].Emoji.Name != "⚠️" || !got[0].Me {
		t.Errorf("reactions = %+v", got)
	}
	if err := sess.MessageReactionAdd(ch, "1", "⚠️"); restCode(err) != 10008 {
		t.Errorf("react to unknown message: %v, want 10008", err)
	}
	if err := sess.ChannelTyping(ch); err != nil {
		t.Errorf("typing: %v", err)
	}
	touched := srv.Touched()
	for _, route := range []string{"PUT /channels/{c}/pins/{m}", "PUT /channels/{c}/messages/{m}/reactions/{e}/@me", "POST /channels/{c}/typing"} {
		if touched[route] == 0 {
			t.Errorf("route %s not touched: %v", route, touched)
		}
	}
}

func TestWebhookExecute(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{})
	sess := openSession(t, srv)
	created := events[*discordgo.MessageCreate](sess)
	ch := generalID(t, srv)

	wh, err := sess.WebhookCreate(ch, "msn-bob", "")
	if err != nil {
		t.Fatalf("WebhookCreate: %v", err)
	}
	if wh.Token == "" || wh.ChannelID != ch || wh.ApplicationID != srv.ApplicationID() {
		t.Errorf("webhook = %+v", wh)
	}
	list, err := sess.ChannelWebhooks(ch)
	if err != nil || len(list) != 1 {
		t.Fatalf("ChannelWebhooks = %v, %v", list, err)
	}
	if all, err := sess.GuildWebhooks(srv.GuildID()); err != nil || len(all) != 1 {
		t.Fatalf("GuildWebhooks = %v, %v", all, err)
	}

	params := &discordgo.WebhookParams{
		Content:         "hi <@" + srv.OwnerID() + ">",
		Username:        "Bob (MSN)",
		AvatarURL:       "https://cdn.example/bob.png",
		AllowedMentions: &discordgo.MessageAllowedMentions{Parse: []discordgo.AllowedMentionType{}},
	}
	m, err := sess.WebhookExecute(wh.ID, wh.Token, true, params)
	if err != nil {
		t.Fatalf("WebhookExecute: %v", err)
	}
	if m.Author.Username != "Bob (MSN)" || m.WebhookID != wh.ID || m.Author.ID != wh.ID || !m.Author.Bot {
		t.Errorf("executed message author %+v webhook %q", m.Author, m.WebhookID)
	}
	ev := wait(t, created, "webhook MESSAGE_CREATE", func(e *discordgo.MessageCreate) bool { return e.ID == m.ID })
	if ev.WebhookID != wh.ID || ev.Member != nil {
		t.Errorf("event webhook_id %q member %v", ev.WebhookID, ev.Member)
	}
	stored := srv.Messages(ch)[0]
	if stored.AvatarURL != "https://cdn.example/bob.png" || stored.AllowedMentions == nil || stored.AllowedMentions.Parse == nil || len(stored.AllowedMentions.Parse) != 0 {
		t.Errorf("recorded avatar %q allowed_mentions %+v", stored.AvatarURL, stored.AllowedMentions)
	}

	if m2, err := sess.WebhookExecute(wh.ID, wh.Token, false, &discordgo.WebhookParams{Content: "no wait"}); err != nil || m2 != nil {
		t.Errorf("execute without wait = %v, %v; want nil, nil", m2, err)
	}
	edit := "edited"
	if em, err := sess.WebhookMessageEdit(wh.ID, wh.Token, m.ID, &discordgo.WebhookEdit{Content: &edit}); err != nil || em.Content != "edited" {
		t.Errorf("WebhookMessageEdit = %v, %v", em, err)
	}
	if err := sess.WebhookMessageDelete(wh.ID, wh.Token, m.ID); err != nil {
		t.Errorf("WebhookMessageDelete: %v", err)
	}
	if _, err := sess.WebhookExecute(wh.ID, wh.Token, true, &discordgo.WebhookParams{Content: "x", Username: "discord staff"}); restCode(err) != 50035 {
		t.Errorf("username with discord: %v, want 50035", err)
	}
	if _, err := sess.WebhookExecute(wh.ID, "wrong", true, &discordgo.WebhookParams{Content: "x"}); restCode(err) != 50027 {
		t.Errorf("wrong token: %v, want 50027", err)
	}
	if _, err := sess.WebhookEdit(wh.ID, "msn-bob", dataURI("image/png", pngHeader), ""); err != nil {
		t.Errorf("WebhookEdit: %v", err)
	}

	if !srv.DeleteWebhook(wh.ID) {
		t.Fatal("DeleteWebhook: not found")
	}
	if _, err := sess.WebhookExecute(wh.ID, wh.Token, true, &discordgo.WebhookParams{Content: "after delete"}); restCode(err) != 10015 {
		t.Errorf("execute after delete: %v, want 10015", err)
	}
	if len(srv.Webhooks()) != 0 {
		t.Errorf("webhooks after delete = %v", srv.Webhooks())
	}
	wh2, err := sess.WebhookCreate(ch, "msn-bob", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.WebhookDelete(wh2.ID); err != nil {
		t.Errorf("WebhookDelete: %v", err)
	}
	if err := sess.WebhookDelete(wh2.ID); restCode(err) != 10015 {
		t.Errorf("second WebhookDelete: %v, want 10015", err)
	}
}

func TestWebhookFileAndLimit(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{})
	sess := newSession(t, srv, "")
	ch := generalID(t, srv)
	wh, err := sess.WebhookCreate(ch, "msn", "")
	if err != nil {
		t.Fatal(err)
	}
	m, err := sess.WebhookExecute(wh.ID, wh.Token, true, &discordgo.WebhookParams{
		Username: "Bob", Files: []*discordgo.File{{Name: "pic.png", Reader: bytes.NewReader([]byte("\x89PNG\r\n\x1a\n"))}},
	})
	if err != nil {
		t.Fatalf("execute with file: %v", err)
	}
	if len(m.Attachments) != 1 || m.Attachments[0].ContentType != "image/png" {
		t.Errorf("attachments = %+v", m.Attachments)
	}
	for i := 1; i < maxChannelWebhooks; i++ {
		if _, err := sess.WebhookCreate(ch, "msn", ""); err != nil {
			t.Fatalf("webhook %d: %v", i, err)
		}
	}
	if _, err := sess.WebhookCreate(ch, "msn", ""); restCode(err) != 30007 {
		t.Errorf("16th webhook: %v, want 30007", err)
	}
}

// withTimeout runs f and fails the test if it does not return in time, which is how a request
// stuck in discordgo's rate limiter shows.
func withTimeout(t *testing.T, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(waitTimeout):
		t.Fatalf("%s blocked", what)
		return nil
	}
}

func TestTopicEditLimit(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{})
	sess := newSession(t, srv, "")
	cat := srv.ChannelByName("Text Channels").ID
	ch, err := sess.GuildChannelCreate(srv.GuildID(), "bob", discordgo.ChannelTypeGuildText)
	if err != nil {
		t.Fatal(err)
	}
	topic := func(s string) error {
		_, err := sess.RequestWithBucketID("PATCH", discordgo.EndpointChannel(ch.ID), map[string]string{"topic": s},
			discordgo.EndpointChannel(ch.ID)+"#topic", discordgo.WithRetryOnRatelimit(false))
		return err
	}
	for _, s := range []string{"🟢 Online", "🟡 Away"} {
		if err := withTimeout(t, "topic edit", func() error { return topic(s) }); err != nil {
			t.Fatalf("topic %q: %v", s, err)
		}
	}
	err = withTimeout(t, "third topic edit", func() error { return topic("🔴 Busy") })
	var rl *discordgo.RateLimitError
	if !errors.As(err, &rl) {
		t.Fatalf("third edit: %v, want *RateLimitError", err)
	}
	if rl.RetryAfter < 9*time.Minute || rl.RetryAfter > 10*time.Minute {
		t.Errorf("retry_after = %v, want seconds up to 10 minutes", rl.RetryAfter)
	}
	if got := srv.Channel(ch.ID).Topic; got != "🟡 Away" {
		t.Errorf("topic = %q, the rejected edit must change nothing", got)
	}
	// The default bucket of the channel stays free: reads and parent moves go through.
	if err := withTimeout(t, "Channel", func() error { _, err := sess.Channel(ch.ID); return err }); err != nil {
		t.Errorf("Channel: %v", err)
	}
	if err := withTimeout(t, "parent move", func() error {
		_, err := sess.ChannelEdit(ch.ID, &discordgo.ChannelEdit{ParentID: cat})
		return err
	}); err != nil {
		t.Errorf("parent move: %v", err)
	}
	if n := len(srv.TopicEdits(ch.ID)); n != 2 {
		t.Errorf("TopicEdits = %d, want 2", n)
	}
	if srv.Count429() != 1 || srv.Routes429()["PATCH /channels/{c}"] != 1 {
		t.Errorf("429s = %d %v", srv.Count429(), srv.Routes429())
	}

	// On the wire: float seconds in the body, whole seconds in Retry-After, bucket headers.
	resp, body := raw(t, srv, "PATCH", "/channels/"+ch.ID, botAuth(srv), "application/json", []byte(`{"name":"x"}`))
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("name edit status = %d", resp.StatusCode)
	}
	if ra, ok := body["retry_after"].(float64); !ok || ra < 500 || ra > 600 || body["global"] != false {
		t.Errorf("429 body = %v", body)
	}
	for _, h := range []string{"Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "X-RateLimit-Reset-After", "X-RateLimit-Bucket"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("429 lacks %s", h)
		}
	}
}

func TestInjected429IsRetried(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{})
	sess := newSession(t, srv, "")
	ch := generalID(t, srv)
	srv.Inject429("POST /channels/{c}/messages", 2, 20*time.Millisecond)
	m, err := sess.ChannelMessageSend(ch, "eventually")
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	if m.Content != "eventually" || srv.Count429() != 2 || srv.Touched()["POST /channels/{c}/messages"] != 3 {
		t.Errorf("429s %d, touched %v", srv.Count429(), srv.Touched())
	}
	if srv.Injected429() != 2 {
		t.Errorf("Injected429 = %d, want 2", srv.Injected429())
	}
	srv.InjectGlobal429("*", 1, 20*time.Millisecond)
	if _, err := sess.Channel(ch); err != nil {
		t.Errorf("after a global 429: %v", err)
	}
	srv.Inject429("/channels/{c}", 1, time.Second)
	_, err = sess.Channel(ch, discordgo.WithRetryOnRatelimit(false))
	var rl *discordgo.RateLimitError
	if !errors.As(err, &rl) || rl.RetryAfter != time.Second {
		t.Errorf("without retry: %v", err)
	}
}

func TestRateLimitBuckets(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{
		RouteLimits: map[string]Limit{"POST /channels/{c}/messages": {2, time.Hour}},
		GlobalLimit: Limit{6, time.Hour},
	})
	ch := generalID(t, srv)
	post := func() (*http.Response, map[string]any) {
		return raw(t, srv, "POST", "/channels/"+ch+"/messages", botAuth(srv), "application/json", []byte(`{"content":"x"}`))
	}
	for i := 0; i < 2; i++ {
		resp, _ := post()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-RateLimit-Limit") != "2" || resp.Header.Get("X-RateLimit-Bucket") == "" {
			t.Fatalf("post %d: %d %v", i, resp.StatusCode, resp.Header)
		}
	}
	resp, body := post()
	if resp.StatusCode != http.StatusTooManyRequests || body["global"] != false || resp.Header.Get("X-RateLimit-Remaining") != "0" {
		t.Fatalf("third post: %d %v", resp.StatusCode, body)
	}
	// Another channel has its own bucket.
	other := srv.ChannelByName("Text Channels").ID
	if resp, _ := raw(t, srv, "GET", "/channels/"+other, botAuth(srv), "", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("other route: %d", resp.StatusCode)
	}
	// Requests 5 and 6 use up the global limit; the 7th is refused globally.
	raw(t, srv, "GET", "/users/@me", botAuth(srv), "", nil)
	raw(t, srv, "GET", "/users/@me", botAuth(srv), "", nil)
	resp, body = raw(t, srv, "GET", "/users/@me", botAuth(srv), "", nil)
	if resp.StatusCode != http.StatusTooManyRequests || body["global"] != true || resp.Header.Get("X-RateLimit-Global") != "true" {
		t.Errorf("global: %d %v %v", resp.StatusCode, body, resp.Header)
	}
	if srv.Count429() != 2 || srv.InvalidRequests() != 2 || srv.Injected429() != 0 {
		t.Errorf("Count429 = %d, invalid = %d, injected = %d", srv.Count429(), srv.InvalidRequests(), srv.Injected429())
	}
}

func TestHostileRequests(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{MaxBodyBytes: 1024})
	ch := generalID(t, srv)
	auth := botAuth(srv)
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	_ = mw.WriteField("payload_json", `{"content":`)
	_ = mw.Close()
	tests := []struct {
		name, method, path, auth, ctype, body string
		status, code                          int
	}{
		{"no auth", "GET", "/channels/" + ch, "", "", "", 401, 0},
		{"wrong token", "GET", "/channels/" + ch, "Bot nope", "", "", 401, 0},
		{"bad json", "POST", "/channels/" + ch + "/messages", auth, "application/json", "{nope", 400, 50109},
		{"json of the wrong shape", "PATCH", "/channels/" + ch, auth, "application/json", `[1,2]`, 400, 50109},
		{"wrong field type", "PATCH", "/channels/" + ch, auth, "application/json", `{"position":"x"}`, 400, 50035},
		{"huge body", "POST", "/channels/" + ch + "/messages", auth, "application/json", `{"content":"` + strings.Repeat("x", 2048) + `"}`, 413, 40005},
		{"broken multipart", "POST", "/channels/" + ch + "/messages", auth, mw.FormDataContentType(), mp.String(), 400, 50109},
		{"garbage multipart", "POST", "/channels/" + ch + "/messages", auth, "multipart/form-data; boundary=zz", "--zz\r\nnonsense", 400, 50035},
		{"unknown channel", "POST", "/channels/1/messages", auth, "application/json", `{"content":"x"}`, 404, 10003},
		{"category", "POST", "/channels/" + srv.ChannelByName("Text Channels").ID + "/messages", auth, "application/json", `{"content":"x"}`, 400, 50008},
		{"null embed", "POST", "/channels/" + ch + "/messages", auth, "application/json", `{"embeds":[null]}`, 400, 50035},
		{"bad components", "POST", "/channels/" + ch + "/messages", auth, "application/json", `{"content":"x","components":{"a":1}}`, 400, 50035},
		{"unknown route", "GET", "/nothing/here", auth, "", "", 404, 0},
		{"unknown interaction", "POST", "/interactions/1/x/callback", "", "application/json", `{"type":4,"data":{"content":"x"}}`, 404, 10062},
		{"callback not json", "POST", "/interactions/1/x/callback", "", "application/json", `]`, 400, 50109},
		{"unknown webhook", "POST", "/webhooks/1/x?wait=true", "", "application/json", `{"content":"x"}`, 404, 10015},
		{"bad emoji", "PUT", "/channels/" + ch + "/messages/1/reactions/a:b/@me", auth, "", "", 400, 10014},
		{"bad limit", "GET", "/channels/" + ch + "/messages?limit=1000", auth, "", "", 400, 50035},
		{"commands of another app", "PUT", "/applications/1/commands", auth, "application/json", `[]`, 403, 50001},
		{"command with a bad name", "PUT", "/applications/" + srv.ApplicationID() + "/guilds/" + srv.GuildID() + "/commands", auth, "application/json", `[{"name":"Log In","description":"x"}]`, 400, 50035},
	}
	for _, tc := range tests {
		resp, body := raw(t, srv, tc.method, tc.path, tc.auth, tc.ctype, []byte(tc.body))
		code, _ := body["code"].(float64)
		if resp.StatusCode != tc.status || int(code) != tc.code || body["message"] == nil {
			t.Errorf("%s: %d %v, want %d code %d", tc.name, resp.StatusCode, body, tc.status, tc.code)
		}
	}
	if resp, _ := raw(t, srv, "GET", "/channels/"+ch, auth, "", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("server unusable after hostile requests: %d", resp.StatusCode)
	}
	if len(srv.Requests()) < len(tests) {
		t.Errorf("request log has %d entries", len(srv.Requests()))
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{RouteLimits: map[string]Limit{"POST /channels/{c}/messages": {-1, 0}}, GlobalLimit: Limit{-1, 0}, Users: []*discordgo.User{{Username: "alice"}}})
	sess := openSession(t, srv)
	ch := generalID(t, srv)
	alice := srv.Users()[0].ID
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5 && ctx.Err() == nil; i++ {
				if _, err := sess.ChannelMessageSend(ch, "x", discordgo.WithContext(ctx)); err != nil {
					t.Errorf("send: %v", err)
					return
				}
				srv.InjectUserMessage(ch, alice, "y")
				_ = srv.Touched()
				_ = srv.Messages(ch)
				_ = srv.Channels()
			}
		}()
	}
	wg.Wait()
	if n := len(srv.Messages(ch)); n != 40 {
		t.Errorf("messages = %d, want 40", n)
	}
}
