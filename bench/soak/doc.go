// Package soak holds the bridge's fault soak: many MSN accounts on one core against msntest,
// mirrored into Discord (the real frontend against discordtest) and into Matrix (the real
// frontend, bridgev2 with the MSN connector, on matrixtest's fake homeserver), chatting both
// ways while faults are injected at random from a seeded generator. At the end every message
// must have been delivered exactly once or reported failed to its sender.
//
// Run it with
//
//	go test -tags nocrypto -race -run TestSoak -v ./bench/soak/
//
// SOAK_DURATION (a Go duration, default 25s) sets how long traffic and faults run, SOAK_SEED the
// generator's seed and SOAK_ACCOUNTS the number of accounts (default 20). SOAK_SESSION_TIMEOUT
// (a Go duration) is how long discordtest keeps a dropped gateway session resumable (default 2
// minutes, as Discord): a short one makes every gateway drop a fresh session, whose gap the
// frontend catches up over REST. SOAK_DISCORD_FAULTS=1 adds Discord's 5xx answers and a bot
// role missing a permission on an account's channels for a while. SOAK_DISCORD_LOG names a
// file for the Discord frontend's log at debug level.
//
// After the traffic the soak waits until nothing is on its way (see settle), at most 5
// minutes, and prints the invalid Discord requests (401, 403, 429) of the run: the bridge's
// own, those the soak did not inject, must stay under 1,000 per 10 minutes (Discord bans at
// 10,000).
package soak
