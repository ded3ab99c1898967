package msntest

import (
	"testing"
)

func twoFriends(t *testing.T, opts Options) *Server {
	t.Helper()
	s := newServer(t, opts)
	for _, a := range [][3]string{{"alice@example.com", "alicepw", "Alice"}, {"bob@example.com", "bobpw", "Bob"}} {
		if err := s.AddAccount(a[0], a[1], a[2]); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddFriends("alice@example.com", "bob@example.com"); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPresenceFanOut(t *testing.T) {
	s := twoFriends(t, Options{})
	a := online(t, s, "alice@example.com", "alicepw")
	tr := a.next()
	a.sendPayload("UUX "+tr, "<Data><PSM>PSM of A</PSM><CurrentMedia></CurrentMedia></Data>")
	a.untilLine("UUX " + tr + " 0")

	b := login(t, s, "bob@example.com", "bobpw")
	tr = b.next()
	b.send("CHG " + tr + " NLN 1073791020")
	b.expect("CHG " + tr + " NLN 1073791020")
	b.expect("ILN " + tr + " NLN alice@example.com Alice 1073741824 %3Cmsnobj%2F%3E")
	u := b.expect("UBX alice@example.com 61")
	if string(u.Payload) != "<Data><PSM>PSM of A</PSM><CurrentMedia></CurrentMedia></Data>" {
		t.Fatalf("UBX payload %q", u.Payload)
	}
	b.expectName("MSG") // initial mail data

	a.expect("NLN NLN bob@example.com Bob 1073791020 %3Cmsnobj%2F%3E")

	// Status change, rename, PSM.
	tr = b.next()
	b.send("CHG " + tr + " AWY 1073791020")
	b.expect("CHG " + tr + " AWY 1073791020")
	a.expect("NLN AWY bob@example.com Bob 1073791020 %3Cmsnobj%2F%3E")
	tr = b.next()
	b.send("PRP " + tr + " MFN Bobby%20B")
	b.expect("PRP " + tr + " MFN Bobby%20B")
	a.expect("NLN AWY bob@example.com Bobby%20B 1073791020 %3Cmsnobj%2F%3E")
	tr = b.next()
	b.sendPayload("UUX "+tr, "<Data><PSM>a &amp; b</PSM><CurrentMedia></CurrentMedia></Data>")
	b.expect("UUX " + tr + " 0")
	u = a.expectName("UBX")
	if string(u.Payload) != "<Data><PSM>a &amp; b</PSM><CurrentMedia></CurrentMedia></Data>" {
		t.Fatalf("UBX payload %q", u.Payload)
	}
	if got := s.PSM("bob@example.com"); got != "a & b" {
		t.Fatalf("PSM = %q", got)
	}

	// Hidden: FLN; back: NLN.
	tr = b.next()
	b.send("CHG " + tr + " HDN 1073791020")
	b.expect("CHG " + tr + " HDN 1073791020")
	a.expect("FLN bob@example.com")
	tr = b.next()
	b.send("XFR " + tr + " SB")
	b.expect("913 " + tr)
	tr = b.next()
	b.send("CHG " + tr + " NLN 1073791020")
	b.expect("CHG " + tr + " NLN 1073791020")
	a.expect("NLN NLN bob@example.com Bobby%20B 1073791020 %3Cmsnobj%2F%3E")
	a.expectName("UBX")

	// Blocking: Bob puts Alice on BL (after removing AL) → Alice sees FLN; unblock → NLN.
	tr = b.next()
	b.send("ADC " + tr + " BL N=alice@example.com")
	b.expect("219 " + tr)
	tr = b.next()
	b.send("REM " + tr + " AL alice@example.com")
	b.expect("REM " + tr + " AL alice@example.com")
	// BLP AL still allows Alice: no change, nothing sent.
	tr = b.next()
	b.send("ADC " + tr + " BL N=alice@example.com")
	b.expect("ADC " + tr + " BL N=alice@example.com")
	a.expect("FLN bob@example.com")
	tr = b.next()
	b.send("REM " + tr + " BL alice@example.com")
	b.expect("REM " + tr + " BL alice@example.com")
	a.expect("NLN NLN bob@example.com Bobby%20B 1073791020 %3Cmsnobj%2F%3E")
	a.expectName("UBX")

	// BLP BL without AL → hidden from Alice.
	tr = b.next()
	b.send("BLP " + tr + " BL")
	b.expect("BLP " + tr + " BL")
	a.expect("FLN bob@example.com")

	// Logout → FLN (already hidden from Alice: nothing more). Alice logs out → Bob sees FLN.
	tr = a.next()
	a.send("OUT")
	a.expectClosed()
	b.expect("FLN alice@example.com")
	if s.Online("alice@example.com") || !s.Online("bob@example.com") {
		t.Fatal("Online() wrong")
	}
}
