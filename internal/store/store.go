// Package store defines OpenXAA's persistent domain types and the small,
// per-aggregate interfaces that storage backends implement.
//
// There is deliberately no single Store interface: a component asks only for
// the aggregates it uses (a token endpoint needs Replay, Tokens and Audit; the
// key manager needs SigningKeys). Backends live in subpackages; every backend
// must pass the conformance suite in storetest.
package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors shared by every backend. Callers match them with errors.Is;
// HTTP status codes and OAuth error codes are assigned at the handler edge.
var (
	// ErrNotFound means the requested row does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict means a uniqueness rule was violated (for example a
	// duplicate primary key).
	ErrConflict = errors.New("store: conflict")
	// ErrReplay means a single-use value (a jti, a code) was already recorded.
	ErrReplay = errors.New("store: already used")
	// ErrUnavailable means the database could not be reached or did not
	// answer; the caller should fail closed with a retryable error.
	ErrUnavailable = errors.New("store: unavailable")
)

// Replay namespaces. A jti is unique only within (namespace, issuer).
const (
	NamespaceIDJAG           = "id-jag"
	NamespaceClientAssertion = "client-assertion"
	NamespaceAuthCode        = "auth-code"
)

// ReplayEntry is one single-use value.
type ReplayEntry struct {
	Namespace string
	Issuer    string
	JTI       string
	// ExpiresAt is when the row may be pruned: the token's exp plus leeway.
	ExpiresAt time.Time
}

// Replay records single-use values.
type Replay interface {
	// RecordOnce stores e and returns nil if (Namespace, Issuer, JTI) was not
	// seen before, or ErrReplay if it was. Exactly one concurrent caller wins.
	RecordOnce(ctx context.Context, e ReplayEntry) error
	// PruneReplay deletes rows whose ExpiresAt is before the given time and
	// returns how many it deleted.
	PruneReplay(ctx context.Context, before time.Time) (int64, error)
}

// Token kinds recorded in the token ledger.
const (
	TokenKindIDToken     = "id_token"
	TokenKindIDJAG       = "id-jag"
	TokenKindAccessToken = "access_token"
)

// IssuedToken is the ledger row of a token this deployment issued. The token
// itself is never stored.
type IssuedToken struct {
	JTI       string
	Kind      string
	Issuer    string
	ClientID  string
	Subject   string
	Audience  string
	Resource  string
	Scope     string
	ParentJTI string // e.g. the ID-JAG an access token was minted from
	IssuedAt  time.Time
	ExpiresAt time.Time
	RevokedAt time.Time // zero while not revoked
}

// Tokens is the ledger of issued tokens.
type Tokens interface {
	// RecordToken inserts t; ErrConflict if (Issuer, JTI) exists.
	RecordToken(ctx context.Context, t IssuedToken) error
	// GetToken returns the token with the issuer and jti, or ErrNotFound.
	GetToken(ctx context.Context, issuer, jti string) (IssuedToken, error)
	// RevokeToken marks the token revoked at the given time (idempotent: an
	// already revoked token keeps its first RevokedAt); ErrNotFound if absent.
	RevokeToken(ctx context.Context, issuer, jti string, at time.Time) error
	// ListRevokedTokens returns the issuer's revoked access tokens whose
	// revocation cursor is greater than afterCursor, in cursor order, at
	// most limit (<= 0 means 100; capped at 1000), and the cursor to
	// resume from (afterCursor when nothing was returned). Cursors grow
	// in commit order: a reader that saw cursor c never later sees a new
	// revocation with a cursor <= c. A token recorded already revoked
	// (RecordToken with RevokedAt) has no cursor and is not listed.
	ListRevokedTokens(ctx context.Context, issuer string, afterCursor int64, limit int) ([]RevokedToken, int64, error)
}

// RevokedToken is one entry of the revocation list gateways poll.
type RevokedToken struct {
	JTI       string
	Resource  string
	RevokedAt time.Time
	Cursor    int64
}

// AuditEvent is one append-only audit record. Token values never appear in
// it: Data carries keyed hashes when a token must be referenced. Each event
// belongs to one stream (a hash chain of its own, see package
// internal/audit and docs/audit-schema.md). Data keys "jti" and "idjag_jti"
// are indexed, so records can be found (and traced) by token id.
type AuditEvent struct {
	ID        int64  // assigned by the store: a locator, increasing in insertion order; not hashed
	Stream    string // set by the store from Type when empty (audit.StreamOf)
	Seq       int64  // assigned by the store: 1, 2, 3, ... within the stream
	Time      time.Time
	Type      string // e.g. "token.issued", "token.denied", "key.rotated"
	Actor     string // who acted: a client_id, an admin, "system"
	Subject   string // whom it concerns, e.g. the user's sub
	ClientID  string
	Outcome   string // "allow", "deny", "error", "info"
	Rule      string // the policy rule that decided, if any
	Reason    string // a human sentence
	RequestID string
	Data      map[string]string
	PrevHash  string // hex; set by the store
	Hash      string // hex; set by the store
}

