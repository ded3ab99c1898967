package matrix

import (
	"errors"
	"fmt"
	"strings"
	"text/template"
	"time"
)

// Config holds the Matrix frontend's own options. The bridgev2 sections (homeserver,
// appservice, bridge, matrix, provisioning, …) are a bridgeconfig.Config passed to New beside
// it. Start from DefaultConfig and decode YAML over it.
type Config struct {
	// Presence controls how contacts' presence and PSMs are mirrored to their ghosts.
	Presence PresenceConfig `yaml:"presence"`
	// DisplaynameTemplate renders a ghost's display name (text/template) from .Name (the
	// contact's friendly name, or the handle when it has none) and .Handle.
	DisplaynameTemplate string `yaml:"displayname_template"`
	// NudgeText is the emote shown when a contact nudges the account ("* Bob nudged you").
	NudgeText string `yaml:"nudge_text"`
	// IgnoreUnsupportedServer lets bridgev2 run on homeservers that advertise spec versions
	// older than it wants (Dendrite advertises v1.2).
	IgnoreUnsupportedServer bool `yaml:"ignore_unsupported_server"`
	// LoginTimeout bounds a login attempt from the login command (default 60s).
	LoginTimeout time.Duration `yaml:"login_timeout"`
	// MaxMessageSize is the most bytes of text an MSN message shows in its Matrix event (as
	// the event's JSON counts them); a longer message is cut and ends with a note of how many
	// characters were not shown. Homeservers refuse events over 64 KiB, formatted body included.
	MaxMessageSize int `yaml:"max_message_size"`
	// Version is the bridge's version, shown by the bot's version command and sent in bridge
	// states. It is set by the program, not the config file.
	Version string `yaml:"-"`
}

// Bounds of Config.MaxMessageSize: the upper one leaves room for a formatted body and the rest
// of the event under the homeservers' 64 KiB limit.
const (
	minMessageSize = 1 << 10
	maxMessageSize = 32 << 10
)

// PresenceConfig tunes ghost presence.
type PresenceConfig struct {
	// Enabled turns presence mirroring on.
	Enabled bool `yaml:"enabled"`
	// RefreshInterval is how often the presence of non-offline ghosts is set again, before
	// homeservers time it out (Synapse: 30 s without activity).
	RefreshInterval time.Duration `yaml:"refresh_interval"`
	// Rate is the number of presence updates per second allowed across all ghosts; Burst how
	// many may go at once.
	Rate  float64 `yaml:"rate"`
	Burst int     `yaml:"burst"`
}

// DefaultConfig returns the defaults that config.example.yaml documents under "matrix:".
func DefaultConfig() Config {
	return Config{
		Presence: PresenceConfig{
			Enabled:         true,
			RefreshInterval: 25 * time.Second,
			Rate:            20,
			Burst:           50,
		},
		DisplaynameTemplate: "{{.Name}} (MSN)",
		NudgeText:           "nudged you",
		LoginTimeout:        time.Minute,
		MaxMessageSize:      16 << 10,
	}
}

// Validate checks every option; the error names the offending key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("matrix config: %s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.Presence.Enabled {
		if c.Presence.RefreshInterval < 5*time.Second || c.Presence.RefreshInterval > 10*time.Minute {
			bad("presence.refresh_interval", "must be between 5s and 10m, got %s", c.Presence.RefreshInterval)
		}
		if c.Presence.Rate <= 0 || c.Presence.Rate > 1000 {
			bad("presence.rate", "must be above 0 and at most 1000 per second, got %v", c.Presence.Rate)
		}
		if c.Presence.Burst < 1 || c.Presence.Burst > 10000 {
			bad("presence.burst", "must be between 1 and 10000, got %d", c.Presence.Burst)
		}
	}
	if strings.TrimSpace(c.DisplaynameTemplate) == "" {
		bad("displayname_template", "must not be empty")
	} else if tmpl, err := template.New("displayname").Parse(c.DisplaynameTemplate); err != nil {
		bad("displayname_template", "%v", err)
	} else if err = tmpl.Execute(discard{}, displaynameParams{Name: "n", Handle: "h@example.com"}); err != nil {
		bad("displayname_template", "%v", err)
	}
	if strings.TrimSpace(c.NudgeText) == "" {
		bad("nudge_text", "must not be empty")
	}
	if c.LoginTimeout < 0 {
		bad("login_timeout", "must not be negative, got %s", c.LoginTimeout)
	}
	if c.MaxMessageSize < minMessageSize || c.MaxMessageSize > maxMessageSize {
		bad("max_message_size", "must be between %d and %d bytes, got %d", minMessageSize, maxMessageSize, c.MaxMessageSize)
	}
	return errors.Join(errs...)
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// displaynameParams is the data of Config.DisplaynameTemplate.
type displaynameParams struct {
	Name   string
	Handle string
}
