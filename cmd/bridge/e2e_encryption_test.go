package main

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/cryptohelper"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/msn-bridge/msn-bridge/internal/testenv/dendrite"
	"github.com/msn-bridge/msn-bridge/msn/msntest"
)

// e2eeClient is the Matrix user with end-to-end encryption of its own (mautrix's crypto helper
// with the pure-Go Olm, its store in SQLite), syncing in the background as a client app does.
type e2eeClient struct {
	t   *testing.T
	cli *mautrix.Client
	ch  *cryptohelper.CryptoHelper
}

func newE2EEClient(ctx context.Context, t *testing.T, cli *mautrix.Client) *e2eeClient {
	t.Helper()
	db, err := dbutil.NewWithDialect("file:"+filepath.Join(t.TempDir(), "client.db")+"?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_txlock=immediate", "sqlite")
	must(t, err)
	ch, err := cryptohelper.NewCryptoHelper(cli, []byte("test client pickle key"), db)
	must(t, err)
	must(t, ch.Init(ctx))
	cli.Crypto = ch
	syncCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := cli.SyncWithContext(syncCtx); err != nil && !errors.Is(err, context.Canceled) {
			t.Logf("test client sync stopped: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		cli.StopSync()
		<-done
		_ = ch.Close()
	})
	return &e2eeClient{t: t, cli: cli, ch: ch}
}

// waitEncrypted waits until the client's sync has seen room's m.room.encryption, so that what
// it sends there is encrypted, and members in the room (joined or invited): the client shares
// its room key with the members it knows of when it sends, as every client does, and refuses
// later key requests from other users.
func (c *e2eeClient) waitEncrypted(ctx context.Context, room id.RoomID, members ...id.UserID) {
	c.t.Helper()
	waitUntil(c.t, nil, e2eWait, "the client to see "+room.String()+" as encrypted, with its members", func() bool {
		ok, err := c.cli.StateStore.IsEncrypted(ctx, room)
		if err != nil || !ok {
			return false
		}
		known, err := c.cli.StateStore.GetRoomJoinedOrInvitedMembers(ctx, room)
		if err != nil {
			return false
		}
		for _, m := range members {
			if !slices.Contains(known, m) {
				return false
			}
		}
		return true
	})
}

// send sends text to room through the client's encryption, and checks that the homeserver got
// an m.room.encrypted event.
func (c *e2eeClient) send(ctx context.Context, room id.RoomID, text string) id.EventID {
	c.t.Helper()
	resp, err := c.cli.SendMessageEvent(ctx, room, event.EventMessage, &event.MessageEventContent{MsgType: event.MsgText, Body: text})
	must(c.t, err)
	// Dendrite answers 404 for an event it has not indexed yet.
	var evt *event.Event
	waitUntil(c.t, nil, e2eWait, "the homeserver to have the client's message", func() bool {
		evt, err = c.cli.GetEvent(ctx, room, resp.EventID)
		return err == nil
	})
	if evt.Type != event.EventEncrypted {
		c.t.Fatalf("the client's message %q reached the homeserver as %s, want m.room.encrypted", text, evt.Type)
	}
	return resp.EventID
}

