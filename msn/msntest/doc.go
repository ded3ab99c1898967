// Package msntest is an in-process MSNP11 server for tests and demos: a notification server
// (NS) that can also act as dispatch, an optional separate dispatch server, a switchboard (SB)
// and the Passport 1.4 nexus and login over HTTP and HTTPS, all on 127.0.0.1 with
// kernel-chosen ports.
//
// By default it behaves as the Escargot server does on the wire (the captures in
// testdata/escargot-*.txt); Options.Dialect and the other Options switch to the R2M or
// historical Microsoft shapes where servers differ, and SeedTranscriptOptions reproduces the
// project's seed transcript. Accounts, contact lists and groups are created through the API;
// socketless "bot" accounts (AddBot, SetPresence, BotSay) are online without a client and
// answer messages. Fault injection (DropConnection, Kick, Shutdown, RCT, SendChallenge,
// NAKNext/NAKAll, SetDelay, InjectLine, CloseSwitchboards, SetOffline, PassportFault,
// PassportRedirect) and observation (Events, WaitFor, Online, LoggedIn) are methods on Server,
// all safe for concurrent use.
//
// # P2P with bots
//
// A socketless account (AddBot, or an account put online with SetPresence) speaks MSNP2P with
// the same engine as msn.Client, its packets relayed over the switchboard like any member's
// (unconfigured, it declines files and objects it did not publish):
//
//	obj, _ := srv.SetBotDisplayPicture("bob@example.com", png) // msnobj in bob's ILN/NLN, served
//	emo, _ := srv.BotPublishObject("bob@example.com", msn.ObjectEmoticon, "", gif)
//	_ = srv.BotSayWithEmoticons("bob@example.com", "alice@example.com", "hi (cat)",
//		[]msn.Emoticon{{Shortcut: "(cat)", Object: emo}}) // MessageReceived.Emoticons
//	cab := msntest.WinkCAB("Kiss", thumbPNG, anim) // a real cabinet with a thumbnail
//	wink, _ := srv.BotPublishObject("bob@example.com", msn.ObjectWink, "Kiss", cab)
//	_ = srv.BotWink("bob@example.com", "alice@example.com", wink) // WinkReceived
//	err := srv.BotSendFile(ctx, "bob@example.com", "alice@example.com", "a.pdf", data)
//	// blocks until alice's client Accepts (nil) or Declines (msn.ErrTransferDeclined)
//	err = srv.BotSendFileFrom(ctx, "bob@example.com", "alice@example.com", "b.bin", size, r)
//	// the same, reading r as it goes: a reader that blocks is a bot that stops half way
//	_ = srv.SetBotAcceptFiles("bob@example.com", true) // default: decline
//	release, _ := srv.SetBotStallFiles("bob@example.com", 100_000) // stops reading half way
//	f, _ := srv.WaitBotFile(ctx, "bob@example.com", 1) // f.Name, f.Data, f.Err
//	pic, _ := srv.BotFetchObject(ctx, "bob@example.com", aliceObj) // a user's object
//
// Inside a BotFunc the same is on the chat: chat.Wink, chat.SayWithEmoticons, and
// chat.SendFile, which blocks for the whole transfer and so must run on a goroutine of its own
// (a BotFunc must return quickly).
// A bot accepts files up to MaxBotFileSize (8 MiB) into memory and records at most the last 64
// (BotFiles). Its P2P packets to a user wait while that user's connection has more than 128 KiB
// unread, so large files do not pile up in the server.
//
// The server never panics on client input: malformed lines get an error reply or a
// disconnect, oversized lines and payloads close the connection.
//
// # Memory and goroutines
//
// The server is meant to hold 10,000 logged-in accounts with 100 contacts each in one
// process, so per-connection and per-contact costs are kept small:
//
//   - Each connection has exactly two goroutines: a reader (msn.Reader, 4 KiB buffer) that
//     handles commands inline, and a writer that drains an append-only output buffer. No
//     per-connection timers or tickers: the unauthenticated-SB timeout is a read deadline,
//     ticket expiry is checked on use. Bot behaviours run on the sender's reader goroutine.
//   - Sending never blocks: handlers append to the output buffer under the connection's
//     mutex; the writer swaps it out. Buffers over 4 KiB (a SYN burst) are released after the
//     write, so an idle connection holds no output memory. A peer that lets more than
//     Options.MaxPendingOutput (1 MiB) pile up is dropped.
//   - A contact list is a slice sorted by handle (binary search, no per-account map); an
//     entry is about 80 bytes and shares its handle and id strings with the contact's
//     account. 10,000 × 100 contacts is about 80 MB of list data.
//   - Presence fan-out walks the changing account's own list (its RL entries), never all
//     sessions.
//   - One mutex guards the model. Handlers are short and never do I/O under it; lock order
//     is Server.mu, then a connection's output mutex.
//   - The event log is bounded (Options.EventLimit, default 4096; negative disables it, which
//     large benchmarks should do).
package msntest
