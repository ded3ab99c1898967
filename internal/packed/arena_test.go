package packed

import (
	"fmt"
	"strings"
	"testing"
)

// The records an arena holds read back as written through changes and compactions, and a
// view taken before them still reads what it read then: the arena never writes over a record.
func TestArenaKeepsRecordsAndViews(t *testing.T) {
	var a Arena
	const n = 50
	refs := make([]Ref, n)
	want := make([][3]string, n)
	for i := range refs {
		want[i] = [3]string{fmt.Sprintf("contact%d@example.com", i), "", strings.Repeat("n", i)}
		refs[i] = a.Add(want[i][:]...)
	}
	views := make([]string, n)
	for i, r := range refs {
		views[i] = a.View(r)
	}
	compactions := 0
	for round := range 200 {
		i := round % n
		v := fmt.Sprintf("psm %d of %d %s", round, i, strings.Repeat("p", round%40))
		if r := a.Set(refs[i], 1, v); r == refs[i] {
			t.Fatalf("round %d: Set of a new value returned the old record", round)
		} else {
			refs[i] = r
		}
		want[i][1] = v
		if r := a.Set(refs[i], 1, v); r != refs[i] {
			t.Fatalf("round %d: Set of the same value made a new record", round)
		}
		if a.Wasteful() {
			before, _ := a.Size()
			a.Compact(func(move func(Ref) Ref) {
				for j := range refs {
					refs[j] = move(refs[j])
				}
			})
			used, dead := a.Size()
			if dead != 0 || used >= before {
				t.Fatalf("compaction left %d of %d bytes, %d dead (was %d)", used, before, dead, before)
			}
			compactions++
		}
		for j, r := range refs {
			for f := range 3 {
				if got := a.Field(r, f); got != want[j][f] {
					t.Fatalf("round %d: record %d field %d = %q, want %q", round, j, f, got, want[j][f])
				}
			}
		}
	}
	if compactions == 0 {
		t.Fatal("no compaction in 200 changes")
	}
	for i, v := range views {
		if v != Pack(fmt.Sprintf("contact%d@example.com", i), "", strings.Repeat("n", i)) {
			t.Fatalf("view %d changed to %q", i, v)
		}
	}
}

// A copy shares nothing with the arena, and the zero Ref is an empty record.
func TestArenaCopyAndZero(t *testing.T) {
	var a Arena
	if a.View(Ref{}) != "" || a.Copy(Ref{}) != "" {
		t.Fatal("the zero Ref is not empty")
	}
	r := a.Add("a", "bc")
	c := a.Copy(r)
	if c != Pack("a", "bc") {
		t.Fatalf("copy %q", c)
	}
	a.Drop(r)
	if _, dead := a.Size(); dead != r.Len() {
		t.Fatalf("dead %d after dropping a record of %d bytes", dead, r.Len())
	}
}

func BenchmarkArenaSet(b *testing.B) {
	var a Arena
	refs := make([]Ref, 100)
	for i := range refs {
		refs[i] = a.Add(fmt.Sprintf("contact%d@example.com", i), "Stored", "Friendly", "", "psm", "", "")
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		j := i % len(refs)
		refs[j] = a.Set(refs[j], 4, fmt.Sprint(i%7))
		if a.Wasteful() {
			a.Compact(func(move func(Ref) Ref) {
				for k := range refs {
					refs[k] = move(refs[k])
				}
			})
		}
	}
}
