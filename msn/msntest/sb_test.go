package msntest

import (
	"github.com/msn-bridge/msn-bridge/msn"
	"strings"
	"testing"
)

const helloMsg = "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nX-MMS-IM-Format: FN=Segoe%20UI; EF=; CO=0; CS=0; PF=0\r\n\r\nHello B, this is A over MSNP11"

// openSB does XFR SB + USR on a fresh switchboard connection for the logged-in client ns.
func openSB(t *testing.T, s *Server, ns *rawClient, handle, name string) *rawClient {
	t.Helper()
	tr := ns.next()
	ns.send("XFR " + tr + " SB")
	x := ns.untilLine("XFR " + tr + " SB")
	if x.Arg(2) != s.SBAddr() || x.Arg(3) != "CKI" || len(x.Arg(4)) != 20 {
		t.Fatalf("XFR reply %q", x.String())
	}
	sb := dialRaw(t, x.Arg(2))
	tr = sb.next()
	sb.send("USR " + tr + " " + handle + " " + x.Arg(4))
	sb.expect("USR " + tr + " OK " + handle + " " + name)
	return sb
}

// answer reads an RNG on ns and answers it on a new SB connection, returning it and the RNG.
func answer(t *testing.T, ns *rawClient, handle string) (*rawClient, []string) {
	t.Helper()
	rng := ns.until(func(c *msn.Command) bool { return c.Name == "RNG" })
	sb := dialRaw(t, rng.Arg(1))
	tr := sb.next()
	sb.send("ANS " + tr + " " + handle + " " + rng.Arg(3) + " " + rng.Arg(0))
	return sb, rng.Args
}

func TestSwitchboardChat(t *testing.T) {
	s := twoFriends(t, Options{})
	if err := s.AddAccount("carol@example.com", "carolpw", "Carol"); err != nil {
		t.Fatal(err)
	}
	_ = s.AddFriends("alice@example.com", "carol@example.com")
	a := online(t, s, "alice@example.com", "alicepw")
	b := online(t, s, "bob@example.com", "bobpw")
	c := online(t, s, "carol@example.com", "carolpw")

	as := openSB(t, s, a, "alice@example.com", "Alice")
	as.send("CAL 2 nobody@example.com")
	as.expect("208 2")
	as.send("CAL 3 bob@example.com")
	ring := as.expectName("CAL")
	sid := ring.Arg(2)
	if ring.Arg(1) != "RINGING" || len(sid) != 31 {
		t.Fatalf("CAL reply %q", ring.String())
	}
	bs, rng := answer(t, b, "bob@example.com")
	if rng[0] != sid || rng[4] != "alice@example.com" || rng[5] != "Alice" || len(rng[3]) != 20 {
		t.Fatalf("RNG %v", rng)
	}
	bs.expect("IRO 1 1 1 alice@example.com Alice")
	bs.expect("ANS 1 OK")
	as.expect("JOI bob@example.com Bob")

	as.sendPayload("MSG 4 A", helloMsg)
	m := bs.expect("MSG alice@example.com Alice 147")
	if string(m.Payload) != helloMsg {
		t.Fatalf("payload %q", m.Payload)
	}
	as.expect("ACK 4")
	typing := "MIME-Version: 1.0\r\nContent-Type: text/x-msmsgscontrol\r\nTypingUser: bob@example.com\r\n\r\n\r\n"
	bs.sendPayload("MSG 2 U", typing)
	as.expect("MSG bob@example.com Bob 88")
	bs.sendPayload("MSG 3 N", strings.Replace(helloMsg, "Hello B", "Hi A! éè", 1))
	as.expectName("MSG")

	// Third participant.
	as.send("CAL 5 bob@example.com")
	as.expect("215 5")
	as.send("CAL 6 carol@example.com")
	as.expectName("CAL")
	cs, _ := answer(t, c, "carol@example.com")
	cs.expect("IRO 1 1 2 alice@example.com Alice")
	cs.expect("IRO 1 2 2 bob@example.com Bob")
	cs.expect("ANS 1 OK")
	as.expect("JOI carol@example.com Carol")
	bs.expect("JOI carol@example.com Carol")
	cs.sendPayload("MSG 2 A", helloMsg)
	as.expect("MSG carol@example.com Carol 147")
	bs.expect("MSG carol@example.com Carol 147")
	cs.expect("ACK 2")

	// Leaving: BYE to the others.
	bs.send("OUT")
	bs.expectClosed()
	as.expect("BYE bob@example.com")
	cs.expect("BYE bob@example.com")
	if s.Switchboards() != 1 {
		t.Fatalf("sessions = %d", s.Switchboards())
	}
	as.send("OUT")
	as.expectClosed()
	cs.expect("BYE alice@example.com")
	cs.send("OUT")
	cs.expectClosed()
}

func TestSwitchboardErrors(t *testing.T) {
	s := twoFriends(t, Options{})
	a := online(t, s, "alice@example.com", "alicepw")

	// Bad cookie → 911 and close.
	bad := dialRaw(t, s.SBAddr())
	bad.send("USR 1 alice@example.com 00000000000000000000")
	bad.expect("911 1")
	bad.expectClosed()

	// Offline callee → 217.
	as := openSB(t, s, a, "alice@example.com", "Alice")
	as.send("CAL 2 bob@example.com")
	as.expect("217 2")

	// Payload over 1664 bytes closes the SB connection.
	big := "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n" + strings.Repeat("x", 1700)
	as.sendPayload("MSG 3 A", big)
	as.expectClosed()

	// Bad ack letter closes.
	as2 := openSB(t, s, a, "alice@example.com", "Alice")
	as2.sendPayload("MSG 2 Q", helloMsg)
	as2.expectClosed()

	// P2P in mode D is ACKed, as Escargot does.
	as4 := openSB(t, s, a, "alice@example.com", "Alice")
	as4.sendPayload("MSG 2 D", "MIME-Version: 1.0\r\nContent-Type: application/x-msnmsgrp2p\r\nP2P-Dest: bob@example.com\r\n\r\nxx")
	as4.expect("ACK 2")

	// P2P outside mode D closes.
	as3 := openSB(t, s, a, "alice@example.com", "Alice")
	as3.sendPayload("MSG 2 A", "MIME-Version: 1.0\r\nContent-Type: application/x-msnmsgrp2p\r\nP2P-Dest: bob@example.com\r\n\r\nxx")
	as3.expectClosed()

	// XFR SB before the first CHG → 913.
	b := login(t, s, "bob@example.com", "bobpw")
	b.send("XFR 9 SB")
	b.expect("913 9")
}
