package discordtest

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/bwmarrin/discordgo"
)

// pngHeader is the start of a PNG file: enough for content sniffing.
var pngHeader = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00")

func dataURI(mime string, data []byte) string {
	return "data:" + mime + ";base64," + base64.StdEncoding.EncodeToString(data)
}

// TestWebhookAvatarDataURI: a webhook's avatar is set with a data URI of a PNG, JPEG, GIF or
// WebP image of at most 10 MiB whose content matches its type, and removed with null; anything
// else is refused with 50035 on "avatar" and changes nothing.
func TestWebhookAvatarDataURI(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{})
	sess := newSession(t, srv, "")
	wh, err := sess.WebhookCreate(generalID(t, srv), "hook", "")
	if err != nil {
		t.Fatalf("WebhookCreate: %v", err)
	}
	png := append(bytes.Clone(pngHeader), "rest of the picture"...)
	edited, err := sess.WebhookEdit(wh.ID, "hook", dataURI("image/png", png), "")
	if err != nil {
		t.Fatalf("WebhookEdit with a PNG: %v", err)
	}
	if edited.Avatar == "" {
		t.Error("the webhook has no avatar hash after the edit")
	}
	if got, mime, ok := srv.WebhookAvatar(wh.ID); !ok || mime != "image/png" || !bytes.Equal(got, png) {
		t.Fatalf("stored avatar %q %q %v", got, mime, ok)
	}

	huge := append(bytes.Clone(pngHeader), make([]byte, maxAvatarBytes)...)
	refused := map[string]string{
		"not a data URI":        `"https://example.com/a.png"`,
		"not base64":            `"data:image/png,` + string(pngHeader[1:4]) + `"`,
		"not an image type":     `"` + dataURI("text/plain", []byte("hello")) + `"`,
		"content is not PNG":    `"` + dataURI("image/png", []byte("hello, not a picture")) + `"`,
		"bad base64":            `"data:image/png;base64,@@@@"`,
		"empty":                 `"data:image/png;base64,"`,
		"over 10 MiB":           `"` + dataURI("image/png", huge) + `"`,
		"not a string":          `42`,
		"JPEG declared, PNG in": `"` + dataURI("image/jpeg", png) + `"`,
	}
	for name, avatar := range refused {
		resp, body := raw(t, srv, "PATCH", "/webhooks/"+wh.ID, botAuth(srv), "application/json",
			[]byte(`{"avatar":`+avatar+`}`))
		if resp.StatusCode != http.StatusBadRequest || body["code"] != float64(50035) {
			t.Errorf("%s: %d %v, want 400 with code 50035", name, resp.StatusCode, body)
			continue
		}
		if errs, _ := body["errors"].(map[string]any); errs["avatar"] == nil {
			t.Errorf("%s: errors %v do not name the avatar", name, body["errors"])
		}
	}
	if got, _, ok := srv.WebhookAvatar(wh.ID); !ok || !bytes.Equal(got, png) {
		t.Error("a refused edit changed the avatar")
	}

	// null removes it.
	resp, body := raw(t, srv, "PATCH", "/webhooks/"+wh.ID, botAuth(srv), "application/json", []byte(`{"avatar":null}`))
	if resp.StatusCode != http.StatusOK || body["avatar"] != nil && body["avatar"] != "" {
		t.Fatalf("remove avatar: %d %v", resp.StatusCode, body)
	}
	if _, _, ok := srv.WebhookAvatar(wh.ID); ok {
		t.Error("the avatar is still set after null")
	}
}

