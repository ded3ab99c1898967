package msn

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// MSNSLP: the text messages of session 0 that open, answer and close P2P sessions.

// Application GUIDs (EUF-GUID) and SLP content types.
const (
	EUFObject = "{A4268EEC-FEC5-49E5-95C3-F126696BDBF6}"
	EUFFile   = "{5D3E02AB-6190-11D3-BBBB-00C04F795683}"

	slpSessionReq   = "application/x-msnmsgr-sessionreqbody"
	slpTransReq     = "application/x-msnmsgr-transreqbody"
	slpTransResp    = "application/x-msnmsgr-transrespbody"
	slpSessionClose = "application/x-msnmsgr-sessionclosebody"
)

// Caps of the SLP layer against hostile peers.
const (
	maxSLPSize     = 64 << 10
	maxSLPContext  = 32 << 10
	maxSLPHeaders  = 64
	fileContextV2  = 574
	fileContextV3  = 638
	fileNameOffset = 20
	fileNameBytes  = 520
)

// SLPMessage is one MSNSLP request (INVITE, BYE) or response (Code set).
type SLPMessage struct {
	Method string // "INVITE", "BYE"; "" for a response
	Code   int    // response code (200, 603…); 0 for a request
	Reason string // response reason ("OK", "Decline")
	To     string // handle, without "<msnmsgr:" … ">"
	From   string
	Branch string // Via branch, "{GUID}"
	CSeq   int
	CallID string
	// ContentType of the body; Body holds its "Key: value" lines in order.
	ContentType string
	Body        []Header
}

// BodyValue returns the value of the body field name ("" when absent).
func (m *SLPMessage) BodyValue(name string) string {
	for _, h := range m.Body {
		if strings.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	return ""
}

// Marshal returns the SLP text, NUL included, with Content-Length counting the body and its NUL.
func (m *SLPMessage) Marshal() []byte {
	var body strings.Builder
	for _, h := range m.Body {
		body.WriteString(h.Name + ": " + h.Value + "\r\n")
	}
	body.WriteString("\r\n")
	var b strings.Builder
	if m.Method != "" {
		b.WriteString(m.Method + " MSNMSGR:" + m.To + " MSNSLP/1.0\r\n")
	} else {
		b.WriteString("MSNSLP/1.0 " + strconv.Itoa(m.Code) + " " + m.Reason + "\r\n")
	}
	b.WriteString("To: <msnmsgr:" + m.To + ">\r\n")
	b.WriteString("From: <msnmsgr:" + m.From + ">\r\n")
	b.WriteString("Via: MSNSLP/1.0/TLP ;branch=" + m.Branch + "\r\n")
	b.WriteString("CSeq: " + strconv.Itoa(m.CSeq) + " \r\n")
	b.WriteString("Call-ID: " + m.CallID + "\r\n")
	b.WriteString("Max-Forwards: 0\r\n")
	b.WriteString("Content-Type: " + m.ContentType + "\r\n")
	b.WriteString("Content-Length: " + strconv.Itoa(body.Len()+1) + "\r\n\r\n")
	b.WriteString(body.String())
	b.WriteByte(0)
	return []byte(b.String())
}

// ErrSLPMalformed marks SLP text that cannot be parsed.
var ErrSLPMalformed = errors.New("msn: malformed slp message")

// ParseSLP parses SLP text (a whole P2P session-0 message). A trailing NUL and anything after
// the body's Content-Length are ignored; a missing Content-Length takes the rest.
func ParseSLP(b []byte) (*SLPMessage, error) {
	if len(b) > maxSLPSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrSLPMalformed, len(b))
	}
	s := string(b)
	head, rest, ok := strings.Cut(s, "\r\n\r\n")
	if !ok {
		return nil, fmt.Errorf("%w: no end of headers", ErrSLPMalformed)
	}
	lines := strings.Split(head, "\r\n")
	if len(lines) > maxSLPHeaders {
		return nil, fmt.Errorf("%w: %d header lines", ErrSLPMalformed, len(lines))
	}
	m := &SLPMessage{}
	start := strings.Fields(lines[0])
	switch {
	case len(start) >= 3 && start[0] == "MSNSLP/1.0":
		code, err := strconv.Atoi(start[1])
		if err != nil || code < 100 || code > 999 {
			return nil, fmt.Errorf("%w: bad status %q", ErrSLPMalformed, truncate(start[1], 8))
		}
		m.Code, m.Reason = code, strings.Join(start[2:], " ")
	case len(start) == 3 && start[2] == "MSNSLP/1.0" && (start[0] == "INVITE" || start[0] == "BYE" || start[0] == "ACK"):
		m.Method = start[0]
	default:
		return nil, fmt.Errorf("%w: start line %q", ErrSLPMalformed, truncate(lines[0], 48))
	}
	length := -1
	for _, l := range lines[1:] {
		name, value, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "to":
			m.To = slpAddress(value)
		case "from":
			m.From = slpAddress(value)
		case "via":
			if _, br, ok := strings.Cut(value, "branch="); ok {
				m.Branch = strings.TrimSpace(br)
			}
		case "cseq":
			m.CSeq, _ = strconv.Atoi(value)
		case "call-id":
			m.CallID = value
		case "content-type":
			m.ContentType = strings.ToLower(value)
		case "content-length":
			n, err := strconv.Atoi(value)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("%w: bad Content-Length %q", ErrSLPMalformed, truncate(value, 16))
			}
			length = n
		}
	}
	if m.CallID == "" {
		return nil, fmt.Errorf("%w: no Call-ID", ErrSLPMalformed)
	}
	if length >= 0 && length < len(rest) {
		rest = rest[:length]
	}
	rest = strings.TrimRight(rest, "\x00")
	for _, l := range strings.Split(rest, "\r\n") {
		name, value, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		if len(m.Body) >= maxSLPHeaders {
			return nil, fmt.Errorf("%w: too many body fields", ErrSLPMalformed)
		}
		m.Body = append(m.Body, Header{Name: strings.TrimSpace(name), Value: strings.TrimSpace(value)})
	}
	return m, nil
}

