package matrix

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"image"
	"image/png"
	"net/url"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/msn-bridge/msn-bridge/internal/testenv/dendrite"
	"github.com/msn-bridge/msn-bridge/internal/testenv/pgtest"
	"github.com/msn-bridge/msn-bridge/msn"
	"github.com/msn-bridge/msn-bridge/msn/msntest"
)

// TestEndToEndMediaRealDendrite runs media through the whole bridge: msntest's bot bob speaks
// MSNP2P with the core's msn client, the core (no fakes) feeds the Matrix frontend, which talks
// to a real Dendrite. bob's display picture becomes his ghost's avatar, his files arrive as
// m.file and m.image with the same bytes, the owner's m.file reaches bob byte for byte with a
// success status (and a failed status saying so when bob declines), and the owner's Matrix
// avatar becomes their MSN display picture, a 96×96 PNG bob fetches.
func TestEndToEndMediaRealDendrite(t *testing.T) {
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
	must(t, srv.SetPresence(bob, "NLN", ""))
	bobPic := noisyPNG(t, 40, 30)
	_, err := srv.SetBotDisplayPicture(bob, bobPic)
	must(t, err)

	db := pgtest.Open(t, pgtest.SQLiteDriver, pgtest.SQLiteDSN(t))
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	cfg := DefaultConfig()
	cfg.IgnoreUnsupportedServer = true
	core := newTestCore(t, ctx, srv, db, key, log)
	fe, err := New(core, hs.BridgeConfig(reg), cfg, db, log)
	must(t, err)
	must(t, fe.Start(ctx))
	must(t, core.Start(ctx))
	b := &e2eBridge{core: core, fe: fe}
	defer b.stop()

	cli, err := hs.RegisterUser(ctx, "alice", "alice-matrix-password")
	must(t, err)
	user := &dendrite.User{T: t, Cli: cli}
	botMXID := id.NewUserID(reg.SenderLocalpart, hs.ServerName)
	ownPic := noisyPNG(t, 200, 120)
	up, err := cli.UploadBytes(ctx, ownPic, "image/png")
	must(t, err)
	must(t, cli.SetAvatarURL(ctx, up.ContentURI))

	created, err := cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{Invite: []id.UserID{botMXID}, IsDirect: true, Preset: "trusted_private_chat"})
	must(t, err)
	mgmt := created.RoomID
	user.WaitMessage(ctx, mgmt, botMXID, "", e2eWait)
	for _, step := range []struct{ send, want string }{{"login password", "E-mail address"}, {alice, "Password"}, {alicePW, "Logged in to MSN as " + alice}} {
		_, err = cli.SendText(ctx, mgmt, step.send)
		must(t, err)
		user.WaitMessage(ctx, mgmt, botMXID, step.want, e2eWait)
	}
	poll := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(e2eWait); !cond(); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s never happened", what)
			}
		}
	}

	// The owner's Matrix avatar is alice's display picture: announced on MSN, bob fetches it.
	var own msn.MSNObject
	poll("alice's display picture announced", func() bool {
		own = announcedPicture(t, srv, alice)
		return own.SHA1D != ""
	})
	pic, err := srv.BotFetchObject(ctx, bob, own)
	must(t, err)
	if got := msn.NewMSNObject(alice, msn.ObjectDisplayPicture, "0", "", pic); got.SHA1D != own.SHA1D {
		t.Fatalf("bob fetched a picture with SHA1D %s, alice announced %s", got.SHA1D, own.SHA1D)
	}
	if c, format, err := image.DecodeConfig(bytes.NewReader(pic)); err != nil || format != "png" || c.Width != 96 || c.Height != 96 {
		t.Fatalf("alice's display picture is %s %dx%d (%v), want a 96x96 PNG", format, c.Width, c.Height, err)
	}

	// bob's display picture is his ghost's avatar.
	bobGhost := id.NewUserID("msn_"+id.EncodeUserLocalpart(bob), hs.ServerName)
	must(t, srv.BotSay(bob, alice, "hello from msn"))
	portal := user.JoinInvite(ctx, map[id.RoomID]bool{mgmt: true}, e2eWait)
	user.WaitMessage(ctx, portal, bobGhost, "hello from msn", e2eWait)
	var avatar id.ContentURI
	poll("bob's ghost avatar", func() bool {
		avatar, err = cli.GetAvatarURL(ctx, bobGhost)
		return err == nil && !avatar.IsEmpty()
	})
	if got, err := cli.DownloadBytes(ctx, avatar); err != nil || !bytes.Equal(got, bobPic) {
		t.Fatalf("bob's ghost avatar downloads as %d bytes (%v), want his %d-byte display picture", len(got), err, len(bobPic))
	}

	// bob's files: m.file and m.image, downloadable with the same bytes.
	for _, f := range []struct {
		name string
		data []byte
		typ  event.MessageType
	}{{"notes.bin", randomData(t, 200_000), event.MsgFile}, {"photo.png", noisyPNG(t, 64, 64), event.MsgImage}} {
		must(t, srv.BotSendFile(ctx, bob, alice, f.name, f.data))
		evt := user.WaitMessage(ctx, portal, bobGhost, f.name, e2eWait)
		msg := evt.Content.AsMessage()
		if msg.MsgType != f.typ || msg.Info == nil || msg.Info.Size != len(f.data) {
			t.Fatalf("%s shown as %s %+v, want %s", f.name, msg.MsgType, msg.Info, f.typ)
		}
		got, err := cli.DownloadBytes(ctx, msg.URL.ParseOrIgnore())
		if err != nil || sha256.Sum256(got) != sha256.Sum256(f.data) {
			t.Fatalf("%s downloads as %d bytes (%v), not the %d bob sent", f.name, len(got), err, len(f.data))
		}
	}

	// The owner's file reaches bob byte for byte, with a success status.
	must(t, srv.SetBotAcceptFiles(bob, true))
	data := randomData(t, 150_000)
	upFile, err := cli.UploadBytes(ctx, data, "application/octet-stream")
	must(t, err)
	sent, err := cli.SendMessageEvent(ctx, portal, event.EventMessage, &event.MessageEventContent{
		MsgType: event.MsgFile, Body: "report.bin", FileName: "report.bin", URL: upFile.ContentURI.CUString(),
		Info: &event.FileInfo{MimeType: "application/octet-stream", Size: len(data)},
	})
	must(t, err)
	bf, err := srv.WaitBotFile(ctx, bob, 1)
	must(t, err)
	if bf.Err != nil || bf.Name != "report.bin" || !bytes.Equal(bf.Data, data) {
		t.Fatalf("bob got %q, %d bytes (%v)", bf.Name, len(bf.Data), bf.Err)
	}
	if st := waitSendStatus(ctx, t, cli, portal, sent.EventID); st.Status != event.MessageStatusSuccess {
		t.Fatalf("status of the delivered file: %s %q", st.Status, st.Message)
	}

	// bob declines: a failed status that says so.
	must(t, srv.SetBotAcceptFiles(bob, false))
	sent, err = cli.SendMessageEvent(ctx, portal, event.EventMessage, &event.MessageEventContent{
		MsgType: event.MsgFile, Body: "unwanted.bin", FileName: "unwanted.bin", URL: upFile.ContentURI.CUString(),
		Info: &event.FileInfo{MimeType: "application/octet-stream", Size: len(data)},
	})
	must(t, err)
	st := waitSendStatus(ctx, t, cli, portal, sent.EventID)
	if st.Status == event.MessageStatusSuccess || !bytes.Contains([]byte(st.Message), []byte("declined")) {
		t.Fatalf("status of the declined file: %s %q", st.Status, st.Message)
	}
	if bf, err := srv.WaitBotFile(ctx, bob, 2); err != nil || bf.Accepted || bf.Name != "unwanted.bin" {
		t.Fatalf("bob's record of the declined file: %+v, %v", bf, err)
	}
}

