package discord

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"
	"github.com/rs/zerolog"

	"github.com/msn-bridge/msn-bridge/bridge"
	"github.com/msn-bridge/msn-bridge/internal/testenv/pgtest"
	"github.com/msn-bridge/msn-bridge/msn"
)

// Fuzz targets for what reaches the Discord frontend from outside: MSN text and names shown in
// Discord (a contact must not mention anyone or break out of formatting) and interaction
// payloads sent by guild members (a refusal or an error, never a panic). See docs/fuzzing.md.

// fuzzInputCap bounds the inputs the rendering targets look at, so that one mutated input of
// megabytes does not dominate a run; the huge seeds below are cut to it too.
const fuzzInputCap = 64 << 10

func capInput(s string) string {
	if len(s) > fuzzInputCap {
		return s[:fuzzInputCap]
	}
	return s
}

var hostileTexts = []string{
	"",
	"hello",
	"@everyone look",
	"@here",
	"hi @EVERYONE and @Here",
	"<@123456789012345678> <@!1> <@&2> <#3> </msn login:4> <:e:5> <a:e:6> <t:1:R>",
	"**bold** __u__ ~~s~~ ||spoiler|| `code` ```block```",
	"\\", "\\*", "*\\", "a\\",
	"- list\n> quote\n# heading\n## h2\n-# small",
	"[link](https://evil.example/)",
	"https://x.com/a_b <@1> http://y/<@2> HTTPS://Z/@everyone",
	"\thttps://x.com/<@1>",
	"line\r\nbreak\r\n",
	"bad utf8 \xff\xfe\xc3",
	"\x00\x01\x7f",
	"é" + strings.Repeat("*", 3000),
	strings.Repeat("@everyone ", 500),
	strings.Repeat("a", 1<<20),
	strings.Repeat(" ", 1<<16) + "x",
	strings.Repeat("\n \n", 1<<14),
}

// unescapedAt reports whether out[i] is not preceded by an odd run of backslashes.
func unescapedAt(out string, i int) bool {
	n := 0
	for j := i - 1; j >= 0 && out[j] == '\\'; j-- {
		n++
	}
	return n%2 == 0
}

func isMentionAt(s string) bool {
	l := strings.ToLower(s)
	return strings.HasPrefix(l, "@everyone") || strings.HasPrefix(l, "@here")
}

// checkEscaped asserts that Discord shows out (escapeMarkdown's output) literally outside links:
// no mention, no markup, no link syntax.
func checkEscaped(t *testing.T, in, out string) {
	t.Helper()
	for _, tok := range strings.FieldsFunc(out, func(r rune) bool { return r == ' ' || r == '\n' || r == '\t' }) {
		if isURLAt(tok) {
			// Discord's link ends at the first '<'; a backslash before it would be part of
			// the link, so the '<' must be followed by a zero-width space.
			k := strings.IndexByte(tok, '<')
			if k < 0 {
				continue
			}
			if !strings.HasPrefix(tok[k:], "<\u200b") {
				t.Fatalf("escapeMarkdown(%q) = %q: link token %q ends in a mention", in, out, tok)
			}
			tok = tok[k+len("<\u200b"):]
		}
		for i := 0; i < len(tok); i++ {
			c := tok[i]
			switch {
			case c == '<' || strings.IndexByte("*_~`|[]", c) >= 0:
				if unescapedAt(tok, i) {
					t.Fatalf("escapeMarkdown(%q) = %q: unescaped %q in %q", in, out, c, tok)
				}
			case c == '@' && isMentionAt(tok[i:]):
				if unescapedAt(tok, i) {
					t.Fatalf("escapeMarkdown(%q) = %q: mention %q not neutralised", in, out, tok)
				}
			}
		}
	}
}

