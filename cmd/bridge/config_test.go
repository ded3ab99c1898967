package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"
	"maunium.net/go/mautrix/bridgev2/bridgeconfig"

	msnbridge "github.com/msn-bridge/msn-bridge"
	"github.com/msn-bridge/msn-bridge/internal/sqlitedb"
)

// validConfigYAML is a complete non-demo config: a real MSN server, tokens generated.
const validConfigYAML = `msn:
    server: 127.0.0.1:1863
    login_url: https://127.0.0.1:1443/login2.srf
    credentials:
        key_file: KEYFILE
matrix:
    homeserver:
        address: http://127.0.0.1:8008
        domain: localhost
    appservice:
        as_token: as-token-for-tests
        hs_token: hs-token-for-tests
    bridge:
        permissions:
            localhost: user
`

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// loadValid loads validConfigYAML with its key file in a temp dir.
func loadValid(t *testing.T) *Config {
	t.Helper()
	dir := t.TempDir()
	path := writeFile(t, "config.yaml", strings.ReplaceAll(validConfigYAML, "KEYFILE", filepath.Join(dir, "key")))
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	return cfg
}

func TestExampleConfigDecodesStrictly(t *testing.T) {
	var cfg Config
	if err := decodeStrict(msnbridge.ExampleConfig, &cfg); err != nil {
		t.Fatalf("the example config does not decode strictly: %v", err)
	}
	// Without a file: the defaults, which run the demo and validate.
	cfg2, err := LoadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if !cfg2.Demo() {
		t.Error("the example config should run the demo (msn.server empty)")
	}
	if err := cfg2.Validate(); err != nil {
		t.Errorf("the example config does not validate for the demo: %v", err)
	}
	if cfg2.MSN.Core.LoginRate <= 0 || cfg2.MSN.DialTimeout <= 0 || !cfg2.Matrix.Enabled || cfg2.Discord.Enabled {
		t.Errorf("unexpected defaults: %+v", cfg2.MSN)
	}
}

func TestValidConfig(t *testing.T) {
	cfg := loadValid(t)
	if err := cfg.Validate(); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	if cfg.Demo() {
		t.Error("a config with msn.server is not the demo")
	}
	// Defaults the file left out are kept.
	if cfg.MSN.RequestTimeout != 30*time.Second || cfg.Matrix.AppService.ID != "msn" {
		t.Errorf("defaults lost: request_timeout %s, id %q", cfg.MSN.RequestTimeout, cfg.Matrix.AppService.ID)
	}
}

// database.type sqlite opens the SQLite driver that keeps prepared statements, with as many
// idle connections as open ones; the DSN and postgres are passed on as written.
func TestDatabaseConfigDriver(t *testing.T) {
	cfg := loadValid(t)
	if cfg.Database.Type != "sqlite" || !strings.Contains(cfg.Database.URI, "synchronous(NORMAL)") {
		t.Fatalf("example database section: type %q, uri %q", cfg.Database.Type, cfg.Database.URI)
	}
	cfg.Database.ReadOnlyPool.Type = "sqlite"
	got := cfg.DatabaseConfig()
	if got.Type != sqlitedb.Driver || got.ReadOnlyPool.Type != sqlitedb.Driver || got.URI != cfg.Database.URI {
		t.Errorf("DatabaseConfig() = type %q, read-only type %q, uri %q", got.Type, got.ReadOnlyPool.Type, got.URI)
	}
	if cfg.BridgeConfig().Database.Type != sqlitedb.Driver {
		t.Errorf("bridgev2's database type %q, want %q", cfg.BridgeConfig().Database.Type, sqlitedb.Driver)
	}
	// SQLite keeps every connection it opens: a closed one loses its schema and statements.
	cfg.Database.MaxOpenConns, cfg.Database.MaxIdleConns = 8, 2
	if got = cfg.DatabaseConfig(); got.MaxOpenConns != 8 || got.MaxIdleConns != 8 {
		t.Errorf("sqlite pool: %d open, %d idle; want 8 and 8", got.MaxOpenConns, got.MaxIdleConns)
	}
	cfg.Database.Type, cfg.Database.ReadOnlyPool.Type = "postgres", ""
	if got = cfg.DatabaseConfig(); got.Type != "postgres" || got.ReadOnlyPool.Type != "" || got.MaxIdleConns != 2 {
		t.Errorf("postgres changed to type %q, read-only type %q, %d idle", got.Type, got.ReadOnlyPool.Type, got.MaxIdleConns)
	}
}

