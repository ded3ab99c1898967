package msn

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/rs/zerolog"
)

// Switchboard payload limits (PROTOCOL.md §4.8).
const (
	// MaxMSGPayload is the hard limit on a switchboard MSG payload, headers and body together.
	// Servers close the switchboard on anything larger.
	MaxMSGPayload = 1664
	// MaxTextBody is the recommended maximum number of UTF-8 body bytes (after \n → \r\n
	// expansion) in one text message; it leaves room for the headers NewTextMessage writes.
	MaxTextBody = 1400
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

// MIMEMessage is the payload of an MSG command: a header block and a raw body (PROTOCOL.md
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

// Text returns the body as text for display. CRLF and lone CR become \n. With charset UTF-8
// (or no charset and a body that is valid UTF-8, which is what every current client sends),
// invalid sequences are replaced by U+FFFD. With charset ISO-8859-1/windows-1252, or no charset
// and a body that is not valid UTF-8 (historical clients, PROTOCOL.md §4.5), bytes are decoded
// as windows-1252. Any other charset is treated like UTF-8.
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

// TextFormat is the parsed X-MMS-IM-Format header of a text message (PROTOCOL.md §4.6).
// Color is "rrggbb" (RGB, lower-case hex) converted from the wire's BGR CO= value, or "" when
// absent or unparseable; Charset and PitchFamily are the CS= and PF= hex bytes as sent
// (lower-cased). The zero value means "no formatting".
type TextFormat struct {
	Font                            string
	Bold, Italic, Underline, Strike bool
	Color                           string
	Charset, PitchFamily            string
	RightToLeft                     bool
}

// Default values NewTextMessage uses without a format (libpurple's fixed header).
const (
	defaultFont        = "Segoe UI"
	defaultFormatValue = "FN=Segoe%20UI; EF=; CO=0; CS=1; PF=0"
)

// ParseTextFormat parses an X-MMS-IM-Format value. It is tolerant: keys in any case and any
// order, missing keys, extra blanks around ';' and '=', unknown keys ignored, short or
// zero-dropped CO values ("ff" is red, "0" black), a leading '#' on CO. FN is percent-decoded
// with Decode. It never returns nil.
func ParseTextFormat(v string) *TextFormat {
	f := &TextFormat{}
	for v != "" {
		var part string
		part, v, _ = strings.Cut(v, ";")
		k, val, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch strings.ToUpper(strings.TrimSpace(k)) {
		case "FN":
			f.Font = strings.TrimSpace(Decode(val))
		case "EF":
			for _, c := range strings.ToUpper(val) {
				switch c {
				case 'B':
					f.Bold = true
				case 'I':
					f.Italic = true
				case 'U':
					f.Underline = true
				case 'S':
					f.Strike = true
				}
			}
		case "CO":
			f.Color = mimeBGRToRGB(val)
		case "CS":
			f.Charset = mimeHexByte(val)
		case "PF":
			f.PitchFamily = mimeHexByte(val)
		case "RL":
			f.RightToLeft = val == "1"
		}
	}
	return f
}

// mimeBGRToRGB converts a wire CO value (hex bbggrr, leading zeros dropped) to "rrggbb", or ""
// when it is not 1–6 hex digits.
func mimeBGRToRGB(v string) string {
	v = strings.TrimPrefix(v, "#")
	if v == "" || len(v) > 6 {
		return ""
	}
	n, err := strconv.ParseUint(v, 16, 32)
	if err != nil {
		return ""
	}
	r, g, b := n&0xff, n>>8&0xff, n>>16&0xff
	return fmt.Sprintf("%02x%02x%02x", r, g, b)
}

// mimeRGBToBGR converts "rrggbb" (or "#rrggbb", or "rgb") to the wire CO value, "0" when the
// colour is empty or invalid.
func mimeRGBToBGR(c string) string {
	c = strings.TrimPrefix(strings.TrimSpace(c), "#")
	if len(c) == 3 {
		c = string([]byte{c[0], c[0], c[1], c[1], c[2], c[2]})
	}
	if len(c) != 6 {
		return "0"
	}
	n, err := strconv.ParseUint(c, 16, 32)
	if err != nil {
		return "0"
	}
	r, g, b := n>>16&0xff, n>>8&0xff, n&0xff
	return strconv.FormatUint(b<<16|g<<8|r, 16)
}

// mimeHexByte returns v lower-cased when it is one or two hex digits, else "".
func mimeHexByte(v string) string {
	if len(v) == 0 || len(v) > 2 {
		return ""
	}
	for i := 0; i < len(v); i++ {
		if !isHex(v[i]) {
			return ""
		}
	}
	return strings.ToLower(v)
}

// String renders f as an X-MMS-IM-Format value in the official client's order: FN, EF (letters
// in the order B, I, U, S), CO (BGR, leading zeros dropped), CS, PF, then "RL=1" when
// RightToLeft. Empty fields get defaults (FN Segoe UI, CO 0, CS 1, PF 0), so the zero
// TextFormat renders as "FN=Segoe%20UI; EF=; CO=0; CS=1; PF=0". The font name is
// percent-encoded, ';' included.
func (f *TextFormat) String() string {
	if f == nil {
		return defaultFormatValue
	}
	font := strings.TrimSpace(f.Font)
	if font == "" {
		font = defaultFont
	}
	var b strings.Builder
	b.WriteString("FN=")
	b.WriteString(strings.ReplaceAll(Encode(font), ";", "%3B"))
	b.WriteString("; EF=")
	for _, e := range []struct {
		on bool
		c  byte
	}{{f.Bold, 'B'}, {f.Italic, 'I'}, {f.Underline, 'U'}, {f.Strike, 'S'}} {
		if e.on {
			b.WriteByte(e.c)
		}
	}
	b.WriteString("; CO=")
	b.WriteString(mimeRGBToBGR(f.Color))
	b.WriteString("; CS=")
	b.WriteString(mimeOr(mimeHexByte(f.Charset), "1"))
	b.WriteString("; PF=")
	b.WriteString(mimeOr(mimeHexByte(f.PitchFamily), "0"))
	if f.RightToLeft {
		b.WriteString("; RL=1")
	}
	return b.String()
}

func mimeOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Format returns the parsed X-MMS-IM-Format header, or nil when the message has none.
func (m *MIMEMessage) Format() *TextFormat {
	if !m.Has("X-MMS-IM-Format") {
		return nil
	}
	return ParseTextFormat(m.Get("X-MMS-IM-Format"))
}

// mimeTextHeader returns the header block NewTextMessage writes for f, blank line included.
func mimeTextHeader(f *TextFormat) string {
	return "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nX-MMS-IM-Format: " +
		f.String() + "\r\n\r\n"
}

// NewTextMessage builds a text/plain payload: MIME-Version, "Content-Type: text/plain;
// charset=UTF-8", X-MMS-IM-Format (f.String(); the default "FN=Segoe%20UI; EF=; CO=0; CS=1;
// PF=0" when f is nil), a blank line and the body with every line break (\n, \r\n or a lone \r)
// written as \r\n. Invalid UTF-8 in text is replaced by U+FFFD. It does not enforce any size
// limit: split long text with SplitText(text, TextBodyLimit(f)) first.
func NewTextMessage(text string, f *TextFormat) []byte {
	h := mimeTextHeader(f)
	text = mimeNormalizeText(text)
	b := make([]byte, 0, len(h)+len(text)+strings.Count(text, "\n"))
	b = append(b, h...)
	for i := 0; i < len(text); i++ {
		if text[i] == '\n' {
			b = append(b, '\r')
		}
		b = append(b, text[i])
	}
	return b
}

// TextBodyLimit returns the largest body, in wire bytes, that NewTextMessage can carry with f
// without the payload exceeding MaxMSGPayload, capped at MaxTextBody. Pass it to SplitText.
func TextBodyLimit(f *TextFormat) int {
	return min(MaxTextBody, MaxMSGPayload-len(mimeTextHeader(f)))
}

// mimeNormalizeText makes s valid UTF-8 and turns CRLF and lone CR into LF.
func mimeNormalizeText(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.IndexByte(s, '\r') >= 0 {
		s = strings.ReplaceAll(s, "\r\n", "\n")
		s = strings.ReplaceAll(s, "\r", "\n")
	}
	return s
}

// NewTypingMessage builds the typing notification for handle (text/x-msmsgscontrol with
// TypingUser, body "\r\n"), to be sent with ack mode U. CR/LF in handle are replaced by spaces.
func NewTypingMessage(handle string) []byte {
	m := MIMEMessage{
		Headers: []Header{
			{"MIME-Version", "1.0"},
			{"Content-Type", "text/x-msmsgscontrol"},
			{"TypingUser", handle},
		},
		Body: []byte("\r\n"),
	}
	return m.Marshal()
}

// NewNudgeMessage builds a nudge (text/x-msnmsgr-datacast, body "ID: 1\r\n\r\n"), to be sent
// with ack mode N.
func NewNudgeMessage() []byte {
	return []byte("MIME-Version: 1.0\r\nContent-Type: text/x-msnmsgr-datacast\r\n\r\nID: 1\r\n\r\n")
}

// NewInviteCancel builds the reply that declines a legacy text/x-msmsgsinvite invitation
// (Invitation-Command: CANCEL, the invitation's cookie, Cancel-Code: REJECT_NOT_INSTALLED), to be
// sent with ack mode U. CR/LF in cookie are replaced by spaces.
func NewInviteCancel(cookie string) []byte {
	m := MIMEMessage{
		Headers: []Header{
			{"MIME-Version", "1.0"},
			{"Content-Type", "text/x-msmsgsinvite; charset=UTF-8"},
		},
	}
	b := m.Marshal()
	b = append(b, "Invitation-Command: CANCEL\r\nInvitation-Cookie: "...)
	b = mimeAppendClean(b, cookie)
	return append(b, "\r\nCancel-Code: REJECT_NOT_INSTALLED\r\n"...)
}

// InviteInfo holds the fields of a legacy text/x-msmsgsinvite message (PROTOCOL.md §4.7).
type InviteInfo struct {
	Command string // Invitation-Command: INVITE, ACCEPT or CANCEL
	Cookie  string // Invitation-Cookie, echo it in NewInviteCancel
	AppName string // Application-Name
	AppGUID string // Application-GUID
}

// ParseInvite reads the invitation fields from m's body (or headers). ok is false when m is not
// a text/x-msmsgsinvite message.
func ParseInvite(m *MIMEMessage) (info InviteInfo, ok bool) {
	if m.ContentType() != "text/x-msmsgsinvite" {
		return InviteInfo{}, false
	}
	info.Command, _ = m.mimeField("Invitation-Command")
	info.Cookie, _ = m.mimeField("Invitation-Cookie")
	info.AppName, _ = m.mimeField("Application-Name")
	info.AppGUID, _ = m.mimeField("Application-GUID")
	return info, true
}

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

// Chunk assembler defaults and limits.
const (
	chunkDefaultMax = 1024 // libpurple accepts fewer than 1024 chunks
	chunkDefaultTTL = time.Minute
	chunkMaxPending = 64      // incomplete messages held at once
	chunkMaxMessage = 1 << 20 // body bytes of one message
	chunkMaxTotal   = 4 << 20 // body bytes held over all incomplete messages
)

// ChunkAssembler reassembles multi-part messages (PROTOCOL.md §4.8): the first part carries
// "Message-ID: {GUID}" and "Chunks: N" with all the normal headers; the other N-1 carry the same
// Message-ID and "Chunk: k" (1 ≤ k < N) and only continue the body. Parts may arrive in any
// order; they are grouped by sender and Message-ID.
//
// Memory is bounded: at most maxChunks parts per message, 1 MiB of body per message, 64
// incomplete messages and 4 MiB over all of them (the oldest incomplete message is evicted to
// make room), and an incomplete message is discarded ttl after its first part arrived. A
// discarded message is reported to the OnDrop callback, if set. Safe for concurrent use.
type ChunkAssembler struct {
	mu        sync.Mutex
	maxChunks int
	ttl       time.Duration
	now       func() time.Time
	onDrop    func(from, messageID string)
	pending   map[chunkKey]*chunkEntry
	total     int
}

type chunkKey struct{ from, id string }

type chunkEntry struct {
	first   *MIMEMessage
	n       int // Chunks: from the first part, 0 until it arrives
	parts   map[int][]byte
	size    int
	created time.Time
}

// NewChunkAssembler returns an assembler that accepts at most maxChunks parts per message
// (1024 when ≤ 0) and discards incomplete messages after ttl (one minute when ≤ 0).
func NewChunkAssembler(maxChunks int, ttl time.Duration) *ChunkAssembler {
	if maxChunks <= 0 {
		maxChunks = chunkDefaultMax
	}
	if ttl <= 0 {
		ttl = chunkDefaultTTL
	}
	return &ChunkAssembler{
		maxChunks: maxChunks,
		ttl:       ttl,
		now:       time.Now,
		pending:   make(map[chunkKey]*chunkEntry),
	}
}

// OnDrop sets fn to be called, outside the assembler's lock, with the sender and Message-ID of
// every incomplete message the assembler discards (expired, evicted, over a limit, or
// inconsistent), so the loss can be reported. fn must not block for long.
func (a *ChunkAssembler) OnDrop(fn func(from, messageID string)) {
	a.mu.Lock()
	a.onDrop = fn
	a.mu.Unlock()
}

// Pending returns the number of incomplete messages held.
func (a *ChunkAssembler) Pending() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.pending)
}