// unescape undoes escapeMarkdown for text without links.
func unescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && s[i+1] < utf8.RuneSelf && strings.IndexByte(markdownSpecial+"<@", s[i+1]) >= 0 {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// FuzzRenderMSN checks MSN text rendered for Discord: mentions neutralised, Markdown escaped, the
// style markers around the whole text, and no text lost.
func FuzzRenderMSN(f *testing.F) {
	for i, s := range hostileTexts {
		f.Add(s, i%2 == 0, i%3 == 0, i%5 == 0, i%7 == 0)
	}
	f.Fuzz(func(t *testing.T, text string, bold, italic, underline, strike bool) {
		text = capInput(text)
		start := time.Now()
		out := escapeMarkdown(text)
		if d := time.Since(start); d > time.Second {
			t.Fatalf("escapeMarkdown of %d bytes took %s", len(text), d)
		}
		checkEscaped(t, text, out)
		if !strings.Contains(strings.ToLower(text), "http") {
			if back := unescape(out); back != text {
				t.Fatalf("escapeMarkdown(%q) = %q loses text: unescaped %q", text, out, back)
			}
		}
		fm := bridge.Format{Bold: bold, Italic: italic, Underline: underline, Strikethrough: strike}
		r := renderMSN(text, fm)
		body := escapeMarkdown(strings.ReplaceAll(text, "\r\n", "\n"))
		if !strings.Contains(r, body) {
			t.Fatalf("renderMSN(%q) = %q does not contain the escaped text %q", text, r, body)
		}
		if strings.TrimSpace(body) != "" {
			i := strings.Index(r, body)
			open, closeTags := r[:i], r[i+len(body):]
			if strings.Trim(open, "*_~") != "" || len(open) != len(closeTags) {
				t.Fatalf("renderMSN(%q) = %q: markers %q … %q", text, r, open, closeTags)
			}
		}
		if utf8.ValidString(text) && !utf8.ValidString(r) {
			t.Fatalf("renderMSN(%q) = %q is not valid UTF-8", text, r)
		}
	})
}

// FuzzSanitizeUsername checks Discord's webhook username rules for any friendly name and handle.
func FuzzSanitizeUsername(f *testing.F) {
	for _, s := range []struct{ name, handle string }{
		{"Bob", "bob@example.com"},
		{"Bob @everyone: the #1 ```x```", "bob@example.com"},
		{"Discord Clyde", "bob@example.com"},
		{"everyone", "bob@example.com"},
		{"  HERE ", "@"},
		{"", ""},
		{"disclydecord", "x@y"},
		{"``discord`", "x@y"},
		{"`:``", "a@b"},
		{"dis\x00cord", "discord@clyde.com"},
		{"every one", "here@everyone"},
		{strings.Repeat("é", 100), "x@y"},
		{strings.Repeat("discord", 20000), "x@y"},
		{"\xff\xfe", "\xc3@\xc3"},
		{"\u200b", "tel:+1"},
	} {
		f.Add(s.name, s.handle)
	}
	f.Fuzz(func(t *testing.T, name, handle string) {
		name, handle = capInput(name), capInput(handle)
		got := sanitizeUsername(name, handle)
		n := utf8.RuneCountInString(got)
		l := strings.ToLower(got)
		switch {
		case n < 1 || n > 80:
			t.Fatalf("sanitizeUsername(%q, %q) = %q: %d characters", name, handle, got, n)
		case strings.Contains(l, "discord"), strings.Contains(l, "clyde"), strings.ContainsAny(got, "@#:"),
			strings.Contains(got, "```"), l == "everyone", l == "here":
			t.Fatalf("sanitizeUsername(%q, %q) = %q breaks Discord's rules", name, handle, got)
		case got != strings.TrimSpace(got):
			t.Fatalf("sanitizeUsername(%q, %q) = %q: surrounding space", name, handle, got)
		}
	})
}

// FuzzSplitMessage checks Discord's 2000-character cut: nothing lost, no empty or oversized
// part, and no part ending in the backslash of an escape (the next part would lose it).
func FuzzSplitMessage(f *testing.F) {
	for _, s := range hostileTexts {
		f.Add(s)
		f.Add(escapeMarkdown(s))
	}
	f.Add(strings.Repeat("x", 1999) + "\\*")
	f.Add(strings.Repeat("\\*", 1500))
	f.Add(strings.Repeat("é\n", 1200))
	f.Fuzz(func(t *testing.T, text string) {
		text = capInput(text)
		parts := splitMessage(text)
		if strings.Join(parts, "") != strings.ToValidUTF8(text, "\uFFFD") {
			t.Fatalf("splitMessage(%d bytes) loses text", len(text))
		}
		for i, p := range parts {
			if p == "" || utf8.RuneCountInString(p) > maxMessageLen {
				t.Fatalf("part %d of %d has %d characters", i, len(parts), utf8.RuneCountInString(p))
			}
			if i < len(parts)-1 && !unescapedAt(p+"x", len(p)) {
				t.Fatalf("part %d ends inside an escape: %q", i, p[len(p)-10:])
			}
		}
	})
}

// FuzzTopicAndRoster checks what a contact's name, PSM and media become in a channel topic
// (≤ 1024 characters) and the roster (Discord's embed caps).
func FuzzTopicAndRoster(f *testing.F) {
	for i, s := range hostileTexts {
		f.Add(s, hostileTexts[(i+3)%len(hostileTexts)], s, uint8(i), uint16(i*40))
	}
	f.Add("Bob", "building @everyone", "Music: x", uint8(2), uint16(300))
	f.Add(strings.Repeat("n", 500), strings.Repeat("p", 2000), strings.Repeat("m", 2000), uint8(1), uint16(1200))
	f.Fuzz(func(t *testing.T, name, psm, media string, st uint8, count uint16) {
		name, psm, media = capInput(name), capInput(psm), capInput(media)
		status := bridge.Status(int(st) % (int(bridge.StatusInvisible) + 1))
		c := bridge.Contact{Handle: "bob@example.com", Name: name, PSM: psm, Media: media, Status: status, Forward: true}
		if n := utf8.RuneCountInString(topicFor(c)); n > 1024 {
			t.Fatalf("topic of %d characters", n)
		}
		fl := contactField(c)
		if n := utf8.RuneCountInString(fl.Name); n < 1 || n > 256 {
			t.Fatalf("field name of %d characters", n)
		}
		if n := utf8.RuneCountInString(fl.Value); n < 1 || n > 1024 {
			t.Fatalf("field value of %d characters", n)
		}
		checkEscapedField(t, fl.Value)

		p := &portal{handle: "alice@example.com", contacts: map[string]bridge.Contact{}, haveOwn: true,
			own: bridge.OwnProfile{Status: status, PSM: psm}}
		for i := range int(count % 1500) {
			cc := c
			cc.Handle = "c" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + "@example.com"
			cc.Handle = cc.Handle + string(rune('0'+i%10)) + strings.Repeat("y", i/260)
			cc.Status = bridge.Status((i + int(st)) % (int(bridge.StatusInvisible) + 1))
			p.contacts[cc.Handle] = cc
		}
		pages := p.renderRosterLocked()
		if len(pages) == 0 || len(pages) > maxRosterPages {
			t.Fatalf("%d roster pages", len(pages))
		}
		for _, pg := range pages {
			if n := utf8.RuneCountInString(pg.Content); n > maxMessageLen {
				t.Fatalf("roster content of %d characters", n)
			}
			if len(pg.Embeds) > maxEmbedsPerMsg {
				t.Fatalf("%d embeds", len(pg.Embeds))
			}
			total := 0
			for _, e := range pg.Embeds {
				if len(e.Fields) > maxEmbedFields {
					t.Fatalf("%d fields", len(e.Fields))
				}
				total += utf8.RuneCountInString(e.Title)
				if e.Footer != nil {
					total += utf8.RuneCountInString(e.Footer.Text)
				}
				for _, fl := range e.Fields {
					total += utf8.RuneCountInString(fl.Name) + utf8.RuneCountInString(fl.Value)
				}
			}
			if total > 6000 {
				t.Fatalf("embeds of one roster message total %d characters", total)
			}
		}
	})
}

// checkEscapedField checks a roster field's value: the handle in code, then escaped PSM and media.
func checkEscapedField(t *testing.T, v string) {
	t.Helper()
	lines := strings.Split(v, "\n")
	for _, l := range lines[1:] {
		checkEscaped(t, l, l)
	}
}

// FuzzModalValues checks the login modal's field extraction for any submitted component tree.
func FuzzModalValues(f *testing.F) {
	f.Add(`{"custom_id":"msn-login","components":[{"type":1,"components":[{"type":4,"custom_id":"email","value":"a@b.c"}]},{"type":1,"components":[{"type":4,"custom_id":"password","value":"pw"}]}]}`)
	f.Add(`{"custom_id":"msn-login","components":[{"type":4,"custom_id":"email","value":"x"},null,{"type":1},{"type":1,"components":null}]}`)
	f.Add(`{"custom_id":"msn-login","components":[{"type":1,"components":[{"type":1,"components":[{"type":4,"custom_id":"password","value":"deep"}]}]}]}`)
	f.Add(`{"components":[{"type":99},{"type":2,"custom_id":"b"},{"type":3,"custom_id":"s","values":["a"]}]}`)
	f.Add(`{"components":[{"type":4,"custom_id":"email","value":7}]}`)
	f.Fuzz(func(t *testing.T, raw string) {
		var data discordgo.ModalSubmitInteractionData
		if err := json.Unmarshal([]byte(raw), &data); err != nil {
			return
		}
		vals := modalValues(data)
		if len(vals) > len(raw) {
			t.Fatalf("%d values from %d bytes", len(vals), len(raw))
		}
	})
}

// fakeREST answers every Discord REST request in-process and records the interaction answers.
type fakeREST struct {
	mu      sync.Mutex
	answers []string // content of each interaction callback or edit, "<modal>", "<deferred>"
}

func (r *fakeREST) RoundTrip(req *http.Request) (*http.Response, error) {
	body, _ := io.ReadAll(req.Body)
	var payload struct {
		Type    int             `json:"type"`
		Content *string         `json:"content"`
		Data    json.RawMessage `json:"data"`
	}
	_ = json.Unmarshal(body, &payload)
	r.mu.Lock()
	switch {
	case strings.HasSuffix(req.URL.Path, "/callback"):
		var d struct {
			Content string `json:"content"`
		}
		_ = json.Unmarshal(payload.Data, &d)
		switch discordgo.InteractionResponseType(payload.Type) {
		case discordgo.InteractionResponseModal:
			r.answers = append(r.answers, "<modal>")
		case discordgo.InteractionResponseDeferredChannelMessageWithSource:
			r.answers = append(r.answers, "<deferred>")
		default:
			r.answers = append(r.answers, d.Content)
		}
	case req.Method == http.MethodPatch && payload.Content != nil:
		r.answers = append(r.answers, *payload.Content)
	}
	r.mu.Unlock()
	if req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/callback") {
		return &http.Response{StatusCode: http.StatusNoContent, Body: io.NopCloser(bytes.NewReader(nil)), Header: http.Header{}, Request: req}, nil
	}
	return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(strings.NewReader(`{"id":"1","channel_id":"2"}`)),
		Header: http.Header{"Content-Type": {"application/json"}}, Request: req}, nil
}

