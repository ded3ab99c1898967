package msn

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// Seeds: the docs/protocol.md examples and the Escargot captures, plus the awkward shapes the
// parsers are meant to tolerate.
var fuzzMIMESeeds = []string{
	protocolExample, captureText, captureTyping, captureFormatted, captureMailData, captureProfile,
	"MIME-Version: 1.0\r\nContent-Type: text/x-msnmsgr-datacast\r\n\r\nID: 1\r\n\r\n",
	"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsinvite; charset=UTF-8\r\n\r\nInvitation-Command: CANCEL\r\nInvitation-Cookie: 1\r\nCancel-Code: REJECT_NOT_INSTALLED\r\n",
	"Content-Type: application/x-msmsgssystemmessage\r\n\r\nType: 1\r\nArg1: 5\r\n",
	"Content-Type: application/x-msnmsgrp2p\r\nP2P-Dest: a@b\r\n\r\n\x00\x00\x00\x00\xff",
	"Message-ID: {A}\r\nChunks: 2\r\nContent-Type: text/plain\r\n\r\nab",
	"Message-ID: {A}\r\nChunk: 1\r\n\r\ncd",
	"content-type:text/plain;charset=utf-8\nx-mms-im-format:FN=a;EF=BIUS;CO=#ff\n\nlf only",
	"A: 1\r\n folded\r\nno blank line",
	"", ":", "\r\n", "A:\r\n\r\n",
}

func FuzzParseMIME(f *testing.F) {
	for _, s := range fuzzMIMESeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		m, err := ParseMIME(p)
		if err != nil {
			if m != nil {
				t.Fatal("message returned with an error")
			}
			return
		}
		if len(m.Headers) == 0 || len(m.Headers) > mimeMaxHeaders {
			t.Fatalf("%d headers", len(m.Headers))
		}
		for _, h := range m.Headers {
			if h.Name == "" || strings.ContainsAny(h.Name, ": \t\r\n") || !utf8.ValidString(h.Value) ||
				strings.ContainsRune(h.Value, '\n') || h.Value != strings.TrimSpace(h.Value) {
				t.Fatalf("bad header %q", h)
			}
		}
		if text := m.Text(); !utf8.ValidString(text) || strings.ContainsRune(text, '\r') {
			t.Fatalf("Text() = %q", text)
		}
		if ct := m.ContentType(); ct != strings.ToLower(ct) {
			t.Fatalf("ContentType() = %q", ct)
		}
		_ = m.Charset()
		_ = m.Format()
		_ = ClassifyMessage(m)
		_ = ParseDatacastID(m)
		_, _ = ParseInvite(m)
		_ = ParseHotmailProfile(m)
		_, _ = ParseMailData(m)
		_, _, _ = ParseSystemMessage(m)
		a := NewChunkAssembler(4, 0)
		_, _ = a.Add("x", m)

		// Marshal and parse again: same names, same body, values with CRs flattened.
		if len(p) > 16*1024 {
			return
		}
		m2, err := ParseMIME(m.Marshal())
		if err != nil {
			t.Fatalf("re-parse of %q: %v", m.Marshal(), err)
		}
		if len(m2.Headers) != len(m.Headers) || string(m2.Body) != string(m.Body) {
			t.Fatalf("round trip changed the message:\n%q %q\n%q %q", m.Headers, m.Body, m2.Headers, m2.Body)
		}
		for i, h := range m.Headers {
			want := strings.TrimSpace(strings.ReplaceAll(h.Value, "\r", " "))
			if m2.Headers[i].Name != h.Name || m2.Headers[i].Value != want {
				t.Fatalf("header %d: %q became %q", i, h, m2.Headers[i])
			}
		}
	})
}

