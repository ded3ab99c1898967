package dendrite_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/msn-bridge/msn-bridge/internal/testenv/dendrite"
)

const password = "correct horse battery staple"

// poll calls check every 50 ms until it reports true or ctx ends, and fails t
// with what when ctx ends first.
func poll(ctx context.Context, t *testing.T, what string, check func() (bool, error)) {
	t.Helper()
	var lastErr error
	for {
		ok, err := check()
		if ok {
			return
		}
		if err != nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			t.Fatalf("gave up waiting for %s: %v (last error: %v)", what, ctx.Err(), lastErr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitForMessage syncs as cli until a text message with body shows up in
// roomID.
func waitForMessage(ctx context.Context, t *testing.T, cli *mautrix.Client, roomID id.RoomID, body string) {
	t.Helper()
	since := ""
	poll(ctx, t, "message "+body, func() (bool, error) {
		resp, err := cli.FullSyncRequest(ctx, mautrix.ReqSync{Timeout: 1000, Since: since})
		if err != nil {
			return false, err
		}
		since = resp.NextBatch
		room, ok := resp.Rooms.Join[roomID]
		if !ok {
			return false, nil
		}
		for _, evt := range room.Timeline.Events {
			if evt.Type == event.EventMessage && evt.Content.Raw["body"] == body {
				return true, nil
			}
		}
		return false, nil
	})
}

func TestDendriteStarts(t *testing.T) {
	hs := dendrite.New(t, dendrite.Options{})
	hs.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	alice, err := hs.RegisterUser(ctx, "alice", password)
	if err != nil {
		t.Fatal(err)
	}
	bob, err := hs.RegisterUser(ctx, "bob", password)
	if err != nil {
		t.Fatal(err)
	}
	if alice.UserID != hs.UserID("alice") {
		t.Fatalf("alice logged in as %s, want %s", alice.UserID, hs.UserID("alice"))
	}
	if _, err := hs.RegisterUser(ctx, "alice", password); err == nil {
		t.Fatal("registering alice twice succeeded")
	}

	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Preset: "private_chat",
		Invite: []id.UserID{bob.UserID},
		Name:   "test room",
	})
	if err != nil {
		t.Fatalf("failed to create room: %v", err)
	}
	if _, err := bob.JoinRoom(ctx, room.RoomID.String(), nil); err != nil {
		t.Fatalf("failed to join room: %v", err)
	}
	if _, err := alice.SendText(ctx, room.RoomID, "hello from alice"); err != nil {
		t.Fatalf("failed to send message: %v", err)
	}
	waitForMessage(ctx, t, bob, room.RoomID, "hello from alice")

	// Presence is applied asynchronously; poll until bob sees it.
	err = alice.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceOnline, StatusMsg: "out to lunch"})
	if err != nil {
		t.Fatalf("failed to set presence: %v", err)
	}
	pctx, pcancel := context.WithTimeout(ctx, 15*time.Second)
	defer pcancel()
	poll(pctx, t, "alice's presence", func() (bool, error) {
		p, err := bob.GetPresence(pctx, alice.UserID)
		if err != nil {
			return false, err
		}
		return p.Presence == event.PresenceOnline && p.StatusMsg == "out to lunch", nil
	})
}

// txnRecorder is a minimal appservice endpoint that records transactions.
type txnRecorder struct {
	hsToken string

	mu        sync.Mutex
	events    []*event.Event
	ephemeral []*event.Event
	badAuth   int
}

