package msn

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// docs/protocol.md §3.4.
const mediaExample = `\0Music\01\0{0} - {1}\0Song Title\0Artist\0Album\0\0`

func TestParseCurrentMedia(t *testing.T) {
	tests := []struct {
		in   string
		want CurrentMedia
	}{
		{mediaExample, CurrentMedia{Type: "Music", Enabled: true, Format: "{0} - {1}", Args: []string{"Song Title", "Artist", "Album"}}},
		{"", CurrentMedia{}},
		{"   ", CurrentMedia{}},
		{`WMP\0Music\00\0{0}\0Title\0\0`, CurrentMedia{App: "WMP", Type: "Music", Format: "{0}", Args: []string{"Title"}}},
		{`\0Games\01\0Playing {0}\0Solitaire\0`, CurrentMedia{Type: "Games", Enabled: true, Format: "Playing {0}", Args: []string{"Solitaire"}}},
		{`\0Music\01`, CurrentMedia{Type: "Music", Enabled: true}},
		{`\0Music\01\0{0}\0\0Artist\0\0\0`, CurrentMedia{Type: "Music", Enabled: true, Format: "{0}", Args: []string{"", "Artist"}}},
		{`\0Music\0 1 \0{0}\0x`, CurrentMedia{Type: "Music", Enabled: true, Format: "{0}", Args: []string{"x"}}},
		{`\0Music\0yes\0{0}\0x`, CurrentMedia{Type: "Music", Format: "{0}", Args: []string{"x"}}},
		{"no separators", CurrentMedia{App: "no separators"}},
		{"a\x00b", CurrentMedia{App: "a\x00b"}}, // a NUL byte is not the separator
	}
	for _, tc := range tests {
		if got := ParseCurrentMedia(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseCurrentMedia(%q) = %#v, want %#v", tc.in, got, tc.want)
		}
	}
}

func TestCurrentMediaString(t *testing.T) {
	c := ParseCurrentMedia(mediaExample)
	if got := c.String(); got != mediaExample {
		t.Errorf("String() = %q, want %q", got, mediaExample)
	}
	if (CurrentMedia{}).String() != "" {
		t.Error("zero media should render as empty")
	}
	for _, c := range []CurrentMedia{
		{Type: "Music", Enabled: true, Format: "{0}", Args: []string{"a"}},
		{App: "WMP", Type: "Office", Format: "Editing {0}", Args: []string{"doc.txt", "", "x"}},
		{Type: "Music"},
		{Enabled: true},
	} {
		if got := ParseCurrentMedia(c.String()); !reflect.DeepEqual(got, c) {
			t.Errorf("round trip %#v → %q → %#v", c, c.String(), got)
		}
	}
}

func TestCurrentMediaRender(t *testing.T) {
	tests := []struct {
		c    CurrentMedia
		want string
	}{
		{ParseCurrentMedia(mediaExample), "Song Title - Artist"},
		{CurrentMedia{Type: "Music", Enabled: true, Format: "{1} - {0}", Args: []string{"Title", "Artist"}}, "Artist - Title"},
		{CurrentMedia{Type: "Music", Enabled: false, Format: "{0}", Args: []string{"Title"}}, ""},
		{CurrentMedia{}, ""},
		{CurrentMedia{Enabled: true, Format: "{0} {5}", Args: []string{"only"}}, "only"},
		{CurrentMedia{Enabled: true, Args: []string{"Title", " ", "Artist"}}, "Title - Artist"},
		{CurrentMedia{Enabled: true, Format: "{x} {0} {", Args: []string{"a"}}, "{x} a {"},
		{CurrentMedia{Enabled: true, Format: "{-1}{99999999999}{0}", Args: []string{"a"}}, "{-1}{99999999999}a"},
		{CurrentMedia{Enabled: true, Format: "{0}{0}", Args: []string{"ab"}}, "abab"},
		{CurrentMedia{Enabled: true, Format: "   "}, ""},
		{CurrentMedia{Enabled: true, Format: "{0}"}, ""},
		{CurrentMedia{Enabled: true, Format: "Playing {0}", Args: []string{"Minesweeper"}}, "Playing Minesweeper"},
	}
	for _, tc := range tests {
		if got := tc.c.Render(); got != tc.want {
			t.Errorf("%#v.Render() = %q, want %q", tc.c, got, tc.want)
		}
	}
}