// Add feeds one received message from sender from. A message without Message-ID, or without
// Chunks and Chunk, is not chunked: Add returns m itself and true. So is a first part whose
// Chunks value is not a number from 1 to maxChunks (its body alone is the best there is).
// Otherwise Add keeps the part and returns nil and false, until the last missing part arrives:
// then it returns a new message with the first part's headers (Message-ID and Chunks removed)
// and the bodies of all parts in Chunk order, and true. Duplicate parts are ignored; a
// continuation part that can never fit (k out of range) is dropped. The assembler keeps a
// reference to a held first part: do not modify m after passing it in.
func (a *ChunkAssembler) Add(from string, m *MIMEMessage) (*MIMEMessage, bool) {
	if m == nil {
		return nil, false
	}
	id := m.Get("Message-ID")
	chunksV, chunkV := m.Get("Chunks"), m.Get("Chunk")
	isFirst, isCont := m.Has("Chunks"), m.Has("Chunk") && !m.Has("Chunks")
	if id == "" || !isFirst && !isCont {
		return m, true
	}
	var dropped []chunkKey
	defer func() { a.reportDrops(dropped) }()

	a.mu.Lock()
	defer a.mu.Unlock()
	dropped = a.expireLocked(dropped)

	key := chunkKey{from, id}
	var index int
	if isFirst {
		n, err := strconv.Atoi(strings.TrimSpace(chunksV))
		if err != nil || n < 1 || n > a.maxChunks {
			if e := a.pending[key]; e != nil {
				a.removeLocked(key, e)
				dropped = append(dropped, key)
			}
			return m, true
		}
		index = 0
		e := a.pending[key]
		if e == nil && n == 1 {
			return chunkJoin(m, nil, 1), true
		}
		if e != nil && e.first != nil {
			return nil, false // duplicate first part
		}
		if e == nil {
			e, dropped = a.newEntryLocked(key, dropped)
		}
		for k, p := range e.parts {
			if k >= n { // buffered continuation that cannot belong to this message
				delete(e.parts, k)
				e.size -= len(p)
				a.total -= len(p)
			}
		}
		e.first, e.n = m, n
		if !a.growLocked(key, e, len(m.Body), &dropped) {
			return nil, false
		}
		return a.completeLocked(key, e)
	}

	k, err := strconv.Atoi(strings.TrimSpace(chunkV))
	if err != nil || k < 1 || k >= a.maxChunks {
		return nil, false
	}
	index = k
	e := a.pending[key]
	if e == nil {
		e, dropped = a.newEntryLocked(key, dropped)
	}
	if e.n != 0 && index >= e.n {
		return nil, false
	}
	if _, dup := e.parts[index]; dup {
		return nil, false
	}
	e.parts[index] = bytes.Clone(m.Body)
	if !a.growLocked(key, e, len(m.Body), &dropped) {
		return nil, false
	}
	return a.completeLocked(key, e)
}

