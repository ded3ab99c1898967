package soak

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"

	"github.com/msn-bridge/msn-bridge/bridge"
	"github.com/msn-bridge/msn-bridge/discord"
	"github.com/msn-bridge/msn-bridge/discord/discordtest"
	"github.com/msn-bridge/msn-bridge/internal/testenv/pgtest"
	"github.com/msn-bridge/msn-bridge/matrix"
	"github.com/msn-bridge/msn-bridge/msn"
	"github.com/msn-bridge/msn-bridge/msn/msntest"
)

// Direction of a tracked message.
type direction string

const (
	fromContact direction = "contact → user (BotSay)"
	fromEcho    direction = "contact → user (echo)"
	fromDiscord direction = "user → contact (Discord)"
	fromMatrix  direction = "user → contact (Matrix)"
)

var directions = []direction{fromContact, fromEcho, fromDiscord, fromMatrix}

var tokenRE = regexp.MustCompile(`SOAK-[0-9]+`)

// tokens returns the message tokens in text.
func tokens(text string) []string { return tokenRE.FindAllString(text, -1) }

// tracked is one message sent during the soak.
type tracked struct {
	token   string
	dir     direction
	account string
	contact string
	sent    time.Time

	mu        sync.Mutex
	attempted bool  // the sender could write it (false: never left the sender, not counted)
	failed    bool  // reported failed to the sender when sending
	sendErr   error // the error reported, for the log
	discordID string
	edit      bool       // a Discord edit of the message discordID
	matrixID  id.EventID // the Matrix event that sent it
	editOf    id.EventID // a Matrix edit of this event (set before the send, not changed)
	edited    bool       // a Matrix message that has its edit
	done      bool       // the send returned (Matrix) or was injected (others)
}

// tracker numbers messages and remembers every one.
type tracker struct {
	next atomic.Int64
	mu   sync.Mutex
	all  []*tracked
	byID map[string]*tracked // Discord message id → message
	// editOf: Discord message id → its one edit, carried to MSN as a message of its own (with
	// the edit's token only, so that the original's token is not counted twice).
	editOf map[string]*tracked

	botMu  sync.Mutex
	botGot map[string]int // token → times a contact bot received it
	// botPlain: tokens a contact bot received in a message that is no correction (no
	// bridge.CorrectionPrefix). An edit's token arrives so when the catch-up of a gateway gap
	// carried its message with the edited text: Discord lists a message as it is now.
	botPlain map[string]bool
	// botAt: when a contact bot first received a token; for an owner's message, about when MSN
	// accepted it and the core emitted its mirror to the other frontend.
	botAt map[string]time.Time
}

func newTracker() *tracker {
	return &tracker{byID: map[string]*tracked{}, editOf: map[string]*tracked{}, botGot: map[string]int{}, botPlain: map[string]bool{},
		botAt: map[string]time.Time{}}
}

func (tr *tracker) add(dir direction, account, contact string) *tracked {
	m := &tracked{token: "SOAK-" + strconv.FormatInt(tr.next.Add(1), 10), dir: dir, account: account, contact: contact, sent: time.Now()}
	tr.mu.Lock()
	tr.all = append(tr.all, m)
	tr.mu.Unlock()
	return m
}

func (tr *tracker) messages() []*tracked {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]*tracked(nil), tr.all...)
}

func (tr *tracker) botCount(tok string) int {
	tr.botMu.Lock()
	defer tr.botMu.Unlock()
	return tr.botGot[tok]
}

// receivedAt returns when a contact bot first received tok.
func (tr *tracker) receivedAt(tok string) (time.Time, bool) {
	tr.botMu.Lock()
	defer tr.botMu.Unlock()
	at, ok := tr.botAt[tok]
	return at, ok
}

// supersededBy returns the edit of m, an owner's Discord message, when MSN got m's edited text
// in place of m: the message was edited before the catch-up of a gateway gap fetched it, and
// Discord keeps no earlier text. Nil otherwise.
func (tr *tracker) supersededBy(m *tracked) *tracked {
	m.mu.Lock()
	id, edit := m.discordID, m.edit
	m.mu.Unlock()
	if m.dir != fromDiscord || edit || id == "" {
		return nil
	}
	tr.mu.Lock()
	ed := tr.editOf[id]
	tr.mu.Unlock()
	if ed == nil {
		return nil
	}
	tr.botMu.Lock()
	defer tr.botMu.Unlock()
	if tr.botGot[m.token] == 0 && tr.botPlain[ed.token] {
		return ed
	}
	return nil
}

// faultLog remembers when faults that can cut the MSN transport under a message hit an account.
type faultLog struct {
	mu     sync.Mutex
	at     map[string][]time.Time
	counts map[string]int
}

func (f *faultLog) note(kind, account string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counts[kind]++
	if account != "" {
		f.at[account] = append(f.at[account], time.Now())
	}
}

// hitBetween reports whether a transport fault hit account within [from, to].
func (f *faultLog) hitBetween(account string, from, to time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, t := range f.at[account] {
		if !t.Before(from) && !t.After(to) {
			return true
		}
	}
	return false
}

