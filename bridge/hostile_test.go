package bridge_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/msn-bridge/msn-bridge/bridge"
	"github.com/msn-bridge/msn-bridge/bridge/bridgetest"
	"github.com/msn-bridge/msn-bridge/msn/msntest"
)

// TestIntegrationHostileServer feeds one account's MSN connection what a broken or hostile
// server might send. Harmless garbage is skipped without dropping the session; what cannot be
// framed any more (an endless line, a giant payload) drops that session with a clear error and
// it reconnects. Another account on the same core is never disturbed.
func TestIntegrationHostileServer(t *testing.T) {
	e := newEnv(t)
	fe := bridgetest.NewRecorder("matrix")
	core := e.core(e.config(), fe)
	acc := e.login(core, matrixOwner)

	daveOwner := bridge.FrontendUser{Frontend: "matrix", UserID: "@dave:example.org"}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	dave, err := core.Login(ctx, daveOwner, dave, davePW)
	if err != nil {
		t.Fatalf("Login dave: %v", err)
	}
	daveLogins := func() int {
		n := 0
		for _, ev := range e.srv.EventsFor(dave.Handle()) {
			if ev.Server == "NS" && ev.Name == "USR" && len(ev.Args) > 3 && ev.Args[2] == "S" {
				n++
			}
		}
		return n
	}
	daveStillFine := func(step string) {
		t.Helper()
		if st := dave.State(); st.State != bridge.StateOnline {
			t.Fatalf("%s: dave's account is %s, want online", step, st.State)
		}
		if n := daveLogins(); n != 1 {
			t.Fatalf("%s: dave logged in %d times, want 1", step, n)
		}
		text := "dave after " + step
		if _, err := dave.SendText(ctxT(t), "matrix", bridge.DirectChat(echo), text, bridge.Format{}); err != nil {
			t.Fatalf("%s: dave cannot send: %v", step, err)
		}
		waitEvent(t, fe, "dave's echo after "+step, func(m bridge.Message) bool { return m.Text == text })
	}

	// Garbage that still frames: unknown commands, malformed known ones, bad UTF-8, a NOT
	// payload that is not XML, an error code for no request. The session stays up.
	garbage := [][]byte{
		[]byte("ZZZ 1 2 3\r\n"),
		[]byte("NLN\r\n"),
		[]byte("NLN NLN\r\n"),
		[]byte("FLN\r\n"),
		[]byte("ILN 99 NLN\r\n"),
		[]byte("UBX " + echo + " 5\r\n<<<<<"),
		[]byte("NOT 4\r\n\xff\xfe\x00\x01"),
		[]byte("MSG Hotmail Hotmail 3\r\nabc"),
		[]byte("ADC 0 RL\r\n"),
		[]byte("REM 0 RL\r\n"),
		[]byte("RNG\r\n"),
		[]byte("911 4711\r\n"),
		[]byte("\xff\xfe\xfd \x00\x01\r\n"),
		[]byte("CHL 0\r\n"),
		[]byte("QNG -5\r\n"),
		[]byte("\r\n\r\n\n"),
	}
	for _, line := range garbage {
		if err := e.srv.InjectLine(alice, line); err != nil {
			t.Fatal(err)
		}
	}
	text := "alice after garbage"
	if _, err := acc.SendText(ctxT(t), "matrix", bridge.DirectChat(echo), text, bridge.Format{}); err != nil {
		t.Fatalf("alice cannot send after harmless garbage: %v", err)
	}
	waitEvent(t, fe, "alice's echo after garbage", func(m bridge.Message) bool { return m.Text == text })
	if n := e.logins(); n != 1 {
		t.Fatalf("harmless garbage dropped alice's session: %d logins", n)
	}
	daveStillFine("garbage")

	// What cannot be framed drops the session, says why, and the account comes back.
	for i, tc := range []struct {
		name, wantErr string
		raw           []byte
	}{
		{"endless line", "too long", append(bytes.Repeat([]byte("A"), 64<<10), '\r', '\n')},
		{"giant payload", "too large", []byte("MSG Hotmail Hotmail 999999999\r\n")},
		{"negative payload", "payload length", []byte("UBX " + echo + " -5\r\n")},
	} {
		before := len(fe.Events())
		if err := e.srv.InjectLine(alice, tc.raw); err != nil {
			t.Fatal(err)
		}
		var st bridge.AccountState
		waitUntil(t, tc.name+": reconnecting", func() bool {
			for _, r := range fe.Events()[before:] {
				if s, ok := r.Event.(bridge.AccountState); ok && r.Account == alice && s.State == bridge.StateReconnecting {
					st = s
					return true
				}
			}
			return false
		})
		if st.Err == nil || !strings.Contains(st.Err.Error(), tc.wantErr) {
			t.Errorf("%s: reconnecting with error %v, want one saying %q", tc.name, st.Err, tc.wantErr)
		}
		waitUntil(t, tc.name+": alice back online", func() bool {
			return e.logins() == i+2 && acc.State().State == bridge.StateOnline && e.srv.Online(alice)
		})
		daveStillFine(tc.name)
	}
}

