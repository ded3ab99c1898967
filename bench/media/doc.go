// Package media measures the cost of MSN media through the bridge, against msntest over
// loopback, all in one process:
//
//   - TestMediaTransfer: a 1 MB file each way, a bot → msn.Client → core → spool → File.Open read
//     to the end, and Account.SendFile → core → msn.Client → bot; wall time and the process's CPU
//     (user + system, the server's share included), beside the same file between two plain
//     msn.Clients and between a bot and a plain client on the same server in the same run
//     (median of MEDIA_ROUNDS rounds, default 5, interleaved). The account's send budget is
//     lifted, so that files sent back to back do not wait their turn.
//   - TestMediaConcurrent: heap in use and RSS while 100 bots each send a 1 MB file at once, each
//     to its own account of the bridge (sampled every 50 ms; the bots' data is one shared slice,
//     the bridge spools to disk). MEDIA_TRANSFERS changes the count.
//   - TestMediaAvatarLogin: 1,000 accounts × 100 contacts, each contact with its own display
//     picture (the same 100 contacts on every list): the fetches the core made, the time until
//     every account was shown every picture, and a second start on the same database, which
//     must fetch none.
//
// They run only with MSN_MEDIA_BENCH=1, without -race, each bounded by a timeout (the three
// together well under 10 minutes):
//
//	MSN_MEDIA_BENCH=1 go test -tags nocrypto -count=1 -run TestMedia -v -timeout 10m ./bench/media/
//
// MEDIA_ACCOUNTS and MEDIA_CONTACTS change the avatar test's size.
package media
