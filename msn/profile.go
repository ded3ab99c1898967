package msn

import (
	"fmt"
	"strconv"

	"github.com/rs/zerolog"
)

// HotmailProfile holds the fields of the NS text/x-msmsgsprofile message sent after login
// (docs/protocol.md §3.17). The Passport MSPAuth cookie is kept out of the exported fields: read it
// with MSPAuth; String, GoString and MarshalZerologObject omit it, so the value is safe to log.
type HotmailProfile struct {
	LoginTime                 int64  // unix seconds
	MemberIDHigh, MemberIDLow string // PUID halves, decimal as sent
	Country, Language         string // "country", "lang_preference"
	ClientIP                  string // our public address as the server sees it
	ClientPort                int    // as sent, no byte swapping
	ABCHMigrated              bool   // contact and group ids are GUIDs
	EmailEnabled              bool
	mspAuth                   string
}

// ParseHotmailProfile reads the profile fields of m. Missing or malformed fields stay zero; it
// does not check the content type.
func ParseHotmailProfile(m *MIMEMessage) HotmailProfile {
	p := HotmailProfile{
		MemberIDHigh: m.Get("MemberIdHigh"),
		MemberIDLow:  m.Get("MemberIdLow"),
		Country:      m.Get("country"),
		Language:     m.Get("lang_preference"),
		ClientIP:     m.Get("ClientIP"),
		ABCHMigrated: m.Get("ABCHMigrated") == "1",
		EmailEnabled: m.Get("EmailEnabled") == "1",
		mspAuth:      m.Get("MSPAuth"),
	}
	p.LoginTime, _ = strconv.ParseInt(m.Get("LoginTime"), 10, 64)
	if port, err := strconv.Atoi(m.Get("ClientPort")); err == nil && port >= 0 && port <= 65535 {
		p.ClientPort = port
	}
	return p
}

// MSPAuth returns the Passport MSPAuth cookie (a secret: never log it).
func (p HotmailProfile) MSPAuth() string { return p.mspAuth }

// PUID returns the Passport unique id assembled from MemberIDHigh and MemberIDLow, and false
// when either is missing or not a 32-bit number.
func (p HotmailProfile) PUID() (uint64, bool) {
	hi, err1 := strconv.ParseUint(p.MemberIDHigh, 10, 32)
	lo, err2 := strconv.ParseUint(p.MemberIDLow, 10, 32)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return hi<<32 | lo, true
}

// String describes the profile for logs, without MSPAuth.
func (p HotmailProfile) String() string {
	return fmt.Sprintf("HotmailProfile{LoginTime:%d MemberID:%s/%s Country:%q Language:%q Client:%s:%d ABCHMigrated:%t}",
		p.LoginTime, p.MemberIDHigh, p.MemberIDLow, p.Country, p.Language, p.ClientIP, p.ClientPort, p.ABCHMigrated)
}

// GoString is String, so %#v does not print MSPAuth either.
func (p HotmailProfile) GoString() string { return p.String() }

// MarshalZerologObject writes the profile's fields, without MSPAuth, to a zerolog event.
func (p HotmailProfile) MarshalZerologObject(e *zerolog.Event) {
	e.Int64("login_time", p.LoginTime).
		Str("member_id_high", p.MemberIDHigh).
		Str("member_id_low", p.MemberIDLow).
		Str("country", p.Country).
		Str("language", p.Language).
		Str("client_ip", p.ClientIP).
		Int("client_port", p.ClientPort).
		Bool("abch_migrated", p.ABCHMigrated)
}
