package matrix

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/msn-bridge/msn-bridge/bridge"
	"github.com/msn-bridge/msn-bridge/internal/testenv/dendrite"
	"github.com/msn-bridge/msn-bridge/internal/testenv/pgtest"
	"github.com/msn-bridge/msn-bridge/msn/msntest"
)

// TestEndToEndMediaDendrite runs the media paths against a real Dendrite, with the core's media
// calls recorded (fakeMedia): the owner's avatar read at login and its change learnt from the
// member events Dendrite sends, a display picture on a ghost, a contact's file uploaded by
// streaming, and the owner's file downloaded from the homeserver to SendFile.
func TestEndToEndMediaDendrite(t *testing.T) {
	hs := dendrite.New(t, dendrite.Options{})
	reg := dendrite.NewRegistration(dendrite.RegistrationOptions{URL: hs.ASURL})
	hs.Start(t, dendrite.RegistrationYAML(t, reg))

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)

	srv := msntest.New(msntest.Options{})
	must(t, srv.Start())
	t.Cleanup(srv.Close)
	inbox := &botInbox{ch: make(chan struct{})}
	must(t, srv.AddAccount(alice, alicePW, "Alice"))
	must(t, srv.AddBot(bob, "x", "Bobby", inbox.fn))
	must(t, srv.AddFriends(alice, bob))

	db := pgtest.Open(t, pgtest.SQLiteDriver, pgtest.SQLiteDSN(t))
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	cfg := DefaultConfig()
	cfg.IgnoreUnsupportedServer = true
	core := newTestCore(t, ctx, srv, db, key, log)
	fe, err := New(core, hs.BridgeConfig(reg), cfg, db, log)
	must(t, err)
	fake := &fakeMedia{cache: map[string][]byte{}}
	fe.Connector().media = fake
	must(t, fe.Start(ctx))
	must(t, core.Start(ctx))
	b := &e2eBridge{core: core, fe: fe}
	defer b.stop()

	cli, err := hs.RegisterUser(ctx, "alice", "alice-matrix-password")
	must(t, err)
	user := &dendrite.User{T: t, Cli: cli}
	botMXID := id.NewUserID(reg.SenderLocalpart, hs.ServerName)
	pic1, pic2 := testPNG(t, 11), testPNG(t, 12)
	up1, err := cli.UploadBytes(ctx, pic1, "image/png")
	must(t, err)
	must(t, cli.SetAvatarURL(ctx, up1.ContentURI))

	created, err := cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{Invite: []id.UserID{botMXID}, IsDirect: true, Preset: "trusted_private_chat"})
	must(t, err)
	mgmt := created.RoomID
	user.WaitMessage(ctx, mgmt, botMXID, "", e2eWait)
	for _, step := range []struct{ send, want string }{{"login password", "E-mail address"}, {alice, "Password"}, {alicePW, "Logged in to MSN as " + alice}} {
		_, err = cli.SendText(ctx, mgmt, step.send)
		must(t, err)
		user.WaitMessage(ctx, mgmt, botMXID, step.want, e2eWait)
	}

	waitFake := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(e2eWait); !cond(); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s never happened", what)
			}
		}
	}
	// The avatar the owner had at login is their display picture.
	waitFake("display picture from the avatar at login", func() bool {
		a := fake.setAvatars()
		return len(a) == 1 && bytes.Equal(a[0], pic1)
	})

	// Without a double puppet, the owner's ghost sends their messages: it shows the picture too.
	// (Waited for before a portal uses the ghost: bridgev2 reads a ghost's state unlocked.)
	ownGhost := id.NewUserID("msn_"+id.EncodeUserLocalpart(alice), hs.ServerName)
	waitFake("the owner's ghost avatar", func() bool {
		av, err := cli.GetAvatarURL(ctx, ownGhost)
		return err == nil && av.CUString() == up1.ContentURI.CUString()
	})

	bobGhost := id.NewUserID("msn_"+id.EncodeUserLocalpart(bob), hs.ServerName)
	must(t, srv.BotSay(bob, alice, "hello from msn"))
	portal := user.JoinInvite(ctx, map[id.RoomID]bool{mgmt: true}, e2eWait)
	user.WaitMessage(ctx, portal, bobGhost, "hello from msn", e2eWait)

	// A change of the owner's avatar reaches the bridge as their member event in the portal.
	up2, err := cli.UploadBytes(ctx, pic2, "image/png")
	must(t, err)
	must(t, cli.SetAvatarURL(ctx, up2.ContentURI))
	waitFake("display picture from the changed avatar", func() bool {
		a := fake.setAvatars()
		return len(a) == 2 && bytes.Equal(a[1], pic2)
	})

	ul := fe.Bridge().GetCachedUserLoginByID(makeUserLoginID(alice))
	if ul == nil {
		t.Fatal("no user login")
	}
	c := ul.Client.(*MSNClient)
	acc := core.Account(alice)

	// bob's display picture on his ghost.
	must(t, c.handleEvent(ctx, acc, bridge.ContactAvatar{Handle: bob, Avatar: "sha-bob", Data: pic1, MIME: "image/png"}))
	var avatar id.ContentURI
	waitFake("bob's ghost avatar", func() bool {
		avatar, err = cli.GetAvatarURL(ctx, bobGhost)
		return err == nil && !avatar.IsEmpty()
	})
	if got, err := cli.DownloadBytes(ctx, avatar); err != nil || !bytes.Equal(got, pic1) {
		t.Fatalf("ghost avatar downloads as %d bytes (%v), want the display picture", len(got), err)
	}

	// bob's file, streamed to the homeserver.
	data := bytes.Repeat([]byte("msn file "), 1000)
	must(t, c.handleEvent(ctx, acc, bridge.File{ID: "file:e2e", Chat: bridge.DirectChat(bob), Sender: bob, SenderName: "Bobby",
		Name: "notes.txt", Size: int64(len(data)), MIME: "text/plain", Time: time.Now(),
		Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }}))
	evt := user.WaitMessage(ctx, portal, bobGhost, "notes.txt", e2eWait)
	msg := evt.Content.AsMessage()
	if msg.MsgType != event.MsgFile || msg.Info == nil || msg.Info.Size != len(data) || msg.Info.MimeType != "text/plain" {
		t.Fatalf("file shown as %+v", msg)
	}
	if got, err := cli.DownloadBytes(ctx, msg.URL.ParseOrIgnore()); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("file downloads as %d bytes (%v)", len(got), err)
	}

	// One over Dendrite's upload limit (10 MiB) is a notice saying so; nothing of it is read.
	var opened atomic.Bool
	must(t, c.handleEvent(ctx, acc, bridge.File{ID: "file:e2e-big", Chat: bridge.DirectChat(bob), Sender: bob, SenderName: "Bobby",
		Name: "big.iso", Size: 11 << 20, MIME: "application/octet-stream", Time: time.Now(),
		Open: func() (io.ReadCloser, error) { opened.Store(true); return nil, io.ErrUnexpectedEOF }}))
	user.WaitMessage(ctx, portal, bobGhost, "Bobby tried to send big.iso (11 MiB): it is larger than the homeserver accepts", e2eWait)
	if opened.Load() {
		t.Error("a file over the homeserver's limit was read")
	}

	// The owner's image, downloaded from the homeserver and sent with its caption after it.
	_, err = cli.SendMessageEvent(ctx, portal, event.EventMessage, &event.MessageEventContent{
		MsgType: event.MsgImage, Body: "my picture", FileName: "me.png", URL: up2.ContentURI.CUString(),
		Info: &event.FileInfo{MimeType: "image/png", Size: len(pic2)},
	})
	must(t, err)
	waitFake("the owner's file sent", func() bool { return len(fake.sent()) == 1 })
	if s := fake.sent()[0]; s.name != "me.png" || s.mime != "image/png" || s.size != int64(len(pic2)) || !bytes.Equal(s.data, pic2) {
		t.Fatalf("sent %+v", s)
	}
	inbox.waitText(t, "my picture")
}
