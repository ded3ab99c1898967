package discord

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Config is the "discord:" section of the bridge configuration. Zero durations and empty names
// take the defaults of DefaultConfig.
type Config struct {
	// Enabled turns the Discord frontend on.
	Enabled bool `yaml:"enabled"`
	// Token is the bot token, with or without the "Bot " prefix. It is never logged.
	Token string `yaml:"token"`
	// GuildID is the guild the bot mirrors accounts into.
	GuildID string `yaml:"guild_id"`
	// ApplicationID is the bot's application id; empty takes it from READY.
	ApplicationID string `yaml:"application_id"`

	// CategoryName is the name of each account's category; "{handle}" is replaced by the MSN
	// handle.
	CategoryName string `yaml:"category_name"`
	// RosterChannelName is the channel holding the pinned roster message. Discord lowercases
	// text channel names and turns spaces into hyphens; the frontend uses the name as Discord
	// stores it (see textChannelName), so that it finds the channel again.
	RosterChannelName string `yaml:"roster_channel_name"`
	// OnlineOfflineCategories moves contact channels between the account's category (online)
	// and OfflineCategoryName (offline).
	OnlineOfflineCategories bool   `yaml:"online_offline_categories"`
	OfflineCategoryName     string `yaml:"offline_category_name"`

	// RosterDebounce is the minimum interval between two edits of the roster message.
	RosterDebounce time.Duration `yaml:"roster_debounce"`
	// TopicDebounce is how long a contact's topic waits for a burst of changes to settle.
	TopicDebounce time.Duration `yaml:"topic_debounce"`
	// TopicMinInterval is the minimum time between two topic edits of one channel.
	TopicMinInterval time.Duration `yaml:"topic_min_interval"`
	// TopicEditsPerWindow name/topic edits are allowed per channel per TopicWindow (Discord:
	// 2 per 10 minutes).
	TopicEditsPerWindow int           `yaml:"topic_edits_per_window"`
	TopicWindow         time.Duration `yaml:"topic_window"`
	// TypingInterval is the minimum interval between two typing indicators per channel.
	TypingInterval time.Duration `yaml:"typing_interval"`
	// LoginTimeout bounds a /msn login.
	LoginTimeout time.Duration `yaml:"login_timeout"`
	// MaxPartsPerMessage caps the Discord posts one MSN message becomes (Discord takes 2000
	// characters per post); the last part says how much was not shown.
	MaxPartsPerMessage int `yaml:"max_parts_per_message"`

	// ForbiddenBackoff is how long an account's mirror pauses after Discord refused one of its
	// requests (401, 403); each further refusal doubles it, up to six times as long.
	ForbiddenBackoff time.Duration `yaml:"forbidden_backoff"`
	// InvalidRequestBudget caps Discord's invalid answers (401, 403, 429) per 10 minutes: at
	// the cap further requests wait. Discord bans the IP above 10,000.
	InvalidRequestBudget int `yaml:"invalid_request_budget"`
}

// DefaultConfig returns the defaults (those config.example.yaml documents), disabled and without a
// token or guild.
func DefaultConfig() Config {
	return Config{
		CategoryName:         "MSN — {handle}",
		RosterChannelName:    "msn-contacts",
		OfflineCategoryName:  "MSN — {handle} (offline)",
		RosterDebounce:       2 * time.Second,
		TopicDebounce:        3 * time.Second,
		TopicMinInterval:     5 * time.Minute,
		TopicEditsPerWindow:  2,
		TopicWindow:          10 * time.Minute,
		TypingInterval:       8 * time.Second,
		LoginTimeout:         60 * time.Second,
		MaxPartsPerMessage:   5,
		ForbiddenBackoff:     10 * time.Minute,
		InvalidRequestBudget: 1000,
	}
}

// withDefaults returns c with every unset option at its default.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	str := func(v *string, def string) {
		if strings.TrimSpace(*v) == "" {
			*v = def
		}
	}
	dur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	str(&c.CategoryName, d.CategoryName)
	str(&c.RosterChannelName, d.RosterChannelName)
	str(&c.OfflineCategoryName, d.OfflineCategoryName)
	c.RosterChannelName = textChannelName(c.RosterChannelName)
	dur(&c.RosterDebounce, d.RosterDebounce)
	dur(&c.TopicDebounce, d.TopicDebounce)
	dur(&c.TopicMinInterval, d.TopicMinInterval)
	dur(&c.TopicWindow, d.TopicWindow)
	dur(&c.TypingInterval, d.TypingInterval)
	dur(&c.LoginTimeout, d.LoginTimeout)
	dur(&c.ForbiddenBackoff, d.ForbiddenBackoff)
	if c.InvalidRequestBudget == 0 {
		c.InvalidRequestBudget = d.InvalidRequestBudget
	}
	if c.TopicEditsPerWindow == 0 {
		c.TopicEditsPerWindow = d.TopicEditsPerWindow
	}
	if c.MaxPartsPerMessage == 0 {
		c.MaxPartsPerMessage = d.MaxPartsPerMessage
	}
	return c
}

