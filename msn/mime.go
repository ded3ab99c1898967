package msn

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits ParseMIME enforces on the header block. The largest real header block is the NS
// profile message (~1.4 KB with a ~1.1 KB MSPAuth value); a Mail-Data value listing 25 offline
// messages is under 10 KB.
const (
	mimeMaxHeaders    = 128
	mimeMaxHeaderLine = 32 * 1024
	mimeMaxHeaderSize = 64 * 1024
)

// MIME payload errors. ParseMIME wraps them; test with errors.Is.
var (
	// ErrMIMEEmpty means the payload was empty.
	ErrMIMEEmpty = errors.New("empty mime payload")
	// ErrMIMENoHeaders means the payload does not start with a header line.
	ErrMIMENoHeaders = errors.New("mime payload has no headers")
	// ErrMIMEHeaderLimit means the header block has too many headers or is too large.
	ErrMIMEHeaderLimit = errors.New("mime header limit exceeded")
)

// Header is one MIME header line, its name as received (compare case-insensitively) and its
// value with surrounding blanks trimmed.
type Header struct{ Name, Value string }

// MIMEMessage is the payload of an MSG command: a header block and a raw body (docs/protocol.md
// §4.5). Headers keep their wire order; duplicates are kept.
type MIMEMessage struct {
	Headers []Header
	Body    []byte
}

// ParseMIME parses an MSG payload. It is lenient in what it accepts: header names in any case,
// ": " or ":" (or ":" followed by tabs) between name and value, CRLF or bare LF line ends,
// folded continuation lines (starting with a blank) joined with one space. A missing blank line
// is tolerated: the header block then ends at the first line that is not a header (which starts
// the body) or at the end of the payload (empty body). Header names and values are made valid
// UTF-8 (invalid bytes become U+FFFD); the body is copied verbatim, so p is not retained.
//
// It fails, with an error wrapping ErrMIMEEmpty, ErrMIMENoHeaders or ErrMIMEHeaderLimit, on an
// empty payload, on a payload whose first line is not a header, or when the header block has
// more than 128 headers, a line over 32 KiB or more than 64 KiB in all. It never panics.
func ParseMIME(p []byte) (*MIMEMessage, error) {
	if m, ok := parseMIMESimple(p); ok {
		return m, nil
	}
	return parseMIMEGeneral(p)
}

// parseMIMEGeneral is ParseMIME for any payload.
func parseMIMEGeneral(p []byte) (*MIMEMessage, error) {
	if len(p) == 0 {
		return nil, fmt.Errorf("failed to parse mime payload: %w", ErrMIMEEmpty)
	}
	headers, n, err := mimeParseHeaderBlock(p, true)
	if err != nil {
		return nil, fmt.Errorf("failed to parse mime payload: %w", err)
	}
	if len(headers) == 0 {
		return nil, fmt.Errorf("failed to parse mime payload: %w", ErrMIMENoHeaders)
	}
	m := &MIMEMessage{Headers: headers}
	if n < len(p) {
		m.Body = bytes.Clone(p[n:])
	}
	return m, nil
}

// mimeSimpleHeaders is the most headers parseMIMESimple takes; a text message has three.
const mimeSimpleHeaders = 8

// A MIMEMessage from parseMIMESimple shares one allocation with its headers.
type mimeMessageBuf struct {
	m MIMEMessage
	h [mimeSimpleHeaders]Header
}

