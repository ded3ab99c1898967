package msntest

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/msn-bridge/msn-bridge/msn"
)

// BotMessage is a switchboard message delivered to a bot.
type BotMessage struct {
	From        string // sender handle
	Mode        string // U, N, A or D
	ContentType string // lower-cased, without parameters ("text/plain")
	Header      map[string]string
	Body        string
	Payload     []byte // the raw MIME payload
}

// IsText reports whether the message is a text message.
func (m BotMessage) IsText() bool { return m.ContentType == "text/plain" }

// IsTyping reports whether the message is a typing notification.
func (m BotMessage) IsTyping() bool { return m.ContentType == "text/x-msmsgscontrol" }

// IsNudge reports whether the message is a nudge.
func (m BotMessage) IsNudge() bool {
	return m.ContentType == "text/x-msnmsgr-datacast" && strings.Contains(m.Body, "ID: 1")
}

// BotFunc is a bot's behaviour: it is called once per message a user sends into a switchboard
// the bot is in (except P2P packets, which the bot's P2P engine takes: botp2p.go), on the sender's connection goroutine after the server's lock is released, in
// message order. It may reply through chat and must not block for long (it delays the sender's
// next command). ctx ends when the server closes.
type BotFunc func(ctx context.Context, chat *BotChat, msg BotMessage)

// EchoBot answers every text message with the same text, and a nudge with a nudge.
func EchoBot(_ context.Context, chat *BotChat, msg BotMessage) {
	switch {
	case msg.IsText():
		_ = chat.Say(msg.Body)
	case msg.IsNudge():
		_ = chat.Nudge()
	}
}

// BotChat is a bot's handle on one switchboard session.
type BotChat struct {
	s    *Server
	bot  *account
	sess *sbSession
}

// Bot returns the bot's handle.
func (c *BotChat) Bot() string { return c.bot.handle }

// SessionID returns the switchboard session id.
func (c *BotChat) SessionID() string { return c.sess.id }

// Members returns the handles in the session, the bot included.
func (c *BotChat) Members() []string {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	out := make([]string, 0, len(c.sess.members))
	for _, m := range c.sess.members {
		out = append(out, m.acct.handle)
	}
	return out
}

// Say sends a text message to the session.
func (c *BotChat) Say(text string) error { return c.Send(textPayload(text)) }

// Typing sends a typing notification.
func (c *BotChat) Typing() error { return c.Send(typingPayload(c.bot.handle)) }

// Nudge sends a nudge.
func (c *BotChat) Nudge() error { return c.Send(nudgePayload()) }

// Send sends a raw MIME payload. It fails when the bot is no longer in the session, or the
// session has ended (its last user left): nobody would ever read it there.
func (c *BotChat) Send(payload []byte) error {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if c.sess.member(c.bot.handle) < 0 || c.s.sessions[c.sess.id] != c.sess {
		return fmt.Errorf("failed to send as %s: %w", c.bot.handle, ErrNotOnline)
	}
	return c.s.botSendLocked(c.bot, c.sess, payload)
}

// Leave takes the bot out of the session (BYE to the others).
func (c *BotChat) Leave() {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if i := c.sess.member(c.bot.handle); i >= 0 {
		c.sess.members = append(c.sess.members[:i], c.sess.members[i+1:]...)
		c.sess.broadcast(&msn.Command{Name: "BYE", Args: []string{c.bot.handle}}, "")
	}
}

func textPayload(text string) []byte {
	text = strings.ReplaceAll(strings.ReplaceAll(text, "\r\n", "\n"), "\n", "\r\n")
	return []byte("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n" +
		"X-MMS-IM-Format: FN=Segoe%20UI; EF=; CO=0; CS=0; PF=0\r\n\r\n" + text)
}

func typingPayload(handle string) []byte {
	return []byte("MIME-Version: 1.0\r\nContent-Type: text/x-msmsgscontrol\r\nTypingUser: " + handle + "\r\n\r\n\r\n")
}

func nudgePayload() []byte {
	return []byte("MIME-Version: 1.0\r\nContent-Type: text/x-msnmsgr-datacast\r\n\r\nID: 1\r\n\r\n")
}

