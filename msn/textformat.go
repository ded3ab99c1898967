package msn

import (
	"fmt"
	"strconv"
	"strings"
)

// TextFormat is the parsed X-MMS-IM-Format header of a text message (docs/protocol.md §4.6).
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
