package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"gopkg.in/yaml.v3"
)

// generateRegistration writes the appservice registration to regPath and stores its two tokens
// in the config file at configPath. Only those two values of the file change: comments, key
// order and every other key are kept (mxmain rewrites the whole file, which this bridge avoids).
func generateRegistration(configPath, regPath string, cfg *Config) error {
	if configPath == "" {
		return errors.New("a config file is needed to store the tokens in: write one with -e first")
	}
	if cfg.Matrix.Homeserver.Domain == "" || cfg.Matrix.Homeserver.Domain == "example.com" {
		return &ConfigError{Key: "matrix.homeserver.domain", Problem: "set it to your homeserver's server_name first"}
	}
	bcfg := cfg.BridgeConfig()
	reg := bcfg.GenerateRegistration()
	if err := setConfigStrings(configPath, map[string]string{
		"matrix.appservice.as_token": reg.AppToken,
		"matrix.appservice.hs_token": reg.ServerToken,
	}); err != nil {
		return err
	}
	if err := reg.Save(regPath); err != nil {
		return fmt.Errorf("failed to save %s: %w", regPath, err)
	}
	return saveRegistrationMode(regPath)
}

// setConfigStrings sets dotted keys of a YAML file to string values and replaces the file
// atomically with the same permissions. Values whose keys exist on one line are replaced in
// place, so every other byte of the file (comments, blank lines, quoting, order) stays as it
// was; otherwise the file is re-encoded from its node tree, which keeps comments and order but
// not blank lines.
func setConfigStrings(path string, values map[string]string) error {
	data, err := readConfigFile(path)
	if err != nil {
		return err
	}
	out, ok := replaceScalarsInPlace(data, values)
	if !ok || checkScalars(out, values) != nil {
		if out, err = rewriteScalars(data, values); err != nil {
			return err
		}
	}
	if err := checkScalars(out, values); err != nil {
		return fmt.Errorf("failed to update config: %w", err)
	}
	return writeFileAtomic(path, out)
}

// replaceScalarsInPlace replaces the single-line scalar values of the given keys in data. It
// reports false when a key is missing or its value is not a single-line scalar.
func replaceScalarsInPlace(data []byte, values map[string]string) ([]byte, bool) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, false
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	edits := map[int][]byte{}
	for key, value := range values {
		k, v := lookupPair(&doc, splitKey(key))
		if v == nil || v.Kind != yaml.ScalarNode || v.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
			return nil, false
		}
		quoted := []byte(strconv.Quote(value))
		if v.Tag == "!!null" && v.Value == "" {
			// "key:" with nothing after it: insert after the colon on the key's line.
			line, ok := lineAt(lines, k.Line)
			if !ok || k.Style != 0 || !isASCII(line) || k.Column-1+len(k.Value) >= len(line) {
				return nil, false
			}
			rest := line[k.Column-1+len(k.Value):]
			colon := bytes.IndexByte(rest, ':')
			if colon < 0 || len(bytes.TrimSpace(rest[:colon])) != 0 {
				return nil, false
			}
			at := k.Column - 1 + len(k.Value) + colon + 1
			edits[k.Line] = splice(line, at, at, append([]byte(" "), quoted...))
			continue
		}
		line, ok := lineAt(lines, v.Line)
		if !ok || !isASCII(line[:min(v.Column-1, len(line))]) || v.Column-1 >= len(line) {
			return nil, false
		}
		start := v.Column - 1
		end := scalarEnd(line, start, v.Style)
		if end < 0 {
			return nil, false
		}
		edits[v.Line] = splice(line, start, end, quoted)
	}
	var out bytes.Buffer
	for i, line := range lines {
		if e, ok := edits[i+1]; ok {
			out.Write(e)
		} else {
			out.Write(line)
		}
	}
	return out.Bytes(), true
}

