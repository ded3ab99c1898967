package bridge

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/msn-bridge/msn-bridge/internal/text"
)

// Length caps, in characters, for remote text shown by a frontend outside a message body:
// notices, lists, topics, names. MSN allows a friendly name of 387 bytes once URL-encoded and a
// PSM of a few hundred characters, so these never cut a real one short.
const (
	MaxShownName = 130
	MaxShownPSM  = 260
)

// MaxQuoted caps, in characters, the quoted message of a reply carried to MSN.
const MaxQuoted = 120

// ReplyQuote is the line that carries a reply to MSN, which has no replies: "> who: quoted" and
// a line break, who and the quoted message each cleaned to one line and capped (quoted at
// MaxQuoted characters). The reply's own text follows it. Every frontend quotes this way.
func ReplyQuote(who, quoted string) string {
	return "> " + CleanLine(who, MaxShownName) + ": " + CleanLine(quoted, MaxQuoted) + "\n"
}

// CleanLine makes a piece of remote text (a contact's friendly name, PSM, current media or
// handle as the server sent it) safe to show on one line: invalid UTF-8 becomes U+FFFD, control
// characters and line breaks become spaces, runs of spaces fold into one, bidirectional
// overrides, isolates and other invisible formatting characters are removed (they could make
// text read differently from what it is, e.g. reverse a handle), and the result is cut to at
// most max characters, the cut marked with "…". max <= 0 means no cap. It does not escape
// markup: each frontend escapes for its own format after cleaning.
func CleanLine(s string, max int) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	n := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if r == utf8.RuneError && size == 1 {
			r = unicode.ReplacementChar
		}
		if invisible(r) {
			continue
		}
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			n++
			space = false
		}
		b.WriteRune(r)
		n++
		if max > 0 && n > max {
			break
		}
	}
	return text.Truncate(b.String(), max)
}

// CleanText is CleanLine for text that may keep its line breaks (a message body): "\n" stays,
// "\r\n" and "\r" become "\n", other control characters and invisible formatting characters
// are removed. It does not cap the length; frontends cut bodies with a note of their own.
func CleanText(s string) string {
	if isPlain(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteRune(unicode.ReplacementChar)
		case r == '\r':
			if i < len(s) && s[i] == '\n' {
				continue
			}
			b.WriteByte('\n')
		case r == '\n' || r == '\t':
			b.WriteRune(r)
		case unicode.IsControl(r) || invisible(r):
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// isPlain reports whether s is valid UTF-8 with nothing CleanText would change.
func isPlain(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\n' && c != '\t' || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || unicode.IsControl(r) || invisible(r) {
			return false
		}
		i += size
	}
	return true
}

// invisible reports whether r is a bidirectional control (embeddings, overrides, isolates and
// marks) or another zero-width formatting character that can disguise text. Zero-width joiners
// stay: emoji sequences need them.
func invisible(r rune) bool {
	switch {
	case r >= 0x202A && r <= 0x202E, // LRE, RLE, PDF, LRO, RLO
		r >= 0x2066 && r <= 0x2069,                // LRI, RLI, FSI, PDI
		r == 0x200E || r == 0x200F || r == 0x061C, // LRM, RLM, ALM
		r == 0x200B, r == 0x2060, r == 0xFEFF, // zero-width space, word joiner, BOM
		r >= 0xFFF9 && r <= 0xFFFB, // interlinear annotations
		r == 0x00AD:                // soft hyphen
		return true
	}
	return false
}