// Validate checks the configuration of an enabled frontend. Each error names its key (relative
// to the "discord:" section); all problems are reported at once.
func (c Config) Validate() error {
	if !c.Enabled {
		return nil
	}
	c = c.withDefaults()
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if strings.TrimSpace(strings.TrimPrefix(c.Token, "Bot ")) == "" {
		bad("token", "must be set to the bot token")
	} else if strings.ContainsAny(c.Token, " \t\r\n") && !strings.HasPrefix(c.Token, "Bot ") {
		bad("token", "must not contain whitespace")
	}
	if !isSnowflake(c.GuildID) {
		bad("guild_id", "must be a numeric Discord id, got %q", c.GuildID)
	}
	if c.ApplicationID != "" && !isSnowflake(c.ApplicationID) {
		bad("application_id", "must be empty or a numeric Discord id, got %q", c.ApplicationID)
	}
	checkName := func(key, v string, max int) {
		if n := len([]rune(strings.ReplaceAll(v, "{handle}", ""))); n > max-20 {
			bad(key, "too long (%d characters; Discord allows %d including the handle)", n, max)
		}
	}
	checkName("category_name", c.CategoryName, 100)
	checkName("offline_category_name", c.OfflineCategoryName, 100)
	checkName("roster_channel_name", c.RosterChannelName, 100)
	if c.OnlineOfflineCategories && c.OfflineCategoryName == c.CategoryName {
		bad("offline_category_name", "must differ from category_name")
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"roster_debounce", c.RosterDebounce}, {"topic_debounce", c.TopicDebounce},
		{"topic_min_interval", c.TopicMinInterval}, {"topic_window", c.TopicWindow},
		{"typing_interval", c.TypingInterval}, {"login_timeout", c.LoginTimeout},
		{"forbidden_backoff", c.ForbiddenBackoff},
	} {
		if d.v < 0 {
			bad(d.key, "must not be negative, got %s", d.v)
		}
	}
	if c.RosterDebounce > 0 && c.RosterDebounce < 500*time.Millisecond {
		bad("roster_debounce", "must be at least 500ms (message edits are rate limited), got %s", c.RosterDebounce)
	}
	if c.ForbiddenBackoff > 0 && c.ForbiddenBackoff < time.Second {
		bad("forbidden_backoff", "must be at least 1s (each retry of a refused request counts towards Discord's ban), got %s", c.ForbiddenBackoff)
	}
	if c.InvalidRequestBudget < 1 || c.InvalidRequestBudget > maxInvalidBudget {
		bad("invalid_request_budget", "must be between 1 and %d (Discord bans the IP above 10000 per 10 minutes), got %d",
			maxInvalidBudget, c.InvalidRequestBudget)
	}
	if c.TopicEditsPerWindow < 1 {
		bad("topic_edits_per_window", "must be at least 1, got %d", c.TopicEditsPerWindow)
	}
	if c.MaxPartsPerMessage < 1 || c.MaxPartsPerMessage > maxPartsCap {
		bad("max_parts_per_message", "must be between 1 and %d, got %d", maxPartsCap, c.MaxPartsPerMessage)
	}
	if c.LoginTimeout > 0 && c.LoginTimeout > 14*time.Minute {
		bad("login_timeout", "must be under 14m (interaction tokens expire after 15m), got %s", c.LoginTimeout)
	}
	return errors.Join(errs...)
}

// maxInvalidBudget keeps invalid_request_budget well under Discord's ban threshold (10,000 per
// 10 minutes), leaving room for requests already in flight.
const maxInvalidBudget = 5000

// maxPartsCap bounds max_parts_per_message: beyond it one message floods a channel.
const maxPartsCap = 50

func isSnowflake(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// textChannelName is name as Discord stores a text channel's name: trimmed, lower case, each
// run of white space one hyphen.
func textChannelName(name string) string {
	return strings.ToLower(strings.Join(strings.Fields(name), "-"))
}

// categoryName renders a category name template for handle.
func categoryName(tmpl, handle string) string {
	name := strings.ReplaceAll(tmpl, "{handle}", handle)
	if r := []rune(name); len(r) > 100 {
		name = string(r[:100])
	}
	return name
}
