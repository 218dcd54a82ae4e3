package directory

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Password errors.
var (
	// ErrPasswordMismatch means the password does not match the hash. It
	// is also the answer for a password too long to check.
	ErrPasswordMismatch = errors.New("directory: password does not match")
	// ErrPasswordPolicy means a new password is refused (length, encoding).
	ErrPasswordPolicy = errors.New("directory: password not acceptable")
	// ErrPasswordHash means a stored hash is malformed, of an unsupported
	// kind, or has parameters beyond the sanity limits.
	ErrPasswordHash = errors.New("directory: unsupported or malformed password hash")
)

// Password length rules, in bytes. The upper bound keeps hashing cost
// independent of attacker-chosen input size.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 1024
	// bcryptMaxLen is where bcrypt silently truncates; longer passwords
	// never match a bcrypt hash, so two passwords sharing 72 bytes are not
	// interchangeable.
	bcryptMaxLen = 72
)

// Argon2Params are argon2id parameters (RFC 9106).
type Argon2Params struct {
	MemoryKiB   uint32 // m
	Iterations  uint32 // t
	Parallelism uint8  // p
	SaltLen     uint32 // bytes
	KeyLen      uint32 // bytes
}

// DefaultArgon2Params is the OWASP recommendation m=19 MiB, t=2, p=1: about
// 20-30 ms of one core here, so a 2-core server can check ~60 passwords/s
// while leaving room for token traffic, and an offline attacker pays the
// memory per guess.
func DefaultArgon2Params() Argon2Params {
	return Argon2Params{MemoryKiB: 19456, Iterations: 2, Parallelism: 1, SaltLen: 16, KeyLen: 32}
}

// Sanity limits for configured parameters and for those read from a stored
// hash: a hash with m = 4 GiB must not turn one login into an outage.
const (
	maxArgonMemoryKiB   = 256 << 10 // 256 MiB
	maxArgonIterations  = 16
	maxArgonParallelism = 16
	minArgonSaltLen     = 8 // RFC 9106 minimum for a stored hash
	maxArgonSaltLen     = 64
	minArgonKeyLen      = 16
	maxArgonKeyLen      = 64
	minBcryptCost       = 4
	maxBcryptCost       = 14
)

func (p Argon2Params) check() error {
	switch {
	case p.Parallelism < 1 || p.Parallelism > maxArgonParallelism:
		return fmt.Errorf("parallelism %d is outside 1-%d", p.Parallelism, maxArgonParallelism)
	case p.MemoryKiB < 8*uint32(p.Parallelism) || p.MemoryKiB > maxArgonMemoryKiB:
		return fmt.Errorf("memory %d KiB is outside %d-%d KiB", p.MemoryKiB, 8*uint32(p.Parallelism), maxArgonMemoryKiB)
	case p.Iterations < 1 || p.Iterations > maxArgonIterations:
		return fmt.Errorf("iterations %d is outside 1-%d", p.Iterations, maxArgonIterations)
	case p.SaltLen < minArgonSaltLen || p.SaltLen > maxArgonSaltLen:
		return fmt.Errorf("salt length %d is outside %d-%d bytes", p.SaltLen, minArgonSaltLen, maxArgonSaltLen)
	case p.KeyLen < minArgonKeyLen || p.KeyLen > maxArgonKeyLen:
		return fmt.Errorf("key length %d is outside %d-%d bytes", p.KeyLen, minArgonKeyLen, maxArgonKeyLen)
	}
	return nil
}

// PasswordHasher hashes new passwords with fixed argon2id parameters and
// says which stored hashes should be upgraded. Checking needs no hasher:
// a hash carries its own parameters. Safe for concurrent use.
type PasswordHasher struct {
	p     Argon2Params
	dummy func() string
}

