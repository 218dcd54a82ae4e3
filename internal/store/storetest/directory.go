package storetest

import (
	"context"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/openxaa/xaa/internal/store"
)

// This file holds the directory's per-call transaction wrappers and the
// fixtures the directory tests share.

func (p perCallTx) UpdateClient(ctx context.Context, realm, id string, fn func(store.Client) (store.Client, error)) error {
	return p.s.InTx(ctx, func(tx store.Tx) error { return tx.UpdateClient(ctx, realm, id, fn) })
}

func (p perCallTx) CreateUser(ctx context.Context, u store.User) error {
	return p.s.InTx(ctx, func(tx store.Tx) error { return tx.CreateUser(ctx, u) })
}

func (p perCallTx) GetUser(ctx context.Context, id string) (u store.User, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) { u, err = tx.GetUser(ctx, id); return err })
	return u, err
}

func (p perCallTx) GetUserByUsername(ctx context.Context, username string) (u store.User, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) { u, err = tx.GetUserByUsername(ctx, username); return err })
	return u, err
}

func (p perCallTx) UpdateUser(ctx context.Context, id string, fn func(store.User) (store.User, error)) error {
	return p.s.InTx(ctx, func(tx store.Tx) error { return tx.UpdateUser(ctx, id, fn) })
}

func (p perCallTx) CreateGroup(ctx context.Context, g store.Group) error {
	return p.s.InTx(ctx, func(tx store.Tx) error { return tx.CreateGroup(ctx, g) })
}

func (p perCallTx) UpdateGroup(ctx context.Context, name string, fn func(store.Group) (store.Group, error)) error {
	return p.s.InTx(ctx, func(tx store.Tx) error { return tx.UpdateGroup(ctx, name, fn) })
}

func (p perCallTx) ListGroups(ctx context.Context) (gs []store.Group, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) { gs, err = tx.ListGroups(ctx); return err })
	return gs, err
}

func (p perCallTx) AddMember(ctx context.Context, group, userID string) error {
	return p.s.InTx(ctx, func(tx store.Tx) error { return tx.AddMember(ctx, group, userID) })
}

func (p perCallTx) RemoveMember(ctx context.Context, group, userID string) error {
	return p.s.InTx(ctx, func(tx store.Tx) error { return tx.RemoveMember(ctx, group, userID) })
}

func (p perCallTx) UserGroups(ctx context.Context, userID string) (gs []string, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) { gs, err = tx.UserGroups(ctx, userID); return err })
	return gs, err
}

func (p perCallTx) CreateAuthServer(ctx context.Context, a store.AuthServer) error {
	return p.s.InTx(ctx, func(tx store.Tx) error { return tx.CreateAuthServer(ctx, a) })
}

func (p perCallTx) GetAuthServer(ctx context.Context, issuer string) (a store.AuthServer, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) { a, err = tx.GetAuthServer(ctx, issuer); return err })
	return a, err
}

func (p perCallTx) ListAuthServers(ctx context.Context) (as []store.AuthServer, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) { as, err = tx.ListAuthServers(ctx); return err })
	return as, err
}

func (p perCallTx) UpdateAuthServer(ctx context.Context, issuer string, fn func(store.AuthServer) (store.AuthServer, error)) error {
	return p.s.InTx(ctx, func(tx store.Tx) error { return tx.UpdateAuthServer(ctx, issuer, fn) })
}

func (p perCallTx) SetAppClientID(ctx context.Context, issuer, appID, clientIDThere string) error {
	return p.s.InTx(ctx, func(tx store.Tx) error { return tx.SetAppClientID(ctx, issuer, appID, clientIDThere) })
}

func (p perCallTx) AppClientID(ctx context.Context, issuer, appID string) (id string, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) { id, err = tx.AppClientID(ctx, issuer, appID); return err })
	return id, err
}

func (p perCallTx) CreateResource(ctx context.Context, r store.Resource) error {
	return p.s.InTx(ctx, func(tx store.Tx) error { return tx.CreateResource(ctx, r) })
}

func (p perCallTx) GetResource(ctx context.Context, uri string) (r store.Resource, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) { r, err = tx.GetResource(ctx, uri); return err })
	return r, err
}

func (p perCallTx) ListResourcesByAuthServer(ctx context.Context, issuer string) (rs []store.Resource, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) { rs, err = tx.ListResourcesByAuthServer(ctx, issuer); return err })
	return rs, err
}

func (p perCallTx) UpdateResource(ctx context.Context, uri string, fn func(store.Resource) (store.Resource, error)) error {
	return p.s.InTx(ctx, func(tx store.Tx) error { return tx.UpdateResource(ctx, uri, fn) })
}

func (p perCallTx) CreateConnection(ctx context.Context, c store.Connection) error {
	return p.s.InTx(ctx, func(tx store.Tx) error { return tx.CreateConnection(ctx, c) })
}

