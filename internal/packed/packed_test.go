package packed

import (
	"slices"
	"strings"
	"testing"
)

// Every field reads back what was packed, whatever its length (one byte of length up to 127,
// two up to 16,383, three above) and content, and Set changes one field and no other.
func TestRoundTrip(t *testing.T) {
	fields := []string{"", "a", strings.Repeat("x", 127), strings.Repeat("y", 128), "\x00\x80\xff", strings.Repeat("é", 9000), ""}
	rec := Pack(fields...)
	check := func(when string, want []string) {
		t.Helper()
		got := make([]string, len(want))
		Unpack(rec, got)
		if !slices.Equal(got, want) {
			t.Fatalf("%s: unpacked %d fields differ", when, len(want))
		}
		for i := range want {
			if Field(rec, i) != want[i] {
				t.Fatalf("%s: field %d = %.20q, want %.20q", when, i, Field(rec, i), want[i])
			}
		}
	}
	check("packed", fields)
	for i, v := range []string{"new", strings.Repeat("z", 20000), "", "b"} {
		fields[i*2%len(fields)] = v
		rec = Set(rec, i*2%len(fields), v)
		check("after a set", fields)
	}
	if same := Set(rec, 1, fields[1]); same != rec {
		t.Fatal("setting a field to its value built a new string")
	}
	if Empty(3) != Pack("", "", "") || Empty(40) != Pack(make([]string, 40)...) {
		t.Fatal("Empty is not the packed form of empty fields")
	}
}

func TestList(t *testing.T) {
	for _, items := range [][]string{nil, {""}, {"g1"}, {"g1", "", strings.Repeat("g", 300)}} {
		got := Items(List(items))
		if !slices.Equal(got, items) || (items == nil) != (got == nil) {
			t.Fatalf("list %q read back as %q", items, got)
		}
	}
}
