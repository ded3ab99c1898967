package matrix

import (
	"fmt"
	"html"
	"strings"
	"unicode/utf8"

	"maunium.net/go/mautrix/event"

	"github.com/msn-bridge/msn-bridge/bridge"
)

// Remote text (friendly names, PSMs, handles, server errors, message bodies) is chosen by
// strangers and is shown on Matrix as the characters it is: never as Markdown or HTML, never as
// a link, an image or a mention. One-line fields go through bridge.CleanLine and are capped;
// what bridgev2 renders as Markdown is escaped with escapeMarkdown; notices that carry remote
// text are built by notice, which writes the formatted body itself.

// maxErrorShown caps an error's text shown in a notice.
const maxErrorShown = 300

// maxEventText bounds the body and formatted body of one event together (as encodedLen counts
// them), leaving room under the homeservers' 64 KiB event limit for the rest of the event.
const maxEventText = 56 << 10

// maxCodeShown caps inline code in a notice (a command with a handle in it).
const maxCodeShown = 200

// maxRoomName caps a group portal's name, in characters.
const maxRoomName = 255

// maxDisplayName caps a ghost's rendered display name, in characters (homeservers refuse
// longer ones).
const maxDisplayName = 255

// notice is a bot notice built as a plain body and an HTML formatted body side by side. The
// bridge's own wording goes in through text, code and markup; remote text only through remote
// (or code, which cleans too), which cleans it to one line with bridge.CleanLine and escapes it
// for HTML. The plain body shows remote text literally. The notice mentions no one.
type notice struct {
	plain, html strings.Builder
}

// text adds the bridge's own wording; line breaks become <br>.
func (n *notice) text(s string) *notice {
	n.plain.WriteString(s)
	n.html.WriteString(strings.ReplaceAll(html.EscapeString(s), "\n", "<br>"))
	return n
}

// textf adds the bridge's own wording formatted with fmt. Arguments must not be remote text.
func (n *notice) textf(format string, args ...any) *notice {
	return n.text(fmt.Sprintf(format, args...))
}

// remote adds remote text on one line, cleaned and cut to max characters.
func (n *notice) remote(s string, max int) *notice {
	s = bridge.CleanLine(s, max)
	n.plain.WriteString(s)
	n.html.WriteString(html.EscapeString(s))
	return n
}

// code adds text shown as inline code (a command to type), cleaned like remote text and cut
// to maxCodeShown characters.
func (n *notice) code(s string) *notice {
	s = bridge.CleanLine(s, maxCodeShown)
	n.plain.WriteString("`" + s + "`")
	n.html.WriteString("<code>" + html.EscapeString(s) + "</code>")
	return n
}

// link adds a link the bridge made (a matrix.to URL of a user or room it names), shown by its
// URL in the plain body. label and url must not be remote text.
func (n *notice) link(label, url string) *notice {
	n.plain.WriteString(url)
	n.html.WriteString(`<a href="` + html.EscapeString(url) + `">` + html.EscapeString(label) + "</a>")
	return n
}

// markup adds structure: plain to the body, h to the formatted body. Both must be constants of
// the bridge, never remote text.
func (n *notice) markup(plain, h string) *notice {
	n.plain.WriteString(plain)
	n.html.WriteString(h)
	return n
}

// content returns the notice as an m.notice with an explicitly empty m.mentions.
func (n *notice) content() *event.MessageEventContent {
	return &event.MessageEventContent{
		MsgType:       event.MsgNotice,
		Body:          n.plain.String(),
		Format:        event.FormatHTML,
		FormattedBody: n.html.String(),
		Mentions:      &event.Mentions{},
	}
}

// size is how much of an event the notice's body and formatted body take (encodedLen).
func (n *notice) size() int {
	return encodedLen(n.plain.String()) + encodedLen(n.html.String())
}

// maxNoticeText bounds one list notice's body and formatted body together (as encodedLen
// counts them), well under the homeservers' 64 KiB event limit.
const maxNoticeText = 32 << 10

// listNotices lays items out as a bulleted list under header, in as many notices as keep each
// under maxNoticeText; the later ones start with "(continued)". Each item must be far smaller
// than maxNoticeText (items are built from capped fields).
func listNotices(header *notice, items []*notice) []*notice {
	var out []*notice
	n, inList := header.markup("\n\n", "<ul>"), 0
	for _, it := range items {
		if inList > 0 && n.size()+it.size()+32 > maxNoticeText {
			out = append(out, n.markup("", "</ul>"))
			n, inList = new(notice).text("(continued)").markup("\n\n", "<ul>"), 0
		}
		n.markup("* ", "<li>").markup(it.plain.String(), it.html.String()).markup("\n", "</li>")
		inList++
	}
	return append(out, n.markup("", "</ul>"))
}

// escapeMarkdown makes remote text literal inside Markdown that bridgev2 renders (bridge state
// messages, command replies built with Reply): the text is cleaned to one line and cut to max
// characters, and every ASCII punctuation character, which CommonMark allows to escape, is
// escaped with a backslash, so none starts a link, an image, emphasis, code, HTML or an entity.
func escapeMarkdown(s string, max int) string {
	s = bridge.CleanLine(s, max)
	var b strings.Builder
	b.Grow(len(s) + len(s)/4)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < utf8.RuneSelf && isASCIIPunct(c) {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return b.String()
}

func isASCIIPunct(c byte) bool {
	return c >= '!' && c <= '/' || c >= ':' && c <= '@' || c >= '[' && c <= '`' || c >= '{' && c <= '~'
}

// truncationNote is appended to a message cut short; the Discord frontend uses the same words.
func truncationNote(hidden int) string {
	return fmt.Sprintf("… (message truncated, %d characters not shown)", hidden)
}

// encodedLen is the size of s inside an event's canonical JSON, where homeservers measure the
// 64 KiB event limit: quotes, backslashes and control characters are escaped, the rest is UTF-8.
func encodedLen(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		n += encodedByteLen(s[i])
	}
	return n
}

func encodedByteLen(c byte) int {
	switch {
	case c == '"' || c == '\\' || c == '\n' || c == '\t' || c == '\r' || c == '\b' || c == '\f':
		return 2
	case c < 0x20:
		return 6
	}
	return 1
}

// truncateBody cuts a message body so that it, with the note that says how much was cut,
// takes at most limit bytes of an event (encodedLen). The cut falls on a character boundary;
// limit <= 0 means no cap.
func truncateBody(text string, limit int) string {
	if limit <= 0 || encodedLen(text) <= limit {
		return text
	}
	total := utf8.RuneCountInString(text)
	// The note's length depends on the count it shows; reserve room for the longest.
	budget := limit - encodedLen(truncationNote(total))
	used, cut := 0, 0
	for cut < len(text) {
		_, size := utf8.DecodeRuneInString(text[cut:])
		if used += encodedLen(text[cut : cut+size]); used > budget {
			break
		}
		cut += size
	}
	kept := strings.TrimRight(text[:cut], " \t\n")
	return kept + truncationNote(total-utf8.RuneCountInString(kept))
}