func (p perCallTx) GetConnection(ctx context.Context, id string) (c store.Connection, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) { c, err = tx.GetConnection(ctx, id); return err })
	return c, err
}

func (p perCallTx) FindConnection(ctx context.Context, appID, resourceURI string) (c store.Connection, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) { c, err = tx.FindConnection(ctx, appID, resourceURI); return err })
	return c, err
}

func (p perCallTx) ListConnections(ctx context.Context, f store.ConnectionFilter) (cs []store.Connection, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) { cs, err = tx.ListConnections(ctx, f); return err })
	return cs, err
}

func (p perCallTx) UpdateConnection(ctx context.Context, id string, fn func(store.Connection) (store.Connection, error)) error {
	return p.s.InTx(ctx, func(tx store.Tx) error { return tx.UpdateConnection(ctx, id, fn) })
}

// --- fixtures ---

// newUser returns a valid user with a unique id and username.
func newUser() store.User {
	t := now()
	return store.User{
		ID:           newID("u"),
		Username:     newID("User"),
		Email:        "user@example.com",
		DisplayName:  "Zoë Example",
		PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
		TOTPSealed:   []byte{1, 2, 3, 4},
		CreatedAt:    t,
		UpdatedAt:    t,
	}
}

func newGroup() store.Group {
	t := now()
	return store.Group{Name: newID("grp"), Description: "A group\nof people", CreatedAt: t, UpdatedAt: t}
}

// newApp registers a requesting app (a client in the IdP realm).
func newApp(t *testing.T, s store.Tx) string {
	t.Helper()
	d := sha256.Sum256([]byte("secret"))
	c := store.Client{ID: newID("app"), Name: "App", Realm: store.RealmIdP, AuthMethod: "client_secret_basic",
		SecretDigest: d[:], CreatedAt: now()}
	noErr(t, "CreateClient", s.CreateClient(t.Context(), c))
	return c.ID
}

// newIssuer returns a unique canonical https URL on its own host.
func newIssuer(path string) string { return "https://" + newID("h") + ".example" + path }

func newAuthServer(clientIDs map[string]string) store.AuthServer {
	t := now()
	return store.AuthServer{Issuer: newIssuer("/as"), Name: "Files AS", ClientIDs: clientIDs, CreatedAt: t, UpdatedAt: t}
}

func newResource(issuer string) store.Resource {
	t := now()
	return store.Resource{
		URI: newIssuer("/mcp"), Name: "Files", AuthServerIssuer: issuer,
		Scopes: []store.ResourceScope{
			{Name: "files:read", Description: "Read files"},
			{Name: "files:write", Description: "Change files", Sensitive: true},
			{Name: "files:admin", Description: "Administer"},
		},
		CreatedAt: t, UpdatedAt: t,
	}
}

// world is an app, an AS, a resource and two groups: what a connection
// refers to.
type world struct {
	app, issuer, resource string
	staff, eng            string
}

func newWorld(t *testing.T, s store.Tx) world {
	t.Helper()
	w := world{app: newApp(t, s)}
	as := newAuthServer(map[string]string{w.app: newID("there")})
	noErr(t, "CreateAuthServer", s.CreateAuthServer(t.Context(), as))
	r := newResource(as.Issuer)
	noErr(t, "CreateResource", s.CreateResource(t.Context(), r))
	staff, eng := newGroup(), newGroup()
	noErr(t, "CreateGroup", s.CreateGroup(t.Context(), staff))
	noErr(t, "CreateGroup", s.CreateGroup(t.Context(), eng))
	w.issuer, w.resource, w.staff, w.eng = as.Issuer, r.URI, staff.Name, eng.Name
	return w
}

func (w world) connection() store.Connection {
	t := now()
	return store.Connection{
		ID:          newID("c"),
		AppID:       w.app,
		ResourceURI: w.resource,
		GroupScopes: []store.GroupScopes{
			{Group: w.staff, Scopes: []string{"files:read"}},
			{Group: w.eng, Scopes: []string{"files:read", "files:write"}},
		},
		StepUp:              []store.StepUpRule{{Scope: "files:write", ACR: "urn:openxaa:acr:mfa", MaxAge: 10 * time.Minute}},
		IDJAGLifetime:       store.DefaultIDJAGLifetime,
		AccessTokenLifetime: 900 * time.Second,
		IncludeEmail:        true,
		Status:              store.ConnectionApproved,
		Approver:            "security@example.com",
		Justification:       "Assistant reads and edits engineering docs.",
		CreatedAt:           t,
		UpdatedAt:           t,
		ExpiresAt:           t.Add(90 * 24 * time.Hour),
	}
}

// lower is strings.ToLower, named for what the tests use it for.
func lower(s string) string { return strings.ToLower(s) }
