package store

import (
	"context"
	"fmt"
	"time"
)

// The admin API's own state (sessions of administrators who signed in at
// the IdP, short-lived admin tokens for automation) and the paged,
// filtered directory listings it serves. Like every other secret here,
// session cookies and admin tokens are stored only as SHA-256 digests.

// AdminSession is an administrator's browser session at the admin API,
// created after an OpenID Connect login at this deployment's IdP. It
// carries no role: roles follow the user's groups on every request, so a
// removed group membership or a disabled user takes effect at once.
type AdminSession struct {
	ID           string // public id, named in audit records
	SecretDigest []byte // SHA-256 of the 256-bit cookie value
	UserID       string // the IdP user (OIDC sub)
	CreatedAt    time.Time
	ExpiresAt    time.Time
	RevokedAt    time.Time // zero while not revoked
}

// AdminSessions stores admin API sessions.
type AdminSessions interface {
	// CreateAdminSession inserts s; ErrConflict if the id or digest exists.
	CreateAdminSession(ctx context.Context, s AdminSession) error
	// GetAdminSessionByDigest returns the session whose cookie has the
	// digest, or ErrNotFound. Expiry and revocation are the caller's to
	// check.
	GetAdminSessionByDigest(ctx context.Context, digest []byte) (AdminSession, error)
	// RevokeAdminSession marks the session revoked (idempotent: a revoked
	// session keeps its first RevokedAt); ErrNotFound if absent.
	RevokeAdminSession(ctx context.Context, id string, at time.Time) error
	// PruneAdminSessions deletes the sessions that expired before the
	// given time and returns how many it deleted.
	PruneAdminSessions(ctx context.Context, before time.Time) (int64, error)
}

// AdminToken is a short-lived bearer credential for the admin API, with
// exactly one role.
type AdminToken struct {
	ID           string // public id ("at_..."), named in audit records
	SecretDigest []byte // SHA-256 of the token value
	Role         string
	Description  string
	CreatedBy    string // who created it: "cli:<os user>", an admin's user id, a token id
	CreatedAt    time.Time
	ExpiresAt    time.Time
	RevokedAt    time.Time // zero while not revoked
}

// Validate checks t's invariants (the role's meaning is the admin API's).
func (t AdminToken) Validate() error {
	if err := checkID("admin token id", t.ID); err != nil {
		return err
	}
	switch {
	case len(t.SecretDigest) != 32:
		return fmt.Errorf("%w: admin token digest must be 32 bytes (SHA-256)", ErrInvalid)
	case t.Role == "" || len(t.Role) > maxGroupLen || !printableASCII(t.Role):
		return fmt.Errorf("%w: admin token role must be 1-%d printable ASCII characters", ErrInvalid, maxGroupLen)
	case t.CreatedAt.IsZero() || !t.ExpiresAt.After(t.CreatedAt):
		return fmt.Errorf("%w: admin token must expire after it is created", ErrInvalid)
	}
	if err := checkText("admin token description", t.Description, maxNameLen, false); err != nil {
		return err
	}
	return checkText("admin token creator", t.CreatedBy, maxNameLen, false)
}

// AdminTokens stores admin tokens.
type AdminTokens interface {
	// CreateAdminToken inserts t after Validate; ErrConflict if the id or
	// digest exists.
	CreateAdminToken(ctx context.Context, t AdminToken) error
	// GetAdminTokenByDigest returns the token with the digest, or
	// ErrNotFound. Expiry and revocation are the caller's to check.
	GetAdminTokenByDigest(ctx context.Context, digest []byte) (AdminToken, error)
	// GetAdminToken returns the token with the id, or ErrNotFound.
	GetAdminToken(ctx context.Context, id string) (AdminToken, error)
	// ListAdminTokens returns the tokens that had not expired at the
	// given time (revoked ones included), newest first, at most 1000.
	ListAdminTokens(ctx context.Context, now time.Time) ([]AdminToken, error)
	// RevokeAdminToken marks the token revoked (idempotent: a revoked
	// token keeps its first RevokedAt); ErrNotFound if absent.
	RevokeAdminToken(ctx context.Context, id string, at time.Time) error
	// PruneAdminTokens deletes the tokens that expired before the given
	// time and returns how many it deleted.
	PruneAdminTokens(ctx context.Context, before time.Time) (int64, error)
}

