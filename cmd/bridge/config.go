package main

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"go.mau.fi/util/dbutil"
	"go.mau.fi/zeroconfig"
	"gopkg.in/yaml.v3"
	"maunium.net/go/mautrix/bridgev2/bridgeconfig"

	msnbridge "github.com/msn-bridge/msn-bridge"
	"github.com/msn-bridge/msn-bridge/bridge"
	"github.com/msn-bridge/msn-bridge/discord"
	"github.com/msn-bridge/msn-bridge/internal/sqlitedb"
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
	// MemoryLimit is the Go runtime's soft memory limit, in GOMEMLIMIT's syntax ("" for none).
	MemoryLimit string `yaml:"memory_limit"`
	// EnvConfigPrefix names the environment variables that override keys ("" for none).
	EnvConfigPrefix string `yaml:"env_config_prefix"`

	demo bool // run the demo network: no config file, or --demo
	// pickleKeyUnsaved is set when matrix.encryption.pickle_key was generated but not written
	// back (-n): it would differ at the next start.
	pickleKeyUnsaved bool
}

// minMemoryLimit is the smallest memory_limit accepted: below it the garbage collector would
// run all the time for the bridge's own baseline.
const minMemoryLimit = 64 << 20

// parseMemoryLimit parses a size in GOMEMLIMIT's syntax: a whole number of bytes with an
// optional unit B, KiB, MiB, GiB or TiB. "" is 0 (no limit).
func parseMemoryLimit(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	num, unit := s, ""
	if i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		num, unit = s[:i], s[i:]
	}
	shift := map[string]uint{"": 0, "B": 0, "KiB": 10, "MiB": 20, "GiB": 30, "TiB": 40}
	sh, ok := shift[unit]
	if !ok || num == "" {
		return 0, fmt.Errorf("must be a size such as 900MiB or 2GiB (units B, KiB, MiB, GiB, TiB), got %s", quote(s))
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > (1<<62)>>sh {
		return 0, fmt.Errorf("%s is too large", quote(s))
	}
	if n<<sh < minMemoryLimit {
		return 0, fmt.Errorf("must be at least 64MiB, got %s", quote(s))
	}
	return n << sh, nil
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

	// AllowInsecurePassport allows plain http:// Passport URLs (the password in clear).
	AllowInsecurePassport bool `yaml:"allow_insecure_passport"`
	// MaxContacts bounds each account's contacts, on all lists together.
	MaxContacts int `yaml:"max_contacts"`

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
	PublicMedia  bridgeconfig.PublicMediaConfig  `yaml:"public_media"`
	DirectMedia  bridgeconfig.DirectMediaConfig  `yaml:"direct_media"`
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

// maxMaxContacts is the largest msn.max_contacts accepted: far above any real list, low
// enough that one account cannot hold the bridge's memory.
const maxMaxContacts = 100_000

// maxMaxFileSize and maxMaxObjectSize are the largest msn.media sizes accepted: MSN clients
// of the time sent files of a few hundred MiB at most, and pictures of some KiB.
const (
	maxMaxFileSize   = 4 << 30
	maxMaxObjectSize = 16 << 20
)

// maxConfigSize bounds how much of a config file is read: a real config is a few dozen KiB,
// and a path such as /dev/zero must not make the bridge read forever.
const maxConfigSize = 1 << 20

// LoadConfig reads the embedded defaults and then path over them, upgraded in memory (see
// loadConfig) but not written back. An empty path gives the defaults alone.
func LoadConfig(path string) (*Config, error) {
	return loadConfig(path, false, os.Environ())
}

// loadConfig reads the embedded defaults and then path over them. An empty path gives the
// defaults alone. Unknown keys and values of the wrong type are errors naming the line and the
// key (keys that an older version had, listed in movedKeys, are accepted). The file is then
// upgraded to the example's layout as mautrix bridges do (renamed keys carried over, "generate"
// secrets replaced with random ones) and, with save, written back when that changed it. Last,
// the environment overrides named by env_config_prefix are applied in memory. A file larger
// than maxConfigSize is refused; YAML alias expansion is bounded by yaml.v3.
func loadConfig(path string, save bool, environ []string) (*Config, error) {
	cfg := &Config{}
	if err := decodeStrict(msnbridge.ExampleConfig, cfg); err != nil {
		return nil, fmt.Errorf("embedded default config is invalid: %w", err)
	}
	data := msnbridge.ExampleConfig
	if path != "" {
		var err error
		if data, err = readConfigFile(path); err != nil {
			return nil, err
		}
		if err = checkStrict(data); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	upgraded, err := upgradeConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if save && path != "" && !bytes.Equal(upgraded, data) {
		if err := writeConfigFile(path, upgraded); err != nil {
			return nil, fmt.Errorf("%w (run with -n to upgrade it in memory only)", err)
		}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(upgraded, &doc); err != nil {
		return nil, fmt.Errorf("%s: failed to read upgraded config: %w", path, err)
	}
	generatedPickleKey := ""
	if !save && path != "" && isGenerate(data, "matrix", "encryption", "pickle_key") {
		generatedPickleKey = scalarAt(&doc, "matrix", "encryption", "pickle_key")
	}
	if prefix := lookupNode(&doc, "env_config_prefix"); prefix != nil && prefix.Kind == yaml.ScalarNode && prefix.Tag != "!!null" {
		if err := applyEnv(&doc, prefix.Value, environ, os.ReadFile); err != nil {
			return nil, err
		}
	}
	// Maps decode over the defaults key by key; the permissions a user writes replace the
	// example's instead of being merged with its "*" and example.com entries.
	cfg.Matrix.Bridge.Permissions = nil
	if err := doc.Decode(cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", path, annotateKeys(err, &doc))
	}
	cfg.demo = path == ""
	cfg.pickleKeyUnsaved = generatedPickleKey != "" && cfg.Matrix.Encryption.PickleKey == generatedPickleKey
	return cfg, nil
}

// isGenerate reports whether the YAML document data lacks the key at path or has it empty or
// "generate": a secret the config upgrade generates.
func isGenerate(data []byte, path ...string) bool {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil {
		return false
	}
	n := lookupNode(&doc, path...)
	return n == nil || n.Kind == yaml.ScalarNode && (n.Value == "" || n.Value == "generate")
}

// scalarAt returns the single value at path in a parsed document, or "".
func scalarAt(doc *yaml.Node, path ...string) string {
	if n := lookupNode(doc, path...); n != nil && n.Kind == yaml.ScalarNode {
		return n.Value
	}
	return ""
}

// checkStrict decodes a user's file strictly into a scratch Config, so that unknown keys and
// values of the wrong type are reported with their line before the upgrade, which would drop
// or replace them. Keys that an older version had (movedKeys) are accepted.
func checkStrict(data []byte) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return err
	}
	err := decodeStrict(data, &Config{})
	var typeErr *yaml.TypeError
	if errors.As(err, &typeErr) {
		lines := keyLines(&doc)
		kept := typeErr.Errors[:0]
		for _, e := range typeErr.Errors {
			var line int
			if n, _ := fmt.Sscanf(e, "line %d:", &line); n == 1 && isMovedKey(lines[line]) {
				continue
			}
			kept = append(kept, e)
		}
		if len(kept) == 0 {
			return nil
		}
		typeErr.Errors = kept
	}
	return annotateKeys(err, &doc)
}

// isMovedKey reports whether a dotted key is one that an older version had.
func isMovedKey(key string) bool {
	for _, m := range movedKeys {
		if key == strings.Join(m.From, ".") {
			return true
		}
	}
	return false
}

// readConfigFile reads at most maxConfigSize bytes of path.
func readConfigFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("failed to read config: %w", err)
	}
	if len(data) > maxConfigSize {
		return nil, fmt.Errorf("failed to read config: %s is larger than %d bytes", path, maxConfigSize)
	}
	return data, nil
}

