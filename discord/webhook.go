package discord

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/bwmarrin/discordgo"
)

// Discord limits webhook executes per channel, whatever the webhook, to about 30 a minute; a
// post beyond answers 429, which counts toward the invalid requests that get an IP banned.
const (
	webhookPostsPerChannel = 30
	webhookPostWindow      = time.Minute
)

// fallbackUsername is the per-message username used when Discord refuses a contact's name
// and its plain form: always accepted.
const fallbackUsername = "MSN contact"

// hookPacer keeps webhook executes within a per-channel limit by making them wait for their
// turn, so that a burst of MSN messages queues instead of meeting 429s. Safe for concurrent
// use.
type hookPacer struct {
	limit  int
	window time.Duration
	now    func() time.Time

	mu   sync.Mutex
	sent map[string][]*time.Time // channel id → when its latest executes ended (zero: in flight)
}

func newHookPacer(limit int, window time.Duration, now func() time.Time) *hookPacer {
	return &hookPacer{limit: limit, window: window, now: now, sent: map[string][]*time.Time{}}
}

// wait blocks until channelID may take one more execute, then reserves it; call done once
// the request has ended. It fails only when ctx ends first. A reservation counts from the end
// of its request: Discord counts arrivals, which come before.
func (h *hookPacer) wait(ctx context.Context, channelID string) (done func(), err error) {
	for {
		h.mu.Lock()
		now := h.now()
		keep := h.sent[channelID][:0]
		var oldest time.Time
		for _, t := range h.sent[channelID] {
			if t.IsZero() || now.Sub(*t) < h.window {
				keep = append(keep, t)
				if !t.IsZero() && (oldest.IsZero() || t.Before(oldest)) {
					oldest = *t
				}
			}
		}
		h.sent[channelID] = keep
		if len(keep) < h.limit {
			slot := new(time.Time)
			h.sent[channelID] = append(keep, slot)
			h.mu.Unlock()
			return func() {
				h.mu.Lock()
				*slot = h.now()
				h.mu.Unlock()
			}, nil
		}
		h.mu.Unlock()
		delay := 50 * time.Millisecond // every slot in flight: look again shortly
		if !oldest.IsZero() {
			delay = oldest.Add(h.window).Sub(now) + time.Millisecond
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// forget drops a channel's history (the channel is gone).
func (h *hookPacer) forget(channelID string) {
	h.mu.Lock()
	delete(h.sent, channelID)
	h.mu.Unlock()
}

// executeWebhook posts params through webhook wh of channel chID, waiting for the channel's
// turn (see hookPacer). When Discord refuses the per-message username (50035 on "username"),
// the message goes under the name's plain form, then under fallbackUsername, rather than being
// lost; the name that worked is remembered for the next message.
func (f *Frontend) executeWebhook(ctx context.Context, chID string, wh *discordgo.Webhook, params *discordgo.WebhookParams) (*discordgo.Message, error) {
	names := []string{params.Username}
	if alt, ok := f.refusedNames.get(params.Username); ok {
		names = []string{alt}
	}
	if params.Username != "" {
		for _, alt := range []string{plainUsername(params.Username), fallbackUsername} {
			if alt != "" && !strings.EqualFold(alt, names[len(names)-1]) {
				names = append(names, alt)
			}
		}
	}
	var m *discordgo.Message
	var err error
	for i, name := range names {
		p := *params
		p.Username = name
		done, werr := f.hooks.wait(ctx, chID)
		if werr != nil {
			return nil, werr
		}
		rewind(p.Files) // a file's reader was read by an earlier attempt
		m, err = f.s.WebhookExecute(wh.ID, wh.Token, true, &p, discordgo.WithContext(ctx))
		done()
		if err == nil {
			if name != params.Username {
				f.refusedNames.put(params.Username, name)
			}
			return m, nil
		}
		if !refusedUsername(err) || i == len(names)-1 {
			break
		}
		f.log.Info().Str("channel_id", chID).Msg("Discord refused a contact's name as a webhook username, trying a plainer one")
	}
	return m, err
}

// refusedUsername reports a 50035 form error about a webhook's username.
func refusedUsername(err error) bool {
	var re *discordgo.RESTError
	return errors.As(err, &re) && re.Message != nil && re.Message.Code == discordgo.ErrCodeInvalidFormBody &&
		strings.Contains(string(re.ResponseBody), `"username"`)
}

// plainUsername keeps the letters and digits of ASCII, spaces, and ".-_()'" of name: a form
// Discord's unpublished name filters are less likely to refuse.
func plainUsername(name string) string {
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune(" .-_()'", r):
			b.WriteRune(r)
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}
