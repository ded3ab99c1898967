package msntest

import (
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/msn-bridge/msn-bridge/msn"
)

// Switchboard timings, as on Escargot (docs/protocol.md §3.14, §6).
const (
	sbTicketTTL  = 120 * time.Second
	sbAuthWindow = 60 * time.Second
	maxBotQueue  = 32
	// maxUndelivered bounds the record of undelivered bot messages; past it the older half goes.
	maxUndelivered = 4096
)

// sbTicket allows one USR (sid == "") or ANS (sid set) on the switchboard.
type sbTicket struct {
	handle  string
	sid     string
	expires time.Time
}

// sbSession is one switchboard conversation. Guarded by Server.mu.
type sbSession struct {
	id      string
	created time.Time
	members []sbMember
	queue   []queued // bot messages waiting for a human to join
	invited string   // who a bot-opened session rang
	// rung is the NS session the invitation (RNG) of a bot-opened session went to, and
	// cookie its ANS ticket, until someone answers it.
	rung   *nsSession
	cookie string
}

type sbMember struct {
	acct *account
	conn *sbConn // nil for a socketless account (bot)
}

type queued struct {
	from    *account
	payload []byte
}

// sbConn is one switchboard connection.
type sbConn struct {
	*conn
	acct *account
	sess *sbSession
}

// newSBTicket registers a switchboard cookie for handle (and session sid for ANS). Callers
// hold s.mu.
func (s *Server) newSBTicket(handle, sid string) string {
	now := time.Now()
	if len(s.sbAuth) > 256 {
		for k, t := range s.sbAuth {
			if now.After(t.expires) {
				delete(s.sbAuth, k)
			}
		}
	}
	cookie := randomToken(20)
	s.sbAuth[cookie] = sbTicket{handle: handle, sid: sid, expires: now.Add(sbTicketTTL)}
	return cookie
}

// newSession creates an empty switchboard session. Callers hold s.mu.
func (s *Server) newSession() *sbSession {
	now := time.Now()
	// Sessions that never got a human member (an unanswered BotSay) expire with their cookies.
	for id, ss := range s.sessions {
		if now.Sub(ss.created) > sbTicketTTL && !ss.hasHuman() {
			delete(s.sessions, id)
			if ss.rung != nil {
				delete(ss.rung.rang, ss)
				ss.rung = nil
			}
		}
	}
	var id string
	for {
		if s.opts.Dialect == R2M {
			id = randomDigits(8)
		} else {
			id = randomToken(31)
		}
		if s.sessions[id] == nil {
			break
		}
	}
	ss := &sbSession{id: id, created: now}
	s.sessions[id] = ss
	return ss
}

func (ss *sbSession) hasHuman() bool {
	for _, m := range ss.members {
		if m.conn != nil {
			return true
		}
	}
	return false
}

func (ss *sbSession) member(handle string) int {
	for i, m := range ss.members {
		if m.acct.handle == handle {
			return i
		}
	}
	return -1
}

// broadcast sends cmd to every connected member except skip.
func (ss *sbSession) broadcast(cmd *msn.Command, skip string) {
	for _, m := range ss.members {
		if m.conn != nil && m.acct.handle != skip {
			m.conn.send(cmd)
		}
	}
}

// serveSBConn runs the reader of one switchboard connection.
func (s *Server) serveSBConn(nc net.Conn, _ bool) {
	c := &sbConn{conn: newConn(nc, s.opts.MaxPendingOutput)}
	go func() { defer s.wg.Done(); c.writeLoop() }()
	defer s.wg.Done()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.kill()
		return
	}
	s.sbConns[c] = struct{}{}
	s.mu.Unlock()
	defer s.sbGone(c, false)

	_ = nc.SetReadDeadline(time.Now().Add(sbAuthWindow))
	r := msn.NewReader(nc, msn.ServerPayloads)
	r.SetLimits(msn.MaxLineLength, MaxSBPayload)
	for {
		cmd, err := r.ReadCommand()
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.log.Debug().Err(err).Msg("Closing SB connection after read error")
			}
			return
		}
		cmd = cmd.Clone() // the handlers and the event log keep commands past the next read
		handle := ""
		if c.acct != nil {
			handle = c.acct.handle
		}
		s.recordCmd("SB", handle, cmd)
		if !s.wait(cmd.Name) {
			return
		}
		s.mu.Lock()
		keep, deliveries := s.handleSB(c, cmd)
		s.mu.Unlock()
		s.deliverToBots(deliveries)
		if !keep {
			return
		}
	}
}

// sbGone removes a finished switchboard connection from its session: the others see BYE
// (with " 1" when the server dropped it).
func (s *Server) sbGone(c *sbConn, dropped bool) {
	s.mu.Lock()
	delete(s.sbConns, c)
	s.leave(c, dropped)
	s.mu.Unlock()
	c.closeAfterFlush()
}