// scalarEnd returns the offset just past the scalar starting at line[start], or -1 if it does
// not end on this line.
func scalarEnd(line []byte, start int, style yaml.Style) int {
	switch {
	case style&yaml.DoubleQuotedStyle != 0:
		for i := start + 1; i < len(line); i++ {
			switch line[i] {
			case '\\':
				i++
			case '"':
				return i + 1
			}
		}
		return -1
	case style&yaml.SingleQuotedStyle != 0:
		for i := start + 1; i < len(line); i++ {
			if line[i] == '\'' {
				if i+1 < len(line) && line[i+1] == '\'' {
					i++
					continue
				}
				return i + 1
			}
		}
		return -1
	}
	end := len(bytes.TrimRight(line, "\r\n"))
	if c := bytes.Index(line[start:end], []byte(" #")); c >= 0 {
		end = start + c
	}
	return start + len(bytes.TrimRight(line[start:end], " \t"))
}

// splice returns a copy of line with line[start:end] replaced by insert.
func splice(line []byte, start, end int, insert []byte) []byte {
	out := make([]byte, 0, len(line)-(end-start)+len(insert))
	out = append(append(append(out, line[:start]...), insert...), line[end:]...)
	return out
}

func lineAt(lines [][]byte, n int) ([]byte, bool) {
	if n < 1 || n > len(lines) {
		return nil, false
	}
	return lines[n-1], true
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// lookupPair returns the key and value nodes at the dotted path, or nils.
func lookupPair(doc *yaml.Node, path []string) (key, value *yaml.Node) {
	parent := lookupNode(doc, path[:len(path)-1]...)
	if parent == nil || parent.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(parent.Content); i += 2 {
		if parent.Content[i].Value == path[len(path)-1] {
			key, value = parent.Content[i], parent.Content[i+1]
		}
	}
	return key, value
}

// checkScalars reports whether data holds each key with its value.
func checkScalars(data []byte, values map[string]string) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return err
	}
	for key, value := range values {
		if _, v := lookupPair(&doc, splitKey(key)); v == nil || v.Kind != yaml.ScalarNode || v.Value != value {
			return fmt.Errorf("%s was not written", key)
		}
	}
	return nil
}

// rewriteScalars sets the keys in data's node tree, creating missing mappings, and encodes it.
func rewriteScalars(data []byte, values map[string]string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("failed to parse config: %w", err)
	}
	if doc.Kind == 0 {
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode}}}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("failed to update config: the top level is not a mapping")
	}
	for key, value := range values {
		if err := setPath(doc.Content[0], splitKey(key), value); err != nil {
			return nil, fmt.Errorf("failed to set %s: %w", key, err)
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(4)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("failed to encode config: %w", err)
	}
	return buf.Bytes(), nil
}

// writeFileAtomic replaces path with data through a temporary file in the same directory,
// keeping path's permissions (0600 for a new file).
func writeFileAtomic(path string, data []byte) error {
	mode := os.FileMode(0o600)
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".config-*.yaml")
	if err != nil {
		return fmt.Errorf("failed to write config: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("failed to write config: %w", err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("failed to write config: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("failed to write config: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("failed to write config: %w", err)
	}
	return nil
}

func splitKey(key string) []string {
	var parts []string
	start := 0
	for i := 0; i < len(key); i++ {
		if key[i] == '.' {
			parts = append(parts, key[start:i])
			start = i + 1
		}
	}
	return append(parts, key[start:])
}

func setPath(m *yaml.Node, path []string, value string) error {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value != path[0] {
			continue
		}
		v := m.Content[i+1]
		if len(path) == 1 {
			*v = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value, Style: yaml.DoubleQuotedStyle}
			return nil
		}
		if v.Kind != yaml.MappingNode {
			if v.Kind == yaml.ScalarNode && (v.Tag == "!!null" || v.Value == "") {
				*v = yaml.Node{Kind: yaml.MappingNode}
			} else {
				return fmt.Errorf("%s is not a mapping", path[0])
			}
		}
		return setPath(v, path[1:], value)
	}
	key := &yaml.Node{Kind: yaml.ScalarNode, Value: path[0]}
	if len(path) == 1 {
		m.Content = append(m.Content, key, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value, Style: yaml.DoubleQuotedStyle})
		return nil
	}
	child := &yaml.Node{Kind: yaml.MappingNode}
	m.Content = append(m.Content, key, child)
	return setPath(child, path[1:], value)
}
