package bridge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestScrubURLs(t *testing.T) {
	tests := []struct{ in, want string }{
		{"no url here", "no url here"},
		{`Post "https://discord.com/api/v9/webhooks/123/tok-SECRET?wait=true": dial tcp: connection refused`,
			`Post "https://discord.com/[redacted]": dial tcp: connection refused`},
		{"https://example.org", "https://example.org"},
		{"see https://example.org/ and http://127.0.0.1:8080/x?token=SECRET then",
			"see https://example.org/[redacted] and http://127.0.0.1:8080/[redacted] then"},
		{"postgres://user:SECRET@db.example:5432/bridge failed", "postgres://db.example:5432/[redacted] failed"},
		{"ws://[::1]:80#SECRET", "ws://[::1]:80/[redacted]"},
		{`escaped "https://h/a\"SECRET"`, `escaped "https://h/[redacted]\"SECRET"`},
		{"://SECRET/x", "://SECRET/[redacted]"},
	}
	for _, tt := range tests {
		got := ScrubURLs(tt.in)
		if got != tt.want {
			t.Errorf("ScrubURLs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestScrubErrorKeepsChain(t *testing.T) {
	if ScrubError(nil) != nil {
		t.Fatal("ScrubError(nil) is not nil")
	}
	plain := errors.New("plain")
	if ScrubError(plain) != plain {
		t.Error("an error without a URL was replaced")
	}
	// What discordgo returns for a webhook execute whose connection failed.
	req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:1/api/v9/webhooks/42/hook-Token-SECRET?wait=true", nil)
	_, err := (&http.Client{}).Do(req)
	if err == nil {
		t.Skip("something listens on 127.0.0.1:1")
	}
	wrapped := fmt.Errorf("failed to execute webhook: %w", err)
	s := ScrubError(wrapped)
	if strings.Contains(s.Error(), "SECRET") || !strings.Contains(s.Error(), "failed to execute webhook") {
		t.Errorf("scrubbed error %q", s)
	}
	if !errors.Is(s, err) {
		t.Error("the scrubbed error lost its chain")
	}
}

// urlFailingFrontend fails every event the way a frontend whose HTTP call failed does: with the
// whole request URL, token included, in its error.
type urlFailingFrontend struct{ url string }

func (f urlFailingFrontend) Name() string { return "discord" }

func (f urlFailingFrontend) HandleEvent(ctx context.Context, _ *Account, _ Event) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		return errors.New("unexpected answer")
	}
	return fmt.Errorf("failed to show an msn message: %w", err)
}

// A frontend's failing network call is logged by the core without the token in its URL.
func TestFrontendErrorLoggedWithoutURLToken(t *testing.T) {
	ctx := context.Background()
	logs := &logSink{}
	srv := newFakeServer()
	srv.passwords["alice@example.com"] = "pw"
	clock := newFakeClock()
	core, err := NewCore(Config{}, Options{Store: testStore(t), Log: zerolog.New(logs), Clock: clock, dial: srv.dial})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = core.Stop(ctx) })
	const token = "interaction-Token-SECRET"
	core.AddFrontend(urlFailingFrontend{url: "http://127.0.0.1:1/api/v9/interactions/42/" + token + "/callback"})
	if err = core.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err = core.Login(ctx, discordUser, "alice@example.com", "pw"); err != nil {
		t.Fatal(err)
	}
	waitLog := func() string {
		for i := 0; i < 1000; i++ {
			if s := logs.String(); strings.Contains(s, "Frontend failed to handle event") {
				return s
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatal("no frontend failure was logged")
		return ""
	}
	out := waitLog()
	if strings.Contains(out, token) {
		t.Errorf("the log holds the token: %s", out)
	}
	if !strings.Contains(out, "127.0.0.1:1/[redacted]") {
		t.Errorf("the log lost the host of the failed call: %s", out)
	}
}

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
