package msntest

import (
	"strings"

	"github.com/msn-bridge/msn-bridge/msn"
)

var listNames = map[string]ListBits{"FL": FL, "AL": AL, "BL": BL, "RL": RL, "PL": PL}

// adcFields splits ADC/REM tokens into N=, F=, C= values and the rest.
func adcFields(args []string) (h, f, c string, rest []string) {
	for _, a := range args {
		switch {
		case strings.HasPrefix(a, "N="):
			h = a[2:]
		case strings.HasPrefix(a, "F="):
			f = a[2:]
		case strings.HasPrefix(a, "C="):
			c = a[2:]
		default:
			rest = append(rest, a)
		}
	}
	return
}

// isGUID reports whether s looks like a GUID (8-4-4-4-12 hex digits).
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
			continue
		}
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// abchNOT is the ABCH "address book changed" notification Escargot pushes on add/remove.
func abchNOT(a *account) *msn.Command {
	body := "<NOTIFICATION id=\"0\" siteid=\"45705\" siteurl=\"http://contacts.msn.com\">\r\n" +
		"\t<TO pid=\"0x" + hex32(a.puid) + ":0x" + hex32(a.puid>>32) + "\" name=\"" + a.handle + "\">\r\n" +
		"\t\t<VIA agent=\"messenger\" />\r\n\t</TO>\r\n\t<MSG id=\"0\">\r\n" +
		"\t\t<SUBSCR url=\"s.htm\" />\r\n\t\t<ACTION url=\"a.htm\" />\r\n\t\t<BODY>\r\n" +
		"\t\t\t&lt;NotificationData xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"&gt;\r\n" +
		"\t\t\t\t&lt;Service&gt;ABCHInternal&lt;/Service&gt;\r\n" +
		"\t\t\t\t&lt;CID&gt;0&lt;/CID&gt;\r\n" +
		"\t\t\t\t&lt;HasNewItem&gt;false&lt;/HasNewItem&gt;\r\n" +
		"\t\t\t&lt;/NotificationData&gt;\r\n\t\t</BODY>\r\n\t</MSG>\r\n</NOTIFICATION>"
	return &msn.Command{Name: "NOT", Payload: []byte(body)}
}

func hex32(v uint64) string {
	const digits = "0123456789abcdef"
	var b [8]byte
	for i := 7; i >= 0; i-- {
		b[i] = digits[v&15]
		v >>= 4
	}
	return string(b[:])
}

// nsADC adds to a list with Escargot's rules (docs/protocol.md §3.5, §6).
func (s *Server) nsADC(n *nsSession, cmd *msn.Command) bool {
	t := cmd.Args[0]
	list, ok := listNames[cmd.Arg(1)]
	if !ok {
		n.sendLine("201", t)
		return true
	}
	a := n.acct
	rawH, rawF, cid, rest := adcFields(cmd.Args[2:])
	switch list {
	case PL:
		return false
	case RL:
		h, _ := normHandle(rawH)
		e := a.entry(h)
		if e == nil || e.lists&PL == 0 {
			return false // Escargot disconnects on ADC RL for a non-pending contact
		}
		e.lists = e.lists&^PL | RL
		n.sendLine("ADC", t, "RL", "N="+h)
		return true
	}
	if list == FL && rawH == "" && cid != "" {
		return s.adcGroup(n, t, cid, rest)
	}
	h, ok := normHandle(rawH)
	if !ok || h == a.handle {
		n.sendLine("201", t)
		return true
	}
	target := s.accounts[h]
	isTel := strings.HasPrefix(h, "tel:")
	if target == nil && !isTel {
		n.sendLine("208", t)
		return true
	}
	if list == FL {
		return s.adcFL(n, t, h, rawF, target, rest)
	}
	// AL or BL.
	id := ""
	nick := h
	if target != nil {
		id, nick = target.uuid, target.name
	}
	e := a.entry(h)
	if e != nil && e.lists&list != 0 {
		n.sendLine("215", t)
		return true
	}
	opposite := AL
	if list == AL {
		opposite = BL
	}
	if e != nil && e.lists&opposite != 0 {
		n.sendLine("219", t)
		return true
	}
	if e == nil {
		if isTel {
			id = newGUID()
		}
		e = a.upsert(h, id, nick)
	}
	before := a.canSee(h)
	e.lists |= list
	n.sendLine("ADC", t, cmd.Arg(1), "N="+h)
	if target != nil && a.online() && a.canSee(h) != before {
		s.refreshFor(a, target)
	}
	return true
}

