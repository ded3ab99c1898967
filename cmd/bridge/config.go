package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"go.mau.fi/util/dbutil"
	"go.mau.fi/zeroconfig"
	"gopkg.in/yaml.v3"
	"maunium.net/go/mautrix/bridgev2/bridgeconfig"

	msnbridge "github.com/msn-bridge/msn-bridge"
	"github.com/msn-bridge/msn-bridge/bridge"
	"github.com/msn-bridge/msn-bridge/discord"
	"github.com/msn-bridge/msn-bridge/matrix"
	"github.com/msn-bridge/msn-bridge/msn"
)

// Config is the whole configuration file. Its layout and every default are in
// config.example.yaml.
type Config struct {
	MSN      MSNConfig         `yaml:"msn"`
	Matrix   MatrixConfig      `yaml:"matrix"`
	Discord  discord.Config    `yaml:"discord"`
	Database dbutil.Config     `yaml:"database"`
	Logging  zeroconfig.Config `yaml:"logging"`
	Metrics  MetricsConfig     `yaml:"metrics"`
}

// MSNConfig is the `msn:` section: the network and the core.
type MSNConfig struct {
	Server             string        `yaml:"server"`
	NexusURL           string        `yaml:"nexus_url"`
	LoginURL           string        `yaml:"login_url"`
	CAFile             string        `yaml:"ca_file"`
	InsecureSkipVerify bool          `yaml:"insecure_skip_verify"`
	Protocols          []string      `yaml:"protocols"`
	ClientVersion      string        `yaml:"client_version"`
	DialTimeout        time.Duration `yaml:"dial_timeout"`
	RequestTimeout     time.Duration `yaml:"request_timeout"`
	JoinTimeout        time.Duration `yaml:"join_timeout"`
	AckTimeout         time.Duration `yaml:"ack_timeout"`

	Core        bridge.Config    `yaml:",inline"`
	Credentials bridge.KeyConfig `yaml:"credentials"`
}

// MatrixConfig is the `matrix:` section: our connector's options beside bridgev2's own sections.
type MatrixConfig struct {
	Enabled bool `yaml:"enabled"`

	Connector matrix.Config `yaml:",inline"`

	Bridge       bridgeconfig.BridgeConfig       `yaml:"bridge"`
	Homeserver   bridgeconfig.HomeserverConfig   `yaml:"homeserver"`
	AppService   bridgeconfig.AppserviceConfig   `yaml:"appservice"`
	Matrix       bridgeconfig.MatrixConfig       `yaml:"matrix"`
	Provisioning bridgeconfig.ProvisioningConfig `yaml:"provisioning"`
	Backfill     bridgeconfig.BackfillConfig     `yaml:"backfill"`
	DoublePuppet bridgeconfig.DoublePuppetConfig `yaml:"double_puppet"`
	Encryption   bridgeconfig.EncryptionConfig   `yaml:"encryption"`
}

// MetricsConfig is the `metrics:` section.
type MetricsConfig struct {
	Enabled bool   `yaml:"enabled"`
	Listen  string `yaml:"listen"`
}

// tokenPlaceholder is what the example config holds until -g writes real tokens.
const tokenPlaceholder = "This value is generated when generating the registration"

