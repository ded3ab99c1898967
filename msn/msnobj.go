package msn

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
)

// maxMSNObjectXML bounds the msnobj text ParseMSNObject accepts; real ones are under 1 KiB.
const maxMSNObjectXML = 4096

// ParseMSNObject parses the decoded XML of an msnobj ("<msnobj Creator=… />"). Attributes are
// read by name, in any order; unknown ones are ignored. Creator, a non-zero Size and Type, and
// SHA1D are required. SHA1C is kept as given and not checked: newer clients compute it
// differently, and SHA1D with Size is what identifies the data. An attribute-less "<msnobj/>"
// (Escargot's "no picture") is an error.
func ParseMSNObject(xml string) (MSNObject, error) {
	var o MSNObject
	if len(xml) > maxMSNObjectXML {
		return o, fmt.Errorf("msnobj: %d bytes, over %d", len(xml), maxMSNObjectXML)
	}
	s := strings.TrimSpace(xml)
	if !strings.HasPrefix(s, "<msnobj") {
		return o, errors.New("msnobj: not an msnobj tag")
	}
	s = strings.TrimPrefix(s, "<msnobj")
	end := strings.Index(s, ">")
	if end < 0 {
		return o, errors.New("msnobj: unterminated tag")
	}
	s = strings.TrimSuffix(strings.TrimSpace(s[:end]), "/")
	attrs, err := parseXMLAttrs(s)
	if err != nil {
		return o, fmt.Errorf("msnobj: %w", err)
	}
	o.Creator = strings.ToLower(attrs["Creator"])
	o.Location = attrs["Location"]
	o.SHA1D, o.SHA1C = attrs["SHA1D"], attrs["SHA1C"]
	o.Stamp = attrs["stamp"]
	o.friendlyRaw = attrs["Friendly"]
	if o.friendlyRaw != "" {
		o.Friendly = decodeFriendly(o.friendlyRaw)
	}
	size, err := strconv.ParseInt(attrs["Size"], 10, 64)
	if err != nil || size <= 0 {
		return MSNObject{}, fmt.Errorf("msnobj: bad Size %q", truncate(attrs["Size"], 24))
	}
	o.Size = size
	typ, err := strconv.Atoi(attrs["Type"])
	if err != nil || typ <= 0 || typ > 1000 {
		return MSNObject{}, fmt.Errorf("msnobj: bad Type %q", truncate(attrs["Type"], 24))
	}
	o.Type = typ
	if o.Creator == "" || !validHandle(o.Creator) {
		return MSNObject{}, errors.New("msnobj: missing or invalid Creator")
	}
	if d, err := base64.StdEncoding.DecodeString(o.SHA1D); err != nil || len(d) != sha1.Size {
		return MSNObject{}, fmt.Errorf("msnobj: bad SHA1D %q", truncate(o.SHA1D, 40))
	}
	return o, nil
}

// parseXMLAttrs reads `Name="value"` pairs separated by spaces. Values are XML-unescaped.
func parseXMLAttrs(s string) (map[string]string, error) {
	out := make(map[string]string)
	for n := 0; ; n++ {
		s = strings.TrimLeft(s, " \t\r\n")
		if s == "" {
			return out, nil
		}
		if n >= 32 {
			return nil, errors.New("too many attributes")
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return nil, errors.New("malformed attribute")
		}
		name := strings.TrimSpace(s[:eq])
		s = strings.TrimLeft(s[eq+1:], " ")
		if s == "" || (s[0] != '"' && s[0] != '\'') {
			return nil, fmt.Errorf("unquoted value of %q", truncate(name, 24))
		}
		q := s[0]
		close := strings.IndexByte(s[1:], q)
		if close < 0 {
			return nil, fmt.Errorf("unterminated value of %q", truncate(name, 24))
		}
		if _, dup := out[name]; !dup {
			out[name] = xmlUnescape(s[1 : 1+close])
		}
		s = s[close+2:]
	}
}

var xmlUnescaper = strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">", "&quot;", "\"", "&apos;", "'")

