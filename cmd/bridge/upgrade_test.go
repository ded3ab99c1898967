package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"
)

// previousConfig returns testdata/config-previous.yaml (the example of the previous release,
// set up for an installation) with its placeholders replaced by values.
func previousConfig(t *testing.T, values map[string]string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "config-previous.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for k, v := range values {
		s = strings.ReplaceAll(s, "@"+k+"@", v)
	}
	if m := regexp.MustCompile(`@[A-Z_]+@`).FindString(s); m != "" {
		t.Fatalf("placeholder %s left in the config", m)
	}
	return s
}

// leaves maps the dotted path of every single value (and empty map or list) of a parsed
// document to its value.
func leaves(t *testing.T, data []byte) map[string]string {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch {
		case n.Kind == yaml.DocumentNode:
			walk(n.Content[0], path)
		case n.Kind == yaml.MappingNode && len(n.Content) > 0:
			for i := 0; i+1 < len(n.Content); i += 2 {
				p := n.Content[i].Value
				if path != "" {
					p = path + "." + p
				}
				walk(n.Content[i+1], p)
			}
		case n.Kind == yaml.SequenceNode && len(n.Content) > 0:
			for i, c := range n.Content {
				walk(c, path+"["+string(rune('0'+i))+"]")
			}
		default:
			v := n.Value
			if n.Kind != yaml.ScalarNode {
				v = "<empty>"
			} else if n.Tag == "!!null" {
				v = ""
			}
			out[path] = v
		}
	}
	walk(&doc, "")
	return out
}

// A config file written for the previous release, with provisioning.enable_session_transfers
// and "generate" secrets, loads after the upgrade; the file is rewritten with real secrets and
// every other key and value of the old file (MSN, Discord, Matrix and the rest) is kept.
func TestUpgradePreviousConfig(t *testing.T) {
	dir := t.TempDir()
	old := previousConfig(t, map[string]string{
		"MSN_SERVER": "127.0.0.1:1863", "LOGIN_URL": "https://127.0.0.1:1443/login2.srf", "CA_FILE": "",
		"KEY_FILE": filepath.Join(dir, "msn-bridge.key"), "HS_DOMAIN": "localhost",
		"HS_URL": "http://127.0.0.1:8008", "AS_URL": "http://127.0.0.1:29999", "AS_PORT": "29999",
		"AS_TOKEN": "as-token-of-the-old-install", "HS_TOKEN": "hs-token-of-the-old-install",
		"DB_PATH": filepath.Join(dir, "bridge.db"), "METRICS_ADDR": "127.0.0.1:29998", "STATUS_URL": "http://127.0.0.1:29997/status",
	})
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(old), 0o640); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(path, true, nil)
	if err != nil {
		t.Fatalf("the previous release's config does not load: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the previous release's config is invalid after the upgrade: %v", err)
	}
	app, err := newAppWithLogger(cfg, zerolog.Nop())
	if err != nil {
		t.Fatalf("the bridge cannot be built from the upgraded config: %v", err)
	}
	app.db.Close()

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("file mode after the upgrade: %v, %v; want 0640 kept", st.Mode().Perm(), err)
	}
	got := leaves(t, data)
	for _, key := range []string{
		"matrix.provisioning.shared_secret", "matrix.encryption.pickle_key",
		"matrix.public_media.signing_key", "matrix.direct_media.server_key",
	} {
		if v := got[key]; v == "generate" || len(v) < 16 {
			t.Errorf("%s = %q in the rewritten file, want a generated secret", key, v)
		}
	}
	if cfg.Matrix.Provisioning.SharedSecret != got["matrix.provisioning.shared_secret"] {
		t.Error("the secret in use is not the one written to the file")
	}
	if _, ok := got["matrix.provisioning.enable_session_transfers"]; ok {
		t.Error("the removed key enable_session_transfers is still in the file")
	}
	changed := map[string]bool{
		"matrix.provisioning.shared_secret": true, "matrix.encryption.pickle_key": true,
		"matrix.provisioning.enable_session_transfers": true,
	}
	want := leaves(t, []byte(old))
	for key, v := range want {
		if changed[key] {
			continue
		}
		if g, ok := got[key]; !ok || g != v {
			t.Errorf("%s: %q before the upgrade, %q (present %v) after", key, v, g, ok)
		}
	}
	for _, key := range []string{"msn.server", "msn.max_contacts", "discord.token", "discord.category_name", "memory_limit", "matrix.displayname_template"} {
		if _, ok := want[key]; !ok {
			t.Fatalf("test config lacks %s", key)
		}
	}
	if cfg.MSN.MaxContacts != 777 || cfg.Discord.RosterDebounce.String() != "4s" || cfg.Matrix.Connector.Presence.Rate != 30 {
		t.Errorf("values in use after the upgrade: max_contacts %d, roster_debounce %s, presence.rate %v",
			cfg.MSN.MaxContacts, cfg.Discord.RosterDebounce, cfg.Matrix.Connector.Presence.Rate)
	}

	// The upgrade is stable: a second start keeps the secrets and leaves the file as it is.
	if _, err := loadConfig(path, true, nil); err != nil {
		t.Fatal(err)
	}
	again, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, data) {
		t.Error("a second start rewrote the upgraded file")
	}
}

