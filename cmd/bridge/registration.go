package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

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
	return nil
}

// setConfigStrings sets dotted keys of a YAML file to string values, creating missing mappings,
// and replaces the file atomically with the same permissions.
func setConfigStrings(path string, values map[string]string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("failed to read config: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("failed to parse config: %w", err)
	}
	if doc.Kind == 0 {
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode}}}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return errors.New("failed to update config: the top level is not a mapping")
	}
	for key, value := range values {
		if err := setPath(doc.Content[0], splitKey(key), value); err != nil {
			return fmt.Errorf("failed to set %s: %w", key, err)
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(4)
	if err := enc.Encode(&doc); err != nil {
		return fmt.Errorf("failed to encode config: %w", err)
	}
	mode := os.FileMode(0o600)
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".config-*.yaml")
	if err != nil {
		return fmt.Errorf("failed to write config: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(buf.Bytes()); err != nil {
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
	return os.Rename(tmp.Name(), path)
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
