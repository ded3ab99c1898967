package discordtest

import (
	"bytes"
	"compress/zlib"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/gorilla/websocket"
)

func TestConnectReadyAndGuildCreate(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{GuildName: "Bridge Test", Users: []*discordgo.User{{Username: "alice"}}})
	sess := newSession(t, srv, "")
	ready := events[*discordgo.Ready](sess)
	guilds := events[*discordgo.GuildCreate](sess)
	if err := sess.Open(); err != nil {
		t.Fatalf("Open: %v", err)
	}
	r := wait(t, ready, "READY", nil)
	if r.User == nil || r.User.ID != srv.BotID() || !r.User.Bot {
		t.Errorf("READY user = %+v, want the bot %s", r.User, srv.BotID())
	}
	if r.Application == nil || r.Application.ID != srv.ApplicationID() {
		t.Errorf("READY application = %+v, want %s", r.Application, srv.ApplicationID())
	}
	g := wait(t, guilds, "GUILD_CREATE", nil)
	if g.ID != srv.GuildID() || g.Name != "Bridge Test" || g.OwnerID != srv.OwnerID() {
		t.Errorf("GUILD_CREATE = %s %q owner %s", g.ID, g.Name, g.OwnerID)
	}
	st, err := sess.State.Guild(srv.GuildID())
	if err != nil {
		t.Fatalf("State.Guild: %v", err)
	}
	if len(st.Channels) != 2 || len(st.Members) != 3 {
		t.Errorf("state has %d channels, %d members; want 2, 3", len(st.Channels), len(st.Members))
	}
	if _, err := sess.State.Channel(generalID(t, srv)); err != nil {
		t.Errorf("State.Channel(general): %v", err)
	}
	me, err := sess.User("@me")
	if err != nil || me.ID != srv.BotID() {
		t.Errorf("User(@me) = %v, %v", me, err)
	}
	if st := srv.Stats(); st.Identifies != 1 || st.Connections != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestResumeReplaysMissedDispatches(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{Users: []*discordgo.User{{Username: "alice"}}})
	sess := openSession(t, srv)
	resumed := events[*discordgo.Resumed](sess)
	created := events[*discordgo.MessageCreate](sess)
	alice := srv.Users()[0].ID
	// Drop only after the first heartbeat: a heartbeat failing on the dead socket would start
	// a second reconnect in discordgo, racing with the first.
	deadline := time.Now().Add(waitTimeout)
	for srv.Stats().Heartbeats == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}

	if n := srv.DropGateway(); n != 1 {
		t.Fatalf("DropGateway cut %d connections, want 1", n)
	}
	// Sent while the client is away: it must arrive by replay.
	m := srv.InjectUserMessage(generalID(t, srv), alice, "sent while you were away")
	if m == nil {
		t.Fatal("InjectUserMessage returned nil")
	}
	wait(t, resumed, "RESUMED", nil)
	got := wait(t, created, "replayed MESSAGE_CREATE", func(e *discordgo.MessageCreate) bool { return e.ID == m.ID })
	if got.Content != "sent while you were away" || got.Author.ID != alice || got.Member == nil {
		t.Errorf("replayed message = %q by %v member %v", got.Content, got.Author, got.Member)
	}
	if st := srv.Stats(); st.Identifies != 1 || st.Resumes < 1 {
		t.Errorf("stats = %+v, want 1 identify and a resume", st)
	}
}

func TestOp7ReconnectResumes(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{})
	sess := openSession(t, srv)
	resumed := events[*discordgo.Resumed](sess)
	if err := srv.SendOp(7, nil); err != nil {
		t.Fatal(err)
	}
	wait(t, resumed, "RESUMED after op 7", nil)
	if st := srv.Stats(); st.Resumes != 1 || st.Identifies != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestOp9Reidentifies(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{})
	sess := openSession(t, srv)
	ready := events[*discordgo.Ready](sess)
	if err := srv.SendOp(9, false); err != nil {
		t.Fatal(err)
	}
	wait(t, ready, "READY after op 9", nil)
	if st := srv.Stats(); st.Identifies != 2 || st.Connections != 1 {
		t.Errorf("stats = %+v, want a second identify on the same connection", st)
	}
}

