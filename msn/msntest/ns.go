package msntest

import (
	"encoding/xml"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/msn-bridge/msn-bridge/msn"
)

// nsPayloadLimit bounds NS payloads (UUX, QRY): far above anything legitimate.
const nsPayloadLimit = 64 << 10

// nsSession is one notification (or dispatch) server connection. Fields other than the
// embedded conn are guarded by Server.mu, except that the reader goroutine may read the ones
// only it writes.
type nsSession struct {
	*conn
	dispatch bool
	ver      int    // 10 or 11 once VER succeeded
	handle   string // from USR TWN I
	acct     *account
	synced   bool
	status   string // "" until the first accepted CHG
	caps     uint32
	msnobj   string

	challenge string // outstanding CHL, "" when none
	ilnTrID   string // deferred initial presence (Options.InitialPresenceAfterNextCommand)
	ilnArmed  bool
	nakNext   bool
	// rang holds the bot-opened switchboard sessions this login was invited to (RNG) and has
	// not answered yet.
	rang map[*sbSession]struct{}
}

// serveNS runs the reader of one NS or dispatch connection; its writer runs alongside.
func (s *Server) serveNS(nc net.Conn, dispatch bool) {
	n := &nsSession{conn: newConn(nc, s.opts.MaxPendingOutput), dispatch: dispatch}
	go func() { defer s.wg.Done(); n.writeLoop() }()
	defer s.wg.Done()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		n.kill()
		return
	}
	s.nsConns[n] = struct{}{}
	s.mu.Unlock()
	defer s.nsGone(n)

	tag := "NS"
	if dispatch {
		tag = "DS"
	}
	r := msn.NewReader(nc, msn.ServerPayloads)
	r.SetLimits(msn.MaxLineLength, nsPayloadLimit)
	for {
		cmd, err := r.ReadCommand()
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.log.Debug().Err(err).Str("handle", n.handle).Msg("Closing NS connection after read error")
			}
			return
		}
		cmd = cmd.Clone() // the handlers and the event log keep commands past the next read
		s.recordCmd(tag, n.handle, cmd)
		if !s.wait(cmd.Name) {
			return
		}
		s.mu.Lock()
		keep := s.handleNS(n, cmd)
		s.flushDeferredPresence(n, cmd)
		s.mu.Unlock()
		if !keep {
			return
		}
	}
}

// nsGone detaches a finished NS connection: its account goes offline for its watchers.
func (s *Server) nsGone(n *nsSession) {
	s.mu.Lock()
	delete(s.nsConns, n)
	s.detach(n)
	s.mu.Unlock()
	n.closeAfterFlush()
}

// detach ends n's login, if it is still its account's live session, and tells watchers.
// Callers hold s.mu.
func (s *Server) detach(n *nsSession) {
	a := n.acct
	if a == nil || a.ns != n {
		return
	}
	wasOnline := a.online()
	a.ns = nil
	if a.virtStatus == "" {
		// A client publishes its PSM again after each login (Escargot forgets it too).
		a.psm, a.media, a.psmSet = "", "", false
	}
	if wasOnline && !a.online() {
		s.broadcastPresence(a, false)
	}
	s.dropInvitations(n)
}

// wait applies the SetDelay delay for a command. It reports false when the server closed
// meanwhile.
func (s *Server) wait(name string) bool {
	s.mu.Lock()
	d := s.delays[name]
	s.mu.Unlock()
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.done:
		return false
	}
}

// flushDeferredPresence sends the initial ILN burst held back by
// Options.InitialPresenceAfterNextCommand after the reply to the command following the CHG.
func (s *Server) flushDeferredPresence(n *nsSession, cmd *msn.Command) {
	if n.ilnTrID == "" {
		return
	}
	if !n.ilnArmed {
		n.ilnArmed = true
		return
	}
	trid := n.ilnTrID
	n.ilnTrID, n.ilnArmed = "", false
	s.sendInitialPresence(n, trid)
	s.sendInitialMail(n)
}