// parseMIMESimple is ParseMIME for the payloads clients send: up to mimeSimpleHeaders headers,
// none folded, all valid UTF-8, within the limits. It gives the same result as
// parseMIMEGeneral in three allocations (the message with its headers, one string holding
// every header's text, the body) and reports false for anything else.
func parseMIMESimple(p []byte) (*MIMEMessage, bool) {
	var spans [mimeSimpleHeaders]struct{ name, value [2]int }
	n, pos, size, headEnd, body := 0, 0, 0, 0, len(p)
	for pos < len(p) {
		line, next := mimeLine(p, pos)
		if len(line) == 0 {
			body = next
			break
		}
		if len(line) > mimeMaxHeaderLine || size+len(line) > mimeMaxHeaderSize || line[0] == ' ' || line[0] == '\t' {
			return nil, false
		}
		i := bytes.IndexByte(line, ':')
		if i <= 0 {
			body = pos
			break
		}
		name := bytes.TrimRight(line[:i], " \t")
		if len(name) == 0 || bytes.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
			body = pos
			break
		}
		value := line[i+1:]
		if n == len(spans) || !utf8.Valid(value) {
			return nil, false
		}
		value = bytes.TrimSpace(value)
		// Offsets in p, from what is left of its capacity.
		at := func(b []byte) int { return cap(p) - cap(b) }
		spans[n].name = [2]int{pos, pos + len(name)}
		if len(value) > 0 {
			spans[n].value = [2]int{at(value), at(value) + len(value)}
		}
		n++
		size += len(line)
		pos, headEnd = next, pos+len(line)
	}
	if n == 0 {
		return nil, false
	}
	b := new(mimeMessageBuf)
	text := string(p[:headEnd])
	for i, sp := range spans[:n] {
		b.h[i] = Header{Name: text[sp.name[0]:sp.name[1]], Value: text[sp.value[0]:sp.value[1]]}
	}
	b.m.Headers = b.h[:n:n]
	if body < len(p) {
		b.m.Body = bytes.Clone(p[body:])
	}
	return &b.m, true
}

// mimeParseHeaderBlock reads header lines from the start of p until a blank line, a line that
// is not a header, or the end of p. It returns the headers and the offset where the body
// starts (after the blank line, or at the first non-header line). With limits set, exceeding
// them is an error; without, parsing just stops there (the rest counts as body).
func mimeParseHeaderBlock(p []byte, limits bool) ([]Header, int, error) {
	var headers []Header
	pos, size := 0, 0
	for pos < len(p) {
		line, next := mimeLine(p, pos)
		if len(line) == 0 {
			return headers, next, nil
		}
		if limits && (len(line) > mimeMaxHeaderLine || size+len(line) > mimeMaxHeaderSize) {
			return nil, 0, ErrMIMEHeaderLimit
		}
		if (line[0] == ' ' || line[0] == '\t') && len(headers) > 0 {
			// Folded continuation of the previous header.
			if v := strings.TrimSpace(mimeValid(line)); v != "" {
				h := &headers[len(headers)-1]
				if h.Value == "" {
					h.Value = v
				} else {
					h.Value += " " + v
				}
			}
			size += len(line)
			pos = next
			continue
		}
		name, value, ok := mimeSplitHeader(line)
		if !ok {
			return headers, pos, nil
		}
		if len(headers) == mimeMaxHeaders {
			if limits {
				return nil, 0, ErrMIMEHeaderLimit
			}
			return headers, pos, nil
		}
		headers = append(headers, Header{Name: name, Value: value})
		size += len(line)
		pos = next
	}
	return headers, len(p), nil
}

// mimeLine returns the line starting at pos without its LF or CRLF, and the offset after it.
func mimeLine(p []byte, pos int) ([]byte, int) {
	end := bytes.IndexByte(p[pos:], '\n')
	var line []byte
	next := len(p)
	if end < 0 {
		line = p[pos:]
	} else {
		line = p[pos : pos+end]
		next = pos + end + 1
	}
	return bytes.TrimSuffix(line, []byte{'\r'}), next
}

// mimeSplitHeader splits "Name: value". The name must be a non-empty run of visible ASCII other
// than ':'; anything else is not a header line.
func mimeSplitHeader(line []byte) (name, value string, ok bool) {
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return "", "", false
	}
	n := bytes.TrimRight(line[:i], " \t")
	if len(n) == 0 {
		return "", "", false
	}
	for _, c := range n {
		if c <= ' ' || c >= 0x7f {
			return "", "", false
		}
	}
	return string(n), strings.TrimSpace(mimeValid(line[i+1:])), true
}

// mimeValid converts b to a string, replacing invalid UTF-8 with U+FFFD.
func mimeValid(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return string(bytes.ToValidUTF8(b, []byte("\uFFFD")))
}

