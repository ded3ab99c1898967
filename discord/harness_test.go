package discord

import (
	"context"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/rs/zerolog"

	"github.com/msn-bridge/msn-bridge/bridge"
	"github.com/msn-bridge/msn-bridge/discord/discordtest"
	"github.com/msn-bridge/msn-bridge/internal/testenv/pgtest"
	"github.com/msn-bridge/msn-bridge/msn"
	"github.com/msn-bridge/msn-bridge/msn/msntest"
)

// waitTimeout bounds every wait: a safety net against hangs, not a timing assertion.
const waitTimeout = 30 * time.Second

const (
	alice    = "alice@example.com"
	alicePW  = "alice-Secret-pw"
	bob      = "bob@example.com"
	carol    = "carol@example.com"
	dave     = "dave@example.com"
	erin     = "erin@example.com" // offline
	bobName  = "Bob @everyone: the Builder"
	bobClean = "Bob everyone the Builder"
)

// recorder is an MSN bot that records what it is sent and can echo it.
type recorder struct {
	mu    sync.Mutex
	texts []string
	echo  bool
}

func (r *recorder) bot(_ context.Context, chat *msntest.BotChat, msg msntest.BotMessage) {
	if !msg.IsText() {
		return
	}
	r.mu.Lock()
	r.texts = append(r.texts, msg.Body)
	echo := r.echo
	r.mu.Unlock()
	if echo {
		_ = chat.Say("echo: " + msg.Body)
	}
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.texts...)
}

// harness is a real core over loopback against msntest, and the Discord frontend against
// discordtest.
type harness struct {
	t     *testing.T
	ms    *msntest.Server
	dc    *discordtest.Server
	core  *bridge.Core
	fe    *Frontend
	bobRx *recorder
	// carolRx and daveRx record what carol and dave receive, with harnessOpts.recordAll.
	carolRx, daveRx *recorder
	store           *bridge.Store
	eve             string // a guild member who owns nothing
	gen             string // #general
	cfg             Config
	opts            harnessOpts
}

type harnessOpts struct {
	cfg  func(*Config)
	core func(*bridge.Config)
	fake func(*discordtest.Options)
	// logs, when set, receives the core's and the frontend's log at trace level.
	logs io.Writer
	// client, when set, is the frontend's HTTP client in place of the fake's own.
	client func(*http.Client) *http.Client
	// feOpts are more options of the frontend.
	feOpts []Option
	// startErr, when set, receives the frontend's Start error instead of failing the test; the
	// core is then not started.
	startErr *error
	// recordAll makes carol and dave bots that record what they receive (carolRx, daveRx).
	recordAll bool
}

func newHarness(t *testing.T, o harnessOpts) *harness {
	t.Helper()
	h := &harness{t: t, bobRx: &recorder{}, opts: o}
	var carolBot, daveBot msntest.BotFunc
	if o.recordAll {
		h.carolRx, h.daveRx = &recorder{}, &recorder{}
		carolBot, daveBot = h.carolRx.bot, h.daveRx.bot
	}
	h.ms = msntest.New(msntest.Options{
		Accounts: []msntest.AccountSpec{
			{Handle: alice, Password: alicePW, Name: "Alice"},
			{Handle: bob, Password: "x", Name: bobName, Status: "NLN", PSM: "building", Bot: h.bobRx.bot},
			{Handle: carol, Password: "x", Name: "Carol", Status: "AWY", PSM: "away for a bit", Bot: carolBot},
			{Handle: dave, Password: "x", Name: "Dave", Status: "BSY", Bot: daveBot},
			{Handle: erin, Password: "x", Name: "Erin"},
		},
		Friends: [][2]string{{alice, bob}, {alice, carol}, {alice, dave}, {alice, erin}},
	})
	if err := h.ms.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.ms.Close)

	fo := discordtest.Options{
		HeartbeatInterval: time.Second,
		Users:             []*discordgo.User{{Username: "eve"}},
		EditLimit:         2,
		EditWindow:        3 * time.Second,
	}
	if o.fake != nil {
		o.fake(&fo)
	}
	h.dc = discordtest.New(fo)
	t.Cleanup(h.dc.Close)
	h.eve = h.dc.Users()[0].ID
	if c := h.dc.ChannelByName("general"); c != nil {
		h.gen = c.ID
	}

	db := pgtest.Open(t, pgtest.SQLiteDriver, pgtest.SQLiteDSN(t))
	key := make([]byte, bridge.KeySize)
	for i := range key {
		key[i] = 7
	}
	cipher, err := bridge.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	h.store = bridge.NewStore(db, cipher, zerolog.Nop())
	if err = h.store.Upgrade(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.cfg = Config{
		Enabled:             true,
		Token:               h.dc.Token(),
		GuildID:             h.dc.GuildID(),
		RosterDebounce:      500 * time.Millisecond,
		TopicDebounce:       200 * time.Millisecond,
		TopicMinInterval:    300 * time.Millisecond,
		TopicEditsPerWindow: fo.EditLimit,
		TopicWindow:         fo.EditWindow,
		TypingInterval:      time.Second,
	}
	if o.cfg != nil {
		o.cfg(&h.cfg)
	}
	h.startBridge()
	return h
}

