// Package e2e runs the whole bridge in one process against fakes: msntest as the MSN network,
// the Matrix frontend headless on matrixtest's fake homeserver, and the Discord frontend
// against discordtest, all over loopback.
package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/bridgeconfig"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/msn-bridge/msn-bridge/bridge"
	"github.com/msn-bridge/msn-bridge/discord"
	"github.com/msn-bridge/msn-bridge/discord/discordtest"
	"github.com/msn-bridge/msn-bridge/internal/testenv/pgtest"
	"github.com/msn-bridge/msn-bridge/matrix"
	"github.com/msn-bridge/msn-bridge/matrix/matrixtest"
	"github.com/msn-bridge/msn-bridge/msn"
	"github.com/msn-bridge/msn-bridge/msn/msntest"
)

const (
	alice   = "alice@example.com"
	alicePW = "alice-Secret-pw"
	bob     = "bob@example.com"
	aliceMX = id.UserID("@alice:test")
	// waitTimeout bounds every wait: a safety net against hangs, not a timing assertion.
	waitTimeout = 30 * time.Second
)

// inbox is an MSN contact (a msntest bot) that records the texts it receives.
type inbox struct {
	mu    sync.Mutex
	texts []string
}

func (b *inbox) bot(_ context.Context, _ *msntest.BotChat, msg msntest.BotMessage) {
	if msg.IsText() {
		b.mu.Lock()
		b.texts = append(b.texts, msg.Body)
		b.mu.Unlock()
	}
}

func (b *inbox) count(text string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, t := range b.texts {
		if t == text {
			n++
		}
	}
	return n
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// mirror is one core with both frontends.
type mirror struct {
	t    *testing.T
	ctx  context.Context
	ms   *msntest.Server
	bob  *inbox
	dc   *discordtest.Server
	fm   *matrixtest.Matrix
	core *bridge.Core
	mx   *matrix.Frontend
	dfe  *discord.Frontend
	gen  string // Discord #general
}

func newMirror(t *testing.T) *mirror {
	t.Helper()
	return newMirrorWith(t, nil)
}

// matrixBuilder builds the Matrix frontend of a mirror on the core and database given.
type matrixBuilder func(core *bridge.Core, db *dbutil.Database, log zerolog.Logger) (*matrix.Frontend, error)

// newMirrorWith is newMirror with the Matrix frontend built by newMatrix (for a real
// homeserver), or headless on matrixtest when newMatrix is nil.
func newMirrorWith(t *testing.T, newMatrix matrixBuilder) *mirror {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	m := &mirror{t: t, ctx: ctx, bob: &inbox{}}
	m.ms = msntest.New(msntest.Options{
		Accounts: []msntest.AccountSpec{
			{Handle: alice, Password: alicePW, Name: "Alice"},
			{Handle: bob, Password: "x", Name: "Bob", Status: "NLN", PSM: "building", Bot: m.bob.bot},
		},
		Friends: [][2]string{{alice, bob}},
	})
	must(t, m.ms.Start())
	t.Cleanup(m.ms.Close)
	m.dc = discordtest.New(discordtest.Options{HeartbeatInterval: time.Second})
	t.Cleanup(m.dc.Close)
	if c := m.dc.ChannelByName("general"); c != nil {
		m.gen = c.ID
	}

	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	db := pgtest.Open(t, pgtest.SQLiteDriver, pgtest.SQLiteDSN(t))
	key := make([]byte, bridge.KeySize)
	for i := range key {
		key[i] = 9
	}
	cipher, err := bridge.NewCipher(key)
	must(t, err)
	store := bridge.NewStore(db, cipher, log)
	must(t, store.Upgrade(ctx))
	m.core, err = bridge.NewCore(bridge.Config{
		MSN: msn.Config{Server: m.ms.NSAddr(), LoginURL: m.ms.LoginURL(), AllowInsecurePassport: true,
			RequestTimeout: 5 * time.Second, JoinTimeout: 3 * time.Second, AckTimeout: 3 * time.Second},
		PresenceWindow: 20 * time.Millisecond,
	}, bridge.Options{Store: store, Log: log})
	must(t, err)

	// As the bridge's main does: frontends first, then the core.
	if newMatrix != nil {
		m.mx, err = newMatrix(m.core, db, log)
	} else {
		mxCfg := matrix.DefaultConfig()
		mxCfg.Presence.Rate, mxCfg.Presence.Burst = 1000, 1000
		m.fm = matrixtest.New()
		m.mx, err = matrix.NewWithConnector(m.core, mxCfg, m.fm, &bridgeconfig.BridgeConfig{
			CommandPrefix:       "!msn",
			BridgeStatusNotices: "errors",
			Permissions:         bridgeconfig.PermissionConfig{"test": &bridgeconfig.PermissionLevelUser},
		}, db, log)
	}
	must(t, err)
	must(t, m.mx.Start(ctx))
	m.dfe, err = discord.New(m.core, discord.Config{
		Enabled:          true,
		Token:            m.dc.Token(),
		GuildID:          m.dc.GuildID(),
		RosterDebounce:   500 * time.Millisecond,
		TopicDebounce:    200 * time.Millisecond,
		TopicMinInterval: 300 * time.Millisecond,
		TypingInterval:   time.Second,
	}, log, discord.WithHTTPClient(m.dc.HTTPClient()))
	must(t, err)
	must(t, m.dfe.Start(ctx))
	must(t, m.core.Start(ctx))
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		m.dfe.Stop(sctx)
		m.mx.Stop(sctx)
		_ = m.core.Stop(sctx)
	})
	return m
}

