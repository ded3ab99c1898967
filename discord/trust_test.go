package discord

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/msn-bridge/msn-bridge/bridge"
)

// TestSplitCapsParts cuts a huge message into at most the configured number of parts, the last
// one saying how much was left out, and a message that fits is untouched.
func TestSplitCapsParts(t *testing.T) {
	text := strings.Repeat("0123456789", 100_000) // 1,000,000 characters, no break
	parts := splitMessageN(text, 5)
	if len(parts) != 5 {
		t.Fatalf("%d parts, want 5", len(parts))
	}
	shown := 0
	for i, p := range parts {
		if n := utf8.RuneCountInString(p); n > maxMessageLen || n == 0 {
			t.Fatalf("part %d has %d characters", i, n)
		}
		if i < 4 {
			shown += utf8.RuneCountInString(p)
		}
	}
	last := parts[4]
	body, note, ok := strings.Cut(last, "\n*… message truncated, ")
	if !ok || !strings.HasSuffix(note, " characters not shown.*") {
		t.Fatalf("last part does not end with the truncation note: %q", last[max(0, len(last)-80):])
	}
	shown += utf8.RuneCountInString(body)
	hidden, err := strconv.Atoi(strings.TrimSuffix(note, " characters not shown.*"))
	if err != nil || shown+hidden != len(text) {
		t.Fatalf("shown %d + hidden %q != %d", shown, note, len(text))
	}
	if got := splitMessageN(strings.Repeat("a", 2*maxMessageLen), 2); len(got) != 2 || strings.Contains(got[1], "truncated") {
		t.Fatalf("a message of exactly two parts was cut: %d parts", len(got))
	}
}

// TestLongMessageBoundedPosts shows an MSN message of twenty posts' worth as at most
// max_parts_per_message webhook posts, the last saying how much was not shown.
func TestLongMessageBoundedPosts(t *testing.T) {
	h := newHarness(t, harnessOpts{cfg: func(c *Config) { c.MaxPartsPerMessage = 3 }})
	h.login()
	acc := h.core.Account(alice)
	huge := strings.Repeat("spam ", 20*maxMessageLen/5)
	if err := h.fe.HandleEvent(context.Background(), acc, bridge.Message{
		ID: "huge", Chat: bridge.DirectChat(bob), Sender: bob, SenderName: "Bob", Text: huge}); err != nil {
		t.Fatal(err)
	}
	c := h.dc.ChannelByName("bob-at-example-com")
	if c == nil {
		t.Fatal("no channel for bob")
	}
	msgs := h.webhookMessages(c.ID)
	if len(msgs) != 3 {
		t.Fatalf("%d posts for one message, want 3", len(msgs))
	}
	if !strings.Contains(msgs[2].Content, "message truncated") {
		t.Fatalf("last post does not say the message was truncated: %q", msgs[2].Content[len(msgs[2].Content)-80:])
	}
}

// BenchmarkSplitMessage splits 64 KiB and 1 MiB without a cap: the time per byte is the same
// for both (the split is linear), which ns/byte shows.
func BenchmarkSplitMessage(b *testing.B) {
	for _, size := range []int{64 << 10, 1 << 20} {
		text := strings.Repeat("héllo wörld\n", size/14)
		b.Run(strconv.Itoa(size>>10)+"KiB", func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				if len(splitMessage(text)) == 0 {
					b.Fatal("no parts")
				}
			}
		})
	}
}