// handleNS handles one command. It reports false when the connection must be closed (after
// what was queued is flushed). Callers hold s.mu.
func (s *Server) handleNS(n *nsSession, cmd *msn.Command) bool {
	// Commands without a TrID.
	switch cmd.Name {
	case "PNG":
		if n.acct == nil {
			return false
		}
		n.sendLine("QNG", strconv.Itoa(s.opts.QNG))
		return true
	case "OUT":
		if s.opts.Dialect != Escargot {
			n.sendLine("OUT")
		}
		s.detach(n)
		return false
	}
	if _, ok := cmd.TrID(); !ok {
		s.log.Debug().Str("command", cmd.Name).Msg("Closing NS connection after a command without TrID")
		return false
	}
	t := cmd.Args[0]
	if cmd.Name != "VER" && n.ver == 0 {
		return false // VER must come first
	}
	switch cmd.Name {
	case "VER":
		return s.nsVER(n, cmd)
	case "CVR":
		n.sendLine("CVR", s.cvrReply(t, cmd)...)
		return true
	case "USR":
		return s.nsUSR(n, cmd)
	}
	if n.acct == nil || n.acct.ns != n {
		// Not logged in (or kicked meanwhile): nothing else is allowed.
		return false
	}
	switch cmd.Name {
	case "SYN":
		return s.nsSYN(n, cmd)
	case "GCF":
		if !n.synced {
			n.sendLine("715", t)
			return true
		}
		n.send(&msn.Command{Name: "GCF", Args: []string{t, cmd.Arg(1)}, Payload: []byte(s.opts.ShieldsXML)})
		return true
	case "CHG":
		return s.nsCHG(n, cmd)
	case "UUX":
		return s.nsUUX(n, cmd)
	case "PRP":
		return s.nsPRP(n, cmd)
	case "SBP":
		s.nsSBP(n, cmd)
		return true
	case "BLP":
		return s.nsBLP(n, cmd)
	case "GTC":
		v := cmd.Arg(1)
		if v != "A" && v != "N" {
			return false
		}
		n.acct.gtc = v
		n.sendLine("GTC", t, v)
		return true
	case "ADC":
		return s.nsADC(n, cmd)
	case "REM":
		return s.nsREM(n, cmd)
	case "ADG", "RMG", "REG":
		s.nsGroup(n, cmd)
		return true
	case "XFR":
		s.nsXFR(n, cmd)
		return true
	case "URL":
		n.sendLine("URL", t, "/unused1", "/unused2", "1")
		return true
	case "QRY":
		return s.nsQRY(n, cmd)
	case "CHL":
		s.sendChallenge(n)
		return true
	}
	if s.opts.Dialect == Microsoft {
		n.sendLine("200", t)
	}
	return true
}