func (r *fakeREST) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.answers
	r.answers = nil
	return out
}

const fuzzGuild = "100000000000000001"

// newFuzzFrontend returns a frontend on a core without accounts whose MSN server refuses
// connections, with its REST answered by rest. The gateway is never opened.
func newFuzzFrontend(tb testing.TB, rest *fakeREST) (*Frontend, *bridge.Core) {
	tb.Helper()
	db := pgtest.Open(tb, pgtest.SQLiteDriver, pgtest.SQLiteDSN(tb))
	cipher, err := bridge.NewCipher(bytes.Repeat([]byte{7}, bridge.KeySize))
	if err != nil {
		tb.Fatal(err)
	}
	store := bridge.NewStore(db, cipher, zerolog.Nop())
	if err = store.Upgrade(context.Background()); err != nil {
		tb.Fatal(err)
	}
	core, err := bridge.NewCore(bridge.Config{
		MSN:       msn.Config{Server: "127.0.0.1:1", LoginURL: "http://127.0.0.1:1/login", RequestTimeout: time.Second},
		LoginRate: 1e6, LoginBurst: 1e6,
	}, bridge.Options{Store: store, Log: zerolog.Nop()})
	if err != nil {
		tb.Fatal(err)
	}
	fe, err := New(core, Config{Token: "x.y", GuildID: fuzzGuild, LoginTimeout: 2 * time.Second}, zerolog.Nop())
	if err != nil {
		tb.Fatal(err)
	}
	s, err := discordgo.New("Bot x.y")
	if err != nil {
		tb.Fatal(err)
	}
	s.Client = &http.Client{Transport: rest}
	s.MaxRestRetries = 0
	fe.s, fe.appID, fe.botID = s, "100000000000000002", "100000000000000003"
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		fe.Stop(ctx)
		_ = core.Stop(ctx)
	})
	return fe, core
}

