// Package msnbridge holds what the whole project shares at its root: the example configuration,
// embedded so the binary can use it as its defaults.
package msnbridge

import _ "embed"

// ExampleConfig is config.example.yaml: every option, commented, with working defaults. The
// bridge decodes it first and the user's file over it, so an option left out keeps this value.
//
//go:embed config.example.yaml
var ExampleConfig []byte
