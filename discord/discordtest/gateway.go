package discordtest

import (
	"bytes"
	"compress/zlib"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/gorilla/websocket"
)

// Gateway limits.
const (
	maxGatewayPayload = 4096 // bytes per client payload; larger ones are closed with 4002
	gatewaySendLimit  = 120  // client events per minute, heartbeats excluded; then 4008
	resumeBuffer      = 1000 // dispatches kept per session for RESUME
	maxSessions       = 16   // sessions kept; the oldest disconnected ones go first
	outQueue          = 4096 // frames queued per connection before it is dropped as too slow
)

// Gateway close codes Discord uses.
const (
	closeUnknownError      = 4000
	closeUnknownOpcode     = 4001
	closeDecodeError       = 4002
	closeNotAuthenticated  = 4003
	closeAuthFailed        = 4004
	closeAlreadyAuthed     = 4005
	closeInvalidSeq        = 4007
	closeRateLimited       = 4008
	closeInvalidAPIVersion = 4012
	closeInvalidIntents    = 4013
	closeDisallowedIntents = 4014
)

// gwSession is a gateway session: what RESUME continues. Guarded by Server.mu.
type gwSession struct {
	id       string
	intents  discordgo.Intent
	compress bool
	seq      int64
	buf      []gwFrame
	conn     *gwConn
	created  time.Time
	left     time.Time // when its last connection ended; zero while connected
}

type gwFrame struct {
	seq  int64
	data []byte
}

// gwConn is one websocket connection. Its fields below mu are guarded by Server.mu.
type gwConn struct {
	s        *Server
	ws       *websocket.Conn
	out      chan outFrame
	done     chan struct{}
	readDone chan struct{}
	once     sync.Once

	sess       *gwSession
	identified bool
	compress   bool
	closing    bool
	sends      []time.Time
}

type outFrame struct {
	data      []byte
	compress  bool
	closeCode int
	closeText string
}

var upgrader = websocket.Upgrader{
	ReadBufferSize:  4096,
	WriteBufferSize: 4096,
	CheckOrigin:     func(*http.Request) bool { return true },
}

// serveGateway runs one gateway connection: HELLO, then IDENTIFY or RESUME, heartbeats and the
// other client ops until either side closes.
func (s *Server) serveGateway(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	select {
	case <-s.closed:
		s.mu.Unlock()
		http.Error(w, "server closed", http.StatusServiceUnavailable)
		return
	default:
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	ws.SetReadLimit(maxGatewayPayload)
	c := &gwConn{s: s, ws: ws, out: make(chan outFrame, outQueue), done: make(chan struct{}), readDone: make(chan struct{})}
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.stats.Connections++
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		c.writer()
	}()
	q := r.URL.Query()
	switch {
	case q.Get("v") != "" && q.Get("v") != "9" && q.Get("v") != "10":
		c.closeWith(closeInvalidAPIVersion, "Invalid API version.")
	case q.Get("encoding") != "" && q.Get("encoding") != "json":
		c.closeWith(closeDecodeError, "Error while decoding payload.")
	default:
		c.sendOp(10, map[string]int64{"heartbeat_interval": s.opts.HeartbeatInterval.Milliseconds()})
	}
	s.mu.Unlock()

	err = c.readLoop()

	close(c.readDone)
	s.mu.Lock()
	if c.sess != nil && c.sess.conn == c {
		c.sess.conn = nil
		c.sess.left = time.Now()
		// A client that closes with 1000 or 1001 ends its session, as on Discord: the next
		// connection must IDENTIFY, and what happened in between is not replayed. A close
		// frame answering one of ours leaves the session as that close code says.
		if !c.closing && websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) {
			delete(s.sessions, c.sess.id)
			s.stats.Invalidated++
		}
	}
	delete(s.conns, c)
	s.mu.Unlock()
	c.kill()
}

