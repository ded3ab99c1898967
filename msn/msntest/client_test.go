package msntest_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/msn-bridge/msn-bridge/msn"
	"github.com/msn-bridge/msn-bridge/msn/msntest"
)

// TestClientWithEchoBot drives the server with the msn client library: login through the
// HTTPS nexus and a dispatch redirect, then a chat with an echo bot.
func TestClientWithEchoBot(t *testing.T) {
	srv := msntest.New(msntest.Options{
		Dispatch: true,
		Accounts: []msntest.AccountSpec{
			{Handle: "alice@example.com", Password: "alicepw", Name: "Alice"},
			{Handle: "echo@example.com", Name: "Echo", Status: "NLN", PSM: "I repeat", Bot: msntest.EchoBot},
		},
		Friends: [][2]string{{"alice@example.com", "echo@example.com"}},
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
	got := make(chan *msn.MessageReceived, 4)
	c, err := msn.NewClient(msn.Config{Server: srv.DispatchAddr(), NexusURL: srv.HTTPSNexusURL(), CAFile: caFile,
		PingInterval: time.Hour}, "alice@example.com", "alicepw", func(ev msn.Event) {
		if m, ok := ev.(*msn.MessageReceived); ok {
			select {
			case got <- m:
			default:
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(ctx); err != nil {
		t.Fatalf("Login: %v", err)
	}
	if !srv.Online("alice@example.com") {
		t.Fatal("alice not online on the server")
	}
	if err := c.SendText(ctx, "echo@example.com", "hello echo", nil); err != nil {
		t.Fatalf("SendText: %v", err)
	}
	select {
	case m := <-got:
		if m.From != "echo@example.com" || m.Text != "hello echo" {
			t.Fatalf("echo: %+v", m)
		}
	case <-ctx.Done():
		t.Fatal("no echo")
	}
}