// TestMissedHeartbeatAcksEndTheSession: discordgo closes with 1000 when acknowledgements stop,
// and on Discord that ends the session, so the reconnect is a fresh IDENTIFY and a message
// posted in the gap is never delivered.
func TestMissedHeartbeatAcksEndTheSession(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{HeartbeatInterval: 50 * time.Millisecond, Users: []*discordgo.User{{Username: "alice"}}})
	sess := openSession(t, srv)
	disc := events[*discordgo.Disconnect](sess)
	ready := events[*discordgo.Ready](sess)
	created := events[*discordgo.MessageCreate](sess)
	srv.SetNoAck(true)
	wait(t, disc, "disconnect after missed acks", nil)
	lost := srv.InjectUserMessage(generalID(t, srv), srv.Users()[0].ID, "in the gap")
	srv.SetNoAck(false)
	wait(t, ready, "READY after missed acks", nil)
	after := srv.InjectUserMessage(generalID(t, srv), srv.Users()[0].ID, "after")
	wait(t, created, "the message after the reconnect", func(e *discordgo.MessageCreate) bool {
		if e.ID == lost.ID {
			t.Errorf("the message of the gap was delivered after a 1000 close")
		}
		return e.ID == after.ID
	})
	if st := srv.Stats(); st.Resumes != 0 || st.Identifies != 2 || st.Invalidated != 1 {
		t.Errorf("stats = %+v, want 2 identifies, no resume, 1 session invalidated", st)
	}
}

// rawIdentify connects a raw websocket client, identifies, and returns the connection with
// the session id and the sequence of the last frame read (READY, GUILD_CREATE).
func rawIdentify(t *testing.T, srv *Server) (*websocket.Conn, string, int64) {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(srv.GatewayURL()+"/?v=9&encoding=json", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { ws.Close() })
	_ = ws.SetReadDeadline(time.Now().Add(waitTimeout))
	if _, _, err := ws.ReadMessage(); err != nil {
		t.Fatalf("HELLO: %v", err)
	}
	identify := `{"op":2,"d":{"token":"Bot ` + srv.Token() + `","intents":33281,"properties":{}}}`
	if err := ws.WriteMessage(websocket.TextMessage, []byte(identify)); err != nil {
		t.Fatal(err)
	}
	var sid string
	var seq int64
	for _, want := range []string{"READY", "GUILD_CREATE"} {
		var ev struct {
			T string `json:"t"`
			S int64  `json:"s"`
			D struct {
				SessionID string `json:"session_id"`
			} `json:"d"`
		}
		if err := ws.ReadJSON(&ev); err != nil || ev.T != want {
			t.Fatalf("frame %s (%v), want %s", ev.T, err, want)
		}
		if ev.T == "READY" {
			sid = ev.D.SessionID
		}
		seq = ev.S
	}
	return ws, sid, seq
}

// rawResume connects a raw client, RESUMEs sid at seq and returns the op and type of the
// first frame answered.
func rawResume(t *testing.T, srv *Server, sid string, seq int64) (int, string) {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(srv.GatewayURL()+"/?v=9&encoding=json", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(waitTimeout))
	if _, _, err := ws.ReadMessage(); err != nil {
		t.Fatalf("HELLO: %v", err)
	}
	resume, _ := json.Marshal(map[string]any{"op": 6, "d": map[string]any{"token": "Bot " + srv.Token(), "session_id": sid, "seq": seq}})
	if err := ws.WriteMessage(websocket.TextMessage, resume); err != nil {
		t.Fatal(err)
	}
	var ev struct {
		Op int    `json:"op"`
		T  string `json:"t"`
	}
	if err := ws.ReadJSON(&ev); err != nil {
		t.Fatalf("answer to RESUME: %v", err)
	}
	return ev.Op, ev.T
}

