package discordtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
)

// waitTimeout bounds every wait for an event; nothing asserts how fast things happen.
const waitTimeout = 30 * time.Second

// newServer starts a server closed at the end of the test, after the sessions.
func newServer(t *testing.T, opts Options) *Server {
	t.Helper()
	if opts.HeartbeatInterval == 0 {
		// Long enough that a loaded machine does not miss five acknowledgements in a row;
		// tests about heartbeats set their own.
		opts.HeartbeatInterval = 5 * time.Second
	}
	srv := New(opts)
	t.Cleanup(srv.Close)
	return srv
}

// newSession returns an unopened session for srv, closed when the test ends.
func newSession(t *testing.T, srv *Server, token string) *discordgo.Session {
	t.Helper()
	sess, err := srv.NewSession(token)
	if err != nil {
		t.Fatalf("NewSession: %v", err)
	}
	t.Cleanup(func() { CloseSession(sess) })
	return sess
}

// events collects discordgo events of one type.
func events[T any](sess *discordgo.Session) <-chan T {
	ch := make(chan T, 256)
	sess.AddHandler(func(_ *discordgo.Session, e T) {
		select {
		case ch <- e:
		default:
		}
	})
	return ch
}

// wait returns the next event for which ok holds, failing the test after waitTimeout.
func wait[T any](t *testing.T, ch <-chan T, what string, ok func(T) bool) T {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case e := <-ch:
			if ok == nil || ok(e) {
				return e
			}
		case <-deadline:
			var zero T
			t.Fatalf("timed out waiting for %s", what)
			return zero
		}
	}
}

// openSession opens a session with the bridge's intents and waits for its GUILD_CREATE.
func openSession(t *testing.T, srv *Server) *discordgo.Session {
	t.Helper()
	sess := newSession(t, srv, "")
	guilds := events[*discordgo.GuildCreate](sess)
	if err := sess.Open(); err != nil {
		t.Fatalf("Open: %v", err)
	}
	wait(t, guilds, "GUILD_CREATE", nil)
	return sess
}

// restCode returns the Discord error code of a *discordgo.RESTError, or -1.
func restCode(err error) int {
	var re *discordgo.RESTError
	if errors.As(err, &re) && re.Message != nil {
		return re.Message.Code
	}
	return -1
}

// raw sends one request straight to the fake, with the bot token unless auth is "".
func raw(t *testing.T, srv *Server, method, path, auth, contentType string, body []byte) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL()+apiPrefix+path, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("NewRequest: %v", err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := srv.HTTPClient().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var obj map[string]any
	_ = json.Unmarshal(b, &obj)
	return resp, obj
}

func botAuth(srv *Server) string { return "Bot " + srv.Token() }

// generalID is the id of the default "general" text channel.
func generalID(t *testing.T, srv *Server) string {
	t.Helper()
	c := srv.ChannelByName("general")
	if c == nil {
		t.Fatal("no general channel")
	}
	return c.ID
}