func TestCurrentMediaIsZero(t *testing.T) {
	if !(CurrentMedia{}).IsZero() || !ParseCurrentMedia("").IsZero() {
		t.Error("empty media not zero")
	}
	for _, c := range []CurrentMedia{{App: "x"}, {Type: "x"}, {Enabled: true}, {Format: "x"}, {Args: []string{""}}} {
		if c.IsZero() {
			t.Errorf("%#v is not zero", c)
		}
	}
}

func TestParseUBX(t *testing.T) {
	music := CurrentMedia{Type: "Music", Enabled: true, Format: "{0} - {1}", Args: []string{"Song Title", "Artist", "Album"}}
	tests := []struct {
		name  string
		in    string
		psm   string
		media CurrentMedia
	}{
		{"capture", "<Data><PSM>PSM of B</PSM><CurrentMedia></CurrentMedia></Data>", "PSM of B", CurrentMedia{}},
		{"media", "<Data><PSM></PSM><CurrentMedia>" + mediaExample + "</CurrentMedia></Data>", "", music},
		{"escargot entities", "<Data><PSM>a &amp; b &lt;3 &gt; &apos;q&apos; &quot;x&quot;</PSM><CurrentMedia/></Data>",
			`a & b <3 > 'q' "x"`, CurrentMedia{}},
		{"numeric references", "<Data><PSM>&#233;&#x1F600;</PSM></Data>", "é😀", CurrentMedia{}},
		{"html entity", "<Data><PSM>a&nbsp;b &copy;</PSM></Data>", "a\u00a0b ©", CurrentMedia{}},
		{"unknown entity kept", "<Data><PSM>&bogus; &amp</PSM></Data>", "&bogus; &amp", CurrentMedia{}},
		{"machine guid", "<Data><PSM>hi</PSM><CurrentMedia></CurrentMedia><MachineGuid>{F26D1F07-95E2-403C-BC18-D4BFED493428}</MachineGuid></Data>",
			"hi", CurrentMedia{}},
		{"unknown elements anywhere", "<Data><Foo><PSM>no</PSM></Foo><PSM>yes<b>!</b></PSM><DDP></DDP></Data>", "yes!", CurrentMedia{}},
		{"missing psm", "<Data><CurrentMedia>" + mediaExample + "</CurrentMedia></Data>", "", music},
		{"missing both", "<Data></Data>", "", CurrentMedia{}},
		{"self-closing", "<Data><PSM/><CurrentMedia/></Data>", "", CurrentMedia{}},
		{"xml declaration and blanks", "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<Data>\r\n  <PSM>  spaced  </PSM>\r\n</Data>\r\n",
			"spaced", CurrentMedia{}},
		{"declared other encoding", "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?><Data><PSM>é</PSM></Data>", "é", CurrentMedia{}},
		{"cdata", "<Data><PSM><![CDATA[<b>&amp;</b>]]></PSM></Data>", "<b>&amp;</b>", CurrentMedia{}},
		{"comment", "<Data><PSM>a<!-- c -->b</PSM></Data>", "ab", CurrentMedia{}},
		{"bad utf-8", "<Data><PSM>caf\xe9 \xff</PSM></Data>", "caf\uFFFD \uFFFD", CurrentMedia{}},
		{"control characters", "<Data><PSM>a\x01b\x00c</PSM></Data>", "a\uFFFDb\uFFFDc", CurrentMedia{}},
		{"case-insensitive names", "<data><psm>x</psm><currentmedia>" + mediaExample + "</currentmedia></data>", "x", music},
		{"first psm wins", "<Data><PSM>one</PSM><PSM>two</PSM></Data>", "one", CurrentMedia{}},
		{"namespaced", `<Data xmlns="urn:x"><PSM>ns</PSM></Data>`, "ns", CurrentMedia{}},
		{"emoji and cjk", "<Data><PSM>🎵 音楽 👨‍👩‍👧</PSM></Data>", "🎵 音楽 👨‍👩‍👧", CurrentMedia{}},
		{"empty payload", "", "", CurrentMedia{}},
		{"blank payload", " \r\n", "", CurrentMedia{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			psm, media, err := ParseUBX([]byte(tc.in))
			if err != nil {
				t.Fatalf("ParseUBX: %v", err)
			}
			if psm != tc.psm || !reflect.DeepEqual(media, tc.media) {
				t.Errorf("ParseUBX = %q, %#v; want %q, %#v", psm, media, tc.psm, tc.media)
			}
			if !utf8.ValidString(psm) {
				t.Errorf("psm not valid UTF-8: %q", psm)
			}
		})
	}
}

