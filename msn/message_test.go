package msn

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"
)

// crlf joins lines with CRLF, the way captures show payloads line by line.
func crlf(lines ...string) string { return strings.Join(lines, "\r\n") }

// Payloads as recorded from Escargot (captures/escargot-two-accounts.txt), byte-exact.
var (
	captureText = crlf(
		"MIME-Version: 1.0",
		"Content-Type: text/plain; charset=UTF-8",
		"X-MMS-IM-Format: FN=Segoe%20UI; EF=; CO=0; CS=0; PF=0",
		"",
		"Hello B, this is A over MSNP11")
	captureTyping = crlf(
		"MIME-Version: 1.0",
		"Content-Type: text/x-msmsgscontrol",
		"TypingUser: bob@example.com",
		"", "", "")
	captureFormatted = crlf(
		"MIME-Version: 1.0",
		"Content-Type: text/plain; charset=UTF-8",
		"X-MMS-IM-Format: FN=Arial; EF=B; CO=ff; CS=0; PF=22",
		"",
		"Hi A! éè unicode ok")
	captureMailData = crlf(
		"MIME-Version: 1.0",
		"Content-Type: text/x-msmsgsinitialmdatanotification; charset=UTF-8",
		"",
		"Mail-Data: <MD><E><I>0</I><IU>0</IU><O>0</O><OU>0</OU></E><Q><QTM>409600</QTM><QNM>204800</QNM></Q></MD>",
		"")
	captureMSPAuth = "5a1e87aa3feb5aba1ebeY6+H31sTUOFkqjNTDYqAAFLr5Ote7BMrMnUIzpg860jh084QMgs5djRQLLQP0TVOFkKdWDwAJdEWcfsI9YL8otN9kSfhTaPHR1njHmG0H98O2NE/Ck6zrog3UJFmYlCnHidZk1g3AzUNVXmjZoyMSyVvoHLjQSzoGRpgHg3hHdi7zrFhcYKWD8XeNYdoz9wfA2YAAAgZIgF9kFvsy2AC0Fl/ezc/fSo6YgB9TwmXyoK0wm0F9nz5EfhHQLu2xxgsvMOiXUSFSpN1cZaNzEk/KGVa3Z33Mcu0qJqvXoLyv2VjQyI0VLH6YlW5E+GMwWcQurXB9hT/DnddM5Ggzk3nX8uMSV4kV+AgF1EWpiCdLViRI6DmwwYDtUJU6W6wQXsfyTm6CNMv0eE0wFXmZvoKaL24fggkp99dX+m1vgMQJ39JblVH9cmnnkBQcKkV8lnQJ003fd6iIFzGpgPBW5Z3T1Bp7uzSGMWnHmrEw8eOpKC5ny4x8uoViXDmA2UId23xYSoJ/GQrMjqB+NslqnuVsOBE1oWpNrmfSKhGU1X0kR4Eves56t5i5n3XU+7ne0MkcUzlrMi89n2j8aouf0zeuD7o+ngqvfRCsOqjaU71XWtuD4ogu2X7/Ajtwkxg/UJDFGAnCxFTTd4dqrrEpKyMK8eWBMaartFxwwrH39HMpx1T9JgknJ1hFWELzG8b302sKy64nCseOTGaZrdH63pjGkT7vzyIxVH/b+yJwDRmy/PlLz7fmUj6zpTBNmCtl1EGFOEFdtI2R04EprIkLXbtpoIPA7m0TPZURpnWufCSsDtD91ChxR8j/FnQ/gOOyKg/EJrTcHvM1e50PMRmoRZGlltBRRwBV+ArPO64On6zygr5zud5o/aADF1laBjkuYkjvUVsXwgnaIKbTLN2+sr/WjogxT1Yins79jPa1+3dDenxZtE/rHA/6qsdJmo5BJZqNYQUFrnpkU428LryMnBaNp2BW51JRsWXPAA7yCi0wDlHzEDxpqaOnhI4Ol87ra+VAg==&p="
	captureProfile = crlf(
		"MIME-Version: 1.0",
		"Content-Type: text/x-msmsgsprofile; charset=UTF-8",
		"LoginTime: 1795542360",
		"EmailEnabled: 0",
		"MemberIdHigh: 2732915087",
		"MemberIdLow: 1536800064",
		"lang_preference: 1033",
		"preferredEmail:",
		"country:",
		"PostalCode:",
		"Gender:",
		"Kid: 0",
		"Age:",
		"BDayPre:",
		"Birthday:",
		"Wallet:",
		"Flags: 536872513",
		"sid: 507",
		"MSPAuth: "+captureMSPAuth,
		"ClientIP: 127.0.0.1",
		"ClientPort: 38556",
		"ABCHMigrated: 1",
		"MPOPEnabled: 0",
		"", "")
	// docs/protocol.md §4.5.
	protocolExample = "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n" +
		"X-MMS-IM-Format: FN=Segoe%20UI; EF=B; CO=ff0000; CS=0; PF=22\r\n\r\nHello, Bob!\r\nSecond line"
)

func TestCaptureLengths(t *testing.T) {
	// The captures give each payload's byte count; the reconstructions must match it.
	for _, tc := range []struct {
		name string
		p    string
		n    int
	}{
		{"text", captureText, 147},
		{"typing", captureTyping, 88},
		{"formatted", captureFormatted, 136},
		{"maildata", captureMailData, 195},
		{"profile", captureProfile, 1442},
	} {
		if len(tc.p) != tc.n {
			t.Errorf("%s: %d bytes, capture says %d", tc.name, len(tc.p), tc.n)
		}
	}
}

func TestParseMIME(t *testing.T) {
	h := func(kv ...string) []Header {
		var hs []Header
		for i := 0; i+1 < len(kv); i += 2 {
			hs = append(hs, Header{kv[i], kv[i+1]})
		}
		return hs
	}
	tests := []struct {
		name    string
		in      string
		headers []Header
		body    string
	}{
		{"protocol example", protocolExample,
			h("MIME-Version", "1.0", "Content-Type", "text/plain; charset=UTF-8",
				"X-MMS-IM-Format", "FN=Segoe%20UI; EF=B; CO=ff0000; CS=0; PF=22"),
			"Hello, Bob!\r\nSecond line"},
		{"capture typing", captureTyping,
			h("MIME-Version", "1.0", "Content-Type", "text/x-msmsgscontrol", "TypingUser", "bob@example.com"),
			"\r\n"},
		{"lf only", "MIME-Version: 1.0\nContent-Type: text/plain\n\nhi\nthere",
			h("MIME-Version", "1.0", "Content-Type", "text/plain"), "hi\nthere"},
		{"mixed line ends", "A: 1\r\nB: 2\n\r\nbody",
			h("A", "1", "B", "2"), "body"},
		{"colon without space", "Content-Type:text/plain;charset=UTF-8\r\n\r\nx",
			h("Content-Type", "text/plain;charset=UTF-8"), "x"},
		{"tab and extra blanks", "Content-Type:\t text/plain  \r\nName :value\r\n\r\n",
			h("Content-Type", "text/plain", "Name", "value"), ""},
		{"lower-case names", "content-type: text/plain\r\nmime-version: 1.0\r\n\r\nok",
			h("content-type", "text/plain", "mime-version", "1.0"), "ok"},
		{"empty value", "preferredEmail:\r\ncountry: \r\n\r\n",
			h("preferredEmail", "", "country", ""), ""},
		{"value with colons", "Message-URL: http://x:80/a?b=c\r\n\r\n",
			h("Message-URL", "http://x:80/a?b=c"), ""},
		{"no blank line, end of payload", "MIME-Version: 1.0\r\nContent-Type: text/x-msmsgscontrol\r\nTypingUser: a@b.c",
			h("MIME-Version", "1.0", "Content-Type", "text/x-msmsgscontrol", "TypingUser", "a@b.c"), ""},
		{"no blank line, trailing crlf", "Content-Type: text/x-keepalive\r\n",
			h("Content-Type", "text/x-keepalive"), ""},
		{"no blank line, body starts at non-header", "Content-Type: text/plain\r\nhello world\r\nmore",
			h("Content-Type", "text/plain"), "hello world\r\nmore"},
		{"folded header", "Subject: first\r\n  second\r\n\tthird\r\n\r\n",
			h("Subject", "first second third"), ""},
		{"body keeps blank lines and crlf", "A: b\r\n\r\n\r\nx\r\n\r\n",
			h("A", "b"), "\r\nx\r\n\r\n"},
		{"duplicates kept", "X: 1\r\nx: 2\r\n\r\n", h("X", "1", "x", "2"), ""},
		{"invalid utf-8 in value", "Name: a\xffb\r\n\r\n\xff\xfe", h("Name", "a\uFFFDb"), "\xff\xfe"},
		{"binary body", "Content-Type: application/x-msnmsgrp2p\r\nP2P-Dest: a@b\r\n\r\n\x00\x01\r\n\x00",
			h("Content-Type", "application/x-msnmsgrp2p", "P2P-Dest", "a@b"), "\x00\x01\r\n\x00"},
		{"space in name ends headers", "A: 1\r\nnot a: header\r\n",
			h("A", "1"), "not a: header\r\n"},
		{"continuation first is body", "A: 1\r\n\r\n continued", h("A", "1"), " continued"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseMIME([]byte(tc.in))
			if err != nil {
				t.Fatalf("ParseMIME: %v", err)
			}
			if !reflect.DeepEqual(m.Headers, tc.headers) {
				t.Errorf("headers = %q, want %q", m.Headers, tc.headers)
			}
			if string(m.Body) != tc.body {
				t.Errorf("body = %q, want %q", m.Body, tc.body)
			}
		})
	}
}

