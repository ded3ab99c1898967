package discord

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/msn-bridge/msn-bridge/bridge"
)

// maxMessageLen is Discord's limit on a message's content, in characters.
const maxMessageLen = 2000

// markdownSpecial are the characters Discord's Markdown gives a meaning to ('<' opens mentions,
// channel links, emoji and timestamps).
const markdownSpecial = "\\*_~`|>#-[]()<"

// escapeMarkdown makes text show literally in Discord: no formatting, no mention of anyone
// (@everyone, @here, <@id> and the other <…> forms are escaped). URLs are left alone, up to a
// '<', so they stay links; a '<' right after one is followed by a zero-width space.
func escapeMarkdown(text string) string {
	var b strings.Builder
	b.Grow(len(text) + 8)
	start := true   // at the start of a line
	noURLUpTo := -1 // the token at or before this offset is known not to be a URL
	for i := 0; i < len(text); {
		if (start || text[i] == ' ' || text[i] == '\n') && i > noURLUpTo {
			// Copy a URL token verbatim.
			j := i
			for j < len(text) && (text[j] == ' ' || text[j] == '\n') {
				j++
			}
			if isURLAt(text[j:]) {
				b.WriteString(text[i:j])
				k := j
				for k < len(text) && text[k] != ' ' && text[k] != '\n' && text[k] != '<' {
					k++
				}
				b.WriteString(text[j:k])
				if k < len(text) {
					// A backslash before the '<' would be taken into the link: break the
					// mention with a zero-width space instead.
					if text[k] == '<' {
						b.WriteString("<\u200b")
						k++
					}
				}
				i, start = k, false
				continue
			}
			noURLUpTo = j
		}
		r, n := utf8.DecodeRuneInString(text[i:])
		switch {
		case r == '-' || r == '#' || r == '>':
			// Only meaningful at the start of a line (lists, headings, quotes).
			if start {
				b.WriteByte('\\')
			}
		case r < utf8.RuneSelf && strings.ContainsRune(markdownSpecial, r) && r != '(' && r != ')':
			b.WriteByte('\\')
		case r == '@' && isMassMentionAt(text[i:]):
			b.WriteByte('\\')
		}
		b.WriteString(text[i : i+n])
		if r == '\n' {
			start = true
		} else if !unicode.IsSpace(r) {
			start = false
		}
		i += n
	}
	return b.String()
}

// shown makes a piece of remote text (a name, PSM, handle or server-sent reason) fit for a
// line of a bot notice, a topic or an embed: one line without control or bidirectional
// formatting characters, at most max characters, every Markdown character escaped.
func shown(s string, max int) string {
	return escapeMarkdown(bridge.CleanLine(s, max))
}

// isMassMentionAt reports whether s starts with @everyone or @here.
func isMassMentionAt(s string) bool {
	return len(s) >= 5 && strings.EqualFold(s[:5], "@here") ||
		len(s) >= 9 && strings.EqualFold(s[:9], "@everyone")
}

func isURLAt(s string) bool {
	return len(s) >= 7 && strings.EqualFold(s[:7], "http://") || len(s) >= 8 && strings.EqualFold(s[:8], "https://")
}

// renderMSN renders an MSN message for Discord: the text escaped, wrapped in the Markdown of
// its font style (MSN styles apply to the whole message).
func renderMSN(text string, f bridge.Format) string {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	body := escapeMarkdown(text)
	if strings.TrimSpace(body) == "" {
		return body
	}
	var open, closeTags string
	add := func(tag string) {
		open += tag
		closeTags = tag + closeTags
	}
	if f.Underline {
		add("__")
	}
	if f.Strikethrough {
		add("~~")
	}
	if f.Bold {
		add("**")
	}
	if f.Italic {
		add("*")
	}
	return open + body + closeTags
}

// maxNameScan bounds the bytes of a name sanitizeUsername looks at (MSN names are far shorter),
// so that its word removal stays cheap.
const maxNameScan = 1024