// leave takes c out of its session. Callers hold s.mu.
func (s *Server) leave(c *sbConn, dropped bool) {
	ss := c.sess
	if ss == nil {
		return
	}
	c.sess = nil
	i := -1
	for j, m := range ss.members {
		if m.conn == c {
			i = j
		}
	}
	if i < 0 {
		return
	}
	ss.members = append(ss.members[:i], ss.members[i+1:]...)
	args := []string{c.acct.handle}
	if dropped {
		args = append(args, "1")
	}
	ss.broadcast(&msn.Command{Name: "BYE", Args: args}, "")
	if !ss.hasHuman() {
		delete(s.sessions, ss.id)
	}
}

// botDelivery is a message for a bot, handed to its BotFunc after s.mu is released.
type botDelivery struct {
	chat *BotChat
	msg  BotMessage
	fn   BotFunc
	// p2p, when set, takes the P2P packet bin from the handle from instead of fn.
	p2p  *msn.P2P
	from string
	bin  []byte
}

// handleSB handles one switchboard command. Callers hold s.mu.
func (s *Server) handleSB(c *sbConn, cmd *msn.Command) (bool, []botDelivery) {
	if c.acct == nil {
		switch cmd.Name {
		case "USR":
			return s.sbUSR(c, cmd), nil
		case "ANS":
			return s.sbANS(c, cmd), nil
		}
		return false, nil
	}
	switch cmd.Name {
	case "OUT":
		s.leave(c, false)
		return false, nil
	case "CAL":
		return s.sbCAL(c, cmd), nil
	case "MSG":
		return s.sbMSG(c, cmd)
	case "USR", "ANS":
		if t := cmd.Arg(0); t != "" {
			c.sendLine("207", t)
		}
		return true, nil
	}
	if _, ok := cmd.TrID(); ok {
		c.sendLine("200", cmd.Args[0])
		return true, nil
	}
	return false, nil
}

// sbUSR authenticates a new session's creator with an XFR SB cookie.
func (s *Server) sbUSR(c *sbConn, cmd *msn.Command) bool {
	t := cmd.Arg(0)
	h, _ := normHandle(cmd.Arg(1))
	tk, ok := s.sbAuth[cmd.Arg(2)]
	a := s.accounts[h]
	if t == "" || !ok || tk.sid != "" || tk.handle != h || time.Now().After(tk.expires) || a == nil {
		if t != "" {
			c.sendLine("911", t)
		}
		return false
	}
	delete(s.sbAuth, cmd.Arg(2))
	_ = c.nc.SetReadDeadline(time.Time{})
	c.acct = a
	ss := s.newSession()
	ss.members = append(ss.members, sbMember{acct: a, conn: c})
	c.sess = ss
	c.sendLine("USR", t, "OK", a.handle, escapeParam(a.name))
	return true
}

// sbANS joins an invited user to a session: IRO for each member, JOI to them, ANS OK, then any
// queued bot messages.
func (s *Server) sbANS(c *sbConn, cmd *msn.Command) bool {
	t := cmd.Arg(0)
	h, _ := normHandle(cmd.Arg(1))
	cookie, sid := cmd.Arg(2), cmd.Arg(3)
	tk, ok := s.sbAuth[cookie]
	a := s.accounts[h]
	ss := s.sessions[sid]
	if t == "" || !ok || tk.handle != h || tk.sid != sid || time.Now().After(tk.expires) || a == nil || ss == nil {
		if t != "" {
			c.sendLine("911", t)
		}
		return false
	}
	delete(s.sbAuth, cookie)
	_ = c.nc.SetReadDeadline(time.Time{})
	if ss.rung != nil {
		delete(ss.rung.rang, ss)
		ss.rung, ss.cookie = nil, ""
	}
	if ss.member(h) >= 0 {
		c.sendLine("215", t)
		return false
	}
	c.acct, c.sess = a, ss
	total := strconv.Itoa(len(ss.members))
	for i, m := range ss.members {
		c.sendLine("IRO", t, strconv.Itoa(i+1), total, m.acct.handle, escapeParam(m.acct.name))
	}
	ss.broadcast(&msn.Command{Name: "JOI", Args: []string{a.handle, escapeParam(a.name)}}, "")
	ss.members = append(ss.members, sbMember{acct: a, conn: c})
	c.sendLine("ANS", t, "OK")
	for _, q := range ss.queue {
		c.send(&msn.Command{Name: "MSG", Args: []string{q.from.handle, escapeParam(q.from.name)}, Payload: q.payload})
	}
	ss.queue = nil
	return true
}

// allowsChat reports whether callee accepts conversations from caller.
func (callee *account) allowsChat(caller string) bool {
	if e := callee.entry(caller); e != nil {
		if e.lists&BL != 0 {
			return false
		}
		if e.lists&AL != 0 {
			return true
		}
	}
	return callee.blp == "AL"
}