// adcFL adds h to the forward list (or renames it there: re-adding is not an error on Escargot).
func (s *Server) adcFL(n *nsSession, t, h, rawF string, target *account, rest []string) bool {
	a := n.acct
	nick := msn.Decode(rawF)
	if target != nil && (nick == "" || strings.EqualFold(nick, h)) {
		nick = target.name
	}
	if nick == "" {
		nick = h
	}
	var gid string
	if len(rest) > 0 {
		gid = rest[0]
		if a.group(gid) == nil {
			n.sendLine("224", t)
			return true
		}
	}
	id := ""
	if target != nil {
		id = target.uuid
	} else if e := a.entry(h); e != nil && e.id != "" {
		id = e.id
	} else {
		id = newGUID()
	}
	e := a.upsert(h, id, nick)
	if e.id == "" {
		e.id = id
	}
	wasFL := e.lists&FL != 0
	e.lists |= FL
	e.nick = nick
	if gid != "" && !containsStr(e.groups, gid) {
		e.groups = append(e.groups, gid)
	}
	reply := []string{t, "FL", "N=" + h, "F=" + escapeParam(nick), "C=" + e.id}
	if gid != "" {
		reply = append(reply, gid)
	}
	n.sendLine("ADC", reply...)
	if target == nil {
		return true
	}
	if !wasFL {
		r := target.upsert(a.handle, a.uuid, a.name)
		if r.lists&RL == 0 {
			r.lists |= RL
			if r.lists&(AL|BL) == 0 {
				r.lists |= PL
			}
			if target.ns != nil {
				target.ns.sendLine("ADC", "0", "RL", "N="+a.handle, "F="+escapeParam(a.name))
				if s.opts.Dialect == Escargot {
					target.ns.send(abchNOT(target))
				}
			}
		}
	}
	if target.online() && target.canSee(a.handle) && n.status != "" {
		if s.opts.Dialect == Escargot {
			for _, p := range []string{"PHH", "PHW", "PHM"} {
				n.sendLine("BPR", h, p)
			}
			n.sendLine("BPR", h, "MOB", "N")
		}
		n.send(&msn.Command{Name: "ILN", Args: append([]string{t}, s.presenceArgs(target)...)})
		if target.psmSet {
			n.send(s.ubx(target))
		}
	}
	return true
}

// adcGroup puts an FL contact (by C= id) into a group.
func (s *Server) adcGroup(n *nsSession, t, cid string, rest []string) bool {
	a := n.acct
	e := a.entryByID(cid)
	if e == nil || e.lists&FL == 0 {
		n.sendLine("216", t)
		return true
	}
	if len(rest) == 0 || a.group(rest[0]) == nil {
		n.sendLine("224", t)
		return true
	}
	gid := rest[0]
	if containsStr(e.groups, gid) {
		n.sendLine("215", t)
		return true
	}
	e.groups = append(e.groups, gid)
	n.sendLine("ADC", t, "FL", "C="+cid, gid)
	return true
}

