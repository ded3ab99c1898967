package msn

import (
	"bytes"
	"testing"
)

// FuzzParseP2PBinary: any bytes as the binary part of a P2P message decode without panic, and a
// packet that decodes has its data within TotalSize and re-encodes to the same bytes.
func FuzzParseP2PBinary(f *testing.F) {
	f.Add(MarshalP2PHeader(nil, P2PHeader{TotalSize: 4, MessageSize: 4}))
	m, _ := ParseMIME(NewP2PMessage("a@b.c", P2PHeader{SessionID: 9, TotalSize: 10, Flags: P2PFlagData}, []byte("abcd"), 1))
	f.Add(m.Body)
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseP2PBinary(b)
		if err != nil {
			return
		}
		h := p.Header
		if h.Offset+uint64(len(p.Data)) > h.TotalSize || uint64(h.MessageSize) != uint64(len(p.Data)) {
			t.Fatalf("accepted chunk beyond its message: %+v", h)
		}
		re := MarshalP2PHeader(nil, h)
		re = append(append(re, p.Data...), b[len(b)-4:]...)
		if !bytes.Equal(re, b) {
			t.Fatal("re-encoding differs")
		}
	})
}

// FuzzParseSLP: any SLP text parses without panic, with bounded fields; what parses marshals
// into text that parses to the same request or response.
func FuzzParseSLP(f *testing.F) {
	f.Add((&SLPMessage{Method: "INVITE", To: "a@b.c", From: "d@e.f", Branch: "{B}", CallID: "{C}", ContentType: slpSessionReq,
		Body: []Header{{"EUF-GUID", EUFFile}, {"SessionID", "1"}, {"Context", "AAAA"}}}).Marshal())
	f.Add([]byte("MSNSLP/1.0 603 Decline\r\nCall-ID: {x}\r\nContent-Length: 99999\r\n\r\nSessionID: 1\r\n\r\n\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseSLP(b)
		if err != nil {
			return
		}
		if len(m.Body) > maxSLPHeaders || m.CallID == "" {
			t.Fatalf("unbounded or incomplete: %d body fields", len(m.Body))
		}
		if m.Method == "" && (m.Code < 100 || m.Code > 999) {
			t.Fatalf("response code %d", m.Code)
		}
	})
}

// FuzzParseMSNObject: any text parses without panic; an accepted msnobj has a creator, a
// positive Size and Type, and its XML parses back to the same object.
func FuzzParseMSNObject(f *testing.F) {
	f.Add(NewMSNObject("bob@example.com", 3, "0", "pic", []byte("x")).XML())
	f.Add(`<msnobj Creator="a@b.c" Size="1" Type="2" SHA1D="trC8SlFx2sWQxZMIBAWSEnXc8oQ=" Friendly="!!" Location='x'/>`)
	f.Add("<msnobj/>")
	f.Fuzz(func(t *testing.T, s string) {
		o, err := ParseMSNObject(s)
		if err != nil {
			return
		}
		if o.Creator == "" || o.Size <= 0 || o.Type <= 0 {
			t.Fatalf("accepted %+v", o)
		}
		p, err := ParseMSNObject(o.XML())
		if err != nil {
			t.Fatalf("own XML %q: %v", o.XML(), err)
		}
		if p.Creator != o.Creator || p.Size != o.Size || p.Type != o.Type || p.SHA1D != o.SHA1D || p.Location != o.Location {
			t.Fatalf("round trip %+v → %+v", o, p)
		}
	})
}

// FuzzParseFileContext: any bytes parse without panic; a name that comes out has no path
// separator or control character.
func FuzzParseFileContext(f *testing.F) {
	f.Add(newFileContext("a.txt", 10))
	f.Add(newFileContext(`..\..\x/y`, 1<<40))
	f.Fuzz(func(t *testing.T, b []byte) {
		fc, err := ParseFileContext(b)
		if err != nil {
			return
		}
		if fc.Size < 0 || fc.Name == "" || fc.Name == ".." || bytes.ContainsAny([]byte(fc.Name), "/\\\x00\r\n") {
			t.Fatalf("unsafe result %+v", fc)
		}
	})
}
