// Package audit holds the rules every role follows when it writes an audit
// record: tokens are referenced by a keyed hash, never stored, and values a
// client supplied are bounded before they are kept.
package audit

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// TokenHMAC references a token in the audit trail without storing it: an
// HMAC-SHA256 under the deployment's audit key, hex encoded. The key keeps
// the reference useless to anyone who reads the database but not the key.
// An empty token has no reference.
func TokenHMAC(key []byte, token string) string {
	if token == "" {
		return ""
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(token))
	return hex.EncodeToString(m.Sum(nil))
}

// MaxValue bounds a client-supplied value kept in an audit record.
const MaxValue = 512

// Clip bounds a client-supplied value to MaxValue bytes, marking a cut.
func Clip(s string) string {
	if len(s) > MaxValue {
		return s[:MaxValue] + "..."
	}
	return s
}
