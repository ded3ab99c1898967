// Package text holds the one helper for cutting text to a length, shared by the protocol
// library, the core, the frontends and the fakes.
package text

import (
	"strings"
	"unicode/utf8"
)

// Ellipsis marks where Truncate cut a text.
const Ellipsis = "…"

// Truncate returns s when it has at most n characters, else its first n-1 characters, with
// trailing spaces removed, followed by Ellipsis: at most n characters in all. Characters are
// counted as runes; an invalid byte counts as one and, in a cut result, becomes U+FFFD, so a
// cut never splits a character nor leaves invalid UTF-8. n < 1 means no cap. It allocates only
// when it cuts.
func Truncate(s string, n int) string {
	if n < 1 || len(s) <= n {
		return s
	}
	cut, count := 0, 0
	for i := 0; i < len(s); count++ {
		if count == n-1 {
			cut = i
		}
		if count == n {
			return strings.TrimRight(strings.ToValidUTF8(s[:cut], "\uFFFD"), " ") + Ellipsis
		}
		if s[i] < utf8.RuneSelf {
			i++
			continue
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return s
}
