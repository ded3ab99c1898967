package text

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTruncate(t *testing.T) {
	tests := []struct {
		name string
		in   string
		n    int
		want string
	}{
		{"short", "abc", 5, "abc"},
		{"exact", "abcde", 5, "abcde"},
		{"cut", "abcdef", 5, "abcd…"},
		{"exact in characters, longer in bytes", "ééééé", 5, "ééééé"},
		{"multibyte cut", strings.Repeat("é", 50), 10, strings.Repeat("é", 9) + "…"},
		{"odd byte offset", "a" + strings.Repeat("é", 40), 8, "a" + strings.Repeat("é", 6) + "…"},
		{"spaces before the cut go", "ab    cdefgh", 5, "ab…"},
		{"invalid bytes", "\xff\xfe\xfd\xfc", 3, "\uFFFD…"},
		{"one", "abc", 1, "…"},
		{"no cap", "abcdef", 0, "abcdef"},
		{"negative no cap", "abcdef", -1, "abcdef"},
		{"empty", "", 3, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Truncate(tt.in, tt.n)
			if got != tt.want {
				t.Fatalf("Truncate(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
			}
		})
	}
}

// TestTruncateBounds checks the contract on hostile input of every length: the result is
// valid UTF-8 when cut, never longer than n characters, and a prefix of the input otherwise.
func TestTruncateBounds(t *testing.T) {
	inputs := []string{"héllo wörld", "\xe2\x82", "日本語のテキスト", "a\xffb\xfec", "👍🏽👍🏽👍🏽", "   x   "}
	for _, in := range inputs {
		for n := 1; n <= 12; n++ {
			got := Truncate(in, n)
			if c := utf8.RuneCountInString(got); c > n {
				t.Errorf("Truncate(%q, %d) = %q has %d characters", in, n, got, c)
			}
			if got == in {
				continue
			}
			if !utf8.ValidString(got) || !strings.HasSuffix(got, Ellipsis) {
				t.Errorf("Truncate(%q, %d) = %q: not valid UTF-8 ending with the ellipsis", in, n, got)
			}
		}
	}
}