// newEntryLocked adds an entry for key, evicting the oldest one when the table is full.
func (a *ChunkAssembler) newEntryLocked(key chunkKey, dropped []chunkKey) (*chunkEntry, []chunkKey) {
	for len(a.pending) >= chunkMaxPending {
		dropped = append(dropped, a.evictOldestLocked(key))
	}
	e := &chunkEntry{parts: make(map[int][]byte), created: a.now()}
	a.pending[key] = e
	return e, dropped
}

// growLocked accounts n more bytes to e. Over the per-message limit, e is discarded; over the
// global limit, the oldest other messages are evicted. It reports whether e is still held.
func (a *ChunkAssembler) growLocked(key chunkKey, e *chunkEntry, n int, dropped *[]chunkKey) bool {
	e.size += n
	a.total += n
	if e.size > chunkMaxMessage {
		a.removeLocked(key, e)
		*dropped = append(*dropped, key)
		return false
	}
	for a.total > chunkMaxTotal && len(a.pending) > 1 {
		*dropped = append(*dropped, a.evictOldestLocked(key))
	}
	return true
}

// evictOldestLocked removes the oldest entry other than keep and returns its key.
func (a *ChunkAssembler) evictOldestLocked(keep chunkKey) chunkKey {
	var oldest chunkKey
	var oe *chunkEntry
	for k, e := range a.pending {
		if k == keep {
			continue
		}
		if oe == nil || e.created.Before(oe.created) {
			oldest, oe = k, e
		}
	}
	if oe != nil {
		a.removeLocked(oldest, oe)
	}
	return oldest
}

