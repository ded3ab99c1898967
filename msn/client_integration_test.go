package msn_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/msn-bridge/msn-bridge/msn"
	"github.com/msn-bridge/msn-bridge/msn/msntest"
)

// TestIntegrationChat logs two accounts into msntest and sends a message one way.
func TestIntegrationChat(t *testing.T) {
	srv := msntest.New(msntest.Options{
		Accounts: []msntest.AccountSpec{
			{Handle: "alice@example.com", Password: "alicepw", Name: "Alice"},
			{Handle: "bob@example.com", Password: "bobpw", Name: "Bob"},
		},
		Friends: [][2]string{{"alice@example.com", "bob@example.com"}},
	})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, srv.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	got := make(chan *msn.MessageReceived, 1)
	mk := func(handle, pw string, h msn.Handler) *msn.Client {
		c, err := msn.NewClient(msn.Config{Server: srv.NSAddr(), NexusURL: srv.NexusURL(), CAFile: caFile, PingInterval: time.Hour}, handle, pw, h)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		if err := c.Login(ctx); err != nil {
			t.Fatalf("%s: Login: %v", handle, err)
		}
		return c
	}
	alice := mk("alice@example.com", "alicepw", nil)
	mk("bob@example.com", "bobpw", func(ev msn.Event) {
		if m, ok := ev.(*msn.MessageReceived); ok {
			select {
			case got <- m:
			default:
			}
		}
	})
	if _, ok := alice.Contact("bob@example.com"); !ok {
		t.Fatal("bob not in alice's list")
	}
	if err := alice.SendText(ctx, "bob@example.com", "hello bob", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m.From != "alice@example.com" || m.Text != "hello bob" {
			t.Errorf("got %+v", m)
		}
	case <-ctx.Done():
		t.Fatal("message not received")
	}
}

// TestIntegrationLoginEventOrder checks the documented order: LoggedIn first, then
// ContactListSynced after it.
func TestIntegrationLoginEventOrder(t *testing.T) {
	srv := msntest.New(msntest.Options{
		Accounts: []msntest.AccountSpec{
			{Handle: "alice@example.com", Password: "alicepw", Name: "Alice"},
			{Handle: "bob@example.com", Password: "bobpw", Name: "Bob", Status: "NLN"},
		},
		Friends: [][2]string{{"alice@example.com", "bob@example.com"}},
	})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	events := make(chan msn.Event, 64)
	c, err := msn.NewClient(msn.Config{Server: srv.NSAddr(), NexusURL: srv.HTTPSNexusURL(), PingInterval: time.Hour,
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.CertPool()}}}},
		"alice@example.com", "alicepw", func(ev msn.Event) {
			select {
			case events <- ev:
			default:
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		select {
		case ev := <-events:
			_, first := ev.(*msn.LoggedIn)
			if i == 0 && !first {
				t.Fatalf("first event is %T, want *msn.LoggedIn", ev)
			}
			if _, ok := ev.(*msn.ContactListSynced); ok {
				return
			}
		case <-ctx.Done():
			t.Fatal("ContactListSynced not delivered")
		}
	}
}