func TestParseUBXErrors(t *testing.T) {
	bomb := `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">` +
		`<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><Data><PSM>&lol3;</PSM></Data>`
	tests := []struct {
		name string
		in   string
		want error // nil: any error
	}{
		{"billion laughs", bomb, ErrUBXDoctype},
		{"lower-case doctype", `<!doctype Data><Data><PSM>x</PSM></Data>`, ErrUBXDoctype},
		{"entity without doctype", `<!ENTITY x "y"><Data/>`, ErrUBXDoctype},
		{"external entity", `<!DOCTYPE d SYSTEM "file:///etc/passwd"><Data><PSM>&d;</PSM></Data>`, ErrUBXDoctype},
		{"too large", "<Data><PSM>" + strings.Repeat("a", MaxUBXPayload) + "</PSM></Data>", ErrUBXTooLarge},
		{"too deep", strings.Repeat("<a>", psmMaxDepth+1) + strings.Repeat("</a>", psmMaxDepth+1), ErrUBXTooComplex},
		{"too many tokens", "<Data>" + strings.Repeat("<x/>", psmMaxTokens) + "</Data>", ErrUBXTooComplex},
		{"not xml", "hello", nil},
		{"truncated", "<Data><PSM>abc", nil},
		{"truncated after psm", "<Data><PSM>abc</PSM>", nil},
		{"two roots", "<Data></Data><Data></Data>", nil},
		{"stray end", "</Data>", nil},
		{"bad tag", "<Data><PSM>a</PSM><</Data>", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			psm, media, err := ParseUBX([]byte(tc.in))
			if err == nil {
				t.Fatalf("ParseUBX = %q, %#v, nil; want an error", psm, media)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
			if psm != "" || !media.IsZero() {
				t.Errorf("values returned with an error: %q %#v", psm, media)
			}
			if !strings.HasPrefix(err.Error(), "failed to parse ubx payload: ") {
				t.Errorf("error not wrapped: %q", err)
			}
		})
	}
	// Deep but allowed nesting is fine.
	ok := "<Data><PSM>" + strings.Repeat("<a>", psmMaxDepth-2) + "x" + strings.Repeat("</a>", psmMaxDepth-2) + "</PSM></Data>"
	if psm, _, err := ParseUBX([]byte(ok)); err != nil || psm != "x" {
		t.Errorf("depth %d: %q, %v", psmMaxDepth, psm, err)
	}
}

