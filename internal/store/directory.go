package store

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// The directory: who the users are, which groups they are in, which apps
// may ask for access to which resources, and on whose authority. The IdP's
// login, policy and token exchange read it; `xaa seed` and the admin API
// write it.

// ErrInvalid means a value breaks a domain invariant checked by a Validate
// method; the message says which. Backends return it before writing.
var ErrInvalid = errors.New("store: invalid value")

// RealmIdP is the store.Client realm of requesting apps: the OAuth clients
// of this deployment's IdP.
const RealmIdP = "idp"

// NamespaceTOTP is the Replay namespace of used TOTP time steps, keyed by
// user id (Issuer) and step number (JTI), so that a one-time password is
// accepted once (RFC 6238 §5.2).
const NamespaceTOTP = "totp"

// Lifetime rules of a connection (docs/decisions.md, "Lifetimes").
const (
	DefaultIDJAGLifetime       = 300 * time.Second
	MaxIDJAGLifetime           = 600 * time.Second // the AS refuses exp - iat beyond this
	DefaultAccessTokenLifetime = 300 * time.Second
	MaxAccessTokenLifetime     = 3600 * time.Second
)

// Field size limits. They keep rows small and error messages short; none is
// near what a real directory needs.
const (
	maxIDLen          = 255
	maxUsernameLen    = 128
	maxEmailLen       = 254
	maxNameLen        = 256
	maxTextLen        = 4096
	maxHashLen        = 512
	maxSealedLen      = 1024
	maxGroupLen       = 64
	maxScopeLen       = 128
	maxScopes         = 256
	maxACRLen         = 256
	maxGroupsPerConn  = 256
	maxStepUpPerConn  = 256
	maxAppsPerAuthSrv = 10000
)

// NewUserID returns a fresh user id: 128 random bits, lowercase base32,
// prefixed "u_". It becomes the OIDC sub, so it is opaque (no username or
// email a relying party could mistake for a stable key) and never reused:
// users are disabled, not deleted.
func NewUserID() (string, error) { return newID("u_") }

// NewConnectionID returns a fresh connection id ("c_" + 128 random bits).
func NewConnectionID() (string, error) { return newID("c_") }

func newID(prefix string) (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("store: generate id: %w", err)
	}
	return prefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])), nil
}

// --- Users ---

