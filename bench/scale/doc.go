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
// SCALE_SECONDS override the size, the message rate and the traffic duration, SCALE_DBCONNS the
// database pool (the example config's max_open_conns, as many idle). SCALE_HEAPPROFILE=path
// writes a heap profile of the idle state (everyone logged in) for go tool pprof, the goroutines
// of that moment beside it (path.goroutines.txt), one right before the traffic (path.before,
// after the warm-up; it collects, so the traffic then starts on a fresh heap) and one after it
// (path.after: with path.before as -base and -sample_index=alloc_space, what the traffic
// allocated), each with its goroutines.
// During the traffic, SCALE_CPUPROFILE=path writes a CPU profile and SCALE_TRACE=path the first
// 3 s of an execution trace (go tool trace -pprof=syscall, sched, sync: where the message path
// waited), SCALE_GCTRACE=path the last 3 s of one kept by a flight recorder, written 200 ms
// after the first collection in the traffic ended (the window of most slow messages),
// SCALE_MUTEXPROFILE=path the lock and blocking profiles (path.mutex, path.block: where
// goroutines waited, blocks of 100 µs and more); SCALE_LATDUMP=path writes each contact
// message's parse time and bridge share, in nanoseconds, one per line, for a timeline of the
// tail.
//
// After the traffic, three forced collections say what one costs (wall time and the
// collector's CPU: the part of the tail the heap's layout decides); SCALE_GCPROFILE=path writes
// a CPU profile of them.
//
// The traffic is paced by the clock: message k is due k intervals after the start, so a
// generator that fell behind catches up and the rate offered is the rate asked for. The traffic
// line reports the hypervisor's steal during it (from /proc/stat), and the wake-up line how late
// a goroutine sleeping 1 ms woke, measured in the same seconds: on a virtual machine whose idle
// CPUs halt, every hand-off on the message path can wait as long, and a run whose wake-ups
// were late measures the machine more than the bridge.
package scale