func (a *ChunkAssembler) removeLocked(key chunkKey, e *chunkEntry) {
	if a.pending[key] == e {
		delete(a.pending, key)
		a.total -= e.size
	}
}

// expireLocked discards entries older than the ttl.
func (a *ChunkAssembler) expireLocked(dropped []chunkKey) []chunkKey {
	cutoff := a.now().Add(-a.ttl)
	for k, e := range a.pending {
		if e.created.Before(cutoff) {
			a.removeLocked(k, e)
			dropped = append(dropped, k)
		}
	}
	return dropped
}

// completeLocked returns the assembled message when e has every part.
func (a *ChunkAssembler) completeLocked(key chunkKey, e *chunkEntry) (*MIMEMessage, bool) {
	if e.first == nil || len(e.parts) != e.n-1 {
		return nil, false
	}
	a.removeLocked(key, e)
	return chunkJoin(e.first, e.parts, e.n), true
}

func (a *ChunkAssembler) reportDrops(keys []chunkKey) {
	if len(keys) == 0 {
		return
	}
	a.mu.Lock()
	fn := a.onDrop
	a.mu.Unlock()
	if fn == nil {
		return
	}
	for _, k := range keys {
		fn(k.from, k.id)
	}
}

// chunkJoin builds the whole message from the first part and parts 1…n-1.
func chunkJoin(first *MIMEMessage, parts map[int][]byte, n int) *MIMEMessage {
	m := &MIMEMessage{Headers: make([]Header, 0, len(first.Headers))}
	for _, h := range first.Headers {
		if strings.EqualFold(h.Name, "Message-ID") || strings.EqualFold(h.Name, "Chunks") {
			continue
		}
		m.Headers = append(m.Headers, h)
	}
	size := len(first.Body)
	for _, p := range parts {
		size += len(p)
	}
	m.Body = make([]byte, 0, size)
	m.Body = append(m.Body, first.Body...)
	for k := 1; k < n; k++ {
		m.Body = append(m.Body, parts[k]...)
	}
	return m
}

