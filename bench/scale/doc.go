// Package scale measures the bridge at scale in one process: N logged-in MSN accounts with 100
// contacts each, against msntest (in a child process), on one core with the Matrix frontend
// (bridgev2 with the MSN connector, on matrixtest) attached to every account. It reports RSS,
// goroutines, heap per account, the time to log everyone in, and the bridge's share of message
// relay latency at a fixed message rate, both ways. The runtime's memory limit is GOMEMLIMIT's
// (the bridge's memory_limit), printed with the results.
//
// The default (200 accounts) is a smoke test that always runs:
//
//	go test -tags nocrypto -run TestScale -v ./bench/scale/
//
// MSN_SCALE=1 runs the full size (10,000 accounts, 1,000 msg/s); SCALE_ACCOUNTS, SCALE_RATE and
// SCALE_SECONDS override the size, the message rate and the traffic duration. SCALE_HEAPPROFILE=path
// writes a heap profile of the idle state (everyone logged in) for go tool pprof, and the
// goroutines of that moment beside it (path.goroutines.txt).
package scale