func (m *mirror) user() *bridgev2.User {
	u, err := m.mx.Bridge().GetUserByMXID(m.ctx, aliceMX)
	must(m.t, err)
	return u
}

// loginMatrix logs alice in through the Matrix login flow.
func (m *mirror) loginMatrix() {
	t := m.t
	t.Helper()
	proc, err := m.mx.Connector().CreateLogin(m.ctx, m.user(), matrix.LoginFlowPassword)
	must(t, err)
	_, err = proc.Start(m.ctx)
	must(t, err)
	step, err := proc.(bridgev2.LoginProcessUserInput).SubmitUserInput(m.ctx, map[string]string{"email": alice, "password": alicePW})
	must(t, err)
	if step.Type != bridgev2.LoginStepTypeComplete {
		t.Fatalf("login ended with step %+v", step)
	}
}

// command runs a bridge command as alice in her management room and returns the bot's replies.
func (m *mirror) command(cmd string) string {
	m.t.Helper()
	u := m.user()
	room, err := u.GetManagementRoom(m.ctx)
	must(m.t, err)
	before := len(m.fm.Messages(room))
	m.mx.Bridge().Commands.Handle(m.ctx, room, id.EventID(fmt.Sprintf("$cmd%d", m.fm.NextID())), u, cmd, "")
	var replies []string
	for _, ev := range m.fm.Messages(room)[before:] {
		if msg, ok := ev.Content.Parsed.(*event.MessageEventContent); ok && ev.Sender == m.fm.BotIntent().GetMXID() {
			replies = append(replies, msg.Body)
		}
	}
	return strings.Join(replies, "\n")
}

// slash runs /msn <sub> as the guild owner in #general and returns the final answer.
func (m *mirror) slash(sub string, opts map[string]string) string {
	m.t.Helper()
	o := &discordgo.ApplicationCommandInteractionDataOption{Name: sub, Type: discordgo.ApplicationCommandOptionSubCommand}
	for k, v := range opts {
		o.Options = append(o.Options, &discordgo.ApplicationCommandInteractionDataOption{
			Name: k, Type: discordgo.ApplicationCommandOptionString, Value: v})
	}
	iid, tok := m.dc.InjectSlashCommand(m.dc.OwnerID(), m.gen, discordgo.ApplicationCommandInteractionData{
		Name: "msn", Options: []*discordgo.ApplicationCommandInteractionDataOption{o}})
	if iid == "" {
		m.t.Fatalf("could not inject /msn %s", sub)
	}
	var text string
	waitFor(m.t, "answer to /msn "+sub, func() bool {
		rs := m.dc.InteractionResponses(iid)
		if len(rs) == 0 {
			return false
		}
		if rs[0].Type == discordgo.InteractionResponseChannelMessageWithSource {
			text = rs[0].Content
			return true
		}
		if o := m.dc.Original(tok); o != nil && o.Content != "" {
			text = o.Content
			return true
		}
		return false
	})
	return text
}

// logins counts alice's completed MSN logins on msntest.
func (m *mirror) logins() int {
	n := 0
	for _, ev := range m.ms.EventsFor(alice) {
		if ev.Server == "NS" && ev.Name == "USR" && len(ev.Args) > 3 && ev.Args[1] == "TWN" && ev.Args[2] == "S" {
			n++
		}
	}
	return n
}

// matrixMessage waits for a message whose body contains text and returns it.
func (m *mirror) matrixMessage(what, text string) *matrixtest.Event {
	m.t.Helper()
	var found *matrixtest.Event
	ctx, cancel := context.WithTimeout(m.ctx, waitTimeout)
	defer cancel()
	m.fm.WaitFor(ctx, func() bool {
		for _, ev := range m.fm.Messages("") {
			if msg, ok := ev.Content.Parsed.(*event.MessageEventContent); ok && strings.Contains(msg.Body, text) {
				found = ev
				return true
			}
		}
		return false
	})
	if found == nil {
		m.t.Fatalf("Matrix never showed %s (%q)", what, text)
	}
	return found
}

// discordMessage waits for a webhook message in channel whose content is text.
func (m *mirror) discordMessage(channel, what, text string) *discordtest.Message {
	m.t.Helper()
	var found *discordtest.Message
	waitFor(m.t, "Discord showing "+what, func() bool {
		for _, msg := range m.dc.Messages(channel) {
			if msg.WebhookID != "" && msg.Content == text {
				found = msg
				return true
			}
		}
		return false
	})
	return found
}

func ghostMXID(handle string) id.UserID {
	return id.NewUserID("msn_"+id.EncodeUserLocalpart(handle), "test")
}

var linkCodeRE = regexp.MustCompile(`[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}`)