// sanitizeUsername makes an MSN friendly name acceptable as a webhook username (DISCORD.md §6):
// 1–80 characters, without "discord", "clyde", "@", "#", ":" or "```", never "everyone" or
// "here". fallback (the handle) is used when nothing is left.
func sanitizeUsername(name, fallback string) string {
	clean := func(s string) string {
		if len(s) > maxNameScan {
			s = strings.ToValidUTF8(s[:maxNameScan], "")
		}
		s = strings.Map(func(r rune) rune {
			if unicode.IsControl(r) {
				return ' '
			}
			return r
		}, s)
		for _, bad := range []string{"@", "#", ":"} {
			s = strings.ReplaceAll(s, bad, "")
		}
		// Removing one word may join the pieces of another ("``discord`"), so until none is left.
		for changed := true; changed; {
			changed = false
			for _, word := range []string{"discord", "clyde", "```"} {
				if i := indexFoldASCII(s, word); i >= 0 {
					s = s[:i] + s[i+len(word):]
					changed = true
				}
			}
		}
		s = strings.Join(strings.Fields(s), " ")
		if r := []rune(s); len(r) > 80 {
			s = strings.TrimSpace(string(r[:80]))
		}
		switch strings.ToLower(s) {
		case "everyone", "here":
			return ""
		}
		return s
	}
	if s := clean(name); s != "" {
		return s
	}
	if at := strings.IndexByte(fallback, '@'); at > 0 {
		fallback = fallback[:at] + " at " + fallback[at+1:]
	}
	if s := clean(fallback); s != "" {
		return s
	}
	return "MSN contact"
}

// indexFoldASCII is strings.Index ignoring ASCII case, for an ASCII word.
func indexFoldASCII(s, word string) int {
	for i := 0; i+len(word) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(word)], word) {
			return i
		}
	}
	return -1
}

// splitMessage cuts text into pieces of at most maxMessageLen characters, preferring line
// breaks, then spaces. Invalid UTF-8 becomes U+FFFD, whether or not the text is cut. It is
// splitMessageN without a cap on the parts.
func splitMessage(text string) []string { return splitMessageN(text, 0) }

// splitMessageN is splitMessage in one pass over text, with at most maxParts parts (<= 0: no
// cap). When the text needs more, the last part is cut short and ends with a line saying how
// many characters are not shown, so a huge message costs a bounded number of posts.
func splitMessageN(text string, maxParts int) []string {
	text = strings.ToValidUTF8(text, "\uFFFD")
	var out []string
	for text != "" {
		last := maxParts > 0 && len(out) == maxParts-1
		end, whole := runeOffset(text, maxMessageLen)
		if whole {
			out = append(out, text)
			break
		}
		if !last {
			cut := cutPoint(text[:end])
			out = append(out, text[:cut])
			text = text[cut:]
			continue
		}
		// The last part allowed: cut it short to leave room for the note. The note's number
		// has at most as many digits as the text's length.
		note := truncatedNote(len(text))
		end, _ = runeOffset(text, maxMessageLen-utf8.RuneCountInString(note))
		cut := cutPoint(text[:end])
		hidden := utf8.RuneCountInString(text[cut:])
		out = append(out, text[:cut]+truncatedNote(hidden))
		break
	}
	return out
}

// fitMessage cuts a bot line that would exceed Discord's limit (a big group's member list,
// say), marking the cut with "…".
func fitMessage(s string) string {
	if _, whole := runeOffset(s, maxMessageLen); whole {
		return s
	}
	end, _ := runeOffset(s, maxMessageLen-1)
	return s[:cutPoint(s[:end])] + "…"
}

// truncatedNote is the line that ends a message cut short, hidden characters not shown.
func truncatedNote(hidden int) string {
	return "\n*… message truncated, " + strconv.Itoa(hidden) + " characters not shown.*"
}

// runeOffset returns the byte offset of the n-th character of s, and whether s has at most n
// characters (the offset is then len(s)).
func runeOffset(s string, n int) (int, bool) {
	i := 0
	for ; n > 0 && i < len(s); n-- {
		if s[i] < utf8.RuneSelf {
			i++
			continue
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return i, i == len(s)
}

// cutPoint returns where to end a part that window (a prefix of the text) bounds: after its
// last line break or space in its second half, else at its end; never between a backslash and
// the character it escapes.
func cutPoint(window string) int {
	cut := len(window)
	half := len(window) / 2
	if i := strings.LastIndexByte(window, '\n'); i >= half && i > 0 {
		cut = i + 1
	} else if i := strings.LastIndexByte(window, ' '); i >= half && i > 0 {
		cut = i + 1
	}
	if n := len(window[:cut]) - len(strings.TrimRight(window[:cut], "\\")); n%2 == 1 && cut > 1 {
		cut--
	}
	return cut
}