func FuzzParseUBX(f *testing.F) {
	for _, s := range []string{
		"<Data><PSM>PSM of A</PSM><CurrentMedia></CurrentMedia></Data>",
		"<Data><PSM></PSM><CurrentMedia>" + mediaExample + "</CurrentMedia></Data>",
		"<Data><PSM>a &amp; b &lt;3 &apos;&quot;&gt;</PSM><CurrentMedia/><MachineGuid>{F26D1F07-95E2-403C-BC18-D4BFED493428}</MachineGuid></Data>",
		`<!DOCTYPE d [<!ENTITY a "b">]><Data><PSM>&a;</PSM></Data>`,
		"<?xml version=\"1.0\"?><Data><PSM><![CDATA[x]]>&#233;&nbsp;</PSM></Data>",
		"<Data><PSM>caf\xe9\x01</PSM></Data>",
		"<Data><PSM>abc", "", "<a><b><c></c></b></a>",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		psm, media, err := ParseUBX(p)
		if err != nil {
			if psm != "" || !media.IsZero() {
				t.Fatal("values returned with an error")
			}
			return
		}
		if !utf8.ValidString(psm) || psm != strings.TrimSpace(psm) {
			t.Fatalf("psm %q", psm)
		}
		if !utf8.ValidString(media.String()) || !utf8.ValidString(media.Render()) {
			t.Fatalf("media %#v", media)
		}
		if again := ParseCurrentMedia(media.String()); !reflect.DeepEqual(again, media) {
			t.Fatalf("media round trip %#v → %q → %#v", media, media.String(), again)
		}
		// What we parsed, we can send, and it parses back the same.
		psm2, media2, err := ParseUBX(BuildUUX(psm, &media))
		if err != nil {
			t.Fatalf("ParseUBX(BuildUUX(%q, %#v)): %v", psm, media, err)
		}
		wantPSM := strings.TrimSpace(strings.NewReplacer("\r", " ", "\n", " ", "\t", " ").Replace(psm))
		if psm2 != wantPSM || !reflect.DeepEqual(media2, media) {
			t.Fatalf("UUX round trip: %q %#v → %q %#v", psm, media, psm2, media2)
		}
	})
}

func FuzzParseTextFormat(f *testing.F) {
	for _, s := range []string{
		"FN=Segoe%20UI; EF=B; CO=ff0000; CS=0; PF=22",
		"FN=Arial; EF=B; CO=ff; CS=0; PF=22",
		"FN=Segoe%20UI; EF=; CO=0; CS=1; PF=0",
		"FN=MS%20Sans%20Serif; EF=BIUS; CO=ff00; CS=80; PF=31; RL=1",
		"  fn = a%3Bb ;ef=iu;co=#123456;;=;", "", "CO=1234567", "FN=%E3%83%A1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		tf := ParseTextFormat(v)
		if tf == nil {
			t.Fatal("nil format")
		}
		if !utf8.ValidString(tf.Font) {
			t.Fatalf("font %q", tf.Font)
		}
		if tf.Color != "" && (len(tf.Color) != 6 || strings.Trim(tf.Color, "0123456789abcdef") != "") {
			t.Fatalf("colour %q", tf.Color)
		}
		s := tf.String()
		if strings.ContainsAny(s, "\r\n") {
			t.Fatalf("String() = %q", s)
		}
		// String is a fixed point after one parse.
		tf2 := ParseTextFormat(s)
		if s2 := tf2.String(); s2 != s {
			t.Fatalf("not stable: %q → %q → %q", v, s, s2)
		}
		if tf.Color != "" && tf2.Color != tf.Color {
			t.Fatalf("colour %q became %q", tf.Color, tf2.Color)
		}
		if tf.Bold != tf2.Bold || tf.Italic != tf2.Italic || tf.Underline != tf2.Underline ||
			tf.Strike != tf2.Strike || tf.RightToLeft != tf2.RightToLeft {
			t.Fatalf("effects changed: %+v → %+v", tf, tf2)
		}
	})
}

func FuzzSplitText(f *testing.F) {
	for _, s := range []struct {
		text string
		max  int
	}{
		{"Hello, Bob!\nSecond line", 10},
		{"aaa bbb ccc ddd", 8},
		{"👨‍👩‍👧‍👦👨‍👩‍👧‍👦 🇫🇷🇩🇪 e\u0301e\u0301 漢字漢字", 9},
		{"a\r\nb\rc\n\n\nd", 4},
		{"aaaa \u0301bbbb", 6},
		{strings.Repeat("word ", 400), 0},
		{"\xff\xfe bad", 5},
		{"", 3},
	} {
		f.Add(s.text, s.max)
	}
	f.Fuzz(func(t *testing.T, text string, maxBytes int) {
		if maxBytes > 1<<16 {
			maxBytes %= 1 << 16
		}
		parts := SplitText(text, maxBytes)
		if msg := checkSplit(text, maxBytes, parts); msg != "" {
			t.Fatalf("SplitText(%q, %d) = %q: %s", text, maxBytes, parts, msg)
		}
	})
}