func TestBuildUUX(t *testing.T) {
	tests := []struct {
		psm   string
		media *CurrentMedia
		want  string
	}{
		{"PSM of A", nil, "<Data><PSM>PSM of A</PSM><CurrentMedia></CurrentMedia></Data>"}, // capture, 61 bytes
		{"", nil, "<Data><PSM></PSM><CurrentMedia></CurrentMedia></Data>"},
		{"", &CurrentMedia{}, "<Data><PSM></PSM><CurrentMedia></CurrentMedia></Data>"},
		{`a & b <3 > 'q' "x"`, nil, "<Data><PSM>a &amp; b &lt;3 &gt; &apos;q&apos; &quot;x&quot;</PSM><CurrentMedia></CurrentMedia></Data>"},
		{"line\r\nbreak\ttab", nil, "<Data><PSM>line  break tab</PSM><CurrentMedia></CurrentMedia></Data>"},
		{"bad\xff\x01", nil, "<Data><PSM>bad\uFFFD\uFFFD</PSM><CurrentMedia></CurrentMedia></Data>"},
		{"", &CurrentMedia{Type: "Music", Enabled: true, Format: "{0} - {1}", Args: []string{"Song Title", "Artist", "Album"}},
			"<Data><PSM></PSM><CurrentMedia>" + mediaExample + "</CurrentMedia></Data>"},
		{"", &CurrentMedia{Type: "Music", Enabled: true, Format: "{0}", Args: []string{"R&B <live>"}},
			`<Data><PSM></PSM><CurrentMedia>\0Music\01\0{0}\0R&amp;B &lt;live&gt;\0\0</CurrentMedia></Data>`},
	}
	for _, tc := range tests {
		if got := string(BuildUUX(tc.psm, tc.media)); got != tc.want {
			t.Errorf("BuildUUX(%q, %v) = %q, want %q", tc.psm, tc.media, got, tc.want)
		}
	}
	if n := len(BuildUUX("PSM of A", nil)); n != 61 {
		t.Errorf("capture length %d, want 61", n)
	}
}

func TestUUXRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	pieces := []string{"a", " ", "&", "<", ">", "'", `"`, "é", "😀", "&amp;", "]]>", "\\0", "{0}", "\t", "\n", "\x00", "\xff", "\ufffe"}
	gen := func() string {
		var b strings.Builder
		for range rng.IntN(30) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		return b.String()
	}
	for range 2000 {
		psm := gen()
		media := CurrentMedia{Type: "Music", Enabled: rng.IntN(2) == 0, Format: "{0}", Args: []string{gen()}}
		gotPSM, gotMedia, err := ParseUBX(BuildUUX(psm, &media))
		if err != nil {
			t.Fatalf("ParseUBX(BuildUUX(%q)): %v", psm, err)
		}
		wantPSM := strings.TrimSpace(psmCleanForTest(strings.NewReplacer("\r", " ", "\n", " ", "\t", " ").Replace(psm)))
		if gotPSM != wantPSM {
			t.Fatalf("psm %q came back as %q, want %q", psm, gotPSM, wantPSM)
		}
		wantMedia := ParseCurrentMedia(psmCleanForTest(media.String()))
		if !reflect.DeepEqual(gotMedia, wantMedia) {
			t.Fatalf("media %#v came back as %#v", wantMedia, gotMedia)
		}
	}
}

// psmCleanForTest replaces what BuildUUX cannot carry (invalid UTF-8, non-XML characters).
func psmCleanForTest(s string) string {
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		if !psmXMLChar(r) {
			r = '\uFFFD'
		}
		b.WriteRune(r)
	}
	return b.String()
}

func BenchmarkParseUBX(b *testing.B) {
	p := BuildUUX("Listening to something & more", &CurrentMedia{Type: "Music", Enabled: true, Format: "{0} - {1}", Args: []string{"Title", "Artist"}})
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ParseUBX(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseUBXXML parses the same payload as BenchmarkParseUBX with encoding/xml, the
// parser ParseUBX leaves unusual payloads to.
func BenchmarkParseUBXXML(b *testing.B) {
	p := BuildUUX("Listening to something & more", &CurrentMedia{Type: "Music", Enabled: true, Format: "{0} - {1}", Args: []string{"Title", "Artist"}})
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		psm, raw, err := parseUBXXML(p)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = psm, refParseCurrentMedia(raw)
	}
}