func TestParseMIMEErrors(t *testing.T) {
	many := strings.Repeat("X-A: b\r\n", mimeMaxHeaders+1) + "\r\n"
	long := "X-A: " + strings.Repeat("a", mimeMaxHeaderLine) + "\r\n\r\n"
	big := strings.Repeat("X-A: "+strings.Repeat("a", 20000)+"\r\n", 4) + "\r\n"
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"empty", "", ErrMIMEEmpty},
		{"no header", "hello world\r\n\r\n", ErrMIMENoHeaders},
		{"blank first line", "\r\nbody", ErrMIMENoHeaders},
		{"empty name", ": value\r\n\r\n", ErrMIMENoHeaders},
		{"leading continuation", " A: b\r\n\r\n", ErrMIMENoHeaders},
		{"too many headers", many, ErrMIMEHeaderLimit},
		{"line too long", long, ErrMIMEHeaderLimit},
		{"header block too large", big, ErrMIMEHeaderLimit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseMIME([]byte(tc.in))
			if !errors.Is(err, tc.want) || m != nil {
				t.Fatalf("ParseMIME = %v, %v; want error %v", m, err, tc.want)
			}
			if msg := err.Error(); msg != strings.ToLower(msg[:1])+msg[1:] {
				t.Errorf("error not lower-case: %q", msg)
			}
		})
	}
	// Exactly at the limits is fine.
	ok := strings.Repeat("X-A: b\r\n", mimeMaxHeaders) + "\r\nbody"
	if _, err := ParseMIME([]byte(ok)); err != nil {
		t.Errorf("%d headers: %v", mimeMaxHeaders, err)
	}
}

func TestParseMIMEDoesNotRetainInput(t *testing.T) {
	p := []byte(protocolExample)
	m, err := ParseMIME(p)
	if err != nil {
		t.Fatal(err)
	}
	for i := range p {
		p[i] = 'x'
	}
	if string(m.Body) != "Hello, Bob!\r\nSecond line" || m.Get("MIME-Version") != "1.0" {
		t.Fatalf("message changed with its input: %q %q", m.Headers, m.Body)
	}
}

func TestMIMEAccessors(t *testing.T) {
	tests := []struct {
		ct, wantType, wantCharset string
	}{
		{"text/plain; charset=UTF-8", "text/plain", "utf-8"},
		{"text/plain;charset=UTF-8", "text/plain", "utf-8"},
		{"TEXT/Plain ;  CHARSET = \"utf-8\" ", "text/plain", "utf-8"},
		{"text/plain; format=flowed; charset=ISO-8859-1", "text/plain", "iso-8859-1"},
		{"text/plain", "text/plain", ""},
		{"text/x-msmsgsinvite; charset=UTF-8", "text/x-msmsgsinvite", "utf-8"},
		{"application/x-msnmsgrp2p", "application/x-msnmsgrp2p", ""},
		{"", "", ""},
		{";charset=utf-8", "", "utf-8"},
	}
	for _, tc := range tests {
		m := &MIMEMessage{Headers: []Header{{"content-TYPE", tc.ct}}}
		if got := m.ContentType(); got != tc.wantType {
			t.Errorf("ContentType(%q) = %q, want %q", tc.ct, got, tc.wantType)
		}
		if got := m.Charset(); got != tc.wantCharset {
			t.Errorf("Charset(%q) = %q, want %q", tc.ct, got, tc.wantCharset)
		}
	}
	m := &MIMEMessage{Headers: []Header{{"A", "1"}, {"a", "2"}, {"Empty", ""}}}
	if m.Get("A") != "1" || m.Get("a") != "1" || m.Get("missing") != "" {
		t.Error("Get is not case-insensitive first match")
	}
	if !m.Has("EMPTY") || m.Has("missing") {
		t.Error("Has wrong")
	}
	var nilMsg *MIMEMessage
	if nilMsg.Get("A") != "" || nilMsg.ContentType() != "" || nilMsg.Text() != "" || nilMsg.Has("A") {
		t.Error("nil message accessors")
	}
	if ClassifyMessage(nil) != KindUnknown || nilMsg.BodyHeaders() != nil {
		t.Error("nil message classify")
	}
}

func TestMarshal(t *testing.T) {
	for _, p := range []string{protocolExample, captureText, captureTyping, captureFormatted, captureMailData, captureProfile} {
		m, err := ParseMIME([]byte(p))
		if err != nil {
			t.Fatal(err)
		}
		if got := string(m.Marshal()); got != p {
			t.Errorf("round trip:\n got %q\nwant %q", got, p)
		}
	}
	// Header injection is impossible.
	m := &MIMEMessage{Headers: []Header{{"TypingUser", "a@b\r\nX-Evil: 1"}, {"Bad\nName", "v"}}, Body: []byte("b")}
	got := string(m.Marshal())
	want := "TypingUser: a@b  X-Evil: 1\r\nBad Name: v\r\n\r\nb"
	if got != want {
		t.Errorf("Marshal = %q, want %q", got, want)
	}
	if (&MIMEMessage{}).Marshal() == nil || string((&MIMEMessage{}).Marshal()) != "\r\n" {
		t.Error("empty message should marshal to a blank line")
	}
}

