package discord

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/rs/zerolog"

	"github.com/msn-bridge/msn-bridge/discord/discordtest"
)

// TestRefusalsPauseTheAccount: the bot's role loses its permissions while the bridge runs, so
// creating a channel for a new contact is refused (403 50013). Twenty messages from that
// contact cost a handful of refused requests instead of two each, the owner is told once, and
// when an admin gives the permissions back every message is shown, in order, in the contact's
// channel.
func TestRefusalsPauseTheAccount(t *testing.T) {
	h := newHarness(t, harnessOpts{cfg: func(c *Config) { c.ForbiddenBackoff = time.Second }})
	h.login()
	if err := h.ms.BotSay(bob, alice, "first"); err != nil {
		t.Fatal(err)
	}
	h.waitFor("bob's message", func() bool {
		c := h.dc.ChannelByName("bob-at-example-com")
		return c != nil && len(h.webhookMessages(c.ID)) == 1
	})
	var rosterID string
	h.waitFor("the roster", func() bool {
		id, text := h.roster()
		rosterID = id
		return strings.Contains(text, "Bob")
	})
	notices := func(text string) (n int) {
		for _, m := range h.dc.Messages(rosterID) {
			if strings.Contains(m.Content, text) {
				n++
			}
		}
		return n
	}

	h.dc.SetBotPermissions(discordtest.NoPermissions)
	before := h.dc.InvalidRequests()
	const n = 20
	for i := range n {
		if err := h.ms.BotSay(carol, alice, fmt.Sprintf("m%02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	h.waitFor("the owner told of the refusal", func() bool { return notices("Discord refuses") == 1 })
	h.dc.SetBotPermissions(discordtest.DefaultBotPermissions)

	var carolCh string
	h.waitFor("carol's messages", func() bool {
		c := h.dc.ChannelByName("carol-at-example-com")
		if c == nil {
			return false
		}
		carolCh = c.ID
		return len(h.webhookMessages(c.ID)) == n
	})
	for i, m := range h.webhookMessages(carolCh) {
		if want := fmt.Sprintf("m%02d", i); m.Content != want {
			t.Errorf("message %d is %q, want %q", i, m.Content, want)
		}
	}
	if got := notices("Discord refuses"); got != 1 {
		t.Errorf("the owner was told %d times", got)
	}
	if notices("accepts the bridge's requests again") != 1 {
		t.Error("the owner was not told that the messages follow")
	}
	if got := h.dc.InvalidRequests() - before; got > 8 {
		t.Errorf("%d refused requests for %d messages", got, n)
	}
	for _, m := range h.dc.Messages(rosterID) {
		if strings.Contains(m.Content, "could not be shown") {
			t.Errorf("a message was given up: %q", m.Content)
		}
	}
}

// TestInvalidRequestBudget: once the budget of refused requests is spent, further requests
// wait instead of reaching Discord, while interaction callbacks (which a user waits on, and
// which Discord exempts) still go out.
func TestInvalidRequestBudget(t *testing.T) {
	h := newHarness(t, harnessOpts{cfg: func(c *Config) { c.InvalidRequestBudget = 10 }})
	h.dc.InjectFault("GET /channels/{c}", 100, http.StatusForbidden)
	get := func(ctx context.Context) error {
		_, err := h.fe.s.RequestWithBucketID("GET", discordgo.EndpointChannel(h.gen), nil, discordgo.EndpointChannel(h.gen),
			discordgo.WithContext(ctx))
		return err
	}
	for i := range 10 {
		if err := get(context.Background()); !forbidden(err) {
			t.Fatalf("request %d: %v, want 403", i, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := get(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("request over the budget: %v, want it held until its context ended", err)
	}
	if got := h.dc.InvalidRequests(); got != 10 {
		t.Errorf("Discord saw %d invalid requests, want 10", got)
	}
	if got := h.fe.InvalidRequests(); got != 10 {
		t.Errorf("the frontend counted %d invalid requests, want 10", got)
	}
	iid, tok := h.slash(h.eve, h.gen, "status", map[string]string{"state": "online"})
	if first, _ := h.answer(iid, tok); !first.Accepted {
		t.Errorf("interaction answer refused: %+v", first)
	}
}

// TestHiddenChannelPausesNotLoses: an admin hides a contact's channel from the bot (its
// requests there get 403 50001). Ten nudges cost a refused request or two instead of one each
// (and are not lost): the owner is told once, and when the admin shows the channel again every
// nudge is shown there.
func TestHiddenChannelPausesNotLoses(t *testing.T) {
	h := newHarness(t, harnessOpts{cfg: func(c *Config) { c.ForbiddenBackoff = time.Second }})
	h.login()
	if err := h.ms.BotSay(bob, alice, "first"); err != nil {
		t.Fatal(err)
	}
	var bobCh *discordgo.Channel
	h.waitFor("bob's message", func() bool {
		bobCh = h.dc.ChannelByName("bob-at-example-com")
		return bobCh != nil && len(h.webhookMessages(bobCh.ID)) == 1
	})
	var rosterID string
	h.waitFor("the roster", func() bool {
		id, text := h.roster()
		rosterID = id
		return strings.Contains(text, "Bob")
	})
	shown := h.dc.Channel(bobCh.ID).PermissionOverwrites
	var hidden []*discordgo.PermissionOverwrite
	for _, o := range shown {
		if o.ID != h.dc.BotID() {
			hidden = append(hidden, o)
		}
	}
	h.dc.SetChannelOverwrites(bobCh.ID, hidden)
	before := h.dc.InvalidRequests()
	const n = 10
	for range n {
		if err := h.ms.BotNudge(bob, alice); err != nil {
			t.Fatal(err)
		}
	}
	h.waitFor("the owner told of the refusal", func() bool {
		for _, m := range h.dc.Messages(rosterID) {
			if strings.Contains(m.Content, "Discord refuses") && strings.Contains(m.Content, "cannot see a channel") {
				return true
			}
		}
		return false
	})
	h.dc.SetChannelOverwrites(bobCh.ID, shown)
	nudges := func() (k int) {
		for _, m := range h.dc.Messages(bobCh.ID) {
			if strings.Contains(m.Content, "sent you a nudge") {
				k++
			}
		}
		return k
	}
	h.waitFor("every nudge", func() bool { return nudges() == n })
	if got := h.dc.InvalidRequests() - before; got > 5 {
		t.Errorf("%d refused requests for %d nudges", got, n)
	}
}

// TestBudgetHoldIsNotTimedOut: a request the invalid-request budget holds waits for its turn
// however long its context allows; the HTTP client's timeout counts only from when it is sent.
// Before, a hold longer than that timeout failed the request in the queue, and a failure report
// held so was lost.
func TestBudgetHoldIsNotTimedOut(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	budget := newInvalidBudget(1, zerolog.Nop())
	budget.window = 1500 * time.Millisecond
	budget.note(&http.Response{StatusCode: http.StatusForbidden, Header: http.Header{}})
	client := withBudget(&http.Client{Timeout: 300 * time.Millisecond}, budget)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/channels/1/messages", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("a request held by the budget failed: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil || string(body) != "ok" {
		t.Errorf("body %q, %v", body, err)
	}
	if budget.Count() != 0 {
		t.Errorf("the budget still counts %d invalid answers after its window", budget.Count())
	}
}
