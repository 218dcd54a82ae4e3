package keyring

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/openxaa/xaa/internal/secretfile"
)

// WrappingKeySize is the length of the key that seals private keys at rest.
const WrappingKeySize = 32

// maxWrappingKeyFile bounds what LoadWrappingKey reads: the encoded key is
// 44 characters, so anything much larger is the wrong file.
const maxWrappingKeyFile = 4 << 10

// Wrapping key errors. Their messages never contain key material.
var (
	// ErrNoWrappingKey means neither a value nor a file was configured.
	ErrNoWrappingKey = errors.New("keyring: no wrapping key configured")
	// ErrInvalidWrappingKey means the key is not base64, not 32 bytes, or
	// all zero.
	ErrInvalidWrappingKey = errors.New("keyring: invalid wrapping key")
	// ErrInsecureKeyFile means the wrapping key file is not a regular file
	// readable only by the service user.
	ErrInsecureKeyFile = secretfile.ErrInsecure
)

// GenerateWrappingKey returns a fresh random wrapping key, base64 (standard
// alphabet, padded) encoded, for bootstrap commands such as `xaa keys init`.
func GenerateWrappingKey() (string, error) {
	k := make([]byte, WrappingKeySize)
	if _, err := rand.Read(k); err != nil {
		return "", fmt.Errorf("keyring: generate wrapping key: %w", err)
	}
	defer clear(k)
	return base64.StdEncoding.EncodeToString(k), nil
}

// LoadWrappingKey returns the wrapping key from exactly one of value (the
// base64 encoded key, typically from an environment variable) or file (a
// path to a file holding the encoded key).
//
// The file must be a regular file owned by the effective user with no group
// or other permission bits (0600 or 0400): a key readable by others is
// refused rather than used, so a mistake is fixed before a secret leaks
// further. Symlinks are followed, because secret mounts (Kubernetes
// projected volumes) are symlinks; the checks apply to the file actually
// opened, via the open descriptor, so a swap between check and read is
// caught.
func LoadWrappingKey(value, file string) ([]byte, error) {
	switch {
	case value != "" && file != "":
		return nil, errors.New("keyring: wrapping key given both as a value and as a file; configure exactly one")
	case value != "":
		return ParseWrappingKey(value)
	case file != "":
		return readWrappingKeyFile(file)
	default:
		return nil, ErrNoWrappingKey
	}
}

// ParseWrappingKey decodes a base64 wrapping key (standard or URL alphabet,
// padded or not, surrounding whitespace ignored) and checks it is 32 bytes
// and not all zero.
func ParseWrappingKey(encoded string) ([]byte, error) {
	s := strings.TrimSpace(encoded)
	if s == "" {
		return nil, fmt.Errorf("%w: empty", ErrInvalidWrappingKey)
	}
	var key []byte
	for _, enc := range []*base64.Encoding{
		base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding,
	} {
		if k, err := enc.DecodeString(s); err == nil {
			key = k
			break
		}
	}
	if key == nil {
		// Never echo s: it may be a real key with one character mistyped.
		return nil, fmt.Errorf("%w: not valid base64", ErrInvalidWrappingKey)
	}
	if err := CheckWrappingKey(key); err != nil {
		clear(key)
		return nil, err
	}
	return key, nil
}

// CheckWrappingKey reports whether key can seal private keys: exactly 32
// bytes and not all zero (the value of an unset variable or a zeroed
// buffer, never a real key).
func CheckWrappingKey(key []byte) error {
	if len(key) != WrappingKeySize {
		return fmt.Errorf("%w: %d bytes, want %d", ErrInvalidWrappingKey, len(key), WrappingKeySize)
	}
	if subtle.ConstantTimeCompare(key, make([]byte, WrappingKeySize)) == 1 {
		return fmt.Errorf("%w: all zero", ErrInvalidWrappingKey)
	}
	return nil
}

func readWrappingKeyFile(path string) ([]byte, error) {
	buf, err := secretfile.Read(path, maxWrappingKeyFile)
	if errors.Is(err, secretfile.ErrTooLarge) {
		return nil, fmt.Errorf("%w in %s: file too large", ErrInvalidWrappingKey, path)
	}
	if err != nil {
		return nil, err
	}
	defer clear(buf)
	key, err := ParseWrappingKey(string(bytes.TrimSpace(buf)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return key, nil
}
