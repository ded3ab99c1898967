package e2elat

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/msn-bridge/msn-bridge/bridge"
	"github.com/msn-bridge/msn-bridge/internal/testenv/dendrite"
	"github.com/msn-bridge/msn-bridge/internal/testenv/pgtest"
	"github.com/msn-bridge/msn-bridge/matrix"
	"github.com/msn-bridge/msn-bridge/msn"
	"github.com/msn-bridge/msn-bridge/msn/msntest"
)

const (
	alice   = "alice@example.com"
	alicePW = "alice-password"
	bob     = "bob@example.com"
	wait    = 60 * time.Second
)

// syncer is alice's Matrix client syncing in a loop; it records when each text was first seen.
type syncer struct {
	cli  *mautrix.Client
	mu   sync.Mutex
	seen map[string]time.Time
	// invites are rooms alice was invited to, in arrival order.
	invites []id.RoomID
	next    string
}

func (s *syncer) run(ctx context.Context) {
	for ctx.Err() == nil {
		resp, err := s.cli.SyncRequest(ctx, 30000, s.next, "", false, event.PresenceOnline)
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		now := time.Now()
		s.mu.Lock()
		s.next = resp.NextBatch
		for roomID := range resp.Rooms.Invite {
			s.invites = append(s.invites, roomID)
		}
		for _, room := range resp.Rooms.Join {
			for _, evt := range room.Timeline.Events {
				if evt.Type != event.EventMessage {
					continue
				}
				_ = evt.Content.ParseRaw(evt.Type)
				if body := evt.Content.AsMessage().Body; body != "" {
					if _, ok := s.seen[body]; !ok {
						s.seen[body] = now
					}
				}
			}
		}
		s.mu.Unlock()
	}
}

// waitSeen returns when a message containing text was first seen.
func (s *syncer) waitSeen(t *testing.T, text string) time.Time {
	t.Helper()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		for body, at := range s.seen {
			if strings.Contains(body, text) {
				s.mu.Unlock()
				return at
			}
		}
		s.mu.Unlock()
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("alice never saw %q", text)
	return time.Time{}
}

// waitInvite returns the first invite not in skip.
func (s *syncer) waitInvite(t *testing.T, skip map[id.RoomID]bool) id.RoomID {
	t.Helper()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		for _, r := range s.invites {
			if !skip[r] {
				s.mu.Unlock()
				return r
			}
		}
		s.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no invite arrived")
	return ""
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func stats(ds []time.Duration) (p50, p90 time.Duration) {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2], s[min(len(s)-1, len(s)*9/10)]
}

