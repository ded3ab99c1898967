package main

import (
	"strings"
	"testing"
)

// A double-puppeting secret bridgev2 would skip without a word is refused at start with the
// key named, and the secret itself never appears in the error.
func TestValidateDoublePuppetSecrets(t *testing.T) {
	const secret = "Sup3r-secret-double-puppet-token"
	tests := []struct {
		name    string
		secrets map[string]string
		want    string // "" when valid
	}{
		{"as_token", map[string]string{"localhost": "as_token:" + secret}, ""},
		{"none", nil, ""},
		{"shared secret", map[string]string{"localhost": secret}, `matrix.double_puppet.secrets: the secret for "localhost" must be "as_token:"`},
		{"empty token", map[string]string{"localhost": "as_token: "}, `the secret for "localhost" must be "as_token:"`},
		{"bridge's own token", map[string]string{"localhost": "as_token:as-token-for-tests"}, "not the bridge's own"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := loadValid(t)
			cfg.Matrix.DoublePuppet.Secrets = tt.secrets
			err := cfg.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("valid secrets refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "as-token-for-tests") {
				t.Errorf("the error shows the secret: %v", err)
			}
		})
	}
}
