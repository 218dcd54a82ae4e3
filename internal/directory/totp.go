package directory

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/openxaa/xaa/internal/store"
)

// TOTP (RFC 6238) as authenticator apps implement it: HMAC-SHA-1, 6 digits,
// 30-second steps from the Unix epoch.
//
// Replay protection is the caller's half of the contract (RFC 6238 §5.2):
// ValidateTOTP returns the time step the code belongs to, and the login
// handler must record it with store.Replay.RecordOnce(TOTPReplayEntry(user,
// step)) in the transaction that completes the login, refusing the login on
// store.ErrReplay. A code is then accepted at most once even within its
// validity window, also across instances sharing the store.

// TOTP parameters.
const (
	TOTPDigits    = 6
	TOTPPeriod    = 30 * time.Second
	TOTPSecretLen = 20 // 160 bits, RFC 4226 §4's recommendation
	// totpSkew is how many steps before and after the current one are
	// accepted, for clock drift and typing time (RFC 6238 §5.2 suggests 1).
	totpSkew = 1
	// minTOTPSecretLen is RFC 4226's lower bound (128 bits); shorter
	// imported secrets are refused.
	minTOTPSecretLen = 16
	maxTOTPSecretLen = 64
)

// TOTPSealPurpose is the keyring.SecretBox purpose of TOTP secrets; the aad
// is the user's id.
const TOTPSealPurpose = "totp"

// ErrTOTPInvalid means a code did not match (or was not six digits). The
// caller must not say which.
var ErrTOTPInvalid = errors.New("directory: invalid one-time password")

// ErrTOTPSecret means a TOTP secret is malformed or too short or long.
var ErrTOTPSecret = errors.New("directory: invalid TOTP secret")

// Sealer seals small secrets for a row; *keyring.SecretBox is one.
type Sealer interface {
	Seal(plaintext, aad []byte) ([]byte, error)
	Open(blob, aad []byte) ([]byte, error)
}

// GenerateTOTPSecret returns a fresh 160-bit secret.
func GenerateTOTPSecret() ([]byte, error) {
	s := make([]byte, TOTPSecretLen)
	if _, err := rand.Read(s); err != nil {
		return nil, fmt.Errorf("directory: generate TOTP secret: %w", err)
	}
	return s, nil
}

func totpBase32() *base32.Encoding { return base32.StdEncoding.WithPadding(base32.NoPadding) }

// EncodeTOTPSecret writes a secret the way authenticator apps take it:
// uppercase base32 without padding.
func EncodeTOTPSecret(secret []byte) string { return totpBase32().EncodeToString(secret) }

// ParseTOTPSecret reads a base32 secret as apps show it: case-insensitive,
// with optional spaces or dashes between groups and optional padding. It
// must decode to 16-64 bytes.
func ParseTOTPSecret(s string) ([]byte, error) {
	clean := strings.ToUpper(strings.NewReplacer(" ", "", "-", "").Replace(s))
	clean = strings.TrimRight(clean, "=")
	b, err := totpBase32().DecodeString(clean)
	if err != nil {
		return nil, fmt.Errorf("%w: not base32 (letters A-Z and digits 2-7)", ErrTOTPSecret)
	}
	if len(b) < minTOTPSecretLen || len(b) > maxTOTPSecretLen {
		return nil, fmt.Errorf("%w: %d bytes; want %d to %d (32 base32 characters for the usual 160 bits)",
			ErrTOTPSecret, len(b), minTOTPSecretLen, maxTOTPSecretLen)
	}
	return b, nil
}

// TOTPURI returns the otpauth:// URI that enrolment QR codes carry (the
// Key Uri Format of Google Authenticator): the label is "issuer:account",
// and the parameters name every default explicitly so no app guesses.
func TOTPURI(secret []byte, issuer, account string) string {
	label := url.PathEscape(issuer + ":" + account)
	q := url.Values{}
	q.Set("secret", EncodeTOTPSecret(secret))
	q.Set("issuer", issuer)
	q.Set("algorithm", "SHA1")
	q.Set("digits", strconv.Itoa(TOTPDigits))
	q.Set("period", strconv.Itoa(int(TOTPPeriod/time.Second)))
	return "otpauth://totp/" + label + "?" + q.Encode()
}