// readLoop reads client payloads until the connection fails, and returns the read error.
func (c *gwConn) readLoop() error {
	s := c.s
	for {
		mt, data, err := c.ws.ReadMessage()
		if err != nil {
			return err
		}
		var p struct {
			Op *int            `json:"op"`
			D  json.RawMessage `json:"d"`
		}
		s.mu.Lock()
		if c.closing {
			s.mu.Unlock()
			continue
		}
		if mt != websocket.TextMessage || json.Unmarshal(data, &p) != nil || p.Op == nil {
			c.closeWith(closeDecodeError, "Error while decoding payload.")
			s.mu.Unlock()
			continue
		}
		if *p.Op != 1 && !c.countSend() {
			c.closeWith(closeRateLimited, "Rate limited.")
			s.mu.Unlock()
			continue
		}
		switch *p.Op {
		case 1:
			s.stats.Heartbeats++
			if !s.noAck {
				s.stats.Acks++
				c.sendOp(11, nil)
			}
		case 2, 6:
			if s.mute {
				s.stats.Unanswered++
				break
			}
			if *p.Op == 2 {
				c.identify(p.D)
			} else {
				c.resume(p.D)
			}
		case 3, 4, 8:
			if !c.identified {
				c.closeWith(closeNotAuthenticated, "Not authenticated.")
				break
			}
			switch *p.Op {
			case 3:
				s.presences = append(s.presences, append(json.RawMessage(nil), p.D...))
			case 8:
				c.membersChunk(p.D)
			}
		default:
			c.closeWith(closeUnknownOpcode, "Unknown opcode.")
		}
		s.mu.Unlock()
	}
}

// countSend applies the 120-per-minute limit on client events. The caller holds s.mu.
func (c *gwConn) countSend() bool {
	now := time.Now()
	keep := c.sends[:0]
	for _, t := range c.sends {
		if now.Sub(t) < time.Minute {
			keep = append(keep, t)
		}
	}
	c.sends = append(keep, now)
	return len(c.sends) <= gatewaySendLimit
}

// identify handles op 2. The caller holds s.mu.
func (c *gwConn) identify(raw json.RawMessage) {
	s := c.s
	var id struct {
		Token    string `json:"token"`
		Intents  *int64 `json:"intents"`
		Compress bool   `json:"compress"`
	}
	if json.Unmarshal(raw, &id) != nil {
		c.closeWith(closeDecodeError, "Error while decoding payload.")
		return
	}
	if c.identified {
		c.closeWith(closeAlreadyAuthed, "Already authenticated.")
		return
	}
	if strings.TrimPrefix(id.Token, "Bot ") != s.opts.Token {
		c.closeWith(closeAuthFailed, "Authentication failed.")
		return
	}
	if id.Intents == nil || *id.Intents < 0 || *id.Intents >= 1<<26 {
		c.closeWith(closeInvalidIntents, "Invalid intent(s).")
		return
	}
	intents := discordgo.Intent(*id.Intents)
	allowed := discordgo.Intent(0)
	if !s.opts.DenyMessageContent {
		allowed |= discordgo.IntentMessageContent
	}
	if s.opts.AllowGuildMembers {
		allowed |= discordgo.IntentsGuildMembers
	}
	if s.opts.AllowGuildPresences {
		allowed |= discordgo.IntentsGuildPresences
	}
	if intents&privilegedIntents&^allowed != 0 {
		c.closeWith(closeDisallowedIntents, "Disallowed intent(s).")
		return
	}
	if c.sess != nil {
		delete(s.sessions, c.sess.id)
		c.sess.conn = nil
	}
	sess := &gwSession{id: randomToken(16), intents: intents, compress: id.Compress && s.opts.Compress, conn: c, created: time.Now()}
	s.pruneSessions()
	s.sessions[sess.id] = sess
	c.sess = sess
	c.identified = true
	c.compress = sess.compress
	s.stats.Identifies++
	bot := *s.users[s.opts.BotID]
	s.sessDispatch(sess, "READY", map[string]any{
		"v":                  9,
		"session_id":         sess.id,
		"session_type":       "normal",
		"user":               &bot,
		"guilds":             []map[string]any{{"id": s.guild.id, "unavailable": true}},
		"application":        map[string]any{"id": s.opts.ApplicationID, "flags": 0},
		"private_channels":   []any{},
		"relationships":      []any{},
		"presences":          []any{},
		"shard":              []int{0, 1},
		"resume_gateway_url": s.GatewayURL(),
	})
	if intents&discordgo.IntentsGuilds != 0 {
		s.sessDispatch(sess, "GUILD_CREATE", s.guildObject(true))
	}
}