func decodeStrict(data []byte, out any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(out); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// lookupNode returns the value node at the given keys of a parsed document, or nil.
func lookupNode(n *yaml.Node, keys ...string) *yaml.Node {
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) != 1 {
			return nil
		}
		n = n.Content[0]
	}
	for _, key := range keys {
		if n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				next = n.Content[i+1]
			}
		}
		if next == nil {
			return nil
		}
		n = next
	}
	return n
}

// keyLines maps each line of a parsed document that holds a mapping key to that key's dotted
// path. Aliases are not followed, so a document full of them costs no more than its size.
func keyLines(doc *yaml.Node) map[int]string {
	lines := map[int]string{}
	set := func(line int, key string) {
		if _, ok := lines[line]; !ok && key != "" {
			lines[line] = key
		}
	}
	var walk func(n *yaml.Node, key string, depth int)
	walk = func(n *yaml.Node, key string, depth int) {
		if depth > 64 {
			return
		}
		switch n.Kind {
		case yaml.DocumentNode, yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c, key, depth+1)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				path := n.Content[i].Value
				if key != "" {
					path = key + "." + path
				}
				set(n.Content[i].Line, path)
				walk(n.Content[i+1], path, depth+1)
			}
		case yaml.ScalarNode:
			set(n.Line, key)
		}
	}
	walk(doc, "", 0)
	return lines
}

