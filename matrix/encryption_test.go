package matrix

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/bridgev2/bridgeconfig"

	"github.com/msn-bridge/msn-bridge/internal/testenv/pgtest"
	"github.com/msn-bridge/msn-bridge/msn/msntest"
)

// newEncryptionFrontend builds the frontend with New (no I/O happens) for a config that
// allows end-to-bridge encryption or not.
func newEncryptionFrontend(t *testing.T, allow bool) (*Frontend, error) {
	t.Helper()
	srv := msntest.New(msntest.Options{})
	must(t, srv.Start())
	t.Cleanup(srv.Close)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	db := pgtest.Open(t, pgtest.SQLiteDriver, pgtest.SQLiteDSN(t))
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
	core := newTestCore(t, context.Background(), srv, db, key, log)
	bcfg := &bridgeconfig.Config{
		Homeserver: bridgeconfig.HomeserverConfig{Address: "http://127.0.0.1:1", Domain: "test", Software: bridgeconfig.SoftwareStandard},
		AppService: bridgeconfig.AppserviceConfig{
			Address: "http://127.0.0.1:2", Hostname: "127.0.0.1", Port: 2, ID: "msn",
			Bot:     bridgeconfig.BotUserConfig{Username: "msnbot"},
			ASToken: "as-token-for-the-test", HSToken: "hs-token-for-the-test", UsernameTemplate: "msn_{{.}}",
		},
		Bridge:     *testBridgeConfig(),
		Encryption: bridgeconfig.EncryptionConfig{Allow: allow, Default: allow, PickleKey: "pickle-key-for-the-test"},
	}
	return New(core, bcfg, DefaultConfig(), db, log)
}

// TestEncryptionOffNeedsNothing: with encryption not allowed, every build starts and has no
// crypto helper.
func TestEncryptionOffNeedsNothing(t *testing.T) {
	fe, err := newEncryptionFrontend(t, false)
	if err != nil {
		t.Fatalf("New without encryption: %v", err)
	}
	if fe.mx.Crypto != nil {
		t.Fatalf("crypto helper %T with encryption off, want none", fe.mx.Crypto)
	}
	if errors.Is(checkEncryption(&bridgeconfig.EncryptionConfig{}, fe.mx), ErrNoEncryptionInBuild) {
		t.Fatal("encryption off reported as missing")
	}
}
