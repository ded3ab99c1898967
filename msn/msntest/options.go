package msntest

import (
	"time"

	"github.com/rs/zerolog"
)

// Dialect selects which server's quirks the Server imitates where servers differ
// (docs/protocol.md §3.6, §6). The zero value is Escargot.
type Dialect int

const (
	// Escargot imitates the Escargot server as recorded in the captures: no reply to OUT, CVR
	// echoes the client version, ADG/RMG/REG with extra tokens, full SYN every time, unknown
	// commands ignored, bare from-PP tokens.
	Escargot Dialect = iota
	// R2M imitates rusty-retro-messaging: VER picks the first version of the client's list,
	// R2M's ADG/RMG/REG shapes, from-PP 't=<token>', 8-digit switchboard session ids.
	R2M
	// Microsoft imitates the historical MSN servers as the wiki documents them: fixed CVR
	// recommendation, Microsoft-style Passport challenge, wiki ADG/RMG/REG shapes, OUT answered
	// with OUT, 200 for unknown commands, SYN answered with timestamps only when current,
	// from-PP 't=…&p=…'.
	Microsoft
)

// String returns the dialect's name.
func (d Dialect) String() string {
	switch d {
	case Escargot:
		return "escargot"
	case R2M:
		return "r2m"
	case Microsoft:
		return "microsoft"
	}
	return "unknown"
}

// Defaults used when the matching Options field is zero.
const (
	DefaultTicketTTL   = 30 * time.Second
	DefaultQNG         = 60
	DefaultEventLimit  = 4096
	DefaultListVersion = "2000-01-01T00:00:00.0-00:00"
	// MaxSBPayload is the largest switchboard MSG payload accepted; larger closes the
	// connection (docs/protocol.md §4.8).
	MaxSBPayload = 1664
)

// escargotShields is Escargot's Shields.xml as captured (151 bytes, LF line ends).
const escargotShields = "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\n<config>\n\t<shield><cli maj=\"7\" min=\"0\" minbld=\"0\" maxbld=\"9999\" deny=\" \" /></shield>\n\t<block></block>\n</config>"

// Options configures a Server. The zero value is an Escargot-like server without dispatch.
type Options struct {
	// Dialect picks the quirks to imitate (default Escargot).
	Dialect Dialect
	// Dispatch starts a separate dispatch server that answers USR TWN I with XFR NS to the
	// notification server. Without it the NS accepts logins directly (Escargot).
	Dispatch bool
	// SendCHL makes the NS send "CHL 0 <challenge>" right after each login and check the QRY.
	SendCHL bool
	// ChallengePadAlways verifies QRY answers with the "always pad" variant of the MSNP11
	// algorithm (docs/protocol.md §3.11 padding note).
	ChallengePadAlways bool
	// Versions lists the protocol versions offered, best first (default MSNP11, MSNP10).
	Versions []string
	// TicketTTL is how long a Passport ticket is accepted (default 30 s; tickets may be reused
	// within it, as on Escargot).
	TicketTTL time.Duration
	// QNG is the number of seconds answered to PNG (default 60).
	QNG int
	// TWNChallenge overrides the string sent in "USR t TWN S <challenge>".
	TWNChallenge string
	// ListVersion is the contact-list version (timestamp) sent in SYN replies (default
	// Escargot's fixed 2000-01-01T00:00:00.0-00:00).
	ListVersion string
	// ShieldsXML overrides the GCF Shields.xml payload (default: Escargot's).
	ShieldsXML string
	// AcceptCHGWithoutCaps answers "CHG t NLN" without capabilities instead of ignoring it.
	AcceptCHGWithoutCaps bool
	// LenientUUX accepts UUX payloads that are well-formed XML fragments without the <Data>
	// root (the seed transcript's client sends those).
	LenientUUX bool
	// BareUBX sends UBX payloads without the <Data> wrapper.
	BareUBX bool
	// OmitEmptyMSNObj leaves the msnobj token out of ILN/NLN when a user has none, instead of
	// Escargot's %3Cmsnobj%2F%3E.
	OmitEmptyMSNObj bool
	// InitialPresenceAfterNextCommand delays the ILN/UBX burst of the first CHG until the reply
	// to the next command (the seed transcript's order: CHG, UUX, UUX reply, ILN, UBX).
	InitialPresenceAfterNextCommand bool
	// NexusNoScheme makes the nexus advertise DALogin without "https://" (Microsoft, R2M).
	NexusNoScheme bool
	// NexusHeader is the header name the nexus uses, written exactly as given (default
	// "Passporturls", as Escargot's reverse proxy sends it).
	NexusHeader string
	// EventLimit bounds the received-command log (default 4096; negative disables it).
	EventLimit int
	// MaxPendingOutput is how many bytes may wait for a slow reader before its connection is
	// dropped (default 1 MiB).
	MaxPendingOutput int
	// Accounts are created by New, in order.
	Accounts []AccountSpec
	// Friends lists pairs of handles made mutual friends (FL+AL both ways) by New.
	Friends [][2]string
	// Log receives the server's logs (default: discarded).
	Log *zerolog.Logger
}