// NewPasswordHasher validates p (nil means DefaultArgon2Params). A salt
// shorter than 16 bytes is refused for new hashes.
func NewPasswordHasher(p *Argon2Params) (*PasswordHasher, error) {
	params := DefaultArgon2Params()
	if p != nil {
		params = *p
	}
	if err := params.check(); err != nil {
		return nil, fmt.Errorf("directory: argon2id parameters: %s", err)
	}
	if params.SaltLen < 16 {
		return nil, fmt.Errorf("directory: argon2id parameters: salt length %d is below 16 bytes", params.SaltLen)
	}
	h := &PasswordHasher{p: params}
	h.dummy = sync.OnceValue(func() string {
		s, err := h.hash([]byte("openxaa dummy password for timing"))
		if err != nil {
			return "" // CheckPassword then fails fast; only timing suffers
		}
		return s
	})
	return h, nil
}

// Params returns the hasher's parameters.
func (h *PasswordHasher) Params() Argon2Params { return h.p }

// HashPassword returns the PHC string of password:
// $argon2id$v=19$m=...,t=...,p=...$salt$hash (unpadded standard base64).
// Passwords must be valid UTF-8 of 8 to 1024 bytes; no other composition
// rule is imposed (NIST SP 800-63B).
func (h *PasswordHasher) HashPassword(password string) (string, error) {
	switch {
	case len(password) < MinPasswordLen:
		return "", fmt.Errorf("%w: shorter than %d bytes", ErrPasswordPolicy, MinPasswordLen)
	case len(password) > MaxPasswordLen:
		return "", fmt.Errorf("%w: longer than %d bytes", ErrPasswordPolicy, MaxPasswordLen)
	case !utf8.ValidString(password):
		return "", fmt.Errorf("%w: not valid UTF-8", ErrPasswordPolicy)
	}
	return h.hash([]byte(password))
}

func (h *PasswordHasher) hash(password []byte) (string, error) {
	salt := make([]byte, h.p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("directory: salt: %w", err)
	}
	key := argon2.IDKey(password, salt, h.p.Iterations, h.p.MemoryKiB, h.p.Parallelism, h.p.KeyLen)
	return encodeArgon2(h.p, salt, key), nil
}

// NeedsRehash reports whether a stored hash should be replaced by a fresh
// HashPassword after the next successful login: it is bcrypt, another
// argon2 variant, malformed, or argon2id with other parameters.
func (h *PasswordHasher) NeedsRehash(encoded string) bool {
	p, _, _, err := parseArgon2id(encoded)
	return err != nil || p != h.p
}

// DummyCheck costs what CheckPassword costs for a hash made by h, and
// always fails. Call it when the user does not exist, so that response
// time does not tell which usernames do.
func (h *PasswordHasher) DummyCheck(password string) {
	_ = CheckPassword(h.dummy(), password)
}

// CheckPassword reports whether password matches encoded, an argon2id PHC
// string or a bcrypt hash ($2a$, $2b$, $2y$). It returns nil on a match,
// ErrPasswordMismatch otherwise, or ErrPasswordHash when encoded cannot be
// used (an empty hash included: such a user has no password). The
// comparison is constant-time in the derived key.
func CheckPassword(encoded, password string) error {
	if len(password) > MaxPasswordLen {
		return ErrPasswordMismatch
	}
	switch {
	case strings.HasPrefix(encoded, "$argon2id$"):
		p, salt, want, err := parseArgon2id(encoded)
		if err != nil {
			return err
		}
		got := argon2.IDKey([]byte(password), salt, p.Iterations, p.MemoryKiB, p.Parallelism, p.KeyLen)
		if subtle.ConstantTimeCompare(got, want) != 1 {
			return ErrPasswordMismatch
		}
		return nil
	case isBcrypt(encoded):
		cost, err := bcrypt.Cost([]byte(encoded))
		if err != nil || cost < minBcryptCost || cost > maxBcryptCost {
			return fmt.Errorf("%w: bcrypt hash unreadable or cost outside %d-%d", ErrPasswordHash, minBcryptCost, maxBcryptCost)
		}
		if len(password) > bcryptMaxLen {
			return ErrPasswordMismatch
		}
		switch err := bcrypt.CompareHashAndPassword([]byte(encoded), []byte(password)); {
		case err == nil:
			return nil
		case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
			return ErrPasswordMismatch
		default:
			return fmt.Errorf("%w: %v", ErrPasswordHash, err)
		}
	default:
		return fmt.Errorf("%w: not an argon2id or bcrypt hash", ErrPasswordHash)
	}
}

