package matrix

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"maunium.net/go/mautrix/format"

	"github.com/msn-bridge/msn-bridge/bridge"
)

func TestEscapeMarkdownRendersLiterally(t *testing.T) {
	for _, s := range []string{
		hostileName,
		hostileHandle,
		hostilePSM,
		"<https://evil.example> &amp; &#60;b&#62; \\*x\\* ~~gone~~ ||spoiler|| | a | b |",
		"# heading", "> quote", "- item", "1. item", "```fence```", "---",
		"line\nbreak\r\nand\ttab",
	} {
		c := format.RenderMarkdown("Error: "+escapeMarkdown(s, 0), true, false)
		want := "Error: " + bridge.CleanLine(s, 0)
		if c.Body != want {
			t.Errorf("%q: body %q, want %q", s, c.Body, want)
		}
		if c.FormattedBody != "" {
			if got := htmlText(t, s, c.FormattedBody); got != want {
				t.Errorf("%q: formatted body %q shows %q, want %q", s, c.FormattedBody, got, want)
			}
		}
		if c.Mentions != nil && (len(c.Mentions.UserIDs) > 0 || c.Mentions.Room) {
			t.Errorf("%q: mentions %+v", s, c.Mentions)
		}
	}
	if got := escapeMarkdown(strings.Repeat("é", 500), 10); utf8.RuneCountInString(got) != 10 {
		t.Errorf("escapeMarkdown did not cap: %q", got)
	}
}

func TestHumanErrorIsLiteral(t *testing.T) {
	msg := humanError(errors.New(hostileName))
	c := format.RenderMarkdown("Failed: "+msg, true, false)
	// Links in an error's text are scrubbed (they may carry a ticket), the rest is literal.
	if want := "Failed: " + bridge.CleanLine(bridge.ScrubURLs(hostileName), bridge.MaxShownName); c.Body != want {
		t.Errorf("body %q, want %q", c.Body, want)
	}
	if c.FormattedBody != "" {
		htmlText(t, "error reply", c.FormattedBody)
	}
}

func TestTruncateBody(t *testing.T) {
	for _, tc := range []struct {
		name  string
		text  string
		limit int
		cut   bool
	}{
		{"short", "hello", 1024, false},
		{"exact", strings.Repeat("a", 1024), 1024, false},
		{"one over", strings.Repeat("a", 1025), 1024, true},
		{"multibyte", strings.Repeat("日本", 4000), 1024, true},
		{"escapes count", strings.Repeat(`"\`, 400), 1024, true}, // 800 bytes, 1600 in JSON
		{"newlines", strings.Repeat("a\n", 600), 1024, true},
		{"emoji", strings.Repeat("👩‍💻", 1000), 2048, true},
		{"no cap", strings.Repeat("a", 100000), 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := truncateBody(tc.text, tc.limit)
			if !utf8.ValidString(got) {
				t.Fatalf("result is not valid UTF-8")
			}
			m := truncatedRe.FindStringSubmatch(got)
			if !tc.cut {
				if got != tc.text {
					t.Fatalf("text changed though it fits")
				}
				return
			}
			if m == nil {
				t.Fatalf("no truncation note at the end of …%q", got[max(0, len(got)-80):])
			}
			if n := encodedLen(got); n > tc.limit {
				t.Fatalf("result takes %d bytes, over the %d limit", n, tc.limit)
			}
			kept := strings.TrimSuffix(got, m[0])
			if !strings.HasPrefix(tc.text, kept) || len(kept) < tc.limit/4 {
				t.Fatalf("kept %d bytes, not a long prefix", len(kept))
			}
			if want := utf8.RuneCountInString(tc.text) - utf8.RuneCountInString(kept); m[1] != strconv.Itoa(want) {
				t.Fatalf("note says %s characters not shown, want %d", m[1], want)
			}
		})
	}
}

func TestFormatToMatrixFitsOneEvent(t *testing.T) {
	// A styled message at the cap whose escaping would make the formatted body too large keeps
	// its text and drops the style.
	text := truncateBody(strings.Repeat(`<&">`, 20000), maxMessageSize)
	c := formatToMatrix(text, bridge.Format{Bold: true})
	if c.Body != text {
		t.Fatal("body changed")
	}
	if n := encodedLen(c.Body) + encodedLen(c.FormattedBody); n > maxEventText {
		t.Fatalf("body and formatted body take %d bytes, over %d", n, maxEventText)
	}
	if c.Mentions == nil || len(c.Mentions.UserIDs) != 0 || c.Mentions.Room {
		t.Fatalf("mentions %+v, want explicitly none", c.Mentions)
	}
	// A short styled one keeps its style.
	if c = formatToMatrix("<hi>", bridge.Format{Bold: true}); c.FormattedBody != "<b>&lt;hi&gt;</b>" {
		t.Fatalf("formatted body %q", c.FormattedBody)
	}
	// Black is no style.
	if c = formatToMatrix("hi", bridge.Format{Color: "000000"}); c.Format != "" || c.FormattedBody != "" {
		t.Fatalf("black text has a formatted body %q", c.FormattedBody)
	}
}

func TestConfigMaxMessageSize(t *testing.T) {
	for _, v := range []int{0, -1, minMessageSize - 1, maxMessageSize + 1} {
		c := DefaultConfig()
		c.MaxMessageSize = v
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "max_message_size") {
			t.Errorf("max_message_size %d: %v", v, err)
		}
	}
	c := DefaultConfig()
	c.MaxMessageSize = maxMessageSize
	must(t, c.Validate())
}