// annotateKeys rewrites yaml.v3's per-line decode errors ("line 12: field x not found in type
// main.MSNConfig", "line 3: cannot unmarshal !!str `x` into time.Duration") to name the key.
func annotateKeys(err error, doc *yaml.Node) error {
	var typeErr *yaml.TypeError
	if !errors.As(err, &typeErr) {
		return err
	}
	lines := keyLines(doc)
	msgs := make([]string, 0, len(typeErr.Errors))
	for _, e := range typeErr.Errors {
		var line int
		var rest string
		if n, _ := fmt.Sscanf(e, "line %d:", &line); n != 1 {
			msgs = append(msgs, e)
			continue
		}
		_, rest, _ = strings.Cut(e, ": ")
		key, ok := lines[line]
		switch {
		case !ok:
			msgs = append(msgs, e)
		case strings.HasPrefix(rest, "field ") && strings.Contains(rest, " not found in type "):
			msgs = append(msgs, fmt.Sprintf("line %d: %s: unknown key", line, key))
		default:
			msgs = append(msgs, fmt.Sprintf("line %d: %s: %s", line, key, rest))
		}
	}
	return fmt.Errorf("invalid config:\n  %s", strings.Join(msgs, "\n  "))
}

// ConfigError names the offending key.
type ConfigError struct {
	Key, Problem string
}

func (e *ConfigError) Error() string { return e.Key + ": " + e.Problem }

// Demo reports whether the bridge runs the built-in demo network: it was started without a config
// file, or with --demo. A config file without msn.server is an error, never the demo.
func (c *Config) Demo() bool { return c.demo }

