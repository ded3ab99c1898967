package matrix

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"maunium.net/go/mautrix/bridgev2/status"
)

// Every error code the frontend puts in a bridge state has a human-readable explanation in
// bridgev2's table, for clients that show the code without the message.
func TestStateErrorsCoverEveryCode(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	// Error codes set in a status.BridgeState: `bs.Error = "…"` or `Error: "…"`.
	re := regexp.MustCompile(`(?:\.Error\s*=|\bError:)\s*"([a-z0-9-]+)"`)
	codes := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(data), -1) {
			codes[m[1]] = true
		}
	}
	if len(codes) < 5 {
		t.Fatalf("found only %d error codes in the source (%v): the pattern no longer matches", len(codes), codes)
	}
	for code := range codes {
		if msg := status.BridgeStateHumanErrors[status.BridgeStateErrorCode(code)]; msg == "" {
			t.Errorf("bridge state error %q has no entry in status.BridgeStateHumanErrors", code)
		}
	}
	// A state without a message gets the explanation.
	filled := status.BridgeState{StateEvent: status.StateBadCredentials, Error: "msn-bad-credentials"}.Fill(nil)
	if filled.Message == "" {
		t.Error("Fill left the message of msn-bad-credentials empty")
	}
}