// Datacast ids (PROTOCOL.md §4.7).
const (
	DatacastNudge     = 1
	DatacastWink      = 2
	DatacastVoiceClip = 3
	DatacastAction    = 4
)

// ParseDatacastID returns the ID field of a text/x-msnmsgr-datacast message: DatacastNudge,
// DatacastWink, DatacastVoiceClip or DatacastAction; 0 for any other value, a missing ID, or a
// message of another content type.
func ParseDatacastID(m *MIMEMessage) int {
	if m.ContentType() != "text/x-msnmsgr-datacast" {
		return 0
	}
	v, _ := m.mimeField("ID")
	id, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || id < DatacastNudge || id > DatacastAction {
		return 0
	}
	return id
}

// MessageKind classifies an MSG payload by what a client should do with it.
type MessageKind int

// Message kinds. Switchboard kinds first, then the NS "MSG Hotmail Hotmail" ones.
const (
	KindUnknown           MessageKind = iota // no or unknown Content-Type: ignore (maybe log)
	KindText                                 // text/plain
	KindTyping                               // text/x-msmsgscontrol (TypingUser or RecordingUser)
	KindNudge                                // datacast ID 1
	KindDatacastOther                        // other datacasts: wink, voice clip, action
	KindInvite                               // text/x-msmsgsinvite: decline with NewInviteCancel
	KindP2P                                  // application/x-msnmsgrp2p: ignore, never answer
	KindEmoticon                             // text/x-mms-emoticon, text/x-mms-animemoticon
	KindInk                                  // image/gif, application/x-ms-ink (handwriting)
	KindClientCaps                           // text/x-clientcaps
	KindIgnored                              // text/x-keepalive, text/x-ping: ignore silently
	KindChunk                                // continuation part of a chunked message (Chunk:, no Content-Type)
	KindProfile                              // text/x-msmsgsprofile (NS)
	KindMailData                             // initial mail data or OIM notification (NS, Mail-Data)
	KindEmailNotification                    // new/active mail notifications (NS)
	KindSystemMessage                        // application/x-msmsgssystemmessage (NS)
)