// With -n the file is left alone, and the secrets are generated in memory.
func TestUpgradeNoUpdate(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, "config.yaml", strings.ReplaceAll(validConfigYAML, "KEYFILE", filepath.Join(dir, "key")))
	before, _ := os.ReadFile(path)
	cfg, err := loadConfig(path, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("the file was written without save")
	}
	if s := cfg.Matrix.Provisioning.SharedSecret; s == "generate" || len(s) < 16 {
		t.Errorf("shared secret in memory = %q, want a generated one", s)
	}
}

// Encryption with a generated pickle key: written back, the key is accepted (it stays the same
// at the next start); with -n, it would change at each start, so the config is refused until
// the key is kept. A key of the file's own is accepted with -n.
func TestUpgradePickleKeyKept(t *testing.T) {
	dir := t.TempDir()
	cfgYAML := strings.ReplaceAll(validConfigYAML, "KEYFILE", filepath.Join(dir, "key"))
	cfgYAML = strings.Replace(cfgYAML, "matrix:\n", "matrix:\n    encryption:\n        allow: true\n        pickle_key: generate\n", 1)
	if !strings.Contains(cfgYAML, "allow: true") {
		t.Fatal("test config lacks matrix.encryption")
	}
	path := writeFile(t, "config.yaml", cfgYAML)

	cfg, err := loadConfig(path, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "matrix.encryption.pickle_key: is \"generate\", but -n") {
		t.Errorf("validate with a pickle key generated in memory: %v", err)
	}

	cfg, err = loadConfig(path, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	key := cfg.Matrix.Encryption.PickleKey
	if key == "generate" || len(key) < 32 {
		t.Fatalf("pickle key = %q, want a generated one", key)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("validate with the pickle key written back: %v", err)
	}
	data, _ := os.ReadFile(path)
	if !strings.Contains(string(data), "pickle_key: "+key) {
		t.Error("the generated pickle key is not in the file")
	}
	cfg, err = loadConfig(path, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Matrix.Encryption.PickleKey != key {
		t.Errorf("pickle key changed at the next start: %q, want %q", cfg.Matrix.Encryption.PickleKey, key)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("validate with -n and a kept pickle key: %v", err)
	}
}

// The example's shared secret works: the provisioning API must not be left with the literal
// "generate", which bridgev2 refuses.
func TestExampleProvisioningSecretGenerated(t *testing.T) {
	cfg, err := LoadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if s := cfg.BridgeConfig().Provisioning.SharedSecret; s == "generate" || len(s) < 16 {
		t.Errorf("provisioning shared secret = %q", s)
	}
	if s := cfg.BridgeConfig().Encryption.PickleKey; s == "generate" || s == "" {
		t.Errorf("pickle key = %q", s)
	}
}

// Keys that bridgev2 moved are carried over, and are no unknown keys in an old file.
func TestUpgradeMovedKeys(t *testing.T) {
	dir := t.TempDir()
	cfgYAML := strings.ReplaceAll(validConfigYAML, "KEYFILE", filepath.Join(dir, "key"))
	cfgYAML = strings.Replace(cfgYAML, "hs_token: hs-token-for-tests\n", "hs_token: hs-token-for-tests\n        msc4190: true\n", 1)
	if !strings.Contains(cfgYAML, "msc4190") {
		t.Fatal("test config lacks appservice.msc4190")
	}
	path := writeFile(t, "config.yaml", cfgYAML)
	cfg, err := loadConfig(path, true, nil)
	if err != nil {
		t.Fatalf("old key refused: %v", err)
	}
	if !cfg.Matrix.Encryption.MSC4190 {
		t.Error("appservice.msc4190 was not carried over to encryption.msc4190")
	}
	got := leaves(t, mustRead(t, path))
	if got["matrix.encryption.msc4190"] != "true" {
		t.Errorf("encryption.msc4190 in the file = %q", got["matrix.encryption.msc4190"])
	}
	if _, ok := got["matrix.appservice.msc4190"]; ok {
		t.Error("the old key is still in the file")
	}
}

// Typos are still reported with their line, before anything is written.
func TestUpgradeKeepsTypoReports(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, "config.yaml", strings.ReplaceAll(validConfigYAML, "KEYFILE", filepath.Join(dir, "key"))+
		"discord:\n    rosterdebounce: 3s\n")
	before := mustRead(t, path)
	_, err := loadConfig(path, true, nil)
	if err == nil || !strings.Contains(err.Error(), "discord.rosterdebounce: unknown key") {
		t.Fatalf("error = %v, want the unknown key named", err)
	}
	if !bytes.Equal(before, mustRead(t, path)) {
		t.Error("a config with a typo was rewritten")
	}
}

// Environment variables named by env_config_prefix override keys in memory; the file never
// receives their values, and a variable naming no key is an error naming it.
func TestEnvOverrides(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte("a-provisioning-secret-from-a-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := writeFile(t, "config.yaml", strings.ReplaceAll(validConfigYAML, "KEYFILE", filepath.Join(dir, "key"))+
		"env_config_prefix: MSNBRIDGE_CFG_\n")
	env := []string{
		"MSNBRIDGE_CFG_MATRIX__PROVISIONING__SHARED_SECRET_FILE=" + secretFile,
		"MSNBRIDGE_CFG_MSN__MAX_CONTACTS=55",
		"MSNBRIDGE_CFG_MSN__RECONNECT__MAX=7s",
		"MSNBRIDGE_CFG_MATRIX__DOUBLE_PUPPET__SECRETS__EXAMPLE__ORG=as_token:abc",
		"MSN_BRIDGE_KEY=ignored",
	}
	cfg, err := loadConfig(path, true, env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Matrix.Provisioning.SharedSecret != "a-provisioning-secret-from-a-file" {
		t.Errorf("shared secret = %q", cfg.Matrix.Provisioning.SharedSecret)
	}
	if cfg.MSN.MaxContacts != 55 || cfg.MSN.Core.Reconnect.Max.String() != "7s" {
		t.Errorf("max_contacts %d, reconnect.max %s", cfg.MSN.MaxContacts, cfg.MSN.Core.Reconnect.Max)
	}
	if cfg.Matrix.DoublePuppet.Secrets["example.org"] != "as_token:abc" {
		t.Errorf("double puppet secrets = %v", cfg.Matrix.DoublePuppet.Secrets)
	}
	if data := string(mustRead(t, path)); strings.Contains(data, "a-provisioning-secret-from-a-file") || strings.Contains(data, "as_token:abc") {
		t.Error("an environment value was written to the file")
	}
	for _, bad := range []string{"MSNBRIDGE_CFG_MSN__SERVRE=x", "MSNBRIDGE_CFG_MSN__RECONNECT=x"} {
		_, err := loadConfig(path, false, []string{bad})
		name, _, _ := strings.Cut(bad, "=")
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %v does not name the variable", bad, err)
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// An empty section (a key with no value) keeps the example's keys and values in the rewritten
// file instead of emptying the section.
func TestUpgradeEmptySection(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, "config.yaml", strings.ReplaceAll(validConfigYAML, "KEYFILE", filepath.Join(dir, "key"))+"discord:\nmetrics:\n")
	cfg, err := loadConfig(path, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := leaves(t, mustRead(t, path))
	if got["discord.roster_channel_name"] != "msn-contacts" || got["metrics.listen"] != "127.0.0.1:29356" {
		t.Errorf("empty sections lost their keys: discord.roster_channel_name %q, metrics.listen %q",
			got["discord.roster_channel_name"], got["metrics.listen"])
	}
	if cfg.Metrics.Listen != "127.0.0.1:29356" {
		t.Errorf("metrics.listen in use = %q", cfg.Metrics.Listen)
	}
}