// expireSessions forgets the sessions that have had no connection for longer than
// Options.SessionTimeout: as on Discord, they can no longer be resumed and keep no dispatches.
// The caller holds s.mu.
func (s *Server) expireSessions() {
	now := time.Now()
	for id, ss := range s.sessions {
		if ss.conn == nil && !ss.left.IsZero() && now.Sub(ss.left) > s.opts.SessionTimeout {
			delete(s.sessions, id)
			s.stats.Expired++
		}
	}
}

// pruneSessions drops the oldest disconnected sessions beyond maxSessions. The caller holds s.mu.
func (s *Server) pruneSessions() {
	for len(s.sessions) >= maxSessions {
		var oldest *gwSession
		for _, ss := range s.sessions {
			if ss.conn == nil && (oldest == nil || ss.created.Before(oldest.created)) {
				oldest = ss
			}
		}
		if oldest == nil {
			return
		}
		delete(s.sessions, oldest.id)
	}
}

// resume handles op 6: a known session with a sequence still buffered gets the missed dispatches
// and RESUMED; an unknown or too old one gets op 9 (not resumable), a sequence from the future
// 4007. The caller holds s.mu.
func (c *gwConn) resume(raw json.RawMessage) {
	s := c.s
	var r struct {
		Token     string `json:"token"`
		SessionID string `json:"session_id"`
		Seq       int64  `json:"seq"`
	}
	if json.Unmarshal(raw, &r) != nil {
		c.closeWith(closeDecodeError, "Error while decoding payload.")
		return
	}
	if c.identified {
		c.closeWith(closeAlreadyAuthed, "Already authenticated.")
		return
	}
	if strings.TrimPrefix(r.Token, "Bot ") != s.opts.Token {
		c.closeWith(closeAuthFailed, "Authentication failed.")
		return
	}
	s.expireSessions()
	sess, ok := s.sessions[r.SessionID]
	if ok && r.Seq > sess.seq {
		c.closeWith(closeInvalidSeq, "Invalid seq.")
		return
	}
	if !ok || len(sess.buf) > 0 && r.Seq < sess.buf[0].seq-1 {
		if ok {
			delete(s.sessions, sess.id)
			if sess.conn != nil {
				sess.conn.sess = nil
			}
		}
		c.sendOp(9, false)
		return
	}
	if old := sess.conn; old != nil && old != c {
		old.sess = nil
		old.closeWith(closeUnknownError, "Session resumed elsewhere.")
	}
	sess.conn = c
	c.sess = sess
	c.identified = true
	c.compress = sess.compress
	s.stats.Resumes++
	for _, f := range sess.buf {
		if f.seq > r.Seq {
			c.send(f.data, sess.compress)
		}
	}
	s.sessDispatch(sess, "RESUMED", map[string]any{"_trace": []string{"discordtest"}})
}

// membersChunk answers op 8 with every member in one GUILD_MEMBERS_CHUNK. The caller holds s.mu.
func (c *gwConn) membersChunk(raw json.RawMessage) {
	s := c.s
	var req struct {
		Nonce string `json:"nonce"`
	}
	_ = json.Unmarshal(raw, &req)
	members := []map[string]any{}
	for _, id := range s.memberIDs() {
		members = append(members, s.memberObject(id, true))
	}
	if c.sess != nil {
		s.sessDispatch(c.sess, "GUILD_MEMBERS_CHUNK", map[string]any{
			"guild_id": s.guild.id, "members": members, "chunk_index": 0, "chunk_count": 1, "nonce": req.Nonce,
		})
	}
}

