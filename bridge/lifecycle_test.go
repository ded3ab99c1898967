package bridge_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/msn-bridge/msn-bridge/bridge"
	"github.com/msn-bridge/msn-bridge/bridge/bridgetest"
	"github.com/msn-bridge/msn-bridge/msn/msntest"
)

// reconnectOnStop is a frontend that, like a user pressing "reconnect" the moment they are told
// the account stopped, calls Reconnect from inside HandleEvent of the StateStopped event.
type reconnectOnStop struct {
	*bridgetest.Recorder

	mu    sync.Mutex
	calls int
	errs  []error
}

func (r *reconnectOnStop) HandleEvent(ctx context.Context, acc *bridge.Account, evt bridge.Event) error {
	if st, ok := evt.(bridge.AccountState); ok && st.State == bridge.StateStopped {
		err := acc.Reconnect(ctx)
		r.mu.Lock()
		r.calls++
		if err != nil {
			r.errs = append(r.errs, err)
		}
		r.mu.Unlock()
	}
	return r.Recorder.HandleEvent(ctx, acc, evt)
}

func TestIntegrationReconnectRightAfterStop(t *testing.T) {
	e := newEnv(t)
	fe := &reconnectOnStop{Recorder: bridgetest.NewRecorder("matrix")}
	core := e.core(e.config(), fe)
	acc := e.login(core, matrixOwner)
	if err := e.srv.Kick(alice); err != nil {
		t.Fatal(err)
	}
	fe.WaitForState(t, alice, bridge.StateStopped)
	// One Reconnect, made as soon as the stop was seen, must be enough.
	waitUntil(t, "second login", func() bool { return e.logins() == 2 })
	waitUntil(t, "back online", func() bool { return acc.State().State == bridge.StateOnline && e.srv.Online(alice) })
	fe.mu.Lock()
	calls, errs := fe.calls, fe.errs
	fe.mu.Unlock()
	if calls != 1 || len(errs) != 0 {
		t.Fatalf("%d Reconnect calls, errors %v; want one that succeeds", calls, errs)
	}
	// The new loop's state is the one stored, not the old loop's stop.
	waitUntil(t, "stored as logged in", func() bool {
		rec, err := core.Store().GetAccount(ctxT(t), alice)
		return err == nil && rec.LoggedIn
	})
}

// presenceOf reports whether rec was told that contact has status.
func presenceOf(rec *bridgetest.Recorder, contact string, status bridge.Status) bool {
	for _, p := range ofType[bridge.ContactPresence](rec) {
		if p.Handle == contact && p.Status == status {
			return true
		}
	}
	return false
}

