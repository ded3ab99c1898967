package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	up "go.mau.fi/util/configupgrade"
	"gopkg.in/yaml.v3"
	"maunium.net/go/mautrix/bridgev2/bridgeconfig"

	msnbridge "github.com/msn-bridge/msn-bridge"
)

// bridgev2Sections are the sections under matrix: that bridgev2's own upgrader
// (bridgeconfig.Upgrader) carries over, with its renames and generated secrets.
var bridgev2Sections = []string{
	"bridge", "homeserver", "appservice", "matrix", "provisioning", "public_media",
	"direct_media", "backfill", "double_puppet", "encryption",
}

// movedKey is a key that an older version of the bridge (or of bridgev2) had at From. When To
// is set, a value at From is carried over to To unless the file also has To; when To is nil,
// the key is gone and its value dropped.
type movedKey struct {
	From, To []string
}

// movedKeys lists every key renamed or removed since the first release, oldest first.
// bridgev2's own renames inside its sections are done by bridgeconfig.Upgrader and listed
// here only so that the strict check of the old file accepts them.
var movedKeys = []movedKey{
	// mautrix v0.33.0 removed session transfers.
	{From: []string{"matrix", "provisioning", "enable_session_transfers"}},
	// bridgev2 moved msc4190 from appservice to encryption.
	{From: []string{"matrix", "appservice", "msc4190"}, To: []string{"matrix", "encryption", "msc4190"}},
}

// allTypes accepts a value of any YAML type when copying.
const allTypes = up.Null | up.Bool | up.Str | up.Int | up.Float | up.Timestamp | up.List | up.Map | up.Binary

// configUpgrader builds the base (the embedded example) and the upgraders: the project's own
// keys are copied generically, bridgev2's sections by bridgeconfig's upgrade function under
// matrix:, and moved keys by movedKeys.
func configUpgrader() up.BaseUpgrader {
	return up.MergeUpgraders(string(msnbridge.ExampleConfig),
		up.SimpleUpgrader(copyOwnKeys),
		&up.ProxyUpgrader{Prefix: []string{"matrix"}, Target: up.SimpleUpgrader(bridgeconfig.Upgrader.DoUpgrade)},
		up.SimpleUpgrader(moveKeys),
	)
}

// copyOwnKeys copies every value of the user's file whose key the base has, except bridgev2's
// sections under matrix:. A mapping is copied key by key when the base has all of its keys, and
// whole otherwise (a map of the user's own keys such as permissions, or one with a typo, which
// the strict check reports): so no key of the user's is ever dropped.
func copyOwnKeys(h up.Helper) {
	var walk func(path []string)
	walk = func(path []string) {
		if len(path) == 2 && path[0] == "matrix" && slices.Contains(bridgev2Sections, path[1]) {
			return
		}
		user, base := h.GetNode(path...), h.GetBaseNode(path...)
		if user == nil || base == nil || (user.Kind != base.Kind && user.Tag == "!!null") {
			return // an empty section keeps the example's values
		}
		if user.Kind == yaml.MappingNode && base.Kind == yaml.MappingNode && len(base.Map) > 0 && keysIn(user.Map, base.Map) {
			for _, key := range orderedKeys(user.Node) {
				walk(append(slices.Clone(path), key))
			}
			return
		}
		if len(path) > 0 {
			h.Copy(allTypes, path...)
		}
	}
	walk(nil)
}

func keysIn(m, in up.YAMLMap) bool {
	for k := range m {
		if _, ok := in[k]; !ok {
			return false
		}
	}
	return true
}

// orderedKeys returns a mapping node's keys in file order.
func orderedKeys(n *yaml.Node) []string {
	keys := make([]string, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		keys = append(keys, n.Content[i].Value)
	}
	return keys
}

// moveKeys carries each moved key's value to its new place, unless the file sets the new key
// itself.
func moveKeys(h up.Helper) {
	for _, m := range movedKeys {
		if m.To == nil || h.GetNode(m.To...) != nil || h.GetBaseNode(m.To...) == nil {
			continue
		}
		old := h.GetNode(m.From...)
		if old == nil || old.Kind != yaml.ScalarNode {
			continue
		}
		base := h.GetBaseNode(m.To...)
		base.Tag, base.Value, base.Style = old.Tag, old.Value, old.Style
	}
}

