//go:build !nocrypto

package matrix

import (
	"testing"

	"maunium.net/go/mautrix/bridgev2/matrix"
)

// TestEncryptionInDefaultBuild: the default build (cgo or not, no libolm) has end-to-bridge
// encryption, so a config that allows it gets bridgev2's crypto helper.
func TestEncryptionInDefaultBuild(t *testing.T) {
	fe, err := newEncryptionFrontend(t, true)
	if err != nil {
		t.Fatalf("New with encryption allowed: %v", err)
	}
	if _, ok := fe.mx.Crypto.(*matrix.CryptoHelper); !ok {
		t.Fatalf("crypto helper %T, want *matrix.CryptoHelper", fe.mx.Crypto)
	}
}