func TestIntegrationLoginHoldDelivery(t *testing.T) {
	e := newEnv(t)
	fe := bridgetest.NewRecorder("matrix")
	core := e.core(e.config(), fe)
	ctx := ctxT(t)
	acc, err := core.LoginWith(ctx, matrixOwner, alice, alicePW, bridge.LoginOptions{HoldDelivery: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := acc.Attached(); len(got) != 1 || got[0] != "matrix" {
		t.Fatalf("attached %v, want matrix (held)", got)
	}
	// A change while held is queued, not delivered.
	if err := e.srv.SetPresence(bob, "BSY", "busy now"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "bob busy in the model", func() bool {
		c, ok := acc.Contact(bob)
		return ok && c.Status == bridge.StatusBusy
	})
	if n := len(fe.Events()); n != 0 {
		t.Fatalf("%d events delivered while held: %+v", n, fe.Events())
	}
	if !acc.ResumeDelivery("matrix") {
		t.Fatal("ResumeDelivery reports the frontend was not held")
	}
	waitView(t, fe, "bob busy", func(v map[string]bridge.Contact) bool { return v[bob].Status == bridge.StatusBusy })
	evts := fe.Events()
	if _, ok := evts[0].Event.(bridge.AccountState); !ok {
		t.Fatalf("first event %T, want the AccountState of the attach", evts[0].Event)
	}
	if acc.ResumeDelivery("matrix") {
		t.Fatal("second ResumeDelivery reports a hold")
	}

	// Held and then undone (the frontend failed to store its login): nothing is delivered.
	fe2 := bridgetest.NewRecorder("discord")
	core.AddFrontend(fe2)
	dacc, err := core.LoginWith(ctx, discordOwner, dave, davePW, bridge.LoginOptions{HoldDelivery: true})
	if err != nil {
		t.Fatal(err)
	}
	if err = core.Logout(ctx, discordOwner, dave); err != nil {
		t.Fatal(err)
	}
	if len(dacc.Attached()) != 0 || len(fe2.Events()) != 0 {
		t.Fatalf("after the undone login: attached %v, %d events delivered", dacc.Attached(), len(fe2.Events()))
	}
	if e.logins() != 1 {
		t.Fatalf("%d MSN logins, want 1", e.logins())
	}
}

func TestIntegrationRemoveFrontend(t *testing.T) {
	e := newEnv(t)
	mx, dc := bridgetest.NewRecorder("matrix"), bridgetest.NewRecorder("discord")
	core := e.core(e.config(), mx, dc)
	acc := e.login(core, matrixOwner)
	ctx := ctxT(t)
	code, _, err := core.IssueLinkCode(ctx, alice, matrixOwner)
	if err != nil {
		t.Fatal(err)
	}
	if _, err = core.RedeemLinkCode(ctx, code, discordOwner); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, dc, "discord snapshot", func(bridge.ContactSnapshot) bool { return true })

	core.RemoveFrontend(ctx, "discord")
	if core.Frontend("discord") != nil || slices.Contains(acc.Attached(), "discord") {
		t.Fatalf("discord still registered or attached: %v", acc.Attached())
	}
	dc.Reset()
	if err = e.srv.SetPresence(bob, "BSY", ""); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "matrix sees bob busy", func() bool { return presenceOf(mx, bob, bridge.StatusBusy) })
	// Linking again does not attach a removed frontend.
	if _, err = core.Login(ctx, discordOwner, alice, alicePW); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(acc.Attached(), "discord") || len(dc.Events()) != 0 {
		t.Fatalf("removed frontend got events %+v (attached %v)", dc.Events(), acc.Attached())
	}
	core.RemoveFrontend(ctx, "nothing") // unknown: no-op

	// Registering it again attaches it to the accounts it owns.
	core.AddFrontend(dc)
	waitEvent(t, dc, "snapshot after re-adding", func(s bridge.ContactSnapshot) bool { return len(s.Contacts) > 0 })
}

func TestIntegrationAddFrontendReplaces(t *testing.T) {
	for _, name := range []string{"discord", "matrix"} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			owner := bridge.FrontendUser{Frontend: name, UserID: "someone"}
			first := bridgetest.NewRecorder(name)
			core := e.core(e.config(), first)
			acc := e.login(core, owner)
			waitEvent(t, first, "first instance's snapshot", func(bridge.ContactSnapshot) bool { return true })

			// A new instance of the same frontend in the same process.
			second := bridgetest.NewRecorder(name)
			core.AddFrontend(second)
			if core.Frontend(name) != bridge.Frontend(second) {
				t.Fatal("the second instance is not the registered one")
			}
			if got := acc.Attached(); len(got) != 1 || got[0] != name {
				t.Fatalf("attached %v", got)
			}
			waitEvent(t, second, "second instance's state", func(s bridge.AccountState) bool { return s.State == bridge.StateOnline })
			waitEvent(t, second, "second instance's snapshot", func(s bridge.ContactSnapshot) bool { return len(s.Contacts) > 0 })
			before := len(first.Events())
			if err := e.srv.SetPresence(bob, "BSY", ""); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, "second sees bob busy", func() bool { return presenceOf(second, bob, bridge.StatusBusy) })
			if presenceOf(first, bob, bridge.StatusBusy) || len(first.Events()) != before {
				t.Fatalf("the replaced instance still gets events: %+v", first.Events()[before:])
			}
			// Adding the registered instance again changes nothing.
			core.AddFrontend(second)
			n := len(ofType[bridge.ContactSnapshot](second))
			ctx := ctxT(t)
			if _, err := acc.SendText(ctx, "other", bridge.DirectChat(echo), "ping", bridge.Format{}); err != nil {
				t.Fatal(err)
			}
			waitEvent(t, second, "echo", func(m bridge.Message) bool { return m.Text == "ping" && m.Sender == echo })
			if m := len(ofType[bridge.ContactSnapshot](second)); m != n {
				t.Fatalf("re-adding the same instance re-attached it (%d snapshots, had %d)", m, n)
			}
		})
	}
}

// presenceSeen is what a frontend was shown of one contact, in order.
type presenceSeen struct {
	status bridge.Status
	psm    string
}