// AccountSpec describes an account to create with Options.Accounts.
type AccountSpec struct {
	Handle, Password, Name string
	// Status, when set (NLN, AWY, …), makes the account online without a socket, like a bot.
	Status string
	// Caps are the capabilities shown for a socketless online account (default 0x40000000).
	Caps uint32
	PSM  string
	// Bot, when set, makes the account a bot that answers messages.
	Bot BotFunc
}

// SeedTranscriptOptions returns the configuration under which the project's seed transcript
// (an MSNP10 session of example@hotmail.com, testdata/seed-transcript.txt) replays: Microsoft
// dialect with dispatch, the transcript's Passport challenge, list version and Shields.xml,
// CHG without capabilities and UUX without <Data> accepted, ILN/UBX after the UUX reply, and
// the accounts example@hotmail.com (password "password") and anotheruser@hotmail.com (online,
// "another user", PSM "new feature :P", capabilities 1073791084), friends with each other.
func SeedTranscriptOptions() Options {
	return Options{
		Dialect:                         Microsoft,
		Dispatch:                        true,
		TWNChallenge:                    "passport=parameters,neat=huh,lc=1033,id=507",
		ListVersion:                     "2024-09-28T17:18:18.6400000-07:00",
		ShieldsXML:                      `<?xml version= "1.0" encoding="utf-8" ?><config><shield><cli maj="7" min="0" minbld="0" maxbld="9999" deny="" /></shield><block></block></config>`,
		AcceptCHGWithoutCaps:            true,
		LenientUUX:                      true,
		BareUBX:                         true,
		OmitEmptyMSNObj:                 true,
		InitialPresenceAfterNextCommand: true,
		NexusNoScheme:                   true,
		Accounts: []AccountSpec{
			{Handle: "example@hotmail.com", Password: "password", Name: "example"},
			{Handle: "anotheruser@hotmail.com", Password: "password", Name: "another user",
				Status: "NLN", Caps: 1073791084, PSM: "new feature :P"},
		},
		Friends: [][2]string{{"example@hotmail.com", "anotheruser@hotmail.com"}},
	}
}

func (o *Options) fill() {
	if len(o.Versions) == 0 {
		o.Versions = []string{"MSNP11", "MSNP10"}
	}
	if o.TicketTTL <= 0 {
		o.TicketTTL = DefaultTicketTTL
	}
	if o.QNG <= 0 {
		o.QNG = DefaultQNG
	}
	if o.TWNChallenge == "" {
		switch o.Dialect {
		case Microsoft:
			o.TWNChallenge = "lc=1033,id=507,tw=40,fs=1,ru=http%3A%2F%2Fmessenger%2Emsn%2Ecom,ct=1062764229,kpp=1,kv=5,ver=2.1.0173.1,tpf=43f8a4c8ed940c04e3740be46c4d1619"
		default:
			o.TWNChallenge = "ct=1,rver=1,wp=FS_40SEC_0_COMPACT,lc=1,id=1"
		}
	}
	if o.ListVersion == "" {
		o.ListVersion = DefaultListVersion
	}
	if o.ShieldsXML == "" {
		o.ShieldsXML = escargotShields
	}
	if o.NexusHeader == "" {
		if o.Dialect == Escargot {
			o.NexusHeader = "Passporturls"
		} else {
			o.NexusHeader = "PassportURLs"
		}
	}
	if o.EventLimit == 0 {
		o.EventLimit = DefaultEventLimit
	}
	if o.MaxPendingOutput <= 0 {
		o.MaxPendingOutput = 1 << 20
	}
	if o.Log == nil {
		nop := zerolog.Nop()
		o.Log = &nop
	}
}
