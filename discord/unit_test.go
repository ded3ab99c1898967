package discord

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"
	"gopkg.in/yaml.v3"

	msnbridge "github.com/msn-bridge/msn-bridge"
	"github.com/msn-bridge/msn-bridge/bridge"
)

// TestExampleConfigIsTheDefaults checks that the "discord:" section of config.example.yaml, the
// one example of the options, decodes strictly to DefaultConfig.
func TestExampleConfigIsTheDefaults(t *testing.T) {
	var wrap struct {
		Discord yaml.Node `yaml:"discord"`
	}
	if err := yaml.Unmarshal(msnbridge.ExampleConfig, &wrap); err != nil {
		t.Fatal(err)
	}
	b, err := yaml.Marshal(&wrap.Discord)
	if err != nil {
		t.Fatal(err)
	}
	var got Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if want := DefaultConfig(); got != want {
		t.Fatalf("example config decodes to\n%+v\nwant the defaults\n%+v", got, want)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Enabled: true, Token: "abc.def", GuildID: "123456789012345678"}
	for _, tc := range []struct {
		name   string
		change func(*Config)
		keys   []string // keys the error must name; none for valid
	}{
		{"valid minimal", func(*Config) {}, nil},
		{"disabled needs nothing", func(c *Config) { *c = Config{} }, nil},
		{"token prefix ok", func(c *Config) { c.Token = "Bot abc" }, nil},
		{"no token", func(c *Config) { c.Token = "" }, []string{"token"}},
		{"bad guild", func(c *Config) { c.GuildID = "my-guild" }, []string{"guild_id"}},
		{"bad application", func(c *Config) { c.ApplicationID = "x" }, []string{"application_id"}},
		{"negative duration", func(c *Config) { c.TopicWindow = -time.Second }, []string{"topic_window"}},
		{"roster too fast", func(c *Config) { c.RosterDebounce = 10 * time.Millisecond }, []string{"roster_debounce"}},
		{"no topic budget", func(c *Config) { c.TopicEditsPerWindow = -1 }, []string{"topic_edits_per_window"}},
		{"too many parts", func(c *Config) { c.MaxPartsPerMessage = 500 }, []string{"max_parts_per_message"}},
		{"negative parts", func(c *Config) { c.MaxPartsPerMessage = -1 }, []string{"max_parts_per_message"}},
		{"login too long", func(c *Config) { c.LoginTimeout = time.Hour }, []string{"login_timeout"}},
		{"backoff too short", func(c *Config) { c.ForbiddenBackoff = time.Millisecond }, []string{"forbidden_backoff"}},
		{"negative backoff", func(c *Config) { c.ForbiddenBackoff = -time.Minute }, []string{"forbidden_backoff"}},
		{"budget over the ban", func(c *Config) { c.InvalidRequestBudget = 10000 }, []string{"invalid_request_budget"}},
		{"negative budget", func(c *Config) { c.InvalidRequestBudget = -1 }, []string{"invalid_request_budget"}},
		{"same categories", func(c *Config) {
			c.OnlineOfflineCategories = true
			c.OfflineCategoryName = "MSN — {handle}"
		}, []string{"offline_category_name"}},
		{"several at once", func(c *Config) { c.Token, c.GuildID = "", "" }, []string{"token", "guild_id"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.change(&c)
			err := c.Validate()
			if len(tc.keys) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, k := range tc.keys {
				if !strings.Contains(err.Error(), k+":") {
					t.Errorf("error %q does not name %s", err, k)
				}
			}
			if strings.Contains(err.Error(), "abc.def") {
				t.Errorf("error shows the token: %q", err)
			}
		})
	}
}

func TestSanitizeUsername(t *testing.T) {
	for _, tc := range []struct{ name, handle, want string }{
		{"Bob", "bob@example.com", "Bob"},
		{"Bob @everyone: the #1 ```x```", "bob@example.com", "Bob everyone the 1 x"},
		{"Discord Clyde", "bob@example.com", "bob at example.com"},
		{"everyone", "bob@example.com", "bob at example.com"},
		{"  HERE ", "bob@example.com", "bob at example.com"},
		{"", "bob@example.com", "bob at example.com"},
		{"cLyDe", "discord@clyde.com", "at .com"},
		{"\x00\t", "", "MSN contact"},
		{strings.Repeat("é", 100), "x@y", strings.Repeat("é", 80)},
		{"disclydecord", "x@y", "x at y"},
	} {
		got := sanitizeUsername(tc.name, tc.handle)
		if got != tc.want {
			t.Errorf("sanitizeUsername(%q) = %q, want %q", tc.name, got, tc.want)
		}
		n := utf8.RuneCountInString(got)
		l := strings.ToLower(got)
		if n < 1 || n > 80 || strings.Contains(l, "discord") || strings.Contains(l, "clyde") || strings.ContainsAny(got, "@#:") {
			t.Errorf("sanitizeUsername(%q) = %q breaks Discord's rules", tc.name, got)
		}
	}
}

