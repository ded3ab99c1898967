package msntest

import (
	"strconv"
	"strings"

	"github.com/msn-bridge/msn-bridge/msn"
)

// validStatus lists the statuses a client may set with CHG (FLN is answered 201 separately).
var validStatus = map[string]bool{
	"NLN": true, "BSY": true, "IDL": true, "BRB": true, "AWY": true, "PHN": true, "LUN": true, "HDN": true,
}

// emptyMSNObj is what Escargot shows for users without a display picture.
const emptyMSNObj = "%3Cmsnobj%2F%3E"

// defaultCaps is shown for socketless accounts that set none ("MSN 7.0").
const defaultCaps = 0x40000000

// presence returns what contacts may see of a: status ("" when offline), capabilities and the
// encoded msnobj. A hidden (HDN) user reports "HDN". Callers hold s.mu.
func (a *account) presence() (status string, caps uint32, msnobj string) {
	if a.ns != nil && a.ns.status != "" {
		return a.ns.status, a.ns.caps, a.ns.msnobj
	}
	if a.virtStatus != "" {
		obj := ""
		if a.p2p != nil {
			obj = a.p2p.msnobj
		}
		return a.virtStatus, a.virtCaps, obj
	}
	return "", 0, ""
}

// online reports whether a shows as online to allowed contacts.
func (a *account) online() bool {
	st, _, _ := a.presence()
	return st != "" && st != "HDN"
}

// canSee reports whether owner's privacy settings let viewer see owner's presence: BL hides,
// AL shows, an unacknowledged (pending) entry hides, otherwise BLP decides.
func (owner *account) canSee(viewer string) bool {
	e := owner.entry(viewer)
	if e != nil {
		switch {
		case e.lists&BL != 0:
			return false
		case e.lists&AL != 0:
			return true
		case e.lists&PL != 0:
			return false
		}
	}
	return owner.blp == "AL"
}

// escapeParam escapes a free-text parameter as Escargot's writer does: only %, space, CR, LF.
func escapeParam(s string) string {
	if !strings.ContainsAny(s, "% \r\n") {
		return s
	}
	r := strings.NewReplacer("%", "%25", " ", "%20", "\r", "%0D", "\n", "%0A")
	return r.Replace(s)
}

// xmlEscape escapes text for a UBX payload.
func xmlEscape(s string) string {
	if !strings.ContainsAny(s, "&<>\"'") {
		return s
	}
	r := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "\"", "&quot;", "'", "&apos;")
	return r.Replace(s)
}

// presenceArgs returns "<status> <handle> <name> <caps> [<msnobj>]".
func (s *Server) presenceArgs(a *account) []string {
	st, caps, obj := a.presence()
	args := []string{st, a.handle, escapeParam(a.name), strconv.FormatUint(uint64(caps), 10)}
	if obj == "" && !s.opts.OmitEmptyMSNObj {
		obj = emptyMSNObj
	}
	if obj != "" {
		args = append(args, obj)
	}
	return args
}

// ubx builds the UBX command carrying a's PSM and media.
func (s *Server) ubx(a *account) *msn.Command {
	body := "<PSM>" + xmlEscape(a.psm) + "</PSM><CurrentMedia>" + xmlEscape(a.media) + "</CurrentMedia>"
	if !s.opts.BareUBX {
		body = "<Data>" + body + "</Data>"
	}
	return &msn.Command{Name: "UBX", Args: []string{a.handle}, Payload: []byte(body)}
}

// watchers calls fn for every logged-in account that has a on its FL. Callers hold s.mu.
func (s *Server) watchers(a *account, fn func(v *account)) {
	for i := range a.contacts {
		e := &a.contacts[i]
		if e.lists&RL == 0 {
			continue
		}
		v := s.accounts[e.handle]
		if v == nil || v.ns == nil {
			continue
		}
		if ve := v.entry(a.handle); ve == nil || ve.lists&FL == 0 {
			continue
		}
		fn(v)
	}
}

// broadcastPresence tells a's watchers about a's current presence: NLN (and UBX when withUBX
// and a PSM is known) to those allowed to see a while a is online, FLN to them otherwise.
// Callers hold s.mu.
func (s *Server) broadcastPresence(a *account, withUBX bool) {
	online := a.online()
	var nln *msn.Command
	if online {
		nln = &msn.Command{Name: "NLN", Args: s.presenceArgs(a)}
	}
	s.watchers(a, func(v *account) {
		if !a.canSee(v.handle) {
			return
		}
		if !online {
			v.ns.sendLine("FLN", a.handle)
			return
		}
		v.ns.send(nln)
		if withUBX && a.psmSet {
			v.ns.send(s.ubx(a))
		}
	})
}

// broadcastUBX sends a's PSM to the watchers allowed to see a, if a is online.
func (s *Server) broadcastUBX(a *account) {
	if !a.online() {
		return
	}
	u := s.ubx(a)
	s.watchers(a, func(v *account) {
		if a.canSee(v.handle) {
			v.ns.send(u)
		}
	})
}

// refreshFor re-sends a's presence to one account after a privacy change between them: NLN
// (+UBX) when v may now see a online, FLN otherwise. Nothing is sent unless v is logged in and
// has a on FL. Callers hold s.mu.
func (s *Server) refreshFor(a *account, v *account) {
	if v == nil || v.ns == nil {
		return
	}
	if ve := v.entry(a.handle); ve == nil || ve.lists&FL == 0 {
		return
	}
	if a.online() && a.canSee(v.handle) {
		v.ns.send(&msn.Command{Name: "NLN", Args: s.presenceArgs(a)})
		if a.psmSet {
			v.ns.send(s.ubx(a))
		}
		return
	}
	v.ns.sendLine("FLN", a.handle)
}

// sendInitialPresence sends n one ILN (and UBX) per online FL contact that lets n's owner see
// it, all with the TrID of the request that caused them. Callers hold s.mu.
func (s *Server) sendInitialPresence(n *nsSession, trid string) {
	a := n.acct
	if a == nil {
		return
	}
	for i := range a.contacts {
		e := &a.contacts[i]
		if e.lists&FL == 0 {
			continue
		}
		c := s.accounts[e.handle]
		if c == nil || !c.online() || !c.canSee(a.handle) {
			continue
		}
		n.send(&msn.Command{Name: "ILN", Args: append([]string{trid}, s.presenceArgs(c)...)})
		if c.psmSet {
			n.send(s.ubx(c))
		}
	}
}