// nsVER picks a protocol version: the server's best (Escargot, Microsoft) or the client's
// first (R2M) among those both support. None gives "VER t 0" and a disconnect.
func (s *Server) nsVER(n *nsSession, cmd *msn.Command) bool {
	offered := map[string]bool{}
	for _, v := range cmd.Args[1:] {
		offered[v] = true
	}
	pick := ""
	if s.opts.Dialect == R2M {
		for _, v := range cmd.Args[1:] {
			if contains(s.opts.Versions, v) {
				pick = v
				break
			}
		}
	} else {
		for _, v := range s.opts.Versions {
			if offered[v] {
				pick = v
				break
			}
		}
	}
	if pick == "" {
		n.sendLine("VER", cmd.Args[0], "0")
		return false
	}
	n.ver, _ = strconv.Atoi(strings.TrimPrefix(pick, "MSNP"))
	n.sendLine("VER", cmd.Args[0], pick)
	return true
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// cvrReply returns the CVR reply arguments for the dialect.
func (s *Server) cvrReply(t string, cmd *msn.Command) []string {
	switch s.opts.Dialect {
	case Microsoft:
		return []string{t, "6.1.0211", "6.1.0211", "6.1.0155",
			"http://download.microsoft.com/download/8/3/C/83C4B2DB-AC1C-4B56-8144-4472C0982F21/SetupDl.exe",
			"http://messenger.msn.com"}
	case R2M:
		return []string{t, "1.0.0000", "1.0.0000", "1.0.0000", "http://127.0.0.1", "http://127.0.0.1"}
	}
	v := cmd.Arg(6)
	if v == "" {
		v = "7.0.0816"
	}
	return []string{t, v, v, v, "https://escargot.log1p.xyz", "https://escargot.log1p.xyz"}
}

// nsUSR handles USR TWN I and USR TWN S.
func (s *Server) nsUSR(n *nsSession, cmd *msn.Command) bool {
	t := cmd.Args[0]
	if n.acct != nil {
		n.sendLine("207", t)
		return true
	}
	if cmd.Arg(1) != "TWN" {
		n.sendLine("911", t)
		return false
	}
	switch cmd.Arg(2) {
	case "I":
		h, ok := normHandle(cmd.Arg(3))
		if !ok || strings.HasPrefix(h, "tel:") {
			n.sendLine("911", t)
			return false
		}
		n.handle = h
		if n.dispatch {
			n.sendLine("XFR", t, "NS", s.NSAddr(), "0", s.DispatchAddr())
			return false
		}
		n.sendLine("USR", t, "TWN", "S", s.opts.TWNChallenge)
		return true
	case "S":
		if n.handle == "" || n.dispatch {
			n.sendLine("911", t)
			return false
		}
		tok := cmd.Arg(3)
		if s.checkTicket(tok) != n.handle || s.accounts[n.handle] == nil {
			n.sendLine("911", t)
			return false
		}
		s.login(n, t, tok)
		return true
	}
	n.sendLine("911", t)
	return false
}

// login attaches n to its account, kicking an older session with OUT OTH.
func (s *Server) login(n *nsSession, t, tok string) {
	a := s.accounts[n.handle]
	if old := a.ns; old != nil {
		old.sendLine("OUT", "OTH")
		s.detach(old)
		old.closeAfterFlush()
	}
	n.acct = a
	a.ns = n
	n.sendLine("USR", t, "OK", a.handle, "1", "0")
	n.sendLine("SBS", "0", "null")
	n.send(&msn.Command{Name: "MSG", Args: []string{"Hotmail", "Hotmail"}, Payload: s.profile(n, a, tok)})
	if s.opts.SendCHL {
		s.sendChallenge(n)
	}
}

// profile builds the text/x-msmsgsprofile message sent after USR OK.
func (s *Server) profile(n *nsSession, a *account, tok string) []byte {
	ip, port, _ := net.SplitHostPort(n.remote)
	hi := strconv.FormatUint(a.puid>>32, 10)
	lo := strconv.FormatUint(a.puid&0xffffffff, 10)
	now := strconv.FormatInt(time.Now().Unix(), 10)
	auth := strings.TrimPrefix(tok, "t=")
	if i := strings.IndexByte(auth, '&'); i >= 0 {
		auth = auth[:i]
	}
	var b strings.Builder
	h := func(k, v string) {
		b.WriteString(k)
		b.WriteString(":")
		if v != "" {
			b.WriteString(" ")
			b.WriteString(v)
		}
		b.WriteString("\r\n")
	}
	h("MIME-Version", "1.0")
	h("Content-Type", "text/x-msmsgsprofile; charset=UTF-8")
	h("LoginTime", now)
	if s.opts.Dialect == Microsoft {
		h("EmailEnabled", "1")
		h("MemberIdHigh", hi)
		h("MemberIdLow", lo)
		h("lang_preference", "1033")
		h("PreferredEmail", a.handle)
		h("country", "US")
		h("PostalCode", "")
		h("Gender", "")
		h("Kid", "0")
		h("Age", "")
		h("BDayPre", "")
		h("Birthday", "")
		h("Wallet", "")
		h("Flags", "1027")
		h("sid", "507")
		h("kv", "7")
		h("MSPAuth", auth+"&p=")
		h("ClientIP", ip)
		h("ClientPort", port)
		h("ABCHMigrated", "1")
		b.WriteString("\r\n")
		return []byte(b.String())
	}
	h("EmailEnabled", "0")
	h("MemberIdHigh", hi)
	h("MemberIdLow", lo)
	h("lang_preference", "1033")
	h("preferredEmail", "")
	h("country", "")
	h("PostalCode", "")
	h("Gender", "")
	h("Kid", "0")
	h("Age", "")
	h("BDayPre", "")
	h("Birthday", "")
	h("Wallet", "")
	h("Flags", "536872513")
	h("sid", "507")
	h("MSPAuth", auth+"Y6+H31sTUOFkqjNTDYqAAFLr5Ote7BMrMnUIzpg860jh084QMgs5djRQLLQP0TVOFkKdWDwAJdEWcfsI9YL8otN9kSfhTaPHR1njHmG0H98O2NE&p=")
	h("ClientIP", ip)
	h("ClientPort", port)
	h("ABCHMigrated", "1")
	h("MPOPEnabled", "0")
	b.WriteString("\r\n")
	return []byte(b.String())
}

// sendInitialMail sends the MSNP11 initial mail-data notification (after the first CHG).
func (s *Server) sendInitialMail(n *nsSession) {
	if n.ver < 11 {
		return
	}
	body := "MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsinitialmdatanotification; charset=UTF-8\r\n\r\n" +
		"Mail-Data: <MD><E><I>0</I><IU>0</IU><O>0</O><OU>0</OU></E><Q><QTM>409600</QTM><QNM>204800</QNM></Q></MD>\r\n"
	n.send(&msn.Command{Name: "MSG", Args: []string{"Hotmail", "Hotmail"}, Payload: []byte(body)})
}

// nsSYN sends the contact list: always in full (Escargot), or only the two versions when the
// client's are current (other dialects).
func (s *Server) nsSYN(n *nsSession, cmd *msn.Command) bool {
	t := cmd.Args[0]
	a := n.acct
	lv := s.opts.ListVersion
	n.synced = true
	if s.opts.Dialect != Escargot && cmd.Arg(1) == lv && cmd.Arg(2) == lv {
		n.sendLine("SYN", t, lv, lv)
		return true
	}
	n.sendLine("SYN", t, lv, lv, strconv.Itoa(len(a.contacts)), strconv.Itoa(len(a.groups)))
	n.sendLine("GTC", a.gtc)
	n.sendLine("BLP", a.blp)
	n.sendLine("PRP", "MFN", escapeParam(a.name))
	for _, g := range a.groups {
		n.sendLine("LSG", escapeParam(g.name), g.id)
	}
	for i := range a.contacts {
		n.sendLine("LST", lstArgs(&a.contacts[i])...)
	}
	return true
}

// lstArgs renders one LST line. A pending entry shows PL and hides RL, as Escargot does; FL
// entries carry C= and a (possibly empty: trailing space) group list.
func lstArgs(e *contact) []string {
	bits := e.lists
	if bits&PL != 0 {
		bits &^= RL
	}
	args := []string{"N=" + e.handle, "F=" + escapeParam(e.nick)}
	if e.lists&FL != 0 {
		args = append(args, "C="+e.id)
	}
	args = append(args, strconv.Itoa(int(bits)))
	if e.lists&FL != 0 {
		args = append(args, strings.Join(e.groups, ","))
	}
	return args
}

// nsCHG sets the session's status. Escargot ignores a CHG without capabilities
// (Options.AcceptCHGWithoutCaps accepts it), answers 201 to FLN and drops the connection on an
// unknown status.
func (s *Server) nsCHG(n *nsSession, cmd *msn.Command) bool {
	t, st := cmd.Args[0], cmd.Arg(1)
	if st == "FLN" {
		n.sendLine("201", t)
		return true
	}
	if !validStatus[st] {
		return false
	}
	var caps uint64
	if len(cmd.Args) < 3 {
		if !s.opts.AcceptCHGWithoutCaps {
			return true
		}
	} else {
		var err error
		if caps, err = strconv.ParseUint(cmd.Args[2], 10, 32); err != nil {
			n.sendLine("201", t)
			return true
		}
	}
	a := n.acct
	first := n.status == ""
	wasOnline := a.online()
	n.status, n.caps, n.msnobj = st, uint32(caps), cmd.Arg(3)
	n.sendLine("CHG", cmd.Args...)
	if first {
		if s.opts.InitialPresenceAfterNextCommand {
			n.ilnTrID, n.ilnArmed = t, false
		} else {
			s.sendInitialPresence(n, t)
			s.sendInitialMail(n)
		}
	}
	if a.online() || wasOnline {
		s.broadcastPresence(a, !wasOnline)
	}
	return true
}

// nsUUX stores the PSM and media. Malformed XML gets no reply, as on Escargot.
func (s *Server) nsUUX(n *nsSession, cmd *msn.Command) bool {
	psm, media, ok := parseUUX(cmd.Payload, s.opts.LenientUUX)
	if !ok {
		s.log.Debug().Str("handle", n.handle).Msg("Ignoring malformed UUX")
		return true
	}
	a := n.acct
	a.psm, a.media, a.psmSet = psm, media, true
	n.send(&msn.Command{Name: "UUX", Args: []string{cmd.Args[0]}, Payload: []byte{}})
	s.broadcastUBX(a)
	return true
}

// parseUUX extracts PSM and CurrentMedia from a UUX payload. Strict mode wants exactly one
// <Data> root; lenient mode also takes a well-formed fragment of elements.
func parseUUX(p []byte, lenient bool) (psm, media string, ok bool) {
	if len(p) == 0 {
		return "", "", true
	}
	doc := string(p)
	if lenient && !strings.HasPrefix(strings.TrimSpace(doc), "<Data>") {
		doc = "<Data>" + doc + "</Data>"
	}
	dec := xml.NewDecoder(strings.NewReader(doc))
	dec.Strict = true
	depth, roots := 0, 0
	var cur string
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", "", false
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 1 {
				roots++
				if t.Name.Local != "Data" || roots > 1 {
					return "", "", false
				}
			}
			if depth == 2 {
				cur = t.Name.Local
			}
		case xml.EndElement:
			depth--
			if depth < 2 {
				cur = ""
			}
		case xml.CharData:
			if depth == 0 && strings.TrimSpace(string(t)) != "" {
				return "", "", false
			}
			switch cur {
			case "PSM":
				psm += string(t)
			case "CurrentMedia":
				media += string(t)
			}
		}
	}
	if roots != 1 || depth != 0 {
		return "", "", false
	}
	return psm, media, true
}

