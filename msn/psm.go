package msn

import (
	"bytes"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits on the XML payloads of UBX (and Mail-Data).
const (
	// MaxUBXPayload is the largest UBX payload ParseUBX accepts. Real ones are a few hundred
	// bytes.
	MaxUBXPayload = 64 * 1024
	psmMaxDepth   = 32
	psmMaxTokens  = 10000
)

// UBX payload errors. ParseUBX wraps them; test with errors.Is.
var (
	// ErrUBXTooLarge means the payload exceeds MaxUBXPayload.
	ErrUBXTooLarge = errors.New("ubx payload too large")
	// ErrUBXDoctype means the payload declares a DOCTYPE or entities, which no MSN peer sends.
	ErrUBXDoctype = errors.New("ubx payload has a doctype or entity declaration")
	// ErrUBXTooComplex means the payload nests elements too deeply or has too many tokens.
	ErrUBXTooComplex = errors.New("ubx payload too deeply nested or too long")
)

// CurrentMedia is the "now playing" field of a contact's status (docs/protocol.md §3.4): on the
// wire "App\0Type\0Enabled\0Format\0Arg0\0Arg1\0…", fields separated by the two characters
// backslash and zero. Type is "Music", "Games" or "Office"; Format has {0}, {1}… placeholders for
// Args. The zero value means nothing is playing.
type CurrentMedia struct {
	App, Type string
	Enabled   bool
	Format    string
	Args      []string
}

// psmSep is the CurrentMedia field separator: a backslash and a zero, not a NUL byte.
const psmSep = `\0`

// ParseCurrentMedia parses a CurrentMedia string. Missing trailing fields stay empty, trailing
// empty arguments are dropped, Enabled is true only for "1". An empty string gives the zero
// value. It never fails. The fields are substrings of s.
func ParseCurrentMedia(s string) CurrentMedia {
	if strings.TrimSpace(s) == "" {
		return CurrentMedia{}
	}
	var f [4]string
	rest, more := s, true
	for i := range f {
		if !more {
			break
		}
		f[i], rest, more = strings.Cut(rest, psmSep)
	}
	c := CurrentMedia{App: f[0], Type: f[1], Enabled: strings.TrimSpace(f[2]) == "1", Format: f[3]}
	if !more {
		return c
	}
	// rest holds the arguments, each field ended by psmSep but the last; empty trailing ones
	// are dropped. Occurrences of psmSep cannot overlap, so cutting them from the end finds
	// the same fields as splitting from the start.
	n := strings.Count(rest, psmSep) + 1
	for n > 0 && (rest == "" || strings.HasSuffix(rest, psmSep)) {
		if n > 1 {
			rest = rest[:len(rest)-len(psmSep)]
		}
		n--
	}
	if n > 0 {
		c.Args = make([]string, n)
		for i := range c.Args {
			c.Args[i], rest, _ = strings.Cut(rest, psmSep)
		}
	}
	return c
}

// String renders c in wire form, as official clients write it:
// "App\0Type\0Enabled\0Format\0Arg0\0…\0ArgN\0\0" ("" for the zero value). Fields are written
// as they are: a field containing `\0` itself would not survive a round trip.
func (c CurrentMedia) String() string {
	if c.IsZero() {
		return ""
	}
	enabled := "0"
	if c.Enabled {
		enabled = "1"
	}
	f := append([]string{c.App, c.Type, enabled, c.Format}, c.Args...)
	return strings.Join(f, psmSep) + psmSep + psmSep
}

// Render returns c as text for display: Format with each {n} replaced by Args[n] ("" for a
// missing argument), or the non-empty Args joined with " - " when Format is empty, trimmed of
// surrounding blanks. It returns "" when c is not Enabled or renders to nothing.
func (c CurrentMedia) Render() string {
	if !c.Enabled {
		return ""
	}
	if strings.TrimSpace(c.Format) == "" {
		var parts []string
		for _, a := range c.Args {
			if a = strings.TrimSpace(a); a != "" {
				parts = append(parts, a)
			}
		}
		return strings.Join(parts, " - ")
	}
	var b strings.Builder
	s := c.Format
	for s != "" {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		s = s[i:]
		j := strings.IndexByte(s, '}')
		if j < 0 {
			b.WriteString(s)
			break
		}
		n, err := strconv.Atoi(s[1:j])
		if err != nil || n < 0 || j > 6 {
			b.WriteByte('{')
			s = s[1:]
			continue
		}
		if n < len(c.Args) {
			b.WriteString(c.Args[n])
		}
		s = s[j+1:]
	}
	return strings.TrimSpace(b.String())
}

// IsZero reports whether c is empty (nothing playing).
func (c CurrentMedia) IsZero() bool {
	return c.App == "" && c.Type == "" && !c.Enabled && c.Format == "" && len(c.Args) == 0
}

// ParseUBX parses the payload of "UBX <handle> <len>": <Data><PSM>…</PSM><CurrentMedia>…
// </CurrentMedia></Data>. Entities are unescaped (the five XML ones, numeric references, and
// HTML names such as &nbsp;; unknown ones are kept literally), invalid UTF-8 and characters XML
// forbids become U+FFFD, surrounding blanks of the PSM are trimmed, unknown elements
// (MachineGuid, …) are ignored, and a missing element is empty. An empty payload is no PSM and
// no media, without error.
//
// It fails, returning zero values and an error, on malformed XML, on a payload over
// MaxUBXPayload (ErrUBXTooLarge), on any DOCTYPE or ENTITY declaration (ErrUBXDoctype: no entity
// expansion is ever attempted), or on nesting deeper than 32 or more than 10000 tokens
// (ErrUBXTooComplex).
func ParseUBX(p []byte) (psm string, media CurrentMedia, err error) {
	psm, raw, err := parseUBX(p)
	if err != nil {
		return "", CurrentMedia{}, err
	}
	return psm, ParseCurrentMedia(raw), nil
}

// parseUBX is ParseUBX with the current media left as its text, for ParseCurrentMedia. The
// payloads real servers send are parsed by parseUBXFast; anything it does not take (comments,
// CDATA, attributes, other entities, errors) by parseUBXXML, with encoding/xml.
func parseUBX(p []byte) (psm, media string, err error) {
	if psm, media, ok := parseUBXFast(p); ok {
		return psm, media, nil
	}
	return parseUBXXML(p)
}

// parseUBXXML is parseUBX with encoding/xml, for any payload.
func parseUBXXML(p []byte) (psm, media string, err error) {
	if len(bytes.TrimSpace(p)) == 0 {
		return "", "", nil
	}
	var psmBuf, mediaBuf strings.Builder
	var path []string
	psmDone, mediaDone := false, false
	err = psmWalkXML(p, MaxUBXPayload, func(tok psmToken) {
		switch tok.kind {
		case psmStart:
			path = append(path, tok.name)
		case psmEnd:
			if len(path) == 2 {
				switch {
				case strings.EqualFold(path[1], "PSM"):
					psmDone = true
				case strings.EqualFold(path[1], "CurrentMedia"):
					mediaDone = true
				}
			}
			if len(path) > 0 {
				path = path[:len(path)-1]
			}
		case psmText:
			if len(path) < 2 {
				return
			}
			switch {
			case strings.EqualFold(path[1], "PSM") && !psmDone:
				psmBuf.WriteString(tok.text)
			case strings.EqualFold(path[1], "CurrentMedia") && !mediaDone:
				mediaBuf.WriteString(tok.text)
			}
		}
	})
	if err != nil {
		return "", "", fmt.Errorf("failed to parse ubx payload: %w", err)
	}
	return strings.TrimSpace(psmBuf.String()), mediaBuf.String(), nil
}

// UBX payloads that parseUBXFast takes: at most this deep and this many tokens (elements
// starts and ends, runs of text), far below psmMaxDepth and psmMaxTokens.
const (
	ubxFastDepth  = 8
	ubxFastTokens = 64
)

// parseUBXFast parses the UBX payloads servers send, and gives the same result as
// parseUBXXML: elements without attributes, names of ASCII letters, digits, '_', '-' and '.',
// text with the five XML entities, blanks around the root, and nothing else. It reports false
// for anything outside that (no error: parseUBXXML decides), and never allocates but for
// invalid UTF-8 and its one result string.
func parseUBXFast(p []byte) (psm, media string, ok bool) {
	if len(bytes.TrimSpace(p)) == 0 {
		return "", "", true
	}
	if len(p) > MaxUBXPayload {
		return "", "", false
	}
	p = psmSanitize(p)
	var psmArr, mediaArr [128]byte
	pb, mb := psmArr[:0], mediaArr[:0]
	var names [ubxFastDepth][]byte
	depth, tokens := 0, 0
	seenRoot, psmDone, mediaDone := false, false, false
	// open is what the element at depth 2 (a child of the root) collects: its text goes to
	// pb or mb while it is the first PSM or CurrentMedia, as in parseUBXXML's walker.
	const (
		none = iota
		inPSM
		inMedia
	)
	open := none
	end := func() {
		if depth == 2 {
			switch open {
			case inPSM:
				psmDone = true
			case inMedia:
				mediaDone = true
			}
			open = none
		}
		depth--
		tokens++
	}
	for i := 0; i < len(p); {
		if p[i] != '<' {
			j := bytes.IndexByte(p[i:], '<')
			if j < 0 {
				j = len(p)
			} else {
				j += i
			}
			text := p[i:j]
			i = j
			if depth == 0 {
				if len(bytes.Trim(text, " \t\r\n")) != 0 {
					return "", "", false
				}
				continue
			}
			tokens++
			var good bool
			switch {
			case depth >= 2 && open == inPSM && !psmDone:
				pb, good = ubxAppendText(pb, text)
			case depth >= 2 && open == inMedia && !mediaDone:
				mb, good = ubxAppendText(mb, text)
			default:
				_, good = ubxAppendText(nil, text)
			}
			if !good {
				return "", "", false
			}
			continue
		}
		if i+1 < len(p) && p[i+1] == '/' {
			n := ubxName(p[i+2:])
			if depth == 0 || !bytes.Equal(p[i+2:i+2+n], names[depth-1]) || i+2+n >= len(p) || p[i+2+n] != '>' {
				return "", "", false
			}
			end()
			i += n + 3
			continue
		}
		n := ubxName(p[i+1:])
		if n == 0 || depth == 0 && seenRoot || depth == ubxFastDepth {
			return "", "", false
		}
		names[depth] = p[i+1 : i+1+n]
		depth++
		if depth == 2 {
			switch {
			case bytes.EqualFold(names[1], []byte("PSM")):
				open = inPSM
			case bytes.EqualFold(names[1], []byte("CurrentMedia")):
				open = inMedia
			}
		}
		tokens++
		seenRoot = true
		switch rest := p[i+1+n:]; {
		case len(rest) >= 1 && rest[0] == '>':
			i += n + 2
		case len(rest) >= 2 && rest[0] == '/' && rest[1] == '>':
			end()
			i += n + 3
		default:
			return "", "", false
		}
		if tokens > ubxFastTokens {
			return "", "", false
		}
	}
	if depth != 0 || !seenRoot || tokens > ubxFastTokens {
		return "", "", false
	}
	var b strings.Builder
	b.Grow(len(pb) + len(mb))
	b.Write(pb)
	b.Write(mb)
	all := b.String()
	return strings.TrimSpace(all[:len(pb)]), all[len(pb):], true
}

// ubxName returns the length of the element name p starts with: an ASCII letter or '_', then
// letters, digits, '_', '-' or '.'; 0 when p starts with no such name.
func ubxName(p []byte) int {
	for i, c := range p {
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_':
		case i > 0 && (isDigit(c) || c == '-' || c == '.'):
		default:
			return i
		}
	}
	return len(p)
}

