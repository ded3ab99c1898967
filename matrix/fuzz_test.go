package matrix

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/rs/zerolog"
	"golang.org/x/net/html"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/msn-bridge/msn-bridge/bridge"
	"github.com/msn-bridge/msn-bridge/internal/testenv/pgtest"
	"github.com/msn-bridge/msn-bridge/matrix/matrixtest"
	"github.com/msn-bridge/msn-bridge/msn"
	"github.com/msn-bridge/msn-bridge/msn/msntest"
)

// Fuzz targets for what reaches the Matrix frontend from outside: Matrix HTML and command
// arguments from users, handles from MSN that become ghost ids, MSN text shown as Matrix HTML.
// See docs/fuzzing.md.

// fuzzInputCap bounds the inputs the conversion targets look at, so that one mutated input of
// megabytes does not dominate a run; the huge seeds below are cut to it too.
const fuzzInputCap = 256 << 10

func capInput(s string) string {
	if len(s) > fuzzInputCap {
		return s[:fuzzInputCap]
	}
	return s
}

var htmlSeeds = []string{
	"<b>all bold</b>",
	"<b>half</b> plain",
	"<b><i>unclosed",
	"</b></i>closing only",
	"<em><u><del>deep</del></u></em>",
	`<font color="#00FF00">green</font>`,
	`<font color="red">named</font><span data-mx-color="#GGGGGG">bad hex</span>`,
	`<span data-mx-color="#112233">a</span><span data-mx-color="#445566">b</span>`,
	`<font color="#00ff00" color="#ff0000">two colours</font>`,
	"<mx-reply><blockquote>quoted <b>reply</b></blockquote></mx-reply><b>answer</b>",
	`<a href="https://matrix.to/#/@bob:example.org">Bob</a>: hi`,
	`<a href="javascript:alert(1)">x</a><img src=x onerror=alert(1)>`,
	"<script>alert(1)</script>visible",
	"&lt;b&gt; &amp;amp; &#0; &#x110000; &#xD800; &nbsp;&NotNestedGreaterGreater;",
	"<ol start=\"999999999\"><li>a</li><li>b</li></ol><ul><li><ul><li>nested</li></ul></li></ul>",
	"<pre><code class=\"language-go\">\tfunc() {}</code></pre>",
	"<table><tr><td>cell</td></tr></table><hr><br/><p>para</p>",
	"\xff\xfe<b>\xc3</b>",
	"\x00<b>\x00</b>",
	"<b>" + strings.Repeat("<i>", 5000) + "deep" + "</b>",
	strings.Repeat("<b>x</b>", 20000),
	strings.Repeat("a", 1<<20),
	"",
	"   ",
}

// FuzzMatrixToMSN checks the Matrix → MSN conversion of a message's body and formatted body:
// bounded output, a whole-message format that MSN can carry, and text MSN can split.
func FuzzMatrixToMSN(f *testing.F) {
	for _, s := range htmlSeeds {
		f.Add("fallback body", s, true)
	}
	f.Add("plain *markdown*", "", false)
	f.Add("", "<b></b>", true)
	f.Fuzz(func(t *testing.T, body, formatted string, isHTML bool) {
		body, formatted = capInput(body), capInput(formatted)
		content := &event.MessageEventContent{MsgType: event.MsgText, Body: body}
		if isHTML {
			content.Format, content.FormattedBody = event.FormatHTML, formatted
		}
		start := time.Now()
		text, fm := matrixToMSN(content)
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("conversion of %d+%d bytes took %s", len(body), len(formatted), d)
		}
		if limit := 16*(len(body)+len(formatted)) + 64; len(text) > limit {
			t.Fatalf("conversion of %d+%d bytes gave %d bytes", len(body), len(formatted), len(text))
		}
		if !isHTML && text != body {
			t.Fatalf("plain body changed: %q → %q", body, text)
		}
		if fm.Color != "" && (!isHexColor(fm.Color) || fm.Color != strings.ToLower(fm.Color)) {
			t.Fatalf("colour %q from %q", fm.Color, formatted)
		}
		if strings.TrimSpace(text) == "" {
			return // the core refuses empty messages
		}
		mf := &msn.TextFormat{Bold: fm.Bold, Italic: fm.Italic, Underline: fm.Underline, Strike: fm.Strikethrough, Color: fm.Color}
		limit := msn.TextBodyLimit(mf)
		for _, p := range msn.SplitText(text, limit) {
			if n := len(p) + strings.Count(p, "\n"); n > limit {
				t.Fatalf("part of %d wire bytes over the %d limit", n, limit)
			}
		}
	})
}