// --- Directory listings ---

// Listings return one page of a directory aggregate in a fixed order
// chosen from a short list of sort keys: every key maps to one column in
// the backend, and every filter is a typed value bound as a parameter, so
// no caller input ever becomes SQL text. Pages continue after a Position
// (keyset pagination): the sort value and the unique key of the last row
// seen.

// Sort keys. Each listing accepts the ones its doc comment names.
const (
	SortName     = "name"    // users: username (case-insensitively); groups, apps, resources: name
	SortID       = "id"      // apps: client_id; resources: URI; groups: name
	SortCreated  = "created" // creation time
	SortUpdated  = "updated" // last update (users, groups, resources)
	maxListLimit = 1000
)

// Position is where a page starts: after the row whose sort value is Time
// (time sort keys) or Text (text sort keys) and whose unique key is ID.
type Position struct {
	Time time.Time
	Text string
	ID   string
}

// Page is the order and window of a listing.
type Page struct {
	// Sort is one of the listing's sort keys; "" is the listing's first.
	Sort string
	// Desc reverses the order.
	Desc bool
	// After, when set, starts the page after that row.
	After *Position
	// Limit is the most rows returned: 1 to 1000; 0 means 100.
	Limit int
}

// CheckPage reports whether p is valid for a listing with the given sort
// keys, and returns the limit to apply.
func CheckPage(p Page, sorts ...string) (int, error) {
	if p.Sort != "" {
		ok := false
		for _, s := range sorts {
			ok = ok || s == p.Sort
		}
		if !ok {
			return 0, fmt.Errorf("%w: unknown sort key %q", ErrInvalid, truncate(p.Sort))
		}
	}
	switch {
	case p.Limit < 0 || p.Limit > maxListLimit:
		return 0, fmt.Errorf("%w: page limit must be 0 to %d", ErrInvalid, maxListLimit)
	case p.Limit == 0:
		return 100, nil
	}
	return p.Limit, nil
}

// Tristate is a boolean filter that may be unset.
type Tristate int8

// Tristate values.
const (
	Any Tristate = iota
	Yes
	No
)

// UserQuery selects users. Sort keys: SortName (username), SortCreated,
// SortUpdated. Position.ID is the user id.
type UserQuery struct {
	Disabled Tristate
	Group    string // members of this group only
	Page
}

// AppQuery selects requesting apps (clients in RealmIdP). Sort keys:
// SortID (client_id), SortName, SortCreated. Position.ID is the
// client_id.
type AppQuery struct {
	Disabled Tristate
	Page
}

// GroupQuery selects groups. Sort keys: SortName, SortCreated,
// SortUpdated. Position.ID is the group name.
type GroupQuery struct {
	Page
}

// ResourceQuery selects resources. Sort keys: SortID (URI), SortName,
// SortCreated, SortUpdated. Position.ID is the URI.
type ResourceQuery struct {
	AuthServer string // governed by this authorization server only
	Page
}

// DirectoryLists pages through the directory.
type DirectoryLists interface {
	ListUsers(ctx context.Context, q UserQuery) ([]User, error)
	ListApps(ctx context.Context, q AppQuery) ([]Client, error)
	ListGroupsPage(ctx context.Context, q GroupQuery) ([]Group, error)
	ListResources(ctx context.Context, q ResourceQuery) ([]Resource, error)
	// AppClientIDs returns the client_id the app holds at each
	// authorization server, keyed by issuer.
	AppClientIDs(ctx context.Context, appID string) (map[string]string, error)
}
