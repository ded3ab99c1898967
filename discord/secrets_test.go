package discord

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// logSink is a goroutine-safe log buffer.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logSink) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logSink) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// cutTransport fails the webhook and interaction calls while cut is set, as a network that
// drops them would: http.Client then returns a *url.Error quoting the whole URL, token
// included.
type cutTransport struct {
	base http.RoundTripper
	cut  atomic.Bool
}

func (t *cutTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.cut.Load() && (strings.Contains(req.URL.Path, "/webhooks/") || strings.Contains(req.URL.Path, "/interactions/")) {
		return nil, errors.New("connection reset by peer")
	}
	return t.base.RoundTrip(req)
}

// When the webhook and interaction calls fail on the network, neither the log (at trace level)
// nor what the owner is shown holds a webhook token, an interaction token or the bot token.
func TestNoTokensInLogsWhenDiscordCallsFail(t *testing.T) {
	logs := &logSink{}
	tr := &cutTransport{}
	h := newHarness(t, harnessOpts{
		logs: logs,
		client: func(c *http.Client) *http.Client {
			tr.base = c.Transport
			return &http.Client{Transport: tr, Timeout: c.Timeout}
		},
	})
	h.login()
	if err := h.ms.BotSay(bob, alice, "first"); err != nil {
		t.Fatal(err)
	}
	var bobCh string
	h.waitFor("bob's first message", func() bool {
		c := h.dc.ChannelByName("bob-at-example-com")
		if c != nil {
			bobCh = c.ID
		}
		return c != nil && len(h.webhookMessages(c.ID)) == 1
	})

	tr.cut.Store(true)
	if err := h.ms.BotSay(bob, alice, "lost on the way"); err != nil {
		t.Fatal(err)
	}
	_, itok := h.slash(h.dc.OwnerID(), bobCh, "nudge", nil)
	h.waitFor("both failures logged", func() bool {
		s := logs.String()
		return strings.Contains(s, "failed to execute webhook") && strings.Contains(s, "an interaction")
	})
	tr.cut.Store(false)
	h.stopBridge()

	secrets := map[string]string{"bot token": h.dc.Token(), "interaction token": itok}
	for _, wh := range h.dc.Webhooks() {
		secrets["webhook token of "+wh.ChannelID] = wh.Token
	}
	if len(secrets) < 3 {
		t.Fatal("no webhook was made: the check is void")
	}
	out := logs.String()
	for name, s := range secrets {
		if s == "" {
			t.Fatalf("empty %s: the check is void", name)
		}
		if i := strings.Index(out, s); i >= 0 {
			t.Errorf("the log holds the %s: …%s…", name, out[max(0, i-200):min(len(out), i+len(s)+50)])
		}
		for _, c := range h.dc.Channels() {
			for _, m := range h.dc.Messages(c.ID) {
				if strings.Contains(m.Content, s) {
					t.Errorf("a message in #%s holds the %s: %q", c.Name, name, m.Content)
				}
			}
		}
	}
	if !strings.Contains(out, "/[redacted]") {
		t.Error("no scrubbed URL in the log: the failures did not carry one")
	}
}