func (r *txnRecorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Header.Get("Authorization") != "Bearer "+r.hsToken {
		r.mu.Lock()
		r.badAuth++
		r.mu.Unlock()
		http.Error(w, `{"errcode":"M_FORBIDDEN"}`, http.StatusForbidden)
		return
	}
	if req.Method != http.MethodPut || !strings.HasPrefix(req.URL.Path, "/_matrix/app/v1/transactions/") {
		// User and alias queries: nothing is known here.
		http.Error(w, `{"errcode":"M_NOT_FOUND"}`, http.StatusNotFound)
		return
	}
	var txn appservice.Transaction
	if err := json.NewDecoder(req.Body).Decode(&txn); err != nil {
		http.Error(w, `{"errcode":"M_NOT_JSON"}`, http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.events = append(r.events, txn.Events...)
	r.ephemeral = append(r.ephemeral, txn.MSC2409EphemeralEvents...)
	r.mu.Unlock()
	_, _ = w.Write([]byte("{}"))
}

func (r *txnRecorder) find(ephemeral bool, match func(*event.Event) bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	list := r.events
	if ephemeral {
		list = r.ephemeral
	}
	for _, evt := range list {
		if match(evt) {
			return true
		}
	}
	return false
}

// TestAppservice checks the registration helper and the AS port plumbing: the
// homeserver delivers room events to a listener on ASURL, a ghost in the
// namespace can be registered and masqueraded, and InjectEphemeral reaches
// the same listener.
func TestAppservice(t *testing.T) {
	hs := dendrite.New(t, dendrite.Options{})
	reg := dendrite.NewRegistration(dendrite.RegistrationOptions{URL: hs.ASURL})

	// Listen before Dendrite starts (see the package doc on back-off).
	rec := &txnRecorder{hsToken: reg.ServerToken}
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(hs.ASPort))
	if err != nil {
		t.Fatalf("failed to listen on the appservice port: %v", err)
	}
	srv := &http.Server{Handler: rec, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	hs.Start(t, dendrite.RegistrationYAML(t, reg))
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	alice, err := hs.RegisterUser(ctx, "alice", password)
	if err != nil {
		t.Fatal(err)
	}
	ghost, err := mautrix.NewClient(hs.URL, hs.UserID("msn_bob"), reg.AppToken)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ghost.MakeRequest(ctx, http.MethodPost, ghost.BuildClientURL("v3", "register"), map[string]any{
		"type":     mautrix.AuthTypeAppservice,
		"username": "msn_bob",
	}, nil)
	if err != nil {
		t.Fatalf("failed to register ghost: %v", err)
	}
	ghost.SetAppServiceUserID = true

	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Preset:   "private_chat",
		Invite:   []id.UserID{ghost.UserID},
		IsDirect: true,
	})
	if err != nil {
		t.Fatalf("failed to create room: %v", err)
	}
	if _, err := ghost.JoinRoom(ctx, room.RoomID.String(), nil); err != nil {
		t.Fatalf("ghost failed to join: %v", err)
	}
	sent, err := alice.SendText(ctx, room.RoomID, "hello ghost")
	if err != nil {
		t.Fatalf("failed to send: %v", err)
	}
	poll(ctx, t, "the message in an appservice transaction", func() (bool, error) {
		return rec.find(false, func(evt *event.Event) bool { return evt.ID == sent.EventID }), nil
	})
	if _, err := ghost.SendText(ctx, room.RoomID, "hello alice"); err != nil {
		t.Fatalf("ghost failed to send: %v", err)
	}
	waitForMessage(ctx, t, alice, room.RoomID, "hello alice")

	err = hs.InjectEphemeral(ctx, hs.ASURL, reg.ServerToken,
		dendrite.TypingEvent(room.RoomID, alice.UserID),
		dendrite.ReceiptEvent(room.RoomID, sent.EventID, alice.UserID, time.Now()))
	if err != nil {
		t.Fatalf("failed to inject: %v", err)
	}
	if !rec.find(true, func(evt *event.Event) bool {
		return evt.Type == event.EphemeralEventTyping && evt.RoomID == room.RoomID &&
			strings.Contains(string(mustJSON(t, &evt.Content)), alice.UserID.String())
	}) {
		t.Fatal("injected typing event was not received")
	}
	if !rec.find(true, func(evt *event.Event) bool { return evt.Type == event.EphemeralEventReceipt }) {
		t.Fatal("injected receipt event was not received")
	}
	if err := hs.InjectEphemeral(ctx, hs.ASURL, "wrong-token", dendrite.TypingEvent(room.RoomID)); err == nil {
		t.Fatal("injection with a wrong hs_token succeeded")
	}
}

// TestRestart checks that users, tokens and rooms survive Restart on the same
// URL, and that Stop then Restart works.
func TestRestart(t *testing.T) {
	hs := dendrite.New(t, dendrite.Options{})
	hs.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	alice, err := hs.RegisterUser(ctx, "alice", password)
	if err != nil {
		t.Fatal(err)
	}
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	if err != nil {
		t.Fatalf("failed to create room: %v", err)
	}

	hs.Restart(t)
	rooms, err := alice.JoinedRooms(ctx)
	if err != nil {
		t.Fatalf("old token failed after restart: %v", err)
	}
	if len(rooms.JoinedRooms) != 1 || rooms.JoinedRooms[0] != room.RoomID {
		t.Fatalf("joined rooms after restart = %v, want [%s]", rooms.JoinedRooms, room.RoomID)
	}

	if err := hs.Stop(); err != nil {
		t.Fatal(err)
	}
	if hs.Running() {
		t.Fatal("dendrite still running after Stop")
	}
	if _, err := alice.JoinedRooms(ctx); err == nil {
		t.Fatal("request succeeded while dendrite was stopped")
	}
	hs.Restart(t)
	if _, err := hs.RegisterUser(ctx, "bob", password); err != nil {
		t.Fatalf("failed to register after restart: %v", err)
	}
	if _, err := hs.Login(ctx, "alice", password); err != nil {
		t.Fatalf("failed to log in after restart: %v", err)
	}
}

func TestRegistration(t *testing.T) {
	reg := dendrite.NewRegistration(dendrite.RegistrationOptions{URL: "http://127.0.0.1:1", ASToken: "as", HSToken: "hs"})
	out := string(dendrite.RegistrationYAML(t, reg))
	for _, want := range []string{
		"id: msn", "url: http://127.0.0.1:1", "as_token: as", "hs_token: hs", "sender_localpart: msnbot",
		"rate_limited: false", "regex: ^@msn_.*:localhost$", "exclusive: true", "receive_ephemeral: true",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("registration lacks %q:\n%s", want, out)
		}
	}
	random := dendrite.NewRegistration(dendrite.RegistrationOptions{})
	if len(random.AppToken) < 32 || random.AppToken == random.ServerToken {
		t.Errorf("default tokens are not random: %q %q", random.AppToken, random.ServerToken)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