// nsPRP sets an own property. MFN renames (NLN to watchers); phone numbers are echoed; unknown
// properties get 715; an over-long value or property name disconnects.
func (s *Server) nsPRP(n *nsSession, cmd *msn.Command) bool {
	t, prop, val := cmd.Args[0], cmd.Arg(1), cmd.Arg(2)
	if len(prop) > 3 || len(val) > 387 {
		return false
	}
	switch prop {
	case "MFN":
		name := msn.Decode(val)
		if name == "" {
			n.sendLine("201", t)
			return true
		}
		n.acct.name = name
		n.sendLine("PRP", t, "MFN", val)
		if n.acct.online() {
			s.broadcastPresence(n.acct, false)
		}
	case "PHH", "PHW", "PHM", "MOB", "MBE", "WWE", "HSB":
		if len(val) > 95 {
			return false
		}
		if val == "" {
			n.sendLine("PRP", t, prop)
		} else {
			n.sendLine("PRP", t, prop, val)
		}
	default:
		n.sendLine("715", t)
	}
	return true
}

// nsSBP renames a contact in the owner's list (MFN) or echoes other properties.
func (s *Server) nsSBP(n *nsSession, cmd *msn.Command) {
	if len(cmd.Args) < 3 {
		n.sendLine("201", cmd.Args[0])
		return
	}
	if cmd.Args[2] == "MFN" {
		if e := n.acct.entryByID(cmd.Args[1]); e != nil {
			e.nick = msn.Decode(cmd.Arg(3))
		}
	}
	n.sendLine("SBP", cmd.Args...)
}

