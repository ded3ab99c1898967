package discordtest

import (
	"bytes"
	"crypto/hmac"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// apiPrefix is where discordgo v0.29.0 sends REST requests.
const apiPrefix = "/api/v9"

// call is one REST request on its way through a handler.
type call struct {
	s      *Server
	w      http.ResponseWriter
	r      *http.Request
	body   []byte
	route  string
	status int
}

type handlerFunc func(c *call)

// routeOpts say how a route is guarded.
type routeOpts struct {
	noAuth   bool // webhook-token and interaction routes: no Authorization header needed
	noGlobal bool // not counted against the global limit
}

// routes registers every REST route and the gateway.
func (s *Server) routes() {
	bot := routeOpts{}
	tok := routeOpts{noAuth: true, noGlobal: true}

	s.handle("GET /gateway", routeOpts{noAuth: true, noGlobal: true}, s.getGateway)
	s.handle("GET /gateway/bot", bot, s.getGatewayBot)
	s.handle("GET /users/@me", bot, s.getMe)
	s.handle("GET /users/{u}", bot, s.getUser)
	s.handle("GET /guilds/{g}", bot, s.getGuild)
	s.handle("GET /guilds/{g}/channels", bot, s.getGuildChannels)
	s.handle("POST /guilds/{g}/channels", bot, s.postGuildChannel)
	s.handle("GET /guilds/{g}/webhooks", bot, s.getGuildWebhooks)
	s.handle("GET /guilds/{g}/members/{u}", bot, s.getGuildMember)
	s.handle("GET /guilds/{g}/roles", bot, s.getGuildRoles)
	s.handle("GET /channels/{c}", bot, s.getChannel)
	s.handle("PATCH /channels/{c}", bot, s.patchChannel)
	s.handle("DELETE /channels/{c}", bot, s.deleteChannel)
	s.handle("GET /channels/{c}/messages", bot, s.getMessages)
	s.handle("POST /channels/{c}/messages", bot, s.postMessage)
	s.handle("GET /channels/{c}/messages/{m}", bot, s.getMessage)
	s.handle("PATCH /channels/{c}/messages/{m}", bot, s.patchMessage)
	s.handle("DELETE /channels/{c}/messages/{m}", bot, s.deleteMessage)
	s.handle("PUT /channels/{c}/messages/{m}/reactions/{e}/@me", bot, s.putReaction)
	s.handle("DELETE /channels/{c}/messages/{m}/reactions/{e}/@me", bot, s.deleteReaction)
	s.handle("GET /channels/{c}/pins", bot, s.getPins)
	s.handle("PUT /channels/{c}/pins/{m}", bot, s.putPin)
	s.handle("DELETE /channels/{c}/pins/{m}", bot, s.deletePin)
	s.handle("POST /channels/{c}/typing", bot, s.postTyping)
	s.handle("GET /channels/{c}/webhooks", bot, s.getChannelWebhooks)
	s.handle("POST /channels/{c}/webhooks", bot, s.postWebhook)
	s.handle("GET /webhooks/{w}", bot, s.getWebhook)
	s.handle("PATCH /webhooks/{w}", bot, s.patchWebhook)
	s.handle("DELETE /webhooks/{w}", bot, s.deleteWebhook)
	s.handle("GET /webhooks/{w}/{tok}", tok, s.getWebhook)
	s.handle("PATCH /webhooks/{w}/{tok}", tok, s.patchWebhook)
	s.handle("DELETE /webhooks/{w}/{tok}", tok, s.deleteWebhook)
	s.handle("POST /webhooks/{w}/{tok}", tok, s.executeWebhook)
	s.handle("GET /webhooks/{w}/{tok}/messages/{m}", tok, s.getWebhookMessage)
	s.handle("PATCH /webhooks/{w}/{tok}/messages/{m}", tok, s.patchWebhookMessage)
	s.handle("DELETE /webhooks/{w}/{tok}/messages/{m}", tok, s.deleteWebhookMessage)
	s.handle("GET /applications/{a}/commands", bot, s.getCommands)
	s.handle("PUT /applications/{a}/commands", bot, s.putCommands)
	s.handle("GET /applications/{a}/guilds/{g}/commands", bot, s.getCommands)
	s.handle("PUT /applications/{a}/guilds/{g}/commands", bot, s.putCommands)
	s.handle("POST /interactions/{i}/{tok}/callback", tok, s.interactionCallback)

	s.mux.HandleFunc("GET /attachments/{c}/{a}/{name}", s.getAttachment)
	s.mux.HandleFunc("GET /gateway/", s.serveGateway)
	s.mux.HandleFunc("GET /gateway", s.serveGateway)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.logRequest(Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Status: http.StatusNotFound, At: time.Now()})
		writeJSON(w, http.StatusNotFound, apiError{Code: 0, Message: "404: Not Found"})
	})
}

