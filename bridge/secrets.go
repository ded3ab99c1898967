package bridge

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// KeyEnvVar is the environment variable that may hold the credential key (base64, 32 bytes).
const KeyEnvVar = "MSN_BRIDGE_KEY"

// KeySize is the length in bytes of the credential key (AES-256).
const KeySize = 32

// KeyConfig says where the credential encryption key comes from. The first source that is set
// wins: Key, then the MSN_BRIDGE_KEY environment variable, then KeyFile.
type KeyConfig struct {
	// Key is base64 (standard or URL alphabet, padding optional) of 32 random bytes.
	Key string `yaml:"key"`
	// KeyFile holds the key in the same encoding. It is created with mode 0600 on first start
	// when missing; an existing file readable or writable by group or others is refused.
	KeyFile string `yaml:"key_file"`
}

// Cipher seals and opens MSN passwords with AES-256-GCM. The account handle is bound as
// additional data, so a ciphertext copied to another account's row does not decrypt. A Cipher is
// safe for concurrent use.
type Cipher struct {
	aead cipher.AEAD
}

// NewCipher returns a Cipher for a 32-byte key.
func NewCipher(key []byte) (*Cipher, error) {
	if len(key) != KeySize {
		return nil, ErrInvalidKey
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("failed to create cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("failed to create cipher: %w", err)
	}
	return &Cipher{aead: aead}, nil
}

// Seal encrypts password for handle with a fresh random nonce.
func (c *Cipher) Seal(handle, password string) (nonce, ciphertext []byte, err error) {
	nonce = make([]byte, c.aead.NonceSize())
	if _, err = rand.Read(nonce); err != nil {
		return nil, nil, fmt.Errorf("failed to generate nonce: %w", err)
	}
	return nonce, c.aead.Seal(nil, nonce, []byte(password), []byte(handle)), nil
}

// Open decrypts a password sealed for handle. A wrong key, a tampered row or a row moved to
// another handle all give ErrWrongKey.
func (c *Cipher) Open(handle string, nonce, ciphertext []byte) (string, error) {
	if len(nonce) != c.aead.NonceSize() {
		return "", ErrWrongKey
	}
	plain, err := c.aead.Open(nil, nonce, ciphertext, []byte(handle))
	if err != nil {
		return "", ErrWrongKey
	}
	return string(plain), nil
}

// LoadKey finds the credential key as KeyConfig describes, creating KeyFile when no source is
// set and the file does not exist. getenv is os.Getenv when nil. It never logs or returns the
// key material in an error.
func LoadKey(cfg KeyConfig, getenv func(string) string) ([]byte, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if cfg.Key != "" {
		key, err := DecodeKey(cfg.Key)
		if err != nil {
			return nil, fmt.Errorf("failed to read key from config: %w", err)
		}
		return key, nil
	}
	if env := getenv(KeyEnvVar); env != "" {
		key, err := DecodeKey(env)
		if err != nil {
			return nil, fmt.Errorf("failed to read key from %s: %w", KeyEnvVar, err)
		}
		return key, nil
	}
	if cfg.KeyFile == "" {
		return nil, fmt.Errorf("no credential key configured: set a key, %s or a key file", KeyEnvVar)
	}
	return loadOrCreateKeyFile(cfg.KeyFile)
}

// GenerateKey returns a new random key encoded as LoadKey expects it.
func GenerateKey() (string, error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("failed to generate key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(key), nil
}

// DecodeKey parses base64 (standard or URL alphabet, padded or not) of exactly 32 bytes.
func DecodeKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if key, err := enc.DecodeString(s); err == nil {
			if len(key) != KeySize {
				return nil, ErrInvalidKey
			}
			return key, nil
		}
	}
	return nil, ErrInvalidKey
}

func loadOrCreateKeyFile(path string) ([]byte, error) {
	info, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createKeyFile(path)
	} else if err != nil {
		return nil, fmt.Errorf("failed to stat key file: %w", err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("key file %s is not a regular file", path)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %#o, want 0600 (chmod 600 %s)", ErrKeyFilePermissions, path, perm, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read key file: %w", err)
	}
	key, err := DecodeKey(string(data))
	if err != nil {
		return nil, fmt.Errorf("failed to read key file %s: %w", path, err)
	}
	return key, nil
}

func createKeyFile(path string) ([]byte, error) {
	encoded, err := GenerateKey()
	if err != nil {
		return nil, err
	}
	// O_EXCL: if another process created the file meanwhile, fail rather than overwrite a key
	// that may already protect stored credentials.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("failed to create key file: %w", err)
	}
	if _, err = f.WriteString(encoded + "\n"); err == nil {
		err = f.Sync()
	}
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("failed to write key file: %w", err)
	}
	// The umask may have narrowed the mode further, never widened it; make it exact.
	if err = os.Chmod(path, 0o600); err != nil {
		return nil, fmt.Errorf("failed to set key file mode: %w", err)
	}
	return DecodeKey(encoded)
}