// TestMirrorMatrixAndDiscord mirrors one MSN account into Matrix and Discord at once: one MSN
// session, contact messages shown in both, each side's replies sent to MSN once and shown on the
// other side as the user's own, and presence in both.
func TestMirrorMatrixAndDiscord(t *testing.T) {
	m := newMirror(t)

	// Log in through Matrix, then link Discord with a code from Matrix.
	m.loginMatrix()
	waitFor(t, "alice online on MSN", func() bool { return m.ms.Online(alice) })
	reply := m.command("link-code")
	code := linkCodeRE.FindString(reply)
	if code == "" {
		t.Fatalf("link-code replied %q", reply)
	}
	if ans := m.slash("link", map[string]string{"code": code}); !strings.Contains(ans, "mirrored here too") {
		t.Fatalf("/msn link answered %q", ans)
	}
	acc := m.core.Account(alice)
	if acc == nil || len(acc.Owners()) != 2 {
		t.Fatalf("account owners: %+v", acc)
	}
	waitFor(t, "both frontends attached", func() bool { return len(acc.Attached()) == 2 })

	// A message from the contact shows in both.
	must(t, m.ms.BotSay(bob, alice, "hello both"))
	ev := m.matrixMessage("bob's message", "hello both")
	if ev.Sender != ghostMXID(bob) {
		t.Errorf("bob's message in Matrix sent by %s, want his ghost", ev.Sender)
	}
	room := ev.RoomID
	var bobCh string
	waitFor(t, "bob's Discord channel", func() bool {
		if c := m.dc.ChannelByName("bob-at-example-com"); c != nil {
			bobCh = c.ID
		}
		return bobCh != ""
	})
	if msg := m.discordMessage(bobCh, "bob's message", "hello both"); !strings.Contains(msg.Author.Username, "Bob") {
		t.Errorf("bob's message in Discord under %q", msg.Author.Username)
	}

	// A reply from Matrix reaches bob once and shows in Discord as sent by the user elsewhere.
	m.mx.Bridge().QueueMatrixEvent(m.ctx, &event.Event{
		Type: event.EventMessage, RoomID: room, Sender: aliceMX, ID: id.EventID(fmt.Sprintf("$mx%d", m.fm.NextID())),
		Timestamp: time.Now().UnixMilli(),
		Content:   event.Content{Parsed: &event.MessageEventContent{MsgType: event.MsgText, Body: "from matrix"}},
	})
	waitFor(t, "bob receiving the Matrix reply", func() bool { return m.bob.count("from matrix") > 0 })
	if msg := m.discordMessage(bobCh, "the Matrix reply", "from matrix"); !strings.Contains(msg.Author.Username, "(you, via matrix)") {
		t.Errorf("the Matrix reply in Discord is under %q, want it marked as the user's, via Matrix", msg.Author.Username)
	}

	// A reply from Discord reaches bob once and shows in Matrix as the user's own message.
	m.dc.InjectUserMessage(bobCh, m.dc.OwnerID(), "from discord")
	waitFor(t, "bob receiving the Discord reply", func() bool { return m.bob.count("from discord") > 0 })
	ev = m.matrixMessage("the Discord reply", "from discord")
	// Without double puppeting, the user's own messages are sent by the puppet of their MSN
	// account.
	if ev.RoomID != room || ev.Sender != ghostMXID(alice) {
		t.Errorf("the Discord reply in Matrix: room %s sender %s, want %s from %s", ev.RoomID, ev.Sender, room, ghostMXID(alice))
	}

	// A presence change shows in both: the ghost's presence and the channel topic.
	must(t, m.ms.SetPresence(bob, "AWY", "lunch break"))
	ctx, cancel := context.WithTimeout(m.ctx, waitTimeout)
	defer cancel()
	if !m.fm.WaitFor(ctx, func() bool {
		p := m.fm.Presence(ghostMXID(bob))
		return len(p) > 0 && p[len(p)-1].Presence == "unavailable" && strings.Contains(p[len(p)-1].StatusMsg, "lunch break")
	}) {
		t.Errorf("Matrix presence of bob: %+v", m.fm.Presence(ghostMXID(bob)))
	}
	waitFor(t, "bob away in the Discord topic", func() bool {
		c := m.dc.Channel(bobCh)
		return c != nil && strings.Contains(c.Topic, "Away") && strings.Contains(c.Topic, "lunch break")
	})

	// Everything went through one MSN session, and each reply reached bob exactly once (checked
	// after the later steps, which a duplicate would have preceded).
	if n := m.logins(); n != 1 {
		t.Errorf("%d MSN logins, want exactly 1", n)
	}
	if a, b := m.bob.count("from matrix"), m.bob.count("from discord"); a != 1 || b != 1 {
		t.Errorf("bob received the Matrix reply %d times and the Discord reply %d times, want once each", a, b)
	}
	for _, text := range []string{"from matrix", "hello both"} {
		n := 0
		for _, msg := range m.dc.Messages(bobCh) {
			if msg.Content == text {
				n++
			}
		}
		if n != 1 {
			t.Errorf("Discord shows %q %d times, want once", text, n)
		}
	}
}
