package bridge_test

import (
	"context"
	"sync"
	"testing"

	"github.com/msn-bridge/msn-bridge/bridge"
	"github.com/msn-bridge/msn-bridge/bridge/bridgetest"
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