// LoadConfig reads the embedded defaults and then path over them. An empty path gives the
// defaults alone. Unknown keys and values of the wrong type are errors naming the line.
func LoadConfig(path string) (*Config, error) {
	cfg := &Config{}
	if err := decodeStrict(bytes.NewReader(msnbridge.ExampleConfig), cfg); err != nil {
		return nil, fmt.Errorf("embedded default config is invalid: %w", err)
	}
	if path == "" {
		return cfg, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read config: %w", err)
	}
	if err := decodeStrict(bytes.NewReader(data), cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

func decodeStrict(r io.Reader, out any) error {
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	if err := dec.Decode(out); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// ConfigError names the offending key.
type ConfigError struct {
	Key, Problem string
}

func (e *ConfigError) Error() string { return e.Key + ": " + e.Problem }

// Demo reports whether no MSN server is configured, in which case the bridge runs the built-in
// demo network.
func (c *Config) Demo() bool { return c.MSN.Server == "" }

// Validate checks every value the bridge would otherwise trip over later. It returns all the
// problems at once, each naming its key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &ConfigError{Key: key, Problem: fmt.Sprintf(format, args...)})
	}
	m := &c.MSN
	if m.Server != "" {
		if _, port, err := net.SplitHostPort(m.Server); err != nil || port == "" {
			bad("msn.server", "must be host:port, got %q", m.Server)
		}
		if m.NexusURL == "" && m.LoginURL == "" {
			bad("msn.login_url", "one of msn.login_url and msn.nexus_url is required with a real server")
		}
	}
	for key, u := range map[string]string{"msn.nexus_url": m.NexusURL, "msn.login_url": m.LoginURL} {
		if u != "" && !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
			bad(key, "must be an http(s) URL, got %q", u)
		}
	}
	if m.CAFile != "" {
		if _, err := os.Stat(m.CAFile); err != nil {
			bad("msn.ca_file", "cannot be read: %v", err)
		}
	}
	for _, p := range m.Protocols {
		if p != "MSNP11" && p != "MSNP10" {
			bad("msn.protocols", "only MSNP11 and MSNP10 are supported, got %q", p)
		}
	}
	if len(m.Protocols) == 0 {
		bad("msn.protocols", "must list at least one protocol")
	}
	for key, d := range map[string]time.Duration{
		"msn.dial_timeout": m.DialTimeout, "msn.request_timeout": m.RequestTimeout,
		"msn.join_timeout": m.JoinTimeout, "msn.ack_timeout": m.AckTimeout,
		"msn.presence_window": m.Core.PresenceWindow, "msn.reconnect.initial": m.Core.Reconnect.Initial,
		"msn.reconnect.max": m.Core.Reconnect.Max, "msn.link_code_ttl": m.Core.LinkCodeTTL,
	} {
		if d < 0 {
			bad(key, "must not be negative, got %s", d)
		}
	}
	if m.Core.LoginRate <= 0 {
		bad("msn.login_rate", "must be above 0, got %v", m.Core.LoginRate)
	}
	if m.Core.LoginBurst < 1 {
		bad("msn.login_burst", "must be at least 1, got %d", m.Core.LoginBurst)
	}
	if m.Core.Reconnect.Max < m.Core.Reconnect.Initial {
		bad("msn.reconnect.max", "must not be below msn.reconnect.initial")
	}
	if m.Core.FrontendQueueSize < 16 {
		bad("msn.frontend_queue_size", "must be at least 16, got %d", m.Core.FrontendQueueSize)
	}
	if m.Credentials.Key != "" {
		if _, err := bridge.DecodeKey(m.Credentials.Key); err != nil {
			bad("msn.credentials.key", "%v", err)
		}
	} else if m.Credentials.KeyFile == "" && os.Getenv("MSN_BRIDGE_KEY") == "" {
		bad("msn.credentials.key_file", "set a key, a key file or MSN_BRIDGE_KEY")
	}

	if !c.Matrix.Enabled && !c.Discord.Enabled {
		bad("matrix.enabled", "enable at least one of matrix and discord")
	}
	if c.Matrix.Enabled {
		c.validateMatrix(bad)
		if err := c.Matrix.Connector.Validate(); err != nil {
			errs = append(errs, prefixed("matrix", err))
		}
	}
	if c.Discord.Enabled {
		if err := c.Discord.Validate(); err != nil {
			errs = append(errs, prefixed("discord", err))
		}
	}

	switch dialect, err := dbutil.ParseDialect(c.Database.Type); {
	case err != nil:
		bad("database.type", "must be sqlite or postgres, got %q", c.Database.Type)
	case dialect == dbutil.SQLite && c.Database.Type != "sqlite":
		bad("database.type", "use sqlite (the pure-Go driver), got %q", c.Database.Type)
	}
	if c.Database.URI == "" {
		bad("database.uri", "must not be empty")
	}
	if c.Database.MaxOpenConns < 1 {
		bad("database.max_open_conns", "must be at least 1, got %d", c.Database.MaxOpenConns)
	}
	if c.Metrics.Enabled {
		if _, _, err := net.SplitHostPort(c.Metrics.Listen); err != nil {
			bad("metrics.listen", "must be host:port, got %q", c.Metrics.Listen)
		}
	}
	if _, err := c.Logging.Compile(); err != nil {
		bad("logging", "%v", err)
	}
	return errors.Join(errs...)
}

