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
// generator's seed and SOAK_ACCOUNTS the number of accounts (default 20).
package soak
