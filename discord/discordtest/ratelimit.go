package discordtest

import (
	"fmt"
	"hash/fnv"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// bucket is a fixed-window counter, as Discord's buckets are: the window starts with the first
// request after the previous one ended.
type bucket struct {
	limit Limit
	count int
	reset time.Time
}

// take consumes one request at now. It reports whether the request fits, the requests left in
// the window and the time until the window resets.
func (b *bucket) take(now time.Time) (ok bool, remaining int, resetAfter time.Duration) {
	if !now.Before(b.reset) {
		b.count = 0
		b.reset = now.Add(b.limit.Per)
	}
	if b.count >= b.limit.Requests {
		return false, 0, b.reset.Sub(now)
	}
	b.count++
	return true, b.limit.Requests - b.count, b.reset.Sub(now)
}

type injection struct {
	pattern    string
	n          int
	retryAfter time.Duration
	global     bool
}

// matches reports whether an injected 429 applies to route ("METHOD /pattern"). A pattern is
// "*" (every route), a full route key, or a pattern without method (every method).
func (in *injection) matches(route string) bool {
	if in.pattern == "*" || in.pattern == route {
		return true
	}
	if !strings.Contains(in.pattern, " ") {
		_, p, _ := strings.Cut(route, " ")
		return p == in.pattern
	}
	return false
}

// Inject429 makes the next n requests matching routePattern fail with 429 and the given
// retry_after, without consuming any bucket. routePattern is "*", a route key as in Touched
// ("POST /channels/{c}/messages") or a pattern alone ("/channels/{c}/messages", every method).
// Injections queue: a second call for the same pattern adds to the first.
func (s *Server) Inject429(routePattern string, n int, retryAfter time.Duration) {
	s.inject429(routePattern, n, retryAfter, false)
}

// InjectGlobal429 is Inject429 with a global rate limit: the response carries
// X-RateLimit-Global and "global": true, which makes discordgo pause every bucket.
func (s *Server) InjectGlobal429(routePattern string, n int, retryAfter time.Duration) {
	s.inject429(routePattern, n, retryAfter, true)
}

func (s *Server) inject429(routePattern string, n int, retryAfter time.Duration, global bool) {
	if n <= 0 {
		return
	}
	if retryAfter < 0 {
		retryAfter = 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inject = append(s.inject, &injection{pattern: routePattern, n: n, retryAfter: retryAfter, global: global})
}

// NetworkFailure is the status InjectFault takes for a request whose connection is closed
// without an answer, as a network failure or a dropped proxy connection does.
const NetworkFailure = 0

// InjectFault makes the next n requests matching routePattern (as in Inject429) fail without
// doing anything: with status (500, 502, 503, 504, …) and Discord's error body, or, for
// NetworkFailure, by closing the connection without an answer. Injections queue per pattern.
func (s *Server) InjectFault(routePattern string, n, status int) {
	if n <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &faultInjection{pattern: routePattern, n: n, status: status})
}

type faultInjection struct {
	pattern string
	n       int
	status  int
}

// fault answers c with an injected fault, if one matches, and reports whether it did.
func (s *Server) fault(c *call) bool {
	s.mu.Lock()
	var f *faultInjection
	for i, in := range s.faults {
		if (&injection{pattern: in.pattern}).matches(c.route) {
			f = in
			if in.n--; in.n <= 0 {
				s.faults = append(s.faults[:i], s.faults[i+1:]...)
			}
			break
		}
	}
	s.mu.Unlock()
	if f == nil {
		return false
	}
	if f.status != NetworkFailure {
		c.fail(f.status, 0, fmt.Sprintf("%d: %s", f.status, http.StatusText(f.status)))
		return true
	}
	c.status = -1 // logged as no answer
	if hj, ok := c.w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return true
		}
	}
	panic(http.ErrAbortHandler) // closes the connection without an answer
}

// takeInjection consumes one injected 429 for route, if any. The caller holds s.mu.
func (s *Server) takeInjection(route string) *injection {
	for i, in := range s.inject {
		if in.matches(route) {
			s.injected429++
			in.n--
			if in.n <= 0 {
				s.inject = append(s.inject[:i], s.inject[i+1:]...)
			}
			return in
		}
	}
	return nil
}

// limitFor returns the bucket limit of a route.
func (s *Server) limitFor(route string) Limit {
	if l, ok := s.opts.RouteLimits[route]; ok {
		return l
	}
	return s.opts.DefaultLimit
}

// bucketHash is the X-RateLimit-Bucket value of a route: stable, opaque, shared by every major
// parameter as Discord's are.
func bucketHash(route string) string {
	h := fnv.New64a()
	_, _ = h.Write([]byte(route))
	return fmt.Sprintf("%016x", h.Sum64())
}

// secs formats a duration as float seconds with millisecond precision, Discord's format for
// retry_after and X-RateLimit-Reset-After.
func secs(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	return strconv.FormatFloat(math.Round(d.Seconds()*1000)/1000, 'f', 3, 64)
}

// setRateHeaders writes the X-RateLimit-* headers of a bucket state.
func setRateHeaders(h http.Header, limit, remaining int, resetAfter time.Duration, bucketID string) {
	if remaining < 0 {
		remaining = 0
	}
	reset := time.Now().Add(resetAfter)
	h.Set("X-RateLimit-Limit", strconv.Itoa(limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
	h.Set("X-RateLimit-Reset", strconv.FormatFloat(float64(reset.UnixMilli())/1000, 'f', 3, 64))
	h.Set("X-RateLimit-Reset-After", secs(resetAfter))
	h.Set("X-RateLimit-Bucket", bucketID)
}

// write429 sends Discord's 429: the body with retry_after in float seconds, Retry-After in whole
// seconds (rounded up) and, for a global limit, X-RateLimit-Global.
func (c *call) write429(retryAfter time.Duration, global bool, scope string) {
	h := c.w.Header()
	if global {
		h.Set("X-RateLimit-Global", "true")
		scope = "global"
	}
	h.Set("X-RateLimit-Scope", scope)
	h.Set("Retry-After", strconv.Itoa(int(math.Ceil(retryAfter.Seconds()))))
	ra, _ := strconv.ParseFloat(secs(retryAfter), 64)
	c.writeJSON(http.StatusTooManyRequests, map[string]any{
		"message":     "You are being rate limited.",
		"retry_after": ra,
		"global":      global,
	})
}