// AuditFilter selects audit events. Zero fields do not filter; set fields
// must all match, exactly (no patterns).
type AuditFilter struct {
	AfterID   int64  // events with a larger ID (a cursor over every stream)
	Stream    string // one stream only
	AfterSeq  int64  // with Stream: events of that stream after this Seq
	Type      string
	Subject   string
	ClientID  string
	Outcome   string
	JTI       string    // Data["jti"]
	ParentJTI string    // Data["idjag_jti"]: the ID-JAG an access token was redeemed from
	Since     time.Time // Time at or after
	Until     time.Time // Time before
	Limit     int       // 0 means a backend default (100); capped at 1000
}

// Audit is the append-only audit trail. Each event's Hash chains it to the
// previous event of its stream so that edits inside the chain are
// detectable.
type Audit interface {
	// AppendAudit assigns ID, Stream (if empty), Seq, PrevHash and Hash,
	// and stores the event.
	AppendAudit(ctx context.Context, e *AuditEvent) error
	// ListAudit returns events in ascending ID order, which within one
	// stream is ascending Seq order.
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, error)
}

// KeyState is a signing key's place in its rotation lifecycle.
type KeyState string

// Key states: next keys are published but not used to sign; the single
// active key signs; retiring keys are published for verification only until
// RetireAfter; retired keys are neither published nor used.
const (
	KeyNext     KeyState = "next"
	KeyActive   KeyState = "active"
	KeyRetiring KeyState = "retiring"
	KeyRetired  KeyState = "retired"
)

// SigningKey is a signing key pair. The private key is sealed (encrypted) by
// the key manager before it reaches the store.
type SigningKey struct {
	KID           string // RFC 7638 thumbprint
	Owner         string // which issuer the key belongs to, e.g. an issuer URL
	Algorithm     string // "ES256" or "EdDSA"
	State         KeyState
	PublicJWK     []byte // JSON
	SealedPrivate []byte // ciphertext; never plaintext
	CreatedAt     time.Time
	ActivatedAt   time.Time // zero until active
	RetireAfter   time.Time // zero unless retiring
}

// SigningKeys stores signing keys.
type SigningKeys interface {
	// CreateSigningKey inserts k; ErrConflict if the kid exists.
	CreateSigningKey(ctx context.Context, k SigningKey) error
	// ListSigningKeys returns the owner's keys, oldest first.
	ListSigningKeys(ctx context.Context, owner string) ([]SigningKey, error)
	// UpdateSigningKey atomically reads the key, applies fn and writes the
	// result back; ErrNotFound if absent. KID and Owner cannot change.
	UpdateSigningKey(ctx context.Context, owner, kid string, fn func(SigningKey) (SigningKey, error)) error
}

// Client is an OAuth client registered at one of this deployment's token
// endpoints. Secrets are stored only as SHA-256 digests.
type Client struct {
	ID           string
	Name         string
	Realm        string // which server it belongs to: "idp" or an authserver issuer
	AuthMethod   string // client_secret_basic, client_secret_post, private_key_jwt
	SecretDigest []byte // SHA-256 of the secret; nil for private_key_jwt
	JWKS         []byte // JSON Web Key Set for private_key_jwt; nil otherwise
	RedirectURIs []string
	Disabled     bool
	CreatedAt    time.Time
}

// Clients stores OAuth clients.
type Clients interface {
	// CreateClient inserts c; ErrConflict if (Realm, ID) exists.
	CreateClient(ctx context.Context, c Client) error
	// GetClient returns the client, or ErrNotFound.
	GetClient(ctx context.Context, realm, id string) (Client, error)
}

// Tx is the set of aggregates available inside one transaction. Everything
// written through a Tx commits together or not at all.
type Tx interface {
	Replay
	Tokens
	Fences
	TrustedIssuers
	Audit
	SigningKeys
	Clients
	ClientUpdater
	Users
	Groups
	AuthServers
	Resources
	Connections
	Sessions
	AuthCodes
	RefreshTokens
	AdminSessions
	AdminTokens
	Ledger
	SETOutbox
	RevocationPolls
}

// Transactor runs fn in one database transaction. If fn returns an error,
// or the commit fails, nothing fn wrote is kept. The commit is durable
// (synchronous) before InTx returns nil.
type Transactor interface {
	InTx(ctx context.Context, fn func(tx Tx) error) error
}

// Pinger reports whether the database answers; used by /readyz.
type Pinger interface {
	Ping(ctx context.Context) error
}
