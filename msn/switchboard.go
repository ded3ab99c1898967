package msn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// typingInterval is the least time between two typing notifications on one session.
const typingInterval = 4 * time.Second

// sbManager holds the switchboard sessions of a Client. Its maps and every session's mutable
// fields are guarded by Client.mu.
type sbManager struct {
	wg       sync.WaitGroup // session reader goroutines and invitation answerers
	sessions map[*session]struct{}
	opening  map[string]*openCall // outgoing one-to-one sessions being opened, by contact
	chunks   *ChunkAssembler
	seq      int
	// invites are the invitations (RNG) that arrived while logging in. Login answers them once
	// the session is online: a message taken before then could only be held or lost.
	invites []invite
}

// invite is one switchboard invitation: "RNG <sid> <host:port> CKI <cookie> …".
type invite struct{ sid, addr, cookie string }

type openCall struct {
	done chan struct{}
	s    *session
	err  error
}

func (m *sbManager) init() {
	m.sessions = make(map[*session]struct{})
	m.opening = make(map[string]*openCall)
	m.chunks = NewChunkAssembler(0, 0)
}

// MaxSessionMembers bounds the other participants of one switchboard session the client keeps:
// a hostile server could otherwise JOI valid handles without end, each becoming a group member
// on the frontends. MSN clients held conversations of a few people; beyond this, joins are
// ignored, with one warning per session.
const MaxSessionMembers = 50

// session is one switchboard connection.
type session struct {
	c          *Client
	cn         *conn
	id         string
	members    map[string]string // other participants: handle → name
	everMulti  bool              // had more than one other participant at some point
	overfull   bool              // a participant beyond MaxSessionMembers was ignored
	ready      bool              // someone joined (outgoing) or ANS OK (incoming)
	joined     chan struct{}     // closed when ready
	closing    bool
	lastActive time.Time
	lastTyping time.Time
	p2pw       p2pWindow // P2P packets awaiting their ACK (mediaclient.go)
}

// newSession registers a session for nc, unless the client is shutting down or at its session
// limit.
func (c *Client) newSession(nc net.Conn, id string) (*session, error) {
	s := &session{c: c, id: id, members: make(map[string]string), joined: make(chan struct{}), lastActive: time.Now()}
	c.mu.Lock()
	if c.state != stateOnline {
		c.mu.Unlock()
		_ = nc.Close()
		return nil, ErrNotConnected
	}
	var evicted *session
	if c.openSessionsLocked() >= c.cfg.MaxSessions {
		if evicted = c.evictLocked(); evicted == nil {
			c.mu.Unlock()
			_ = nc.Close()
			return nil, fmt.Errorf("too many open sessions (%d): %w", c.cfg.MaxSessions, ErrClosed)
		}
	}
	if evicted != nil {
		defer evicted.close()
	}
	if s.id == "" {
		c.sb.seq++
		s.id = "local-" + strconv.Itoa(c.sb.seq)
	}
	c.sb.sessions[s] = struct{}{}
	c.sb.wg.Add(1)
	s.cn = newConn(nc, ClientPayloads, c.log.With().Str("session", "sb").Logger(), c.cfg.RequestTimeout, s.handle, s.onClosed)
	s.cn.run()
	c.mu.Unlock()
	return s, nil
}

func (s *session) sessionID() string {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.id
}

