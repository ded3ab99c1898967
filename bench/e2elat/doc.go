// Package e2elat measures end-to-end latency against a real Dendrite: an MSN message bridged
// into Matrix (msntest → core → matrix frontend on bridgev2 → Dendrite → a syncing client),
// compared with a message another Matrix user sends directly to the same client on the same
// homeserver in the same run. It runs only with MSN_E2E_LATENCY=1 (and the Dendrite binaries):
//
//	MSN_E2E_LATENCY=1 go test -tags nocrypto -run TestEndToEndLatency -v ./bench/e2elat/
//
// E2E_SAMPLES sets the number of messages each way (default 60).
package e2elat
