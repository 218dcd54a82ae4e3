package admin

import (
	"slices"
	"time"

	"github.com/openxaa/xaa/internal/store"
)

// The JSON shapes of the API. The OpenAPI document's schemas are generated
// from these types (json tags; omitempty marks an optional member), so the
// document and the answers cannot disagree on a member's name or type.

// listPage is every listing's answer.
type listPage[T any] struct {
	Items []T `json:"items"`
	// NextCursor continues the listing; absent on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
}

func (listPage[T]) schemaName() string { return schemaNameOf(*new(T)) + "List" }

type userView struct {
	ID          string    `json:"id"`
	Username    string    `json:"username"`
	Email       string    `json:"email,omitempty"`
	DisplayName string    `json:"display_name,omitempty"`
	Disabled    bool      `json:"disabled"`
	MFAEnrolled bool      `json:"mfa_enrolled"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func (userView) schemaName() string { return "User" }

func newUserView(u store.User) userView {
	return userView{ID: u.ID, Username: u.Username, Email: u.Email, DisplayName: u.DisplayName, Disabled: u.Disabled,
		MFAEnrolled: u.TOTPSealed != nil, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
}

type userDetail struct {
	User   userView `json:"user"`
	Groups []string `json:"groups"`
	// AdminRoles are the admin API roles the user's groups map to.
	AdminRoles []string `json:"admin_roles"`
}

func (userDetail) schemaName() string { return "UserDetail" }

type groupView struct {
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func (groupView) schemaName() string { return "Group" }

func newGroupView(g store.Group) groupView {
	return groupView{Name: g.Name, Description: g.Description, CreatedAt: g.CreatedAt, UpdatedAt: g.UpdatedAt}
}

type memberView struct {
	ID       string `json:"id"`
	Username string `json:"username"`
	Disabled bool   `json:"disabled"`
}

func (memberView) schemaName() string { return "GroupMember" }

type groupDetail struct {
	Group groupView `json:"group"`
	// Members are the first members by username; MembersTruncated says
	// there are more (list them with GET /users?group=NAME).
	Members          []memberView `json:"members"`
	MembersTruncated bool         `json:"members_truncated"`
	// AdminRole is the admin API role the group maps to, if any.
	AdminRole string `json:"admin_role,omitempty"`
}

func (groupDetail) schemaName() string { return "GroupDetail" }

type appView struct {
	ClientID     string    `json:"client_id"`
	Name         string    `json:"name,omitempty"`
	AuthMethod   string    `json:"auth_method"`
	RedirectURIs []string  `json:"redirect_uris"`
	Disabled     bool      `json:"disabled"`
	CreatedAt    time.Time `json:"created_at"`
}

func (appView) schemaName() string { return "App" }

func newAppView(c store.Client) appView {
	uris := slices.Clone(c.RedirectURIs)
	if uris == nil {
		uris = []string{}
	}
	return appView{ClientID: c.ID, Name: c.Name, AuthMethod: c.AuthMethod, RedirectURIs: uris, Disabled: c.Disabled, CreatedAt: c.CreatedAt}
}

type clientIDView struct {
	AuthServer string `json:"auth_server"`
	ClientID   string `json:"client_id"`
}

func (clientIDView) schemaName() string { return "AppClientID" }

type appDetail struct {
	App appView `json:"app"`
	// ClientIDs are the client_ids the app holds at authorization servers
	// (the ID-JAG's client_id claim there).
	ClientIDs   []clientIDView   `json:"client_ids"`
	Connections []connectionView `json:"connections"`
}

func (appDetail) schemaName() string { return "AppDetail" }

type scopeView struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Sensitive   bool   `json:"sensitive"`
}

func (scopeView) schemaName() string { return "ResourceScope" }

type resourceView struct {
	URI        string      `json:"uri"`
	Name       string      `json:"name,omitempty"`
	AuthServer string      `json:"auth_server"`
	Scopes     []scopeView `json:"scopes"`
	CreatedAt  time.Time   `json:"created_at"`
	UpdatedAt  time.Time   `json:"updated_at"`
}

func (resourceView) schemaName() string { return "Resource" }

func newResourceView(r store.Resource) resourceView {
	v := resourceView{URI: r.URI, Name: r.Name, AuthServer: r.AuthServerIssuer, Scopes: []scopeView{},
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
	for _, sc := range r.Scopes {
		v.Scopes = append(v.Scopes, scopeView(sc))
	}
	return v
}

type resourceDetail struct {
	Resource    resourceView     `json:"resource"`
	Connections []connectionView `json:"connections"`
}

func (resourceDetail) schemaName() string { return "ResourceDetail" }

type groupScopesView struct {
	Group  string   `json:"group"`
	Scopes []string `json:"scopes"`
}

func (groupScopesView) schemaName() string { return "GroupScopes" }

type stepUpView struct {
	Scope string `json:"scope"`
	ACR   string `json:"acr,omitempty"`
	// MaxAge is in seconds; absent means no age limit.
	MaxAge int64 `json:"max_age,omitempty"`
}

func (stepUpView) schemaName() string { return "StepUpRule" }

type connectionView struct {
	ID       string            `json:"id"`
	App      string            `json:"app"`
	Resource string            `json:"resource"`
	Status   string            `json:"status"`
	Groups   []groupScopesView `json:"groups"`
	StepUp   []stepUpView      `json:"step_up"`
	// Lifetimes in seconds.
	IDJAGLifetime       int64      `json:"id_jag_lifetime"`
	AccessTokenLifetime int64      `json:"access_token_lifetime"`
	IncludeEmail        bool       `json:"include_email"`
	Requester           string     `json:"requester,omitempty"`
	Approver            string     `json:"approver,omitempty"`
	Justification       string     `json:"justification,omitempty"`
	StatusReason        string     `json:"status_reason,omitempty"`
	CreatedAt           time.Time  `json:"created_at"`
	UpdatedAt           time.Time  `json:"updated_at"`
	ExpiresAt           *time.Time `json:"expires_at,omitempty"`
	RevokedAt           *time.Time `json:"revoked_at,omitempty"`
}

func (connectionView) schemaName() string { return "Connection" }

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func newConnectionView(c store.Connection) connectionView {
	v := connectionView{ID: c.ID, App: c.AppID, Resource: c.ResourceURI, Status: string(c.Status),
		Groups: []groupScopesView{}, StepUp: []stepUpView{},
		IDJAGLifetime: int64(c.IDJAGLifetime / time.Second), AccessTokenLifetime: int64(c.AccessTokenLifetime / time.Second),
		IncludeEmail: c.IncludeEmail, Requester: c.Requester, Approver: c.Approver, Justification: c.Justification,
		StatusReason: c.StatusReason, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
		ExpiresAt: optTime(c.ExpiresAt), RevokedAt: optTime(c.RevokedAt)}
	for _, g := range c.GroupScopes {
		v.Groups = append(v.Groups, groupScopesView{Group: g.Group, Scopes: slices.Clone(g.Scopes)})
	}
	for _, r := range c.StepUp {
		v.StepUp = append(v.StepUp, stepUpView{Scope: r.Scope, ACR: r.ACR, MaxAge: int64(r.MaxAge / time.Second)})
	}
	return v
}

type sessionView struct {
	// Kind is "human" (signed in at the IdP) or "token".
	Kind string `json:"kind"`
	// ID is the user id (OIDC sub) or the admin token id.
	ID    string   `json:"id"`
	Name  string   `json:"name,omitempty"`
	Roles []string `json:"roles"`
	// CSRFToken goes in the X-CSRF-Token header of every change made
	// with the session cookie; absent for tokens.
	CSRFToken string    `json:"csrf_token,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (sessionView) schemaName() string { return "Session" }

type tokenView struct {
	ID          string     `json:"id"`
	Role        string     `json:"role"`
	Description string     `json:"description,omitempty"`
	CreatedBy   string     `json:"created_by"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   time.Time  `json:"expires_at"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
}

func (tokenView) schemaName() string { return "AdminToken" }

func newTokenView(t store.AdminToken) tokenView {
	return tokenView{ID: t.ID, Role: t.Role, Description: t.Description, CreatedBy: t.CreatedBy,
		CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, RevokedAt: optTime(t.RevokedAt)}
}

type newTokenAnswer struct {
	// Token is the bearer token. It is shown once and stored only as a
	// SHA-256 digest.
	Token  string    `json:"token"`
	Detail tokenView `json:"detail"`
}

func (newTokenAnswer) schemaName() string { return "NewAdminToken" }

type doneView struct {
	// Done says what changed.
	Done string `json:"done"`
}

func (doneView) schemaName() string { return "Done" }

// --- request bodies ---

type reasonBody struct {
	// Reason is required: it goes into the ledger and the audit trail.
	Reason string `json:"reason"`
}

func (reasonBody) schemaName() string { return "ReasonRequest" }

type noteBody struct {
	Note string `json:"note,omitempty"`
}

func (noteBody) schemaName() string { return "NoteRequest" }

type emptyBody struct{}

func (emptyBody) schemaName() string { return "EmptyRequest" }

type removeMemberBody struct {
	Username string `json:"username"`
	Reason   string `json:"reason"`
}

func (removeMemberBody) schemaName() string { return "RemoveMemberRequest" }

type createTokenBody struct {
	Role string `json:"role"`
	// TTL is a Go duration such as "15m", at most "1h".
	TTL         string `json:"ttl"`
	Description string `json:"description,omitempty"`
}

func (createTokenBody) schemaName() string { return "CreateAdminTokenRequest" }