// FuzzFormatToMatrix checks the MSN → Matrix rendering: the body is the MSN text, and the
// formatted body is well-formed HTML with only the style tags, carrying the text escaped (a
// contact cannot inject markup such as <script).
func FuzzFormatToMatrix(f *testing.F) {
	for i, s := range []string{"hello", "<script>alert(1)</script>", "a & b < c > d \" e ' f", "line1\nline2\r\n",
		"</font><font color=\"#ff0000\">", "&lt;b&gt;", "\xff\xfe", "\x00", strings.Repeat("<b>", 2000)} {
		f.Add(s, i%2 == 0, i%3 == 0, i%4 == 0, i%5 == 0, []string{"", "ff0000", "00FF00", "000000", `"><script>`, "fff", "gggggg"}[i%7])
	}
	f.Fuzz(func(t *testing.T, text string, bold, italic, underline, strike bool, color string) {
		text = capInput(text)
		c := formatToMatrix(text, bridge.Format{Bold: bold, Italic: italic, Underline: underline, Strikethrough: strike, Color: color})
		if c.Body != text || c.MsgType != event.MsgText {
			t.Fatalf("body %q type %s for %q", c.Body, c.MsgType, text)
		}
		if c.Format == "" {
			if c.FormattedBody != "" {
				t.Fatalf("formatted body without a format: %q", c.FormattedBody)
			}
			return
		}
		if strings.Contains(strings.ToLower(c.FormattedBody), "<script") {
			t.Fatalf("formatted body %q carries <script", c.FormattedBody)
		}
		allowed := map[string]bool{"b": true, "i": true, "u": true, "del": true, "font": true, "br": true}
		var stack []string
		var got strings.Builder
		z := html.NewTokenizer(strings.NewReader(c.FormattedBody))
		for {
			tt := z.Next()
			if tt == html.ErrorToken {
				break
			}
			tok := z.Token()
			switch tt {
			case html.StartTagToken:
				if !allowed[tok.Data] {
					t.Fatalf("tag <%s> in %q", tok.Data, c.FormattedBody)
				}
				if tok.Data == "br" {
					got.WriteString("\n")
					continue
				}
				if tok.Data == "font" {
					for _, a := range tok.Attr {
						if a.Key != "color" && a.Key != "data-mx-color" || !strings.HasPrefix(a.Val, "#") || !isHexColor(a.Val[1:]) {
							t.Fatalf("font attribute %s=%q", a.Key, a.Val)
						}
					}
				}
				stack = append(stack, tok.Data)
			case html.EndTagToken:
				if len(stack) == 0 || stack[len(stack)-1] != tok.Data {
					t.Fatalf("unbalanced </%s> in %q", tok.Data, c.FormattedBody)
				}
				stack = stack[:len(stack)-1]
			case html.SelfClosingTagToken:
				if tok.Data != "br" {
					t.Fatalf("self-closing <%s/> in %q", tok.Data, c.FormattedBody)
				}
				got.WriteString("\n")
			case html.TextToken:
				got.WriteString(tok.Data)
			default:
				t.Fatalf("token %v in %q", tt, c.FormattedBody)
			}
		}
		if len(stack) != 0 {
			t.Fatalf("unclosed %v in %q", stack, c.FormattedBody)
		}
		// The tokenizer decodes entities as a client does.
		if want := text; !strings.ContainsRune(text, '\r') && got.String() != want {
			t.Fatalf("formatted body %q shows %q, want %q", c.FormattedBody, got.String(), want)
		}
	})
}