// TestIntegrationHostileServerStrangers has the server send presence and personal messages for
// 20,000 handles on none of alice's lists, and an 8 KB handle in every kind of line that
// carries one. Alice's account gains no contact, the frontend hears of none of them, and the
// presence of a real contact still arrives after the flood.
func TestIntegrationHostileServerStrangers(t *testing.T) {
	e := newEnvWith(t, func(o *msntest.Options) { o.MaxPendingOutput = 64 << 20 })
	fe := bridgetest.NewRecorder("matrix")
	core := e.core(e.config(), fe)
	acc := e.login(core, matrixOwner)
	contacts := map[string]bool{}
	for _, c := range acc.Contacts() {
		contacts[c.Handle] = true
	}
	from := len(fe.Events())

	var batch strings.Builder
	for i := range 20_000 {
		h := fmt.Sprintf("stranger%05d@evil.example", i)
		switch i % 3 {
		case 0:
			fmt.Fprintf(&batch, "NLN NLN %s Buy%%20now 0 0\r\n", h)
		case 1:
			fmt.Fprintf(&batch, "ILN 9 BSY %s Buy%%20now 0\r\n", h)
		default:
			psm := "<Data><PSM>spam</PSM><CurrentMedia></CurrentMedia></Data>"
			fmt.Fprintf(&batch, "UBX %s %d\r\n%s", h, len(psm), psm)
		}
		if batch.Len() > 256<<10 || i == 19_999 {
			if err := e.srv.InjectLine(alice, []byte(batch.String())); err != nil {
				t.Fatal(err)
			}
			batch.Reset()
		}
	}
	long := strings.Repeat("a", 8<<10) + "@evil.example"
	psm := "<Data><PSM>x</PSM></Data>"
	for _, line := range []string{
		"NLN NLN " + long + " Long 0\r\n",
		"ILN 9 NLN " + long + " Long 0\r\n",
		"FLN " + long + "\r\n",
		fmt.Sprintf("UBX %s %d\r\n%s", long, len(psm), psm),
		"ADC 0 RL N=" + long + " F=Long\r\n",
		"ADC 0 FL N=" + long + " F=Long C=9e1a0c3d-aaaa-bbbb-cccc-ddddeeeeffff\r\n",
	} {
		if err := e.srv.InjectLine(alice, []byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.srv.SetPresence(bob, "BSY", "after the flood"); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, fe, "bob busy after the flood", func(p bridge.ContactPresence) bool {
		return p.Handle == bob && p.Status == bridge.StatusBusy
	})
	for _, r := range fe.Events()[from:] {
		var h string
		switch ev := r.Event.(type) {
		case bridge.ContactPresence:
			h = ev.Handle
		case bridge.ContactProfile:
			h = ev.Handle
		case bridge.ListChange:
			h = ev.Contact.Handle
		case bridge.ContactRequest:
			h = ev.Handle
		case bridge.ContactSnapshot:
			if len(ev.Contacts) != len(contacts) {
				t.Fatalf("a snapshot of %d contacts, want %d", len(ev.Contacts), len(contacts))
			}
		}
		if h != "" && !contacts[h] {
			t.Fatalf("the frontend got %T for %.80q", r.Event, h)
		}
	}
	if got := acc.Contacts(); len(got) != len(contacts) {
		t.Fatalf("alice has %d contacts, want %d", len(got), len(contacts))
	}
	if n := e.logins(); n != 1 {
		t.Fatalf("the flood dropped alice's session: %d logins", n)
	}
}