// participantsLocked returns the other participants, sorted. c.mu must be held.
func (s *session) participantsLocked() []string {
	out := make([]string, 0, len(s.members))
	for h := range s.members {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}

// onClosed runs on the session's reader goroutine when its connection closes.
func (s *session) onClosed(_ *conn, _ error) {
	c := s.c
	c.mu.Lock()
	_, registered := c.sb.sessions[s]
	delete(c.sb.sessions, s)
	wasReady := s.ready
	id := s.id
	c.mu.Unlock()
	if registered && wasReady {
		c.emit(&SessionClosed{SessionID: id})
	}
	c.sb.wg.Done()
}

// openSessionsLocked counts the sessions not being left; c.mu must be held.
func (c *Client) openSessionsLocked() int {
	n := 0
	for s := range c.sb.sessions {
		if !s.closing {
			n++
		}
	}
	return n
}

// evictLocked makes room at MaxSessions: it picks the session that was active least recently
// among those open, joined and with no message awaiting its ACK, and marks it closing so that no
// send picks it; the caller leaves it (close) once c.mu is released. It returns nil when every
// session is busy. A server such as Escargot never closes an idle switchboard, and a contact's
// client keeps one as long as its window is open, so without this an account that had talked to
// MaxSessions contacts would refuse every new conversation. c.mu must be held.
func (c *Client) evictLocked() *session {
	lru := c.idlestLocked()
	if lru != nil {
		lru.closing = true
		c.log.Info().Int("max_sessions", c.cfg.MaxSessions).Msg("Leaving the least recently active switchboard session for a new one")
	}
	return lru
}

// idlestLocked is the session evictLocked would pick, or nil; c.mu must be held.
func (c *Client) idlestLocked() *session {
	var lru *session
	for s := range c.sb.sessions {
		if !s.leavableLocked() {
			continue
		}
		if lru == nil || s.lastActive.Before(lru.lastActive) {
			lru = s
		}
	}
	return lru
}

// leaveIdleSessions leaves the one-to-one sessions without a message either way for
// Config.SessionIdleTimeout, open and joined, with no message awaiting its ACK. A send that
// picked one just before is not lost: a message not yet written when the session closes is sent
// on a new session (errNotSent).
func (c *Client) leaveIdleSessions() {
	if c.cfg.SessionIdleTimeout < 0 {
		return
	}
	now := time.Now()
	var idle []*session
	c.mu.Lock()
	for s := range c.sb.sessions {
		if s.leavableLocked() && !s.everMulti && now.Sub(s.lastActive) >= c.cfg.SessionIdleTimeout {
			s.closing = true
			idle = append(idle, s)
		}
	}
	c.mu.Unlock()
	if len(idle) > 0 {
		c.log.Debug().Int("sessions", len(idle)).Dur("idle_timeout", c.cfg.SessionIdleTimeout).Msg("Leaving idle switchboard sessions")
	}
	for _, s := range idle {
		s.close()
	}
}

// leavableLocked reports whether the session may be left for want of use: open, joined, and
// with no message awaiting its ACK. Client.mu must be held.
func (s *session) leavableLocked() bool { return s.ready && !s.closing && !s.cn.awaiting() }

// close leaves the session: OUT, after which the server closes the connection. Until it does
// (at most RequestTimeout) the session goes on reading: a message the server relayed before it
// took the OUT is still received, where closing the socket at once would discard it unseen by
// anyone. No send picks a closing session. It does not wait.
func (s *session) close() {
	s.c.mu.Lock()
	s.closing = true
	s.c.mu.Unlock()
	if err := s.cn.send(&Command{Name: "OUT"}); err != nil {
		s.cn.closeWith(nil)
		return
	}
	time.AfterFunc(s.c.cfg.RequestTimeout, func() { s.cn.closeWith(nil) })
}

func (c *Client) closeAllSessions() {
	c.mu.Lock()
	all := make([]*session, 0, len(c.sb.sessions))
	for s := range c.sb.sessions {
		all = append(all, s)
	}
	c.mu.Unlock()
	for _, s := range all {
		s.cn.closeWith(nil)
	}
}

func (c *Client) waitSessions() { c.sb.wg.Wait() }

// handle processes the switchboard's commands that are not replies. Runs on the reader
// goroutine; never blocks for long (the only writes are OUT and invitation refusals).
func (s *session) handle(cmd *Command) {
	c := s.c
	switch cmd.Name {
	case "JOI", "IRO":
		args := cmd.Args
		if cmd.Name == "IRO" {
			if len(args) < 4 {
				return
			}
			args = args[3:] // trid, index, total
		}
		if len(args) == 0 {
			return
		}
		h, ok := c.serverHandle(cmd.Name, args[0])
		if !ok || h == c.handle {
			return
		}
		name := ""
		if len(args) > 1 {
			name = Decode(args[1])
		}
		c.mu.Lock()
		if _, known := s.members[h]; !known && len(s.members) >= MaxSessionMembers {
			first := !s.overfull
			s.overfull = true
			c.mu.Unlock()
			if first {
				c.log.Warn().Int("max", MaxSessionMembers).Msg("Switchboard session has too many participants; ignoring those who join beyond it")
			}
			return
		}
		s.members[h] = name
		if len(s.members) > 1 {
			s.everMulti = true
		}
		if cmd.Name == "JOI" && !s.ready {
			s.ready = true
			close(s.joined)
		}
		s.lastActive = time.Now()
		id := s.id
		c.mu.Unlock()
		c.emit(&ParticipantJoined{SessionID: id, Handle: h, Name: name})
	case "BYE":
		h := normHandle(Decode(cmd.Arg(0)))
		c.mu.Lock()
		name, ok := s.members[h]
		delete(s.members, h)
		empty := len(s.members) == 0
		id := s.id
		c.mu.Unlock()
		if ok {
			c.emit(&ParticipantLeft{SessionID: id, Handle: h, Name: name, TimedOut: cmd.Arg(1) == "1"})
		}
		if empty {
			// The session is useless now; the next message opens a fresh one.
			s.close()
		}
	case "MSG":
		s.handleMSG(cmd)
	case "ACK", "NAK":
		// Late answer to a message that timed out, or to an N message.
		if cmd.Name == "NAK" {
			c.log.Warn().Str("trid", cmd.Arg(0)).Msg("Message not delivered (late NAK)")
		}
	case "OUT":
		s.cn.closeWith(nil)
	default:
		c.log.Debug().Str("command", truncate(cmd.Name, 8)).Msg("Ignoring unknown switchboard command")
	}
}

func (s *session) handleMSG(cmd *Command) {
	c := s.c
	from, ok := c.serverHandle(cmd.Name, cmd.Arg(0))
	if !ok {
		return
	}
	fromName := Decode(cmd.Arg(1))
	m, err := ParseMIME(cmd.Payload)
	if err != nil {
		c.log.Debug().Err(err).Msg("Ignoring malformed switchboard message")
		return
	}
	c.mu.Lock()
	if _, ok := s.members[from]; ok && fromName != "" {
		s.members[from] = fromName
	}
	s.lastActive = time.Now()
	id := s.id
	parts := s.participantsLocked()
	c.mu.Unlock()
	switch kind := ClassifyMessage(m); kind {
	case KindText, KindChunk:
		full, ok := c.sb.chunks.Add(from, m)
		if !ok {
			return
		}
		c.emit(&MessageReceived{SessionID: id, From: from, FromName: fromName, Participants: parts,
			Text: full.Text(), Format: full.Format(), Time: time.Now(), Emoticons: c.takeEmoticons(from)})
	case KindTyping:
		if m.Get("TypingUser") != "" {
			c.emit(&TypingReceived{SessionID: id, From: from})
		}
	case KindNudge:
		c.emit(&NudgeReceived{SessionID: id, From: from})
	case KindP2P:
		s.handleP2P(from, id, m)
	case KindEmoticon:
		s.handleEmoticons(from, m)
	case KindDatacastOther:
		if ParseDatacastID(m) == DatacastWink {
			s.handleWink(from, id, m)
		}
	case KindInvite:
		info, ok := ParseInvite(m)
		if ok && strings.EqualFold(info.Command, "INVITE") && info.Cookie != "" {
			c.log.Info().Str("app", truncate(info.AppName, 64)).Msg("Declining legacy invitation (MSNFTP transfers and other pre-P2P applications are not supported)")
			if err := s.cn.post("MSG", []string{"U"}, NewInviteCancel(info.Cookie)); err != nil {
				c.log.Debug().Err(err).Msg("Failed to decline invitation")
			}
		}
	default:
		// Ink, client caps, keepalives.
		c.log.Trace().Stringer("kind", kind).Str("content_type", truncate(m.ContentType(), 64)).Msg("Ignoring switchboard message")
	}
}

// handleRNG answers an invitation to a switchboard: "RNG <sid> <host:port> CKI <cookie>
// <inviter> <name>". The answer runs on its own goroutine, bounded by JoinTimeout.
func (c *Client) handleRNG(cmd *Command) {
	if len(cmd.Args) < 4 {
		return
	}
	if len(cmd.Args) > 4 {
		if _, ok := c.serverHandle(cmd.Name, cmd.Args[4]); !ok {
			return
		}
	}
	inv := invite{sid: cmd.Args[0], addr: cmd.Args[1], cookie: cmd.Args[3]}
	c.mu.Lock()
	// At the limit an online client makes room (evictLocked) when it answers, in newSession.
	full := c.openSessionsLocked()+len(c.sb.invites) >= c.cfg.MaxSessions && (c.state != stateOnline || c.idlestLocked() == nil)
	switch {
	case full || c.state == stateNew || c.state == stateClosed:
		c.mu.Unlock()
		c.log.Warn().Bool("too_many_sessions", full).Msg("Ignoring switchboard invitation")
		return
	case c.state == stateLoggingIn:
		// Authenticated, still downloading the list: answered when Login completes.
		c.sb.invites = append(c.sb.invites, inv)
		c.mu.Unlock()
		c.log.Debug().Msg("Switchboard invitation during login, answering once logged in")
		return
	}
	c.sb.wg.Add(1)
	c.mu.Unlock()
	go c.answerInvite(inv)
}

// takeInvitesLocked returns the invitations held during login, counted in sb.wg, and forgets
// them; c.mu must be held. The caller starts answerInvite for each.
func (c *Client) takeInvitesLocked() []invite {
	invs := c.sb.invites
	c.sb.invites = nil
	c.sb.wg.Add(len(invs))
	return invs
}

// answerInvite joins the invited session within JoinTimeout; it is counted in sb.wg.
func (c *Client) answerInvite(inv invite) {
	defer c.sb.wg.Done()
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.JoinTimeout)
	defer cancel()
	if err := c.answer(ctx, inv.sid, inv.addr, inv.cookie); err != nil {
		c.log.Warn().Err(err).Msg("Failed to answer switchboard invitation")
	}
}