// waitSendStatus polls room's timeline for the bridge's final status (not pending) of evtID.
func waitSendStatus(ctx context.Context, t *testing.T, cli *mautrix.Client, room id.RoomID, evtID id.EventID) *event.BeeperMessageStatusEventContent {
	t.Helper()
	for deadline := time.Now().Add(e2eWait); ; time.Sleep(100 * time.Millisecond) {
		resp, err := cli.Messages(ctx, room, "", "", mautrix.DirectionBackward, nil, 100)
		if err == nil {
			for _, evt := range resp.Chunk {
				if evt.Type != event.BeeperMessageStatus {
					continue
				}
				_ = evt.Content.ParseRaw(evt.Type)
				if c, ok := evt.Content.Parsed.(*event.BeeperMessageStatusEventContent); ok && c.RelatesTo.EventID == evtID &&
					c.Status != event.MessageStatusPending {
					return c
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no final status for %s (last error %v)", evtID, err)
		}
	}
}

// announcedPicture returns the msnobj handle's latest CHG announced on srv (zero when none).
func announcedPicture(t *testing.T, srv *msntest.Server, handle string) msn.MSNObject {
	t.Helper()
	var enc string
	for _, ev := range srv.EventsFor(handle) {
		if ev.Server == "NS" && ev.Name == "CHG" {
			enc = ""
			if len(ev.Args) > 3 {
				enc = ev.Args[3]
			}
		}
	}
	if enc == "" {
		return msn.MSNObject{}
	}
	xml, err := url.PathUnescape(enc)
	must(t, err)
	obj, err := msn.ParseMSNObject(xml)
	must(t, err)
	return obj
}

func randomData(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	must(t, err)
	return b
}

// noisyPNG is a w×h PNG of random opaque pixels.
func noisyPNG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	copy(img.Pix, randomData(t, len(img.Pix)))
	for i := 3; i < len(img.Pix); i += 4 {
		img.Pix[i] = 255
	}
	var buf bytes.Buffer
	must(t, png.Encode(&buf, img))
	return buf.Bytes()
}
