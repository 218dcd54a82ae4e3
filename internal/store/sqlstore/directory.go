package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/openxaa/xaa/internal/store"
)

// The directory aggregates (users, groups, authorization servers,
// resources, connections). Every write validates the domain value first
// (store.ErrInvalid), checks the rows it references inside the same
// transaction (store.ErrNotFound) and reports uniqueness clashes as
// store.ErrConflict without letting the database abort an enclosing
// PostgreSQL transaction: inserts use ON CONFLICT DO NOTHING, and updates
// that could clash look first.

// lock makes a row-reading query take a row lock on PostgreSQL. SQLite
// needs none: BEGIN IMMEDIATE already holds the single write lock.
func (o *ops) lock(query string) string {
	if o.d.name == DialectPostgres {
		return query + " FOR UPDATE"
	}
	return query
}

// exists runs a SELECT 1 query and reports whether it found a row.
func (o *ops) exists(ctx context.Context, op, query string, args ...any) (bool, error) {
	var one int
	err := o.queryRow(ctx, o.r, op, query, args, &one)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	default:
		return false, err
	}
}

// queryRows runs a multi-row read on o.r and calls scan for each row.
func (o *ops) queryRows(ctx context.Context, op, query string, args []any, scan func(scanner) error) error {
	if err := checkArgs(args); err != nil {
		return fmt.Errorf("sqlstore: %s: %w", op, err)
	}
	rows, err := o.r.QueryContext(ctx, query, args...)
	if err != nil {
		return o.d.wrap(op, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			if errors.Is(err, store.ErrInvalid) || errors.Is(err, errCorrupt) {
				return err
			}
			return o.d.wrap(op, err)
		}
	}
	return o.d.wrap(op, rows.Err())
}

// errCorrupt means a stored JSON column could not be decoded.
var errCorrupt = errors.New("sqlstore: stored value is corrupt")

func immutable(what string) error {
	return fmt.Errorf("%w: the update changed the %s, which cannot change", store.ErrInvalid, what)
}

// --- Users ---

const (
	userColumns   = `id, username, email, display_name, password_hash, totp_sealed, disabled, created_at, updated_at`
	insertUserSQL = `INSERT INTO users (id, username, username_key, email, display_name, password_hash,
    totp_sealed, disabled, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING`
	selectUserSQL       = `SELECT ` + userColumns + ` FROM users WHERE id = $1`
	selectUserByNameSQL = `SELECT ` + userColumns + ` FROM users WHERE username_key = $1`
	usernameTakenSQL    = `SELECT 1 FROM users WHERE username_key = $1 AND id <> $2`
	updateUserSQL       = `UPDATE users SET username = $2, username_key = $3, email = $4, display_name = $5,
    password_hash = $6, totp_sealed = $7, disabled = $8, updated_at = $9
WHERE id = $1`
	userExistsSQL = `SELECT 1 FROM users WHERE id = $1`
)

func scanUser(s scanner) (store.User, error) {
	var u store.User
	var created, updated int64
	if err := s.Scan(&u.ID, &u.Username, &u.Email, &u.DisplayName, &u.PasswordHash, &u.TOTPSealed,
		&u.Disabled, &created, &updated); err != nil {
		return store.User{}, err
	}
	u.CreatedAt, u.UpdatedAt = fromMS(created), fromMS(updated)
	return u, nil
}

func (o *ops) CreateUser(ctx context.Context, u store.User) error {
	if err := u.Validate(); err != nil {
		return err
	}
	n, err := o.exec(ctx, "create user", insertUserSQL,
		u.ID, u.Username, store.UsernameKey(u.Username), u.Email, u.DisplayName, u.PasswordHash,
		bytesOrNull(u.TOTPSealed), u.Disabled, ms(u.CreatedAt), ms(u.UpdatedAt))
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("sqlstore: create user: %w (id or username taken)", store.ErrConflict)
	}
	return nil
}

func (o *ops) GetUser(ctx context.Context, id string) (store.User, error) {
	if err := checkText(id); err != nil {
		return store.User{}, err
	}
	u, err := scanUser(o.r.QueryRowContext(ctx, selectUserSQL, id))
	return u, o.d.wrap("get user", err)
}

// GetUserByUsername answers ErrNotFound for a string that cannot be a
// username at all, as for one that is not taken: a login form passes user
// input straight through.
func (o *ops) GetUserByUsername(ctx context.Context, username string) (store.User, error) {
	if store.CheckUsername(username) != nil {
		return store.User{}, fmt.Errorf("sqlstore: get user by username: %w", store.ErrNotFound)
	}
	u, err := scanUser(o.r.QueryRowContext(ctx, selectUserByNameSQL, store.UsernameKey(username)))
	return u, o.d.wrap("get user by username", err)
}

func (o *ops) UpdateUser(ctx context.Context, id string, fn func(store.User) (store.User, error)) error {
	if err := checkText(id); err != nil {
		return err
	}
	cur, err := scanUser(o.w.QueryRowContext(ctx, o.lock(selectUserSQL), id))
	if err != nil {
		return o.d.wrap("update user", err)
	}
	next, err := fn(cur)
	if err != nil {
		return err
	}
	switch {
	case next.ID != cur.ID:
		return immutable("user id")
	case !next.CreatedAt.Equal(cur.CreatedAt):
		return immutable("user creation time")
	}
	if err := next.Validate(); err != nil {
		return err
	}
	key := store.UsernameKey(next.Username)
	if key != store.UsernameKey(cur.Username) {
		taken, err := o.exists(ctx, "update user", usernameTakenSQL, key, id)
		if err != nil {
			return err
		}
		if taken {
			return fmt.Errorf("sqlstore: update user: %w (username %q is taken)", store.ErrConflict, next.Username)
		}
	}
	_, err = o.exec(ctx, "update user", updateUserSQL, id, next.Username, key, next.Email, next.DisplayName,
		next.PasswordHash, bytesOrNull(next.TOTPSealed), next.Disabled, ms(next.UpdatedAt))
	return err
}