func (c *Client) answer(ctx context.Context, sid, addr, cookie string) error {
	nc, err := dial(ctx, addr, c.cfg.DialTimeout)
	if err != nil {
		return err
	}
	s, err := c.newSession(nc, sid)
	if err != nil {
		return err
	}
	if _, err := s.cn.call(ctx, c.cfg.RequestTimeout, "ANS", []string{c.handle, cookie, sid}, nil); err != nil {
		s.cn.closeWith(nil)
		return fmt.Errorf("failed to join session: %w", err)
	}
	c.mu.Lock()
	if !s.ready {
		s.ready = true
		close(s.joined)
	}
	c.mu.Unlock()
	return nil
}

// findSessionLocked returns the usable one-to-one session with handle that was active last.
func (c *Client) findSessionLocked(handle string) *session {
	var best *session
	for s := range c.sb.sessions {
		if !s.ready || s.closing || s.everMulti || len(s.members) != 1 {
			continue
		}
		if _, ok := s.members[handle]; !ok {
			continue
		}
		if s.cn.Err() != nil {
			continue
		}
		if best == nil || s.lastActive.After(best.lastActive) {
			best = s
		}
	}
	return best
}

func (c *Client) sessionByID(id string) (*session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateOnline {
		return nil, ErrNotConnected
	}
	for s := range c.sb.sessions {
		if s.id == id && s.ready && !s.closing {
			return s, nil
		}
	}
	return nil, fmt.Errorf("%w: %q", ErrSessionNotFound, truncate(id, 64))
}

