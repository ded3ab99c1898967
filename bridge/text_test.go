package bridge

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCleanLine(t *testing.T) {
	tests := []struct {
		name, in string
		max      int
		want     string
	}{
		{"plain", "Alice", 0, "Alice"},
		{"newlines fold", "evil\n\nNotice: you were logged out", 0, "evil Notice: you were logged out"},
		{"controls", "a\x00b\x1bc\x7fd", 0, "a b c d"},
		{"bidi override", "moc.live@\u202Ebob", 0, "moc.live@bob"},
		{"isolates and marks", "\u2066x\u2069\u200Fy\u200E", 0, "xy"},
		{"zero width", "ad\u200Bmin\uFEFF", 0, "admin"},
		{"zwj kept", "👨\u200D👩", 0, "👨\u200D👩"},
		{"invalid utf8", "a\xffb", 0, "a\uFFFDb"},
		{"leading space", "  a  b  ", 0, "a b"},
		{"cap", strings.Repeat("é", 50), 10, strings.Repeat("é", 9) + "…"},
		{"cap exact", "abcde", 5, "abcde"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CleanLine(tt.in, tt.max); got != tt.want {
				t.Errorf("CleanLine(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
			}
		})
	}
}

func TestCleanText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"hello\nworld", "hello\nworld"},
		{"a\r\nb\rc", "a\nb\nc"},
		{"x\u202Ey\x00z\tw", "xyz\tw"},
		{"bad\xfe", "bad\uFFFD"},
	}
	for _, tt := range tests {
		if got := CleanText(tt.in); got != tt.want {
			t.Errorf("CleanText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzCleanLine(f *testing.F) {
	f.Add("Bob\u202E\n\x00", 10)
	f.Fuzz(func(t *testing.T, s string, max int) {
		max %= 1000
		got := CleanLine(s, max)
		if !utf8.ValidString(got) {
			t.Fatalf("invalid UTF-8 out of %q", s)
		}
		if max > 0 && utf8.RuneCountInString(got) > max {
			t.Fatalf("%d characters out, cap %d", utf8.RuneCountInString(got), max)
		}
		for _, r := range got {
			if r < 0x20 || r == 0x7f || invisible(r) {
				t.Fatalf("%U kept in %q", r, got)
			}
		}
	})
}

// TestReplyQuote: the quote line of a reply is one line whatever the quoted text or name hold,
// so a quoted message cannot forge lines of its own in the reply.
func TestReplyQuote(t *testing.T) {
	got := ReplyQuote("Bob\n> Alice", "line one\r\nline two\u202e")
	if got != "> Bob > Alice: line one line two\n" {
		t.Fatalf("ReplyQuote = %q", got)
	}
	long := ReplyQuote("x", strings.Repeat("a", 500))
	if n := len([]rune(long)); n != len("> x: \n")+MaxQuoted || !strings.HasSuffix(long, "…\n") {
		t.Fatalf("a long quote is %d characters: %q", n, long)
	}
}
