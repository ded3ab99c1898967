// Package msn is an MSNP11 (with MSNP10 fallback) client library: Passport 1.4 login, contact
// list and presence on the notification server, text chat over switchboard sessions, and
// display pictures, custom emoticons, winks and files over MSNP2P on the switchboard (P2P, a
// transport-agnostic engine the Client runs; FetchObject, SetDisplayPicture, PublishObject,
// SendFile, FileOffered, WinkReceived, MessageReceived.Emoticons). It knows nothing of any
// bridge or frontend.
//
// # Usage
//
//	cfg := msn.Config{
//		Server:   "msn.example.org:1863",
//		NexusURL: "https://msn.example.org/rdr/pprdr.asp",
//		Log:      logger,
//	}
//	c, err := msn.NewClient(cfg, "alice@example.com", password, func(ev msn.Event) {
//		switch ev := ev.(type) {
//		case *msn.MessageReceived:
//			fmt.Println(ev.From, ev.Text)
//		case *msn.Disconnected:
//			// ev.Err is a *msn.DisconnectError; msn.Retryable(ev.Err) says whether to reconnect.
//		}
//	})
//	if err != nil { … }
//	if err := c.Login(ctx); err != nil {
//		if errors.Is(err, msn.ErrBadCredentials) { … stop, ask for a new password … }
//		… msn.Retryable(err) → retry later with backoff …
//	}
//	defer c.Close()
//	err = c.SendText(ctx, "bob@example.com", "hello", nil) // nil only once the server ACKed it
//
// # Concurrency contract
//
// Every exported Client method is safe for concurrent use. Methods that talk to the server
// take a context first and block until the server's reply, an error reply (a *ServerError), the
// context's end, the per-request timeout (Config.RequestTimeout, ErrTimeout) or the connection's
// end (ErrClosed); none of them can hang forever.
//
// Events are delivered to the Handler one at a time and in the order they happened, from a
// delivery goroutine that runs while events are queued (an idle Client has none; its only
// goroutine is the notification server's reader, and the keepalive is a timer). The handler may
// call any Client method but Close (see below), blocking ones included: the reader goroutines
// never wait for the handler, they append to a queue. The queue is bounded by
// Config.MaxQueuedEvents; a handler that falls that far behind gets the session dropped
// (Disconnected with ErrEventOverflow) instead of unbounded memory growth. While the handler
// runs, later events wait, so a handler that blocks for long delays every event after it.
//
// Login delivers nothing until it succeeds; then LoggedIn is the first event, and Disconnected
// (with a *DisconnectError) is emitted exactly once, as the last event, when the session ends
// for any reason, Close included. A failed Login emits nothing. A Client is used for one
// session: to reconnect, Close it and create a new one.
//
// Close sends OUT, closes every connection and waits for all goroutines the Client started,
// including the delivery of the events still queued; after it returns, no goroutine of the
// Client remains and the handler is not called again. The handler itself ends the session with
// CloseFromHandler, which does the same but wait for the delivery it runs on (Close there would
// wait for itself); the delivery then finishes the queue after the handler returns.
//
// The P2P calls (FetchObject, SendFile, FileOffer.Accept) block for a whole transfer: bounded
// by their idle timeouts, not by RequestTimeout. Call Accept off the handler's goroutine.
//
// Passwords and Passport tickets never appear in log lines or error strings.
package msn