func TestText(t *testing.T) {
	tests := []struct {
		name, ct, body, want string
	}{
		{"utf-8 crlf", "text/plain; charset=UTF-8", "a\r\nb\r\n", "a\nb\n"},
		{"lone cr", "text/plain; charset=UTF-8", "a\rb", "a\nb"},
		{"lf kept", "text/plain; charset=UTF-8", "a\nb", "a\nb"},
		{"utf-8 invalid replaced", "text/plain; charset=UTF-8", "caf\xe9!", "caf\uFFFD!"},
		{"no charset valid utf-8", "text/plain", "héllo ✓", "héllo ✓"},
		{"no charset latin-1", "text/plain", "caf\xe9 \xa9", "café ©"},
		{"no charset cp1252 range", "text/plain", "\x93quoted\x94 \x80", "“quoted” €"},
		{"explicit latin-1", "text/plain; charset=ISO-8859-1", "\xe9t\xe9", "été"},
		{"explicit latin-1 utf-8 bytes", "text/plain; charset=iso-8859-1", "\xc3\xa9", "Ã©"},
		{"windows-1252", "text/plain; charset=windows-1252", "\x85", "…"},
		{"other charset treated as utf-8", "text/plain; charset=koi8-r", "ok\xff", "ok\uFFFD"},
		{"utf8 label", "text/plain; charset=utf8", "é", "é"},
		{"empty", "text/plain; charset=UTF-8", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := &MIMEMessage{Headers: []Header{{"Content-Type", tc.ct}}, Body: []byte(tc.body)}
			got := m.Text()
			if got != tc.want {
				t.Errorf("Text() = %q, want %q", got, tc.want)
			}
			if !utf8.ValidString(got) {
				t.Errorf("Text() not valid UTF-8: %q", got)
			}
		})
	}
}