// startBridge starts a core on the harness's store and the Discord frontend, as the bridge's
// main does: frontend first, then the core (which logs stored accounts back in).
func (h *harness) startBridge() {
	t := h.t
	t.Helper()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	if h.opts.logs != nil {
		log = zerolog.New(h.opts.logs).Level(zerolog.TraceLevel)
	}
	ccfg := bridge.Config{
		MSN:            msn.Config{Server: h.ms.NSAddr(), LoginURL: h.ms.LoginURL(), AllowInsecurePassport: true},
		PresenceWindow: 50 * time.Millisecond,
	}
	if h.opts.core != nil {
		h.opts.core(&ccfg)
	}
	core, err := bridge.NewCore(ccfg, bridge.Options{Store: h.store, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	h.core = core
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = core.Stop(ctx)
	})
	client := h.dc.HTTPClient()
	if h.opts.client != nil {
		client = h.opts.client(client)
	}
	fe, err := New(core, h.cfg, log, append([]Option{WithHTTPClient(client)}, h.opts.feOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	h.fe = fe
	if err = fe.Start(context.Background()); err != nil && h.opts.startErr != nil {
		*h.opts.startErr = err
		return
	} else if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		fe.Stop(ctx)
	})
	if err = core.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// stopBridge stops the frontend and the core, as the bridge's main does on shutdown.
func (h *harness) stopBridge() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h.fe.Stop(ctx)
	if err := h.core.Stop(ctx); err != nil {
		h.t.Fatal(err)
	}
}

// waitFor polls cond until it holds or waitTimeout passes.
func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// slash runs /msn <sub> as user in channel and returns the interaction id and token.
func (h *harness) slash(user, channel, sub string, opts map[string]string) (string, string) {
	h.t.Helper()
	o := &discordgo.ApplicationCommandInteractionDataOption{Name: sub, Type: discordgo.ApplicationCommandOptionSubCommand}
	for k, v := range opts {
		o.Options = append(o.Options, &discordgo.ApplicationCommandInteractionDataOption{
			Name: k, Type: discordgo.ApplicationCommandOptionString, Value: v})
	}
	iid, tok := h.dc.InjectSlashCommand(user, channel, discordgo.ApplicationCommandInteractionData{
		Name: "msn", Options: []*discordgo.ApplicationCommandInteractionDataOption{o}})
	if iid == "" {
		h.t.Fatalf("could not inject /msn %s", sub)
	}
	return iid, tok
}

// answer waits for the final text of an interaction: the immediate message, or the edit of a
// deferred one.
func (h *harness) answer(iid, tok string) (first discordtest.InteractionResponse, text string) {
	h.t.Helper()
	h.waitFor("interaction answer", func() bool {
		rs := h.dc.InteractionResponses(iid)
		if len(rs) == 0 {
			return false
		}
		first = rs[0]
		if first.Type == discordgo.InteractionResponseChannelMessageWithSource {
			text = first.Content
			return true
		}
		if o := h.dc.Original(tok); o != nil && o.Content != "" {
			text = o.Content
			return true
		}
		return false
	})
	return first, text
}

// login signs alice in through /msn login and its modal, checking the answer is ephemeral and
// deferred before being edited.
func (h *harness) login() {
	h.t.Helper()
	h.loginAs(h.dc.OwnerID(), alice, alicePW)
}