// FuzzGhostID checks that every handle the core accepts becomes a valid ghost MXID localpart
// that decodes back to the same handle, and that ids which are not handles are refused.
func FuzzGhostID(f *testing.F) {
	for _, s := range []string{"bob@example.com", "Bob@Example.COM", " bob@example.com\t", "tel:+15551234", "tel:",
		"a.b+c@x.org", "a=b@x", "a/b@x", "_-.@x", "ü@example.com", "bob@@x", "@x", "x@", "a b@x", "a%40@x", "a\x00@x",
		"\xff@x", strings.Repeat("a", 127) + "@x", strings.Repeat("é", 64) + "@x", "msn_bob@x", "=40@x"} {
		f.Add(s)
	}
	const server = "example.org"
	f.Fuzz(func(t *testing.T, raw string) {
		h, err := bridge.ValidateHandle(raw)
		if err != nil {
			if _, perr := parseUserID(makeUserID(raw)); perr == nil && makeUserID(raw) != "" {
				t.Fatalf("parseUserID accepts %q which ValidateHandle refuses: %v", raw, err)
			}
			return
		}
		uid := makeUserID(raw)
		if string(uid) != h {
			t.Fatalf("makeUserID(%q) = %q, ValidateHandle gives %q", raw, uid, h)
		}
		local := "msn_" + id.EncodeUserLocalpart(string(uid))
		if err = id.ValidateUserLocalpart(local); err != nil {
			t.Fatalf("handle %q gives localpart %q: %v", h, local, err)
		}
		// Handles are ASCII e-mail characters (bridge.ValidateHandle); only '@', '+' and '\''
		// are escaped (3 bytes each), so real handles fit Matrix's 255-byte user id. A handle of
		// more than 64 bytes made mostly of '+' could still exceed it; that bound stays here.
		mxid := id.NewUserID(local, server)
		if _, _, err = mxid.ParseAndValidateStrict(); err != nil && len(h) <= 64 {
			t.Fatalf("handle %q gives MXID %q: %v", h, mxid, err)
		}
		dec, err := id.DecodeUserLocalpart(strings.TrimPrefix(local, "msn_"))
		if err != nil || dec != h {
			t.Fatalf("handle %q → %q → %q (%v)", h, local, dec, err)
		}
		back, err := parseUserID(makeUserID(dec))
		if err != nil || back != h {
			t.Fatalf("handle %q → %q → %q (%v)", h, local, back, err)
		}
	})
}

// commandEnv is one bridge (fake Matrix, SQLite, a core on msntest) with alice logged in, shared
// by every input of FuzzCommand.
type commandEnv struct {
	ctx  context.Context
	fe   *Frontend
	fm   *matrixtest.Matrix
	core *bridge.Core
	user *bridgev2.User
	room id.RoomID
}

func newCommandEnv(tb testing.TB) *commandEnv {
	tb.Helper()
	fail := func(err error) {
		if err != nil {
			tb.Helper()
			tb.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	srv := msntest.New(msntest.Options{})
	fail(srv.Start())
	tb.Cleanup(srv.Close)
	fail(srv.AddAccount(alice, alicePW, "Alice"))
	fail(srv.AddAccount(bob, "x", "Bob"))
	fail(srv.AddAccount(carol, "x", "Carol"))
	fail(srv.AddFriends(alice, bob))
	log := zerolog.Nop()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	db := pgtest.Open(tb, pgtest.SQLiteDriver, pgtest.SQLiteDSN(tb))
	cipher, err := bridge.NewCipher(key)
	fail(err)
	store := bridge.NewStore(db, cipher, log)
	fail(store.Upgrade(ctx))
	core, err := bridge.NewCore(bridge.Config{
		MSN: msn.Config{Server: srv.NSAddr(), LoginURL: srv.LoginURL(), AllowInsecurePassport: true,
			RequestTimeout: 5 * time.Second, JoinTimeout: 3 * time.Second, AckTimeout: 3 * time.Second},
		PresenceWindow: 20 * time.Millisecond,
	}, bridge.Options{Store: store, Log: log})
	fail(err)
	fm := matrixtest.New()
	cfg := DefaultConfig()
	cfg.Presence.Rate, cfg.Presence.Burst = 1000, 1000
	fe, err := newFrontend(core, cfg, fm, testBridgeConfig(), db, log)
	fail(err)
	fail(fe.Start(ctx))
	fail(core.Start(ctx))
	tb.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		fe.Stop(sctx)
		_ = core.Stop(sctx)
	})
	user, err := fe.Bridge().GetUserByMXID(ctx, aliceMX)
	fail(err)
	proc, err := fe.Connector().CreateLogin(ctx, user, LoginFlowPassword)
	fail(err)
	_, err = proc.Start(ctx)
	fail(err)
	step, err := proc.(bridgev2.LoginProcessUserInput).SubmitUserInput(ctx, map[string]string{"email": alice, "password": alicePW})
	fail(err)
	if step.Type != bridgev2.LoginStepTypeComplete {
		tb.Fatalf("login ended with %+v", step)
	}
	room, err := user.GetManagementRoom(ctx)
	fail(err)
	return &commandEnv{ctx: ctx, fe: fe, fm: fm, core: core, user: user, room: room}
}