// TestUploadCapPerFile: a file over the guild's upload limit, on a webhook execute or a channel
// message, is refused with 413 and code 40005 and posts nothing; one at the limit goes through
// and is served back from its attachment URL.
func TestUploadCapPerFile(t *testing.T) {
	t.Parallel()
	const limit = 64 << 10
	srv := newServer(t, Options{MaxFileBytes: limit})
	sess := newSession(t, srv, "")
	gen := generalID(t, srv)
	wh, err := sess.WebhookCreate(gen, "hook", "")
	if err != nil {
		t.Fatalf("WebhookCreate: %v", err)
	}
	file := func(n int) []*discordgo.File {
		return []*discordgo.File{{Name: "big.bin", ContentType: "application/octet-stream", Reader: bytes.NewReader(make([]byte, n))}}
	}
	tooLarge := func(what string, err error) {
		t.Helper()
		var re *discordgo.RESTError
		if !errors.As(err, &re) || re.Response.StatusCode != http.StatusRequestEntityTooLarge || restCode(err) != 40005 {
			t.Errorf("%s over the limit: %v, want 413 with code 40005", what, err)
		}
	}
	_, err = sess.WebhookExecute(wh.ID, wh.Token, true, &discordgo.WebhookParams{Files: file(limit + 1)})
	tooLarge("webhook execute", err)
	_, err = sess.ChannelMessageSendComplex(gen, &discordgo.MessageSend{Files: file(limit + 1)})
	tooLarge("channel message", err)
	if n := len(srv.Messages(gen)); n != 0 {
		t.Fatalf("%d messages posted by refused uploads", n)
	}

	m, err := sess.WebhookExecute(wh.ID, wh.Token, true, &discordgo.WebhookParams{Files: file(limit)})
	if err != nil {
		t.Fatalf("webhook execute at the limit: %v", err)
	}
	if len(m.Attachments) != 1 || m.Attachments[0].Filename != "big.bin" || m.Attachments[0].Size != limit {
		t.Fatalf("attachments %+v", m.Attachments)
	}
	resp, err := http.Get(m.Attachments[0].URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || len(got) != limit {
		t.Fatalf("download: %d, %d bytes", resp.StatusCode, len(got))
	}
}

// TestUploadsAndWebhookEditsNeedPermissions: the bot's message with a file needs Attach Files
// (one without a file does not, nor a webhook's); editing a webhook needs Manage Webhooks.
func TestUploadsAndWebhookEditsNeedPermissions(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{})
	sess := newSession(t, srv, "")
	gen := generalID(t, srv)
	wh, err := sess.WebhookCreate(gen, "hook", "")
	if err != nil {
		t.Fatalf("WebhookCreate: %v", err)
	}
	file := func() []*discordgo.File {
		return []*discordgo.File{{Name: "a.txt", ContentType: "text/plain", Reader: bytes.NewReader([]byte("a"))}}
	}
	deny := func(perm int64) {
		srv.SetChannelOverwrites(gen, []*discordgo.PermissionOverwrite{{ID: srv.BotID(), Type: discordgo.PermissionOverwriteTypeMember, Deny: perm}})
	}
	deny(discordgo.PermissionAttachFiles)
	if _, err := sess.ChannelMessageSendComplex(gen, &discordgo.MessageSend{Content: "x", Files: file()}); restCode(err) != 50013 {
		t.Errorf("file without Attach Files: %v, want 50013", err)
	}
	if _, err := sess.ChannelMessageSendComplex(gen, &discordgo.MessageSend{Content: "x"}); err != nil {
		t.Errorf("text without Attach Files: %v", err)
	}
	if _, err := sess.WebhookExecute(wh.ID, wh.Token, true, &discordgo.WebhookParams{Files: file()}); err != nil {
		t.Errorf("webhook file without the bot's Attach Files: %v", err)
	}
	deny(discordgo.PermissionManageWebhooks)
	if _, err := sess.WebhookEdit(wh.ID, "hook", dataURI("image/png", pngHeader), ""); restCode(err) != 50013 {
		t.Errorf("webhook edit without Manage Webhooks: %v, want 50013", err)
	}
	deny(0)
	if _, err := sess.WebhookEdit(wh.ID, "hook", dataURI("image/png", pngHeader), ""); err != nil {
		t.Errorf("webhook edit: %v", err)
	}
}