// dropMovedKeys removes the moved keys from a parsed user file, so that the strict check of a
// file written for an older version accepts them.
func dropMovedKeys(doc *yaml.Node) {
	for _, m := range movedKeys {
		parent := lookupNode(doc, m.From[:len(m.From)-1]...)
		if parent == nil || parent.Kind != yaml.MappingNode {
			continue
		}
		last := m.From[len(m.From)-1]
		for i := 0; i+1 < len(parent.Content); i += 2 {
			if parent.Content[i].Value == last {
				parent.Content = slices.Delete(parent.Content, i, i+2)
				break
			}
		}
	}
}

// upgradeConfig returns data in the layout of the embedded example with the user's values,
// moved keys carried over and generated secrets filled in.
func upgradeConfig(data []byte) ([]byte, error) {
	out, err := up.DoBytes(data, configUpgrader())
	if err != nil {
		return nil, fmt.Errorf("failed to upgrade config: %w", err)
	}
	return out, nil
}

// writeConfigFile replaces path with data atomically, keeping its permissions; a symbolic link
// is followed rather than replaced.
func writeConfigFile(path string, data []byte) error {
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fmt.Errorf("failed to write upgraded config: %w", err)
	}
	return writeFileAtomic(target, data)
}

// applyEnv sets the keys named by environment variables starting with prefix in a parsed
// config document, as mautrix bridges do: PREFIX_A__B_C (or PREFIX_a.b_c) sets a.b_c, and a
// _FILE suffix reads the value from the named file. Each variable must name a single value
// the document has, or an entry of a map; anything else is an error naming the variable.
func applyEnv(doc *yaml.Node, prefix string, environ []string, readFile func(string) ([]byte, error)) error {
	if prefix == "" {
		return nil
	}
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, prefix) {
			continue
		}
		key := strings.TrimPrefix(name, prefix)
		fromFile := false
		if k, ok := strings.CutSuffix(key, "_FILE"); ok {
			key, fromFile = k, true
		}
		key = strings.ToLower(key)
		if !strings.Contains(key, ".") {
			key = strings.ReplaceAll(key, "__", ".")
		}
		if fromFile {
			data, err := readFile(value)
			if err != nil {
				return fmt.Errorf("environment variable %s: %w", name, err)
			}
			value = strings.TrimSpace(string(data))
		}
		if err := setEnvKey(doc, strings.Split(key, "."), value); err != nil {
			return fmt.Errorf("environment variable %s: %s: %w", name, key, err)
		}
	}
	return nil
}

// setEnvKey sets the single value at path in doc to value (its YAML type inferred, as if it had
// been written in the file). The last element of path may be a new key of a map whose values
// are single values; the rest of the path must exist.
func setEnvKey(doc *yaml.Node, path []string, value string) error {
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	for i, key := range path {
		if n.Kind != yaml.MappingNode {
			return fmt.Errorf("not a config key")
		}
		var next *yaml.Node
		for j := 0; j+1 < len(n.Content); j += 2 {
			if n.Content[j].Value == key {
				next = n.Content[j+1]
			}
		}
		if next == nil {
			rest := strings.Join(path[i:], ".")
			if !mapKeys[strings.Join(path[:i], ".")] {
				return fmt.Errorf("unknown config key")
			}
			n.Content = append(n.Content,
				&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: rest},
				&yaml.Node{Kind: yaml.ScalarNode, Value: value})
			return nil
		}
		n = next
	}
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("only single values can be set from the environment")
	}
	n.Value, n.Tag, n.Style = value, "", 0
	return nil
}

// mapKeys are the maps whose entries are the admin's own keys (mapping to single values): an
// environment variable may add an entry to them.
var mapKeys = map[string]bool{
	"matrix.bridge.permissions":                  true,
	"matrix.double_puppet.servers":               true,
	"matrix.double_puppet.secrets":               true,
	"matrix.backfill.queue.max_batches_override": true,
}
