package bridge

import (
	"context"
	"testing"

	"github.com/msn-bridge/msn-bridge/msn"
)

// The msn client delivers ContactListSynced after LoggedIn, with the list as the SYN left it
// (no presence yet). The model taken from the session at login is newer and must win, or
// every contact shows offline until its presence arrives again.
func TestStaleSyncAfterLoginIsIgnored(t *testing.T) {
	ctx := context.Background()
	srv := newFakeServer()
	srv.passwords["alice@example.com"] = "pw"
	srv.contacts["alice@example.com"] = []msn.Contact{
		{Handle: "bob@example.com", Status: msn.StatusOnline, Lists: msn.ListForward | msn.ListAllow},
	}
	core := newTestCore(t, testStore(t), srv, Config{})
	if err := core.Start(ctx); err != nil {
		t.Fatal(err)
	}
	acc, err := core.Login(ctx, matrixUser, "alice@example.com", "pw")
	if err != nil {
		t.Fatal(err)
	}
	// Online, with the session's list, as soon as Login returns.
	if st := acc.State(); st.State != StateOnline {
		t.Fatalf("state right after Login: %+v", st)
	}
	if c, ok := acc.Contact("bob@example.com"); !ok || c.Status != StatusOnline {
		t.Fatalf("bob right after Login: %+v", c)
	}
	acc.mu.Lock()
	live := acc.live
	acc.mu.Unlock()
	acc.handleMSN(live, &msn.ContactListSynced{Contacts: []msn.Contact{
		{Handle: "bob@example.com", Lists: msn.ListForward | msn.ListAllow},
	}})
	if c, _ := acc.Contact("bob@example.com"); c.Status != StatusOnline {
		t.Fatalf("a stale sync after login made bob %v", c.Status)
	}
}