// CheckPasswordHash reports whether encoded is a hash CheckPassword can
// use, without checking any password; the seed validates hashes with it.
func CheckPasswordHash(encoded string) error {
	if strings.HasPrefix(encoded, "$argon2id$") {
		_, _, _, err := parseArgon2id(encoded)
		return err
	}
	if isBcrypt(encoded) {
		cost, err := bcrypt.Cost([]byte(encoded))
		if err != nil || cost < minBcryptCost || cost > maxBcryptCost || len(encoded) != 60 {
			return fmt.Errorf("%w: bcrypt hash unreadable or cost outside %d-%d", ErrPasswordHash, minBcryptCost, maxBcryptCost)
		}
		return nil
	}
	return fmt.Errorf("%w: not an argon2id ($argon2id$...) or bcrypt ($2b$...) hash", ErrPasswordHash)
}

func isBcrypt(s string) bool {
	return strings.HasPrefix(s, "$2a$") || strings.HasPrefix(s, "$2b$") || strings.HasPrefix(s, "$2y$")
}

// b64 is PHC's base64: standard alphabet, no padding, canonical trailing
// bits (Strict), so each hash has exactly one spelling.
func b64() *base64.Encoding { return base64.RawStdEncoding.Strict() }

func encodeArgon2(p Argon2Params, salt, key []byte) string {
	return "$argon2id$v=19$m=" + strconv.FormatUint(uint64(p.MemoryKiB), 10) +
		",t=" + strconv.FormatUint(uint64(p.Iterations), 10) +
		",p=" + strconv.FormatUint(uint64(p.Parallelism), 10) +
		"$" + b64().EncodeToString(salt) + "$" + b64().EncodeToString(key)
}

// parseArgon2id reads exactly the form encodeArgon2 writes: version 19,
// parameters m, t, p in that order as decimal without leading zeros, and
// no optional keyid/data fields.
func parseArgon2id(s string) (p Argon2Params, salt, key []byte, err error) {
	bad := func(why string) (Argon2Params, []byte, []byte, error) {
		return Argon2Params{}, nil, nil, fmt.Errorf("%w: argon2id: %s", ErrPasswordHash, why)
	}
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return bad("want $argon2id$v=19$m=..,t=..,p=..$salt$hash")
	}
	if parts[2] != "v=19" {
		return bad("unsupported version")
	}
	var vals [3]uint64
	fields := strings.Split(parts[3], ",")
	if len(fields) != 3 {
		return bad("want parameters m, t and p")
	}
	for i, name := range []string{"m=", "t=", "p="} {
		num, ok := strings.CutPrefix(fields[i], name)
		if !ok || num == "" || len(num) > 10 || (len(num) > 1 && num[0] == '0') || strings.Trim(num, "0123456789") != "" {
			return bad("malformed parameter " + strconv.Quote(fields[i]))
		}
		vals[i], _ = strconv.ParseUint(num, 10, 32)
	}
	if vals[2] > 255 {
		return bad("parallelism out of range")
	}
	if salt, err = b64().DecodeString(parts[4]); err != nil {
		return bad("salt is not unpadded base64")
	}
	if key, err = b64().DecodeString(parts[5]); err != nil {
		return bad("hash is not unpadded base64")
	}
	p = Argon2Params{MemoryKiB: uint32(vals[0]), Iterations: uint32(vals[1]), Parallelism: uint8(vals[2]),
		SaltLen: uint32(len(salt)), KeyLen: uint32(len(key))}
	if err := p.check(); err != nil {
		return bad(err.Error())
	}
	return p, salt, key, nil
}