// handle registers h for "METHOD /pattern" under /api/v9, wrapped with what every Discord route
// does: route counting, the body cap, authentication, injected and real rate limits with their
// headers, and the request log.
func (s *Server) handle(route string, o routeOpts, h handlerFunc) {
	method, pattern, _ := strings.Cut(route, " ")
	s.mux.HandleFunc(method+" "+apiPrefix+pattern, func(w http.ResponseWriter, r *http.Request) {
		c := &call{s: s, w: w, r: r, route: route}
		defer func() {
			s.logRequest(Request{Method: r.Method, Route: route, Path: r.URL.Path, Query: r.URL.RawQuery,
				Status: c.status, Body: bytes.Clone(c.body[:min(len(c.body), s.opts.MaxLoggedBody)]), At: time.Now()})
		}()
		s.mu.Lock()
		s.touched[route]++
		s.mu.Unlock()

		body, err := io.ReadAll(io.LimitReader(r.Body, s.opts.MaxBodyBytes+1))
		if err != nil {
			c.fail(http.StatusBadRequest, 50109, "The request body contains invalid JSON.")
			return
		}
		if int64(len(body)) > s.opts.MaxBodyBytes {
			c.body = body[:0]
			c.fail(http.StatusRequestEntityTooLarge, 40005, "Request entity too large")
			return
		}
		c.body = body

		if !o.noAuth && r.Header.Get("Authorization") != "Bot "+s.opts.Token {
			c.fail(http.StatusUnauthorized, 0, "401: Unauthorized")
			return
		}
		if s.fault(c) {
			return
		}
		if !s.admit(c, o) {
			return
		}
		if !o.noAuth && !s.permitted(c) {
			return
		}
		h(c)
		if c.status == 0 {
			c.fail(http.StatusInternalServerError, 0, "500: Internal Server Error")
		}
	})
}

// admit applies injected 429s, the global limit and the route's bucket, and sets the
// X-RateLimit-* headers. It reports whether the request may proceed.
func (s *Server) admit(c *call, o routeOpts) bool {
	now := time.Now()
	hash := bucketHash(c.route)
	s.mu.Lock()
	if in := s.takeInjection(c.route); in != nil {
		s.mu.Unlock()
		setRateHeaders(c.w.Header(), 1, 0, in.retryAfter, hash)
		c.write429(in.retryAfter, in.global, "user")
		return false
	}
	if !o.noGlobal && s.opts.GlobalLimit.Requests > 0 {
		if ok, _, after := s.global.take(now); !ok {
			s.mu.Unlock()
			c.w.Header().Set("X-RateLimit-Reset-After", secs(after))
			c.write429(after, true, "global")
			return false
		}
	}
	limit := s.limitFor(c.route)
	if limit.Requests < 0 {
		s.mu.Unlock()
		setRateHeaders(c.w.Header(), 1000, 999, time.Second, hash)
		return true
	}
	key := c.route + "|" + majorParam(c.r)
	b, ok := s.buckets[key]
	if !ok {
		b = &bucket{limit: limit}
		s.buckets[key] = b
	}
	ok, remaining, after := b.take(now)
	s.mu.Unlock()
	setRateHeaders(c.w.Header(), limit.Requests, remaining, after, hash)
	if !ok {
		c.write429(after, false, "user")
		return false
	}
	return true
}

// majorParam is the part of a path Discord keys its buckets on besides the route.
func majorParam(r *http.Request) string {
	for _, k := range []string{"c", "g", "i"} {
		if v := r.PathValue(k); v != "" {
			return v
		}
	}
	if w := r.PathValue("w"); w != "" {
		return w + "/" + r.PathValue("tok")
	}
	return ""
}

func (s *Server) logRequest(req Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.requests) >= s.opts.MaxLoggedRequests {
		n := copy(s.requests, s.requests[len(s.requests)/10+1:])
		s.requests = s.requests[:n]
	}
	s.requests = append(s.requests, req)
	switch req.Status {
	case http.StatusUnauthorized, http.StatusForbidden:
		s.invalid++
	case http.StatusTooManyRequests:
		s.invalid++
		s.count429++
		s.routes429[req.Route]++
	}
}