// Validate checks every value the bridge would otherwise trip over later. It returns all the
// problems at once, each naming its key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &ConfigError{Key: key, Problem: fmt.Sprintf(format, args...)})
	}
	m := &c.MSN
	if m.Server == "" && !c.demo {
		bad("msn.server", "must be set to the MSN server's host:port (the demo runs without a config file, or with --demo)")
	}
	if m.Server != "" {
		if !validHostPort(m.Server) {
			bad("msn.server", "must be host:port, got %s", quote(m.Server))
		}
		if m.NexusURL == "" && m.LoginURL == "" {
			bad("msn.login_url", "one of msn.login_url and msn.nexus_url is required with a real server")
		}
	}
	for _, u := range []struct{ key, value string }{{"msn.nexus_url", m.NexusURL}, {"msn.login_url", m.LoginURL}} {
		if u.value != "" && !validHTTPURL(u.value) {
			bad(u.key, "must be an http(s) URL, got %s", quote(u.value))
		} else if strings.HasPrefix(strings.ToLower(u.value), "http:") && !m.AllowInsecurePassport {
			bad(u.key, "must be https: the password travels in this request (plain http only for a local test server, with msn.allow_insecure_passport), got %s", quote(u.value))
		}
	}
	if m.CAFile != "" {
		if err := checkCAFile(m.CAFile); err != nil {
			bad("msn.ca_file", "%v", err)
		}
	}
	for _, p := range m.Protocols {
		if p != "MSNP11" && p != "MSNP10" {
			bad("msn.protocols", "only MSNP11 and MSNP10 are supported, got %s", quote(p))
		}
	}
	if len(m.Protocols) == 0 {
		bad("msn.protocols", "must list at least one protocol")
	}
	for _, d := range []struct {
		key   string
		value time.Duration
	}{
		{"msn.dial_timeout", m.DialTimeout}, {"msn.request_timeout", m.RequestTimeout},
		{"msn.join_timeout", m.JoinTimeout}, {"msn.ack_timeout", m.AckTimeout},
		{"msn.presence_window", m.Core.PresenceWindow}, {"msn.reconnect.initial", m.Core.Reconnect.Initial},
		{"msn.reconnect.max", m.Core.Reconnect.Max}, {"msn.stable_after", m.Core.StableAfter},
		{"msn.link_code_ttl", m.Core.LinkCodeTTL},
	} {
		if d.value < 0 {
			bad(d.key, "must not be negative, got %s", d.value)
		}
	}
	if m.MaxContacts < 1 || m.MaxContacts > maxMaxContacts {
		bad("msn.max_contacts", "must be between 1 and %d, got %d", maxMaxContacts, m.MaxContacts)
	}
	if m.Core.LoginRate <= 0 {
		bad("msn.login_rate", "must be above 0, got %v", m.Core.LoginRate)
	}
	if m.Core.LoginBurst < 1 {
		bad("msn.login_burst", "must be at least 1, got %d", m.Core.LoginBurst)
	}
	if m.Core.UserLoginInterval <= 0 {
		bad("msn.user_login_interval", "must be above 0, got %s", m.Core.UserLoginInterval)
	}
	if m.Core.UserLoginBurst < 1 {
		bad("msn.user_login_burst", "must be at least 1, got %d", m.Core.UserLoginBurst)
	}
	if m.Core.Reconnect.Max < m.Core.Reconnect.Initial {
		bad("msn.reconnect.max", "must not be below msn.reconnect.initial")
	}
	if sl := m.Core.SendLimit; sl.Rate <= 0 || sl.Rate > 1000 {
		bad("msn.send_limit.rate", "must be above 0 and at most 1000 per second, got %v", sl.Rate)
	}
	for _, n := range []struct {
		key   string
		value int
	}{
		{"msn.send_limit.burst", m.Core.SendLimit.Burst}, {"msn.send_limit.queue_size", m.Core.SendLimit.QueueSize},
		{"msn.send_limit.nudge_cost", m.Core.SendLimit.NudgeCost},
	} {
		if n.value < 1 {
			bad(n.key, "must be at least 1, got %d", n.value)
		}
	}
	md := m.Core.Media
	if md.MaxFileSize < 1 || md.MaxFileSize > maxMaxFileSize {
		bad("msn.media.max_file_size", "must be between 1 and %d bytes, got %d", int64(maxMaxFileSize), md.MaxFileSize)
	}
	if md.MaxObjectSize < 1024 || md.MaxObjectSize > maxMaxObjectSize {
		bad("msn.media.max_object_size", "must be between 1024 and %d bytes, got %d", maxMaxObjectSize, md.MaxObjectSize)
	}
	if md.CacheSize < md.MaxObjectSize {
		bad("msn.media.cache_size", "must be at least msn.media.max_object_size, got %d", md.CacheSize)
	}
	for _, n := range []struct {
		key   string
		value int
	}{
		{"msn.media.avatar_fetches_per_account", md.AvatarFetchesPerAccount}, {"msn.media.avatar_fetches", md.AvatarFetches},
		{"msn.media.max_transfers", md.MaxTransfers}, {"msn.media.max_transfers_per_account", md.MaxTransfersPerAccount},
	} {
		if n.value < 1 || n.value > 1000 {
			bad(n.key, "must be between 1 and 1000, got %d", n.value)
		}
	}
	for _, d := range []struct {
		key   string
		value time.Duration
	}{
		{"msn.media.avatar_interval", md.AvatarInterval}, {"msn.media.avatar_retry", md.AvatarRetry},
		{"msn.media.fetch_timeout", md.FetchTimeout}, {"msn.media.emoticon_wait", md.EmoticonWait},
	} {
		if d.value <= 0 {
			bad(d.key, "must be above 0, got %s", d.value)
		}
	}
	if md.EmoticonWait > 30*time.Second {
		bad("msn.media.emoticon_wait", "must be at most 30s (messages wait for it), got %s", md.EmoticonWait)
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
		bad("database.type", "must be sqlite or postgres, got %s", quote(c.Database.Type))
	case dialect == dbutil.SQLite && c.Database.Type != "sqlite":
		bad("database.type", "use sqlite (the pure-Go driver), got %s", quote(c.Database.Type))
	}
	if c.Database.URI == "" {
		bad("database.uri", "must not be empty")
	}
	if c.Database.MaxOpenConns < 1 {
		bad("database.max_open_conns", "must be at least 1, got %d", c.Database.MaxOpenConns)
	}
	if c.Metrics.Enabled {
		if !validHostPort(c.Metrics.Listen) {
			bad("metrics.listen", "must be host:port, got %s", quote(c.Metrics.Listen))
		}
	}
	if _, err := c.Logging.Compile(); err != nil {
		bad("logging", "%v", err)
	}
	if _, err := parseMemoryLimit(c.MemoryLimit); err != nil {
		bad("memory_limit", "%v", err)
	}
	return errors.Join(errs...)
}