// The permissions a user writes replace the example's instead of merging with its "*" and
// "@admin:example.com" entries.
func TestPermissionsReplaceExample(t *testing.T) {
	perms := loadValid(t).Matrix.Bridge.Permissions
	if len(perms) != 1 || perms["localhost"] == nil {
		t.Fatalf("permissions %v, want only localhost", perms)
	}
	if got := perms.Get("@admin:example.com"); got.Admin {
		t.Error("the example's admin entry survived the user's permissions")
	}
}

// TestLoadConfigErrors covers mistakes found while decoding: each names the line and the key.
func TestLoadConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"unknown key", "msn:\n    server: a:1\n    sever: b:1\n", []string{"line 3", "msn.sever: unknown key"}},
		{"unknown section", "matrx:\n    enabled: true\n", []string{"line 1", "matrx: unknown key"}},
		{"unknown nested key", "matrix:\n    appservice:\n        prot: 1\n", []string{"line 3", "matrix.appservice.prot: unknown key"}},
		{"wrong type", "msn:\n    login_rate: fast\n", []string{"line 2", "msn.login_rate", "fast"}},
		{"wrong type bool", "matrix:\n    enabled: maybe\n", []string{"line 2", "matrix.enabled"}},
		{"bad duration", "msn:\n    dial_timeout: 5 parsecs\n", []string{"line 2", "msn.dial_timeout", "5 parsecs"}},
		{"bad nested duration", "msn:\n    reconnect:\n        initial: soon\n", []string{"line 3", "msn.reconnect.initial"}},
		{"list for a string", "msn:\n    server: [a, b]\n", []string{"line 2", "msn.server"}},
		{"two mistakes", "msn:\n    dial_timeout: x\nmetrics:\n    lisen: a\n", []string{"line 2", "msn.dial_timeout", "line 4", "metrics.lisen: unknown key"}},
		{"syntax error", "msn:\n  server: a\n bad\n", []string{"line"}},
		{"top level list", "- a\n- b\n", []string{"cannot unmarshal"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, "config.yaml", tt.yaml)
			_, err := LoadConfig(path)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

// TestValidateErrors covers values that decode but cannot work: each error names its key.
func TestValidateErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	huge := strings.Repeat("x", 200_000)
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   string
	}{
		{"server without port", func(c *Config) { c.MSN.Server = "messenger.example.org" }, "msn.server: must be host:port"},
		{"server with bad port", func(c *Config) { c.MSN.Server = "h:99999" }, "msn.server"},
		{"no passport url", func(c *Config) { c.MSN.LoginURL, c.MSN.NexusURL = "", "" }, "msn.login_url: one of"},
		{"bad login url scheme", func(c *Config) { c.MSN.LoginURL = "ftp://h/login" }, "msn.login_url: must be an http(s) URL"},
		{"bad nexus url scheme", func(c *Config) { c.MSN.NexusURL = "javascript:alert(1)" }, "msn.nexus_url: must be an http(s) URL"},
		{"url without host", func(c *Config) { c.MSN.LoginURL = "https://" }, "msn.login_url"},
		{"max_contacts 0", func(c *Config) { c.MSN.MaxContacts = 0 }, "msn.max_contacts: must be between 1 and 100000, got 0"},
		{"max_contacts huge", func(c *Config) { c.MSN.MaxContacts = 1 << 30 }, "msn.max_contacts: must be between 1 and 100000"},
		{"plain http login url", func(c *Config) { c.MSN.LoginURL = "http://h/login2.srf" }, "msn.login_url: must be https"},
		{"plain http nexus url", func(c *Config) { c.MSN.NexusURL = "HTTP://h/rdr/pprdr.asp" }, "msn.nexus_url: must be https"},
		{"missing ca_file", func(c *Config) { c.MSN.CAFile = filepath.Join(dir, "nope.pem") }, "msn.ca_file: cannot be read"},
		{"ca_file is a directory", func(c *Config) { c.MSN.CAFile = dir }, "msn.ca_file"},
		{"ca_file not PEM", func(c *Config) { c.MSN.CAFile = notPEM }, "msn.ca_file: " + quote(notPEM) + " holds no PEM"},
		{"ca_file traversal", func(c *Config) { c.MSN.CAFile = "../../../../../../../../etc/hostname" }, "msn.ca_file"},
		{"ca_file NUL", func(c *Config) { c.MSN.CAFile = "ca\x00.pem" }, "msn.ca_file: cannot be read"},
		{"bad credentials key", func(c *Config) { c.MSN.Credentials.Key = "not base64!" }, "msn.credentials.key:"},
		{"short credentials key", func(c *Config) { c.MSN.Credentials.Key = "AAAA" }, "msn.credentials.key:"},
		{"no credentials key", func(c *Config) { c.MSN.Credentials.KeyFile = "" }, "msn.credentials.key_file"},
		{"unsupported protocol", func(c *Config) { c.MSN.Protocols = []string{"MSNP18"} }, `msn.protocols: only MSNP11 and MSNP10 are supported, got "MSNP18"`},
		{"no protocol", func(c *Config) { c.MSN.Protocols = nil }, "msn.protocols: must list"},
		{"negative dial timeout", func(c *Config) { c.MSN.DialTimeout = -time.Second }, "msn.dial_timeout: must not be negative"},
		{"negative request timeout", func(c *Config) { c.MSN.RequestTimeout = -1 }, "msn.request_timeout: must not be negative"},
		{"negative join timeout", func(c *Config) { c.MSN.JoinTimeout = -1 }, "msn.join_timeout"},
		{"negative ack timeout", func(c *Config) { c.MSN.AckTimeout = -1 }, "msn.ack_timeout"},
		{"negative stable_after", func(c *Config) { c.MSN.Core.StableAfter = -1 }, "msn.stable_after"},
		{"login_rate 0", func(c *Config) { c.MSN.Core.LoginRate = 0 }, "msn.login_rate: must be above 0"},
		{"login_burst 0", func(c *Config) { c.MSN.Core.LoginBurst = 0 }, "msn.login_burst: must be at least 1"},
		{"user_login_interval 0", func(c *Config) { c.MSN.Core.UserLoginInterval = 0 }, "msn.user_login_interval: must be above 0"},
		{"user_login_burst 0", func(c *Config) { c.MSN.Core.UserLoginBurst = 0 }, "msn.user_login_burst: must be at least 1"},
		{"reconnect max below initial", func(c *Config) { c.MSN.Core.Reconnect.Initial, c.MSN.Core.Reconnect.Max = time.Minute, time.Second }, "msn.reconnect.max: must not be below"},
		{"tiny queue", func(c *Config) { c.MSN.Core.FrontendQueueSize = 1 }, "msn.frontend_queue_size"},
		{"send rate 0", func(c *Config) { c.MSN.Core.SendLimit.Rate = 0 }, "msn.send_limit.rate: must be above 0"},
		{"send burst 0", func(c *Config) { c.MSN.Core.SendLimit.Burst = 0 }, "msn.send_limit.burst: must be at least 1"},
		{"send queue 0", func(c *Config) { c.MSN.Core.SendLimit.QueueSize = 0 }, "msn.send_limit.queue_size: must be at least 1"},
		{"nudge cost negative", func(c *Config) { c.MSN.Core.SendLimit.NudgeCost = -1 }, "msn.send_limit.nudge_cost: must be at least 1"},
		{"file size 0", func(c *Config) { c.MSN.Core.Media.MaxFileSize = 0 }, "msn.media.max_file_size: must be between 1 and"},
		{"file size huge", func(c *Config) { c.MSN.Core.Media.MaxFileSize = 1 << 40 }, "msn.media.max_file_size"},
		{"object size tiny", func(c *Config) { c.MSN.Core.Media.MaxObjectSize = 10 }, "msn.media.max_object_size: must be between 1024"},
		{"cache tiny", func(c *Config) { c.MSN.Core.Media.CacheSize = 100 }, "msn.media.cache_size: must be at least"},
		{"avatar fetches 0", func(c *Config) { c.MSN.Core.Media.AvatarFetches = 0 }, "msn.media.avatar_fetches: must be between 1 and 1000"},
		{"transfers 0", func(c *Config) { c.MSN.Core.Media.MaxTransfersPerAccount = 0 }, "msn.media.max_transfers_per_account"},
		{"emoticon wait long", func(c *Config) { c.MSN.Core.Media.EmoticonWait = time.Minute }, "msn.media.emoticon_wait: must be at most 30s"},
		{"avatar interval 0", func(c *Config) { c.MSN.Core.Media.AvatarInterval = 0 }, "msn.media.avatar_interval: must be above 0"},
		{"no frontend", func(c *Config) { c.Matrix.Enabled, c.Discord.Enabled = false, false }, "matrix.enabled: enable at least one"},
		{"homeserver address", func(c *Config) { c.Matrix.Homeserver.Address = "127.0.0.1:8008" }, "matrix.homeserver.address: must be an http(s) URL"},
		{"homeserver domain empty", func(c *Config) { c.Matrix.Homeserver.Domain = "" }, "matrix.homeserver.domain"},
		{"homeserver domain example", func(c *Config) { c.Matrix.Homeserver.Domain = "example.com" }, "matrix.homeserver.domain"},
		{"homeserver domain url", func(c *Config) { c.Matrix.Homeserver.Domain = "https://matrix.org/" }, "matrix.homeserver.domain: must be a server name"},
		{"homeserver software", func(c *Config) { c.Matrix.Homeserver.Software = "synapse-ng" }, `matrix.homeserver.software: unknown value "synapse-ng"`},
		{"as_token placeholder", func(c *Config) { c.Matrix.AppService.ASToken = tokenPlaceholder }, "matrix.appservice.as_token: not set: generate the registration with -g"},
		{"hs_token empty", func(c *Config) { c.Matrix.AppService.HSToken = "" }, "matrix.appservice.hs_token: not set"},
		{"appservice port", func(c *Config) { c.Matrix.AppService.Port = 0 }, "matrix.appservice.port"},
		{"username template", func(c *Config) { c.Matrix.AppService.UsernameTemplate = "msn_" }, "matrix.appservice.username_template"},
		{"permissions unset", func(c *Config) {
			c.Matrix.Bridge.Permissions = bridgeconfig.PermissionConfig{"*": &bridgeconfig.PermissionLevelRelay}
		}, "matrix.bridge.permissions"},
		{"provisioning secret short", func(c *Config) { c.Matrix.Provisioning.SharedSecret = "short" }, "matrix.provisioning.shared_secret: must be at least 16 characters"},
		{"direct media", func(c *Config) { c.Matrix.DirectMedia.Enabled = true }, "matrix.direct_media.enabled: the MSN connector cannot serve media"},
		{"public media without address", func(c *Config) { c.Matrix.PublicMedia.Enabled = true }, "matrix.appservice.public_address: public media needs"},
		{"public media hash", func(c *Config) {
			c.Matrix.PublicMedia.Enabled, c.Matrix.AppService.PublicAddress = true, "https://msn.example.org"
			c.Matrix.PublicMedia.HashLength = 33
		}, "matrix.public_media.hash_length"},
		{"encryption pickle key empty", func(c *Config) { c.Matrix.Encryption.Allow, c.Matrix.Encryption.PickleKey = true, "" }, "matrix.encryption.pickle_key: must be a key"},
		{"encryption pickle key literal", func(c *Config) { c.Matrix.Encryption.Allow, c.Matrix.Encryption.PickleKey = true, "generate" }, "matrix.encryption.pickle_key: must be a key"},
		{"encryption pickle key unsaved", func(c *Config) { c.Matrix.Encryption.Allow, c.pickleKeyUnsaved = true, true }, "matrix.encryption.pickle_key: is \"generate\", but -n"},
		{"encryption default without allow", func(c *Config) { c.Matrix.Encryption.Default = true }, "matrix.encryption.allow: must be true when default or require is"},
		{"encryption require without allow", func(c *Config) { c.Matrix.Encryption.Require = true }, "matrix.encryption.allow: must be true"},
		{"connector option", func(c *Config) { c.Matrix.Connector.LoginTimeout = -1 }, "matrix.login_timeout: must not be negative"},
		{"connector presence", func(c *Config) { c.Matrix.Connector.Presence.RefreshInterval = time.Second }, "matrix.presence.refresh_interval"},
		{"connector message size", func(c *Config) { c.Matrix.Connector.MaxMessageSize = 100 }, "matrix.max_message_size: must be between 1024 and 32768"},
		{"database sqlite3", func(c *Config) { c.Database.Type = "sqlite3" }, `database.type: use sqlite (the pure-Go driver), got "sqlite3"`},
		{"database mysql", func(c *Config) { c.Database.Type = "mysql" }, `database.type: must be sqlite or postgres, got "mysql"`},
		{"database uri empty", func(c *Config) { c.Database.URI = "" }, "database.uri: must not be empty"},
		{"database conns", func(c *Config) { c.Database.MaxOpenConns = 0 }, "database.max_open_conns"},
		{"metrics listen", func(c *Config) { c.Metrics.Listen = "localhost" }, "metrics.listen: must be host:port"},
		{"metrics port", func(c *Config) { c.Metrics.Listen = "127.0.0.1:70000" }, "metrics.listen"},
		{"logging writer", func(c *Config) {
			if err := yaml.Unmarshal([]byte("writers: [{type: carrier-pigeon}]"), &c.Logging); err != nil {
				t.Fatal(err)
			}
		}, "logging:"},
		{"discord without token", func(c *Config) { c.Discord.Enabled, c.Discord.GuildID = true, "123456789012345678" }, "discord.token: must be set"},
		{"discord without guild", func(c *Config) { c.Discord.Enabled, c.Discord.Token = true, "abc.def.ghi" }, "discord.guild_id: must be a numeric"},
		{"discord without both", func(c *Config) { c.Discord.Enabled = true }, "discord.guild_id"},
		{"memory limit unit", func(c *Config) { c.MemoryLimit = "1GB" }, `memory_limit: must be a size such as 900MiB`},
		{"memory limit number", func(c *Config) { c.MemoryLimit = "MiB" }, `memory_limit: must be a size`},
		{"memory limit negative", func(c *Config) { c.MemoryLimit = "-5MiB" }, `memory_limit: must be a size`},
		{"memory limit tiny", func(c *Config) { c.MemoryLimit = "10MiB" }, `memory_limit: must be at least 64MiB`},
		{"memory limit huge", func(c *Config) { c.MemoryLimit = "99999999999TiB" }, `memory_limit: "99999999999TiB" is too large`},
		{"memory limit spaces", func(c *Config) { c.MemoryLimit = "900 MiB" }, `memory_limit: must be a size`},
		{"huge server", func(c *Config) { c.MSN.Server = huge }, "msn.server: must be host:port"},
		{"NUL server", func(c *Config) { c.MSN.Server = "a\x00b:1863" }, "msn.server"},
		{"NUL domain", func(c *Config) { c.Matrix.Homeserver.Domain = "local\x00host" }, "matrix.homeserver.domain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := loadValid(t)
			tt.mutate(cfg)
			err := cfg.Validate()
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			// Every line names a key, no line repeats a huge value.
			for _, line := range strings.Split(err.Error(), "\n") {
				key, _, ok := strings.Cut(line, ": ")
				if !ok || strings.ContainsAny(key, " ") {
					t.Errorf("error line %q does not start with a key", line)
				}
				if len(line) > 400 {
					t.Errorf("error line is %d bytes long", len(line))
				}
			}
		})
	}
}

// Several problems are reported at once, each its own ConfigError.
func TestValidateReportsAll(t *testing.T) {
	cfg := loadValid(t)
	cfg.MSN.Core.LoginRate = 0
	cfg.MSN.Core.LoginBurst = 0
	cfg.Database.URI = ""
	cfg.Discord.Enabled = true
	err := cfg.Validate()
	var keys []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ce *ConfigError
		if errors.As(e, &ce) {
			keys = append(keys, ce.Key)
		}
	}
	if got := strings.Join(keys, ","); got != "msn.login_rate,msn.login_burst,database.uri" {
		t.Errorf("ConfigError keys %s", got)
	}
	if !strings.Contains(err.Error(), "discord.token") || !strings.Contains(err.Error(), "discord.guild_id") {
		t.Errorf("the discord section's errors are not each prefixed: %v", err)
	}
	// The order is stable.
	if again := cfg.Validate(); again.Error() != err.Error() {
		t.Errorf("error order changes between runs:\n%v\n%v", err, again)
	}
}

// TestLoadConfigHostile feeds inputs meant to exhaust memory or time: LoadConfig must answer
// with an error, within a bound.
func TestLoadConfigHostile(t *testing.T) {
	var bomb strings.Builder
	bomb.WriteString("a: &a [x, x, x, x, x, x, x, x, x, x]\n")
	prev := "a"
	for i := range 12 {
		name := string(rune('b' + i))
		bomb.WriteString(name + ": &" + name + " [")
		for j := range 10 {
			if j > 0 {
				bomb.WriteString(", ")
			}
			bomb.WriteString("*" + prev)
		}
		bomb.WriteString("]\n")
		prev = name
	}
	var nested strings.Builder
	for range 10_000 {
		nested.WriteString("[")
	}
	tests := []struct {
		name    string
		content string
		want    string
	}{
		{"alias bomb at top level", bomb.String(), "config"},
		{"alias bomb in a map", "matrix:\n    double_puppet:\n        secrets:\n" + indentLines(bomb.String(), 12), "config"},
		{"alias bomb in a list", "msn:\n    protocols: &p [MSNP11, MSNP11]\n    client_version: *p\n", "cannot unmarshal !!seq into string"},
		{"file over the size cap", "# " + strings.Repeat("x", maxConfigSize) + "\n", "larger than"},
		{"deep nesting", nested.String(), "config"},
		{"NUL bytes", "msn:\n    server: \"a\x00b\"\n", "config"},
		{"escaped NUL", "msn:\n    server: \"a\\0b:1863\"\n    login_url: http://h/\n", ""},
		{"long key", strings.Repeat("k", 100_000) + ": 1\n", "config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, "config.yaml", tt.content)
			done := make(chan error, 1)
			go func() {
				_, err := LoadConfig(path)
				done <- err
			}()
			select {
			case err := <-done:
				if tt.want == "" {
					return
				}
				if err == nil {
					t.Fatal("no error")
				}
				if !strings.Contains(err.Error(), tt.want) {
					t.Errorf("error %.300q does not contain %q", err, tt.want)
				}
			case <-time.After(time.Minute):
				t.Fatal("LoadConfig did not return within a minute")
			}
		})
	}
	t.Run("device file", func(t *testing.T) {
		if _, err := os.Stat("/dev/zero"); err != nil {
			t.Skip("no /dev/zero")
		}
		if _, err := LoadConfig("/dev/zero"); err == nil || !strings.Contains(err.Error(), "larger than") {
			t.Errorf("LoadConfig(/dev/zero) = %v", err)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		if _, err := LoadConfig(filepath.Join(t.TempDir(), "nope.yaml")); err == nil || !strings.Contains(err.Error(), "failed to read config") {
			t.Errorf("LoadConfig(missing) = %v", err)
		}
	})
}

