package msn

import (
	"reflect"
	"strings"
	"testing"
)

// refParseCurrentMedia is ParseCurrentMedia as it was written first, with strings.Split: the
// reference of FuzzParseUBXDifferential.
func refParseCurrentMedia(s string) CurrentMedia {
	if strings.TrimSpace(s) == "" {
		return CurrentMedia{}
	}
	f := strings.Split(s, psmSep)
	get := func(i int) string {
		if i < len(f) {
			return f[i]
		}
		return ""
	}
	c := CurrentMedia{App: get(0), Type: get(1), Enabled: strings.TrimSpace(get(2)) == "1", Format: get(3)}
	if len(f) > 4 {
		args := f[4:]
		for len(args) > 0 && args[len(args)-1] == "" {
			args = args[:len(args)-1]
		}
		if len(args) > 0 {
			c.Args = append([]string(nil), args...)
		}
	}
	return c
}

// FuzzParseUBXDifferential holds parseUBX, whose fast path takes the payloads servers send, to
// parseUBXXML's results with encoding/xml (error messages included), and ParseCurrentMedia to
// refParseCurrentMedia's, on any input.
func FuzzParseUBXDifferential(f *testing.F) {
	for _, s := range []string{
		"<Data><PSM>PSM of A</PSM><CurrentMedia></CurrentMedia></Data>",
		"<Data><PSM></PSM><CurrentMedia>" + mediaExample + "</CurrentMedia></Data>",
		"<Data><PSM>a &amp; b &lt;3 &apos;&quot;&gt;</PSM><CurrentMedia/><MachineGuid>{F26D1F07-95E2-403C-BC18-D4BFED493428}</MachineGuid></Data>",
		"\r\n <data><psm>x\r\ny\rz ]] > </psm><Foo><PSM>no</PSM></Foo><currentmedia>a\\0b\\0\\0</currentmedia><PSM>two</PSM></data>\n",
		"<Data><PSM>a<b>c</b>d</PSM></Data>", "<Data><PSM>]]></PSM></Data>", "<Data><PSM>&amp</PSM></Data>",
		"<Data><PSM>x</psm></Data>", "<Data/><Data/>", "<Data></Data>x", "<1/>", "<a.b-c_d/>",
		`<!DOCTYPE d [<!ENTITY a "b">]><Data><PSM>&a;</PSM></Data>`,
		"<?xml version=\"1.0\"?><Data><PSM><![CDATA[x]]>&#233;&nbsp;</PSM></Data>",
		"<Data><PSM>caf\xe9\x01</PSM></Data>", "<Data><PSM>abc", "", " \t", "<a><b><c></c></b></a>",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		psm, media, err := parseUBX(p)
		wpsm, wmedia, werr := parseUBXXML(p)
		if psm != wpsm || media != wmedia || (err == nil) != (werr == nil) || err != nil && err.Error() != werr.Error() {
			t.Fatalf("parseUBX(%q) = %q, %q, %v; want %q, %q, %v", p, psm, media, err, wpsm, wmedia, werr)
		}
		if got, want := ParseCurrentMedia(string(p)), refParseCurrentMedia(string(p)); !reflect.DeepEqual(got, want) {
			t.Fatalf("ParseCurrentMedia(%q) = %#v, want %#v", p, got, want)
		}
	})
}

// The UBX a contact's client sends costs at most four allocations, its current media included.
func TestParseUBXAllocations(t *testing.T) {
	p := BuildUUX("Listening to something & more", &CurrentMedia{Type: "Music", Enabled: true, Format: "{0} - {1}", Args: []string{"Title", "Artist"}})
	allocs := testing.AllocsPerRun(100, func() {
		if _, _, err := ParseUBX(p); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 4 {
		t.Errorf("ParseUBX: %.0f allocations, want at most 4", allocs)
	}
}