type soakEnv struct {
	t        *testing.T
	rng      *rand.Rand
	rngMu    sync.Mutex
	ms       *msntest.Server
	dc       *discordtest.Server
	core     *bridge.Core
	fe       *discord.Frontend
	mx       *matrixSide
	tr       *tracker
	faults   *faultLog
	users    []string
	contacts map[string][]string // user → contacts
	channels map[string]string   // contact → Discord channel id
	owner    string              // Discord owner id

	// discordFaults (SOAK_DISCORD_FAULTS=1) adds Discord as it really misbehaves: 5xx answers,
	// and the bot missing a permission on an account's channels for a while.
	discordFaults bool
	misMu         sync.Mutex
	misconfigured map[string]bool // accounts whose channels deny the bot a permission now
	invalidMax    atomic.Int64    // the most invalid requests the frontend counted in its 10-minute window
	ownInvalid    []invalidSample // the bridge's own invalid requests so far, every second (sampleInvalid)
}

// invalidSample is the count of the bridge's own invalid Discord requests at a time.
type invalidSample struct {
	at time.Time
	n  int
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func (e *soakEnv) intn(n int) int {
	e.rngMu.Lock()
	defer e.rngMu.Unlock()
	return e.rng.IntN(n)
}

func userHandle(i int) string       { return fmt.Sprintf("u%02d@example.com", i) }
func contactHandle(i, j int) string { return fmt.Sprintf("u%02dc%d@example.com", i, j) }

// channelName is the Discord frontend's channel name for a one-to-one chat.
func channelName(contact string) string {
	return strings.NewReplacer("@", "-at-", ".", "-").Replace(contact)
}

// TestSoak runs traffic both ways under random faults and checks that no message was lost or
// duplicated: each one was delivered exactly once (to the contact, or to both frontends), or
// reported failed to its sender.
func TestSoak(t *testing.T) {
	duration := 25 * time.Second
	if v := os.Getenv("SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("SOAK_DURATION: %v", err)
		}
		duration = d
	}
	seed := uint64(envInt("SOAK_SEED", 1))
	nAccounts := envInt("SOAK_ACCOUNTS", 20)
	const nContacts = 3

	e := &soakEnv{
		t: t, rng: rand.New(rand.NewPCG(seed, seed^0x5eed)), tr: newTracker(),
		faults:   &faultLog{at: map[string][]time.Time{}, counts: map[string]int{}},
		contacts: map[string][]string{}, channels: map[string]string{},
		discordFaults: os.Getenv("SOAK_DISCORD_FAULTS") == "1", misconfigured: map[string]bool{},
	}
	e.startMSN(nAccounts, nContacts)
	e.startBridge()
	e.loginAll()
	e.warmUp()

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	var bg sync.WaitGroup
	bg.Add(2)
	go func() { defer bg.Done(); e.traffic(ctx) }()
	go func() { defer bg.Done(); e.inject(ctx, &bg) }()
	sampleCtx, stopSampling := context.WithCancel(context.Background())
	sampled := make(chan struct{})
	go func() { defer close(sampled); e.sampleInvalid(sampleCtx) }()
	<-ctx.Done()
	cancel()
	bg.Wait()
	e.restore()
	settled := e.settle(settleMax)
	stopSampling()
	<-sampled
	elapsed := time.Since(start)
	r := e.report()
	e.print(r, seed, duration, elapsed, settled)
	// Discord bans at 10,000 invalid requests in 10 minutes; the bridge's own (the 401, 403 and
	// 429 answers the soak did not inject) must stay far below, in any 10 minutes of the run.
	if peak := e.ownInvalidPeak(); peak >= 1000 {
		t.Errorf("the bridge caused %d invalid Discord requests within 10 minutes (at most 999 allowed)", peak)
	}
	if r.total.lost > 0 || r.total.dup > 0 {
		for _, l := range r.details {
			t.Log(l)
		}
		t.Fatalf("lost %d, duplicated %d (seed %d)", r.total.lost, r.total.dup, seed)
	}
	if r.total.delivered == 0 {
		t.Fatal("nothing was delivered")
	}
}

func (e *soakEnv) startMSN(nAccounts, nContacts int) {
	t := e.t
	var specs []msntest.AccountSpec
	var friends [][2]string
	for i := range nAccounts {
		u := userHandle(i)
		e.users = append(e.users, u)
		specs = append(specs, msntest.AccountSpec{Handle: u, Password: "pw-" + u, Name: fmt.Sprintf("User %d", i)})
		for j := range nContacts {
			c := contactHandle(i, j)
			e.contacts[u] = append(e.contacts[u], c)
			specs = append(specs, msntest.AccountSpec{Handle: c, Password: "x", Name: fmt.Sprintf("Contact %d.%d", i, j),
				Status: "NLN", Bot: e.bot(j == 0)})
			friends = append(friends, [2]string{u, c})
		}
	}
	e.ms = msntest.New(msntest.Options{Accounts: specs, Friends: friends, EventLimit: -1})
	if err := e.ms.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.ms.Close)
}

// bot is a contact's behaviour: it counts every token it receives and, when echo is set, answers
// a message from the user with a new tracked message.
func (e *soakEnv) bot(echo bool) msntest.BotFunc {
	return func(_ context.Context, chat *msntest.BotChat, msg msntest.BotMessage) {
		if !msg.IsText() {
			return
		}
		toks := tokens(msg.Body)
		plain := !strings.HasPrefix(msg.Body, bridge.CorrectionPrefix)
		e.tr.botMu.Lock()
		now := time.Now()
		for _, tok := range toks {
			e.tr.botGot[tok]++
			if _, ok := e.tr.botAt[tok]; !ok {
				e.tr.botAt[tok] = now
			}
			if plain {
				e.tr.botPlain[tok] = true
			}
		}
		e.tr.botMu.Unlock()
		if !echo || len(toks) == 0 || strings.HasPrefix(msg.Body, "echo ") {
			return
		}
		m := e.tr.add(fromEcho, msg.From, chat.Bot())
		err := chat.Say("echo " + m.token)
		m.mu.Lock()
		m.attempted, m.done = true, true
		m.failed, m.sendErr = err != nil, err
		m.mu.Unlock()
	}
}

