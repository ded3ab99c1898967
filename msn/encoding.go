package msn

import (
	"strings"
	"unicode/utf8"
)

// Encode percent-encodes a free-text parameter (friendly name, group name, msnobj) so it holds
// no space, control byte or non-ASCII byte. Space becomes %20, never '+': Escargot and R2M do not
// turn '+' back into a space (docs/protocol.md §1.5).
func Encode(s string) string {
	const hex = "0123456789ABCDEF"
	n := 0
	for i := 0; i < len(s); i++ {
		if !unreserved(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

func unreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '~' || c == '@' || c == '!' || c == '*' ||
		c == '(' || c == ')' || c == '\'' || c == '+' || c == ',' || c == ':' || c == ';' || c == '=' ||
		c == '[' || c == ']' || c == '{' || c == '}' || c == '|' || c == '^' || c == '$' || c == '/'
}

// Decode percent-decodes a parameter. '+' stays '+'. A '%' not followed by two hex digits is kept
// literally. Raw non-ASCII bytes (Escargot) and encoded ones (historical MSN) both decode; the
// result is made valid UTF-8 by replacing invalid sequences with U+FFFD.
func Decode(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return strings.ToValidUTF8(s, "\uFFFD")
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		b = append(b, c)
	}
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}