// User is a person who signs in at the IdP.
type User struct {
	// ID is the stable, opaque subject identifier (OIDC sub). See NewUserID.
	ID string
	// Username is what the person types to sign in: 1-128 ASCII letters,
	// digits and ". _ @ + -", starting with a letter or digit. Unique
	// without regard to case; stored and shown as written.
	Username    string
	Email       string // optional
	DisplayName string // optional
	// PasswordHash is a PHC string ($argon2id$...) or a bcrypt hash;
	// empty means the user cannot sign in with a password.
	PasswordHash string
	// TOTPSealed is the TOTP secret sealed with a keyring.SecretBox; nil
	// means the user has no second factor enrolled.
	TOTPSealed []byte
	Disabled   bool
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// UsernameKey is the form under which usernames are unique and looked up.
// Usernames are ASCII, so folding is plain ASCII lowercasing: no Unicode
// case mapping (the Kelvin sign, dotless i) can make two names collide.
func UsernameKey(username string) string { return strings.ToLower(username) }

// Validate checks u's invariants.
func (u User) Validate() error {
	if err := checkID("user id", u.ID); err != nil {
		return err
	}
	if err := CheckUsername(u.Username); err != nil {
		return err
	}
	if u.Email != "" {
		if err := checkEmail(u.Email); err != nil {
			return err
		}
	}
	if err := checkText("display name", u.DisplayName, maxNameLen, false); err != nil {
		return err
	}
	switch {
	case u.PasswordHash != "" && (len(u.PasswordHash) > maxHashLen || u.PasswordHash[0] != '$' || !printableASCII(u.PasswordHash)):
		return fmt.Errorf("%w: password hash is not a PHC or bcrypt string", ErrInvalid)
	case u.TOTPSealed != nil && (len(u.TOTPSealed) == 0 || len(u.TOTPSealed) > maxSealedLen):
		return fmt.Errorf("%w: sealed TOTP secret must be nil or 1-%d bytes", ErrInvalid, maxSealedLen)
	case u.CreatedAt.IsZero() || u.UpdatedAt.IsZero():
		return fmt.Errorf("%w: user needs creation and update times", ErrInvalid)
	}
	return nil
}

// CheckUsername reports whether s is an acceptable username.
func CheckUsername(s string) error {
	if s == "" || len(s) > maxUsernameLen {
		return fmt.Errorf("%w: username must be 1-%d characters", ErrInvalid, maxUsernameLen)
	}
	if !isAlnum(s[0]) {
		return fmt.Errorf("%w: username %q must start with a letter or digit", ErrInvalid, s)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && strings.IndexByte("._@+-", c) < 0 {
			return fmt.Errorf("%w: username %q may hold only ASCII letters, digits and . _ @ + -", ErrInvalid, truncate(s))
		}
	}
	return nil
}

// Users stores the IdP's users. There is no delete: a user is disabled, so
// that an id (a sub that relying parties may have stored) is never reused.
type Users interface {
	// CreateUser inserts u; ErrConflict if the id or the username (in any
	// case) is taken.
	CreateUser(ctx context.Context, u User) error
	// GetUser returns the user with the id, or ErrNotFound.
	GetUser(ctx context.Context, id string) (User, error)
	// GetUserByUsername finds a user by username, ignoring case, or
	// ErrNotFound.
	GetUserByUsername(ctx context.Context, username string) (User, error)
	// UpdateUser atomically reads the user, applies fn and writes the
	// result; ErrNotFound if absent, ErrConflict if the new username is
	// taken. ID and CreatedAt cannot change.
	UpdateUser(ctx context.Context, id string, fn func(User) (User, error)) error
}

// --- Groups ---

// Group is a named set of users; connections grant scopes to groups.
type Group struct {
	// Name: 1-64 lowercase ASCII letters, digits and ". _ : -", starting
	// with a letter or digit. Lowercase only, so "Eng" and "eng" can never
	// be two groups.
	Name        string
	Description string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Validate checks g's invariants.
func (g Group) Validate() error {
	if err := CheckGroupName(g.Name); err != nil {
		return err
	}
	if err := checkText("group description", g.Description, maxTextLen, true); err != nil {
		return err
	}
	if g.CreatedAt.IsZero() || g.UpdatedAt.IsZero() {
		return fmt.Errorf("%w: group needs creation and update times", ErrInvalid)
	}
	return nil
}

// CheckGroupName reports whether s is an acceptable group name.
func CheckGroupName(s string) error {
	if s == "" || len(s) > maxGroupLen {
		return fmt.Errorf("%w: group name must be 1-%d characters", ErrInvalid, maxGroupLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		lowerAlnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !lowerAlnum && (i == 0 || strings.IndexByte("._:-", c) < 0) {
			return fmt.Errorf("%w: group name %q may hold only lowercase letters, digits and . _ : - (starting with a letter or digit)", ErrInvalid, truncate(s))
		}
	}
	return nil
}

// Groups stores groups and their members.
type Groups interface {
	// CreateGroup inserts g; ErrConflict if the name exists.
	CreateGroup(ctx context.Context, g Group) error
	// UpdateGroup atomically reads the group, applies fn and writes the
	// result; ErrNotFound if absent. Name and CreatedAt cannot change.
	UpdateGroup(ctx context.Context, name string, fn func(Group) (Group, error)) error
	// ListGroups returns every group, by name.
	ListGroups(ctx context.Context) ([]Group, error)
	// AddMember puts the user in the group; ErrNotFound if either does not
	// exist, ErrConflict if the user already is a member.
	AddMember(ctx context.Context, group, userID string) error
	// RemoveMember takes the user out of the group; ErrNotFound if the
	// user was not a member.
	RemoveMember(ctx context.Context, group, userID string) error
	// UserGroups returns the names of the user's groups, sorted; empty
	// (not an error) for an unknown user.
	UserGroups(ctx context.Context, userID string) ([]string, error)
}

// --- Requesting apps ---

// Requesting apps are the IdP's OAuth clients: store.Client rows in realm
// RealmIdP. The directory adds only what the seed and admin need to change
// one in place.

// ClientUpdater changes registered clients.
type ClientUpdater interface {
	// UpdateClient atomically reads the client, applies fn and writes the
	// result; ErrNotFound if absent. Realm, ID and CreatedAt cannot change.
	UpdateClient(ctx context.Context, realm, id string, fn func(Client) (Client, error)) error
}

// --- Resource authorization servers ---

// AuthServer is a resource authorization server: the audience of the
// ID-JAGs minted for the resources it governs.
type AuthServer struct {
	// Issuer is the AS's issuer identifier, exactly as the ID-JAG's aud
	// carries it. It must already be in canonical form (CanonicalResource
	// returns it unchanged), so that one AS cannot be registered twice
	// under spellings that differ only in host case or default port.
	Issuer string
	Name   string
	// ClientIDs maps a requesting app's client_id at the IdP to the
	// client_id the same app holds at this AS (the ID-JAG's client_id
	// claim). Two apps never share a client_id at one AS.
	ClientIDs map[string]string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Validate checks a's invariants.
func (a AuthServer) Validate() error {
	if err := checkCanonical("authorization server issuer", a.Issuer); err != nil {
		return err
	}
	if err := checkText("authorization server name", a.Name, maxNameLen, false); err != nil {
		return err
	}
	if len(a.ClientIDs) > maxAppsPerAuthSrv {
		return fmt.Errorf("%w: more than %d client ids at one authorization server", ErrInvalid, maxAppsPerAuthSrv)
	}
	holder := make(map[string]string, len(a.ClientIDs))
	for app, there := range a.ClientIDs {
		if err := checkID("app client_id", app); err != nil {
			return err
		}
		if err := checkID("client_id at the authorization server", there); err != nil {
			return err
		}
		if other, dup := holder[there]; dup {
			first, second := min(app, other), max(app, other)
			return fmt.Errorf("%w: apps %q and %q would share client_id %q at %s", ErrInvalid, first, second, there, a.Issuer)
		}
		holder[there] = app
	}
	if a.CreatedAt.IsZero() || a.UpdatedAt.IsZero() {
		return fmt.Errorf("%w: authorization server needs creation and update times", ErrInvalid)
	}
	return nil
}

// AuthServers stores resource authorization servers.
type AuthServers interface {
	// CreateAuthServer inserts a with its ClientIDs; ErrConflict if the
	// issuer exists or a client_id there is taken, ErrNotFound if an app
	// in ClientIDs is not a requesting app.
	CreateAuthServer(ctx context.Context, a AuthServer) error
	// GetAuthServer returns the AS with the issuer, or ErrNotFound.
	GetAuthServer(ctx context.Context, issuer string) (AuthServer, error)
	// ListAuthServers returns every AS, by issuer.
	ListAuthServers(ctx context.Context) ([]AuthServer, error)
	// UpdateAuthServer atomically reads the AS, applies fn and writes the
	// result, ClientIDs included (entries absent from the result are
	// removed). Issuer and CreatedAt cannot change.
	UpdateAuthServer(ctx context.Context, issuer string, fn func(AuthServer) (AuthServer, error)) error
	// SetAppClientID records the client_id the app holds at the AS,
	// replacing an earlier one; ErrNotFound if the AS or the app does not
	// exist, ErrConflict if another app holds that client_id there.
	SetAppClientID(ctx context.Context, issuer, appID, clientIDThere string) error
	// AppClientID returns the client_id the app holds at the AS, or
	// ErrNotFound.
	AppClientID(ctx context.Context, issuer, appID string) (string, error)
}

// --- Resources ---

// ResourceScope is one scope a resource understands.
type ResourceScope struct {
	Name        string // an RFC 6749 scope-token, compared exactly
	Description string // shown to admins and on consent screens
	// Sensitive marks scopes that change or reveal important data; the UI
	// flags them and admins typically attach a step-up rule.
	Sensitive bool
}

// Resource is a protected resource, typically an MCP server.
type Resource struct {
	// URI is the canonical resource indicator (CanonicalResource), unique.
	URI              string
	Name             string
	AuthServerIssuer string // the AS that governs it
	Scopes           []ResourceScope
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// Validate checks r's invariants.
func (r Resource) Validate() error {
	if err := checkCanonical("resource URI", r.URI); err != nil {
		return err
	}
	if err := checkText("resource name", r.Name, maxNameLen, false); err != nil {
		return err
	}
	if err := checkCanonical("authorization server issuer", r.AuthServerIssuer); err != nil {
		return err
	}
	if len(r.Scopes) == 0 || len(r.Scopes) > maxScopes {
		return fmt.Errorf("%w: resource %s must have 1-%d scopes", ErrInvalid, r.URI, maxScopes)
	}
	seen := make(map[string]bool, len(r.Scopes))
	for _, s := range r.Scopes {
		if err := CheckScope(s.Name); err != nil {
			return err
		}
		if seen[s.Name] {
			return fmt.Errorf("%w: resource %s lists scope %q twice", ErrInvalid, r.URI, s.Name)
		}
		seen[s.Name] = true
		if err := checkText("scope description", s.Description, maxTextLen, true); err != nil {
			return err
		}
	}
	if r.CreatedAt.IsZero() || r.UpdatedAt.IsZero() {
		return fmt.Errorf("%w: resource needs creation and update times", ErrInvalid)
	}
	return nil
}

// HasScope reports whether the resource defines the scope.
func (r Resource) HasScope(name string) bool {
	return slices.ContainsFunc(r.Scopes, func(s ResourceScope) bool { return s.Name == name })
}

// CheckScope reports whether s is an RFC 6749 §3.3 scope-token of at most
// 128 bytes.
func CheckScope(s string) error {
	if s == "" || len(s) > maxScopeLen {
		return fmt.Errorf("%w: scope must be 1-%d characters", ErrInvalid, maxScopeLen)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c == '"' || c == '\\' || c > 0x7e {
			return fmt.Errorf("%w: scope %q holds a character RFC 6749 does not allow", ErrInvalid, truncate(s))
		}
	}
	return nil
}

// Resources stores resources.
type Resources interface {
	// CreateResource inserts r; ErrConflict if the URI exists,
	// ErrNotFound if its authorization server does not.
	CreateResource(ctx context.Context, r Resource) error
	// GetResource returns the resource with the canonical URI, or
	// ErrNotFound.
	GetResource(ctx context.Context, uri string) (Resource, error)
	// ListResourcesByAuthServer returns the resources the AS governs, by
	// URI.
	ListResourcesByAuthServer(ctx context.Context, issuer string) ([]Resource, error)
	// UpdateResource atomically reads the resource, applies fn and writes
	// the result; ErrNotFound if it (or the new AS) is absent. URI and
	// CreatedAt cannot change. Removing a scope that a connection which is
	// not revoked still grants is ErrConflict: change the connection first.
	UpdateResource(ctx context.Context, uri string, fn func(Resource) (Resource, error)) error
}

// --- Connections ---

// ConnectionStatus is where a connection is in its life.
type ConnectionStatus string

// Connection states. Only an approved, unexpired connection lets the IdP
// mint. Suspension is reversible, and an expired connection (its
// recertification date passed) is approved again by recertifying it;
// denial and revocation are final (create a new connection instead), so a
// denied or revoked row is a permanent record.
const (
	ConnectionPending   ConnectionStatus = "pending"
	ConnectionApproved  ConnectionStatus = "approved"
	ConnectionDenied    ConnectionStatus = "denied"
	ConnectionSuspended ConnectionStatus = "suspended"
	ConnectionRevoked   ConnectionStatus = "revoked"
	ConnectionExpired   ConnectionStatus = "expired"
)

// Ended reports whether the status is final: denied or revoked. An ended
// connection is a record; it does not count as the app's live connection
// to the resource.
func (s ConnectionStatus) Ended() bool { return s == ConnectionDenied || s == ConnectionRevoked }

// GroupScopes grants scopes to the members of one group.
type GroupScopes struct {
	Group  string
	Scopes []string
}

// StepUpRule requires a fresher or stronger sign-in for one scope: the
// user's authentication must carry ACR (if set) and be at most MaxAge old
// (if set), else the IdP answers insufficient_user_authentication.
type StepUpRule struct {
	Scope  string
	ACR    string
	MaxAge time.Duration // whole seconds; 0 means no age limit
}

// Connection is an admin's approval for a requesting app to reach a
// resource on behalf of users: which groups get which scopes, under which
// step-up rules and token lifetimes.
type Connection struct {
	ID          string
	AppID       string // the requesting app's client_id at the IdP
	ResourceURI string
	GroupScopes []GroupScopes
	StepUp      []StepUpRule
	// IDJAGLifetime and AccessTokenLifetime are whole seconds with
	// 0 < ID-JAG <= 600 s and ID-JAG <= access token <= 3600 s; the
	// defaults are DefaultIDJAGLifetime and DefaultAccessTokenLifetime.
	IDJAGLifetime       time.Duration
	AccessTokenLifetime time.Duration
	// IncludeEmail puts the user's email into the ID-JAG (no PII by
	// default).
	IncludeEmail  bool
	Status        ConnectionStatus
	Approver      string // who approved it; required once approved
	Justification string
	// Requester is who asked for the connection ("" for one a seed
	// created).
	Requester string
	// StatusReason is the reason or note given with the latest status
	// change, e.g. why it was revoked.
	StatusReason string
	CreatedAt    time.Time
	UpdatedAt    time.Time
	ExpiresAt    time.Time // zero: never; the recertification date
	RevokedAt    time.Time // set exactly when Status is revoked
}

// Scopes returns every scope the connection grants to any group, in first
// appearance order.
func (c Connection) Scopes() []string {
	var out []string
	for _, g := range c.GroupScopes {
		for _, s := range g.Scopes {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

// Validate checks the invariants c has on its own.
func (c Connection) Validate() error {
	if err := checkID("connection id", c.ID); err != nil {
		return err
	}
	if err := checkID("app client_id", c.AppID); err != nil {
		return err
	}
	if err := checkCanonical("connection resource", c.ResourceURI); err != nil {
		return err
	}
	switch c.Status {
	case ConnectionPending, ConnectionApproved, ConnectionDenied, ConnectionSuspended, ConnectionRevoked, ConnectionExpired:
	default:
		return fmt.Errorf("%w: connection status %q is not pending, approved, denied, suspended, revoked or expired", ErrInvalid, c.Status)
	}
	if len(c.GroupScopes) == 0 && (c.Status == ConnectionApproved || c.Status == ConnectionSuspended || c.Status == ConnectionExpired) {
		return fmt.Errorf("%w: connection grants no scopes to any group; only a pending connection (or one that ended) may", ErrInvalid)
	}
	if len(c.GroupScopes) > maxGroupsPerConn || len(c.StepUp) > maxStepUpPerConn {
		return fmt.Errorf("%w: connection has too many groups or step-up rules", ErrInvalid)
	}
	groups := make(map[string]bool, len(c.GroupScopes))
	for _, g := range c.GroupScopes {
		if err := CheckGroupName(g.Group); err != nil {
			return err
		}
		if groups[g.Group] {
			return fmt.Errorf("%w: connection lists group %q twice", ErrInvalid, g.Group)
		}
		groups[g.Group] = true
		if len(g.Scopes) == 0 || len(g.Scopes) > maxScopes {
			return fmt.Errorf("%w: group %q must get 1-%d scopes", ErrInvalid, g.Group, maxScopes)
		}
		for i, s := range g.Scopes {
			if err := CheckScope(s); err != nil {
				return err
			}
			if slices.Contains(g.Scopes[:i], s) {
				return fmt.Errorf("%w: group %q lists scope %q twice", ErrInvalid, g.Group, s)
			}
		}
	}
	granted := c.Scopes()
	stepped := make(map[string]bool, len(c.StepUp))
	for _, r := range c.StepUp {
		switch {
		case !slices.Contains(granted, r.Scope):
			return fmt.Errorf("%w: step-up rule for scope %q, which the connection does not grant", ErrInvalid, r.Scope)
		case stepped[r.Scope]:
			return fmt.Errorf("%w: two step-up rules for scope %q", ErrInvalid, r.Scope)
		case r.ACR == "" && r.MaxAge == 0:
			return fmt.Errorf("%w: step-up rule for scope %q needs an acr, a max_age or both", ErrInvalid, r.Scope)
		case r.MaxAge < 0 || r.MaxAge%time.Second != 0:
			return fmt.Errorf("%w: step-up max_age for scope %q must be whole seconds, not negative", ErrInvalid, r.Scope)
		case len(r.ACR) > maxACRLen || (r.ACR != "" && !printableASCII(r.ACR)):
			return fmt.Errorf("%w: step-up acr for scope %q must be printable ASCII without spaces, at most %d bytes", ErrInvalid, r.Scope, maxACRLen)
		}
		stepped[r.Scope] = true
	}
	if err := CheckLifetimes(c.IDJAGLifetime, c.AccessTokenLifetime); err != nil {
		return err
	}
	switch {
	case c.Status == ConnectionApproved && strings.TrimSpace(c.Approver) == "":
		return fmt.Errorf("%w: an approved connection names its approver", ErrInvalid)
	case (c.Status == ConnectionRevoked) != !c.RevokedAt.IsZero():
		return fmt.Errorf("%w: revoked_at must be set exactly when the connection is revoked", ErrInvalid)
	case c.CreatedAt.IsZero() || c.UpdatedAt.IsZero():
		return fmt.Errorf("%w: connection needs creation and update times", ErrInvalid)
	case !c.ExpiresAt.IsZero() && !c.ExpiresAt.After(c.CreatedAt):
		return fmt.Errorf("%w: connection expires before it was created", ErrInvalid)
	}
	if err := checkText("approver", c.Approver, maxNameLen, false); err != nil {
		return err
	}
	if err := checkText("requester", c.Requester, maxNameLen, false); err != nil {
		return err
	}
	if err := checkText("status reason", c.StatusReason, maxTextLen, true); err != nil {
		return err
	}
	return checkText("justification", c.Justification, maxTextLen, true)
}

// ValidateFor checks c against the resource it names: every scope it
// grants must be one the resource defines. An ended (denied or revoked)
// connection is only a record and is checked on its own, since the
// resource may have moved on.
func (c Connection) ValidateFor(r Resource) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if r.URI != c.ResourceURI {
		return fmt.Errorf("%w: connection is for %s, not %s", ErrInvalid, c.ResourceURI, r.URI)
	}
	if c.Status.Ended() {
		return nil
	}
	for _, s := range c.Scopes() {
		if !r.HasScope(s) {
			return fmt.Errorf("%w: scope %q is not defined by resource %s", ErrInvalid, s, r.URI)
		}
	}
	return nil
}

// CheckLifetimes applies the lifetime rules of a connection.
func CheckLifetimes(idJAG, accessToken time.Duration) error {
	switch {
	case idJAG <= 0 || idJAG > MaxIDJAGLifetime:
		return fmt.Errorf("%w: ID-JAG lifetime %s must be more than 0 and at most %s", ErrInvalid, idJAG, MaxIDJAGLifetime)
	case accessToken < idJAG || accessToken > MaxAccessTokenLifetime:
		return fmt.Errorf("%w: access token lifetime %s must be at least the ID-JAG lifetime (%s) and at most %s",
			ErrInvalid, accessToken, idJAG, MaxAccessTokenLifetime)
	case idJAG%time.Second != 0 || accessToken%time.Second != 0:
		return fmt.Errorf("%w: lifetimes must be whole seconds", ErrInvalid)
	}
	return nil
}

// ConnectionFilter selects connections. Zero fields do not filter; ended
// (revoked or denied) connections are included only when IncludeRevoked is
// set.
type ConnectionFilter struct {
	AppID          string
	ResourceURI    string
	IncludeRevoked bool
}

// Connection sort keys of ConnectionQuery.
const (
	ConnectionSortCreated = "created"
	ConnectionSortUpdated = "updated"
	ConnectionSortExpires = "expires" // connections without a date sort last
)

// ConnectionCursor is a position in a ConnectionQuery's order: the sort
// key's value (Unix milliseconds) and the id of the last row returned.
type ConnectionCursor struct {
	Key int64
	ID  string
}

// ConnectionQuery selects one page of connections in a fixed order.
type ConnectionQuery struct {
	AppID       string
	ResourceURI string
	Status      ConnectionStatus // "" for every status
	Sort        string           // one of the ConnectionSort keys; "" means created
	Desc        bool
	Limit       int               // 0 means 50; capped at 1000
	After       *ConnectionCursor // nil: the first page
}

// ConnectionSortKey is the value of c that sort orders by, as a cursor
// holds it.
func ConnectionSortKey(c Connection, sort string) int64 {
	switch sort {
	case ConnectionSortUpdated:
		return c.UpdatedAt.UnixMilli()
	case ConnectionSortExpires:
		if c.ExpiresAt.IsZero() {
			return NoExpirySortKey
		}
		return c.ExpiresAt.UnixMilli()
	default:
		return c.CreatedAt.UnixMilli()
	}
}

// NoExpirySortKey is the expires sort key of a connection without a
// recertification date: the last millisecond of year 9999.
const NoExpirySortKey int64 = 253402300799999

// Connections stores connections. At most one connection per app and
// resource is live (not revoked and not denied); the database enforces it.
type Connections interface {
	// CreateConnection inserts c after ValidateFor against its resource;
	// ErrConflict if the id exists or the app already has a live
	// connection to the resource, ErrNotFound if the app, the resource or
	// a group does not exist.
	CreateConnection(ctx context.Context, c Connection) error
	// GetConnection returns the connection with the id, or ErrNotFound.
	GetConnection(ctx context.Context, id string) (Connection, error)
	// FindConnection returns the app's live connection to the resource,
	// or ErrNotFound.
	FindConnection(ctx context.Context, appID, resourceURI string) (Connection, error)
	// LatestConnection returns the app's live connection to the resource
	// or, when there is none, the one that ended last (revoked or denied),
	// so that a refusal can say what happened to it; ErrNotFound if the
	// app never had one.
	LatestConnection(ctx context.Context, appID, resourceURI string) (Connection, error)
	// ListConnections returns the matching connections, oldest first.
	ListConnections(ctx context.Context, f ConnectionFilter) ([]Connection, error)
	// QueryConnections returns one page of q's connections in q's order
	// (sort key, then id); ErrInvalid for an unknown sort key or status.
	QueryConnections(ctx context.Context, q ConnectionQuery) ([]Connection, error)
	// UpdateConnection atomically reads the connection, applies fn and
	// writes the result after the same checks as CreateConnection. ID,
	// AppID, ResourceURI and CreatedAt cannot change, and an ended
	// connection stays as it ended.
	UpdateConnection(ctx context.Context, id string, fn func(Connection) (Connection, error)) error
}

// --- helpers ---

func checkID(what, s string) error {
	if s == "" || len(s) > maxIDLen || !printableASCII(s) {
		return fmt.Errorf("%w: %s must be 1-%d printable ASCII characters without spaces", ErrInvalid, what, maxIDLen)
	}
	return nil
}

func checkCanonical(what, s string) error {
	c, err := CanonicalResource(s)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalid, what, err)
	}
	if c != s {
		return fmt.Errorf("%w: %s %q is not in canonical form; write %q", ErrInvalid, what, truncate(s), c)
	}
	return nil
}

func checkEmail(s string) error {
	local, domain, ok := strings.Cut(s, "@")
	if !ok || local == "" || domain == "" || strings.Contains(domain, "@") || len(s) > maxEmailLen ||
		!utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return fmt.Errorf("%w: email %q is not an address of the form local@domain", ErrInvalid, truncate(s))
	}
	return nil
}

// checkText accepts valid UTF-8 up to max bytes without control characters
// (newlines and tabs too when multiline).
func checkText(what, s string, max int, multiline bool) error {
	if len(s) > max {
		return fmt.Errorf("%w: %s is longer than %d bytes", ErrInvalid, what, max)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalid, what)
	}
	for _, r := range s {
		if unicode.IsControl(r) && !(multiline && (r == '\n' || r == '\t')) {
			return fmt.Errorf("%w: %s holds a control character", ErrInvalid, what)
		}
	}
	return nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// truncate shortens user input echoed in an error message.
func truncate(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	for i := n; i > 0; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i] + "..."
		}
	}
	return "..."
}