// sessionFor returns a usable one-to-one session with handle, opening one when there is none.
// Callers that ask while the session opens wait for it.
func (c *Client) sessionFor(ctx context.Context, handle string) (*session, error) {
	for {
		c.mu.Lock()
		if c.state != stateOnline {
			c.mu.Unlock()
			return nil, ErrNotConnected
		}
		if s := c.findSessionLocked(handle); s != nil {
			c.mu.Unlock()
			return s, nil
		}
		if op := c.sb.opening[handle]; op != nil {
			c.mu.Unlock()
			select {
			case <-op.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if op.err == nil {
				return op.s, nil
			}
			if errors.Is(op.err, context.Canceled) || errors.Is(op.err, context.DeadlineExceeded) {
				continue // the opener gave up; try ourselves
			}
			return nil, op.err
		}
		op := &openCall{done: make(chan struct{})}
		c.sb.opening[handle] = op
		c.mu.Unlock()
		op.s, op.err = c.openSession(ctx, handle)
		c.mu.Lock()
		delete(c.sb.opening, handle)
		c.mu.Unlock()
		close(op.done)
		return op.s, op.err
	}
}

// openSession opens a switchboard and invites handle: XFR SB, USR, CAL, then wait for JOI.
func (c *Client) openSession(ctx context.Context, handle string) (*session, error) {
	ns, err := c.online()
	if err != nil {
		return nil, err
	}
	xfr, err := ns.call(ctx, c.cfg.RequestTimeout, "XFR", []string{"SB"}, nil)
	if err != nil {
		return nil, fmt.Errorf("failed to open switchboard: %w", err)
	}
	addr, cookie := xfr.Arg(2), xfr.Arg(4)
	if xfr.Arg(1) != "SB" || addr == "" || cookie == "" {
		return nil, fmt.Errorf("failed to open switchboard: malformed XFR reply")
	}
	nc, err := dial(ctx, addr, c.cfg.DialTimeout)
	if err != nil {
		return nil, fmt.Errorf("failed to open switchboard: %w", err)
	}
	s, err := c.newSession(nc, "")
	if err != nil {
		return nil, fmt.Errorf("failed to open switchboard: %w", err)
	}
	fail := func(err error) (*session, error) {
		s.close()
		return nil, err
	}
	if _, err := s.cn.call(ctx, c.cfg.RequestTimeout, "USR", []string{c.handle, cookie}, nil); err != nil {
		return fail(fmt.Errorf("failed to authenticate to switchboard: %w", err))
	}
	learnID := func(cal *Command) {
		if sid := cal.Arg(2); sid != "" {
			c.mu.Lock()
			s.id = sid
			c.mu.Unlock()
		}
	}
	if _, err := s.cn.callHook(ctx, c.cfg.RequestTimeout, learnID, "CAL", []string{handle}, nil); err != nil {
		return fail(fmt.Errorf("failed to invite %s: %w", handle, err))
	}
	timer := time.NewTimer(c.cfg.JoinTimeout)
	defer timer.Stop()
	select {
	case <-s.joined:
		return s, nil
	case <-timer.C:
		return fail(fmt.Errorf("%s did not join the session: %w", handle, ErrTimeout))
	case <-s.cn.Closed():
		return fail(fmt.Errorf("switchboard closed before %s joined: %w", handle, ErrClosed))
	case <-ctx.Done():
		return fail(ctx.Err())
	}
}

// sendAcked sends one MSG in mode A and waits for ACK (nil) or NAK (ErrNAK).
func (s *session) sendAcked(ctx context.Context, payload []byte) error {
	reply, err := s.cn.call(ctx, s.c.cfg.AckTimeout, "MSG", []string{"A"}, payload, "ACK", "NAK")
	if err != nil {
		return err
	}
	if reply.Name == "NAK" {
		return ErrNAK
	}
	s.c.mu.Lock()
	s.lastActive = time.Now()
	s.c.mu.Unlock()
	return nil
}

// checkPeer validates a chat peer handle.
func (c *Client) checkPeer(to string) (string, error) {
	h, err := checkContactHandle(to)
	if err != nil {
		return "", err
	}
	if strings.HasPrefix(h, "tel:") {
		return "", fmt.Errorf("%w: cannot chat with phone contact %s", ErrInvalidArgument, h)
	}
	if h == c.handle {
		return "", fmt.Errorf("%w: cannot chat with yourself", ErrInvalidArgument)
	}
	return h, nil
}

// textParts splits text and builds the payloads.
func textParts(text string, format *TextFormat) ([][]byte, error) {
	parts := SplitText(text, TextBodyLimit(format))
	if len(parts) == 0 {
		return nil, &SendError{Parts: 0, Reason: fmt.Errorf("%w: empty message", ErrInvalidArgument)}
	}
	out := make([][]byte, len(parts))
	for i, p := range parts {
		out[i] = NewTextMessage(p, format)
		if len(out[i]) > MaxMSGPayload {
			return nil, &SendError{Part: i, Parts: len(parts), Reason: ErrTooLong}
		}
	}
	return out, nil
}

// SendText sends text to a contact on a one-to-one switchboard session: an open one is reused,
// otherwise one is opened (XFR SB, CAL, wait for the contact to join); concurrent sends while it
// opens wait for it. Long text is split (SplitText, UTF-8 safe) into several messages sent in
// order, each in mode A. It returns nil only when every part was acknowledged, and otherwise a
// *SendError naming the first part that failed, whose Reason is ErrContactOffline (217),
// ErrHidden (913), ErrNAK, ErrTimeout (no ACK within AckTimeout: possibly undelivered),
// ErrClosed, ErrTooLong, ErrNotConnected or another error. A part refused with NAK is retried
// once on a fresh session.
func (c *Client) SendText(ctx context.Context, to, text string, format *TextFormat) error {
	h, err := c.checkPeer(to)
	if err != nil {
		return &SendError{Parts: 1, Reason: err}
	}
	payloads, err := textParts(text, format)
	if err != nil {
		return err
	}
	for i, p := range payloads {
		if err := c.deliver(ctx, h, p); err != nil {
			return &SendError{Part: i, Parts: len(payloads), Reason: err}
		}
	}
	return nil
}

func (c *Client) deliver(ctx context.Context, to string, payload []byte) error {
	for attempt := 0; ; attempt++ {
		s, err := c.sessionFor(ctx, to)
		if err != nil {
			return err
		}
		err = s.sendAcked(ctx, payload)
		if err == nil {
			return nil
		}
		if attempt > 0 {
			return err
		}
		switch {
		case errors.Is(err, ErrNAK):
			s.close()
		case errors.Is(err, errNotSent):
			// The session died before the message was written: safe to resend elsewhere.
		default:
			return err
		}
		c.log.Debug().Err(err).Msg("Retrying message on a new session")
	}
}

// SendGroupText sends text to every participant of the session sessionID (as found in
// MessageReceived, ParticipantJoined…). Same splitting and result contract as SendText; no
// retry on another session (ErrSessionNotFound once it has closed).
func (c *Client) SendGroupText(ctx context.Context, sessionID, text string, format *TextFormat) error {
	payloads, err := textParts(text, format)
	if err != nil {
		return err
	}
	for i, p := range payloads {
		s, err := c.sessionByID(sessionID)
		if err == nil {
			err = s.sendAcked(ctx, p)
		}
		if err != nil {
			return &SendError{Part: i, Parts: len(payloads), Reason: err}
		}
	}
	return nil
}

// SendTyping sends a typing notification to a contact. It is best effort: it is sent only on an
// already open one-to-one session (it never opens one), at most once per 4 s per session, and
// returns nil when skipped.
func (c *Client) SendTyping(ctx context.Context, to string) error {
	h, err := c.checkPeer(to)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.state != stateOnline {
		c.mu.Unlock()
		return ErrNotConnected
	}
	s := c.findSessionLocked(h)
	if s == nil || time.Since(s.lastTyping) < typingInterval {
		c.mu.Unlock()
		return nil
	}
	s.lastTyping = time.Now()
	c.mu.Unlock()
	if err := s.cn.post("MSG", []string{"U"}, NewTypingMessage(c.handle)); err != nil {
		return fmt.Errorf("failed to send typing notification: %w", err)
	}
	return nil
}

// SendNudge sends a nudge to a contact, opening a session when needed. Nudges go in mode N:
// nil means written to the switchboard, not confirmed delivered.
func (c *Client) SendNudge(ctx context.Context, to string) error {
	h, err := c.checkPeer(to)
	if err != nil {
		return err
	}
	s, err := c.sessionFor(ctx, h)
	if err != nil {
		return fmt.Errorf("failed to send nudge: %w", err)
	}
	if err := s.cn.post("MSG", []string{"N"}, NewNudgeMessage()); err != nil {
		return fmt.Errorf("failed to send nudge: %w", err)
	}
	return nil
}

// InviteToSession invites handle into the session sessionID (CAL). It returns once the server
// rings the contact; the contact's ParticipantJoined follows if they accept.
func (c *Client) InviteToSession(ctx context.Context, sessionID, handle string) error {
	h, err := c.checkPeer(handle)
	if err != nil {
		return err
	}
	s, err := c.sessionByID(sessionID)
	if err != nil {
		return err
	}
	if _, err := s.cn.call(ctx, c.cfg.RequestTimeout, "CAL", []string{h}, nil); err != nil {
		return fmt.Errorf("failed to invite %s: %w", h, err)
	}
	c.mu.Lock()
	s.everMulti = true
	c.mu.Unlock()
	return nil
}

// LeaveSession leaves the session sessionID (OUT) and closes it; SessionClosed follows.
func (c *Client) LeaveSession(ctx context.Context, sessionID string) error {
	s, err := c.sessionByID(sessionID)
	if err != nil {
		return err
	}
	s.close()
	return nil
}

// Sessions returns the ids of the open sessions and their other participants.
func (c *Client) Sessions() map[string][]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string][]string, len(c.sb.sessions))
	for s := range c.sb.sessions {
		if s.ready {
			out[s.id] = s.participantsLocked()
		}
	}
	return out
}