// Get returns the value of the first header called name (case-insensitive), or "".
func (m *MIMEMessage) Get(name string) string {
	if m == nil {
		return ""
	}
	for _, h := range m.Headers {
		if strings.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	return ""
}

// Has reports whether a header called name (case-insensitive) is present, even if empty.
func (m *MIMEMessage) Has(name string) bool {
	if m == nil {
		return false
	}
	for _, h := range m.Headers {
		if strings.EqualFold(h.Name, name) {
			return true
		}
	}
	return false
}

// ContentType returns the media type of the Content-Type header, lower-cased and without
// parameters ("text/plain"), or "" when the header is missing.
func (m *MIMEMessage) ContentType() string {
	ct, _, _ := strings.Cut(m.Get("Content-Type"), ";")
	return strings.ToLower(strings.TrimSpace(ct))
}

// Charset returns the charset parameter of the Content-Type header, lower-cased and unquoted
// ("utf-8"), or "" when there is none. "; charset=" and ";charset=" are both accepted.
func (m *MIMEMessage) Charset() string {
	_, params, _ := strings.Cut(m.Get("Content-Type"), ";")
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		k, v, ok := strings.Cut(p, "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "charset") {
			return strings.ToLower(strings.Trim(strings.TrimSpace(v), `"'`))
		}
	}
	return ""
}

// Marshal renders the message for the wire: each header as "Name: Value" ("Name:" when the
// value is empty) with CRLF, a blank line, then the body unchanged. CR and LF inside names or values are replaced by spaces so a
// header can never inject another one. The result may exceed MaxMSGPayload; callers check.
func (m *MIMEMessage) Marshal() []byte {
	n := 2 + len(m.Body)
	for _, h := range m.Headers {
		n += len(h.Name) + len(h.Value) + 4
	}
	b := make([]byte, 0, n)
	for _, h := range m.Headers {
		b = mimeAppendClean(b, h.Name)
		b = append(b, ':')
		if h.Value != "" {
			b = append(b, ' ')
			b = mimeAppendClean(b, h.Value)
		}
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n"...)
	return append(b, m.Body...)
}

func mimeAppendClean(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		b = append(b, c)
	}
	return b
}

// Text returns the body as text for display. CRLF and lone CR become \n. With charset UTF-8 (or no
// charset and a body that is valid UTF-8, which is what every current client sends), invalid
// sequences are replaced by U+FFFD. With charset ISO-8859-1/windows-1252, or no charset and a body
// that is not valid UTF-8 (historical clients, docs/protocol.md §4.5), bytes are decoded as
// windows-1252. Any other charset is treated like UTF-8.
func (m *MIMEMessage) Text() string {
	if m == nil {
		return ""
	}
	var s string
	switch cs := m.Charset(); cs {
	case "iso-8859-1", "iso8859-1", "latin1", "latin-1", "windows-1252", "cp1252", "us-ascii", "ascii":
		s = mimeDecode1252(m.Body)
	case "":
		if utf8.Valid(m.Body) {
			s = string(m.Body)
		} else {
			s = mimeDecode1252(m.Body)
		}
	default:
		s = mimeValid(m.Body)
	}
	if strings.IndexByte(s, '\r') >= 0 {
		s = strings.ReplaceAll(s, "\r\n", "\n")
		s = strings.ReplaceAll(s, "\r", "\n")
	}
	return s
}

// mimeCP1252 maps windows-1252 bytes 0x80–0x9F; the rest of the byte range is ISO-8859-1.
var mimeCP1252 = [32]rune{
	'€', '\u0081', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u008d', 'Ž', '\u008f',
	'\u0090', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u009d', 'ž', 'Ÿ',
}

func mimeDecode1252(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b) + len(b)/4)
	for _, c := range b {
		switch {
		case c < 0x80:
			sb.WriteByte(c)
		case c < 0xa0:
			sb.WriteRune(mimeCP1252[c-0x80])
		default:
			sb.WriteRune(rune(c))
		}
	}
	return sb.String()
}

// BodyHeaders parses the body as header-style "Name: value" lines, the way datacast, invitation,
// system and mail-data messages carry their fields. It stops at the first blank line or line
// that is not a field, and keeps at most 128 fields. It never fails.
func (m *MIMEMessage) BodyHeaders() []Header {
	if m == nil {
		return nil
	}
	h, _, _ := mimeParseHeaderBlock(m.Body, false)
	return h
}

// mimeField returns the value of field name from the headers, or else from the body fields.
func (m *MIMEMessage) mimeField(name string) (string, bool) {
	if m.Has(name) {
		return m.Get(name), true
	}
	for _, h := range m.BodyHeaders() {
		if strings.EqualFold(h.Name, name) {
			return h.Value, true
		}
	}
	return "", false
}
