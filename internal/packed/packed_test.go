package packed

import (
	"slices"
	"strings"
	"testing"
)

// Every field reads back what was packed, whatever its length (one byte of length up to 127,
// two up to 16,383, three above) and content, and Arena.Set changes one field and no other.
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
	var a Arena
	r := a.Add(fields...)
	if rec = a.View(r); rec != Pack(fields...) {
		t.Fatal("an arena's record differs from Pack's")
	}
	for i, v := range []string{"new", strings.Repeat("z", 20000), "", "b"} {
		fields[i*2%len(fields)] = v
		r = a.Set(r, i*2%len(fields), v)
		rec = a.View(r)
		check("after a set", fields)
	}
	if same := a.Set(r, 1, fields[1]); same != r {
		t.Fatal("setting a field to its value made a new record")
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
