package main

import (
	"maps"
	"slices"
	"strings"
)

// doublePuppetTokenPrefix starts the only kind of double-puppeting secret bridgev2 uses:
// the as_token of an appservice registration allowed to act as the homeserver's users.
const doublePuppetTokenPrefix = "as_token:"

// validateDoublePuppet checks matrix.double_puppet.secrets. bridgev2 skips any other kind of
// secret without a word (users then silently get no double puppet), and the bridge's own
// as_token may act only as its ghosts, so it cannot stand in for the second registration's.
// The secrets themselves are never quoted in an error.
func validateDoublePuppet(mx *MatrixConfig, bad func(key, format string, args ...any)) {
	const key = "matrix.double_puppet.secrets"
	for _, server := range slices.Sorted(maps.Keys(mx.DoublePuppet.Secrets)) {
		token, ok := strings.CutPrefix(mx.DoublePuppet.Secrets[server], doublePuppetTokenPrefix)
		switch {
		case !ok || strings.TrimSpace(token) == "":
			bad(key, `the secret for %s must be "as_token:" followed by the as_token of a double-puppeting appservice registration (no other kind is supported)`, quote(server))
		case token == mx.AppService.ASToken:
			bad(key, "the secret for %s must be the as_token of a second appservice registration, not the bridge's own", quote(server))
		}
	}
}