// apiError is Discord's error body.
type apiError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Errors  any    `json:"errors,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"code":0,"message":"500: Internal Server Error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func (c *call) writeJSON(status int, v any) {
	c.status = status
	writeJSON(c.w, status, v)
}

// writeRaw sends an already encoded JSON body.
func (c *call) writeRaw(status int, b []byte) {
	c.status = status
	c.w.Header().Set("Content-Type", "application/json")
	c.w.WriteHeader(status)
	_, _ = c.w.Write(b)
}

func (c *call) noContent() {
	c.status = http.StatusNoContent
	c.w.WriteHeader(http.StatusNoContent)
}

// fail sends {"code":code,"message":msg}.
func (c *call) fail(status, code int, msg string) {
	c.writeJSON(status, apiError{Code: code, Message: msg})
}

// formError sends 400 code 50035 with Discord's nested errors object for one field path
// ("content", "embeds.0.title", …).
func (c *call) formError(field, errCode, msg string) {
	var errs any = map[string]any{"_errors": []map[string]string{{"code": errCode, "message": msg}}}
	parts := strings.Split(field, ".")
	for i := len(parts) - 1; i >= 0; i-- {
		errs = map[string]any{parts[i]: errs}
	}
	c.writeJSON(http.StatusBadRequest, apiError{Code: 50035, Message: "Invalid Form Body", Errors: errs})
}

// Common error responses.
func (c *call) unknownChannel() { c.fail(http.StatusNotFound, 10003, "Unknown Channel") }
func (c *call) unknownMessage() { c.fail(http.StatusNotFound, 10008, "Unknown Message") }
func (c *call) unknownWebhook() { c.fail(http.StatusNotFound, 10015, "Unknown Webhook") }
func (c *call) unknownGuild()   { c.fail(http.StatusNotFound, 10004, "Unknown Guild") }
func (c *call) badJSON() {
	c.fail(http.StatusBadRequest, 50109, "The request body contains invalid JSON.")
}

// decode unmarshals the JSON body into v, answering 50109 when it is not JSON of that shape.
// An empty body decodes to nothing when allowEmpty.
func (c *call) decode(v any, allowEmpty bool) bool {
	if len(bytes.TrimSpace(c.body)) == 0 {
		if allowEmpty {
			return true
		}
		c.badJSON()
		return false
	}
	if err := json.Unmarshal(c.body, v); err != nil {
		c.badJSON()
		return false
	}
	return true
}

// payload returns the JSON payload of a message-like request and its files: the body itself, or
// for multipart/form-data the payload_json part and the files[i] parts in order.
func (c *call) payload() ([]byte, []File, bool) {
	ct := c.r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "multipart/form-data" {
		return c.body, nil, true
	}
	mr := multipart.NewReader(bytes.NewReader(c.body), params["boundary"])
	var js []byte
	var files []File
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			c.formError("files", "BASE_TYPE_BAD_MULTIPART", "Malformed multipart body.")
			return nil, nil, false
		}
		data, err := io.ReadAll(io.LimitReader(p, c.s.opts.MaxFileBytes+1))
		if err != nil {
			c.formError("files", "BASE_TYPE_BAD_MULTIPART", "Malformed multipart body.")
			return nil, nil, false
		}
		name := p.FormName()
		switch {
		case name == "payload_json":
			js = data
		case strings.HasPrefix(name, "files[") || name == "file" || strings.HasPrefix(name, "file"):
			if int64(len(data)) > c.s.opts.MaxFileBytes {
				c.fail(http.StatusRequestEntityTooLarge, 40005, "Request entity too large")
				return nil, nil, false
			}
			ctype := p.Header.Get("Content-Type")
			if ctype == "" || ctype == "application/octet-stream" {
				ctype = http.DetectContentType(data)
			}
			files = append(files, File{Filename: p.FileName(), ContentType: ctype, Data: data})
		}
	}
	if len(files) > 10 {
		c.formError("files", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
		return nil, nil, false
	}
	return js, files, true
}

var mentionRe = regexp.MustCompile(`<@!?(\d+)>`)

// REST handlers that need no state of their own file.

func (s *Server) getGateway(c *call) {
	c.writeJSON(http.StatusOK, map[string]string{"url": s.GatewayURL()})
}

func (s *Server) getGatewayBot(c *call) {
	c.writeJSON(http.StatusOK, map[string]any{
		"url":    s.GatewayURL(),
		"shards": 1,
		"session_start_limit": map[string]int{
			"total": 1000, "remaining": 999, "reset_after": 86400000, "max_concurrency": 1,
		},
	})
}

func (s *Server) getMe(c *call) {
	s.mu.Lock()
	u := *s.users[s.opts.BotID]
	s.mu.Unlock()
	c.writeJSON(http.StatusOK, &u)
}

func (s *Server) getUser(c *call) {
	s.mu.Lock()
	u, ok := s.users[c.r.PathValue("u")]
	var cp any
	if ok {
		v := *u
		cp = &v
	}
	s.mu.Unlock()
	if !ok {
		c.fail(http.StatusNotFound, 10013, "Unknown User")
		return
	}
	c.writeJSON(http.StatusOK, cp)
}

func (s *Server) getGuild(c *call) {
	if c.r.PathValue("g") != s.guild.id {
		c.unknownGuild()
		return
	}
	s.mu.Lock()
	g := s.guildObject(false)
	s.mu.Unlock()
	c.writeJSON(http.StatusOK, g)
}

func (s *Server) getAttachment(w http.ResponseWriter, r *http.Request) {
	f, ok := s.File(r.PathValue("a"))
	if !ok || f.Filename != r.PathValue("name") {
		writeJSON(w, http.StatusNotFound, apiError{Code: 0, Message: "404: Not Found"})
		return
	}
	// Like Discord's CDN, only a signed URL that has not expired is served.
	q := r.URL.Query()
	ex, err := strconv.ParseInt(q.Get("ex"), 16, 64)
	sig := s.urlSignature(r.URL.EscapedPath(), q.Get("ex"), q.Get("is"))
	if err != nil || time.Now().Unix() > ex || !hmac.Equal([]byte(sig), []byte(q.Get("hm"))) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte("This content is no longer available."))
		return
	}
	w.Header().Set("Content-Type", f.ContentType)
	_, _ = w.Write(f.Data)
}