func containsStr(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func removeStr(list []string, v string) []string {
	out := list[:0]
	for _, x := range list {
		if x != v {
			out = append(out, x)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// nsREM removes from a list: FL by contact GUID (403 for anything else), AL/BL/PL by handle,
// RL never (disconnect).
func (s *Server) nsREM(n *nsSession, cmd *msn.Command) bool {
	t := cmd.Args[0]
	list, ok := listNames[cmd.Arg(1)]
	if !ok || len(cmd.Args) < 3 {
		n.sendLine("201", t)
		return true
	}
	a := n.acct
	if list == RL {
		return false
	}
	if list == FL {
		id := cmd.Args[2]
		if !isGUID(id) {
			n.sendLine("403", t)
			return true
		}
		e := a.entryByID(id)
		if e == nil || e.lists&FL == 0 {
			n.sendLine("216", t)
			return true
		}
		if gid := cmd.Arg(3); gid != "" {
			if a.group(gid) == nil {
				n.sendLine("224", t)
				return true
			}
			if !containsStr(e.groups, gid) {
				n.sendLine("225", t)
				return true
			}
			e.groups = removeStr(e.groups, gid)
			n.sendLine("REM", t, "FL", id, gid)
			return true
		}
		h := e.handle
		e.lists &^= FL
		e.groups = nil
		a.dropIfEmpty(h)
		n.sendLine("REM", t, "FL", id)
		if target := s.accounts[h]; target != nil {
			if r := target.entry(a.handle); r != nil && r.lists&RL != 0 {
				r.lists &^= RL | PL
				target.dropIfEmpty(a.handle)
				if target.ns != nil {
					target.ns.sendLine("REM", "0", "RL", "N="+a.handle)
					if s.opts.Dialect == Escargot {
						target.ns.send(abchNOT(target))
					}
				}
			}
		}
		return true
	}
	h, _ := normHandle(cmd.Args[2])
	e := a.entry(h)
	if e == nil || e.lists&list == 0 {
		n.sendLine("216", t)
		return true
	}
	before := a.canSee(h)
	e.lists &^= list
	a.dropIfEmpty(h)
	n.sendLine("REM", t, cmd.Args[1], h)
	if target := s.accounts[h]; target != nil && a.online() && a.canSee(h) != before {
		s.refreshFor(a, target)
	}
	return true
}

// nsGroup handles ADG, RMG and REG with the dialect's reply shapes (docs/protocol.md §3.6).
func (s *Server) nsGroup(n *nsSession, cmd *msn.Command) {
	t := cmd.Args[0]
	a := n.acct
	d := s.opts.Dialect
	switch cmd.Name {
	case "ADG":
		raw := cmd.Arg(1)
		name := msn.Decode(raw)
		switch {
		case name == "":
			n.sendLine("201", t)
		case len(escapeParam(name)) > 61:
			n.sendLine("229", t)
		case len(a.groups) >= 30:
			n.sendLine("223", t)
		case a.groupByName(name) != nil:
			n.sendLine("228", t)
		default:
			id := newGUID()
			a.groups = append(a.groups, group{id: id, name: name})
			enc := escapeParam(name)
			switch d {
			case Escargot:
				n.sendLine("ADG", t, enc, id, "0")
			case R2M:
				n.sendLine("ADG", t, "1", enc, id)
			default:
				n.sendLine("ADG", t, enc, id)
			}
		}
	case "RMG":
		id := cmd.Arg(1)
		if a.group(id) == nil {
			n.sendLine("224", t)
			return
		}
		for i := range a.groups {
			if a.groups[i].id == id {
				a.groups = append(a.groups[:i], a.groups[i+1:]...)
				break
			}
		}
		for i := range a.contacts {
			a.contacts[i].groups = removeStr(a.contacts[i].groups, id)
		}
		if d == Microsoft {
			n.sendLine("RMG", t, id)
		} else {
			n.sendLine("RMG", t, "1", id)
		}
	case "REG":
		id, raw := cmd.Arg(1), cmd.Arg(2)
		g := a.group(id)
		name := msn.Decode(raw)
		switch {
		case g == nil:
			n.sendLine("224", t)
		case name == "":
			n.sendLine("201", t)
		case len(escapeParam(name)) > 127:
			n.sendLine("229", t)
		default:
			g.name = name
			enc := escapeParam(name)
			if d == Escargot {
				n.sendLine("REG", t, "1", enc, id, "0")
			} else {
				n.sendLine("REG", t, id, enc)
			}
		}
	}
}

func (a *account) groupByName(name string) *group {
	for i := range a.groups {
		if a.groups[i].name == name {
			return &a.groups[i]
		}
	}
	return nil
}
