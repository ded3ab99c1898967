package msn

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestTruncateKeepsCharacters checks that text a server sent, quoted cut short in an error or a
// log line, is never cut inside a character nor longer than asked.
func TestTruncateKeepsCharacters(t *testing.T) {
	handle := "a" + strings.Repeat("é", 100) + "@example.com"
	got := truncate(handle, 64)
	if !utf8.ValidString(got) {
		t.Fatalf("truncate cut inside a character: %q", got)
	}
	if n := utf8.RuneCountInString(got); n > 64 {
		t.Fatalf("truncate kept %d characters, want at most 64", n)
	}
	if !strings.HasPrefix(handle, strings.TrimSuffix(got, "…")) {
		t.Fatalf("truncate(%q) = %q is not a prefix", handle, got)
	}
}
