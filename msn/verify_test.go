package msn_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/msn-bridge/msn-bridge/msn"
)

// TestVerifyCredentialsLeavesTheSessionAlone checks a password while the account is logged in
// elsewhere: whatever the outcome, that session is not ended and its contacts see no change,
// because the ticket is never presented.
func TestVerifyCredentialsLeavesTheSessionAlone(t *testing.T) {
	opts := aliceAndBob("")
	opts.Dispatch = true
	srv := startServer(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := msn.Config{Server: srv.DispatchAddr(), NexusURL: srv.HTTPSNexusURL(), PingInterval: time.Hour,
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.CertPool()}}}}

	var mu sync.Mutex
	var seen []msn.Event
	record := func(ev msn.Event) {
		mu.Lock()
		seen = append(seen, ev)
		mu.Unlock()
	}
	for _, acc := range [][2]string{{"alice@example.com", "alicepw"}, {"bob@example.com", "bobpw"}} {
		c, err := msn.NewClient(cfg, acc[0], acc[1], record)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Login(ctx); err != nil {
			t.Fatalf("%s: %v", acc[0], err)
		}
	}
	tickets := func() int {
		n := 0
		for _, ev := range srv.EventsFor("alice@example.com") {
			if ev.Name == "USR" && len(ev.Args) > 2 && ev.Args[1] == "TWN" && ev.Args[2] == "S" {
				n++
			}
		}
		return n
	}
	passportLogins := func() int {
		n := 0
		for _, ev := range srv.Events() {
			if ev.Server == "HTTP" && ev.Name == "LOGIN" {
				n++
			}
		}
		return n
	}
	mu.Lock()
	before := len(seen)
	mu.Unlock()
	beforePP := passportLogins()

	for _, tc := range []struct {
		handle, password string
		bad              bool
	}{
		{"alice@example.com", "alicepw", false},
		{"alice@example.com", "wrong", true},
		{"nobody@example.com", "wrong", true},
	} {
		err := msn.VerifyCredentials(ctx, cfg, tc.handle, tc.password)
		if tc.bad && !errors.Is(err, msn.ErrBadCredentials) || !tc.bad && err != nil {
			t.Errorf("%s/%s: %v", tc.handle, tc.password, err)
		}
		if msn.Retryable(err) {
			t.Errorf("%s/%s: refusal is retryable: %v", tc.handle, tc.password, err)
		}
	}
	if got := passportLogins() - beforePP; got != 3 {
		t.Errorf("%d Passport logins, want one per check", got)
	}
	if n := tickets(); n != 1 {
		t.Errorf("alice's ticket presented %d times, want only at her own login", n)
	}
	if !srv.Online("alice@example.com") {
		t.Error("alice's session ended")
	}
	// A round trip through bob's session: anything the checks caused has arrived by then.
	if err := srv.SetPSM("bob@example.com", "still here"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		var after []msn.Event
		after = append(after, seen[before:]...)
		mu.Unlock()
		done := false
		for _, ev := range after {
			switch e := ev.(type) {
			case *msn.Disconnected:
				t.Fatalf("a session ended: %v", e.Err)
			case *msn.PresenceChanged:
				if e.Handle == "alice@example.com" && !e.Initial {
					t.Fatalf("bob saw alice's presence change: %+v", e)
				}
			case *msn.PersonalMessageChanged:
				done = done || e.Handle == "bob@example.com"
			}
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("bob's PSM never reached alice")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