// FuzzInteraction decodes any payload as a gateway INTERACTION_CREATE and runs it through the
// frontend's handler with a core that has no accounts: every /msn command, login modal and
// request button must get an answer, and that answer must be a refusal or an error.
func FuzzInteraction(f *testing.F) {
	cmd := func(sub string, opts string) string {
		return `{"type":2,"channel_id":"5","member":{"user":{"id":"42"}},"data":{"id":"9","name":"msn","type":1,"options":[{"type":1,"name":"` +
			sub + `","options":[` + opts + `]}]}}`
	}
	str := func(name, v string) string {
		b, _ := json.Marshal(v)
		return `{"type":3,"name":"` + name + `","value":` + string(b) + `}`
	}
	for _, sub := range []string{"logout", "requests", "nudge", "chat", "add", "remove", "block", "unblock", "name", "status", "link", "link-code", "login", "bogus"} {
		f.Add(cmd(sub, ""))
	}
	for _, v := range []string{"bob@example.com", " BOB@Example.COM ", "not-an-email", "", "a\x00@b", "@", strings.Repeat("x", 1<<16) + "@y", "<@1>@everyone"} {
		for _, name := range []string{"email", "name", "psm", "state", "code"} {
			f.Add(cmd("add", str(name, v)))
		}
		f.Add(cmd("link", str("code", v)))
		f.Add(cmd("status", str("state", "busy")+","+str("psm", v)))
	}
	f.Add(cmd("add", `{"type":3,"name":"email","value":5}`))
	f.Add(cmd("add", `{"type":3,"name":"email","value":null}`))
	f.Add(cmd("add", `{"type":3,"name":"email"}`))
	f.Add(cmd("status", `{"type":5,"name":"state","value":true}`))
	f.Add(cmd("add", `null`))
	f.Add(`{"type":2,"member":{"user":{"id":"42"}},"data":{"name":"msn","options":[null]}}`)
	f.Add(`{"type":2,"member":{"user":{"id":"42"}},"data":{"name":"msn","options":[]}}`)
	f.Add(`{"type":2,"user":{"id":"42"},"data":{"name":"other"}}`)
	f.Add(`{"type":2,"data":{"name":"msn","options":[{"type":1,"name":"logout"}]}}`)
	f.Add(`{"type":5,"member":{"user":{"id":"42"}},"data":{"custom_id":"msn-login","components":[{"type":1,"components":[{"type":4,"custom_id":"email","value":"a@b.c"}]},{"type":1,"components":[{"type":4,"custom_id":"password","value":"pw"}]}]}}`)
	f.Add(`{"type":5,"member":{"user":{"id":"42"}},"data":{"custom_id":"msn-login","components":[{"type":4,"custom_id":"email","value":"not an email"}]}}`)
	f.Add(`{"type":5,"member":{"user":{"id":"42"}},"data":{"custom_id":"msn-login","components":[null]}}`)
	f.Add(`{"type":5,"member":{"user":{"id":"42"}},"data":{"custom_id":"msn-login"}}`)
	f.Add(`{"type":3,"member":{"user":{"id":"42"}},"data":{"custom_id":"msn-req:00112233","component_type":2}}`)
	f.Add(`{"type":3,"member":{"user":{"id":"42"}},"data":{"custom_id":"other","component_type":2}}`)
	f.Add(`{"type":4,"member":{"user":{"id":"42"}},"data":{"name":"msn","options":[{"type":1,"name":"add","focused":true}]}}`)
	f.Add(`{"type":1}`)
	f.Add(`{}`)

	rest := &fakeREST{}
	fe, core := newFuzzFrontend(f, rest)
	f.Fuzz(func(t *testing.T, raw string) {
		var ic discordgo.InteractionCreate
		if err := json.Unmarshal([]byte(raw), &ic); err != nil || ic.Interaction == nil {
			return
		}
		// Discord sets these; the rest is the member's to choose.
		ic.ID, ic.AppID, ic.Token, ic.GuildID = "100000000000000004", fe.appID, "tok", fuzzGuild
		rest.take()
		fe.interaction(&ic) // what onInteraction runs on a goroutine of its own
		answers := rest.take()

		expect := false
		if interactionUser(ic.Interaction) != "" {
			switch ic.Type {
			case discordgo.InteractionApplicationCommand:
				d, ok := ic.Data.(discordgo.ApplicationCommandInteractionData)
				expect = ok && d.Name == commandName && len(d.Options) > 0 && d.Options[0] != nil
			case discordgo.InteractionModalSubmit:
				d, ok := ic.Data.(discordgo.ModalSubmitInteractionData)
				expect = ok && d.CustomID == loginModalID
			case discordgo.InteractionMessageComponent:
				d, ok := ic.Data.(discordgo.MessageComponentInteractionData)
				expect = ok && strings.HasPrefix(d.CustomID, requestButtonPfx)
			}
		}
		if !expect {
			return
		}
		if len(answers) == 0 {
			t.Fatalf("no answer to %s", raw)
		}
		last := answers[len(answers)-1]
		switch {
		case last == "<deferred>":
			t.Fatalf("deferred answer never edited for %s", raw)
		case last == "<modal>":
		case strings.HasPrefix(last, "✅"), strings.HasPrefix(last, "💬"), strings.HasPrefix(last, "📳"):
			t.Fatalf("success %q without an account for %s", last, raw)
		case strings.TrimSpace(last) == "":
			t.Fatalf("empty answer for %s", raw)
		}
		if n := len(core.Accounts()); n != 0 {
			t.Fatalf("%d accounts after %s", n, raw)
		}
	})
}