func (c *Config) validateMatrix(bad func(key, format string, args ...any)) {
	mx := &c.Matrix
	if !validHTTPURL(mx.Homeserver.Address) {
		bad("matrix.homeserver.address", "must be an http(s) URL, got %s", quote(mx.Homeserver.Address))
	}
	switch domain := mx.Homeserver.Domain; {
	case domain == "" || domain == "example.com" && !c.Demo():
		bad("matrix.homeserver.domain", "set it to your homeserver's server_name")
	case !validServerName(domain):
		bad("matrix.homeserver.domain", "must be a server name (host or host:port), got %s", quote(domain))
	}
	if !bridgeconfig.AllowedHomeserverSoftware[mx.Homeserver.Software] {
		bad("matrix.homeserver.software", "unknown value %s (use standard)", quote(string(mx.Homeserver.Software)))
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
	validateDoublePuppet(mx, bad)
	// bridgev2 silently serves no provisioning API with a shorter secret.
	if secret := mx.Provisioning.SharedSecret; secret != "disable" && len(secret) < 16 {
		bad("matrix.provisioning.shared_secret", "must be at least 16 characters, \"generate\" or \"disable\"")
	}
	if mx.DirectMedia.Enabled {
		bad("matrix.direct_media.enabled", "the MSN connector cannot serve media on demand (it is no DirectMediableNetwork): set it to false")
	}
	if mx.PublicMedia.Enabled {
		if addr := mx.AppService.PublicAddress; addr == "" || addr == "https://bridge.example.com" || !validHTTPURL(addr) {
			bad("matrix.appservice.public_address", "public media needs the bridge's public http(s) URL, got %s", quote(addr))
		}
		if n := mx.PublicMedia.HashLength; n < 0 || n > 32 {
			bad("matrix.public_media.hash_length", "must be between 0 and 32, got %d", n)
		}
	}
	switch enc := &mx.Encryption; {
	case enc.Allow && (enc.PickleKey == "" || enc.PickleKey == "generate"):
		// bridgev2 would panic on an empty key and use "generate" literally.
		bad("matrix.encryption.pickle_key", "must be a key, not empty or \"generate\" (set from the environment?)")
	case enc.Allow && c.pickleKeyUnsaved:
		// The stored encryption keys could not be read after the next start.
		bad("matrix.encryption.pickle_key", "is \"generate\", but -n keeps the generated key in memory only: run once without -n, or set a key of your own")
	case !enc.Allow && (enc.Default || enc.Require):
		bad("matrix.encryption.allow", "must be true when default or require is")
	}
}

// prefixed puts a section name in front of each of a frontend's own validation errors (the
// matrix connector's start with "matrix config: ", which the section name replaces).
func prefixed(section string, err error) error {
	var list []error
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		list = joined.Unwrap()
	} else {
		list = []error{err}
	}
	out := make([]error, 0, len(list))
	for _, e := range list {
		msg := strings.TrimPrefix(e.Error(), section+" config: ")
		out = append(out, &sectionError{msg: section + "." + msg, err: e})
	}
	return errors.Join(out...)
}