func (c *Config) validateMatrix(bad func(key, format string, args ...any)) {
	mx := &c.Matrix
	if !strings.HasPrefix(mx.Homeserver.Address, "http://") && !strings.HasPrefix(mx.Homeserver.Address, "https://") {
		bad("matrix.homeserver.address", "must be an http(s) URL, got %q", mx.Homeserver.Address)
	}
	if mx.Homeserver.Domain == "" || mx.Homeserver.Domain == "example.com" && !c.Demo() {
		bad("matrix.homeserver.domain", "set it to your homeserver's server_name")
	}
	if !bridgeconfig.AllowedHomeserverSoftware[mx.Homeserver.Software] {
		bad("matrix.homeserver.software", "unknown value %q (use standard)", mx.Homeserver.Software)
	}
	if mx.AppService.Port <= 0 || mx.AppService.Port > 65535 {
		bad("matrix.appservice.port", "must be a TCP port, got %d", mx.AppService.Port)
	}
	if mx.AppService.ID == "" {
		bad("matrix.appservice.id", "must not be empty")
	}
	if mx.AppService.Bot.Username == "" {
		bad("matrix.appservice.bot.username", "must not be empty")
	}
	if !strings.Contains(mx.AppService.FormatUsername("1234567890"), "1234567890") {
		bad("matrix.appservice.username_template", "must contain {{.}}")
	}
	if !c.Demo() {
		if mx.AppService.ASToken == tokenPlaceholder || mx.AppService.ASToken == "" {
			bad("matrix.appservice.as_token", "not set: generate the registration with -g first")
		}
		if mx.AppService.HSToken == tokenPlaceholder || mx.AppService.HSToken == "" {
			bad("matrix.appservice.hs_token", "not set: generate the registration with -g first")
		}
	}
	if !mx.Bridge.Permissions.IsConfigured() && !c.Demo() {
		bad("matrix.bridge.permissions", "give your users or domain the user level")
	}
	if mx.Encryption.Allow {
		bad("matrix.encryption.allow", "end-to-bridge encryption needs a build with -tags goolm; this build has none")
	}
}

// prefixed puts a section name in front of a frontend's own validation errors.
func prefixed(section string, err error) error {
	return fmt.Errorf("%s.%w", section, err)
}

// BridgeConfig assembles bridgev2's configuration from the matrix section and the shared
// database and logging sections.
func (c *Config) BridgeConfig() *bridgeconfig.Config {
	mx := &c.Matrix
	return &bridgeconfig.Config{
		Bridge:       mx.Bridge,
		Database:     c.Database,
		Homeserver:   mx.Homeserver,
		AppService:   mx.AppService,
		Matrix:       mx.Matrix,
		Provisioning: mx.Provisioning,
		Backfill:     mx.Backfill,
		DoublePuppet: mx.DoublePuppet,
		Encryption:   mx.Encryption,
		Logging:      c.Logging,
	}
}

// MSNClientConfig is the template of every account's MSN client.
func (c *Config) MSNClientConfig() msn.Config {
	m := &c.MSN
	return msn.Config{
		Server:             m.Server,
		NexusURL:           m.NexusURL,
		LoginURL:           m.LoginURL,
		CAFile:             m.CAFile,
		InsecureSkipVerify: m.InsecureSkipVerify,
		Protocols:          m.Protocols,
		ClientVersion:      m.ClientVersion,
		DialTimeout:        m.DialTimeout,
		RequestTimeout:     m.RequestTimeout,
		JoinTimeout:        m.JoinTimeout,
		AckTimeout:         m.AckTimeout,
	}
}