// botSendLocked relays a bot's payload to the connected members, or queues it until one joins;
// it fails when maxBotQueue messages wait already. Callers hold s.mu.
func (s *Server) botSendLocked(bot *account, ss *sbSession, payload []byte) error {
	if !ss.hasHuman() {
		if len(ss.queue) >= maxBotQueue {
			return fmt.Errorf("failed to send as %s: %w", bot.handle, ErrNotAnswered)
		}
		ss.queue = append(ss.queue, queued{from: bot, payload: payload})
		return nil
	}
	ss.broadcast(&msn.Command{Name: "MSG", Args: []string{bot.handle, escapeParam(bot.name)}, Payload: payload}, bot.handle)
	return nil
}

// deliverToBots runs bot behaviours; s.mu must not be held.
func (s *Server) deliverToBots(ds []botDelivery) {
	for _, d := range ds {
		if s.ctx.Err() != nil {
			return
		}
		if d.p2p != nil {
			d.p2p.Deliver(d.from, d.bin)
			continue
		}
		d.fn(s.ctx, d.chat, d.msg)
	}
}

// AddBot creates a socketless account that is online (NLN) and runs behaviour for every
// message sent to it in a switchboard. A nil behaviour makes a bot that joins and stays silent.
func (s *Server) AddBot(handle, password, name string, behaviour BotFunc) error {
	if err := s.AddAccount(handle, password, name); err != nil {
		return err
	}
	if err := s.setBot(handle, behaviour); err != nil {
		return err
	}
	return s.SetPresence(handle, "NLN", "")
}

func (s *Server) setBot(handle string, fn BotFunc) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.lookup(handle)
	if err != nil {
		return err
	}
	a.bot, a.botSet = fn, true
	return nil
}

// SetPresence sets the status ("NLN", "AWY", …, "HDN", or "FLN"/"" for offline) and PSM of an
// account without a live session (a bot or a scripted contact), and tells its watchers with
// NLN/FLN and UBX. It fails with ErrHasSession when a client is logged in as handle.
func (s *Server) SetPresence(handle, status, psm string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.lookup(handle)
	if err != nil {
		return err
	}
	if a.ns != nil {
		return fmt.Errorf("failed to set presence of %s: %w", handle, ErrHasSession)
	}
	if status == "FLN" {
		status = ""
	}
	if status != "" && !validStatus[status] {
		return fmt.Errorf("failed to set presence of %s: invalid status %q", handle, status)
	}
	if a.virtCaps == 0 {
		a.virtCaps = defaultCaps
	}
	wasOnline := a.online()
	psmChanged := psm != a.psm || !a.psmSet
	a.virtStatus = status
	a.psm, a.psmSet = psm, true
	if a.online() || wasOnline {
		s.broadcastPresence(a, !wasOnline)
	}
	if wasOnline && a.online() && psmChanged {
		s.broadcastUBX(a)
	}
	return nil
}

// SetPSM changes an account's PSM. For a logged-in user it is what a UUX would do; for a
// socketless account it keeps the status. Watchers get UBX.
func (s *Server) SetPSM(handle, psm string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.lookup(handle)
	if err != nil {
		return err
	}
	a.psm, a.psmSet = psm, true
	s.broadcastUBX(a)
	return nil
}

// SetFriendlyName changes an account's friendly name; watchers get NLN when it is online.
func (s *Server) SetFriendlyName(handle, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.lookup(handle)
	if err != nil {
		return err
	}
	a.name = name
	if a.online() {
		s.broadcastPresence(a, false)
	}
	return nil
}

// BotSay makes the socketless account from send text to the logged-in user to: over their
// shared switchboard if there is one, else a new one to which to is invited with RNG (the
// message waits until to answers; if the login rung ends first, it is dropped and listed by
// Undelivered). It fails when from is offline, to is not logged in, or maxBotQueue messages
// wait for to's answer already.
func (s *Server) BotSay(from, to, text string) error { return s.botSend(from, to, textPayload(text)) }

// BotTyping sends a typing notification from a socketless account, as BotSay does.
func (s *Server) BotTyping(from, to string) error {
	h, _ := normHandle(from)
	return s.botSend(from, to, typingPayload(h))
}

// BotSendRaw sends a raw MIME payload from a socketless account, as BotSay does: a way to
// put arbitrary (hostile) messages, P2P packets included, in front of a client.
func (s *Server) BotSendRaw(from, to string, payload []byte) error {
	return s.botSend(from, to, payload)
}

