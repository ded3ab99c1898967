package bridge

import "strings"

// ScrubURLs returns s with every URL in it cut to its scheme and host: the path, query,
// fragment and any user:password part are replaced by "/[redacted]". A URL's path and query may
// carry a secret (a Discord webhook or interaction token, an access token), and *url.Error and
// many client libraries quote the whole URL in their error text.
func ScrubURLs(s string) string {
	i := strings.Index(s, "://")
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i >= 0 {
		rest := s[i+3:]
		end := strings.IndexFunc(rest, isURLEnd)
		if end < 0 {
			end = len(rest)
		}
		authority, tail := rest[:end], ""
		if j := strings.IndexAny(authority, "/?#"); j >= 0 {
			authority, tail = authority[:j], authority[j:]
		}
		if at := strings.LastIndexByte(authority, '@'); at >= 0 {
			authority, tail = authority[at+1:], "@"
		}
		b.WriteString(s[:i+3])
		b.WriteString(authority)
		if tail != "" {
			b.WriteString("/[redacted]")
		}
		s = rest[end:]
		i = strings.Index(s, "://")
	}
	b.WriteString(s)
	return b.String()
}

// isURLEnd reports the characters that end a URL quoted or embedded in error text.
func isURLEnd(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\r', '"', '\'', '`', '<', '>', '\\':
		return true
	}
	return false
}

// ScrubError returns err with its text passed through ScrubURLs, for an error about to be logged
// or shown. errors.Is and errors.As still see err's chain; an error whose text has no URL is
// returned as it is, and nil stays nil.
func ScrubError(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := ScrubURLs(msg)
	if clean == msg {
		return err
	}
	return &scrubbedError{msg: clean, err: err}
}

type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }
