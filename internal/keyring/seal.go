package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
)

// Sealing errors.
var (
	// ErrWrongWrappingKey means a sealed private key was sealed under a
	// different wrapping key than the one configured. The process must not
	// start: it could neither sign nor rotate.
	ErrWrongWrappingKey = errors.New("keyring: private keys in the store were sealed with a different wrapping key")
	// ErrSealedKeyInvalid means a sealed private key is corrupt, truncated,
	// of an unknown format, or was moved from another key's row.
	ErrSealedKeyInvalid = errors.New("keyring: sealed private key is corrupt or does not belong to this key")
)

// Sealed blob layout, format version 1:
//
//	version (1 byte, 0x01) | wrapping key id (8) | nonce (12) | AES-256-GCM ciphertext and tag
//
// The wrapping key id lets a wrong key be reported as such instead of as
// corruption, and lets a later version open blobs sealed under several
// wrapping keys (rotation of the wrapping key, or a KMS-held one). The whole
// header is authenticated as part of the additional data.
const (
	sealV1       byte = 0x01
	wrapIDSize        = 8
	nonceSize         = 12
	sealOverhead      = 1 + wrapIDSize + nonceSize + 16
)

// HKDF labels. The wrapping key itself never keys a primitive: the AEAD key
// and the key id are derived from it under distinct labels, so the id that
// sits in every blob reveals nothing usable about the AEAD key.
const (
	hkdfInfoAEAD  = "openxaa keyring v1 aes-256-gcm"
	hkdfInfoKeyID = "openxaa keyring v1 wrapping key id"
	aadLabel      = "openxaa keyring v1 signing key"
)

// sealer encrypts private keys at rest under one wrapping key.
type sealer struct {
	aead  cipher.AEAD
	keyID [wrapIDSize]byte
}

func newSealer(wrappingKey []byte) (*sealer, error) {
	if err := CheckWrappingKey(wrappingKey); err != nil {
		return nil, err
	}
	aead, id, err := deriveAEAD(wrappingKey, hkdfInfoAEAD)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead, keyID: id}, nil
}

// deriveAEAD derives an AES-256-GCM key for one HKDF label from the
// wrapping key, and the wrapping key's id, which every sealed blob carries
// so that a wrong wrapping key is told apart from a tampered blob.
func deriveAEAD(wrappingKey []byte, info string) (cipher.AEAD, [wrapIDSize]byte, error) {
	var id [wrapIDSize]byte
	key, err := hkdf.Key(sha256.New, wrappingKey, nil, info, 32)
	if err != nil {
		return nil, id, fmt.Errorf("keyring: derive sealing key: %w", err)
	}
	defer clear(key)
	rawID, err := hkdf.Key(sha256.New, wrappingKey, nil, hkdfInfoKeyID, wrapIDSize)
	if err != nil {
		return nil, id, fmt.Errorf("keyring: derive wrapping key id: %w", err)
	}
	copy(id[:], rawID)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, id, fmt.Errorf("keyring: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, id, fmt.Errorf("keyring: %w", err)
	}
	return aead, id, nil
}

// seal encrypts plaintext (a PKCS#8 DER private key) for the row (owner,
// kid, alg). A fresh random 96-bit nonce per call is safe far beyond the
// number of keys a deployment will ever seal.
func (s *sealer) seal(owner, kid, alg string, plaintext []byte) ([]byte, error) {
	out := make([]byte, 1+wrapIDSize+nonceSize, sealOverhead+len(plaintext))
	out[0] = sealV1
	copy(out[1:], s.keyID[:])
	nonce := out[1+wrapIDSize:]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("keyring: nonce: %w", err)
	}
	header := out[:1+wrapIDSize]
	return s.aead.Seal(out, nonce, plaintext, additionalData(header, owner, kid, alg)), nil
}

// open decrypts a blob sealed for the row (owner, kid, alg). The caller
// should clear the result when done with it.
func (s *sealer) open(owner, kid, alg string, blob []byte) ([]byte, error) {
	if len(blob) < sealOverhead {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrSealedKeyInvalid, len(blob))
	}
	if blob[0] != sealV1 {
		return nil, fmt.Errorf("%w: unknown format version %d", ErrSealedKeyInvalid, blob[0])
	}
	header := blob[:1+wrapIDSize]
	if subtle.ConstantTimeCompare(header[1:], s.keyID[:]) != 1 {
		return nil, ErrWrongWrappingKey
	}
	nonce := blob[1+wrapIDSize : 1+wrapIDSize+nonceSize]
	ciphertext := blob[1+wrapIDSize+nonceSize:]
	plaintext, err := s.aead.Open(nil, nonce, ciphertext, additionalData(header, owner, kid, alg))
	if err != nil {
		return nil, fmt.Errorf("%w (kid %q)", ErrSealedKeyInvalid, kid)
	}
	return plaintext, nil
}

// additionalData binds a blob to its header and to the row it belongs to.
// Fields are length-prefixed so that no two distinct rows share an encoding.
func additionalData(header []byte, owner, kid, alg string) []byte {
	b := make([]byte, 0, len(aadLabel)+len(header)+len(owner)+len(kid)+len(alg)+16)
	b = append(b, aadLabel...)
	b = append(b, header...)
	for _, f := range []string{owner, kid, alg} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}