var kindNames = [...]string{
	"unknown", "text", "typing", "nudge", "datacast", "invite", "p2p", "emoticon", "ink",
	"clientcaps", "ignored", "chunk", "profile", "maildata", "emailnotification", "systemmessage",
}

// String returns a short lower-case name for logs ("text", "nudge", …).
func (k MessageKind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// ClassifyMessage tells what m is from its Content-Type (case-insensitive, parameters ignored),
// and for datacasts its ID. Feed chunked parts to a ChunkAssembler first: a bare continuation
// part classifies as KindChunk. A nil message is KindUnknown.
func ClassifyMessage(m *MIMEMessage) MessageKind {
	if m == nil {
		return KindUnknown
	}
	switch ct := m.ContentType(); ct {
	case "text/plain":
		return KindText
	case "text/x-msmsgscontrol":
		return KindTyping
	case "text/x-msnmsgr-datacast":
		if ParseDatacastID(m) == DatacastNudge {
			return KindNudge
		}
		return KindDatacastOther
	case "text/x-msmsgsinvite":
		return KindInvite
	case "application/x-msnmsgrp2p":
		return KindP2P
	case "text/x-mms-emoticon", "text/x-mms-animemoticon":
		return KindEmoticon
	case "image/gif", "application/x-ms-ink":
		return KindInk
	case "text/x-clientcaps":
		return KindClientCaps
	case "text/x-keepalive", "text/x-ping":
		return KindIgnored
	case "text/x-msmsgsprofile":
		return KindProfile
	case "text/x-msmsgsinitialmdatanotification", "text/x-msmsgsoimnotification":
		return KindMailData
	case "text/x-msmsgsemailnotification", "text/x-msmsgsactivemailnotification",
		"text/x-msmsgsinitialemailnotification":
		return KindEmailNotification
	case "application/x-msmsgssystemmessage":
		return KindSystemMessage
	case "":
		if m.Has("Chunk") && m.Get("Message-ID") != "" {
			return KindChunk
		}
	}
	return KindUnknown
}

// HotmailProfile holds the fields of the NS text/x-msmsgsprofile message sent after login
// (PROTOCOL.md §3.17). The Passport MSPAuth cookie is kept out of the exported fields: read it
// with MSPAuth; String, GoString and MarshalZerologObject omit it, so the value is safe to log.
type HotmailProfile struct {
	LoginTime                 int64  // unix seconds
	MemberIDHigh, MemberIDLow string // PUID halves, decimal as sent
	Country, Language         string // "country", "lang_preference"
	ClientIP                  string // our public address as the server sees it
	ClientPort                int    // as sent, no byte swapping
	ABCHMigrated              bool   // contact and group ids are GUIDs
	EmailEnabled              bool
	mspAuth                   string
}

// ParseHotmailProfile reads the profile fields of m. Missing or malformed fields stay zero; it
// does not check the content type.
func ParseHotmailProfile(m *MIMEMessage) HotmailProfile {
	p := HotmailProfile{
		MemberIDHigh: m.Get("MemberIdHigh"),
		MemberIDLow:  m.Get("MemberIdLow"),
		Country:      m.Get("country"),
		Language:     m.Get("lang_preference"),
		ClientIP:     m.Get("ClientIP"),
		ABCHMigrated: m.Get("ABCHMigrated") == "1",
		EmailEnabled: m.Get("EmailEnabled") == "1",
		mspAuth:      m.Get("MSPAuth"),
	}
	p.LoginTime, _ = strconv.ParseInt(m.Get("LoginTime"), 10, 64)
	if port, err := strconv.Atoi(m.Get("ClientPort")); err == nil && port >= 0 && port <= 65535 {
		p.ClientPort = port
	}
	return p
}

// MSPAuth returns the Passport MSPAuth cookie (a secret: never log it).
func (p HotmailProfile) MSPAuth() string { return p.mspAuth }

// PUID returns the Passport unique id assembled from MemberIDHigh and MemberIDLow, and false
// when either is missing or not a 32-bit number.
func (p HotmailProfile) PUID() (uint64, bool) {
	hi, err1 := strconv.ParseUint(p.MemberIDHigh, 10, 32)
	lo, err2 := strconv.ParseUint(p.MemberIDLow, 10, 32)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return hi<<32 | lo, true
}

// String describes the profile for logs, without MSPAuth.
func (p HotmailProfile) String() string {
	return fmt.Sprintf("HotmailProfile{LoginTime:%d MemberID:%s/%s Country:%q Language:%q Client:%s:%d ABCHMigrated:%t}",
		p.LoginTime, p.MemberIDHigh, p.MemberIDLow, p.Country, p.Language, p.ClientIP, p.ClientPort, p.ABCHMigrated)
}

// GoString is String, so %#v does not print MSPAuth either.
func (p HotmailProfile) GoString() string { return p.String() }

// MarshalZerologObject writes the profile's fields, without MSPAuth, to a zerolog event.
func (p HotmailProfile) MarshalZerologObject(e *zerolog.Event) {
	e.Int64("login_time", p.LoginTime).
		Str("member_id_high", p.MemberIDHigh).
		Str("member_id_low", p.MemberIDLow).
		Str("country", p.Country).
		Str("language", p.Language).
		Str("client_ip", p.ClientIP).
		Int("client_port", p.ClientPort).
		Bool("abch_migrated", p.ABCHMigrated)
}

// MailData is the mailbox and offline-message summary of a Mail-Data field (PROTOCOL.md §3.17).
// TooLarge is set when the server sent "too-large" instead of XML (more than 25 offline
// messages waiting): the counts are then unknown and zero.
type MailData struct {
	InboxTotal, InboxUnread, OtherTotal, OtherUnread int
	OfflineMessages                                  int // number of <M> entries
	TooLarge                                         bool
}

// ParseMailData reads the Mail-Data field of an initial mail-data or OIM notification, from
// the headers or (as Escargot sends it) the body. ok is false when there is no Mail-Data field
// or its XML is malformed, too large (over 256 KiB) or nested too deeply. Missing counts stay 0.
func ParseMailData(m *MIMEMessage) (MailData, bool) {
	v, found := m.mimeField("Mail-Data")
	if !found {
		return MailData{}, false
	}
	v = strings.TrimSpace(v)
	if strings.EqualFold(v, "too-large") {
		return MailData{TooLarge: true}, true
	}
	var md MailData
	var path []string
	err := psmWalkXML([]byte(v), 256<<10, func(tok psmToken) {
		switch tok.kind {
		case psmStart:
			path = append(path, tok.name)
			if len(path) == 2 && tok.name == "M" {
				md.OfflineMessages++
			}
		case psmEnd:
			if len(path) > 0 {
				path = path[:len(path)-1]
			}
		case psmText:
			if len(path) != 3 || path[1] != "E" {
				return
			}
			n, err := strconv.Atoi(strings.TrimSpace(tok.text))
			if err != nil || n < 0 {
				return
			}
			switch path[2] {
			case "I":
				md.InboxTotal = n
			case "IU":
				md.InboxUnread = n
			case "O":
				md.OtherTotal = n
			case "OU":
				md.OtherUnread = n
			}
		}
	})
	if err != nil {
		return MailData{}, false
	}
	return md, true
}

// System message types (application/x-msmsgssystemmessage).
const (
	// SystemMessageMaintenance announces the server going down for maintenance in Arg1 minutes.
	SystemMessageMaintenance = 1
)

// ParseSystemMessage reads an application/x-msmsgssystemmessage: typ from "Type:" (1 means the
// server goes down for maintenance) and minutes from "Arg1:" (0 when absent or malformed). ok is
// false for another content type or a missing or non-numeric Type.
func ParseSystemMessage(m *MIMEMessage) (typ int, minutes int, ok bool) {
	if m.ContentType() != "application/x-msmsgssystemmessage" {
		return 0, 0, false
	}
	v, _ := m.mimeField("Type")
	typ, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return 0, 0, false
	}
	a, _ := m.mimeField("Arg1")
	if n, err := strconv.Atoi(strings.TrimSpace(a)); err == nil && n >= 0 {
		minutes = n
	}
	return typ, minutes, true
}
