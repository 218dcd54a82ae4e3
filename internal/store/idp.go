package store

import (
	"context"
	"time"
)

// The IdP's single sign-on state: browser sessions, authorization codes and
// refresh tokens. Secrets (session cookies, codes, refresh tokens) are
// stored only as SHA-256 digests, so a database leak yields nothing a
// browser or a client could present.

// Session is a browser login session at the IdP.
type Session struct {
	// ID is the public session id: the ID token's sid. It is not the
	// cookie value, so an ID token never carries a login credential.
	ID string
	// SecretDigest is the SHA-256 of the 256-bit cookie value.
	SecretDigest []byte
	UserID       string
	AuthTime     time.Time
	ACR          string
	AMR          []string
	CreatedAt    time.Time
	ExpiresAt    time.Time
	RevokedAt    time.Time // zero while not revoked
}

// Sessions stores browser login sessions.
type Sessions interface {
	// CreateSession inserts s; ErrConflict if the id or digest exists.
	CreateSession(ctx context.Context, s Session) error
	// GetSessionByDigest returns the session whose cookie has the digest,
	// or ErrNotFound. Expiry and revocation are the caller's to check.
	GetSessionByDigest(ctx context.Context, digest []byte) (Session, error)
	// RevokeSession marks the session revoked (idempotent); ErrNotFound if
	// absent.
	RevokeSession(ctx context.Context, id string, at time.Time) error
	// PruneSessions deletes the sessions whose ExpiresAt is before the
	// given time, revoked or not, and returns how many it deleted.
	PruneSessions(ctx context.Context, before time.Time) (int64, error)
}

// AuthCode is an authorization code (RFC 6749 §4.1) with everything the
// token endpoint needs to redeem it.
type AuthCode struct {
	Digest        []byte // SHA-256 of the code
	ClientID      string
	RedirectURI   string // exactly as sent to /authorize
	UserID        string
	SessionID     string
	Scope         string
	Nonce         string
	CodeChallenge string // S256 only
	AuthTime      time.Time
	ACR           string
	AMR           []string
	IssuedAt      time.Time
	ExpiresAt     time.Time
	ConsumedAt    time.Time // zero until redeemed
	// What the redemption issued, recorded in the redeeming transaction so
	// that a second redemption can revoke it (RFC 6749 §4.1.2).
	RefreshFamily  string
	IDTokenJTI     string
	AccessTokenJTI string
}

// AuthCodes stores authorization codes.
type AuthCodes interface {
	// CreateAuthCode inserts c; ErrConflict if the digest exists.
	CreateAuthCode(ctx context.Context, c AuthCode) error
	// ConsumeAuthCode marks the code redeemed at the given time and returns
	// it. Exactly one concurrent caller succeeds. A code that was already
	// redeemed yields the stored row (with what its first redemption
	// issued) and ErrReplay; an unknown code ErrNotFound.
	ConsumeAuthCode(ctx context.Context, digest []byte, at time.Time) (AuthCode, error)
	// RecordAuthCodeIssue records what the redemption of the code issued;
	// ErrNotFound if absent.
	RecordAuthCodeIssue(ctx context.Context, digest []byte, refreshFamily, idTokenJTI, accessTokenJTI string) error
	// PruneAuthCodes deletes the codes whose ExpiresAt is before the given
	// time and returns how many it deleted. A pruned code presented again
	// is unknown, no longer a reuse that revokes its first redemption's
	// tokens, so callers keep codes for a while past their expiry.
	PruneAuthCodes(ctx context.Context, before time.Time) (int64, error)
}

// RefreshToken is one refresh token of a rotation family. A family starts
// at an authorization-code redemption; each refresh supersedes the
// presented token with a new one in the same family.
type RefreshToken struct {
	Digest    []byte // SHA-256 of the token
	FamilyID  string
	ClientID  string
	UserID    string
	SessionID string
	Scope     string
	AuthTime  time.Time
	ACR       string
	AMR       []string
	IssuedAt  time.Time
	// ExpiresAt is the family's absolute end: rotation never extends it.
	ExpiresAt    time.Time
	SupersededAt time.Time // zero until rotated
	RevokedAt    time.Time // zero until its family is revoked
}

// RefreshTokens stores refresh tokens.
type RefreshTokens interface {
	// CreateRefreshToken inserts t; ErrConflict if the digest exists.
	CreateRefreshToken(ctx context.Context, t RefreshToken) error
	// GetRefreshToken returns the token with the digest, or ErrNotFound.
	GetRefreshToken(ctx context.Context, digest []byte) (RefreshToken, error)
	// RotateRefreshToken marks the token with the digest superseded at the
	// given time and inserts next, atomically. Exactly one concurrent
	// caller succeeds; the token being already superseded or revoked is
	// ErrReplay, its absence ErrNotFound.
	RotateRefreshToken(ctx context.Context, digest []byte, next RefreshToken, at time.Time) error
	// RevokeRefreshFamily revokes every token of the family not yet
	// revoked and returns how many it revoked.
	RevokeRefreshFamily(ctx context.Context, familyID string, at time.Time) (int64, error)
	// PruneRefreshTokens deletes the tokens whose ExpiresAt is before the
	// given time and returns how many it deleted. ExpiresAt is the
	// family's end, so a family goes as a whole, and the superseded tokens
	// of a live family stay to reveal their reuse.
	PruneRefreshTokens(ctx context.Context, before time.Time) (int64, error)
}