// TestSessionEnds: a session survives a dropped connection and a close code other than 1000
// and 1001, but not a client's close 1000 or 1001, nor SessionTimeout without a connection.
func TestSessionEnds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		timeout time.Duration
		end     func(ws *websocket.Conn)
		resumes bool
	}{
		{"dropped", time.Minute, func(ws *websocket.Conn) { ws.NetConn().Close() }, true},
		{"close 4000", time.Minute, func(ws *websocket.Conn) {
			_ = ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4000, ""))
		}, true},
		{"close 1012", time.Minute, func(ws *websocket.Conn) {
			_ = ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseServiceRestart, ""))
		}, true},
		{"close 1000", time.Minute, func(ws *websocket.Conn) {
			_ = ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
		}, false},
		{"close 1001", time.Minute, func(ws *websocket.Conn) {
			_ = ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, ""))
		}, false},
		{"expired", 20 * time.Millisecond, func(ws *websocket.Conn) {
			ws.NetConn().Close()
			time.Sleep(100 * time.Millisecond) // beyond the timeout
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, Options{SessionTimeout: tc.timeout})
			ws, sid, seq := rawIdentify(t, srv)
			tc.end(ws)
			// The server sees the end before it takes a new connection's RESUME.
			deadline := time.Now().Add(waitTimeout)
			for srv.Connected() != 0 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			op, typ := rawResume(t, srv, sid, seq)
			if resumed := op == 0 && typ == "RESUMED"; resumed != tc.resumes {
				t.Errorf("RESUME answered op %d %s; want resumed %v", op, typ, tc.resumes)
			}
			if !tc.resumes && op != 9 {
				t.Errorf("RESUME answered op %d, want 9 (invalid session)", op)
			}
		})
	}
}

func TestCloseGatewayResumes(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{})
	sess := openSession(t, srv)
	resumed := events[*discordgo.Resumed](sess)
	if n := srv.CloseGateway(4000, "Unknown error."); n != 1 {
		t.Fatalf("CloseGateway closed %d", n)
	}
	wait(t, resumed, "RESUMED after close 4000", nil)
}

func closeCode(err error) int {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return 0
}

func TestOpenFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		opts  Options
		token string
		code  int
	}{
		{"bad token", Options{}, "wrong-token", 4004},
		{"message content not enabled", Options{DenyMessageContent: true}, "", 4014},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, tc.opts)
			sess := newSession(t, srv, tc.token)
			sess.ShouldReconnectOnError = false
			err := sess.Open()
			if code := closeCode(err); code != tc.code {
				t.Fatalf("Open() = %v (close code %d), want close %d", err, code, tc.code)
			}
			if st := srv.Stats(); st.Identifies != 0 {
				t.Errorf("identifies = %d, want 0", st.Identifies)
			}
		})
	}
}

func TestCompressedFramesWithDiscordgo(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{Compress: true, Users: []*discordgo.User{{Username: "alice"}}})
	sess := openSession(t, srv)
	created := events[*discordgo.MessageCreate](sess)
	m := srv.InjectUserMessage(generalID(t, srv), srv.Users()[0].ID, "zipped")
	got := wait(t, created, "MESSAGE_CREATE", func(e *discordgo.MessageCreate) bool { return e.ID == m.ID })
	if got.Content != "zipped" {
		t.Errorf("content = %q", got.Content)
	}
}

// TestCompressedFramesOnTheWire checks the frames themselves: text HELLO, then zlib binary
// frames after an IDENTIFY with compress:true.
func TestCompressedFramesOnTheWire(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{Compress: true})
	ws, _, err := websocket.DefaultDialer.Dial(srv.GatewayURL()+"/?v=9&encoding=json", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(waitTimeout))
	mt, hello, err := ws.ReadMessage()
	if err != nil || mt != websocket.TextMessage || !strings.Contains(string(hello), `"op":10`) {
		t.Fatalf("HELLO = %d %s %v", mt, hello, err)
	}
	identify := `{"op":2,"d":{"token":"Bot ` + srv.Token() + `","compress":true,"intents":33281,"properties":{}}}`
	if err := ws.WriteMessage(websocket.TextMessage, []byte(identify)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"READY", "GUILD_CREATE"} {
		mt, data, err := ws.ReadMessage()
		if err != nil || mt != websocket.BinaryMessage {
			t.Fatalf("%s frame: type %d, %v", want, mt, err)
		}
		zr, err := zlib.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s frame is not zlib: %v", want, err)
		}
		plain, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		var ev struct {
			T string `json:"t"`
			S int64  `json:"s"`
		}
		if err := json.Unmarshal(plain, &ev); err != nil || ev.T != want {
			t.Fatalf("frame = %s (%v), want %s", plain, err, want)
		}
	}
}

