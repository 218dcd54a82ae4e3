package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/openxaa/xaa/internal/secretfile"
)

// ErrInsecureKeyFile means the checkpoint key file may be read by someone
// other than its owner, or is not a regular file of the service user.
var ErrInsecureKeyFile = secretfile.ErrInsecure

// ErrInvalidKey means a key file does not hold an Ed25519 key of the
// expected kind.
var ErrInvalidKey = errors.New("audit: invalid checkpoint key")

// maxKeyFile bounds what a key file read may load.
const maxKeyFile = 16 << 10

// GenerateCheckpointKey returns a new Ed25519 key pair as PEM: the private
// key as PKCS #8 ("PRIVATE KEY"), the public key as PKIX ("PUBLIC KEY").
func GenerateCheckpointKey() (privatePEM, publicPEM []byte, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("audit: generate checkpoint key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("audit: encode checkpoint key: %w", err)
	}
	privatePEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	clear(der)
	clear(priv)
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("audit: encode checkpoint public key: %w", err)
	}
	return privatePEM, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), nil
}

// ParsePrivateKeyPEM decodes a PKCS #8 Ed25519 private key.
func ParsePrivateKeyPEM(data []byte) (ed25519.PrivateKey, error) {
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: want one PEM block of type PRIVATE KEY (PKCS #8), as `xaa audit keygen` writes", ErrInvalidKey)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: the key is %T, want Ed25519", ErrInvalidKey, k)
	}
	return priv, nil
}

// ParsePublicKeyPEM decodes a PKIX Ed25519 public key.
func ParsePublicKeyPEM(data []byte) (ed25519.PublicKey, error) {
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "PUBLIC KEY" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: want one PEM block of type PUBLIC KEY, as `xaa audit keygen` writes", ErrInvalidKey)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: the key is %T, want Ed25519", ErrInvalidKey, k)
	}
	return pub, nil
}

// LoadPrivateKey reads the checkpoint signing key. Like the wrapping key,
// the file must be a regular file owned by the effective user with no
// group or other permission bits (0600 or 0400); symlinks are followed,
// and the checks apply to the file actually opened.
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	buf, err := secretfile.Read(path, maxKeyFile)
	if errors.Is(err, secretfile.ErrTooLarge) {
		return nil, fmt.Errorf("%w in %s: file too large", ErrInvalidKey, path)
	}
	if err != nil {
		return nil, fmt.Errorf("audit: checkpoint key file: %w", err)
	}
	defer clear(buf)
	k, err := ParsePrivateKeyPEM(buf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// LoadPublicKey reads a checkpoint public key file (no permission rules:
// it is public).
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audit: checkpoint public key: %w", err)
	}
	defer f.Close()
	buf, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("audit: read checkpoint public key %s: %w", path, err)
	}
	if len(buf) > maxKeyFile {
		return nil, fmt.Errorf("%w in %s: file too large", ErrInvalidKey, path)
	}
	k, err := ParsePublicKeyPEM(buf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}
