package discordtest

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
)

// TestAttachmentURLsAreSignedAndExpire: as on Discord's CDN, an attachment URL carries ex, is
// and hm, works only as handed out, and stops working once ex has passed.
func TestAttachmentURLsAreSignedAndExpire(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{AttachmentURLTTL: time.Second})
	sess := newSession(t, srv, "")
	m, err := sess.ChannelMessageSendComplex(generalID(t, srv), &discordgo.MessageSend{
		Files: []*discordgo.File{{Name: "note.txt", ContentType: "text/plain", Reader: strings.NewReader("contents")}},
	})
	if err != nil {
		t.Fatalf("send file: %v", err)
	}
	signed := m.Attachments[0].URL
	u, err := url.Parse(signed)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if q.Get("ex") == "" || q.Get("is") == "" || q.Get("hm") == "" {
		t.Fatalf("attachment URL %s is not signed", signed)
	}
	get := func(link string) (int, string) {
		resp, err := http.Get(link)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(signed); code != 200 || body != "contents" {
		t.Fatalf("signed URL: %d %q", code, body)
	}
	stripped := *u
	stripped.RawQuery = ""
	q.Set("ex", "7fffffff")
	extended := *u
	extended.RawQuery = q.Encode()
	for name, link := range map[string]string{"without parameters": stripped.String(), "with ex changed": extended.String()} {
		if code, _ := get(link); code != http.StatusNotFound {
			t.Errorf("URL %s: %d, want 404", name, code)
		}
	}
	time.Sleep(2100 * time.Millisecond) // past ex, which has a resolution of a second
	if code, body := get(signed); code != http.StatusNotFound || !strings.Contains(body, "no longer available") {
		t.Errorf("expired URL: %d %q, want 404", code, body)
	}
}