// FuzzDiscordToMSN decodes any payload as a gateway message (MESSAGE_CREATE or MESSAGE_UPDATE
// data) and renders it as MSN text: no panic on null or missing parts (mentions, a referenced
// message, its author, attachments, stickers), the content's plain words kept, and no
// attachment's link in the text (attachments go as files).
func FuzzDiscordToMSN(f *testing.F) {
	for _, seed := range []string{
		`{"id":"1","channel_id":"5","content":"hello","author":{"id":"42"}}`,
		`{"content":"hi <@7> and <@!7>","mentions":[{"id":"7","username":"bob"}]}`,
		`{"content":"hi <@7>","mentions":[null]}`,
		`{"content":"x","attachments":[null,{"filename":"a.png","url":"https://cdn/a.png"}]}`,
		`{"content":"x","sticker_items":[null,{"name":"wave"}]}`,
		`{"type":19,"content":"reply","referenced_message":{"content":"orig","author":null}}`,
		`{"type":19,"content":"reply","referenced_message":{"attachments":[null]}}`,
		`{"type":19,"content":"reply","referenced_message":{"mentions":[null],"content":"<@1>"}}`,
		`{"content":"` + strings.Repeat("<@1>", 1000) + `","mentions":[{"id":"1","username":"` + strings.Repeat("<@1>", 10) + `"}]}`,
		`{}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		var m discordgo.Message
		if err := json.Unmarshal([]byte(raw), &m); err != nil {
			return
		}
		if len(m.Mentions) > 50 {
			m.Mentions = m.Mentions[:50] // Discord lists at most the users a 2000-character message names
		}
		got := discordToMSN(&m)
		bare := m
		bare.Attachments = nil
		if again := discordToMSN(&bare); again != got {
			t.Fatalf("attachments changed the text: %q, without them %q", got, again)
		}
		if !strings.Contains(m.Content, "<@") && !strings.Contains(got, m.Content) {
			t.Fatalf("content %q missing from %q", m.Content, got)
		}
	})
}