// TestEndToEndLatency sends alternately an MSN message to alice (through the bridge) and a
// Matrix message from carol (directly), and measures each from the send to alice's sync
// returning it. It reports medians, p90 and the ratio of the medians; the target is ≤ 1.3×.
func TestEndToEndLatency(t *testing.T) {
	if os.Getenv("MSN_E2E_LATENCY") != "1" {
		t.Skip("set MSN_E2E_LATENCY=1 to measure end-to-end latency against Dendrite")
	}
	samples := 60
	if v, err := strconv.Atoi(os.Getenv("E2E_SAMPLES")); err == nil && v > 0 {
		samples = v
	}
	hs := dendrite.New(t, dendrite.Options{LogLevel: "warn"})
	reg := dendrite.NewRegistration(dendrite.RegistrationOptions{URL: hs.ASURL})
	hs.Start(t, dendrite.RegistrationYAML(t, reg))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)

	srv := msntest.New(msntest.Options{})
	must(t, srv.Start())
	t.Cleanup(srv.Close)
	must(t, srv.AddAccount(alice, alicePW, "Alice"))
	must(t, srv.AddBot(bob, "x", "Bobby", func(context.Context, *msntest.BotChat, msntest.BotMessage) {}))
	must(t, srv.AddFriends(alice, bob))

	db := pgtest.Open(t, pgtest.SQLiteDriver, pgtest.SQLiteDSN(t))
	key := make([]byte, bridge.KeySize)
	_, _ = rand.Read(key)
	cipher, err := bridge.NewCipher(key)
	must(t, err)
	store := bridge.NewStore(db, cipher, log)
	must(t, store.Upgrade(ctx))
	core, err := bridge.NewCore(bridge.Config{
		MSN: msn.Config{Server: srv.NSAddr(), LoginURL: srv.LoginURL(), AllowInsecurePassport: true},
	}, bridge.Options{Store: store, Log: log})
	must(t, err)
	cfg := matrix.DefaultConfig()
	cfg.IgnoreUnsupportedServer = true
	fe, err := matrix.New(core, hs.BridgeConfig(reg), cfg, db, log)
	must(t, err)
	must(t, fe.Start(ctx))
	must(t, core.Start(ctx))
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer scancel()
		fe.Stop(sctx)
		_ = core.Stop(sctx)
	})

	cli, err := hs.RegisterUser(ctx, "alice", "alice-matrix-password")
	must(t, err)
	carol, err := hs.RegisterUser(ctx, "carol", "carol-matrix-password")
	must(t, err)
	s := &syncer{cli: cli, seen: map[string]time.Time{}}
	syncCtx, stopSync := context.WithCancel(ctx)
	var syncDone sync.WaitGroup
	syncDone.Add(1)
	go func() { defer syncDone.Done(); s.run(syncCtx) }()
	t.Cleanup(func() { stopSync(); syncDone.Wait() })

	// Log in through the management room, as a user would.
	botMXID := id.NewUserID(reg.SenderLocalpart, hs.ServerName)
	created, err := cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{Invite: []id.UserID{botMXID}, IsDirect: true, Preset: "trusted_private_chat"})
	must(t, err)
	mgmt := created.RoomID
	for deadline := time.Now().Add(wait); ; time.Sleep(50 * time.Millisecond) {
		members, err := cli.JoinedMembers(ctx, mgmt)
		if err == nil && members.Joined[botMXID].DisplayName != "" || err == nil && len(members.Joined) > 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the bridge bot never joined the management room (%v)", err)
		}
	}
	for _, step := range []struct{ send, want string }{{"login password", "E-mail address"}, {alice, "Password"}, {alicePW, "Logged in to MSN as " + alice}} {
		_, err = cli.SendText(ctx, mgmt, step.send)
		must(t, err)
		s.waitSeen(t, step.want)
	}

	// The MSN chat's portal, and a direct room with carol.
	must(t, srv.BotSay(bob, alice, "portal please"))
	portal := s.waitInvite(t, map[id.RoomID]bool{mgmt: true})
	_, err = cli.JoinRoomByID(ctx, portal)
	must(t, err)
	s.waitSeen(t, "portal please")
	direct, err := carol.CreateRoom(ctx, &mautrix.ReqCreateRoom{Invite: []id.UserID{cli.UserID}, Preset: "private_chat"})
	must(t, err)
	s.waitInvite(t, map[id.RoomID]bool{mgmt: true, portal: true})
	_, err = cli.JoinRoomByID(ctx, direct.RoomID)
	must(t, err)
	_, err = carol.SendText(ctx, direct.RoomID, "direct warm-up")
	must(t, err)
	s.waitSeen(t, "direct warm-up")

	var viaBridge, viaMatrix []time.Duration
	for i := range samples {
		text := fmt.Sprintf("lat-msn-%d", i)
		start := time.Now()
		must(t, srv.BotSay(bob, alice, text))
		viaBridge = append(viaBridge, s.waitSeen(t, text).Sub(start))

		text = fmt.Sprintf("lat-mx-%d", i)
		start = time.Now()
		_, err = carol.SendText(ctx, direct.RoomID, text)
		must(t, err)
		viaMatrix = append(viaMatrix, s.waitSeen(t, text).Sub(start))
		time.Sleep(50 * time.Millisecond)
	}
	b50, b90 := stats(viaBridge)
	m50, m90 := stats(viaMatrix)
	t.Logf("end-to-end latency to a syncing Matrix client, %d messages each, alternating, same Dendrite:", samples)
	t.Logf("  MSN → bridge → Matrix: median %s, p90 %s", b50.Round(100*time.Microsecond), b90.Round(100*time.Microsecond))
	t.Logf("  Matrix → Matrix:       median %s, p90 %s", m50.Round(100*time.Microsecond), m90.Round(100*time.Microsecond))
	t.Logf("  ratio of medians %.2f×, of p90s %.2f× (target ≤ 1.3×)", float64(b50)/float64(m50), float64(b90)/float64(m90))
}