// loginAs signs handle in as the Discord user.
func (h *harness) loginAs(owner, handle, password string) {
	h.t.Helper()
	iid, _ := h.slash(owner, h.gen, "login", nil)
	h.waitFor("login modal", func() bool { return len(h.dc.InteractionResponses(iid)) > 0 })
	modal := h.dc.InteractionResponses(iid)[0]
	if modal.Type != discordgo.InteractionResponseModal || modal.CustomID != loginModalID {
		h.t.Fatalf("login answered with %+v, want a modal", modal)
	}
	if strings.Contains(string(modal.Raw), password) {
		h.t.Fatal("modal contains the password")
	}
	first, text := h.submitLogin(owner, handle, password)
	if first.Type != discordgo.InteractionResponseDeferredChannelMessageWithSource {
		h.t.Fatalf("modal submit answered with type %d, want 5 (deferred)", first.Type)
	}
	if first.Flags&discordgo.MessageFlagsEphemeral == 0 {
		h.t.Fatal("login answer is not ephemeral")
	}
	if !strings.Contains(text, "Signed in") || strings.Contains(text, password) {
		h.t.Fatalf("login answer %q", text)
	}
}

// submitLogin submits the login modal and returns the first response and the final answer.
func (h *harness) submitLogin(owner, handle, password string) (discordtest.InteractionResponse, string) {
	h.t.Helper()
	row := func(id, v string) discordgo.MessageComponent {
		return discordgo.ActionsRow{Components: []discordgo.MessageComponent{discordgo.TextInput{CustomID: id, Value: v}}}
	}
	iid, tok := h.dc.InjectModalSubmit(owner, h.gen, discordgo.ModalSubmitInteractionData{
		CustomID:   loginModalID,
		Components: []discordgo.MessageComponent{row(loginEmailField, handle), row(loginPassField, password)},
	})
	return h.answer(iid, tok)
}

// roster returns the roster channel and the text of its pinned messages (content and embeds).
func (h *harness) roster() (string, string) { return h.rosterOf(alice) }

// rosterChannel returns the roster channel of an account's category, or nil.
func (h *harness) rosterChannel(handle string) *discordgo.Channel {
	var cat string
	for _, c := range h.dc.Channels() {
		if c.Type == discordgo.ChannelTypeGuildCategory && c.Name == "MSN — "+handle {
			cat = c.ID
		}
	}
	for _, c := range h.dc.Channels() {
		if cat != "" && c.ParentID == cat && c.Name == "msn-contacts" {
			return c
		}
	}
	return nil
}

// rosterOf returns the roster channel of an account and the text of its pinned messages.
func (h *harness) rosterOf(handle string) (string, string) {
	ch := h.rosterChannel(handle)
	if ch == nil {
		return "", ""
	}
	var b strings.Builder
	pins := h.dc.Pins(ch.ID)
	for _, m := range h.dc.Messages(ch.ID) {
		if !contains(pins, m.ID) {
			continue
		}
		b.WriteString(m.Content + "\n")
		for _, e := range m.Embeds {
			b.WriteString("## " + e.Title + "\n")
			for _, f := range e.Fields {
				b.WriteString(f.Name + " | " + strings.ReplaceAll(f.Value, "\n", " | ") + "\n")
			}
		}
	}
	return ch.ID, b.String()
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// section returns the lines of the roster under the group title starting with prefix.
func section(roster, prefix string) string {
	var b strings.Builder
	in := false
	for _, l := range strings.Split(roster, "\n") {
		if strings.HasPrefix(l, "## ") {
			in = strings.HasPrefix(l, "## "+prefix)
			continue
		}
		if in {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// openChat runs /msn chat for a contact and returns its channel id.
func (h *harness) openChat(contact string) string {
	h.t.Helper()
	iid, tok := h.slash(h.dc.OwnerID(), h.gen, "chat", map[string]string{"email": contact})
	_, text := h.answer(iid, tok)
	id := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(text, "💬 "), "<#"), ">")
	if h.dc.Channel(id) == nil {
		h.t.Fatalf("/msn chat %s answered %q", contact, text)
	}
	return id
}

// webhookMessages returns the messages of a channel sent by a webhook.
func (h *harness) webhookMessages(channel string) []*discordtest.Message {
	var out []*discordtest.Message
	for _, m := range h.dc.Messages(channel) {
		if m.WebhookID != "" {
			out = append(out, m)
		}
	}
	return out
}

// ourGoroutines returns the stacks of goroutines running code of this package.
func ourGoroutines() []string {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	var out []string
	for _, g := range strings.Split(string(buf[:n]), "\n\n") {
		if strings.Contains(g, "msn-bridge/discord.") && !strings.Contains(g, "ourGoroutines") {
			out = append(out, g)
		}
	}
	return out
}
