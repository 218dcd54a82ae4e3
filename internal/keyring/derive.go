package keyring

import (
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
)

// hkdfInfoDerived prefixes the label of every derived key. It differs from
// the sealer's and the SecretBox's labels, so a derived key never equals a
// key that seals anything.
const hkdfInfoDerived = "openxaa derived key v1 "

// DeriveKey derives a 32-byte key for one purpose (for example the HMAC key
// under which audit records reference tokens) from the wrapping key, so an
// operator manages one secret and every purpose still gets its own key.
func DeriveKey(wrappingKey []byte, purpose string) ([]byte, error) {
	if err := CheckWrappingKey(wrappingKey); err != nil {
		return nil, err
	}
	if purpose == "" {
		return nil, errors.New("keyring: DeriveKey needs a purpose")
	}
	k, err := hkdf.Key(sha256.New, wrappingKey, nil, hkdfInfoDerived+purpose, 32)
	if err != nil {
		return nil, fmt.Errorf("keyring: derive %s key: %w", purpose, err)
	}
	return k, nil
}