// BotNudge sends a nudge from a socketless account, as BotSay does.
func (s *Server) BotNudge(from, to string) error { return s.botSend(from, to, nudgePayload()) }

func (s *Server) botSend(from, to string, payload []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	bot, err := s.lookup(from)
	if err != nil {
		return err
	}
	user, err := s.lookup(to)
	if err != nil {
		return err
	}
	if bot.ns != nil {
		return fmt.Errorf("failed to send as %s: %w", from, ErrHasSession)
	}
	if !bot.online() {
		return fmt.Errorf("failed to send as %s: %w", from, ErrNotOnline)
	}
	if user.ns == nil {
		return fmt.Errorf("failed to reach %s: %w", to, ErrNotOnline)
	}
	// Prefer a live one-to-one session of the two, then one still waiting for to's ANS.
	ss := s.botSessionLocked(bot.handle, user.handle)
	if ss == nil {
		for _, x := range s.sessions {
			if x.member(bot.handle) >= 0 && len(x.members) == 1 && !x.hasHuman() && x.queue != nil && x.invited == user.handle {
				ss = x
			}
		}
	}
	if ss == nil {
		ss = s.newSession()
		ss.members = append(ss.members, sbMember{acct: bot})
		ss.invited = user.handle
		ss.cookie = s.newSBTicket(user.handle, ss.id)
		ss.rung = user.ns
		if user.ns.rang == nil {
			user.ns.rang = map[*sbSession]struct{}{}
		}
		user.ns.rang[ss] = struct{}{}
		user.ns.sendLine("RNG", ss.id, s.SBAddr(), "CKI", ss.cookie, bot.handle, escapeParam(bot.name))
	}
	return s.botSendLocked(bot, ss, payload)
}

// botSessionLocked returns the live one-to-one session of bot and user, the oldest when there
// are several, so that consecutive messages (P2P packets above all) keep their order. Callers
// hold s.mu.
func (s *Server) botSessionLocked(bot, user string) *sbSession {
	var best *sbSession
	for _, x := range s.sessions {
		if x.member(bot) < 0 || len(x.members) != 2 {
			continue
		}
		if i := x.member(user); i >= 0 && x.members[i].conn != nil {
			if best == nil || x.created.Before(best.created) || x.created.Equal(best.created) && x.id < best.id {
				best = x
			}
		}
	}
	return best
}

// Undelivered is a message a socketless account sent (BotSay, BotTyping, BotNudge) that the
// server held for a switchboard invitation and dropped unsent, because the login it rang ended
// before answering. It is how the sender learns: a real contact's client, whose invitee never
// joins, tells its user the message was not delivered.
type Undelivered struct {
	Time    time.Time
	From    string // the sender (bot) handle
	To      string // the invited user
	Payload []byte // the raw MIME payload
}

// Body returns the payload's body (the text of a text message).
func (u Undelivered) Body() string {
	_, _, body := parseMIME(u.Payload)
	return body
}

// Undelivered returns the bot messages dropped unsent so far, oldest first (at most the last
// maxUndelivered).
func (s *Server) Undelivered() []Undelivered {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Undelivered(nil), s.undelivered...)
}

// dropInvitations ends the bot-opened sessions still waiting for n to answer their invitation,
// now that n's login has ended: the RNG can no longer be answered, and a later message must not
// wait behind it for an answer that never comes. Their held messages are recorded as
// undelivered. Callers hold s.mu.
func (s *Server) dropInvitations(n *nsSession) {
	now := time.Now()
	for ss := range n.rang {
		if ss.rung == n && !ss.hasHuman() && s.sessions[ss.id] == ss {
			delete(s.sessions, ss.id)
			delete(s.sbAuth, ss.cookie)
			for _, q := range ss.queue {
				if len(s.undelivered) >= maxUndelivered {
					s.undelivered = append(s.undelivered[:0], s.undelivered[len(s.undelivered)-maxUndelivered/2:]...)
				}
				s.undelivered = append(s.undelivered, Undelivered{Time: now, From: q.from.handle, To: n.acct.handle, Payload: q.payload})
			}
			ss.queue = nil
		}
		ss.rung = nil
	}
	n.rang = nil
}
