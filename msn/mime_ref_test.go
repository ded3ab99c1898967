package msn

import (
	"reflect"
	"strings"
	"testing"
)

// FuzzParseMIMEDifferential holds ParseMIME, whose fast path takes the messages clients send,
// to parseMIMEGeneral's results (nil and empty bodies told apart, error messages included).
func FuzzParseMIMEDifferential(f *testing.F) {
	for _, s := range fuzzMIMESeeds {
		f.Add([]byte(s))
	}
	for _, s := range []string{
		"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n",
		"A:b\nB :\t c \xc2\xa0\n\nbody\r\n",
		"A: b\r\n c\r\n\r\nfolded",
		"A: \xff\r\n\r\n",
		"A: b\r\nnot a header\r\nrest",
		" A: b\r\n\r\n",
		"\r\n\r\nbody",
		"A: b",
		"1:2\n3:4\n5:6\n7:8\n9:0\na:b\nc:d\ne:f\ng:h\n\nnine",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		got, err := ParseMIME(p)
		want, werr := parseMIMEGeneral(p)
		if (err == nil) != (werr == nil) || err != nil && err.Error() != werr.Error() {
			t.Fatalf("ParseMIME(%q): error %v, want %v", p, err, werr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("ParseMIME(%q) = %+v, want %+v", p, got, want)
		}
	})
}

// A text message as clients send it is parsed in at most three allocations.
func TestParseMIMEAllocations(t *testing.T) {
	p := NewTextMessage(strings.Repeat("Hello there, how are you? ", 50), &TextFormat{Font: "Arial", Bold: true})
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := ParseMIME(p); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 3 {
		t.Errorf("ParseMIME: %.0f allocations, want at most 3", allocs)
	}
}