// TOTPStep returns the RFC 6238 time step T of t.
func TOTPStep(t time.Time) int64 { return floorDiv(t.Unix(), int64(TOTPPeriod/time.Second)) }

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// TOTPCode returns the code for step (RFC 4226 HOTP with the step as the
// counter, truncated to TOTPDigits).
func TOTPCode(secret []byte, step int64) string {
	var b [TOTPDigits]byte
	return string(appendHOTP(b[:0], hmac.New(sha1.New, secret), step))
}

// appendHOTP appends the code for counter; mac is an HMAC-SHA-1 keyed with
// the secret, reset here so one can serve several counters.
func appendHOTP(dst []byte, mac hash.Hash, counter int64) []byte {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(counter))
	mac.Reset()
	mac.Write(msg[:])
	var sum [sha1.Size]byte
	h := mac.Sum(sum[:0])
	off := h[len(h)-1] & 0x0f
	bin := binary.BigEndian.Uint32(h[off:off+4]) & 0x7fffffff
	code := bin % 1_000_000 // 10^TOTPDigits
	var digits [TOTPDigits]byte
	for i := TOTPDigits - 1; i >= 0; i-- {
		digits[i] = byte('0' + code%10)
		code /= 10
	}
	return append(dst, digits[:]...)
}

// ValidateTOTP checks code against the steps around now (one before, the
// current one, one after) and returns the step it matched. Every candidate
// is computed and compared in constant time, so timing reveals neither
// whether nor where it matched. The caller records the step (see above).
func ValidateTOTP(secret []byte, code string, now time.Time) (step int64, err error) {
	if len(code) != TOTPDigits || strings.Trim(code, "0123456789") != "" || len(secret) == 0 {
		return 0, ErrTOTPInvalid
	}
	cur := TOTPStep(now)
	mac := hmac.New(sha1.New, secret)
	matched, found := int64(0), 0
	var buf [TOTPDigits]byte
	given := []byte(code)
	for d := int64(-totpSkew); d <= totpSkew; d++ {
		ok := subtle.ConstantTimeCompare(appendHOTP(buf[:0], mac, cur+d), given)
		// Branch-free select: keep the first match.
		take := ok & (1 - found)
		matched = int64(subtle.ConstantTimeSelect(take, int(cur+d), int(matched)))
		found |= ok
	}
	if found != 1 {
		return 0, ErrTOTPInvalid
	}
	return matched, nil
}

// TOTPReplayEntry is the replay row that marks step used for the user. It
// expires once the step has left every validation window.
func TOTPReplayEntry(userID string, step int64) store.ReplayEntry {
	end := time.Unix((step+totpSkew+1)*int64(TOTPPeriod/time.Second), 0)
	return store.ReplayEntry{
		Namespace: store.NamespaceTOTP,
		Issuer:    userID,
		JTI:       strconv.FormatInt(step, 10),
		ExpiresAt: end.Add(TOTPPeriod), // one more period of margin
	}
}

// SealTOTPSecret seals secret for the user (the user's id is the aad, so a
// sealed secret cannot be copied to another user's row).
func SealTOTPSecret(box Sealer, userID string, secret []byte) ([]byte, error) {
	if len(secret) < minTOTPSecretLen || len(secret) > maxTOTPSecretLen {
		return nil, fmt.Errorf("%w: %d bytes", ErrTOTPSecret, len(secret))
	}
	return box.Seal(secret, []byte(userID))
}

// OpenTOTPSecret returns the user's TOTP secret, or nil if the user has
// none. The caller should clear it after use.
func OpenTOTPSecret(box Sealer, u store.User) ([]byte, error) {
	if u.TOTPSealed == nil {
		return nil, nil
	}
	s, err := box.Open(u.TOTPSealed, []byte(u.ID))
	if err != nil {
		return nil, fmt.Errorf("directory: TOTP secret of user %s: %w", u.ID, err)
	}
	return s, nil
}
