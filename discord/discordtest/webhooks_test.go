package discordtest

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
)

// TestWebhookUsernameRules: Discord refuses per-message usernames that break its naming rules,
// and others besides (RefuseUsernames), with 50035 on the username field.
func TestWebhookUsernameRules(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{})
	srv.RefuseUsernames("Forbidden")
	sess := newSession(t, srv, "")
	wh, err := sess.WebhookCreate(generalID(t, srv), "hook", "")
	if err != nil {
		t.Fatalf("WebhookCreate: %v", err)
	}
	tests := []struct {
		name string
		ok   bool
	}{
		{"Bob (MSN)", true},
		{"bob@example.com", false},
		{"#1 fan", false},
		{"re: hi", false},
		{"```code", false},
		{"my Discord name", false},
		{"Clyde", false},
		{"Everyone", false},
		{"   ", false},
		{"a forbidden name", false},
	}
	for _, tc := range tests {
		_, err := sess.WebhookExecute(wh.ID, wh.Token, true, &discordgo.WebhookParams{Content: "x", Username: tc.name})
		var re *discordgo.RESTError
		switch {
		case tc.ok && err != nil:
			t.Errorf("%q refused: %v", tc.name, err)
		case !tc.ok && (!errors.As(err, &re) || restCode(err) != 50035 || re.Response.StatusCode != http.StatusBadRequest):
			t.Errorf("%q: %v, want 400 with code 50035", tc.name, err)
		}
	}
}

// TestWebhookChannelLimit: webhook executes are limited per channel across all of its webhooks.
func TestWebhookChannelLimit(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{WebhookChannelLimit: Limit{3, time.Minute}})
	sess := newSession(t, srv, "")
	ch := generalID(t, srv)
	var hooks []*discordgo.Webhook
	for _, name := range []string{"one", "two"} {
		wh, err := sess.WebhookCreate(ch, name, "")
		if err != nil {
			t.Fatalf("WebhookCreate: %v", err)
		}
		hooks = append(hooks, wh)
	}
	for i := 0; i < 4; i++ {
		wh := hooks[i%2]
		_, err := sess.WebhookExecute(wh.ID, wh.Token, true, &discordgo.WebhookParams{Content: "x"},
			discordgo.WithRetryOnRatelimit(false))
		var rl *discordgo.RateLimitError
		if i < 3 && err != nil {
			t.Fatalf("execute %d: %v", i+1, err)
		}
		if i == 3 && !errors.As(err, &rl) {
			t.Fatalf("execute %d = %v, want 429", i+1, err)
		}
	}
	if n := srv.Routes429()["POST /webhooks/{w}/{tok}"]; n != 1 {
		t.Errorf("%d webhook 429s, want 1", n)
	}
}
