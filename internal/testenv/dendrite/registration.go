package dendrite

import (
	"testing"

	"maunium.net/go/mautrix/appservice"
)

// RegistrationOptions describes an appservice registration for NewRegistration.
// Empty fields take the defaults named on each.
type RegistrationOptions struct {
	// ID is the appservice ID. Default "msn".
	ID string
	// URL is where the homeserver sends transactions, normally
	// Homeserver.ASURL. Empty means the homeserver sends nothing (as for a
	// double-puppeting registration).
	URL string
	// ASToken is the token the appservice uses towards the homeserver.
	// Default: 64 random characters.
	ASToken string
	// HSToken is the token the homeserver uses towards the appservice.
	// Default: 64 random characters.
	HSToken string
	// SenderLocalpart is the bot's localpart. Default "msnbot".
	SenderLocalpart string
	// UserNamespaces are exclusive user ID regexes. Dendrite matches them
	// unanchored, so anchor them. Default `^@msn_.*:localhost$`.
	UserNamespaces []string
	// NonExclusiveUsers are non-exclusive user ID regexes (for example
	// `^@.*:localhost$` for double puppeting).
	NonExclusiveUsers []string
	// AliasNamespaces are exclusive room alias regexes.
	AliasNamespaces []string
}

// NewRegistration builds an appservice registration from opts. Rate limiting
// is off and ephemeral events are requested (both the stable and the MSC2409
// key), which mautrix requires before it handles the events InjectEphemeral
// sends; Dendrite itself ignores those keys.
func NewRegistration(opts RegistrationOptions) *appservice.Registration {
	reg := appservice.CreateRegistration()
	reg.ID = opts.ID
	if reg.ID == "" {
		reg.ID = "msn"
	}
	reg.URL = opts.URL
	if opts.ASToken != "" {
		reg.AppToken = opts.ASToken
	}
	if opts.HSToken != "" {
		reg.ServerToken = opts.HSToken
	}
	reg.SenderLocalpart = opts.SenderLocalpart
	if reg.SenderLocalpart == "" {
		reg.SenderLocalpart = "msnbot"
	}
	rateLimited := false
	reg.RateLimited = &rateLimited
	reg.EphemeralEvents = true
	reg.SoruEphemeralEvents = true

	users := opts.UserNamespaces
	if len(users) == 0 && len(opts.NonExclusiveUsers) == 0 {
		users = []string{`^@msn_.*:localhost$`}
	}
	for _, re := range users {
		reg.Namespaces.UserIDs = append(reg.Namespaces.UserIDs, appservice.Namespace{Regex: re, Exclusive: true})
	}
	for _, re := range opts.NonExclusiveUsers {
		reg.Namespaces.UserIDs = append(reg.Namespaces.UserIDs, appservice.Namespace{Regex: re, Exclusive: false})
	}
	for _, re := range opts.AliasNamespaces {
		reg.Namespaces.RoomAliases = append(reg.Namespaces.RoomAliases, appservice.Namespace{Regex: re, Exclusive: true})
	}
	return reg
}

// RegistrationYAML returns reg as a YAML document for Homeserver.Start. It
// fails t if reg cannot be encoded.
func RegistrationYAML(t testing.TB, reg *appservice.Registration) []byte {
	t.Helper()
	out, err := reg.YAML()
	if err != nil {
		t.Fatalf("failed to encode registration %q: %v", reg.ID, err)
	}
	return []byte(out)
}