// sessDispatch gives a dispatch the session's next sequence number, keeps it for RESUME and
// queues it on the session's connection, if any. The caller holds s.mu.
func (s *Server) sessDispatch(sess *gwSession, t string, d any) {
	body, err := json.Marshal(d)
	if err != nil {
		return
	}
	sess.seq++
	frame, err := json.Marshal(struct {
		Op int             `json:"op"`
		S  int64           `json:"s"`
		T  string          `json:"t"`
		D  json.RawMessage `json:"d"`
	}{0, sess.seq, t, body})
	if err != nil {
		return
	}
	sess.buf = append(sess.buf, gwFrame{seq: sess.seq, data: frame})
	if len(sess.buf) > resumeBuffer {
		sess.buf = append([]gwFrame(nil), sess.buf[len(sess.buf)-resumeBuffer:]...)
	}
	s.stats.Dispatches++
	if sess.conn != nil {
		sess.conn.send(frame, sess.compress)
	}
}

// emitRaw dispatches t to every session subscribed to need (0: every session), with the payload
// d builds for the session's intents. The caller holds s.mu.
func (s *Server) emitRaw(t string, need discordgo.Intent, d func(intents discordgo.Intent) any) {
	s.expireSessions()
	for _, sess := range s.sessions {
		if need != 0 && sess.intents&need == 0 {
			continue
		}
		s.sessDispatch(sess, t, d(sess.intents))
	}
}

// emit dispatches t with payload d to every session subscribed to need. The caller holds s.mu.
func (s *Server) emit(t string, need discordgo.Intent, d any) {
	s.emitRaw(t, need, func(discordgo.Intent) any { return d })
}

// emitMessage dispatches MESSAGE_CREATE or MESSAGE_UPDATE: with member for non-webhook authors,
// and with content, embeds, attachments and components blanked for sessions without the
// MessageContent intent unless the bot wrote or is mentioned in it. The caller holds s.mu.
func (s *Server) emitMessage(t string, m *discordgo.Message) {
	full := s.gatewayMessage(m)
	var blank json.RawMessage
	s.emitRaw(t, discordgo.IntentsGuildMessages, func(intents discordgo.Intent) any {
		if intents&discordgo.IntentMessageContent != 0 {
			return full
		}
		if blank == nil {
			blank = s.gatewayMessage(s.blanked(m))
		}
		return blank
	})
}

// gatewayMessage encodes m as a gateway message event carries it. The caller holds s.mu.
func (s *Server) gatewayMessage(m *discordgo.Message) json.RawMessage {
	b, err := marshalMessage(m)
	if err != nil || m.WebhookID != "" || m.Author == nil {
		return b
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(b, &obj) != nil {
		return b
	}
	mem, err := json.Marshal(s.memberObject(m.Author.ID, false))
	if err != nil {
		return b
	}
	obj["member"] = mem
	out, err := json.Marshal(obj)
	if err != nil {
		return b
	}
	return out
}

// blanked returns m as an application without the MessageContent intent sees it. The caller
// holds s.mu.
func (s *Server) blanked(m *discordgo.Message) *discordgo.Message {
	if m.Author != nil && m.Author.ID == s.opts.BotID {
		return m
	}
	for _, u := range m.Mentions {
		if u.ID == s.opts.BotID {
			return m
		}
	}
	c := *m
	c.Content = ""
	c.Embeds = []*discordgo.MessageEmbed{}
	c.Attachments = []*discordgo.MessageAttachment{}
	c.Components = nil
	return &c
}

// sendOp queues a non-dispatch op. The caller holds s.mu.
func (c *gwConn) sendOp(op int, d any) {
	b, err := json.Marshal(struct {
		Op int `json:"op"`
		D  any `json:"d"`
	}{op, d})
	if err != nil {
		return
	}
	c.send(b, c.compress)
}

// send queues a frame; a connection whose queue is full is dropped. The caller holds s.mu.
func (c *gwConn) send(b []byte, compress bool) {
	if c.closing {
		return
	}
	select {
	case c.out <- outFrame{data: b, compress: compress}:
	default:
		c.closing = true
		c.kill()
	}
}

// closeWith queues a close frame with code; the connection ends once the client closed too, or
// after two seconds. The caller holds s.mu.
func (c *gwConn) closeWith(code int, text string) {
	if c.closing {
		return
	}
	select {
	case c.out <- outFrame{closeCode: code, closeText: text}:
		c.closing = true
	default:
		c.closing = true
		c.kill()
	}
}

// writer writes queued frames in order until the connection ends.
func (c *gwConn) writer() {
	for {
		select {
		case <-c.done:
			return
		case f := <-c.out:
			_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if f.closeCode != 0 {
				_ = c.ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(f.closeCode, f.closeText))
				select {
				case <-c.readDone:
				case <-c.done:
				case <-time.After(2 * time.Second):
				}
				c.kill()
				return
			}
			var err error
			if f.compress {
				var buf bytes.Buffer
				zw := zlib.NewWriter(&buf)
				_, _ = zw.Write(f.data)
				_ = zw.Close()
				err = c.ws.WriteMessage(websocket.BinaryMessage, buf.Bytes())
			} else {
				err = c.ws.WriteMessage(websocket.TextMessage, f.data)
			}
			if err != nil {
				c.kill()
				return
			}
		}
	}
}