// --- Groups ---

const (
	insertGroupSQL = `INSERT INTO directory_groups (name, description, created_at, updated_at)
VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`
	selectGroupSQL  = `SELECT name, description, created_at, updated_at FROM directory_groups WHERE name = $1`
	listGroupsSQL   = `SELECT name, description, created_at, updated_at FROM directory_groups ORDER BY name`
	updateGroupSQL  = `UPDATE directory_groups SET description = $2, updated_at = $3 WHERE name = $1`
	groupExistsSQL  = `SELECT 1 FROM directory_groups WHERE name = $1`
	insertMemberSQL = `INSERT INTO group_members (group_name, user_id, added_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`
	deleteMemberSQL = `DELETE FROM group_members WHERE group_name = $1 AND user_id = $2`
	userGroupsSQL   = `SELECT group_name FROM group_members WHERE user_id = $1 ORDER BY group_name`
)

func scanGroup(s scanner) (store.Group, error) {
	var g store.Group
	var created, updated int64
	if err := s.Scan(&g.Name, &g.Description, &created, &updated); err != nil {
		return store.Group{}, err
	}
	g.CreatedAt, g.UpdatedAt = fromMS(created), fromMS(updated)
	return g, nil
}

func (o *ops) CreateGroup(ctx context.Context, g store.Group) error {
	if err := g.Validate(); err != nil {
		return err
	}
	n, err := o.exec(ctx, "create group", insertGroupSQL, g.Name, g.Description, ms(g.CreatedAt), ms(g.UpdatedAt))
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("sqlstore: create group: %w", store.ErrConflict)
	}
	return nil
}

func (o *ops) UpdateGroup(ctx context.Context, name string, fn func(store.Group) (store.Group, error)) error {
	if err := checkText(name); err != nil {
		return err
	}
	cur, err := scanGroup(o.w.QueryRowContext(ctx, o.lock(selectGroupSQL), name))
	if err != nil {
		return o.d.wrap("update group", err)
	}
	next, err := fn(cur)
	if err != nil {
		return err
	}
	switch {
	case next.Name != cur.Name:
		return immutable("group name")
	case !next.CreatedAt.Equal(cur.CreatedAt):
		return immutable("group creation time")
	}
	if err := next.Validate(); err != nil {
		return err
	}
	_, err = o.exec(ctx, "update group", updateGroupSQL, name, next.Description, ms(next.UpdatedAt))
	return err
}

