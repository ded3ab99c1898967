package matrix

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/msn-bridge/msn-bridge/bridge"
	"github.com/msn-bridge/msn-bridge/msn"
)

// TestLoginUnverifiableCertificate: a Passport server whose certificate the bridge cannot verify
// is named as such, with the option that fixes it, not taken for a refused password.
func TestLoginUnverifiableCertificate(t *testing.T) {
	e := newGlueEnv(t, nil)
	core, err := bridge.NewCore(bridge.Config{
		MSN: msn.Config{Server: e.srv.NSAddr(), LoginURL: e.srv.HTTPSLoginURL(), RequestTimeout: 5 * time.Second},
	}, bridge.Options{Store: e.core.Store(), Log: e.log})
	must(t, err)
	ctx, cancel := context.WithTimeout(e.ctx, testWait)
	defer cancel()
	_, err = core.Login(ctx, bridge.FrontendUser{Frontend: FrontendName, UserID: string(aliceMX)}, alice, alicePW)
	if err == nil {
		t.Fatal("login through an unverifiable certificate succeeded")
	}
	msg := loginErrorMessage(err).Error()
	if !strings.Contains(msg, "cannot verify the MSN login server's certificate") || !strings.Contains(msg, "msn.ca_file") {
		t.Fatalf("login error %q, want it to say the certificate cannot be verified and name msn.ca_file", msg)
	}
	t.Logf("login error: %s", msg)
	if strings.Contains(msg, "password") {
		t.Fatalf("login error %q blames the password", msg)
	}
}