func (e *soakEnv) startBridge() {
	t := e.t
	dopts := discordtest.Options{HeartbeatInterval: time.Second, EditLimit: 2, EditWindow: 3 * time.Second}
	if v := os.Getenv("SOAK_SESSION_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("SOAK_SESSION_TIMEOUT: %v", err)
		}
		dopts.SessionTimeout = d
	}
	e.dc = discordtest.New(dopts)
	t.Cleanup(e.dc.Close)
	e.owner = e.dc.OwnerID()

	db := pgtest.Open(t, pgtest.SQLiteDriver, pgtest.SQLiteDSN(t))
	key := make([]byte, bridge.KeySize)
	for i := range key {
		key[i] = byte(i + 1)
	}
	cipher, err := bridge.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel)
	store := bridge.NewStore(db, cipher, log)
	if err = store.Upgrade(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.core, err = bridge.NewCore(bridge.Config{
		MSN: msn.Config{
			Server: e.ms.NSAddr(), LoginURL: e.ms.LoginURL(), AllowInsecurePassport: true,
			PingInterval: time.Hour, DialTimeout: 2 * time.Second, RequestTimeout: 5 * time.Second,
			JoinTimeout: 3 * time.Second, AckTimeout: 3 * time.Second,
		},
		LoginRate:  100,
		LoginBurst: 20,
		// The one Discord owner redeems a link code for every account at once.
		UserLoginBurst: len(e.users) + 1,
		Reconnect:      bridge.ReconnectConfig{Initial: 50 * time.Millisecond, Max: 500 * time.Millisecond},
		PresenceWindow: 100 * time.Millisecond,
	}, bridge.Options{Store: store, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = e.core.Stop(ctx)
	})
	// As the bridge's main does: frontends first, then the core.
	e.mx = newMatrixSide(t, e.core, db, zerolog.ErrorLevel)
	if err = e.mx.start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		e.mx.stop(ctx)
	})
	// SOAK_DISCORD_LOG names a file that receives the Discord frontend's log at debug level.
	dlog := log
	if path := os.Getenv("SOAK_DISCORD_LOG"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = f.Close() })
		dlog = zerolog.New(f).With().Timestamp().Logger().Level(zerolog.DebugLevel)
	}
	dcfg := discord.Config{
		Enabled: true, Token: e.dc.Token(), GuildID: e.dc.GuildID(),
		RosterDebounce: 500 * time.Millisecond, TopicDebounce: 200 * time.Millisecond,
		TopicMinInterval: 300 * time.Millisecond, TopicEditsPerWindow: 2, TopicWindow: 3 * time.Second,
		TypingInterval: time.Second,
	}
	if e.discordFaults {
		// A refused account retries after 1 s, doubling up to 6 s, so that its messages go
		// through soon after the soak gives the permission back.
		dcfg.ForbiddenBackoff = time.Second
	}
	e.fe, err = discord.New(e.core, dcfg, dlog, discord.WithHTTPClient(e.dc.HTTPClient()))
	if err != nil {
		t.Fatal(err)
	}
	if err = e.fe.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		e.fe.Stop(ctx)
	})
	if err = e.core.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// loginAll logs every account in through the Matrix login flow of its own Matrix user and
// links the Discord owner to it.
func (e *soakEnv) loginAll() {
	t := e.t
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	owner := bridge.FrontendUser{Frontend: discord.FrontendName, UserID: e.owner}
	for _, u := range e.users {
		if err := e.mx.login(ctx, u, "pw-"+u); err != nil {
			t.Fatalf("login %s: %v", u, err)
		}
		code, _, err := e.core.IssueLinkCode(ctx, u, bridge.FrontendUser{Frontend: matrix.FrontendName, UserID: string(mxUserOf(u))})
		if err != nil {
			t.Fatal(err)
		}
		if _, err = e.core.RedeemLinkCode(ctx, code, owner); err != nil {
			t.Fatal(err)
		}
	}
}