// sbCAL invites a user: 208 unknown, 215 already there, 217 offline/hidden/blocking, 913 when
// the caller is hidden; else RINGING and an RNG on the callee's NS (a bot joins at once).
func (s *Server) sbCAL(c *sbConn, cmd *msn.Command) bool {
	t := cmd.Arg(0)
	if t == "" {
		return false
	}
	ss := c.sess
	if ss == nil {
		return false
	}
	h, ok := normHandle(cmd.Arg(1))
	callee := s.accounts[h]
	switch {
	case !ok || callee == nil:
		c.sendLine("208", t)
		return true
	case ss.member(h) >= 0:
		c.sendLine("215", t)
		return true
	case c.acct.ns != nil && c.acct.ns.status == "HDN":
		c.sendLine("913", t)
		return true
	case !callee.online() || !callee.allowsChat(c.acct.handle):
		c.sendLine("217", t)
		return true
	}
	if callee.ns == nil {
		// Socketless account (bot): joins immediately.
		c.sendLine("CAL", t, "RINGING", ss.id)
		ss.broadcast(&msn.Command{Name: "JOI", Args: []string{callee.handle, escapeParam(callee.name)}}, "")
		ss.members = append(ss.members, sbMember{acct: callee})
		return true
	}
	cookie := s.newSBTicket(callee.handle, ss.id)
	callee.ns.sendLine("RNG", ss.id, s.SBAddr(), "CKI", cookie, c.acct.handle, escapeParam(c.acct.name))
	c.sendLine("CAL", t, "RINGING", ss.id)
	return true
}

// sbMSG relays a message to the other members. A/D are ACKed (NAKed when injected), U/N get
// no reply; another ack letter or P2P outside D closes the connection.
func (s *Server) sbMSG(c *sbConn, cmd *msn.Command) (bool, []botDelivery) {
	t, mode := cmd.Arg(0), cmd.Arg(1)
	if t == "" || len(cmd.Args) != 2 || cmd.Payload == nil {
		return false, nil
	}
	switch mode {
	case "U", "N", "A", "D":
	default:
		return false, nil
	}
	ct, hdr, body := parseMIME(cmd.Payload)
	if strings.EqualFold(ct, "application/x-msnmsgrp2p") && mode != "D" {
		return false, nil
	}
	a := c.acct
	if mode == "A" && (s.nakAll || a.nakNext) {
		a.nakNext = false
		c.sendLine("NAK", t)
		return true, nil
	}
	ss := c.sess
	var out []botDelivery
	if ss != nil {
		relay := &msn.Command{Name: "MSG", Args: []string{a.handle, escapeParam(a.name)}, Payload: cmd.Payload}
		for _, m := range ss.members {
			if m.acct == a {
				continue
			}
			if m.conn != nil {
				m.conn.send(relay)
			} else if m.acct.virtStatus != "" && strings.EqualFold(ct, "application/x-msnmsgrp2p") {
				// Every socketless account speaks P2P (botp2p.go); packets for another
				// member are dropped, as a client does.
				if strings.EqualFold(hdr["P2P-Dest"], m.acct.handle) {
					out = append(out, botDelivery{p2p: s.botP2PLocked(m.acct).engine, from: a.handle, bin: []byte(body)})
				}
			} else if m.acct.bot != nil {
				out = append(out, botDelivery{
					chat: &BotChat{s: s, bot: m.acct, sess: ss},
					fn:   m.acct.bot,
					msg: BotMessage{From: a.handle, Mode: mode, ContentType: ct, Header: hdr,
						Body: body, Payload: append([]byte(nil), cmd.Payload...)},
				})
			}
		}
	}
	if mode == "A" || mode == "D" {
		c.sendLine("ACK", t)
	}
	return true, out
}

// parseMIME splits a message payload into its lower-cased Content-Type (without parameters),
// headers (canonical names as sent) and body. LF-only line ends are accepted.
func parseMIME(p []byte) (ct string, hdr map[string]string, body string) {
	text := string(p)
	head, rest, found := strings.Cut(text, "\r\n\r\n")
	if !found {
		head, rest, _ = strings.Cut(text, "\n\n")
	}
	hdr = map[string]string{}
	for _, line := range strings.Split(head, "\n") {
		k, v, ok := strings.Cut(strings.TrimRight(line, "\r"), ":")
		if !ok {
			continue
		}
		hdr[strings.TrimSpace(k)] = strings.TrimSpace(v)
		if strings.EqualFold(strings.TrimSpace(k), "Content-Type") {
			ct, _, _ = strings.Cut(strings.TrimSpace(v), ";")
			ct = strings.ToLower(strings.TrimSpace(ct))
		}
	}
	return ct, hdr, rest
}
