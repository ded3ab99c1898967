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
		if msg := StateErrors[status.BridgeStateErrorCode(code)]; msg == "" {
			t.Errorf("bridge state error %q has no entry in StateErrors", code)
		}
	}
	for code, msg := range StateErrors {
		if !codes[string(code)] {
			t.Errorf("StateErrors lists %q, which the frontend never sends", code)
		}
		// bridgev2 puts the table's text in place of the state's message: a registered code
		// must have the text the frontend sends, and an unregistered one keeps its details.
		human, registered := status.BridgeStateHumanErrors[code]
		if registered && human != msg {
			t.Errorf("%q: bridgev2's table says %q, the frontend %q", code, human, msg)
		}
	}
	filled := status.BridgeState{StateEvent: status.StateBadCredentials, Error: "msn-bad-credentials"}.Fill(nil)
	if filled.Message != badCredentialsMessage {
		t.Errorf("Fill gave msn-bad-credentials the message %q", filled.Message)
	}
	detail := "The MSN server refused the session: 911 authentication failed"
	if filled := (status.BridgeState{StateEvent: status.StateUnknownError, Error: "msn-server-refused", Message: detail}).Fill(nil); filled.Message != detail {
		t.Errorf("Fill replaced the server's error with %q", filled.Message)
	}
}
