package matrix

import (
	"errors"

	"maunium.net/go/mautrix/bridgev2/bridgeconfig"
	"maunium.net/go/mautrix/bridgev2/matrix"
)

// ErrNoEncryptionInBuild is returned by New when the config allows end-to-bridge encryption
// but the program was built without it (-tags nocrypto). bridgev2 itself would only log a
// warning and then fail every encrypted event, so the frontend refuses to start instead.
var ErrNoEncryptionInBuild = errors.New("matrix.encryption.allow is on, but this build has no end-to-bridge encryption (it was built with -tags nocrypto): build it without that tag, or set allow to false")

// checkEncryption reports a config that asks for end-to-bridge encryption that mx cannot
// give. bridgev2's connector sets mx.Crypto in its Init (run by bridgev2.NewBridge) when the
// config allows encryption and the build has it.
func checkEncryption(enc *bridgeconfig.EncryptionConfig, mx *matrix.Connector) error {
	if enc.Allow && mx.Crypto == nil {
		return ErrNoEncryptionInBuild
	}
	return nil
}
