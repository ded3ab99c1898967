package msntest

import (
	"fmt"
	"strconv"
	"time"

	"github.com/msn-bridge/msn-bridge/msn"
)

// session returns handle's live NS session. Callers hold s.mu.
func (s *Server) session(handle string) (*account, *nsSession, error) {
	a, err := s.lookup(handle)
	if err != nil {
		return nil, nil, err
	}
	if a.ns == nil {
		return a, nil, fmt.Errorf("%w: %s has no session", ErrNotOnline, handle)
	}
	return a, a.ns, nil
}

// DropConnection closes handle's NS socket abruptly, without OUT. Watchers see FLN.
func (s *Server) DropConnection(handle string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, n, err := s.session(handle)
	if err != nil {
		return err
	}
	s.detach(n)
	n.kill()
	return nil
}

// kickWith sends "OUT <args>" to handle's session and closes it.
func (s *Server) kickWith(handle string, args ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, n, err := s.session(handle)
	if err != nil {
		return err
	}
	n.sendLine("OUT", args...)
	s.detach(n)
	n.closeAfterFlush()
	return nil
}

// Kick ends handle's session with "OUT OTH", as a login elsewhere would.
func (s *Server) Kick(handle string) error { return s.kickWith(handle, "OTH") }

// RCT ends handle's session with "OUT RCT <minutes>".
func (s *Server) RCT(handle string, minutes int) error {
	return s.kickWith(handle, "RCT", strconv.Itoa(minutes))
}

// Shutdown ends handle's session with "OUT SSD"; an empty handle ends every session. It
// returns the number of sessions ended.
func (s *Server) Shutdown(handle string) int {
	if handle != "" {
		if s.kickWith(handle, "SSD") != nil {
			return 0
		}
		return 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	count := 0
	for n := range s.nsConns {
		if n.acct != nil && n.acct.ns == n {
			n.sendLine("OUT", "SSD")
			s.detach(n)
			n.closeAfterFlush()
			count++
		}
	}
	return count
}

// SendChallenge sends "CHL 0 <challenge>" to handle's session and returns the challenge. The
// session's next QRY is checked and recorded in ChallengeResults.
func (s *Server) SendChallenge(handle string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, n, err := s.session(handle)
	if err != nil {
		return "", err
	}
	return s.sendChallenge(n), nil
}

// ChallengeResults returns every checked QRY so far, oldest first.
func (s *Server) ChallengeResults() []ChallengeResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ChallengeResult(nil), s.chl...)
}

// NAKNext makes the switchboard answer handle's next "MSG t A" with NAK (not delivered).
func (s *Server) NAKNext(handle string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.lookup(handle)
	if err != nil {
		return err
	}
	a.nakNext = true
	return nil
}

// NAKAll makes the switchboard answer every "MSG t A" with NAK (not delivered) while on.
func (s *Server) NAKAll(on bool) {
	s.mu.Lock()
	s.nakAll = on
	s.mu.Unlock()
}

// SetDelay delays the handling of every received command named cmd (NS and SB) by d; 0
// removes the delay. The delay holds up the connection's later commands too, like a slow
// server; it ends early when the server closes.
func (s *Server) SetDelay(cmd string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d <= 0 {
		delete(s.delays, cmd)
		return
	}
	s.delays[cmd] = d
}

// InjectLine writes raw bytes, unchecked, to handle's NS connection (garbage lines, forged
// server commands).
func (s *Server) InjectLine(handle string, raw []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, n, err := s.session(handle)
	if err != nil {
		return err
	}
	n.sendRaw(raw)
	return nil
}

// Send writes one well-formed command to handle's NS connection.
func (s *Server) Send(handle string, cmd *msn.Command) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, n, err := s.session(handle)
	if err != nil {
		return err
	}
	n.send(cmd)
	return nil
}

// InjectSwitchboard writes raw bytes, unchecked, to every switchboard connection of handle
// (forged messages, as a hostile server could send them). It returns how many got them.
func (s *Server) InjectSwitchboard(handle string, raw []byte) int {
	h, _ := normHandle(handle)
	s.mu.Lock()
	defer s.mu.Unlock()
	count := 0
	for c := range s.sbConns {
		if c.acct != nil && c.acct.handle == h && c.sendRaw(raw) {
			count++
		}
	}
	return count
}

// CloseSwitchboards closes every switchboard connection of handle abruptly; the other members
// see "BYE <handle> 1". It returns how many were closed.
func (s *Server) CloseSwitchboards(handle string) int {
	h, _ := normHandle(handle)
	s.mu.Lock()
	defer s.mu.Unlock()
	count := 0
	for c := range s.sbConns {
		if c.acct != nil && c.acct.handle == h {
			s.leave(c, true)
			c.kill()
			count++
		}
	}
	return count
}

// SetOffline forces handle offline without closing its socket: a logged-in client gets
// "CHG 0 FLN" and must CHG again to reappear; a socketless account goes offline. Watchers see
// FLN.
func (s *Server) SetOffline(handle string) error {
	s.mu.Lock()
	a, err := s.lookup(handle)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	if a.ns == nil {
		s.mu.Unlock()
		return s.SetPresence(handle, "", a.psm)
	}
	defer s.mu.Unlock()
	wasOnline := a.online()
	a.ns.status = ""
	a.ns.sendLine("CHG", "0", "FLN")
	if wasOnline {
		s.broadcastPresence(a, false)
	}
	return nil
}

// Online reports whether handle shows as online to its allowed contacts: a logged-in client
// after its first CHG and not hidden, or a socketless account with a status.
func (s *Server) Online(handle string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.lookup(handle)
	return err == nil && a.online()
}

// LoggedIn reports whether a client is logged in as handle (USR OK received).
func (s *Server) LoggedIn(handle string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.lookup(handle)
	return err == nil && a.ns != nil
}

// Status returns handle's current status code ("" when offline or before the first CHG).
func (s *Server) Status(handle string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.lookup(handle)
	if err != nil {
		return ""
	}
	st, _, _ := a.presence()
	return st
}

// Switchboards returns the number of open switchboard sessions.
func (s *Server) Switchboards() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}