func TestGatewayRejectsGarbage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		frame string
		code  int
	}{
		{"not json", "{nope", 4002},
		{"unknown opcode", `{"op":42,"d":null}`, 4001},
		{"presence before identify", `{"op":3,"d":{}}`, 4003},
		{"identify without intents", `{"op":2,"d":{"token":"Bot test-token"}}`, 4013},
	}
	srv := newServer(t, Options{})
	for _, tc := range tests {
		ws, _, err := websocket.DefaultDialer.Dial(srv.GatewayURL()+"/?v=9&encoding=json", nil)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		_ = ws.SetReadDeadline(time.Now().Add(waitTimeout))
		if _, _, err := ws.ReadMessage(); err != nil {
			t.Fatalf("HELLO: %v", err)
		}
		if err := ws.WriteMessage(websocket.TextMessage, []byte(tc.frame)); err != nil {
			t.Fatal(err)
		}
		_, _, err = ws.ReadMessage()
		if code := closeCode(err); code != tc.code {
			t.Errorf("%s: got %v, want close %d", tc.name, err, tc.code)
		}
		ws.Close()
	}
}

func TestMessageContentIntent(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{Users: []*discordgo.User{{Username: "alice"}}})
	sess := newSession(t, srv, "")
	sess.Identify.Intents = discordgo.IntentsGuilds | discordgo.IntentsGuildMessages
	guilds := events[*discordgo.GuildCreate](sess)
	created := events[*discordgo.MessageCreate](sess)
	if err := sess.Open(); err != nil {
		t.Fatalf("Open: %v", err)
	}
	wait(t, guilds, "GUILD_CREATE", nil)
	ch, alice := generalID(t, srv), srv.Users()[0].ID

	plain := srv.InjectUserMessage(ch, alice, "secret", Attachment{Filename: "a.txt", Data: []byte("x")})
	got := wait(t, created, "MESSAGE_CREATE", func(e *discordgo.MessageCreate) bool { return e.ID == plain.ID })
	if got.Content != "" || len(got.Attachments) != 0 {
		t.Errorf("without MessageContent: content %q, %d attachments; want both empty", got.Content, len(got.Attachments))
	}
	mention := srv.InjectUserMessage(ch, alice, "hey <@"+srv.BotID()+">")
	got = wait(t, created, "MESSAGE_CREATE", func(e *discordgo.MessageCreate) bool { return e.ID == mention.ID })
	if got.Content == "" {
		t.Error("a message mentioning the bot lost its content")
	}
	own, err := sess.ChannelMessageSend(ch, "mine")
	if err != nil {
		t.Fatal(err)
	}
	got = wait(t, created, "own MESSAGE_CREATE", func(e *discordgo.MessageCreate) bool { return e.ID == own.ID })
	if got.Content != "mine" {
		t.Errorf("own message content = %q", got.Content)
	}
}

func TestPresenceUpdateRecorded(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{})
	sess := openSession(t, srv)
	if err := sess.UpdateCustomStatus("7/23 online"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitTimeout)
	for len(srv.Presences()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	p := srv.Presences()
	if len(p) != 1 || !strings.Contains(string(p[0]), "7/23 online") {
		t.Fatalf("presences = %s", p)
	}
}

func TestDispatchCustomEvent(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{})
	sess := openSession(t, srv)
	typing := events[*discordgo.TypingStart](sess)
	err := srv.Dispatch("TYPING_START", map[string]any{"channel_id": generalID(t, srv), "user_id": srv.OwnerID(), "timestamp": 1})
	if err != nil {
		t.Fatal(err)
	}
	if e := wait(t, typing, "TYPING_START", nil); e.UserID != srv.OwnerID() {
		t.Errorf("typing user = %s", e.UserID)
	}
	if err := srv.Dispatch("X", func() {}); err == nil {
		t.Error("Dispatch of an unencodable payload succeeded")
	}
}