// nsBLP changes the default privacy mode; watchers get fresh presence.
func (s *Server) nsBLP(n *nsSession, cmd *msn.Command) bool {
	t, v := cmd.Args[0], cmd.Arg(1)
	if v != "AL" && v != "BL" {
		return false
	}
	a := n.acct
	if s.opts.Dialect == Microsoft && a.blp == v {
		n.sendLine("218", t)
		return true
	}
	var before map[string]bool
	if a.online() {
		before = map[string]bool{}
		s.watchers(a, func(w *account) { before[w.handle] = a.canSee(w.handle) })
	}
	a.blp = v
	n.sendLine("BLP", t, v)
	s.watchers(a, func(w *account) {
		if seen, ok := before[w.handle]; ok && seen != a.canSee(w.handle) {
			s.refreshFor(a, w)
		}
	})
	return true
}

// nsXFR hands out a switchboard cookie. 913 before the first CHG or while hidden.
func (s *Server) nsXFR(n *nsSession, cmd *msn.Command) {
	t := cmd.Args[0]
	if cmd.Arg(1) != "SB" {
		n.sendLine("201", t)
		return
	}
	if n.status == "" || n.status == "HDN" {
		n.sendLine("913", t)
		return
	}
	cookie := s.newSBTicket(n.acct.handle, "")
	n.sendLine("XFR", t, "SB", s.SBAddr(), "CKI", cookie)
}