// warmUp sends one tracked message from every contact, which makes the Discord frontend create
// the contact's channel and the Matrix frontend the contact's portal, and waits for both.
func (e *soakEnv) warmUp() {
	for _, u := range e.users {
		for _, c := range e.contacts[u] {
			e.sayFromContact(u, c)
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for _, u := range e.users {
		for _, c := range e.contacts[u] {
			for {
				if ch := e.dc.ChannelByName(channelName(c)); ch != nil {
					e.channels[c] = ch.ID
					break
				}
				if time.Now().After(deadline) {
					e.t.Fatalf("no Discord channel for %s", c)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	for !e.mx.findRooms(e.contacts) {
		if time.Now().After(deadline) {
			e.t.Fatal("not every contact has a Matrix portal")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *soakEnv) sayFromContact(user, contact string) {
	m := e.tr.add(fromContact, user, contact)
	err := e.ms.BotSay(contact, user, "hello "+m.token)
	m.mu.Lock()
	m.attempted, m.done = true, true
	m.failed, m.sendErr = err != nil, err
	m.mu.Unlock()
}

func (e *soakEnv) sayFromDiscord(user, contact string) {
	m := e.tr.add(fromDiscord, user, contact)
	msg := e.dc.InjectUserMessage(e.channels[contact], e.owner, m.token+" from discord")
	m.mu.Lock()
	m.attempted, m.done = msg != nil, true
	if msg != nil {
		m.discordID = msg.ID
	}
	m.mu.Unlock()
	if msg != nil {
		e.tr.mu.Lock()
		e.tr.byID[msg.ID] = m
		e.tr.mu.Unlock()
	}
}

// editFromDiscord edits the owner's latest message in the chat that has no edit yet; it
// reports false when there is none.
func (e *soakEnv) editFromDiscord(user, contact string) bool {
	var orig *tracked
	var origID string
	e.tr.mu.Lock()
	for i := len(e.tr.all) - 1; i >= 0 && orig == nil; i-- {
		m := e.tr.all[i]
		if m.dir != fromDiscord || m.account != user || m.contact != contact {
			continue
		}
		m.mu.Lock()
		id, edit := m.discordID, m.edit
		m.mu.Unlock()
		if id != "" && !edit && e.tr.editOf[id] == nil {
			orig, origID = m, id
		}
	}
	e.tr.mu.Unlock()
	if orig == nil {
		return false
	}
	m := e.tr.add(fromDiscord, user, contact)
	m.mu.Lock()
	m.edit, m.discordID = true, origID
	m.mu.Unlock()
	e.tr.mu.Lock()
	e.tr.editOf[origID] = m
	e.tr.mu.Unlock()
	ok := e.dc.InjectUserEdit(e.channels[contact], origID, m.token+" from discord, edited")
	m.mu.Lock()
	m.attempted, m.done = ok, true
	m.mu.Unlock()
	return true
}

// traffic sends about 25 messages a second, each from a random side of a random chat, until ctx
// ends.
func (e *soakEnv) traffic(ctx context.Context) {
	tick := time.NewTicker(40 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		u := e.users[e.intn(len(e.users))]
		c := e.contacts[u][e.intn(len(e.contacts[u]))]
		switch r := e.intn(10); {
		case r < 4:
			e.sayFromContact(u, c)
		case r < 6:
			e.sayFromDiscord(u, c)
		case r < 7:
			// The owner edits an earlier message of theirs in this chat (or writes one, when
			// there is none left to edit).
			if !e.editFromDiscord(u, c) {
				e.sayFromDiscord(u, c)
			}
		case r < 9:
			e.sayFromMatrix(u, c, "")
		default:
			// The owner edits their latest Matrix message in this chat that has no edit yet.
			if target := e.editTarget(u, c); target != "" {
				e.sayFromMatrix(u, c, target)
			} else {
				e.sayFromMatrix(u, c, "")
			}
		}
	}
}

// sayFromMatrix sends a message from the owner's Matrix account, or an edit of editOf.
func (e *soakEnv) sayFromMatrix(user, contact string, editOf id.EventID) {
	m := e.tr.add(fromMatrix, user, contact)
	m.editOf = editOf
	text := m.token + " from matrix"
	if editOf != "" {
		text += ", edited"
	}
	sent := e.mx.send(m, text)
	m.mu.Lock()
	m.attempted, m.done = sent, true
	m.mu.Unlock()
}

// editTarget picks the owner's latest Matrix message in the chat that has no edit and is no
// edit, and marks it edited; "" when there is none.
func (e *soakEnv) editTarget(user, contact string) id.EventID {
	e.tr.mu.Lock()
	defer e.tr.mu.Unlock()
	for i := len(e.tr.all) - 1; i >= 0; i-- {
		m := e.tr.all[i]
		if m.dir != fromMatrix || m.account != user || m.contact != contact || m.editOf != "" {
			continue
		}
		m.mu.Lock()
		target, edited := m.matrixID, m.edited
		if target != "" && !edited {
			m.edited = true
		}
		m.mu.Unlock()
		if target != "" && !edited {
			return target
		}
	}
	return ""
}

// inject applies a random fault every 250 ms until ctx ends. Faults that heal by themselves
// (a contact coming back, the homeserver coming back, the Matrix frontend restarting) run on
// goroutines counted in wg.
func (e *soakEnv) inject(ctx context.Context, wg *sync.WaitGroup) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		u := e.users[e.intn(len(e.users))]
		c := e.contacts[u][e.intn(len(e.contacts[u]))]
		heal := time.Duration(300+e.intn(1700)) * time.Millisecond
		kinds := 10
		if e.discordFaults {
			kinds = 12
		}
		switch e.intn(kinds) {
		case 0:
			if e.ms.DropConnection(u) == nil {
				e.faults.note("msn connection dropped", u)
			}
		case 1:
			if e.ms.Shutdown(u) > 0 {
				e.faults.note("OUT SSD", u)
			}
		case 2:
			if e.ms.RCT(u, 0) == nil {
				e.faults.note("OUT RCT 0", u)
			}
		case 3:
			if e.ms.CloseSwitchboards(u) > 0 {
				e.faults.note("switchboards closed", u)
			}
		case 4:
			if e.ms.NAKNext(u) == nil {
				e.faults.note("NAK next message", "")
			}
		case 5:
			if e.ms.SetPresence(c, "FLN", "") == nil {
				e.faults.note("contact offline and back", "")
				wg.Add(1)
				go func() {
					defer wg.Done()
					time.Sleep(heal)
					_ = e.ms.SetPresence(c, "NLN", "")
				}()
			}
		case 6:
			restart := e.intn(2) == 0
			wg.Add(1)
			go func() {
				defer wg.Done()
				if restart {
					ok, err := e.mx.restart()
					if err != nil {
						e.t.Errorf("matrix frontend restart: %v", err)
					}
					if ok {
						e.faults.note("matrix frontend restarted", "")
					}
				} else if e.mx.outage(heal) {
					e.faults.note("matrix homeserver down", "")
				}
			}()
		case 7:
			if e.dc.DropGateway() > 0 {
				e.faults.note("discord gateway dropped", "")
			}
		case 8:
			e.dc.Inject429("POST /webhooks/{w}/{tok}", 1+e.intn(3), time.Duration(50+e.intn(450))*time.Millisecond)
			e.faults.note("discord 429 on webhooks", "")
		case 9:
			e.dc.Inject429("*", 1+e.intn(2), time.Duration(50+e.intn(250))*time.Millisecond)
			e.faults.note("discord 429 on any route", "")
		case 10:
			routes := []string{"POST /webhooks/{w}/{tok}", "GET /channels/{c}/messages", "*"}
			statuses := []int{500, 502, 503, 504}
			e.dc.InjectFault(routes[e.intn(len(routes))], 1+e.intn(2), statuses[e.intn(len(statuses))])
			e.faults.note("discord 5xx", "")
		case 11:
			// The permission stays missing for 1.5–10 s: the account's breaker opens, its
			// messages wait, and go through once it is back.
			if e.misconfigure(u, wg, 5*heal) {
				e.faults.note("discord permission missing on an account's channels", "")
			}
		}
	}
}

// misconfigure has an admin deny the bot Manage Webhooks on every channel of user's contacts
// and delete their webhooks: the next message shown there needs a new webhook, which Discord
// refuses (403) until the permission is back after d. It reports false when user's channels
// are misconfigured already.
func (e *soakEnv) misconfigure(user string, wg *sync.WaitGroup, d time.Duration) bool {
	e.misMu.Lock()
	if e.misconfigured[user] {
		e.misMu.Unlock()
		return false
	}
	e.misconfigured[user] = true
	e.misMu.Unlock()
	saved := map[string][]*discordgo.PermissionOverwrite{}
	chans := map[string]bool{}
	for _, c := range e.contacts[user] {
		id := e.channels[c]
		ch := e.dc.Channel(id)
		if ch == nil {
			continue
		}
		chans[id] = true
		saved[id] = ch.PermissionOverwrites
		// As an admin editing the bot's entry in the channel's permissions: the member
		// overwrite, which the bridge wrote to allow itself what it needs, now denies it.
		var ows []*discordgo.PermissionOverwrite
		found := false
		for _, o := range ch.PermissionOverwrites {
			cp := *o
			if cp.ID == e.dc.BotID() && cp.Type == discordgo.PermissionOverwriteTypeMember {
				cp.Allow &^= discordgo.PermissionManageWebhooks
				cp.Deny |= discordgo.PermissionManageWebhooks
				found = true
			}
			ows = append(ows, &cp)
		}
		if !found {
			ows = append(ows, &discordgo.PermissionOverwrite{ID: e.dc.BotID(), Type: discordgo.PermissionOverwriteTypeMember,
				Deny: discordgo.PermissionManageWebhooks})
		}
		e.dc.SetChannelOverwrites(id, ows)
	}
	for _, w := range e.dc.Webhooks() {
		if chans[w.ChannelID] {
			e.dc.DeleteWebhook(w.ID)
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(d)
		for id, ows := range saved {
			e.dc.SetChannelOverwrites(id, ows)
		}
		e.misMu.Lock()
		delete(e.misconfigured, user)
		e.misMu.Unlock()
	}()
	return true
}

// sampleInvalid, every second until ctx ends, keeps the most invalid requests the frontend
// counted in its window of the last 10 minutes, and notes the bridge's own invalid requests so
// far as the fake counted them: its 401, 403 and 429 answers but the 429s the soak injected.
func (e *soakEnv) sampleInvalid(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if n := int64(e.fe.InvalidRequests()); n > e.invalidMax.Load() {
			e.invalidMax.Store(n)
		}
		e.ownInvalid = append(e.ownInvalid, invalidSample{time.Now(), e.dc.InvalidRequests() - e.dc.Injected429()})
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ownInvalidPeak is the most of the bridge's own invalid requests within any 10 minutes of the
// run, counting from the sample before each window (so a window may count a second more): the
// figure Discord's ban is about. Call it once sampleInvalid has returned.
func (e *soakEnv) ownInvalidPeak() int {
	peak, i := 0, 0
	for _, s := range e.ownInvalid {
		for e.ownInvalid[i].at.Before(s.at.Add(-10 * time.Minute)) {
			i++
		}
		n := s.n
		if i > 0 {
			n -= e.ownInvalid[i-1].n
		}
		peak = max(peak, n)
	}
	return peak
}

// restore brings every contact back (the Matrix faults have ended: inject waited for them).
func (e *soakEnv) restore() {
	for _, u := range e.users {
		for _, c := range e.contacts[u] {
			_ = e.ms.SetPresence(c, "NLN", "")
		}
	}
}

// discordView is what Discord shows, by token.
type discordView struct {
	fromContact map[string]int // webhook messages under a contact's name
	mirrored    map[string]int // webhook messages of the owner's messages from Matrix
	failed      map[string]bool
	// unshown: tokens of MSN messages the frontend could not post and reported in a notice
	// carrying their text ("could not be shown here").
	unshown map[string]bool
}

func (e *soakEnv) scanDiscord() discordView {
	v := discordView{fromContact: map[string]int{}, mirrored: map[string]int{}, failed: map[string]bool{}, unshown: map[string]bool{}}
	e.tr.mu.Lock()
	byID := e.tr.byID
	for _, ch := range e.dc.Channels() {
		if ch.Type != discordgo.ChannelTypeGuildText {
			continue
		}
		for _, m := range e.dc.Messages(ch.ID) {
			switch {
			case m.WebhookID != "" && m.Author != nil && strings.Contains(m.Author.Username, "(you"):
				for _, tok := range tokens(m.Content) {
					v.mirrored[tok]++
				}
			case m.WebhookID != "":
				for _, tok := range tokens(m.Content) {
					v.fromContact[tok]++
				}
			case strings.HasPrefix(m.Content, "⚠️ A message from") && strings.Contains(m.Content, "could not be shown here"):
				for _, tok := range tokens(m.Content) {
					v.unshown[tok] = true
				}
			case strings.HasPrefix(m.Content, "❌ Edit not delivered") && m.MessageReference != nil:
				if src := e.tr.editOf[m.MessageReference.MessageID]; src != nil {
					v.failed[src.token] = true
				}
			case strings.HasPrefix(m.Content, "❌") && m.MessageReference != nil:
				if src := byID[m.MessageReference.MessageID]; src != nil {
					v.failed[src.token] = true
				}
			}
			// A ❌ reaction says which message failed only while the message has no edit (one
			// reaction serves both); the replies above say it either way.
			if len(m.Reactions) > 0 && byID[m.ID] != nil && e.tr.editOf[m.ID] == nil {
				for _, r := range m.Reactions {
					if r.Emoji != nil && r.Emoji.Name == "❌" {
						v.failed[byID[m.ID].token] = true
					}
				}
			}
		}
	}
	e.tr.mu.Unlock()
	return v
}

// mirrorStopped reports whether the Matrix frontend was stopped when the core emitted the
// mirror of m, an owner's Discord message: within 5 s after it was sent, or after MSN took it
// (the contact's bot received it; the core emits the mirror once the send returns, after the
// switchboard's ACK, at most AckTimeout later), which can be much later when the message
// waited in the account's outbox or for its MSN connection.
func (e *soakEnv) mirrorStopped(m *tracked) bool {
	if e.mx.stoppedAround(m.sent.Add(-50*time.Millisecond), m.sent.Add(5*time.Second)) {
		return true
	}
	at, ok := e.tr.receivedAt(m.token)
	return ok && e.mx.stoppedAround(at.Add(-50*time.Millisecond), at.Add(5*time.Second))
}

// settleMax bounds the wait after traffic: far above the longest pause the Discord frontend
// takes on its own (the gateway's reconnect pause, at most 15 s, a catch-up, webhook pacing of
// 30 posts a minute per channel, a forbidden account's backoff), so that the wait ends by
// quiescence, not by this bound, unless something is really stuck.
const settleMax = 5 * time.Minute

// settled is how the wait after traffic ended.
type settled struct {
	took    time.Duration
	pending int  // messages still on their way when it ended
	timeout bool // it ended at settleMax, not by quiescence
}

// settle waits until nothing is on its way and nothing has changed for 5 s, or until max. On
// its way: a send that has not returned (a Matrix send: its message status has not come back);
// an owner's message neither at the contact nor reported failed; a contact's message shown on
// one frontend and not yet on the other (unless the Matrix frontend was stopped around it); a
// message the contact got and not yet mirrored on the other frontend; the Discord gateway
// without a connection. A message that reached no frontend at all is not waited for: the core
// shows every message on both, so it is lost or was cut by the MSN transport.
func (e *soakEnv) settle(max time.Duration) settled {
	start := time.Now()
	last, stable := "", time.Now()
	pending := 0
	for time.Since(start) < max {
		pending = 0
		v := e.scanDiscord()
		mv := e.mx.scan(e.userSet())
		for _, m := range e.tr.messages() {
			m.mu.Lock()
			done, attempted, failed := m.done, m.attempted, m.failed
			m.mu.Unlock()
			if !done {
				pending++
				continue
			}
			if !attempted || failed {
				continue
			}
			mxStopped := e.mx.stoppedAround(m.sent.Add(-50*time.Millisecond), m.sent.Add(5*time.Second))
			switch m.dir {
			case fromContact, fromEcho:
				mxGot, dcGot := mv.received[m.token], v.fromContact[m.token]
				if mxGot > 0 && dcGot == 0 && !v.unshown[m.token] || dcGot > 0 && mxGot == 0 && !mxStopped {
					pending++
				}
			case fromDiscord:
				got := e.tr.botCount(m.token)
				if got == 0 && !v.failed[m.token] && e.tr.supersededBy(m) == nil ||
					got == 1 && !v.failed[m.token] && mv.mirrored[m.token] == 0 && !e.mirrorStopped(m) {
					pending++
				}
			case fromMatrix:
				got := e.tr.botCount(m.token)
				if !mv.status[m.token] || got == 1 && !mv.failed[m.token] && v.mirrored[m.token] == 0 && !v.unshown[m.token] {
					pending++
				}
			}
		}
		if e.dc.Connected() != 1 {
			pending++
		}
		sig := fmt.Sprint(pending, len(v.fromContact), len(v.mirrored), len(v.failed), e.botTotal(), mv.events, mv.statuses)
		if sig != last {
			last, stable = sig, time.Now()
		}
		if pending == 0 && time.Since(stable) >= 5*time.Second {
			return settled{took: time.Since(start)}
		}
		time.Sleep(250 * time.Millisecond)
	}
	return settled{took: time.Since(start), pending: pending, timeout: true}
}

func (e *soakEnv) userSet() map[string]bool {
	users := map[string]bool{}
	for _, u := range e.users {
		users[u] = true
	}
	return users
}

func (e *soakEnv) botTotal() int {
	e.tr.botMu.Lock()
	defer e.tr.botMu.Unlock()
	n := 0
	for _, c := range e.tr.botGot {
		n += c
	}
	return n
}

// tally counts outcomes.
type tally struct {
	sent, delivered, failed, deliveredReported, lost, transport, dup int
	mirrorOK, mirrorLost, mirrorDup                                  int
	// mxStopped counts messages shown on Discord exactly once but not on Matrix because the
	// core emitted them while the Matrix frontend was stopped (a restart): the core hands a
	// removed frontend no events (Core.RemoveFrontend), and MSN has no history to fetch.
	mxStopped int
	// asEdited counts owner's Discord messages MSN got with their edited text in place of the
	// first (edited before a gap's catch-up fetched them); they count as delivered.
	asEdited int
	// mirrorReported counts Matrix messages whose mirror Discord refused, the owner told there.
	mirrorReported int
}

func (a *tally) add(b tally) {
	a.sent += b.sent
	a.delivered += b.delivered
	a.failed += b.failed
	a.deliveredReported += b.deliveredReported
	a.lost += b.lost
	a.transport += b.transport
	a.dup += b.dup
	a.mirrorOK += b.mirrorOK
	a.mirrorLost += b.mirrorLost
	a.mirrorDup += b.mirrorDup
	a.mxStopped += b.mxStopped
	a.asEdited += b.asEdited
	a.mirrorReported += b.mirrorReported
}

type report struct {
	by      map[direction]*tally
	edits   tally // the Discord edits, counted in discord→contact too
	mxEdits tally // the Matrix edits, counted in matrix→contact too
	total   tally
	details []string
}

// report classifies every message.
//
// Contact → user: a message the server refused (the contact was offline, the user not logged in)
// or dropped unsent, telling the sender (held for an invitation to a login that ended before
// answering it: msntest.Undelivered), was reported failed to its sender. Otherwise it must reach each frontend exactly once; a
// message that reached neither, on an account whose MSN transport was cut (connection dropped,
// OUT, switchboards closed) within 5 s after it was sent, was lost by the MSN transport before
// the bridge could see it (MSN has no delivery guarantee there) and is counted apart; any other
// miss is lost by the bridge. A message shown on Discord exactly once and not on Matrix, sent
// within 5 s before or during a restart of the Matrix frontend, is counted apart (mxStopped).
//
// User → contact: the contact's bot received it exactly once (delivered), or the sender was told
// (a ❌ on the Discord message, a failed message status on Matrix); a message that arrived and was also
// reported (an ACK timeout: "may not have arrived") is counted as delivered and reported. A
// message MSN accepted is mirrored to the other frontend exactly once.
func (e *soakEnv) report() report {
	v := e.scanDiscord()
	mv := e.mx.scan(e.userSet())
	// The contacts' messages msntest dropped unsent, telling the sender (msntest.Undelivered).
	undelivered := map[string]bool{}
	for _, u := range e.ms.Undelivered() {
		for _, tok := range tokens(u.Body()) {
			undelivered[tok] = true
		}
	}
	r := report{by: map[direction]*tally{}}
	for _, d := range directions {
		r.by[d] = &tally{}
	}
	for _, m := range e.tr.messages() {
		m.mu.Lock()
		attempted, failed, sendErr := m.attempted, m.failed, m.sendErr
		m.mu.Unlock()
		if !attempted {
			continue
		}
		var t tally
		t.sent = 1
		switch m.dir {
		case fromContact, fromEcho:
			mxGot, dcGot := mv.received[m.token], v.fromContact[m.token]
			switch {
			case failed, undelivered[m.token] && mxGot == 0 && dcGot == 0:
				t.failed = 1
			case mxGot == 0 && dcGot == 0 && e.faults.hitBetween(m.account, m.sent.Add(-50*time.Millisecond), m.sent.Add(5*time.Second)):
				t.transport = 1
			case mxGot > 1 || dcGot > 1:
				t.dup = 1
				r.details = append(r.details, fmt.Sprintf("%s %s %s→%s duplicated: matrix %d, discord %d", m.dir, m.token, m.contact, m.account, mxGot, dcGot))
			case mxGot == 1 && dcGot == 1:
				t.delivered = 1
			case mxGot == 1 && dcGot == 0 && v.unshown[m.token]:
				// Shown on Matrix; Discord refused the post and the owner was told, with the text.
				t.deliveredReported = 1
			case mxGot == 0 && dcGot == 1 && e.mx.stoppedAround(m.sent.Add(-50*time.Millisecond), m.sent.Add(5*time.Second)):
				t.mxStopped = 1
			default:
				t.lost = 1
				r.details = append(r.details, fmt.Sprintf("%s %s %s→%s lost: matrix %d, discord %d", m.dir, m.token, m.contact, m.account, mxGot, dcGot))
			}
		case fromDiscord, fromMatrix:
			got := e.tr.botCount(m.token)
			reported := mv.failed[m.token]
			if m.dir == fromDiscord {
				reported = v.failed[m.token]
			}
			switch {
			case got > 1:
				t.dup = 1
				r.details = append(r.details, fmt.Sprintf("%s %s %s→%s duplicated: contact got it %d times", m.dir, m.token, m.account, m.contact, got))
			case got == 1 && reported:
				t.deliveredReported = 1
			case got == 1:
				t.delivered = 1
			case reported:
				t.failed = 1
			case e.tr.supersededBy(m) != nil:
				t.delivered, t.asEdited = 1, 1
			default:
				t.lost = 1
				m.mu.Lock()
				where := m.discordID
				if m.edit {
					where = "an edit of " + where
				}
				m.mu.Unlock()
				r.details = append(r.details, fmt.Sprintf("%s %s %s→%s lost: not received, not reported (%v; discord message %s, sent %s)",
					m.dir, m.token, m.account, m.contact, sendErr, where, m.sent.UTC().Format("15:04:05.000")))
			}
			if got == 1 && !reported {
				var mirrors int
				if m.dir == fromDiscord {
					mirrors = mv.mirrored[m.token]
				} else {
					mirrors = v.mirrored[m.token]
				}
				switch {
				case mirrors == 1:
					t.mirrorOK = 1
				case mirrors == 0 && m.dir == fromMatrix && v.unshown[m.token]:
					t.mirrorReported = 1
				case mirrors == 0 && m.dir == fromDiscord && e.mirrorStopped(m):
					t.mxStopped = 1
				case mirrors == 0:
					t.mirrorLost = 1
					at, _ := e.tr.receivedAt(m.token)
					r.details = append(r.details, fmt.Sprintf("%s %s %s→%s not mirrored to the other frontend (sent %s, at the contact %s; nearest Matrix restart %s)",
						m.dir, m.token, m.account, m.contact, m.sent.UTC().Format("15:04:05.000"), at.UTC().Format("15:04:05.000"), e.mx.nearestStop(at)))
				default:
					t.mirrorDup = 1
					r.details = append(r.details, fmt.Sprintf("%s %s mirrored %d times", m.dir, m.token, mirrors))
				}
			}
		}
		r.by[m.dir].add(t)
		r.total.add(t)
		m.mu.Lock()
		if m.edit {
			r.edits.add(t)
		}
		if m.editOf != "" {
			r.mxEdits.add(t)
		}
		m.mu.Unlock()
	}
	r.total.lost += r.total.mirrorLost
	r.total.dup += r.total.mirrorDup
	return r
}

func (e *soakEnv) print(r report, seed uint64, duration, elapsed time.Duration, st settled) {
	var b strings.Builder
	fmt.Fprintf(&b, "soak: %d accounts × %d contacts, seed %d, %s of traffic and faults, settled in %s (total %s)\n",
		len(e.users), len(e.contacts[e.users[0]]), seed, duration, st.took.Round(100*time.Millisecond), elapsed.Round(100*time.Millisecond))
	if st.timeout {
		fmt.Fprintf(&b, "settle: gave up after %s with %d messages still on their way\n", settleMax, st.pending)
	}
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "direction\tsent\tdelivered\treported-failed\tdelivered+reported\tlost\tduplicated\tlost-by-msn-transport\tmirrored\tmirror-lost\tmirror-dup\tmatrix-stopped\t")
	row := func(name string, t tally) {
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", name, t.sent, t.delivered, t.failed,
			t.deliveredReported, t.lost, t.dup, t.transport, t.mirrorOK, t.mirrorLost, t.mirrorDup, t.mxStopped)
	}
	for _, d := range directions {
		row(string(d), *r.by[d])
	}
	row("total", r.total)
	row("of which discord edits", r.edits)
	row("of which matrix edits", r.mxEdits)
	_ = w.Flush()
	e.faults.mu.Lock()
	kinds := make([]string, 0, len(e.faults.counts))
	for k := range e.faults.counts {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	b.WriteString("faults:")
	for _, k := range kinds {
		fmt.Fprintf(&b, " %s=%d", k, e.faults.counts[k])
	}
	e.faults.mu.Unlock()
	mv := e.mx.scan(e.userSet())
	failed := 0
	for range mv.failed {
		failed++
	}
	e.mx.mu.Lock()
	fmt.Fprintf(&b, "\nmatrix: %d messages sent by ghosts, %d message statuses (%d messages failed), %d homeserver outages, %d frontend restarts",
		mv.events, mv.statuses, failed, e.mx.outages, e.mx.restarts)
	e.mx.mu.Unlock()
	gs := e.dc.Stats()
	fmt.Fprintf(&b, "\ndiscord: %d 429s answered (%d injected), %d gateway connections, %d resumes, %d sessions expired",
		e.dc.Count429(), e.dc.Injected429(), gs.Connections, gs.Resumes, gs.Expired)
	invalid, injected := e.dc.InvalidRequests(), e.dc.Injected429()
	fmt.Fprintf(&b, "\ndiscord invalid requests (401/403/429): %d answered, %d of them injected 429s, so %d the bridge's own (%d 401/403), at most %d within 10 minutes; the frontend's 10-minute count peaked at %d",
		invalid, injected, invalid-injected, invalid-e.dc.Count429(), e.ownInvalidPeak(), e.invalidMax.Load())
	fmt.Fprintf(&b, "\nmsntest: %d contact messages dropped unsent with an invitation of an ended login, and reported", len(e.ms.Undelivered()))
	fmt.Fprintf(&b, "\nsummary: delivered %d (%d of them with their edited text, edited before a gateway gap's catch-up) / reported-failed %d / lost %d / duplicated %d (+%d delivered and reported, %d lost by the msn transport, %d not shown on Matrix while its frontend was stopped, %d mirrors on Discord refused and reported)",
		r.total.delivered, r.total.asEdited, r.total.failed, r.total.lost, r.total.dup, r.total.deliveredReported, r.total.transport, r.total.mxStopped, r.total.mirrorReported)
	e.t.Log("\n" + b.String())
}