// sectionError is a frontend's validation error with the config section in front.
type sectionError struct {
	msg string
	err error
}

func (e *sectionError) Error() string { return e.msg }
func (e *sectionError) Unwrap() error { return e.err }

// maxQuoted bounds how much of a bad value an error message repeats.
const maxQuoted = 80

// quote returns v quoted for an error message, shortened when it is long.
func quote(v string) string {
	if r := []rune(v); len(r) > maxQuoted {
		return fmt.Sprintf("%q… (%d bytes)", string(r[:maxQuoted]), len(v))
	}
	return fmt.Sprintf("%q", v)
}

// validHostPort reports whether s is host:port with a numeric port in range (an empty host
// means all interfaces).
func validHostPort(s string) bool {
	host, port, err := net.SplitHostPort(s)
	if err != nil || strings.ContainsAny(host, " /\x00") {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n > 0 && n <= 65535
}

// validHTTPURL reports whether s is an absolute http or https URL with a host.
func validHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// validServerName reports whether s is a Matrix server name: a DNS name or IP literal,
// optionally with a port, without a scheme, path or user part.
func validServerName(s string) bool {
	host := s
	if h, p, err := net.SplitHostPort(s); err == nil {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return false
		}
		host = h
	}
	if host == "" || len(host) > 255 {
		return false
	}
	if net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")) != nil {
		return true
	}
	for _, r := range host {
		if r != '.' && r != '-' && (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// checkCAFile reports whether path is a readable file holding at least one PEM certificate.
func checkCAFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cannot be read: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	switch {
	case err != nil:
		return fmt.Errorf("cannot be read: %w", err)
	case len(data) > maxConfigSize:
		return fmt.Errorf("%s is larger than %d bytes", quote(path), maxConfigSize)
	case !x509.NewCertPool().AppendCertsFromPEM(data):
		return fmt.Errorf("%s holds no PEM certificate", quote(path))
	}
	return nil
}

// DatabaseConfig is the database section as dbutil opens it: type sqlite names the SQLite
// driver that keeps each connection's prepared statements (internal/sqlitedb), same DSNs.
//
// For SQLite, max_idle_conns is raised to max_open_conns: database/sql closes a connection
// released while max_idle_conns are idle already, and an SQLite connection closed loses its
// schema and its prepared statements, so the next one opened reads the schema and parses every
// statement again. With the old defaults (5 open, 2 idle) that was a tenth of the bridge's CPU
// in the scale benchmark, on the message path.
func (c *Config) DatabaseConfig() dbutil.Config {
	d := c.Database
	if d.Type == "sqlite" {
		d.Type = sqlitedb.Driver
		d.MaxIdleConns = max(d.MaxIdleConns, d.MaxOpenConns)
	}
	if d.ReadOnlyPool.Type == "sqlite" {
		d.ReadOnlyPool.Type = sqlitedb.Driver
	}
	return d
}

// BridgeConfig assembles bridgev2's configuration from the matrix section and the shared
// database and logging sections.
func (c *Config) BridgeConfig() *bridgeconfig.Config {
	mx := &c.Matrix
	return &bridgeconfig.Config{
		Bridge:       mx.Bridge,
		Database:     c.DatabaseConfig(),
		Homeserver:   mx.Homeserver,
		AppService:   mx.AppService,
		Matrix:       mx.Matrix,
		Provisioning: mx.Provisioning,
		PublicMedia:  mx.PublicMedia,
		DirectMedia:  mx.DirectMedia,
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

		AllowInsecurePassport: m.AllowInsecurePassport,
		MaxContacts:           m.MaxContacts,
	}
}
