// Package politeness checks that the bridge is polite to an MSN server: a restart with many
// stored accounts, and a server that sends every session away at once, never make more login
// attempts per second than the configured login rate allows, and the reconnects after the mass
// disconnect are spread by jittered backoff rather than synchronised. The logins go through the
// real msn client against msntest and are counted on the server's side.
//
//	go test -tags nocrypto -race -run TestPoliteness -v ./bench/politeness/
package politeness