func indentLines(s string, n int) string {
	pad := strings.Repeat(" ", n)
	var b bytes.Buffer
	for _, line := range strings.SplitAfter(s, "\n") {
		if line != "" {
			b.WriteString(pad + line)
		}
	}
	return b.String()
}

func TestParseMemoryLimit(t *testing.T) {
	for in, want := range map[string]int64{"": 0, "900MiB": 900 << 20, "2GiB": 2 << 30, "1TiB": 1 << 40, "67108864": 64 << 20, "65536KiB": 64 << 20, "67108864B": 64 << 20} {
		if got, err := parseMemoryLimit(in); err != nil || got != want {
			t.Errorf("parseMemoryLimit(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}

func TestApplyMemoryLimit(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	applyMemoryLimit("900MiB", "", zerolog.Nop())
	if got := debug.SetMemoryLimit(-1); got != 900<<20 {
		t.Fatalf("memory limit %d, want 900 MiB", got)
	}
	debug.SetMemoryLimit(old)
	applyMemoryLimit("900MiB", "2GiB", zerolog.Nop()) // GOMEMLIMIT set: the runtime's own wins
	if got := debug.SetMemoryLimit(-1); got != old {
		t.Fatalf("memory_limit overrode GOMEMLIMIT: %d", got)
	}
	applyMemoryLimit("", "", zerolog.Nop())
	if got := debug.SetMemoryLimit(-1); got != old {
		t.Fatalf("an empty memory_limit changed the limit: %d", got)
	}
}

// Plain http Passport URLs are accepted only with msn.allow_insecure_passport, which (as
// msn.insecure_skip_verify) is then a warning at every start, naming its key.
func TestInsecurePassportOptIn(t *testing.T) {
	cfg := loadValid(t)
	cfg.MSN.LoginURL, cfg.MSN.NexusURL = "http://127.0.0.1:1080/login2.srf", "http://127.0.0.1:1080/rdr/pprdr.asp"
	cfg.MSN.AllowInsecurePassport = true
	if err := cfg.Validate(); err != nil {
		t.Fatalf("plain http with the opt-in: %v", err)
	}
	if !cfg.MSNClientConfig().AllowInsecurePassport {
		t.Error("the opt-in does not reach the MSN client config")
	}
	if got := cfg.MSNClientConfig().MaxContacts; got != 1000 {
		t.Errorf("max_contacts %d reaches the MSN client config, want the default 1000", got)
	}
	var logs bytes.Buffer
	warnInsecurePassport(&cfg.MSN, zerolog.New(&logs))
	cfg.MSN.InsecureSkipVerify = true
	warnInsecurePassport(&cfg.MSN, zerolog.New(&logs))
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d warnings, want 3:\n%s", len(lines), logs.String())
	}
	for i, key := range []string{"msn.allow_insecure_passport", "msn.insecure_skip_verify", "msn.allow_insecure_passport"} {
		if !strings.Contains(lines[i], `"level":"warn"`) || !strings.Contains(lines[i], `"key":"`+key+`"`) {
			t.Errorf("warning %d = %s, want a warning naming %s", i, lines[i], key)
		}
	}
	logs.Reset()
	warnInsecurePassport(&loadValid(t).MSN, zerolog.New(&logs))
	if logs.Len() != 0 {
		t.Errorf("a safe config warns: %s", logs.String())
	}
}