// kill closes the socket at once, without a close frame. Safe to call more than once.
func (c *gwConn) kill() {
	c.once.Do(func() {
		close(c.done)
		_ = c.ws.NetConn().Close()
	})
}

// DropGateway cuts every gateway connection without a close frame, as a network failure would.
// The sessions stay resumable for Options.SessionTimeout: dispatches meanwhile are kept and
// replayed on RESUME. It returns the number of connections cut.
func (s *Server) DropGateway() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c := range s.conns {
		if c.sess != nil && c.sess.conn == c {
			c.sess.conn = nil
			c.sess.left = time.Now()
		}
		c.sess = nil
		c.closing = true
		c.kill()
		n++
	}
	return n
}

// CloseGateway closes every gateway connection with a close frame carrying code (4000 unknown
// error, 4009 session timed out, …). Sessions stay resumable for Options.SessionTimeout. It
// returns the number of connections closed.
func (s *Server) CloseGateway(code int, reason string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c := range s.conns {
		if c.sess != nil && c.sess.conn == c {
			c.sess.conn = nil
			c.sess.left = time.Now()
		}
		c.sess = nil
		c.closeWith(code, reason)
		n++
	}
	return n
}

// SendOp sends op with payload d to every connected client, for example 7 (reconnect) or 9
// (invalid session; d false also forgets the session, so RESUME fails and the client
// re-identifies). It fails when d cannot be encoded.
func (s *Server) SendOp(op int, d any) error {
	if _, err := json.Marshal(d); err != nil {
		return fmt.Errorf("failed to encode op %d payload: %w", op, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if op == 9 {
			c.identified = false
			if resumable, _ := d.(bool); !resumable && c.sess != nil {
				delete(s.sessions, c.sess.id)
				c.sess.conn = nil
				c.sess = nil
			}
		}
		c.sendOp(op, d)
	}
	return nil
}

// SetNoAck stops (true) or resumes (false) answering heartbeats with op 11. After five missed
// acknowledgements discordgo closes with 1000, which ends its session, so it reconnects with a
// RESUME that is refused (op 9) and IDENTIFYs afresh: the dispatches in between are lost.
func (s *Server) SetNoAck(noAck bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noAck = noAck
}

// SetMute makes the gateway leave IDENTIFY and RESUME unanswered (true), as a gateway node
// that accepts connections and then hangs, or answer them again (false). Heartbeats are still
// acknowledged. Stats().Unanswered counts the ones left.
func (s *Server) SetMute(mute bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mute = mute
}

// Dispatch sends a dispatch (op 0) of type t with payload d to every session, whatever its
// intents; sessions without a connection keep it for RESUME. It fails when d cannot be encoded.
func (s *Server) Dispatch(t string, d any) error {
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("failed to encode %s payload: %w", t, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.emit(t, 0, json.RawMessage(b))
	return nil
}

// Connected reports how many gateway sessions have a live, identified connection.
func (s *Server) Connected() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, sess := range s.sessions {
		if sess.conn != nil && sess.conn.identified {
			n++
		}
	}
	return n
}
