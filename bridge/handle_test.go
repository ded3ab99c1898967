package bridge

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateHandle(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"bob@example.com", "bob@example.com"},
		{"  Bob.Smith+msn@Example.COM\t", "bob.smith+msn@example.com"},
		{"o'brien@example.ie", "o'brien@example.ie"},
		{"a_b-c@x.org", "a_b-c@x.org"},
		{"tel:+15551234567", "tel:+15551234567"},
		{strings.Repeat("a", 127) + "@x", strings.Repeat("a", 127) + "@x"},
		// refused
		{"", ""}, {"tel:", ""}, {"tel:555-1234", ""}, {"bob", ""}, {"@x", ""}, {"x@", ""},
		{"a@b@c", ""}, {"a b@x", ""}, {"a%40@x", ""}, {"a\x00@x", ""}, {"ü@example.com", ""},
		{"\xff@x", ""}, {"a<script>@x", ""}, {strings.Repeat("a", 128) + "@x", ""},
	} {
		got, err := ValidateHandle(tc.in)
		if tc.want == "" {
			if !errors.Is(err, ErrInvalidHandle) {
				t.Errorf("ValidateHandle(%q) = %q, %v; want ErrInvalidHandle", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ValidateHandle(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
