package matrix

import (
	"errors"
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
	if want := "Failed: " + cleanedName; c.Body != want {
		t.Errorf("body %q, want %q", c.Body, want)
	}
	if c.FormattedBody != "" {
		htmlText(t, "error reply", c.FormattedBody)
	}
}
