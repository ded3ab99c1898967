package bridge

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/msn-bridge/msn-bridge/msn"
)

// Every field of a contact reads back what was stored, whatever its length (a length of 128
// or more takes two bytes, of 16,384 three) and content, and changing one leaves the others.
func TestContactFieldsRoundTrip(t *testing.T) {
	long := strings.Repeat("x", 200)
	huge := strings.Repeat("é", 9000) // 18,000 bytes
	for _, mc := range []msn.Contact{
		{Handle: "a@example.com", Status: msn.StatusOffline},
		{Handle: "b@example.com", StoredName: "B", FriendlyName: "Bee \x00 zero", Status: msn.StatusAway,
			PSM: long, Groups: []string{"1", "", "g-3"}, Lists: msn.ListForward | msn.ListAllow},
		{Handle: "c@example.com", FriendlyName: huge, PSM: "p", Media: msn.CurrentMedia{App: "WMP", Type: "Music", Enabled: true, Format: "{0}", Args: []string{"song"}},
			Groups: []string{long}, Status: msn.StatusBRB},
	} {
		s := newContactSet(1)
		c := s.put(&mc)
		check := func(when string, want msn.Contact) {
			t.Helper()
			got := [...]string{c.Handle(), c.StoredName(), c.FriendlyName(), c.PSM(), c.Media()}
			exp := [...]string{want.Handle, want.StoredName, want.FriendlyName, want.PSM, want.Media.Render()}
			if got != exp {
				t.Fatalf("%s: fields %q, want %q", when, got, exp)
			}
			if g := c.Groups(); !slices.Equal(g, want.Groups) {
				t.Fatalf("%s: groups %q, want %q", when, g, want.Groups)
			}
			if c.Status() != want.Status || c.lists != want.Lists {
				t.Fatalf("%s: status %q lists %v, want %q %v", when, c.Status(), c.lists, want.Status, want.Lists)
			}
			if got, exp := neutralContact(c), (Contact{Handle: want.Handle, Groups: want.Groups}); got.Handle != exp.Handle || !slices.Equal(got.Groups, exp.Groups) {
				t.Fatalf("%s: neutral form %+v, want handle and groups of %+v", when, got, exp)
			}
		}
		check("stored", mc)
		c.set(fieldPSM, huge)
		mc.PSM = huge
		check("PSM changed", mc)
		c.setGroups(nil)
		mc.Groups = nil
		check("groups cleared", mc)
	}
}

// The set keeps its contacts in handle order through adds, replacements and removals.
func TestContactSetOrder(t *testing.T) {
	s := newContactSet(0)
	var want []string
	for _, i := range []int{5, 1, 9, 3, 7, 0, 8, 2, 6, 4} {
		h := fmt.Sprintf("c%d@example.com", i)
		s.add(h, msn.StatusOffline)
		want = append(want, h)
	}
	slices.Sort(want)
	handles := func() []string {
		var out []string
		for i := range s.len() {
			out = append(out, s.at(i).Handle())
		}
		return out
	}
	if got := handles(); !slices.Equal(got, want) {
		t.Fatalf("order %q, want %q", got, want)
	}
	c := s.get("c3@example.com")
	if !c.ok() {
		t.Fatal("c3 not found")
	}
	c.setStatus(msn.StatusBusy)
	if s.get("c3@example.com").Status() != msn.StatusBusy {
		t.Fatal("a change through get's pointer was not kept")
	}
	s.add("c3@example.com", msn.StatusOnline)
	if s.len() != 10 || s.get("c3@example.com").Status() != msn.StatusOnline {
		t.Fatalf("put of a known handle: %d contacts, status %q", s.len(), s.get("c3@example.com").Status())
	}
	s.remove("c0@example.com")
	s.remove("c9@example.com")
	s.remove("nobody@example.com")
	if got := handles(); !slices.Equal(got, want[1:9]) {
		t.Fatalf("after removals %q, want %q", got, want[1:9])
	}
	if s.get("c0@example.com").ok() {
		t.Fatal("a removed contact is still found")
	}
}

// Changes leave dead records in the set's arena until it compacts; through many of them every
// contact reads what it was last given, and what was handed to frontends (neutralContact,
// copyView) does not change with the contact.
func TestContactSetCompacts(t *testing.T) {
	s := newContactSet(0)
	for i := range 100 {
		s.add(fmt.Sprintf("c%02d@example.com", i), msn.StatusOnline)
	}
	handed := neutralContact(s.get("c07@example.com"))
	shown := s.get("c07@example.com").copyView()
	compactions, lastUsed := 0, 0
	for round := range 100 {
		for i := range s.len() {
			c := s.at(i)
			c.set(fieldPSM, fmt.Sprintf("psm %d of %s", round, c.Handle()))
			c.setGroups([]string{fmt.Sprint(round)})
		}
		if used, _ := s.arena.Size(); used < lastUsed {
			compactions++
		} else {
			lastUsed = used
		}
	}
	if compactions == 0 {
		t.Fatal("the arena never compacted")
	}
	for i := range s.len() {
		c := s.at(i)
		h := fmt.Sprintf("c%02d@example.com", i)
		if c.Handle() != h || c.PSM() != "psm 99 of "+h || !slices.Equal(c.Groups(), []string{"99"}) || c.Status() != msn.StatusOnline {
			t.Fatalf("contact %d after the changes: %q %q %q %q", i, c.Handle(), c.PSM(), c.Groups(), c.Status())
		}
	}
	if handed.Handle != "c07@example.com" || handed.PSM != "" || handed.Groups != nil || shown.PSM != "" || shown.Handle != handed.Handle {
		t.Fatalf("what frontends were handed changed: %+v, %+v", handed, shown)
	}
}
