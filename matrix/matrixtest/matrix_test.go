package matrixtest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
)

// TestSetDown checks that a request made while the fake is down waits for it to come back and
// is then recorded once, and that one whose ctx ends first fails and records nothing.
func TestSetDown(t *testing.T) {
	fm := New()
	bot := fm.BotIntent()
	send := func(ctx context.Context, body string) error {
		_, err := bot.SendMessage(ctx, "!r:test", event.EventMessage,
			&event.Content{Parsed: &event.MessageEventContent{MsgType: event.MsgText, Body: body}}, nil)
		return err
	}

	fm.SetDown(true)
	fm.SetDown(true) // idempotent
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := send(ctx, "given up"); !errors.Is(err, ErrDown) {
		t.Fatalf("send while down with an ending ctx: %v, want ErrDown", err)
	}

	done := make(chan error, 1)
	go func() { done <- send(context.Background(), "held") }()
	select {
	case err := <-done:
		t.Fatalf("send returned while down: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	if n := len(fm.Messages("")); n != 0 {
		t.Fatalf("%d messages recorded while down, want 0", n)
	}
	fm.SetDown(false)
	fm.SetDown(false) // idempotent
	if err := <-done; err != nil {
		t.Fatalf("held send: %v", err)
	}
	msgs := fm.Messages("")
	if len(msgs) != 1 || msgs[0].Content.AsMessage().Body != "held" {
		t.Fatalf("messages after the outage: %+v, want only the held one", msgs)
	}
}

// TestEventSizeLimit checks that content over 64 KiB of JSON is refused with M_TOO_LARGE and
// not recorded, measured as canonical JSON (a "<" is one byte, not encoding/json's \u003c).
func TestEventSizeLimit(t *testing.T) {
	fm := New()
	bot := fm.BotIntent()
	for _, tc := range []struct {
		name string
		body string
		ok   bool
	}{
		{"small", "hi", true},
		{"angle brackets", strings.Repeat("<", 60<<10), true},
		{"over the limit", strings.Repeat("x", 65<<10), false},
		{"quotes doubled by escaping", strings.Repeat(`"`, 40<<10), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(fm.Messages(""))
			_, err := bot.SendMessage(context.Background(), "!r:test", event.EventMessage,
				&event.Content{Parsed: &event.MessageEventContent{MsgType: event.MsgText, Body: tc.body}}, nil)
			recorded := len(fm.Messages("")) - before
			if tc.ok && (err != nil || recorded != 1) {
				t.Fatalf("send: %v, %d recorded; want accepted", err, recorded)
			}
			if !tc.ok && (!errors.Is(err, mautrix.MTooLarge) || recorded != 0) {
				t.Fatalf("send: %v, %d recorded; want M_TOO_LARGE and nothing recorded", err, recorded)
			}
		})
	}
}
