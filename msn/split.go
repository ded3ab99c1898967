package msn

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// SplitText cuts text into parts that each fit in maxBytes once sent: the UTF-8 length with
// every \n counted as two bytes (\r\n on the wire). Before splitting, invalid UTF-8 becomes
// U+FFFD and CRLF and lone CR become \n. Text that fits is returned whole, as one part; empty
// text returns nil. A maxBytes of zero or less means MaxTextBody; below 4 it is raised to 4 so
// that every character fits.
//
// Where to cut: at a line break when one lies in the second half of the window that fits, else
// at the last blank (space, tab, line break) in that half, else at the last line break or blank
// anywhere in the window, else (a single word longer than the window) at the last
// grapheme-cluster boundary that fits: never inside a UTF-8 sequence, and never between a base
// character and its combining marks, variation selectors, emoji modifiers, ZWJ sequence or
// regional-indicator pair unless that one cluster is itself longer than maxBytes (then at a
// character boundary).
//
// Whitespace policy: a cut at a blank drops the whole run of blanks (spaces, tabs, line breaks)
// there; a cut inside a word drops nothing. So the parts, with those runs put back between
// them, concatenate to the normalised text, and no part is empty. Parts after the first do not
// start with a blank (except one carrying a combining mark, which stays with its mark); the
// first part's leading and the last part's trailing blanks are kept.
func SplitText(text string, maxBytes int) []string {
	if text == "" {
		return nil
	}
	if maxBytes <= 0 {
		maxBytes = MaxTextBody
	}
	maxBytes = max(maxBytes, 4)
	rest := mimeNormalizeText(text)
	var parts []string
	for rest != "" {
		// lim: end of the longest prefix whose wire cost fits.
		lim, cost := 0, 0
		for lim < len(rest) {
			c := rest[lim]
			w := 1
			if c >= utf8.RuneSelf {
				_, w = utf8.DecodeRuneInString(rest[lim:])
			} else if c == '\n' {
				w = 2
			}
			if cost+w > maxBytes {
				break
			}
			cost += w
			if c == '\n' {
				lim++
			} else {
				lim += w
			}
		}
		if lim == len(rest) {
			parts = append(parts, rest)
			break
		}
		part, next := splitCut(rest, lim)
		parts = append(parts, part)
		rest = next
	}
	return parts
}

// splitIsBlank reports whether c is a blank a cut may drop.
func splitIsBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\n' }

// splitCut chooses where to cut rest, whose first lim bytes fit, and returns the part and what
// remains (with the dropped blank run removed).
func splitCut(rest string, lim int) (part, next string) {
	half := lim / 2
	lastNL, lastBlank := -1, -1
	text := len(rest) - len(strings.TrimLeft(rest, " \t\n")) // first non-blank byte
	// A blank at index lim itself is a valid cut: the part ends before it.
	for i := text + 1; i <= lim && i < len(rest); i++ {
		c := rest[i]
		if !splitIsBlank(c) || !splitBlankCuttable(rest, i) {
			continue
		}
		if c == '\n' {
			lastNL = i
		}
		lastBlank = i
	}
	cut := -1
	switch {
	case lastNL >= half && lastNL > 0:
		cut = lastNL
	case lastBlank >= half && lastBlank > 0:
		cut = lastBlank
	case lastNL > 0:
		cut = lastNL
	case lastBlank > 0:
		cut = lastBlank
	}
	if cut > 0 {
		part = strings.TrimRight(rest[:cut], " \t\n")
		return part, rest[splitSkipBlanks(rest, cut):]
	}
	c := splitGraphemeCut(rest, lim)
	return rest[:c], rest[c:]
}

// splitBlankCuttable reports whether the blank at i may start a dropped run: not when it is
// the base of a combining sequence (" \u0301").
func splitBlankCuttable(rest string, i int) bool {
	if i+1 >= len(rest) {
		return true
	}
	r, _ := utf8.DecodeRuneInString(rest[i+1:])
	return !splitIsExtender(r)
}

// splitSkipBlanks returns the index after the run of blanks starting at i, stopping before a
// blank that is the base of a combining sequence.
func splitSkipBlanks(rest string, i int) int {
	for i < len(rest) && splitIsBlank(rest[i]) && splitBlankCuttable(rest, i) {
		i++
	}
	return i
}

// splitGraphemeCut returns the last cluster boundary in (0, lim], or lim when the first cluster
// alone is longer than lim. lim is a rune boundary.
func splitGraphemeCut(s string, lim int) int {
	for c := lim; c > 0; {
		if splitIsBoundary(s, c) {
			return c
		}
		_, w := utf8.DecodeLastRuneInString(s[:c])
		c -= w
	}
	return lim
}

// splitIsBoundary approximates a grapheme-cluster boundary (UAX #29) at byte offset c, which
// must be a rune boundary inside s.
func splitIsBoundary(s string, c int) bool {
	if c <= 0 || c >= len(s) {
		return true
	}
	next, _ := utf8.DecodeRuneInString(s[c:])
	prev, _ := utf8.DecodeLastRuneInString(s[:c])
	switch {
	case splitIsExtender(next):
		return false
	case prev == '\u200d': // ZWJ joins what follows
		return false
	case splitIsHangulL(prev) && (splitIsHangulL(next) || splitIsHangulV(next) || splitIsHangulLV(next)):
		return false
	case (splitIsHangulV(prev) || splitIsHangulLV(prev)) && (splitIsHangulV(next) || splitIsHangulT(next)):
		return false
	case splitIsHangulT(prev) && splitIsHangulT(next):
		return false
	case splitIsRI(prev) && splitIsRI(next):
		// Inside a flag when an odd number of regional indicators precedes c.
		n := 0
		for i := c; i > 0; {
			r, w := utf8.DecodeLastRuneInString(s[:i])
			if !splitIsRI(r) {
				break
			}
			n++
			i -= w
		}
		return n%2 == 0
	}
	return true
}

// splitIsExtender reports whether r continues the preceding grapheme cluster: combining marks,
// ZWJ, variation selectors, emoji modifiers, tag characters, Hangul vowel/trailing jamo.
func splitIsExtender(r rune) bool {
	switch {
	case r < 0x300:
		return false
	case r == '\u200d', r == '\u200c',
		r >= 0xfe00 && r <= 0xfe0f, r >= 0xe0100 && r <= 0xe01ef, // variation selectors
		r >= 0x1f3fb && r <= 0x1f3ff, // emoji skin-tone modifiers
		r >= 0xe0020 && r <= 0xe007f: // tags (subdivision flags)
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Mc)
}

func splitIsRI(r rune) bool      { return r >= 0x1f1e6 && r <= 0x1f1ff }
func splitIsHangulL(r rune) bool { return r >= 0x1100 && r <= 0x115f || r >= 0xa960 && r <= 0xa97c }
func splitIsHangulV(r rune) bool { return r >= 0x1160 && r <= 0x11a7 || r >= 0xd7b0 && r <= 0xd7c6 }
func splitIsHangulT(r rune) bool { return r >= 0x11a8 && r <= 0x11ff || r >= 0xd7cb && r <= 0xd7fb }

// splitIsHangulLV reports precomposed syllables (LV and LVT alike: both may take T or V jamo
// only in specific combinations; treating them alike errs on the side of not cutting).
func splitIsHangulLV(r rune) bool { return r >= 0xac00 && r <= 0xd7a3 }