// slpAddress strips "<msnmsgr:" and ">" from an SLP address and lower-cases it.
func slpAddress(v string) string {
	v = strings.TrimSuffix(strings.TrimPrefix(v, "<"), ">")
	if len(v) >= 8 && strings.EqualFold(v[:8], "msnmsgr:") {
		v = v[8:]
	}
	return strings.ToLower(v)
}

// newGUID returns a random GUID in upper-case hex within braces.
func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	const hex = "0123456789ABCDEF"
	out := make([]byte, 0, 38)
	out = append(out, '{')
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hex[c>>4], hex[c&15])
	}
	return string(append(out, '}'))
}

// newSLPResponse returns the response to req: same branch and Call-ID, To/From swapped, CSeq 1.
func newSLPResponse(req *SLPMessage, code int, reason, contentType string, body []Header) *SLPMessage {
	return &SLPMessage{Code: code, Reason: reason, To: req.From, From: req.To, Branch: req.Branch,
		CSeq: 1, CallID: req.CallID, ContentType: contentType, Body: body}
}

// objectContext is the Context of an object INVITE: base64 of the msnobj XML plus one NUL.
func objectContext(o MSNObject) string {
	return base64.StdEncoding.EncodeToString(append([]byte(o.XML()), 0))
}

// parseObjectContext decodes an object INVITE's Context, with or without the trailing NUL.
func parseObjectContext(ctx string) (MSNObject, error) {
	if len(ctx) > maxSLPContext {
		return MSNObject{}, fmt.Errorf("context of %d bytes", len(ctx))
	}
	b, err := base64.StdEncoding.DecodeString(ctx)
	if err != nil {
		return MSNObject{}, fmt.Errorf("context is not base64: %w", err)
	}
	return ParseMSNObject(strings.TrimRight(string(b), "\x00"))
}

// FileContext is the binary Context of a file INVITE.
type FileContext struct {
	Size int64
	Name string // sanitised: no path, no control characters
}

// newFileContext builds a version 2 (MSN 7.0) Context: no preview.
func newFileContext(name string, size int64) []byte {
	b := make([]byte, fileContextV2)
	le := binary.LittleEndian
	le.PutUint32(b[0:], fileContextV2)
	le.PutUint32(b[4:], 2)
	le.PutUint64(b[8:], uint64(size))
	le.PutUint32(b[16:], 1)
	u := encodeUTF16LE(name)
	if len(u) > fileNameBytes-2 {
		u = u[:fileNameBytes-2]
	}
	copy(b[fileNameOffset:], u)
	le.PutUint32(b[570:], 0xFFFFFFFF)
	return b
}

// ParseFileContext decodes a file INVITE's binary Context (version 2 or 3; the length field is
// not trusted). The name loses any path and control characters; an empty result is "file".
func ParseFileContext(b []byte) (FileContext, error) {
	var fc FileContext
	if len(b) < fileNameOffset+fileNameBytes {
		return fc, fmt.Errorf("file context of %d bytes", len(b))
	}
	le := binary.LittleEndian
	size := le.Uint64(b[8:])
	if size > 1<<62 {
		return fc, fmt.Errorf("file size %d", size)
	}
	fc.Size = int64(size)
	fc.Name = SanitizeFileName(decodeUTF16LE(b[fileNameOffset : fileNameOffset+fileNameBytes]))
	return fc, nil
}

// SanitizeFileName keeps the last path element of name and drops control and format
// characters; "", "." and ".." become "file".
func SanitizeFileName(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if r == unicode.ReplacementChar || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == ':' {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	if name == "" || name == "." || name == ".." {
		return "file"
	}
	return truncateRunes(name, 255)
}

func truncateRunes(s string, n int) string {
	r := []rune(s)
	if len(r) > n {
		return string(r[:n])
	}
	return s
}