func xmlUnescape(s string) string {
	if !strings.Contains(s, "&") {
		return s
	}
	return xmlUnescaper.Replace(s)
}

var xmlAttrEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "\"", "&quot;")

// decodeFriendly turns the base64 UTF-16LE Friendly attribute into text, without its NUL
// terminator; text that is not valid base64 is returned as "".
func decodeFriendly(b64 string) string {
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(b) > 1024 {
		return ""
	}
	return decodeUTF16LE(b)
}

// decodeUTF16LE decodes UTF-16LE up to the first NUL code unit.
func decodeUTF16LE(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		v := binary.LittleEndian.Uint16(b[i:])
		if v == 0 {
			break
		}
		u = append(u, v)
	}
	return string(utf16.Decode(u))
}

// encodeUTF16LE encodes s as UTF-16LE followed by one NUL code unit.
func encodeUTF16LE(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 0, 2*len(u)+2)
	for _, v := range u {
		b = binary.LittleEndian.AppendUint16(b, v)
	}
	return append(b, 0, 0)
}

// NewMSNObject returns the msnobj of data created by creator, with Size, SHA1D and SHA1C
// computed. An empty location becomes "0" (what clients write for display pictures).
func NewMSNObject(creator string, typ int, location, friendly string, data []byte) MSNObject {
	if location == "" {
		location = "0"
	}
	d := sha1.Sum(data)
	o := MSNObject{
		Creator:  strings.ToLower(creator),
		Size:     int64(len(data)),
		Type:     typ,
		Location: location,
		Friendly: friendly,
		SHA1D:    base64.StdEncoding.EncodeToString(d[:]),
	}
	o.friendlyRaw = base64.StdEncoding.EncodeToString(encodeUTF16LE(friendly))
	o.SHA1C = o.computeSHA1C()
	return o
}

// friendlyAttr is the Friendly attribute as sent: the one parsed, or the encoding of Friendly.
func (o MSNObject) friendlyAttr() string {
	if o.friendlyRaw != "" {
		return o.friendlyRaw
	}
	return base64.StdEncoding.EncodeToString(encodeUTF16LE(o.Friendly))
}

// computeSHA1C is SHA-1 over "Creator"+v+"Size"+v+"Type"+v+"Location"+v+"Friendly"+v+"SHA1D"+v.
func (o MSNObject) computeSHA1C() string {
	s := "Creator" + o.Creator + "Size" + strconv.FormatInt(o.Size, 10) + "Type" + strconv.Itoa(o.Type) +
		"Location" + o.Location + "Friendly" + o.friendlyAttr() + "SHA1D" + o.SHA1D
	c := sha1.Sum([]byte(s))
	return base64.StdEncoding.EncodeToString(c[:])
}

// XML returns the msnobj as official clients write it (attribute order Creator, Size, Type,
// Location, Friendly, SHA1D, SHA1C, then stamp when set). The zero MSNObject gives "".
func (o MSNObject) XML() string {
	if o.Creator == "" {
		return ""
	}
	var b strings.Builder
	attr := func(name, v string) {
		b.WriteString(" " + name + "=\"" + xmlAttrEscaper.Replace(v) + "\"")
	}
	b.WriteString("<msnobj")
	attr("Creator", o.Creator)
	attr("Size", strconv.FormatInt(o.Size, 10))
	attr("Type", strconv.Itoa(o.Type))
	attr("Location", o.Location)
	attr("Friendly", o.friendlyAttr())
	attr("SHA1D", o.SHA1D)
	sha1c := o.SHA1C
	if sha1c == "" {
		sha1c = o.computeSHA1C()
	}
	attr("SHA1C", sha1c)
	if o.Stamp != "" {
		attr("stamp", o.Stamp)
	}
	b.WriteString("/>")
	return b.String()
}

// EncodeMSNObject percent-encodes an msnobj for CHG, NLN and ILN: every byte outside
// A-Za-z0-9-_.~ is written as %XX.
func EncodeMSNObject(xml string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(xml); i++ {
		c := xml[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
