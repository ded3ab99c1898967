//go:build nocrypto

package matrix

import (
	"errors"
	"testing"
)

// TestEncryptionRefusedWithoutCrypto: a build with -tags nocrypto refuses a config that allows
// encryption with an error naming the key and the tag, instead of failing each encrypted event.
func TestEncryptionRefusedWithoutCrypto(t *testing.T) {
	fe, err := newEncryptionFrontend(t, true)
	if !errors.Is(err, ErrNoEncryptionInBuild) {
		t.Fatalf("New with encryption allowed in a nocrypto build: %v, %v; want ErrNoEncryptionInBuild", fe, err)
	}
}
