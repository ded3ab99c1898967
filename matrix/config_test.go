package matrix

import (
	"testing"

	"gopkg.in/yaml.v3"

	msnbridge "github.com/msn-bridge/msn-bridge"
)

// TestExampleConfigIsTheDefaults checks that the frontend's own options in the "matrix:" section
// of config.example.yaml, the one example of the options, are DefaultConfig.
func TestExampleConfigIsTheDefaults(t *testing.T) {
	var wrap struct {
		Matrix Config `yaml:"matrix"`
	}
	if err := yaml.Unmarshal(msnbridge.ExampleConfig, &wrap); err != nil {
		t.Fatal(err)
	}
	if got, want := wrap.Matrix, DefaultConfig(); got != want {
		t.Fatalf("example config decodes to\n%+v\nwant the defaults\n%+v", got, want)
	}
}
