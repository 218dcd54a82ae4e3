package keyring

import (
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
)

// SecretBox errors.
var (
	// ErrSecretWrongWrappingKey means a sealed secret was sealed under
	// another wrapping key than the configured one.
	ErrSecretWrongWrappingKey = errors.New("keyring: secret was sealed with a different wrapping key")
	// ErrSealedSecretInvalid means a sealed secret is corrupt, truncated,
	// of an unknown format, or sealed for another purpose or another row.
	ErrSealedSecretInvalid = errors.New("keyring: sealed secret is corrupt or does not belong here")
)

// SecretBox seals small secrets other than signing keys (TOTP secrets, for
// example) at rest under the deployment's wrapping key.
//
// Each purpose gets its own AES-256-GCM key, derived by HKDF-SHA256 from
// the wrapping key under the label "openxaa secretbox v1 " + purpose. That
// label can never equal the signing-key sealer's ("openxaa keyring v1 ..."),
// so a SecretBox can neither open nor forge a sealed private key, and a box
// for one purpose cannot open another's secrets.
//
// The blob layout is the sealer's: version 0x01 | wrapping key id (8) |
// nonce (12) | ciphertext and tag, with the same wrapping key id, so a
// wrong wrapping key is reported as such. The additional data binds the
// header, the purpose and the caller's aad (typically the owning row's id),
// so a blob cannot be moved to another row.
//
// A SecretBox is safe for concurrent use.
type SecretBox struct {
	aead    cipher.AEAD
	keyID   [wrapIDSize]byte
	purpose string
}

const (
	hkdfInfoSecretBox = "openxaa secretbox v1 "
	maxPurposeLen     = 64
)

// NewSecretBox derives the box for purpose (1-64 printable ASCII
// characters, such as "totp") from a 32-byte wrapping key. It keeps only
// derived keys: the caller may clear wrappingKey afterwards.
func NewSecretBox(wrappingKey []byte, purpose string) (*SecretBox, error) {
	if err := CheckWrappingKey(wrappingKey); err != nil {
		return nil, err
	}
	if purpose == "" || len(purpose) > maxPurposeLen {
		return nil, fmt.Errorf("keyring: secret box purpose must be 1-%d characters", maxPurposeLen)
	}
	for i := 0; i < len(purpose); i++ {
		if c := purpose[i]; c < 0x21 || c > 0x7e {
			return nil, errors.New("keyring: secret box purpose must be printable ASCII without spaces")
		}
	}
	aead, id, err := deriveAEAD(wrappingKey, hkdfInfoSecretBox+purpose)
	if err != nil {
		return nil, err
	}
	return &SecretBox{aead: aead, purpose: purpose, keyID: id}, nil
}

// Seal encrypts plaintext for aad. A fresh random 96-bit nonce per call is
// safe for far more secrets than a directory holds (2^32 seals per key).
func (b *SecretBox) Seal(plaintext, aad []byte) ([]byte, error) {
	out := make([]byte, 1+wrapIDSize+nonceSize, sealOverhead+len(plaintext))
	out[0] = sealV1
	copy(out[1:], b.keyID[:])
	nonce := out[1+wrapIDSize:]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("keyring: nonce: %w", err)
	}
	return b.aead.Seal(out, nonce, plaintext, b.additionalData(out[:1+wrapIDSize], aad)), nil
}

// Open decrypts a blob sealed by Seal with the same purpose and aad. The
// caller should clear the result when done with it.
func (b *SecretBox) Open(blob, aad []byte) ([]byte, error) {
	if len(blob) < sealOverhead {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrSealedSecretInvalid, len(blob))
	}
	if blob[0] != sealV1 {
		return nil, fmt.Errorf("%w: unknown format version %d", ErrSealedSecretInvalid, blob[0])
	}
	header := blob[:1+wrapIDSize]
	if subtle.ConstantTimeCompare(header[1:], b.keyID[:]) != 1 {
		return nil, ErrSecretWrongWrappingKey
	}
	nonce := blob[1+wrapIDSize : 1+wrapIDSize+nonceSize]
	plaintext, err := b.aead.Open(nil, nonce, blob[1+wrapIDSize+nonceSize:], b.additionalData(header, aad))
	if err != nil {
		return nil, ErrSealedSecretInvalid
	}
	return plaintext, nil
}

// additionalData is label | header | len(purpose) purpose | len(aad) aad,
// so no two (purpose, aad) pairs encode alike.
func (b *SecretBox) additionalData(header, aad []byte) []byte {
	const label = "openxaa secretbox v1"
	out := make([]byte, 0, len(label)+len(header)+8+len(b.purpose)+len(aad))
	out = append(out, label...)
	out = append(out, header...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(b.purpose)))
	out = append(out, b.purpose...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(aad)))
	return append(out, aad...)
}