func TestParseTextFormat(t *testing.T) {
	tests := []struct {
		in   string
		want TextFormat
	}{
		{"FN=Segoe%20UI; EF=B; CO=ff0000; CS=0; PF=22", // docs/protocol.md §4.6: BGR ff0000 is blue
			TextFormat{Font: "Segoe UI", Bold: true, Color: "0000ff", Charset: "0", PitchFamily: "22"}},
		{"FN=Arial; EF=B; CO=ff; CS=0; PF=22", // capture: CO=ff is red
			TextFormat{Font: "Arial", Bold: true, Color: "ff0000", Charset: "0", PitchFamily: "22"}},
		{"FN=Segoe%20UI; EF=; CO=0; CS=1; PF=0",
			TextFormat{Font: "Segoe UI", Color: "000000", Charset: "1", PitchFamily: "0"}},
		{"FN=MS%20Sans%20Serif; EF=BIUS; CO=ff00; CS=80; PF=31; RL=1",
			TextFormat{Font: "MS Sans Serif", Bold: true, Italic: true, Underline: true, Strike: true,
				Color: "00ff00", Charset: "80", PitchFamily: "31", RightToLeft: true}},
		{"  fn = Comic%20Sans%20MS ;ef=iu;co=#123456;cs=A1 ;  pf=12;",
			TextFormat{Font: "Comic Sans MS", Italic: true, Underline: true, Color: "563412", Charset: "a1", PitchFamily: "12"}},
		{"EF=S", TextFormat{Strike: true}},
		{"CO=FF0080", TextFormat{Color: "8000ff"}},
		{"CO=80", TextFormat{Color: "800000"}},
		{"CO=zz", TextFormat{}},
		{"CO=1234567", TextFormat{}},
		{"CO=", TextFormat{}},
		{"CS=1xx; PF=", TextFormat{}},
		{"RL=0", TextFormat{}},
		{"FN=Arial+Black", TextFormat{Font: "Arial+Black"}}, // '+' is not a space
		{"FN=%E3%83%A1%E3%82%A4%E3%83%AA%E3%82%AA", TextFormat{Font: "メイリオ"}},
		{"FN=メイリオ", TextFormat{Font: "メイリオ"}},
		{"FN=%ZZbad%", TextFormat{Font: "%ZZbad%"}},
		{"", TextFormat{}},
		{";;;==;=x;FN", TextFormat{}},
		{"garbage without keys", TextFormat{}},
		{"XX=1; FN=Tahoma", TextFormat{Font: "Tahoma"}},
	}
	for _, tc := range tests {
		got := ParseTextFormat(tc.in)
		if got == nil || *got != tc.want {
			t.Errorf("ParseTextFormat(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestTextFormatString(t *testing.T) {
	tests := []struct {
		f    *TextFormat
		want string
	}{
		{nil, "FN=Segoe%20UI; EF=; CO=0; CS=1; PF=0"},
		{&TextFormat{}, "FN=Segoe%20UI; EF=; CO=0; CS=1; PF=0"},
		{&TextFormat{Font: "Segoe UI", Bold: true, Color: "0000ff", Charset: "0", PitchFamily: "22"},
			"FN=Segoe%20UI; EF=B; CO=ff0000; CS=0; PF=22"},
		{&TextFormat{Font: "Arial", Strike: true, Underline: true, Italic: true, Bold: true, Color: "ff0000"},
			"FN=Arial; EF=BIUS; CO=ff; CS=1; PF=0"},
		{&TextFormat{Color: "#00FF00"}, "FN=Segoe%20UI; EF=; CO=ff00; CS=1; PF=0"},
		{&TextFormat{Color: "f00"}, "FN=Segoe%20UI; EF=; CO=ff; CS=1; PF=0"},
		{&TextFormat{Color: "123456"}, "FN=Segoe%20UI; EF=; CO=563412; CS=1; PF=0"},
		{&TextFormat{Color: "000000"}, "FN=Segoe%20UI; EF=; CO=0; CS=1; PF=0"},
		{&TextFormat{Color: "red"}, "FN=Segoe%20UI; EF=; CO=0; CS=1; PF=0"},
		{&TextFormat{Charset: "zz", PitchFamily: "123"}, "FN=Segoe%20UI; EF=; CO=0; CS=1; PF=0"},
		{&TextFormat{Font: "A;B=C\r\n", RightToLeft: true}, "FN=A%3BB=C; EF=; CO=0; CS=1; PF=0; RL=1"},
		{&TextFormat{Font: "Ｍｓ ゴシック"}, "FN=%EF%BC%AD%EF%BD%93%20%E3%82%B4%E3%82%B7%E3%83%83%E3%82%AF; EF=; CO=0; CS=1; PF=0"},
	}
	for _, tc := range tests {
		if got := tc.f.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.f, got, tc.want)
		}
	}
}

func TestColorConversion(t *testing.T) {
	// Every channel value in every position survives RGB → wire BGR → RGB.
	for i := 0; i < 3; i++ {
		for v := 0; v < 256; v++ {
			var rgb [3]byte
			rgb[i] = byte(v)
			c := fmt.Sprintf("%02x%02x%02x", rgb[0], rgb[1], rgb[2])
			f := ParseTextFormat((&TextFormat{Color: c}).String())
			if f.Color != c {
				t.Fatalf("colour %s came back as %s", c, f.Color)
			}
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		c := fmt.Sprintf("%06x", rng.IntN(1<<24))
		wire := mimeRGBToBGR(c)
		if len(wire) > 1 && wire[0] == '0' {
			t.Fatalf("wire colour %q has a leading zero", wire)
		}
		if back := mimeBGRToRGB(wire); back != c {
			t.Fatalf("%s → %s → %s", c, wire, back)
		}
	}
}

func TestTextFormatRoundTrip(t *testing.T) {
	for _, v := range []string{
		"FN=Segoe%20UI; EF=B; CO=ff0000; CS=0; PF=22",
		"FN=Arial; EF=B; CO=ff; CS=0; PF=22",
		"FN=Segoe%20UI; EF=; CO=0; CS=1; PF=0",
		"FN=MS%20Sans%20Serif; EF=BIUS; CO=ff00; CS=80; PF=31; RL=1",
	} {
		if got := ParseTextFormat(v).String(); got != v {
			t.Errorf("round trip %q → %q", v, got)
		}
	}
}

func TestNewTextMessage(t *testing.T) {
	got := string(NewTextMessage("Hello, Bob!\nSecond line", nil))
	want := "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n" +
		"X-MMS-IM-Format: FN=Segoe%20UI; EF=; CO=0; CS=1; PF=0\r\n\r\nHello, Bob!\r\nSecond line"
	if got != want {
		t.Errorf("NewTextMessage = %q, want %q", got, want)
	}
	f := &TextFormat{Font: "Arial", Bold: true, Color: "ff0000", Charset: "0", PitchFamily: "22"}
	if got := string(NewTextMessage("Hi A! éè unicode ok", f)); got != captureFormatted {
		t.Errorf("formatted = %q, want capture %q", got, captureFormatted)
	}
	for _, tc := range []struct{ in, body, text string }{
		{"a\nb", "a\r\nb", "a\nb"},
		{"a\r\nb", "a\r\nb", "a\nb"},
		{"a\rb", "a\r\nb", "a\nb"},
		{"\n\n", "\r\n\r\n", "\n\n"},
		{"bad \xff utf-8", "bad \uFFFD utf-8", "bad \uFFFD utf-8"},
		{"", "", ""},
	} {
		p := NewTextMessage(tc.in, f)
		m, err := ParseMIME(p)
		if err != nil {
			t.Fatalf("ParseMIME(NewTextMessage(%q)): %v", tc.in, err)
		}
		if string(m.Body) != tc.body || m.Text() != tc.text {
			t.Errorf("NewTextMessage(%q): body %q text %q, want %q %q", tc.in, m.Body, m.Text(), tc.body, tc.text)
		}
		if ClassifyMessage(m) != KindText || *m.Format() != *f {
			t.Errorf("NewTextMessage(%q): kind %v format %+v", tc.in, ClassifyMessage(m), m.Format())
		}
	}
}

func TestTextBodyLimit(t *testing.T) {
	for _, f := range []*TextFormat{nil, {}, {Font: strings.Repeat("字", 100), Bold: true, Italic: true, RightToLeft: true}} {
		limit := TextBodyLimit(f)
		if limit > MaxTextBody || limit <= 0 {
			t.Fatalf("TextBodyLimit = %d", limit)
		}
		text := strings.Repeat("é", 5000)
		for _, part := range SplitText(text, limit) {
			if n := len(NewTextMessage(part, f)); n > MaxMSGPayload {
				t.Fatalf("payload of %d bytes exceeds %d", n, MaxMSGPayload)
			}
		}
	}
	if TextBodyLimit(nil) != MaxTextBody {
		t.Errorf("default format should allow the full %d bytes, got %d", MaxTextBody, TextBodyLimit(nil))
	}
}

func TestNewTypingMessage(t *testing.T) {
	if got := string(NewTypingMessage("bob@example.com")); got != captureTyping {
		t.Errorf("NewTypingMessage = %q, want capture %q", got, captureTyping)
	}
	m, err := ParseMIME(NewTypingMessage("a@b.c\r\nX-Evil: 1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Headers) != 3 || m.Has("X-Evil") || ClassifyMessage(m) != KindTyping {
		t.Errorf("injection through handle: %q", m.Headers)
	}
}

func TestNewNudgeMessage(t *testing.T) {
	p := NewNudgeMessage()
	want := "MIME-Version: 1.0\r\nContent-Type: text/x-msnmsgr-datacast\r\n\r\nID: 1\r\n\r\n"
	if string(p) != want {
		t.Errorf("NewNudgeMessage = %q", p)
	}
	m, err := ParseMIME(p)
	if err != nil {
		t.Fatal(err)
	}
	if ClassifyMessage(m) != KindNudge || ParseDatacastID(m) != DatacastNudge {
		t.Error("nudge does not classify as a nudge")
	}
}

func TestNewInviteCancel(t *testing.T) {
	p := NewInviteCancel("12345")
	want := "MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsinvite; charset=UTF-8\r\n\r\n" +
		"Invitation-Command: CANCEL\r\nInvitation-Cookie: 12345\r\nCancel-Code: REJECT_NOT_INSTALLED\r\n"
	if string(p) != want {
		t.Errorf("NewInviteCancel = %q", p)
	}
	m, _ := ParseMIME(NewInviteCancel("1\r\nCancel-Code: OK"))
	info, ok := ParseInvite(m)
	if !ok || info.Command != "CANCEL" || info.Cookie != "1  Cancel-Code: OK" {
		t.Errorf("ParseInvite = %+v, %v", info, ok)
	}
	if got := m.BodyHeaders(); len(got) != 3 || got[2].Value != "REJECT_NOT_INSTALLED" {
		t.Errorf("cookie injected a field: %q", got)
	}
}

func TestParseInvite(t *testing.T) {
	invite := crlf("MIME-Version: 1.0", "Content-Type: text/x-msmsgsinvite; charset=UTF-8", "",
		"Application-Name: File Transfer",
		"Application-GUID: {5D3E02AB-6190-11d3-BBBB-00C04F795683}",
		"Invitation-Command: INVITE",
		"Invitation-Cookie: 28721",
		"Application-File: a.txt",
		"Application-FileSize: 3", "", "")
	m, err := ParseMIME([]byte(invite))
	if err != nil {
		t.Fatal(err)
	}
	info, ok := ParseInvite(m)
	want := InviteInfo{Command: "INVITE", Cookie: "28721", AppName: "File Transfer", AppGUID: "{5D3E02AB-6190-11d3-BBBB-00C04F795683}"}
	if !ok || info != want || ClassifyMessage(m) != KindInvite {
		t.Errorf("ParseInvite = %+v, %v", info, ok)
	}
	if _, ok := ParseInvite(&MIMEMessage{Headers: []Header{{"Content-Type", "text/plain"}}}); ok {
		t.Error("ParseInvite accepted text/plain")
	}
}

func TestClassifyMessage(t *testing.T) {
	tests := []struct {
		payload string
		want    MessageKind
	}{
		{captureText, KindText},
		{"Content-Type: TEXT/PLAIN\r\n\r\nx", KindText},
		{captureTyping, KindTyping},
		{"Content-Type: text/x-msmsgscontrol\r\nRecordingUser: a@b\r\n\r\n", KindTyping},
		{"Content-Type: text/x-msnmsgr-datacast\r\n\r\nID: 1\r\n\r\n", KindNudge},
		{"Content-Type: text/x-msnmsgr-datacast\r\n\r\nID: 2\r\nData: <msnobj/>\r\n\r\n", KindDatacastOther},
		{"Content-Type: text/x-msnmsgr-datacast\r\n\r\nID: 99\r\n", KindDatacastOther},
		{"Content-Type: text/x-msmsgsinvite; charset=UTF-8\r\n\r\nInvitation-Command: INVITE\r\n", KindInvite},
		{"Content-Type: application/x-msnmsgrp2p\r\nP2P-Dest: a@b\r\n\r\n\x00\x00", KindP2P},
		{"Content-Type: text/x-mms-emoticon\r\n\r\n:x:\t<msnobj/>\t", KindEmoticon},
		{"Content-Type: text/x-mms-animemoticon\r\n\r\n", KindEmoticon},
		{"Content-Type: image/gif\r\n\r\nbase64:R0lG", KindInk},
		{"Content-Type: application/x-ms-ink\r\n\r\n", KindInk},
		{"Content-Type: text/x-clientcaps\r\n\r\nClient-Name: x\r\n", KindClientCaps},
		{"Content-Type: text/x-keepalive\r\n\r\n", KindIgnored},
		{"Content-Type: text/x-ping\r\n\r\n", KindIgnored},
		{"Content-Type: text/x-whatever\r\n\r\n", KindUnknown},
		{"MIME-Version: 1.0\r\n\r\nhi", KindUnknown},
		{"Message-ID: {A}\r\nChunk: 1\r\n\r\nrest", KindChunk},
		{captureProfile, KindProfile},
		{captureMailData, KindMailData},
		{"Content-Type: text/x-msmsgsoimnotification; charset=UTF-8\r\n\r\nMail-Data: too-large\r\n", KindMailData},
		{"Content-Type: text/x-msmsgsemailnotification; charset=UTF-8\r\n\r\nFrom: x\r\n", KindEmailNotification},
		{"Content-Type: text/x-msmsgsactivemailnotification; charset=UTF-8\r\n\r\n", KindEmailNotification},
		{"Content-Type: text/x-msmsgsinitialemailnotification; charset=UTF-8\r\n\r\nInbox-Unread: 4\r\n", KindMailData},
		{"Content-Type: application/x-msmsgssystemmessage\r\n\r\nType: 1\r\nArg1: 5\r\n", KindSystemMessage},
	}
	for _, tc := range tests {
		m, err := ParseMIME([]byte(tc.payload))
		if err != nil {
			t.Fatalf("ParseMIME(%q): %v", tc.payload, err)
		}
		if got := ClassifyMessage(m); got != tc.want {
			t.Errorf("ClassifyMessage(%q) = %v, want %v", tc.payload, got, tc.want)
		}
	}
	if KindNudge.String() != "nudge" || MessageKind(99).String() != "kind(99)" || MessageKind(-1).String() != "kind(-1)" {
		t.Error("MessageKind.String")
	}
}

func TestParseDatacastID(t *testing.T) {
	tests := []struct {
		payload string
		want    int
	}{
		{"Content-Type: text/x-msnmsgr-datacast\r\n\r\nID: 1\r\n\r\n", DatacastNudge},
		{"Content-Type: text/x-msnmsgr-datacast\r\n\r\nID: 2\r\nData: <msnobj Creator=\"a\"/>\r\n\r\n", DatacastWink},
		{"Content-Type: text/x-msnmsgr-datacast\r\n\r\nID: 3\r\nData: x\r\n", DatacastVoiceClip},
		{"Content-Type: text/x-msnmsgr-datacast\r\n\r\nid:4", DatacastAction},
		{"Content-Type: text/x-msnmsgr-datacast\nID: 1\n\n", DatacastNudge}, // ID as a header
		{"Content-Type: text/x-msnmsgr-datacast\r\n\r\nID: 5\r\n", 0},
		{"Content-Type: text/x-msnmsgr-datacast\r\n\r\nID: -1\r\n", 0},
		{"Content-Type: text/x-msnmsgr-datacast\r\n\r\nID: one\r\n", 0},
		{"Content-Type: text/x-msnmsgr-datacast\r\n\r\n", 0},
		{"Content-Type: text/plain\r\n\r\nID: 1\r\n", 0},
	}
	for _, tc := range tests {
		m, err := ParseMIME([]byte(tc.payload))
		if err != nil {
			t.Fatal(err)
		}
		if got := ParseDatacastID(m); got != tc.want {
			t.Errorf("ParseDatacastID(%q) = %d, want %d", tc.payload, got, tc.want)
		}
	}
}

func TestParseHotmailProfile(t *testing.T) {
	m, err := ParseMIME([]byte(captureProfile))
	if err != nil {
		t.Fatal(err)
	}
	p := ParseHotmailProfile(m)
	want := HotmailProfile{LoginTime: 1795542360, MemberIDHigh: "2732915087", MemberIDLow: "1536800064",
		Language: "1033", ClientIP: "127.0.0.1", ClientPort: 38556, ABCHMigrated: true, mspAuth: captureMSPAuth}
	if p != want {
		t.Errorf("ParseHotmailProfile = %#v", p)
	}
	if p.MSPAuth() != captureMSPAuth {
		t.Error("MSPAuth() lost the cookie")
	}
	if puid, ok := p.PUID(); !ok || puid != 2732915087<<32|1536800064 {
		t.Errorf("PUID = %d, %v", puid, ok)
	}
	// The cookie must not leak through any usual way of logging the value.
	var zl bytes.Buffer
	zl0 := zerolog.New(&zl)
	zl0.Info().Object("profile", p).Interface("iface", p).Msg("Profile")
	for _, s := range []string{
		fmt.Sprint(p), fmt.Sprintf("%v %+v %#v %s", p, p, p, p), fmt.Sprintf("%v", &p), fmt.Sprintf("%+v", []HotmailProfile{p}),
		zl.String(),
	} {
		if strings.Contains(s, "5a1e87aa3feb") {
			t.Errorf("MSPAuth leaked: %s", s)
		}
	}
	if !strings.Contains(zl.String(), `"client_port":38556`) {
		t.Errorf("zerolog object lacks fields: %s", zl.String())
	}
	// Malformed and missing values stay zero.
	bad := &MIMEMessage{Headers: []Header{{"LoginTime", "soon"}, {"ClientPort", "99999"}, {"ABCHMigrated", "0"}}}
	if got := ParseHotmailProfile(bad); got != (HotmailProfile{}) {
		t.Errorf("bad profile = %#v", got)
	}
	if _, ok := ParseHotmailProfile(bad).PUID(); ok {
		t.Error("PUID without member ids")
	}
}

func TestParseMailData(t *testing.T) {
	oim := "<MD><E><I>12</I><IU>3</IU><O>4</O><OU>1</OU></E><Q><QTM>409600</QTM><QNM>204800</QNM></Q>" +
		"<M><T>11</T><S>6</S><RT>2005-03-08T21:47:38.7930000-08:00</RT><RS>0</RS><SZ>505</SZ><E>a@b.c</E>" +
		"<I>08CBD8BE-9972-433C-A9DA-84A0A725ABFA</I><F>00000000-0000-0000-0000-000000000009</F><N>=?utf-8?B?QQ==?=</N></M>" +
		"<M><T>11</T><E>d@e.f</E><I>x</I></M></MD>"
	tests := []struct {
		name    string
		payload string
		want    MailData
		ok      bool
	}{
		{"capture", captureMailData, MailData{}, true},
		{"counts and oims", "Content-Type: text/x-msmsgsoimnotification\r\n\r\nMail-Data: " + oim + "\r\n",
			MailData{InboxTotal: 12, InboxUnread: 3, OtherTotal: 4, OtherUnread: 1, OfflineMessages: 2}, true},
		{"as a header", "Content-Type: text/x-msmsgsinitialmdatanotification\r\nMail-Data: <MD><E><IU>7</IU></E></MD>\r\n\r\n",
			MailData{InboxTotal: -1, InboxUnread: 7, OtherTotal: -1, OtherUnread: -1}, true},
		{"too-large", "Content-Type: text/x-msmsgsinitialmdatanotification\r\n\r\nMail-Data: too-large\r\n",
			MailData{InboxTotal: -1, InboxUnread: -1, OtherTotal: -1, OtherUnread: -1, TooLarge: true}, true},
		{"missing", "Content-Type: text/x-msmsgsinitialmdatanotification\r\n\r\nInbox-URL: /x\r\n", MailData{}, false},
		{"malformed", "Content-Type: text/x-msmsgsinitialmdatanotification\r\n\r\nMail-Data: <MD><E><I>1</I>\r\n", MailData{}, false},
		{"doctype", "Content-Type: x\r\n\r\nMail-Data: <!DOCTYPE MD [<!ENTITY a \"1\">]><MD><E><I>&a;</I></E></MD>\r\n", MailData{}, false},
		{"negative and junk counts", "Content-Type: x\r\n\r\nMail-Data: <MD><E><I>-1</I><IU>x</IU><O> 5 </O></E></MD>\r\n",
			MailData{InboxTotal: -1, InboxUnread: -1, OtherTotal: 5, OtherUnread: -1}, true},
		{"counts outside E, offline messages nested", "Content-Type: x\r\n\r\nMail-Data: <MD><Q><I>9</I></Q><E><I>2</I></E><X><M/></X><M/></MD>\r\n",
			MailData{InboxTotal: 2, InboxUnread: -1, OtherTotal: -1, OtherUnread: -1, OfflineMessages: 1}, true},
		{"initial e-mail notification", "Content-Type: text/x-msmsgsinitialemailnotification\r\n\r\nInbox-Unread: 4\r\nFolders-Unread: 1\r\n",
			MailData{InboxTotal: -1, InboxUnread: 4, OtherTotal: -1, OtherUnread: -1}, true},
		{"Inbox-Unread when Mail-Data has no IU", "Content-Type: x\r\nInbox-Unread: 6\r\n\r\nMail-Data: <MD><E><I>8</I></E></MD>\r\n",
			MailData{InboxTotal: 8, InboxUnread: 6, OtherTotal: -1, OtherUnread: -1}, true},
		{"IU of Mail-Data over Inbox-Unread", "Content-Type: x\r\nInbox-Unread: 6\r\n\r\nMail-Data: <MD><E><IU>1</IU></E></MD>\r\n",
			MailData{InboxTotal: -1, InboxUnread: 1, OtherTotal: -1, OtherUnread: -1}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseMIME([]byte(tc.payload))
			if err != nil {
				t.Fatal(err)
			}
			got, ok := ParseMailData(m)
			if got != tc.want || ok != tc.ok {
				t.Errorf("ParseMailData = %+v, %v; want %+v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestParseSystemMessage(t *testing.T) {
	tests := []struct {
		payload      string
		typ, minutes int
		ok           bool
	}{
		{"MIME-Version: 1.0\r\nContent-Type: application/x-msmsgssystemmessage\r\n\r\nType: 1\r\nArg1: 5\r\n", 1, 5, true},
		{"Content-Type: application/x-msmsgssystemmessage\n\nType:1\nArg1:30", 1, 30, true},
		{"Content-Type: application/x-msmsgssystemmessage\r\n\r\nType: 3\r\n", 3, 0, true},
		{"Content-Type: application/x-msmsgssystemmessage\r\n\r\nType: 1\r\nArg1: soon\r\n", 1, 0, true},
		{"Content-Type: application/x-msmsgssystemmessage\r\n\r\nArg1: 5\r\n", 0, 0, false},
		{"Content-Type: text/plain\r\n\r\nType: 1\r\nArg1: 5\r\n", 0, 0, false},
	}
	for _, tc := range tests {
		m, err := ParseMIME([]byte(tc.payload))
		if err != nil {
			t.Fatal(err)
		}
		typ, minutes, ok := ParseSystemMessage(m)
		if typ != tc.typ || minutes != tc.minutes || ok != tc.ok {
			t.Errorf("ParseSystemMessage(%q) = %d, %d, %v", tc.payload, typ, minutes, ok)
		}
	}
}

// splitCost is the wire size of s once \n becomes \r\n.
func splitCost(s string) int { return len(s) + strings.Count(s, "\n") }

// checkSplit verifies SplitText's contract for one call; it returns a description of the first
// violation, or "".
func checkSplit(text string, maxBytes int, parts []string) string {
	if maxBytes <= 0 {
		maxBytes = MaxTextBody
	}
	maxBytes = max(maxBytes, 4)
	norm := mimeNormalizeText(text)
	if norm == "" {
		if parts != nil {
			return fmt.Sprintf("empty input gave %q", parts)
		}
		return ""
	}
	if splitCost(norm) <= maxBytes {
		if len(parts) != 1 || parts[0] != norm {
			return fmt.Sprintf("fitting input not returned whole: %q", parts)
		}
		return ""
	}
	pos := 0
	for i, p := range parts {
		switch {
		case p == "":
			return fmt.Sprintf("part %d empty", i)
		case !utf8.ValidString(p):
			return fmt.Sprintf("part %d invalid UTF-8: %q", i, p)
		case splitCost(p) > maxBytes:
			return fmt.Sprintf("part %d costs %d > %d", i, splitCost(p), maxBytes)
		case strings.IndexByte(p, '\r') >= 0:
			return fmt.Sprintf("part %d has a CR", i)
		}
		if i > 0 {
			for pos < len(norm) && !strings.HasPrefix(norm[pos:], p) && splitIsBlank(norm[pos]) {
				pos++
			}
		}
		if !strings.HasPrefix(norm[pos:], p) {
			return fmt.Sprintf("part %d %q does not continue the text at %d (%q)", i, p, pos, norm[pos:min(len(norm), pos+20)])
		}
		pos += len(p)
	}
	for pos < len(norm) && splitIsBlank(norm[pos]) {
		pos++ // trailing blanks dropped at the last cut
	}
	if pos != len(norm) {
		return fmt.Sprintf("text lost after byte %d: %q", pos, norm[pos:])
	}
	return ""
}

func TestSplitText(t *testing.T) {
	tests := []struct {
		name string
		text string
		max  int
		want []string
	}{
		{"empty", "", 10, nil},
		{"fits", "hello world", 11, []string{"hello world"}},
		{"fits whitespace only", "   ", 10, []string{"   "}},
		{"newline costs two", "ab\ncd", 5, []string{"ab", "cd"}},
		{"newline fits", "ab\ncd", 6, []string{"ab\ncd"}},
		{"words", "aaa bbb ccc ddd", 8, []string{"aaa bbb", "ccc ddd"}},
		{"blank run dropped", "aaa     bbb", 5, []string{"aaa", "bbb"}},
		{"line preferred over word", "aaaa bb\ncc dd", 10, []string{"aaaa bb", "cc dd"}},
		{"word in second half preferred over early line", "a\nbbbbbb cc dd", 10, []string{"a\nbbbbbb", "cc dd"}},
		{"blank right after window", "aaaa bbbb", 4, []string{"aaaa", "bbbb"}},
		{"hard cut", "abcdefghij", 4, []string{"abcd", "efgh", "ij"}},
		{"hard cut utf-8", "ééééé", 5, []string{"éé", "éé", "é"}},
		{"cjk", "漢字漢字漢字", 7, []string{"漢字", "漢字", "漢字"}},
		{"crlf normalised", "ab\r\ncd\ref", 5, []string{"ab", "cd", "ef"}},
		{"paragraphs", "one\n\n\ntwo", 6, []string{"one", "two"}},
		{"combining kept", "e\u0301e\u0301e\u0301", 5, []string{"e\u0301", "e\u0301", "e\u0301"}},
		{"flags", "🇫🇷🇩🇪🇮🇹", 12, []string{"🇫🇷", "🇩🇪", "🇮🇹"}},
		{"family zwj", "👨‍👩‍👧‍👦👨‍👩‍👧‍👦", 30, []string{"👨‍👩‍👧‍👦", "👨‍👩‍👧‍👦"}},
		{"skin tone", "👍🏽👍🏽👍🏽", 10, []string{"👍🏽", "👍🏽", "👍🏽"}},
		{"keycap", "1️⃣2️⃣", 8, []string{"1️⃣", "2️⃣"}},
		{"hangul jamo", "\u1100\u1161\u11a8\u1100\u1161\u11a8", 10, []string{"\u1100\u1161\u11a8", "\u1100\u1161\u11a8"}},
		{"cluster longer than max", "e\u0301\u0301\u0301\u0301", 4, []string{"e\u0301", "\u0301\u0301", "\u0301"}},
		{"space with combining mark kept", "aaaa \u0301bbbb", 6, []string{"aaaa", " \u0301bbb", "b"}},
		{"tiny max raised to 4", "ééé", 1, []string{"éé", "é"}},
		{"default max", strings.Repeat("a", MaxTextBody+1), 0, []string{strings.Repeat("a", MaxTextBody), "a"}},
		{"invalid utf-8", "ab\xffcd", 5, []string{"ab\uFFFD", "cd"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := SplitText(tc.text, tc.max)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("SplitText(%q, %d) = %q, want %q", tc.text, tc.max, got, tc.want)
			}
			if msg := checkSplit(tc.text, tc.max, got); msg != "" {
				t.Error(msg)
			}
		})
	}
}

// splitPieces are the building blocks of random test text; splitStray are lone extenders that
// glue neighbouring clusters into arbitrarily long ones.
var (
	splitPieces = []string{
		"a", "word", "longerword", "supercalifragilisticexpialidocious", " ", " ", "  ", "\n", "\n\n", "\t",
		"é", "e\u0301", "漢字", "日本語のテキスト", "한국어", "\u1100\u1161\u11a8", "👍", "👍🏽", "👨‍👩‍👧‍👦",
		"🇫🇷", "🇩🇪", "1️⃣", "❤️", "🏳️‍🌈", "\r\n", ".", ",", "https://example.com/a?b=c",
	}
	splitStray = []string{"\u0301", "\u200d", "\ufe0f", "\U0001F1E6", "\r", "\xff"}
)

func randomText(rng *rand.Rand, n int, stray bool) string {
	var b strings.Builder
	for range n {
		if stray && rng.IntN(8) == 0 {
			b.WriteString(splitStray[rng.IntN(len(splitStray))])
			continue
		}
		b.WriteString(splitPieces[rng.IntN(len(splitPieces))])
	}
	return b.String()
}

func TestSplitTextProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for i := range 4000 {
		stray := i%2 == 1
		text := randomText(rng, rng.IntN(400), stray)
		maxBytes := 1 + rng.IntN(300)
		if i%10 == 0 {
			maxBytes = MaxTextBody
		}
		parts := SplitText(text, maxBytes)
		if msg := checkSplit(text, maxBytes, parts); msg != "" {
			t.Fatalf("SplitText(%q, %d): %s", text, maxBytes, msg)
		}
		// Without stray extenders and with room for the largest cluster used (a 25-byte
		// family), cuts never separate a cluster: where two parts join without a dropped blank,
		// the second does not start with an extender, the first does not end with a ZWJ, and a
		// flag is not halved.
		if stray || maxBytes < 32 {
			continue
		}
		norm := mimeNormalizeText(text)
		for j := 1; j < len(parts); j++ {
			prev, p := parts[j-1], parts[j]
			if !strings.Contains(norm, prev+p) {
				continue // a blank was dropped between them
			}
			first, _ := utf8.DecodeRuneInString(p)
			last, _ := utf8.DecodeLastRuneInString(prev)
			if splitIsExtender(first) || last == '\u200d' {
				t.Fatalf("cut inside a cluster: %q | %q", prev, p)
			}
			ri := 0
			for r := prev; r != ""; {
				x, w := utf8.DecodeLastRuneInString(r)
				if !splitIsRI(x) {
					break
				}
				ri++
				r = r[:len(r)-w]
			}
			if splitIsRI(first) && ri%2 == 1 {
				t.Fatalf("flag halved: %q | %q", prev, p)
			}
		}
	}
}

func TestSplitTextLongMessage(t *testing.T) {
	var b strings.Builder
	for i := range 500 {
		fmt.Fprintf(&b, "Line %d: the quick brown fox jumps over the lazy dog 🦊.\n", i)
	}
	text := b.String()
	parts := SplitText(text, MaxTextBody)
	if msg := checkSplit(text, MaxTextBody, parts); msg != "" {
		t.Fatal(msg)
	}
	for i, p := range parts {
		if !strings.HasPrefix(p, "Line ") || !strings.HasSuffix(strings.TrimSuffix(p, "\n"), "🦊.") {
			t.Fatalf("part %d not cut at a line boundary: %q…%q", i, p[:10], p[len(p)-10:])
		}
		if i < len(parts)-1 && splitCost(p) < MaxTextBody/2 {
			t.Fatalf("part %d wastefully short: %d bytes", i, splitCost(p))
		}
	}
}

// chunkMsg builds a chunk part.
func chunkMsg(id string, first bool, n int, body string) *MIMEMessage {
	m := &MIMEMessage{Body: []byte(body)}
	if first {
		m.Headers = []Header{{"MIME-Version", "1.0"}, {"Content-Type", "text/plain; charset=UTF-8"},
			{"Message-ID", id}, {"Chunks", fmt.Sprint(n)}}
	} else {
		m.Headers = []Header{{"Message-ID", id}, {"Chunk", fmt.Sprint(n)}}
	}
	return m
}

func TestChunkAssemblerOrders(t *testing.T) {
	const id = "{B3A5A5C8-1234-4D2B-9C3E-000000000001}"
	body := "Hello, this is a long message split into chunks: é漢👍"
	pieces := []string{body[:10], body[10:20], body[20:53], body[53:]} // cuts inside UTF-8 sequences
	orders := map[string][]int{
		"in order":     {0, 1, 2, 3},
		"reversed":     {3, 2, 1, 0},
		"first last":   {1, 2, 3, 0},
		"first middle": {2, 0, 3, 1},
	}
	for name, order := range orders {
		t.Run(name, func(t *testing.T) {
			a := NewChunkAssembler(0, 0)
			var got *MIMEMessage
			for i, k := range order {
				var part *MIMEMessage
				if k == 0 {
					part = chunkMsg(id, true, len(pieces), pieces[0])
				} else {
					part = chunkMsg(id, false, k, pieces[k])
				}
				m, ok := a.Add("a@b.c", part)
				if i < len(order)-1 {
					if ok || m != nil {
						t.Fatalf("completed early after part %d", k)
					}
					continue
				}
				if !ok {
					t.Fatal("not complete after the last part")
				}
				got = m
			}
			if got.Text() != body || got.Has("Message-ID") || got.Has("Chunks") || ClassifyMessage(got) != KindText {
				t.Errorf("assembled %q %q", got.Headers, got.Text())
			}
			if a.Pending() != 0 {
				t.Errorf("%d messages still pending", a.Pending())
			}
		})
	}
}

func TestChunkAssemblerPassThrough(t *testing.T) {
	a := NewChunkAssembler(4, time.Minute)
	plain := &MIMEMessage{Headers: []Header{{"Content-Type", "text/plain"}}, Body: []byte("x")}
	if m, ok := a.Add("a", plain); !ok || m != plain {
		t.Error("unchunked message not passed through")
	}
	noID := &MIMEMessage{Headers: []Header{{"Content-Type", "text/plain"}, {"Chunks", "2"}}}
	if m, ok := a.Add("a", noID); !ok || m != noID {
		t.Error("Chunks without Message-ID not passed through")
	}
	idOnly := &MIMEMessage{Headers: []Header{{"Message-ID", "{X}"}, {"Content-Type", "text/plain"}}}
	if m, ok := a.Add("a", idOnly); !ok || m != idOnly {
		t.Error("Message-ID without chunk headers not passed through")
	}
	one := chunkMsg("{1}", true, 1, "single")
	if m, ok := a.Add("a", one); !ok || string(m.Body) != "single" || m.Has("Chunks") {
		t.Errorf("Chunks: 1 = %v, %v", m, ok)
	}
	for _, n := range []string{"0", "-1", "x", "5"} { // 5 > maxChunks 4
		first := chunkMsg("{2}", true, 0, "first")
		first.Headers[3].Value = n
		if m, ok := a.Add("a", first); !ok || m != first {
			t.Errorf("Chunks: %s not delivered as is", n)
		}
	}
	if m, ok := a.Add("a", nil); ok || m != nil {
		t.Error("nil message")
	}
}

func TestChunkAssemblerRejects(t *testing.T) {
	a := NewChunkAssembler(8, time.Minute)
	var drops []string
	a.OnDrop(func(from, id string) { drops = append(drops, from+" "+id) })
	// Continuation parts out of range.
	for _, k := range []string{"0", "-3", "8", "x"} {
		m := chunkMsg("{A}", false, 0, "x")
		m.Headers[1].Value = k
		if got, ok := a.Add("a", m); ok || got != nil {
			t.Errorf("Chunk: %s accepted", k)
		}
	}
	// A continuation beyond Chunks once the first part is known.
	a.Add("a", chunkMsg("{B}", true, 2, "b0"))
	if _, ok := a.Add("a", chunkMsg("{B}", false, 2, "bad")); ok {
		t.Error("Chunk: 2 of 2 accepted")
	}
	// Duplicates are ignored.
	if _, ok := a.Add("a", chunkMsg("{B}", true, 2, "dup")); ok {
		t.Error("duplicate first part completed")
	}
	m, ok := a.Add("a", chunkMsg("{B}", false, 1, "b1"))
	if !ok || string(m.Body) != "b0b1" {
		t.Errorf("assembled %q, %v", m.Body, ok)
	}
	// A buffered continuation that turns out to be out of range is discarded, not kept.
	a.Add("a", chunkMsg("{C}", false, 5, "c5"))
	a.Add("a", chunkMsg("{C}", false, 1, "c1"))
	if m, ok := a.Add("a", chunkMsg("{C}", true, 2, "c0")); !ok || string(m.Body) != "c0c1" {
		t.Errorf("assembled %v, %v", m, ok)
	}
	// Same id from two senders does not mix.
	a.Add("x", chunkMsg("{D}", true, 2, "x0"))
	a.Add("y", chunkMsg("{D}", true, 2, "y0"))
	m1, _ := a.Add("y", chunkMsg("{D}", false, 1, "y1"))
	m2, _ := a.Add("x", chunkMsg("{D}", false, 1, "x1"))
	if m1 == nil || m2 == nil || string(m1.Body) != "y0y1" || string(m2.Body) != "x0x1" {
		t.Errorf("senders mixed: %v %v", m1, m2)
	}
	if a.Pending() != 0 || len(drops) != 0 {
		t.Errorf("pending %d, drops %q", a.Pending(), drops)
	}
}

func TestChunkAssemblerExpiry(t *testing.T) {
	a := NewChunkAssembler(8, time.Minute)
	now := time.Unix(1000, 0)
	a.now = func() time.Time { return now }
	var drops []string
	a.OnDrop(func(from, id string) { drops = append(drops, from+" "+id) })
	a.Add("a", chunkMsg("{A}", true, 3, "a0"))
	a.Add("a", chunkMsg("{A}", false, 1, "a1"))
	now = now.Add(59 * time.Second)
	a.Add("b", chunkMsg("{B}", true, 2, "b0"))
	if a.Pending() != 2 || len(drops) != 0 {
		t.Fatalf("pending %d drops %q", a.Pending(), drops)
	}
	now = now.Add(2 * time.Second) // {A} is now 61 s old
	if m, ok := a.Add("a", chunkMsg("{A}", false, 2, "a2")); ok || m != nil {
		t.Error("expired message completed")
	}
	if !reflect.DeepEqual(drops, []string{"a {A}"}) {
		t.Errorf("drops = %q", drops)
	}
	// The late part started a new incomplete entry, which expires in turn.
	now = now.Add(2 * time.Minute)
	a.Add("c", &MIMEMessage{Headers: []Header{{"Message-ID", "{C}"}, {"Chunks", "2"}}})
	if a.Pending() != 1 || len(drops) != 3 {
		t.Errorf("pending %d drops %q", a.Pending(), drops)
	}
}

func TestChunkAssemblerCaps(t *testing.T) {
	t.Run("pending messages", func(t *testing.T) {
		a := NewChunkAssembler(8, time.Hour)
		now := time.Unix(0, 0)
		a.now = func() time.Time { now = now.Add(time.Millisecond); return now }
		var drops []string
		a.OnDrop(func(_, id string) { drops = append(drops, id) })
		for i := range chunkMaxPending + 10 {
			a.Add("a", chunkMsg(fmt.Sprintf("{%d}", i), true, 2, "x"))
		}
		if a.Pending() != chunkMaxPending || len(drops) != 10 || drops[0] != "{0}" || drops[9] != "{9}" {
			t.Errorf("pending %d, drops %q", a.Pending(), drops)
		}
		// The newest survive and still complete.
		if m, ok := a.Add("a", chunkMsg(fmt.Sprintf("{%d}", chunkMaxPending+9), false, 1, "y")); !ok || string(m.Body) != "xy" {
			t.Error("newest message lost")
		}
	})
	t.Run("bytes per message", func(t *testing.T) {
		a := NewChunkAssembler(1024, time.Hour)
		var drops int
		a.OnDrop(func(_, _ string) { drops++ })
		part := strings.Repeat("a", 1500)
		a.Add("a", chunkMsg("{BIG}", true, 1000, part))
		for k := 1; k < 1000; k++ {
			if _, ok := a.Add("a", chunkMsg("{BIG}", false, k, part)); ok {
				t.Fatal("over-size message completed")
			}
		}
		if drops == 0 || a.total > chunkMaxMessage || a.Pending() > 1 {
			t.Errorf("drops %d, held %d bytes, pending %d", drops, a.total, a.Pending())
		}
	})
	t.Run("total bytes", func(t *testing.T) {
		a := NewChunkAssembler(1024, time.Hour)
		part := strings.Repeat("a", 64*1024)
		for i := range 60 {
			for k := 1; k < 15; k++ {
				a.Add("a", chunkMsg(fmt.Sprintf("{%d}", i), false, k, part))
			}
			if a.total > chunkMaxTotal+len(part) {
				t.Fatalf("holding %d bytes", a.total)
			}
		}
		sum := 0
		for _, e := range a.pending {
			sum += e.size
		}
		if sum != a.total {
			t.Errorf("accounting: entries hold %d, total says %d", sum, a.total)
		}
	})
}

func TestChunkAssemblerConcurrent(t *testing.T) {
	a := NewChunkAssembler(16, time.Minute)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				id := fmt.Sprintf("{%d-%d}", g, i)
				var got *MIMEMessage
				for k := 3; k >= 0; k-- {
					var m *MIMEMessage
					if k == 0 {
						m = chunkMsg(id, true, 4, "0")
					} else {
						m = chunkMsg(id, false, k, fmt.Sprint(k))
					}
					if r, ok := a.Add(fmt.Sprint(g), m); ok {
						got = r
					}
				}
				if got == nil || string(got.Body) != "0123" {
					t.Errorf("%s: %v", id, got)
				}
			}
		}()
	}
	wg.Wait()
	if a.Pending() != 0 {
		t.Errorf("pending %d", a.Pending())
	}
}

func BenchmarkParseMIME(b *testing.B) {
	benchParseMIME(b, NewTextMessage(strings.Repeat("Hello there, how are you? ", 50), &TextFormat{Font: "Arial", Bold: true}))
}

func BenchmarkParseMIMEProfile(b *testing.B) { benchParseMIME(b, []byte(captureProfile)) }

// BenchmarkParseMIMEGeneral parses BenchmarkParseMIME's message with the general parser, which
// ParseMIME leaves other payloads to.
func BenchmarkParseMIMEGeneral(b *testing.B) {
	p := NewTextMessage(strings.Repeat("Hello there, how are you? ", 50), &TextFormat{Font: "Arial", Bold: true})
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseMIMEGeneral(p); err != nil {
			b.Fatal(err)
		}
	}
}

func benchParseMIME(b *testing.B, p []byte) {
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseMIME(p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSplitText(b *testing.B) {
	text := randomText(rand.New(rand.NewPCG(1, 1)), 5000, false)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		SplitText(text, MaxTextBody)
	}
}

func BenchmarkSplitTextNoBreaks(b *testing.B) {
	text := strings.Repeat("漢👨‍👩‍👧‍👦e\u0301", 2000)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		SplitText(text, MaxTextBody)
	}
}