// presenceHistory folds the snapshots and presence events rec got from index from on into each
// contact's sequence of shown states (consecutive repeats collapsed).
func presenceHistory(rec *bridgetest.Recorder, from int) map[string][]presenceSeen {
	out := map[string][]presenceSeen{}
	add := func(h string, s presenceSeen) {
		if seq := out[h]; len(seq) == 0 || seq[len(seq)-1] != s {
			out[h] = append(seq, s)
		}
	}
	for _, r := range rec.Events()[from:] {
		switch e := r.Event.(type) {
		case bridge.ContactSnapshot:
			for _, c := range e.Contacts {
				add(c.Handle, presenceSeen{c.Status, c.PSM})
			}
		case bridge.ContactPresence:
			add(e.Handle, presenceSeen{e.Status, e.PSM})
		}
	}
	return out
}

func TestIntegrationReconnectKeepsPresence(t *testing.T) {
	// As on Escargot, the contacts' presence comes after the reply to the command that follows
	// the first CHG: well after the contact list.
	e := newEnvWith(t, func(o *msntest.Options) { o.InitialPresenceAfterNextCommand = true })
	if e.db == nil {
		e.openDB(nil)
	}
	cipher, err := bridge.NewCipher(e.key)
	if err != nil {
		t.Fatal(err)
	}
	store := bridge.NewStore(e.db, cipher, e.logger())
	if err = store.Upgrade(context.Background()); err != nil {
		t.Fatal(err)
	}
	cfg := e.config()
	// A backoff of about a second leaves room to change the world while alice is away.
	cfg.Reconnect = bridge.ReconnectConfig{Initial: time.Second, Max: time.Second}
	cfg.PresenceGrace = 300 * time.Millisecond
	core, err := bridge.NewCore(cfg, bridge.Options{Store: store, Log: e.logger(), Rand: func() float64 { return 0.99 }})
	if err != nil {
		t.Fatal(err)
	}
	fe := bridgetest.NewRecorder("matrix")
	core.AddFrontend(fe)
	if err = core.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopCore(t, core) })
	acc := e.login(core, matrixOwner)
	waitView(t, fe, "echo and bob present", func(v map[string]bridge.Contact) bool {
		return v[echo].Status == bridge.StatusOnline && v[echo].PSM == "I repeat" && v[bob].Status == bridge.StatusAway
	})

	from := len(fe.Events())
	if err = e.srv.DropConnection(alice); err != nil {
		t.Fatal(err)
	}
	fe.WaitForState(t, alice, bridge.StateReconnecting)
	// Meanwhile bob leaves and carol arrives; echo stays as it was.
	if err = e.srv.SetPresence(bob, "FLN", ""); err != nil {
		t.Fatal(err)
	}
	if err = e.srv.SetPresence(carol, "NLN", "new here"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "second login", func() bool { return e.logins() == 2 })
	waitUntil(t, "back online", func() bool { return acc.State().State == bridge.StateOnline })
	waitView(t, fe, "bob gone, carol here", func(v map[string]bridge.Contact) bool {
		return v[bob].Status == bridge.StatusOffline && v[carol].Status == bridge.StatusOnline && v[carol].PSM == "new here"
	})

	hist := presenceHistory(fe, from)
	for h, seq := range hist {
		wentOffline := false
		for _, s := range seq {
			if s.status == bridge.StatusOffline {
				wentOffline = true
			} else if wentOffline && h != carol {
				t.Errorf("%s went offline and back across the reconnect: %+v", h, seq)
			}
		}
	}
	if want := []presenceSeen{{bridge.StatusOnline, "I repeat"}}; !slices.Equal(hist[echo], want) {
		t.Errorf("echo was shown %+v, want only %+v", hist[echo], want)
	}
	if want := []presenceSeen{{bridge.StatusAway, "gone fishing <3"}, {bridge.StatusOffline, ""}}; !slices.Equal(hist[bob], want) {
		t.Errorf("bob was shown %+v, want %+v", hist[bob], want)
	}
	if seq := hist[carol]; len(seq) == 0 || seq[len(seq)-1] != (presenceSeen{bridge.StatusOnline, "new here"}) || slices.Contains(seq[1:], presenceSeen{bridge.StatusOffline, ""}) {
		t.Errorf("carol was shown %+v, want offline, then online with her PSM", seq)
	}
}