// ubxEntities are the entities parseUBXFast decodes; any other '&' leaves the payload to
// encoding/xml.
var ubxEntities = [...]struct {
	name string
	r    byte
}{{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&apos;", '\''}, {"&quot;", '"'}}

// ubxAppendText appends XML character data decoded as encoding/xml does (the five entities,
// line ends normalised to LF); false for text it leaves to encoding/xml: other entities and
// "]]>".
func ubxAppendText(dst, text []byte) ([]byte, bool) {
	for len(text) > 0 {
		i := 0
		for i < len(text) && text[i] != '&' && text[i] != '\r' && text[i] != ']' {
			i++
		}
		dst = append(dst, text[:i]...)
		text = text[i:]
		if len(text) == 0 {
			break
		}
		switch text[0] {
		case '&':
			n := 0
			for _, e := range ubxEntities {
				if bytes.HasPrefix(text, []byte(e.name)) {
					dst = append(dst, e.r)
					n = len(e.name)
					break
				}
			}
			if n == 0 {
				return dst, false
			}
			text = text[n:]
		case '\r':
			dst = append(dst, '\n')
			text = text[1:]
			if len(text) > 0 && text[0] == '\n' {
				text = text[1:]
			}
		default: // ']'
			if bytes.HasPrefix(text, []byte("]]>")) {
				return dst, false
			}
			dst = append(dst, ']')
			text = text[1:]
		}
	}
	return dst, true
}

// BuildUUX builds the UUX payload "<Data><PSM>…</PSM><CurrentMedia>…</CurrentMedia></Data>",
// always with both elements (empty when psm is "" or media is nil or zero). & < > " ' are
// escaped; line breaks and tabs in psm become spaces; invalid UTF-8 and characters XML forbids
// are replaced by U+FFFD so the server's strict parser accepts it. It does not limit the PSM
// length: keep it short (official clients stop at about 129 characters).
func BuildUUX(psm string, media *CurrentMedia) []byte {
	var ms string
	if media != nil {
		ms = media.String()
	}
	b := make([]byte, 0, 56+len(psm)+len(ms))
	b = append(b, "<Data><PSM>"...)
	b = psmAppendEscaped(b, psm, true)
	b = append(b, "</PSM><CurrentMedia>"...)
	b = psmAppendEscaped(b, ms, false)
	return append(b, "</CurrentMedia></Data>"...)
}

// psmAppendEscaped appends s escaped for XML character data.
func psmAppendEscaped(b []byte, s string, flatten bool) []byte {
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		switch {
		case r == '&':
			b = append(b, "&amp;"...)
		case r == '<':
			b = append(b, "&lt;"...)
		case r == '>':
			b = append(b, "&gt;"...)
		case r == '"':
			b = append(b, "&quot;"...)
		case r == '\'':
			b = append(b, "&apos;"...)
		case r == '\r' || r == '\n' || r == '\t':
			if flatten {
				b = append(b, ' ')
			} else {
				b = append(b, "&#"...)
				b = strconv.AppendInt(b, int64(r), 10)
				b = append(b, ';')
			}
		case !psmXMLChar(r):
			b = utf8.AppendRune(b, '\uFFFD')
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return b
}

// psmXMLChar reports whether r may appear in an XML 1.0 document.
func psmXMLChar(r rune) bool {
	return r == '\t' || r == '\n' || r == '\r' || r >= 0x20 && r <= 0xd7ff ||
		r >= 0xe000 && r <= 0xfffd || r >= 0x10000 && r <= 0x10ffff
}

// psmSanitize returns p as valid UTF-8 holding only XML characters (others become U+FFFD).
func psmSanitize(p []byte) []byte {
	ok := true
	i := 0
	// Eight bytes at a time while they are printable ASCII (no high bit, none below 0x20).
	for ; i+8 <= len(p); i += 8 {
		w := binary.LittleEndian.Uint64(p[i:])
		if w&hi1 != 0 || zeroBytes(w&0xe0e0e0e0e0e0e0e0) != 0 {
			break
		}
	}
	for i < len(p) && ok {
		if c := p[i]; c >= 0x20 && c < utf8.RuneSelf || c == '\t' || c == '\n' || c == '\r' {
			i++
			continue
		}
		r, w := utf8.DecodeRune(p[i:])
		ok = r != utf8.RuneError && psmXMLChar(r) || w == 3 && r == utf8.RuneError && string(p[i:i+3]) == "\uFFFD"
		i += w
	}
	if ok {
		return p
	}
	out := make([]byte, 0, len(p)+8)
	for len(p) > 0 {
		r, w := utf8.DecodeRune(p)
		if !psmXMLChar(r) { // includes RuneError from an invalid byte
			r = '\uFFFD'
		}
		out = utf8.AppendRune(out, r)
		p = p[w:]
	}
	return out
}

type psmTokenKind int

const (
	psmStart psmTokenKind = iota
	psmEnd
	psmText
)

// psmToken is a simplified XML token: an element start or end (local name) or character data.
type psmToken struct {
	kind psmTokenKind
	name string
	text string
}

// psmWalkXML decodes the small XML document p safely and calls fn for each element start, end
// and run of character data. It refuses documents over maxSize bytes, any DOCTYPE or ENTITY
// declaration, nesting deeper than psmMaxDepth and more than psmMaxTokens tokens. Invalid UTF-8
// and forbidden characters are replaced first; unknown entities are kept literally.
func psmWalkXML(p []byte, maxSize int, fn func(psmToken)) error {
	if len(p) > maxSize {
		return ErrUBXTooLarge
	}
	if psmHasDecl(p) {
		return ErrUBXDoctype
	}
	d := xml.NewDecoder(bytes.NewReader(psmSanitize(p)))
	d.Strict = false
	d.Entity = xml.HTMLEntity
	d.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	depth, seenRoot := 0, false
	for n := 0; ; n++ {
		if n > psmMaxTokens {
			return ErrUBXTooComplex
		}
		tok, err := d.Token()
		if err == io.EOF {
			if depth != 0 || !seenRoot {
				return io.ErrUnexpectedEOF
			}
			return nil
		}
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 && seenRoot {
				return errors.New("more than one root element")
			}
			depth++
			seenRoot = true
			if depth > psmMaxDepth {
				return ErrUBXTooComplex
			}
			fn(psmToken{kind: psmStart, name: t.Name.Local})
		case xml.EndElement:
			if depth == 0 {
				return errors.New("unexpected end element")
			}
			depth--
			fn(psmToken{kind: psmEnd, name: t.Name.Local})
		case xml.CharData:
			if depth > 0 {
				fn(psmToken{kind: psmText, text: string(t)})
			}
		case xml.Directive:
			return ErrUBXDoctype
		}
	}
}

// psmHasDecl reports whether p contains a DOCTYPE or ENTITY declaration, in any case.
func psmHasDecl(p []byte) bool {
	if !bytes.Contains(p, []byte("<!")) {
		return false
	}
	l := bytes.ToLower(p)
	return bytes.Contains(l, []byte("<!doctype")) || bytes.Contains(l, []byte("<!entity"))
}