// waitMessage polls room's last 100 events until an encrypted message from sender (anyone when
// "") decrypts to a body containing text, and returns the decrypted event. A plaintext message
// there containing text fails the test: everything in these rooms must be encrypted.
func (c *e2eeClient) waitMessage(ctx context.Context, room id.RoomID, sender id.UserID, text string, since time.Time) *event.Event {
	c.t.Helper()
	var lastErr error
	deadline := time.Now().Add(e2eWait)
	for {
		resp, err := c.cli.Messages(ctx, room, "", "", mautrix.DirectionBackward, nil, 100)
		if err != nil {
			lastErr = err
		} else {
			for _, evt := range resp.Chunk {
				if (sender != "" && evt.Sender != sender) || evt.Timestamp < since.UnixMilli() {
					continue
				}
				switch evt.Type {
				case event.EventMessage:
					_ = evt.Content.ParseRaw(evt.Type)
					if strings.Contains(evt.Content.AsMessage().Body, text) {
						c.t.Fatalf("%q arrived in %s unencrypted", text, room)
					}
				case event.EventEncrypted:
					if err := evt.Content.ParseRaw(evt.Type); err != nil {
						lastErr = err
						continue
					}
					dec, err := c.ch.Decrypt(ctx, evt)
					if err != nil {
						lastErr = err // the room key may still be on its way
						continue
					}
					if dec.Type == event.EventMessage && strings.Contains(dec.Content.AsMessage().Body, text) {
						return dec
					}
				}
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no encrypted message containing %q from %q in %s (last error %v)", text, sender, room, lastErr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// botDevice returns the bridge bot's device ID from the single Olm account in the bridge's
// database (read-only, beside the running bridge).
func (e *e2eEnv) botDevice() string {
	e.t.Helper()
	if n := e.countRows("crypto_account"); n != 1 {
		e.t.Fatalf("%d rows in crypto_account, want the bridge bot's account in the bridge's database", n)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(e.dir, "bridge.db")+"?mode=ro&_pragma=busy_timeout(5000)")
	must(e.t, err)
	defer db.Close()
	var device string
	must(e.t, db.QueryRow("SELECT device_id FROM crypto_account").Scan(&device))
	if device == "" {
		e.t.Fatal("the bridge bot's Olm account has no device")
	}
	return device
}

// msnInbox is an MSN contact (a msntest bot) that records the texts it receives.
type msnInbox struct {
	mu    sync.Mutex
	texts []string
}

func (b *msnInbox) bot(_ context.Context, _ *msntest.BotChat, msg msntest.BotMessage) {
	if msg.IsText() {
		b.mu.Lock()
		b.texts = append(b.texts, msg.Body)
		b.mu.Unlock()
	}
}

func (b *msnInbox) has(text string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, t := range b.texts {
		if t == text {
			return true
		}
	}
	return false
}

// TestBinaryEncryptedPortal runs the default build (pure Go, no libolm) with end-to-bridge
// encryption allowed, on by default and required, against Dendrite, which has no MSC3202: the
// bridge bot logs in with m.login.application_service and syncs for its to-device messages.
// The user is a Matrix client with encryption of its own. The pickle key is generated and kept
// in the config file and never logged; the bridge's crypto store is in its own database. The
// user logs in through an encrypted management room, a contact's MSN message arrives in an
// encrypted portal (m.room.encryption set by the bridge) and decrypts to its text, the user's
// encrypted reply reaches the contact as plain text, and after a restart the bridge's device and
// keys are still there: a new message still decrypts and a new reply still arrives.
func TestBinaryEncryptedPortal(t *testing.T) {
	e := newE2EEnvWith(t, `    encryption:
        allow: true
        default: true
        require: true
        pickle_key: generate
`)
	dave := "dave@msn.test"
	inbox := &msnInbox{}
	must(t, e.srv.AddBot(dave, "x-dave-pw", "Dave", inbox.bot))
	must(t, e.srv.AddFriends(alice, dave))
	must(t, e.srv.SetPresence(dave, "NLN", ""))
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	e.startHomeserver()
	p := e.start()
	e.waitStarted(p, 0)

	// The pickle key was generated and written back, never logged.
	cfgData, err := os.ReadFile(e.cfgPath)
	must(t, err)
	m := regexp.MustCompile(`(?m)^        pickle_key: (\S+)$`).FindStringSubmatch(string(cfgData))
	if m == nil || m[1] == "generate" || len(m[1]) < 32 {
		t.Fatalf("pickle_key in the config file after start: %v, want a generated key", m)
	}
	pickleKey := m[1]
	device := e.botDevice()

	cli, err := e.hs.RegisterUser(ctx, matrixUser, "alice-matrix-password")
	must(t, err)
	u := newE2EEClient(ctx, t, cli)
	botMXID := id.NewUserID("msnbot", e.hs.ServerName)
	daveGhost := id.NewUserID("msn_"+id.EncodeUserLocalpart(dave), e.hs.ServerName)

	// An encrypted management room (with require on, the bridge refuses unencrypted messages).
	start := time.Now()
	created, err := cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Invite: []id.UserID{botMXID}, IsDirect: true, Preset: "trusted_private_chat",
		InitialState: []*event.Event{{Type: event.StateEncryption, Content: event.Content{
			Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1},
		}}},
	})
	must(t, err)
	mgmt := created.RoomID
	u.waitEncrypted(ctx, mgmt, botMXID)
	u.waitMessage(ctx, mgmt, botMXID, "management room", start) // the bot joined, and writes encrypted

	for _, step := range []struct{ send, want string }{
		{"login password", "E-mail address"},
		{alice, "Password"},
		{alicePW, "Logged in to MSN as " + alice},
	} {
		since := time.Now()
		u.send(ctx, mgmt, step.send)
		u.waitMessage(ctx, mgmt, botMXID, step.want, since)
	}
	waitUntil(t, p, e2eWait, "alice online on MSN", func() bool { return e.srv.LoggedIn(alice) })

	// MSN → Matrix: the portal is encrypted and the contact's message decrypts to its text.
	since := time.Now()
	must(t, e.srv.BotSay(dave, alice, "hello from msn, encrypted"))
	portal := (&dendrite.User{T: t, Cli: cli}).JoinInvite(ctx, map[id.RoomID]bool{mgmt: true}, e2eWait)
	var enc event.EncryptionEventContent
	waitUntil(t, p, e2eWait, "the portal's m.room.encryption", func() bool {
		return cli.StateEvent(ctx, portal, event.StateEncryption, "", &enc) == nil
	})
	if enc.Algorithm != id.AlgorithmMegolmV1 {
		t.Fatalf("portal m.room.encryption algorithm %q, want %q", enc.Algorithm, id.AlgorithmMegolmV1)
	}
	got := u.waitMessage(ctx, portal, daveGhost, "hello from msn, encrypted", since)
	if body := got.Content.AsMessage().Body; body != "hello from msn, encrypted" {
		t.Errorf("decrypted body %q", body)
	}

	// Matrix → MSN: the user's encrypted message reaches the contact as plain text.
	u.waitEncrypted(ctx, portal, botMXID)
	u.send(ctx, portal, "hello from matrix, encrypted")
	waitUntil(t, p, e2eWait, "the contact to get the user's message", func() bool { return inbox.has("hello from matrix, encrypted") })

	// A restart: the bridge's device and keys come back from its database with the kept key.
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	logLen := len(e.readLog())
	p = e.start()
	e.waitStarted(p, logLen)
	waitUntil(t, p, e2eWait, "alice back on MSN", func() bool { return e.srv.LoggedIn(alice) })
	since = time.Now()
	must(t, e.srv.BotSay(dave, alice, "still encrypted after a restart"))
	u.waitMessage(ctx, portal, daveGhost, "still encrypted after a restart", since)
	u.send(ctx, portal, "reply after a restart")
	waitUntil(t, p, dendriteBackoffWait, "the contact to get the reply after a restart", func() bool { return inbox.has("reply after a restart") })
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit code %d after the second SIGTERM, want 0", code)
	}
	if d := e.botDevice(); d != device {
		t.Errorf("the bot's device is %s after a restart, was %s: its keys were not kept", d, device)
	}
	if strings.Contains(e.readLog(), pickleKey) {
		t.Error("the pickle key is in the bridge's log")
	}
}
