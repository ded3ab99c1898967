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
		{Handle: "a@example.com"},
		{Handle: "b@example.com", StoredName: "B", FriendlyName: "Bee \x00 zero", Status: msn.StatusAway,
			PSM: long, Groups: []string{"1", "", "g-3"}, Lists: msn.ListForward | msn.ListAllow},
		{Handle: "c@example.com", FriendlyName: huge, PSM: "p", Media: msn.CurrentMedia{App: "WMP", Type: "Music", Enabled: true, Format: "{0}", Args: []string{"song"}},
			Groups: []string{long}, Status: msn.Status("XYZ")},
	} {
		c := contactFrom(&mc)
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
			if c.status != want.Status || c.lists != want.Lists {
				t.Fatalf("%s: status %q lists %v, want %q %v", when, c.status, c.lists, want.Status, want.Lists)
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
		s.put(newContact(h, msn.StatusOffline))
		want = append(want, h)
	}
	slices.Sort(want)
	handles := func() []string {
		var out []string
		for i := range s.all() {
			out = append(out, s.all()[i].Handle())
		}
		return out
	}
	if got := handles(); !slices.Equal(got, want) {
		t.Fatalf("order %q, want %q", got, want)
	}
	c := s.get("c3@example.com")
	if c == nil {
		t.Fatal("c3 not found")
	}
	c.status = msn.StatusBusy
	if s.get("c3@example.com").status != msn.StatusBusy {
		t.Fatal("a change through get's pointer was not kept")
	}
	s.put(newContact("c3@example.com", msn.StatusOnline))
	if len(s.all()) != 10 || s.get("c3@example.com").status != msn.StatusOnline {
		t.Fatalf("put of a known handle: %d contacts, status %q", len(s.all()), s.get("c3@example.com").status)
	}
	s.remove("c0@example.com")
	s.remove("c9@example.com")
	s.remove("nobody@example.com")
	if got := handles(); !slices.Equal(got, want[1:9]) {
		t.Fatalf("after removals %q, want %q", got, want[1:9])
	}
	if s.get("c0@example.com") != nil {
		t.Fatal("a removed contact is still found")
	}
}