func (o *ops) ListGroups(ctx context.Context) ([]store.Group, error) {
	var out []store.Group
	err := o.queryRows(ctx, "list groups", listGroupsSQL, nil, func(s scanner) error {
		g, err := scanGroup(s)
		out = append(out, g)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// AddMember stamps the membership with the wall clock: it is a record for
// people, never an input to a decision.
func (o *ops) AddMember(ctx context.Context, group, userID string) error {
	if ok, err := o.exists(ctx, "add member", groupExistsSQL, group); err != nil || !ok {
		return notFoundUnless(err, "add member", "group %q", group)
	}
	if ok, err := o.exists(ctx, "add member", userExistsSQL, userID); err != nil || !ok {
		return notFoundUnless(err, "add member", "user %q", userID)
	}
	n, err := o.exec(ctx, "add member", insertMemberSQL, group, userID, time.Now().UnixMilli())
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("sqlstore: add member: %w (already a member)", store.ErrConflict)
	}
	return nil
}

func (o *ops) RemoveMember(ctx context.Context, group, userID string) error {
	n, err := o.exec(ctx, "remove member", deleteMemberSQL, group, userID)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("sqlstore: remove member: %w (not a member)", store.ErrNotFound)
	}
	return nil
}

func (o *ops) UserGroups(ctx context.Context, userID string) ([]string, error) {
	out := []string{}
	err := o.queryRows(ctx, "user groups", userGroupsSQL, []any{userID}, func(s scanner) error {
		var g string
		err := s.Scan(&g)
		out = append(out, g)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// notFoundUnless returns err if set, else store.ErrNotFound naming what is
// missing.
func notFoundUnless(err error, op, format string, args ...any) error {
	if err != nil {
		return err
	}
	return fmt.Errorf("sqlstore: %s: %w: %s", op, store.ErrNotFound, fmt.Sprintf(format, args...))
}

// --- Clients (updates) ---

const (
	selectClientAllSQL = `SELECT realm, id, name, auth_method, secret_digest, jwks, redirect_uris, disabled, created_at
FROM clients WHERE realm = $1 AND id = $2`
	updateClientSQL = `UPDATE clients SET name = $3, auth_method = $4, secret_digest = $5, jwks = $6,
    redirect_uris = $7, disabled = $8
WHERE realm = $1 AND id = $2`
	appExistsSQL = `SELECT 1 FROM clients WHERE realm = 'idp' AND id = $1`
)

func (o *ops) UpdateClient(ctx context.Context, realm, id string, fn func(store.Client) (store.Client, error)) error {
	if err := checkArgs([]any{realm, id}); err != nil {
		return err
	}
	var cur store.Client
	var jwks sql.NullString
	var uris string
	var created int64
	err := o.w.QueryRowContext(ctx, o.lock(selectClientAllSQL), realm, id).Scan(
		&cur.Realm, &cur.ID, &cur.Name, &cur.AuthMethod, &cur.SecretDigest, &jwks, &uris, &cur.Disabled, &created)
	if err != nil {
		return o.d.wrap("update client", err)
	}
	if jwks.Valid {
		cur.JWKS = []byte(jwks.String)
	}
	if err := json.Unmarshal([]byte(uris), &cur.RedirectURIs); err != nil {
		return fmt.Errorf("sqlstore: update client: %w: redirect URIs: %w", errCorrupt, err)
	}
	if len(cur.RedirectURIs) == 0 {
		cur.RedirectURIs = nil
	}
	cur.CreatedAt = fromMS(created)
	next, err := fn(cur)
	if err != nil {
		return err
	}
	switch {
	case next.Realm != cur.Realm || next.ID != cur.ID:
		return immutable("client's realm or id")
	case !next.CreatedAt.Equal(cur.CreatedAt):
		return immutable("client creation time")
	case next.SecretDigest != nil && len(next.SecretDigest) != 32:
		return fmt.Errorf("%w: client secret digest must be 32 bytes (SHA-256)", ErrInvalidInput)
	case next.JWKS != nil && !json.Valid(next.JWKS):
		return fmt.Errorf("%w: client JWKS is not JSON", ErrInvalidInput)
	}
	if next.RedirectURIs == nil {
		next.RedirectURIs = []string{}
	}
	for _, u := range next.RedirectURIs {
		if err := checkText(u); err != nil {
			return err
		}
	}
	urisJSON, err := json.Marshal(next.RedirectURIs)
	if err != nil {
		return fmt.Errorf("sqlstore: update client: %w", err)
	}
	_, err = o.exec(ctx, "update client", updateClientSQL, realm, id, next.Name, next.AuthMethod,
		bytesOrNull(next.SecretDigest), jsonOrNull(next.JWKS), string(urisJSON), next.Disabled)
	return err
}

// --- Authorization servers ---

const (
	insertAuthServerSQL = `INSERT INTO auth_servers (issuer, name, created_at, updated_at)
VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`
	authServerJoin = `SELECT a.issuer, a.name, a.created_at, a.updated_at, c.app_id, c.client_id
FROM auth_servers a LEFT JOIN auth_server_clients c ON c.issuer = a.issuer`
	selectAuthServerSQL      = authServerJoin + ` WHERE a.issuer = $1 ORDER BY c.app_id`
	listAuthServersSQL       = authServerJoin + ` ORDER BY a.issuer, c.app_id`
	lockAuthServerSQL        = `SELECT 1 FROM auth_servers WHERE issuer = $1`
	updateAuthServerSQL      = `UPDATE auth_servers SET name = $2, updated_at = $3 WHERE issuer = $1`
	authServerExistsSQL      = `SELECT 1 FROM auth_servers WHERE issuer = $1`
	insertAppClientIDSQL     = `INSERT INTO auth_server_clients (issuer, app_realm, app_id, client_id) VALUES ($1, 'idp', $2, $3)`
	upsertAppClientIDSQL     = insertAppClientIDSQL + ` ON CONFLICT (issuer, app_id) DO UPDATE SET client_id = excluded.client_id`
	deleteAppClientIDSQL     = `DELETE FROM auth_server_clients WHERE issuer = $1 AND app_id = $2`
	selectAppClientIDSQL     = `SELECT client_id FROM auth_server_clients WHERE issuer = $1 AND app_id = $2`
	clientIDHeldByAnotherSQL = `SELECT 1 FROM auth_server_clients WHERE issuer = $1 AND client_id = $2 AND app_id <> $3`
)

// scanAuthServers folds the joined rows (one per client id, or one with
// NULLs for an AS without any) into AuthServers, in row order.
func (o *ops) scanAuthServers(ctx context.Context, op, query string, args []any) ([]store.AuthServer, error) {
	var out []store.AuthServer
	err := o.queryRows(ctx, op, query, args, func(s scanner) error {
		var a store.AuthServer
		var created, updated int64
		var app, there sql.NullString
		if err := s.Scan(&a.Issuer, &a.Name, &created, &updated, &app, &there); err != nil {
			return err
		}
		if len(out) == 0 || out[len(out)-1].Issuer != a.Issuer {
			a.CreatedAt, a.UpdatedAt = fromMS(created), fromMS(updated)
			a.ClientIDs = map[string]string{}
			out = append(out, a)
		}
		if app.Valid {
			out[len(out)-1].ClientIDs[app.String] = there.String
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (o *ops) checkApps(ctx context.Context, op string, apps []string) error {
	for _, app := range apps {
		if ok, err := o.exists(ctx, op, appExistsSQL, app); err != nil || !ok {
			return notFoundUnless(err, op, "requesting app %q", app)
		}
	}
	return nil
}

func (o *ops) CreateAuthServer(ctx context.Context, a store.AuthServer) error {
	if err := a.Validate(); err != nil {
		return err
	}
	apps := slices.Sorted(maps.Keys(a.ClientIDs))
	if err := o.checkApps(ctx, "create authorization server", apps); err != nil {
		return err
	}
	n, err := o.exec(ctx, "create authorization server", insertAuthServerSQL, a.Issuer, a.Name, ms(a.CreatedAt), ms(a.UpdatedAt))
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("sqlstore: create authorization server: %w", store.ErrConflict)
	}
	// A new issuer has no client ids yet and Validate refused duplicates,
	// so these inserts cannot clash.
	for _, app := range apps {
		if _, err := o.exec(ctx, "create authorization server", insertAppClientIDSQL, a.Issuer, app, a.ClientIDs[app]); err != nil {
			return err
		}
	}
	return nil
}

func (o *ops) GetAuthServer(ctx context.Context, issuer string) (store.AuthServer, error) {
	as, err := o.scanAuthServers(ctx, "get authorization server", selectAuthServerSQL, []any{issuer})
	if err != nil {
		return store.AuthServer{}, err
	}
	if len(as) == 0 {
		return store.AuthServer{}, fmt.Errorf("sqlstore: get authorization server: %w", store.ErrNotFound)
	}
	return as[0], nil
}

func (o *ops) ListAuthServers(ctx context.Context) ([]store.AuthServer, error) {
	return o.scanAuthServers(ctx, "list authorization servers", listAuthServersSQL, nil)
}

func (o *ops) UpdateAuthServer(ctx context.Context, issuer string, fn func(store.AuthServer) (store.AuthServer, error)) error {
	const op = "update authorization server"
	if ok, err := o.exists(ctx, op, o.lock(lockAuthServerSQL), issuer); err != nil || !ok {
		return notFoundUnless(err, op, "%s", issuer)
	}
	cur, err := o.GetAuthServer(ctx, issuer)
	if err != nil {
		return err
	}
	next, err := fn(cloneAuthServer(cur))
	if err != nil {
		return err
	}
	switch {
	case next.Issuer != cur.Issuer:
		return immutable("issuer")
	case !next.CreatedAt.Equal(cur.CreatedAt):
		return immutable("authorization server creation time")
	}
	if err := next.Validate(); err != nil {
		return err
	}
	// Delete every changed or removed mapping before inserting, so that
	// two apps swapping client ids never clash on the way.
	var put []string
	for _, app := range slices.Sorted(maps.Keys(cur.ClientIDs)) {
		if there, ok := next.ClientIDs[app]; !ok || there != cur.ClientIDs[app] {
			if _, err := o.exec(ctx, op, deleteAppClientIDSQL, issuer, app); err != nil {
				return err
			}
		}
	}
	for _, app := range slices.Sorted(maps.Keys(next.ClientIDs)) {
		if there, ok := cur.ClientIDs[app]; !ok || there != next.ClientIDs[app] {
			put = append(put, app)
		}
	}
	if err := o.checkApps(ctx, op, put); err != nil {
		return err
	}
	for _, app := range put {
		if _, err := o.exec(ctx, op, insertAppClientIDSQL, issuer, app, next.ClientIDs[app]); err != nil {
			return err
		}
	}
	_, err = o.exec(ctx, op, updateAuthServerSQL, issuer, next.Name, ms(next.UpdatedAt))
	return err
}

func cloneAuthServer(a store.AuthServer) store.AuthServer {
	a.ClientIDs = maps.Clone(a.ClientIDs)
	return a
}

func (o *ops) SetAppClientID(ctx context.Context, issuer, appID, clientIDThere string) error {
	const op = "set app client_id"
	probe := store.AuthServer{Issuer: issuer, ClientIDs: map[string]string{appID: clientIDThere}, CreatedAt: time.Unix(1, 0), UpdatedAt: time.Unix(1, 0)}
	if err := probe.Validate(); err != nil {
		return err
	}
	if ok, err := o.exists(ctx, op, authServerExistsSQL, issuer); err != nil || !ok {
		return notFoundUnless(err, op, "authorization server %s", issuer)
	}
	if err := o.checkApps(ctx, op, []string{appID}); err != nil {
		return err
	}
	if held, err := o.exists(ctx, op, clientIDHeldByAnotherSQL, issuer, clientIDThere, appID); err != nil || held {
		if err != nil {
			return err
		}
		return fmt.Errorf("sqlstore: %s: %w (another app holds client_id %q at %s)", op, store.ErrConflict, clientIDThere, issuer)
	}
	_, err := o.exec(ctx, op, upsertAppClientIDSQL, issuer, appID, clientIDThere)
	return err
}

func (o *ops) AppClientID(ctx context.Context, issuer, appID string) (string, error) {
	var there string
	err := o.queryRow(ctx, o.r, "app client_id", selectAppClientIDSQL, []any{issuer, appID}, &there)
	return there, err
}

// --- Resources ---

const (
	resourceColumns   = `uri, name, auth_server, scopes, created_at, updated_at`
	insertResourceSQL = `INSERT INTO resources (` + resourceColumns + `) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`
	selectResourceSQL = `SELECT ` + resourceColumns + ` FROM resources WHERE uri = $1`
	listResourcesSQL  = `SELECT ` + resourceColumns + ` FROM resources WHERE auth_server = $1 ORDER BY uri`
	updateResourceSQL = `UPDATE resources SET name = $2, auth_server = $3, scopes = $4, updated_at = $5 WHERE uri = $1`
	liveConnScopesSQL = `SELECT id, group_scopes FROM connections WHERE resource_uri = $1 AND status NOT IN ('revoked', 'denied') ORDER BY id`
)

type scopeJSON struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Sensitive   bool   `json:"sensitive"`
}

func scanResource(s scanner) (store.Resource, error) {
	var r store.Resource
	var scopes string
	var created, updated int64
	if err := s.Scan(&r.URI, &r.Name, &r.AuthServerIssuer, &scopes, &created, &updated); err != nil {
		return store.Resource{}, err
	}
	var js []scopeJSON
	if err := json.Unmarshal([]byte(scopes), &js); err != nil {
		return store.Resource{}, fmt.Errorf("%w: scopes of resource %s: %w", errCorrupt, r.URI, err)
	}
	for _, j := range js {
		r.Scopes = append(r.Scopes, store.ResourceScope(j))
	}
	r.CreatedAt, r.UpdatedAt = fromMS(created), fromMS(updated)
	return r, nil
}

func resourceScopesJSON(r store.Resource) (string, error) {
	js := make([]scopeJSON, len(r.Scopes))
	for i, s := range r.Scopes {
		js[i] = scopeJSON(s)
	}
	b, err := json.Marshal(js)
	return string(b), err
}

func (o *ops) CreateResource(ctx context.Context, r store.Resource) error {
	const op = "create resource"
	if err := r.Validate(); err != nil {
		return err
	}
	if ok, err := o.exists(ctx, op, authServerExistsSQL, r.AuthServerIssuer); err != nil || !ok {
		return notFoundUnless(err, op, "authorization server %s", r.AuthServerIssuer)
	}
	scopes, err := resourceScopesJSON(r)
	if err != nil {
		return fmt.Errorf("sqlstore: %s: %w", op, err)
	}
	n, err := o.exec(ctx, op, insertResourceSQL, r.URI, r.Name, r.AuthServerIssuer, scopes, ms(r.CreatedAt), ms(r.UpdatedAt))
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("sqlstore: %s: %w", op, store.ErrConflict)
	}
	return nil
}

func (o *ops) GetResource(ctx context.Context, uri string) (store.Resource, error) {
	if err := checkText(uri); err != nil {
		return store.Resource{}, err
	}
	r, err := scanResource(o.r.QueryRowContext(ctx, selectResourceSQL, uri))
	if errors.Is(err, errCorrupt) {
		return store.Resource{}, err
	}
	return r, o.d.wrap("get resource", err)
}

func (o *ops) ListResourcesByAuthServer(ctx context.Context, issuer string) ([]store.Resource, error) {
	var out []store.Resource
	err := o.queryRows(ctx, "list resources", listResourcesSQL, []any{issuer}, func(s scanner) error {
		r, err := scanResource(s)
		out = append(out, r)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (o *ops) UpdateResource(ctx context.Context, uri string, fn func(store.Resource) (store.Resource, error)) error {
	const op = "update resource"
	if err := checkText(uri); err != nil {
		return err
	}
	cur, err := scanResource(o.w.QueryRowContext(ctx, o.lock(selectResourceSQL), uri))
	if err != nil {
		if errors.Is(err, errCorrupt) {
			return err
		}
		return o.d.wrap(op, err)
	}
	next, err := fn(cloneResource(cur))
	if err != nil {
		return err
	}
	switch {
	case next.URI != cur.URI:
		return immutable("resource URI")
	case !next.CreatedAt.Equal(cur.CreatedAt):
		return immutable("resource creation time")
	}
	if err := next.Validate(); err != nil {
		return err
	}
	if next.AuthServerIssuer != cur.AuthServerIssuer {
		if ok, err := o.exists(ctx, op, authServerExistsSQL, next.AuthServerIssuer); err != nil || !ok {
			return notFoundUnless(err, op, "authorization server %s", next.AuthServerIssuer)
		}
	}
	if err := o.checkScopesInUse(ctx, cur, next); err != nil {
		return err
	}
	scopes, err := resourceScopesJSON(next)
	if err != nil {
		return fmt.Errorf("sqlstore: %s: %w", op, err)
	}
	_, err = o.exec(ctx, op, updateResourceSQL, uri, next.Name, next.AuthServerIssuer, scopes, ms(next.UpdatedAt))
	return err
}

// checkScopesInUse refuses to drop a scope that a live connection grants.
func (o *ops) checkScopesInUse(ctx context.Context, cur, next store.Resource) error {
	var removed []string
	for _, s := range cur.Scopes {
		if !next.HasScope(s.Name) {
			removed = append(removed, s.Name)
		}
	}
	if len(removed) == 0 {
		return nil
	}
	return o.queryRows(ctx, "update resource", liveConnScopesSQL, []any{cur.URI}, func(s scanner) error {
		var id, raw string
		if err := s.Scan(&id, &raw); err != nil {
			return err
		}
		gs, err := decodeGroupScopes(raw)
		if err != nil {
			return err
		}
		for _, scope := range (store.Connection{GroupScopes: gs}).Scopes() {
			if slices.Contains(removed, scope) {
				return fmt.Errorf("sqlstore: update resource: %w: connection %s still grants scope %q; change or revoke it first",
					store.ErrConflict, id, scope)
			}
		}
		return nil
	})
}

func cloneResource(r store.Resource) store.Resource {
	r.Scopes = slices.Clone(r.Scopes)
	return r
}

// --- Connections ---

const (
	connectionColumns = `id, app_id, resource_uri, group_scopes, step_up, id_jag_lifetime_ms,
    access_token_lifetime_ms, include_email, status, approver, justification, requester, status_reason,
    created_at, updated_at, expires_at, revoked_at`
	insertConnectionSQL = `INSERT INTO connections (app_realm, ` + connectionColumns + `)
VALUES ('idp', $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) ON CONFLICT DO NOTHING`
	selectConnectionSQL = `SELECT ` + connectionColumns + ` FROM connections WHERE id = $1`
	findConnectionSQL   = `SELECT ` + connectionColumns + ` FROM connections
WHERE app_id = $1 AND resource_uri = $2 AND status NOT IN ('revoked', 'denied')`
	// latestConnectionSQL puts the live row first, then ended rows by the
	// time they ended.
	latestConnectionSQL = `SELECT ` + connectionColumns + ` FROM connections
WHERE app_id = $1 AND resource_uri = $2
ORDER BY CASE WHEN status IN ('revoked', 'denied') THEN 1 ELSE 0 END, updated_at DESC, id DESC LIMIT 1`
	listConnectionsSQL = `SELECT ` + connectionColumns + ` FROM connections
WHERE ($1 = '' OR app_id = $1) AND ($2 = '' OR resource_uri = $2) AND ($3 OR status NOT IN ('revoked', 'denied'))
ORDER BY created_at, id`
	updateConnectionSQL = `UPDATE connections SET group_scopes = $2, step_up = $3, id_jag_lifetime_ms = $4,
    access_token_lifetime_ms = $5, include_email = $6, status = $7, approver = $8, justification = $9,
    requester = $10, status_reason = $11, updated_at = $12, expires_at = $13, revoked_at = $14
WHERE id = $1`
)

type groupScopesJSON struct {
	Group  string   `json:"group"`
	Scopes []string `json:"scopes"`
}

type stepUpJSON struct {
	Scope    string `json:"scope"`
	ACR      string `json:"acr,omitempty"`
	MaxAgeMS int64  `json:"max_age_ms,omitempty"`
}

func decodeGroupScopes(raw string) ([]store.GroupScopes, error) {
	var js []groupScopesJSON
	if err := json.Unmarshal([]byte(raw), &js); err != nil {
		return nil, fmt.Errorf("%w: connection group scopes: %w", errCorrupt, err)
	}
	var out []store.GroupScopes
	for _, j := range js {
		out = append(out, store.GroupScopes(j))
	}
	return out, nil
}

func scanConnection(s scanner) (store.Connection, error) {
	var c store.Connection
	var groups, stepUp, status string
	var idjag, access, created, updated int64
	var expires, revoked sql.NullInt64
	if err := s.Scan(&c.ID, &c.AppID, &c.ResourceURI, &groups, &stepUp, &idjag, &access, &c.IncludeEmail,
		&status, &c.Approver, &c.Justification, &c.Requester, &c.StatusReason, &created, &updated, &expires, &revoked); err != nil {
		return store.Connection{}, err
	}
	var err error
	if c.GroupScopes, err = decodeGroupScopes(groups); err != nil {
		return store.Connection{}, err
	}
	var su []stepUpJSON
	if err := json.Unmarshal([]byte(stepUp), &su); err != nil {
		return store.Connection{}, fmt.Errorf("%w: connection step-up rules: %w", errCorrupt, err)
	}
	for _, r := range su {
		c.StepUp = append(c.StepUp, store.StepUpRule{Scope: r.Scope, ACR: r.ACR, MaxAge: time.Duration(r.MaxAgeMS) * time.Millisecond})
	}
	c.Status = store.ConnectionStatus(status)
	c.IDJAGLifetime = time.Duration(idjag) * time.Millisecond
	c.AccessTokenLifetime = time.Duration(access) * time.Millisecond
	c.CreatedAt, c.UpdatedAt = fromMS(created), fromMS(updated)
	c.ExpiresAt, c.RevokedAt = fromNullMS(expires), fromNullMS(revoked)
	return c, nil
}

// connectionArgs encodes the columns after id, app_id and resource_uri.
func connectionArgs(c store.Connection) ([]any, error) {
	gs := make([]groupScopesJSON, len(c.GroupScopes))
	for i, g := range c.GroupScopes {
		gs[i] = groupScopesJSON(g)
	}
	su := make([]stepUpJSON, len(c.StepUp))
	for i, r := range c.StepUp {
		su[i] = stepUpJSON{Scope: r.Scope, ACR: r.ACR, MaxAgeMS: r.MaxAge.Milliseconds()}
	}
	gj, err := json.Marshal(gs)
	if err != nil {
		return nil, err
	}
	sj, err := json.Marshal(su)
	if err != nil {
		return nil, err
	}
	return []any{string(gj), string(sj), c.IDJAGLifetime.Milliseconds(), c.AccessTokenLifetime.Milliseconds(),
		c.IncludeEmail, string(c.Status), c.Approver, c.Justification, c.Requester, c.StatusReason}, nil
}

// checkConnectionRefs validates c against the rows it names: the app, the
// resource (whose scopes it may grant) and the groups.
func (o *ops) checkConnectionRefs(ctx context.Context, op string, c store.Connection) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if err := o.checkApps(ctx, op, []string{c.AppID}); err != nil {
		return err
	}
	r, err := o.GetResource(ctx, c.ResourceURI)
	if err != nil {
		return err
	}
	for _, g := range c.GroupScopes {
		if ok, err := o.exists(ctx, op, groupExistsSQL, g.Group); err != nil || !ok {
			return notFoundUnless(err, op, "group %q", g.Group)
		}
	}
	return c.ValidateFor(r)
}

func (o *ops) CreateConnection(ctx context.Context, c store.Connection) error {
	const op = "create connection"
	if err := o.checkConnectionRefs(ctx, op, c); err != nil {
		return err
	}
	rest, err := connectionArgs(c)
	if err != nil {
		return fmt.Errorf("sqlstore: %s: %w", op, err)
	}
	args := append([]any{c.ID, c.AppID, c.ResourceURI}, rest...)
	args = append(args, ms(c.CreatedAt), ms(c.UpdatedAt), msOrNull(c.ExpiresAt), msOrNull(c.RevokedAt))
	n, err := o.exec(ctx, op, insertConnectionSQL, args...)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("sqlstore: %s: %w (the id exists, or the app already has a live connection to %s)",
			op, store.ErrConflict, c.ResourceURI)
	}
	return nil
}

func (o *ops) getConnection(ctx context.Context, q querier, op, query string, args ...any) (store.Connection, error) {
	if err := checkArgs(args); err != nil {
		return store.Connection{}, fmt.Errorf("sqlstore: %s: %w", op, err)
	}
	c, err := scanConnection(q.QueryRowContext(ctx, query, args...))
	if errors.Is(err, errCorrupt) {
		return store.Connection{}, err
	}
	return c, o.d.wrap(op, err)
}

func (o *ops) GetConnection(ctx context.Context, id string) (store.Connection, error) {
	return o.getConnection(ctx, o.r, "get connection", selectConnectionSQL, id)
}

func (o *ops) FindConnection(ctx context.Context, appID, resourceURI string) (store.Connection, error) {
	return o.getConnection(ctx, o.r, "find connection", findConnectionSQL, appID, resourceURI)
}

func (o *ops) LatestConnection(ctx context.Context, appID, resourceURI string) (store.Connection, error) {
	return o.getConnection(ctx, o.r, "latest connection", latestConnectionSQL, appID, resourceURI)
}

func (o *ops) ListConnections(ctx context.Context, f store.ConnectionFilter) ([]store.Connection, error) {
	var out []store.Connection
	err := o.queryRows(ctx, "list connections", listConnectionsSQL, []any{f.AppID, f.ResourceURI, f.IncludeRevoked},
		func(s scanner) error {
			c, err := scanConnection(s)
			out = append(out, c)
			return err
		})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (o *ops) UpdateConnection(ctx context.Context, id string, fn func(store.Connection) (store.Connection, error)) error {
	const op = "update connection"
	cur, err := o.getConnection(ctx, o.w, op, o.lock(selectConnectionSQL), id)
	if err != nil {
		return err
	}
	next, err := fn(cloneConnection(cur))
	if err != nil {
		return err
	}
	switch {
	case next.ID != cur.ID || next.AppID != cur.AppID || next.ResourceURI != cur.ResourceURI:
		return immutable("connection's id, app or resource")
	case !next.CreatedAt.Equal(cur.CreatedAt):
		return immutable("connection creation time")
	case cur.Status.Ended() && next.Status != cur.Status:
		return fmt.Errorf("%w: a %s connection stays %s; create a new one", store.ErrInvalid, cur.Status, cur.Status)
	}
	if err := o.checkConnectionRefs(ctx, op, next); err != nil {
		return err
	}
	rest, err := connectionArgs(next)
	if err != nil {
		return fmt.Errorf("sqlstore: %s: %w", op, err)
	}
	args := append([]any{id}, rest...)
	args = append(args, ms(next.UpdatedAt), msOrNull(next.ExpiresAt), msOrNull(next.RevokedAt))
	_, err = o.exec(ctx, op, updateConnectionSQL, args...)
	return err
}

func cloneConnection(c store.Connection) store.Connection {
	c.GroupScopes = slices.Clone(c.GroupScopes)
	for i := range c.GroupScopes {
		c.GroupScopes[i].Scopes = slices.Clone(c.GroupScopes[i].Scopes)
	}
	c.StepUp = slices.Clone(c.StepUp)
	return c
}

// --- *DB: each call in its own transaction where it takes more than one
// statement, in autocommit otherwise ---

// CreateUser implements store.Users.
func (db *DB) CreateUser(ctx context.Context, u store.User) error {
	return db.auto().CreateUser(ctx, u)
}

// GetUser implements store.Users.
func (db *DB) GetUser(ctx context.Context, id string) (store.User, error) {
	return db.auto().GetUser(ctx, id)
}

// GetUserByUsername implements store.Users.
func (db *DB) GetUserByUsername(ctx context.Context, username string) (store.User, error) {
	return db.auto().GetUserByUsername(ctx, username)
}

// UpdateUser implements store.Users.
func (db *DB) UpdateUser(ctx context.Context, id string, fn func(store.User) (store.User, error)) error {
	return db.InTx(ctx, func(tx store.Tx) error { return tx.UpdateUser(ctx, id, fn) })
}

// CreateGroup implements store.Groups.
func (db *DB) CreateGroup(ctx context.Context, g store.Group) error {
	return db.auto().CreateGroup(ctx, g)
}

// UpdateGroup implements store.Groups.
func (db *DB) UpdateGroup(ctx context.Context, name string, fn func(store.Group) (store.Group, error)) error {
	return db.InTx(ctx, func(tx store.Tx) error { return tx.UpdateGroup(ctx, name, fn) })
}

// ListGroups implements store.Groups.
func (db *DB) ListGroups(ctx context.Context) ([]store.Group, error) {
	return db.auto().ListGroups(ctx)
}

// AddMember implements store.Groups.
func (db *DB) AddMember(ctx context.Context, group, userID string) error {
	return db.InTx(ctx, func(tx store.Tx) error { return tx.AddMember(ctx, group, userID) })
}

// RemoveMember implements store.Groups.
func (db *DB) RemoveMember(ctx context.Context, group, userID string) error {
	return db.auto().RemoveMember(ctx, group, userID)
}

// UserGroups implements store.Groups.
func (db *DB) UserGroups(ctx context.Context, userID string) ([]string, error) {
	return db.auto().UserGroups(ctx, userID)
}

// UpdateClient implements store.ClientUpdater.
func (db *DB) UpdateClient(ctx context.Context, realm, id string, fn func(store.Client) (store.Client, error)) error {
	return db.InTx(ctx, func(tx store.Tx) error { return tx.UpdateClient(ctx, realm, id, fn) })
}

// CreateAuthServer implements store.AuthServers.
func (db *DB) CreateAuthServer(ctx context.Context, a store.AuthServer) error {
	return db.InTx(ctx, func(tx store.Tx) error { return tx.CreateAuthServer(ctx, a) })
}

// GetAuthServer implements store.AuthServers.
func (db *DB) GetAuthServer(ctx context.Context, issuer string) (store.AuthServer, error) {
	return db.auto().GetAuthServer(ctx, issuer)
}

// ListAuthServers implements store.AuthServers.
func (db *DB) ListAuthServers(ctx context.Context) ([]store.AuthServer, error) {
	return db.auto().ListAuthServers(ctx)
}

// UpdateAuthServer implements store.AuthServers.
func (db *DB) UpdateAuthServer(ctx context.Context, issuer string, fn func(store.AuthServer) (store.AuthServer, error)) error {
	return db.InTx(ctx, func(tx store.Tx) error { return tx.UpdateAuthServer(ctx, issuer, fn) })
}

// SetAppClientID implements store.AuthServers.
func (db *DB) SetAppClientID(ctx context.Context, issuer, appID, clientIDThere string) error {
	return db.InTx(ctx, func(tx store.Tx) error { return tx.SetAppClientID(ctx, issuer, appID, clientIDThere) })
}

// AppClientID implements store.AuthServers.
func (db *DB) AppClientID(ctx context.Context, issuer, appID string) (string, error) {
	return db.auto().AppClientID(ctx, issuer, appID)
}

// CreateResource implements store.Resources.
func (db *DB) CreateResource(ctx context.Context, r store.Resource) error {
	return db.InTx(ctx, func(tx store.Tx) error { return tx.CreateResource(ctx, r) })
}

// GetResource implements store.Resources.
func (db *DB) GetResource(ctx context.Context, uri string) (store.Resource, error) {
	return db.auto().GetResource(ctx, uri)
}

// ListResourcesByAuthServer implements store.Resources.
func (db *DB) ListResourcesByAuthServer(ctx context.Context, issuer string) ([]store.Resource, error) {
	return db.auto().ListResourcesByAuthServer(ctx, issuer)
}

// UpdateResource implements store.Resources.
func (db *DB) UpdateResource(ctx context.Context, uri string, fn func(store.Resource) (store.Resource, error)) error {
	return db.InTx(ctx, func(tx store.Tx) error { return tx.UpdateResource(ctx, uri, fn) })
}

// CreateConnection implements store.Connections.
func (db *DB) CreateConnection(ctx context.Context, c store.Connection) error {
	return db.InTx(ctx, func(tx store.Tx) error { return tx.CreateConnection(ctx, c) })
}

// GetConnection implements store.Connections.
func (db *DB) GetConnection(ctx context.Context, id string) (store.Connection, error) {
	return db.auto().GetConnection(ctx, id)
}

// FindConnection implements store.Connections.
func (db *DB) FindConnection(ctx context.Context, appID, resourceURI string) (store.Connection, error) {
	return db.auto().FindConnection(ctx, appID, resourceURI)
}

// LatestConnection implements store.Connections.
func (db *DB) LatestConnection(ctx context.Context, appID, resourceURI string) (store.Connection, error) {
	return db.auto().LatestConnection(ctx, appID, resourceURI)
}

// QueryConnections implements store.Connections.
func (db *DB) QueryConnections(ctx context.Context, q store.ConnectionQuery) ([]store.Connection, error) {
	return db.auto().QueryConnections(ctx, q)
}

// ListConnections implements store.Connections.
func (db *DB) ListConnections(ctx context.Context, f store.ConnectionFilter) ([]store.Connection, error) {
	return db.auto().ListConnections(ctx, f)
}

// UpdateConnection implements store.Connections.
func (db *DB) UpdateConnection(ctx context.Context, id string, fn func(store.Connection) (store.Connection, error)) error {
	return db.InTx(ctx, func(tx store.Tx) error { return tx.UpdateConnection(ctx, id, fn) })
}
