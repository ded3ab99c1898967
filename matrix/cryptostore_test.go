//go:build !nocrypto

package matrix

import (
	"context"
	"crypto/rand"
	"testing"

	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/bridgev2/matrix"
	"maunium.net/go/mautrix/crypto"

	"github.com/msn-bridge/msn-bridge/bridge"
	"github.com/msn-bridge/msn-bridge/internal/testenv/pgtest"
)

// TestCryptoStoreOnBridgeDatabase: bridgev2's crypto store (the one end-to-bridge encryption
// uses) sets up its tables in the bridge's own database, beside the core's, on SQLite and on
// PostgreSQL; the bot's Olm account comes back with its device, and only with its pickle key.
func TestCryptoStoreOnBridgeDatabase(t *testing.T) {
	pgtest.Databases(t, func(t *testing.T, b pgtest.Backend) {
		ctx := context.Background()
		db := b.Open(t)
		log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		cipher, err := bridge.NewCipher(key)
		must(t, err)
		must(t, bridge.NewStore(db, cipher, log).Upgrade(ctx))

		open := func(pickleKey string) *matrix.SQLCryptoStore {
			return matrix.NewSQLCryptoStore(db, dbutil.ZeroLogger(log), "", "@msnbot:test", `@msn\_%:test`, pickleKey)
		}
		store := open("the-pickle-key")
		must(t, store.DB.Upgrade(ctx))
		store.DeviceID = "BOTDEVICE"
		acc := crypto.NewOlmAccount()
		must(t, store.PutAccount(ctx, acc))

		again := open("the-pickle-key")
		dev, err := again.FindDeviceID(ctx)
		must(t, err)
		if dev != "BOTDEVICE" {
			t.Fatalf("device %q, want BOTDEVICE", dev)
		}
		got, err := again.GetAccount(ctx)
		must(t, err)
		if got == nil || got.IdentityKey() != acc.IdentityKey() {
			t.Fatalf("account read back %v, want identity key %s", got, acc.IdentityKey())
		}
		if got, err := open("another-pickle-key").GetAccount(ctx); err == nil {
			t.Fatalf("account read with another pickle key: %v, want an error", got)
		}
	})
}