// run runs one command in the management room and returns the bot's replies and whether the
// command processor caught a panic.
func (e *commandEnv) run(msg string) (replies []string, panicked bool) {
	evBefore, stBefore := len(e.fm.Events("")), len(e.fm.Statuses())
	evtID := id.EventID(fmt.Sprintf("$fuzz%d", e.fm.NextID()))
	e.fe.Bridge().Commands.Handle(e.ctx, e.room, evtID, e.user, msg, "")
	bot := e.fm.BotIntent().GetMXID()
	for _, ev := range e.fm.Events("")[evBefore:] {
		if m, ok := ev.Content.Parsed.(*event.MessageEventContent); ok && ev.Type == event.EventMessage && ev.RoomID == e.room && ev.Sender == bot {
			replies = append(replies, m.Body)
		}
	}
	for _, st := range e.fm.Statuses()[stBefore:] {
		if st.Info != nil && st.Info.SourceEventID == evtID && st.Status.ErrorAsMessage {
			panicked = true
		}
	}
	return replies, panicked
}

// argumentText is the text a user means as a command's argument: everything after the command
// word, trimmed.
func argumentText(msg string) string {
	msg = strings.TrimLeftFunc(msg, unicode.IsSpace)
	i := strings.IndexFunc(msg, unicode.IsSpace)
	if i < 0 {
		return ""
	}
	return strings.TrimSpace(msg[i:])
}

var fuzzCommands = []string{"status", "psm", "name", "add", "remove", "block", "unblock", "accept", "decline", "requests", "contacts"}

// FuzzCommand runs the MSN management commands with any argument through bridgev2's command
// processor against a logged-in account: every command answers, none panics, an argument that
// is not a handle is refused, and psm/name set exactly the text after the command word.
func FuzzCommand(f *testing.F) {
	for i := range fuzzCommands {
		for _, a := range []string{"", "bob@example.com", " BOB@Example.com ", "carol@example.com", "nobody@example.com",
			"not-an-email", "a\x00@b", "a b@c", "tel:+1555", "@", "two@x three@y", "busy", "Away", "invisible", "offline",
			"hello world", "  spaced   out  ", "<b>html</b> & \"quotes\"", "\xff\xfe", "\u00a0nbsp\u00a0", strings.Repeat("x", 1<<16)} {
			f.Add(uint8(i), " ", a, false, false)
		}
	}
	f.Add(uint8(1), " ", "PSM starts with the word", true, false)
	f.Add(uint8(1), "\t", "tabbed", false, true)
	f.Add(uint8(2), "\n", "new\nlines", true, true)
	f.Add(uint8(1), " ", strings.Repeat("m", 1<<20), false, false)

	env := newCommandEnv(f)
	f.Fuzz(func(t *testing.T, which uint8, sep, arg string, upper, lead bool) {
		name := fuzzCommands[int(which)%len(fuzzCommands)]
		if upper {
			name = strings.ToUpper(name)
		}
		if strings.TrimFunc(sep, unicode.IsSpace) != "" || sep == "" {
			sep = " "
		}
		msg := name + sep + arg
		if lead {
			msg = " " + msg
		}
		start := time.Now()
		replies, panicked := env.run(msg)
		if panicked {
			t.Fatalf("%q panicked", msg)
		}
		if d := time.Since(start); d > 20*time.Second {
			t.Fatalf("%q took %s", msg, d)
		}
		if len(replies) == 0 {
			t.Fatalf("no reply to %q", msg)
		}
		reply := strings.Join(replies, "\n")
		if !strings.EqualFold(strings.Fields(msg)[0], name) {
			return // the separator was part of the command word
		}
		want := argumentText(msg)
		acc := env.core.Account(alice)
		switch strings.ToLower(name) {
		case "psm":
			if strings.HasPrefix(reply, "Personal message set") || strings.HasPrefix(reply, "Personal message cleared") {
				if _, psm, _ := acc.Profile(); psm != want {
					t.Fatalf("%q set the PSM to %q, want %q", msg, psm, want)
				}
			}
		case "name":
			if strings.HasPrefix(reply, "Friendly name set") {
				if _, _, n := acc.Profile(); n != want {
					t.Fatalf("%q set the name to %q, want %q", msg, n, want)
				}
			}
		case "add", "remove", "block", "unblock", "accept", "decline":
			args := strings.Fields(want)
			if len(args) == 1 {
				if _, err := bridge.ValidateHandle(args[0]); err != nil && !strings.Contains(reply, "not an MSN address") {
					t.Fatalf("%q (not a handle) answered %q", msg, reply)
				}
			} else if !strings.HasPrefix(reply, "Usage") {
				t.Fatalf("%q (%d arguments) answered %q", msg, len(args), reply)
			}
		}
	})
}