func TestRenderMSN(t *testing.T) {
	for _, tc := range []struct {
		text string
		f    bridge.Format
		want string
	}{
		{"hello", bridge.Format{}, "hello"},
		{"hello", bridge.Format{Bold: true, Italic: true}, "***hello***"},
		{"hello", bridge.Format{Underline: true, Strikethrough: true}, "__~~hello~~__"},
		{"a *b* _c_ ~d~ `e` |f|", bridge.Format{}, `a \*b\* \_c\_ \~d\~ \` + "`e\\` \\|f\\|"},
		{"- not a list\n> not a quote\n# no heading", bridge.Format{}, "\\- not a list\n\\> not a quote\n\\# no heading"},
		{"see https://x.com/a_b_c and x-y", bridge.Format{}, "see https://x.com/a_b_c and x-y"},
		{"(*) :-*", bridge.Format{}, `(\*) :-\*`},
		{"   ", bridge.Format{Bold: true}, "   "},
	} {
		if got := renderMSN(tc.text, tc.f); got != tc.want {
			t.Errorf("renderMSN(%q, %+v) = %q, want %q", tc.text, tc.f, got, tc.want)
		}
	}
}

func TestSplitMessage(t *testing.T) {
	long := strings.Repeat("word ", 1000)
	parts := splitMessage(long)
	if strings.Join(parts, "") != long {
		t.Fatal("split loses text")
	}
	for _, p := range parts {
		if n := utf8.RuneCountInString(p); n > maxMessageLen {
			t.Fatalf("part of %d characters", n)
		}
	}
	if got := splitMessage("short"); len(got) != 1 || got[0] != "short" {
		t.Fatalf("%q", got)
	}
}

func TestChatChannelName(t *testing.T) {
	for chat, want := range map[bridge.ChatID]string{
		"bob@example.com":        "bob-at-example-com",
		"Bob.Smith+x@mail.co.uk": "bob-smith-x-at-mail-co-uk",
		"tel:+15551234":          "tel-15551234",
		bridge.GroupChat("17"):   "group-17",
		"@@@":                    "at",
	} {
		if got := chatChannelName(chat); got != want {
			t.Errorf("chatChannelName(%q) = %q, want %q", chat, got, want)
		}
	}
}

func TestTopicFor(t *testing.T) {
	for _, tc := range []struct {
		c    bridge.Contact
		want string
	}{
		{bridge.Contact{Handle: bob, Status: bridge.StatusOnline, PSM: "hi\nthere"}, "`bob@example.com` · 🟢 Online · hi there"},
		{bridge.Contact{Handle: bob, Status: bridge.StatusBRB}, "`bob@example.com` · 🟡 Be right back"},
		{bridge.Contact{Handle: "b_o_b@x.com", Status: bridge.StatusPhone, PSM: "*x*"}, "`b_o_b@x.com` · 🔴 On the phone · \\*x\\*"},
		{bridge.Contact{Handle: bob, Status: bridge.StatusOffline, PSM: "stale"}, "`bob@example.com` · ⚫ Offline"},
	} {
		if got := topicFor(tc.c); got != tc.want {
			t.Errorf("topicFor(%+v) = %q, want %q", tc.c, got, tc.want)
		}
	}
	if n := utf8.RuneCountInString(topicFor(bridge.Contact{Status: bridge.StatusOnline, PSM: strings.Repeat("x", 5000)})); n > 1024 {
		t.Errorf("topic of %d characters", n)
	}
}

// TestRosterWithinEmbedCaps renders large lists and checks every Discord cap.
func TestRosterWithinEmbedCaps(t *testing.T) {
	for _, n := range []int{0, 1, 30, 200, 1000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			p := &portal{f: &Frontend{now: time.Now}, handle: alice, contacts: map[string]bridge.Contact{}}
			statuses := []bridge.Status{bridge.StatusOnline, bridge.StatusAway, bridge.StatusBusy, bridge.StatusOffline, bridge.StatusLunch}
			for i := 0; i < n; i++ {
				h := fmt.Sprintf("contact%04d@example.com", i)
				p.contacts[h] = bridge.Contact{Handle: h, Name: strings.Repeat("N", 300), Status: statuses[i%len(statuses)],
					PSM: strings.Repeat("p", 500), Media: strings.Repeat("m", 300), Forward: true}
			}
			pages := p.renderRosterLocked()
			if len(pages) == 0 || len(pages) > maxRosterPages {
				t.Fatalf("%d pages", len(pages))
			}
			shown := 0
			for _, pg := range pages {
				if len(pg.Embeds) > 10 || utf8.RuneCountInString(pg.Content) > 2000 {
					t.Fatalf("page with %d embeds", len(pg.Embeds))
				}
				total := 0
				for _, e := range pg.Embeds {
					if len(e.Fields) > 25 {
						t.Fatalf("embed with %d fields", len(e.Fields))
					}
					total += utf8.RuneCountInString(e.Title)
					if e.Footer != nil {
						total += utf8.RuneCountInString(e.Footer.Text)
					}
					for _, f := range e.Fields {
						if utf8.RuneCountInString(f.Name) > 256 || utf8.RuneCountInString(f.Value) > 1024 || f.Value == "" {
							t.Fatalf("field out of caps: %d/%d", len(f.Name), len(f.Value))
						}
						total += utf8.RuneCountInString(f.Name) + utf8.RuneCountInString(f.Value)
						shown++
					}
				}
				if total > 6000 {
					t.Fatalf("page of %d embed characters", total)
				}
			}
			if shown < n {
				last := pages[len(pages)-1].Embeds
				if f := last[len(last)-1].Footer; f == nil || !strings.Contains(f.Text, fmt.Sprint(n-shown)) {
					t.Fatalf("%d contacts not shown and not said", n-shown)
				}
			}
		})
	}
}

// TestTopicBudget checks the topic scheduler's arithmetic: the burst settles, edits are spaced
// by the minimum interval, and never more than the budget falls in one window.
func TestTopicBudget(t *testing.T) {
	cfg := DefaultConfig()
	p := &portal{f: &Frontend{cfg: cfg}}
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	ch := &chatChannel{topicPending: t0}
	if got := p.topicDueLocked(ch, t0); !got.Equal(t0.Add(cfg.TopicDebounce)) {
		t.Fatalf("first edit due %v", got.Sub(t0))
	}
	// Simulate a change every second for an hour, sending whenever due.
	var sent []time.Time
	now := t0
	for now.Before(t0.Add(time.Hour)) {
		if ch.topicPending.IsZero() {
			ch.topicPending = now
		}
		if due := p.topicDueLocked(ch, now); !now.Before(due) {
			sent = append(sent, now)
			ch.topicEdits = append(ch.topicEdits, now)
			ch.topicPending = time.Time{}
		}
		now = now.Add(time.Second)
	}
	for i := cfg.TopicEditsPerWindow; i < len(sent); i++ {
		if sent[i].Sub(sent[i-cfg.TopicEditsPerWindow]) < cfg.TopicWindow {
			t.Fatalf("edits %v and %v in one window", sent[i-cfg.TopicEditsPerWindow], sent[i])
		}
	}
	for i := 1; i < len(sent); i++ {
		if sent[i].Sub(sent[i-1]) < cfg.TopicMinInterval {
			t.Fatalf("edits %v apart", sent[i].Sub(sent[i-1]))
		}
	}
	// An hour of constant change costs about 2 edits per 10 minutes, not 3600.
	if len(sent) > 13 || len(sent) < 10 {
		t.Fatalf("%d topic edits in an hour of constant change", len(sent))
	}
}

func TestNonNilDropsNullEntries(t *testing.T) {
	a, b := &discordgo.Channel{ID: "1"}, &discordgo.Channel{ID: "2"}
	got := nonNil([]*discordgo.Channel{nil, a, nil, nil, b, nil})
	if len(got) != 2 || got[0] != a || got[1] != b {
		t.Fatalf("nonNil kept %v", got)
	}
	if got := nonNil[discordgo.Channel](nil); len(got) != 0 {
		t.Fatalf("nonNil(nil) = %v", got)
	}
}
