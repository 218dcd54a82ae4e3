package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/openxaa/xaa/internal/store"
)

// The admin API's sessions and tokens (store.AdminSessions,
// store.AdminTokens) and its directory listings (store.DirectoryLists).
//
// Listings are keyset pages. Every query text comes from listQueries, which
// is built once from the constants below: one text per listing, sort key
// and direction. A caller's sort key only selects a map entry (an unknown
// one is store.ErrInvalid); filters and positions are bound parameters.
// Filters that may be unset take a flag parameter ("$1 = 0 OR ..."), so
// their presence never changes the text either.

// --- Admin sessions ---

const (
	adminSessionColumns   = `id, secret_digest, user_id, created_at, expires_at, revoked_at`
	insertAdminSessionSQL = `INSERT INTO admin_sessions (` + adminSessionColumns + `)
VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`
	selectAdminSessionSQL = `SELECT ` + adminSessionColumns + ` FROM admin_sessions WHERE secret_digest = $1`
	revokeAdminSessionSQL = `UPDATE admin_sessions SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1`
	pruneAdminSessionsSQL = `DELETE FROM admin_sessions WHERE expires_at < $1`
)

func (o *ops) CreateAdminSession(ctx context.Context, s store.AdminSession) error {
	const op = "create admin session"
	switch {
	case s.ID == "" || s.UserID == "":
		return fmt.Errorf("%w: admin session needs an id and a user", ErrInvalidInput)
	case s.CreatedAt.IsZero() || !s.ExpiresAt.After(s.CreatedAt):
		return fmt.Errorf("%w: admin session must expire after it is created", ErrInvalidInput)
	}
	if err := checkDigest("admin session", s.SecretDigest); err != nil {
		return err
	}
	if ok, err := o.exists(ctx, op, userExistsSQL, s.UserID); err != nil || !ok {
		return notFoundUnless(err, op, "user %s", s.UserID)
	}
	n, err := o.exec(ctx, op, insertAdminSessionSQL, s.ID, s.SecretDigest, s.UserID,
		ms(s.CreatedAt), ms(s.ExpiresAt), msOrNull(s.RevokedAt))
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("sqlstore: %s: %w", op, store.ErrConflict)
	}
	return nil
}

func (o *ops) GetAdminSessionByDigest(ctx context.Context, digest []byte) (store.AdminSession, error) {
	if err := checkDigest("admin session", digest); err != nil {
		return store.AdminSession{}, err
	}
	var s store.AdminSession
	var created, expires int64
	var revoked sql.NullInt64
	err := o.queryRow(ctx, o.r, "get admin session", selectAdminSessionSQL, []any{digest},
		&s.ID, &s.SecretDigest, &s.UserID, &created, &expires, &revoked)
	if err != nil {
		return store.AdminSession{}, err
	}
	s.CreatedAt, s.ExpiresAt, s.RevokedAt = fromMS(created), fromMS(expires), fromNullMS(revoked)
	return s, nil
}

func (o *ops) RevokeAdminSession(ctx context.Context, id string, at time.Time) error {
	n, err := o.exec(ctx, "revoke admin session", revokeAdminSessionSQL, id, ms(at))
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("sqlstore: revoke admin session: %w", store.ErrNotFound)
	}
	return nil
}

func (o *ops) PruneAdminSessions(ctx context.Context, before time.Time) (int64, error) {
	return o.exec(ctx, "prune admin sessions", pruneAdminSessionsSQL, ms(before))
}

// --- Admin tokens ---

const (
	adminTokenColumns   = `id, secret_digest, role, description, created_by, created_at, expires_at, revoked_at`
	insertAdminTokenSQL = `INSERT INTO admin_tokens (` + adminTokenColumns + `)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`
	selectAdminTokenByDigestSQL = `SELECT ` + adminTokenColumns + ` FROM admin_tokens WHERE secret_digest = $1`
	selectAdminTokenSQL         = `SELECT ` + adminTokenColumns + ` FROM admin_tokens WHERE id = $1`
	listAdminTokensSQL          = `SELECT ` + adminTokenColumns + ` FROM admin_tokens WHERE expires_at > $1
ORDER BY created_at DESC, id DESC LIMIT 1000`
	revokeAdminTokenSQL = `UPDATE admin_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1`
	pruneAdminTokensSQL = `DELETE FROM admin_tokens WHERE expires_at < $1`
)

func scanAdminToken(s scanner) (store.AdminToken, error) {
	var t store.AdminToken
	var created, expires int64
	var revoked sql.NullInt64
	if err := s.Scan(&t.ID, &t.SecretDigest, &t.Role, &t.Description, &t.CreatedBy, &created, &expires, &revoked); err != nil {
		return store.AdminToken{}, err
	}
	t.CreatedAt, t.ExpiresAt, t.RevokedAt = fromMS(created), fromMS(expires), fromNullMS(revoked)
	return t, nil
}

func (o *ops) CreateAdminToken(ctx context.Context, t store.AdminToken) error {
	if err := t.Validate(); err != nil {
		return err
	}
	n, err := o.exec(ctx, "create admin token", insertAdminTokenSQL, t.ID, t.SecretDigest, t.Role, t.Description,
		t.CreatedBy, ms(t.CreatedAt), ms(t.ExpiresAt), msOrNull(t.RevokedAt))
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("sqlstore: create admin token: %w", store.ErrConflict)
	}
	return nil
}

func (o *ops) GetAdminTokenByDigest(ctx context.Context, digest []byte) (store.AdminToken, error) {
	if err := checkDigest("admin token", digest); err != nil {
		return store.AdminToken{}, err
	}
	t, err := scanAdminToken(o.r.QueryRowContext(ctx, selectAdminTokenByDigestSQL, digest))
	return t, o.d.wrap("get admin token", err)
}

func (o *ops) GetAdminToken(ctx context.Context, id string) (store.AdminToken, error) {
	if err := checkText(id); err != nil {
		return store.AdminToken{}, err
	}
	t, err := scanAdminToken(o.r.QueryRowContext(ctx, selectAdminTokenSQL, id))
	return t, o.d.wrap("get admin token", err)
}

func (o *ops) ListAdminTokens(ctx context.Context, now time.Time) ([]store.AdminToken, error) {
	var out []store.AdminToken
	err := o.queryRows(ctx, "list admin tokens", listAdminTokensSQL, []any{ms(now)}, func(s scanner) error {
		t, err := scanAdminToken(s)
		out = append(out, t)
		return err
	})
	return out, err
}

func (o *ops) RevokeAdminToken(ctx context.Context, id string, at time.Time) error {
	n, err := o.exec(ctx, "revoke admin token", revokeAdminTokenSQL, id, ms(at))
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("sqlstore: revoke admin token: %w", store.ErrNotFound)
	}
	return nil
}

func (o *ops) PruneAdminTokens(ctx context.Context, before time.Time) (int64, error) {
	return o.exec(ctx, "prune admin tokens", pruneAdminTokensSQL, ms(before))
}

// --- Directory listings ---

// listing describes one paged listing: its SELECT with the filter
// conditions on parameters $1..$filters, the unique key column that breaks
// ties, and its sort keys.
type listing struct {
	name    string
	query   string // SELECT ... WHERE <filters>
	filters int    // how many parameters the filters take
	key     string // unique column
	sorts   []sortKey
}

type sortKey struct {
	name   string // a store.Sort* constant
	column string
	isTime bool // the column holds Unix milliseconds; otherwise text
}

const (
	listUsersBase = `SELECT ` + userColumns + ` FROM users
WHERE ($1 = 0 OR disabled = $2)
  AND ($3 = '' OR EXISTS (SELECT 1 FROM group_members m WHERE m.user_id = users.id AND m.group_name = $3))`
	listAppsBase = `SELECT ` + clientListColumns + ` FROM clients
WHERE realm = 'idp' AND ($1 = 0 OR disabled = $2)`
	listGroupsBase    = `SELECT name, description, created_at, updated_at FROM directory_groups WHERE 1 = 1`
	listResourcesBase = `SELECT ` + resourceColumns + ` FROM resources WHERE ($1 = '' OR auth_server = $1)`
	clientListColumns = `id, name, auth_method, secret_digest, jwks, redirect_uris, disabled, created_at`
	appClientIDsSQL   = `SELECT issuer, client_id FROM auth_server_clients WHERE app_id = $1 ORDER BY issuer`
)

var (
	usersListing = listing{name: "users", query: listUsersBase, filters: 3, key: "id", sorts: []sortKey{
		{store.SortName, "username_key", false}, {store.SortCreated, "created_at", true}, {store.SortUpdated, "updated_at", true}}}
	appsListing = listing{name: "apps", query: listAppsBase, filters: 2, key: "id", sorts: []sortKey{
		{store.SortID, "id", false}, {store.SortName, "name", false}, {store.SortCreated, "created_at", true}}}
	groupsListing = listing{name: "groups", query: listGroupsBase, filters: 0, key: "name", sorts: []sortKey{
		{store.SortName, "name", false}, {store.SortCreated, "created_at", true}, {store.SortUpdated, "updated_at", true}}}
	resourcesListing = listing{name: "resources", query: listResourcesBase, filters: 1, key: "uri", sorts: []sortKey{
		{store.SortID, "uri", false}, {store.SortName, "name", false}, {store.SortCreated, "created_at", true}, {store.SortUpdated, "updated_at", true}}}
)

// listQueries holds every listing query text, keyed by listing, sort key
// and direction. Nothing else ever reaches the database from a listing.
var listQueries = buildListQueries(usersListing, appsListing, groupsListing, resourcesListing)

func listQueryKey(l, sort string, desc bool) string {
	return l + "|" + sort + "|" + strconv.FormatBool(desc)
}

func buildListQueries(ls ...listing) map[string]string {
	out := map[string]string{}
	for _, l := range ls {
		p := func(i int) string { return "$" + strconv.Itoa(l.filters+i) }
		for _, s := range l.sorts {
			for _, desc := range []bool{false, true} {
				cmp, dir := " > ", " ASC"
				if desc {
					cmp, dir = " < ", " DESC"
				}
				// $f+1: 1 when a position is given; $f+2: its sort value;
				// $f+3: its unique key; $f+4: the limit.
				q := l.query + "\n  AND (" + p(1) + " = 0 OR " + s.column + cmp + p(2) +
					" OR (" + s.column + " = " + p(2) + " AND " + l.key + cmp + p(3) + "))" +
					"\nORDER BY " + s.column + dir + ", " + l.key + dir + "\nLIMIT " + p(4)
				out[listQueryKey(l.name, s.name, desc)] = q
			}
		}
	}
	return out
}

// pageQuery returns the query text and the page's parameters (after the
// filters') for one listing.
func pageQuery(l listing, page store.Page) (string, []any, error) {
	sorts := make([]string, len(l.sorts))
	for i, s := range l.sorts {
		sorts[i] = s.name
	}
	limit, err := store.CheckPage(page, sorts...)
	if err != nil {
		return "", nil, err
	}
	sk := l.sorts[0]
	for _, s := range l.sorts {
		if s.name == page.Sort {
			sk = s
		}
	}
	q, ok := listQueries[listQueryKey(l.name, sk.name, page.Desc)]
	if !ok { // unreachable: every sort key of every listing is in the map
		return "", nil, fmt.Errorf("%w: no query for %s sorted by %s", store.ErrInvalid, l.name, sk.name)
	}
	var value any = ""
	if sk.isTime {
		value = int64(0)
	}
	flag, id := 0, ""
	if a := page.After; a != nil {
		flag, id = 1, a.ID
		if sk.isTime {
			value = ms(a.Time)
		} else {
			value = a.Text
		}
	}
	return q, []any{flag, value, id, limit}, nil
}

func tristate(t store.Tristate) (flag int, value bool, err error) {
	switch t {
	case store.Any:
		return 0, false, nil
	case store.Yes:
		return 1, true, nil
	case store.No:
		return 1, false, nil
	}
	return 0, false, fmt.Errorf("%w: filter value %d is not Any, Yes or No", store.ErrInvalid, t)
}

func (o *ops) ListUsers(ctx context.Context, q store.UserQuery) ([]store.User, error) {
	flag, value, err := tristate(q.Disabled)
	if err != nil {
		return nil, err
	}
	query, page, err := pageQuery(usersListing, q.Page)
	if err != nil {
		return nil, err
	}
	var out []store.User
	err = o.queryRows(ctx, "list users", query, append([]any{flag, value, q.Group}, page...), func(s scanner) error {
		u, err := scanUser(s)
		out = append(out, u)
		return err
	})
	return out, err
}

func scanListedClient(s scanner) (store.Client, error) {
	c := store.Client{Realm: store.RealmIdP}
	var jwks sql.NullString
	var uris string
	var created int64
	if err := s.Scan(&c.ID, &c.Name, &c.AuthMethod, &c.SecretDigest, &jwks, &uris, &c.Disabled, &created); err != nil {
		return store.Client{}, err
	}
	if jwks.Valid {
		c.JWKS = []byte(jwks.String)
	}
	if err := json.Unmarshal([]byte(uris), &c.RedirectURIs); err != nil {
		return store.Client{}, fmt.Errorf("%w: redirect URIs of client %s: %w", errCorrupt, c.ID, err)
	}
	if len(c.RedirectURIs) == 0 {
		c.RedirectURIs = nil
	}
	c.CreatedAt = fromMS(created)
	return c, nil
}

func (o *ops) ListApps(ctx context.Context, q store.AppQuery) ([]store.Client, error) {
	flag, value, err := tristate(q.Disabled)
	if err != nil {
		return nil, err
	}
	query, page, err := pageQuery(appsListing, q.Page)
	if err != nil {
		return nil, err
	}
	var out []store.Client
	err = o.queryRows(ctx, "list apps", query, append([]any{flag, value}, page...), func(s scanner) error {
		c, err := scanListedClient(s)
		out = append(out, c)
		return err
	})
	return out, err
}

func (o *ops) ListGroupsPage(ctx context.Context, q store.GroupQuery) ([]store.Group, error) {
	query, page, err := pageQuery(groupsListing, q.Page)
	if err != nil {
		return nil, err
	}
	var out []store.Group
	err = o.queryRows(ctx, "list groups", query, page, func(s scanner) error {
		g, err := scanGroup(s)
		out = append(out, g)
		return err
	})
	return out, err
}

func (o *ops) ListResources(ctx context.Context, q store.ResourceQuery) ([]store.Resource, error) {
	query, page, err := pageQuery(resourcesListing, q.Page)
	if err != nil {
		return nil, err
	}
	var out []store.Resource
	err = o.queryRows(ctx, "list resources", query, append([]any{q.AuthServer}, page...), func(s scanner) error {
		r, err := scanResource(s)
		out = append(out, r)
		return err
	})
	return out, err
}

func (o *ops) AppClientIDs(ctx context.Context, appID string) (map[string]string, error) {
	out := map[string]string{}
	err := o.queryRows(ctx, "app client ids", appClientIDsSQL, []any{appID}, func(s scanner) error {
		var issuer, there string
		if err := s.Scan(&issuer, &there); err != nil {
			return err
		}
		out[issuer] = there
		return nil
	})
	return out, err
}

// --- autocommit wrappers ---

// CreateAdminSession implements store.AdminSessions.
func (db *DB) CreateAdminSession(ctx context.Context, s store.AdminSession) error {
	return db.auto().CreateAdminSession(ctx, s)
}

// GetAdminSessionByDigest implements store.AdminSessions.
func (db *DB) GetAdminSessionByDigest(ctx context.Context, digest []byte) (store.AdminSession, error) {
	return db.auto().GetAdminSessionByDigest(ctx, digest)
}

// RevokeAdminSession implements store.AdminSessions.
func (db *DB) RevokeAdminSession(ctx context.Context, id string, at time.Time) error {
	return db.auto().RevokeAdminSession(ctx, id, at)
}

// PruneAdminSessions implements store.AdminSessions.
func (db *DB) PruneAdminSessions(ctx context.Context, before time.Time) (int64, error) {
	return db.auto().PruneAdminSessions(ctx, before)
}

// CreateAdminToken implements store.AdminTokens.
func (db *DB) CreateAdminToken(ctx context.Context, t store.AdminToken) error {
	return db.auto().CreateAdminToken(ctx, t)
}

// GetAdminTokenByDigest implements store.AdminTokens.
func (db *DB) GetAdminTokenByDigest(ctx context.Context, digest []byte) (store.AdminToken, error) {
	return db.auto().GetAdminTokenByDigest(ctx, digest)
}

// GetAdminToken implements store.AdminTokens.
func (db *DB) GetAdminToken(ctx context.Context, id string) (store.AdminToken, error) {
	return db.auto().GetAdminToken(ctx, id)
}

// ListAdminTokens implements store.AdminTokens.
func (db *DB) ListAdminTokens(ctx context.Context, now time.Time) ([]store.AdminToken, error) {
	return db.auto().ListAdminTokens(ctx, now)
}

// RevokeAdminToken implements store.AdminTokens.
func (db *DB) RevokeAdminToken(ctx context.Context, id string, at time.Time) error {
	return db.auto().RevokeAdminToken(ctx, id, at)
}

// PruneAdminTokens implements store.AdminTokens.
func (db *DB) PruneAdminTokens(ctx context.Context, before time.Time) (int64, error) {
	return db.auto().PruneAdminTokens(ctx, before)
}

// ListUsers implements store.DirectoryLists.
func (db *DB) ListUsers(ctx context.Context, q store.UserQuery) ([]store.User, error) {
	return db.auto().ListUsers(ctx, q)
}

// ListApps implements store.DirectoryLists.
func (db *DB) ListApps(ctx context.Context, q store.AppQuery) ([]store.Client, error) {
	return db.auto().ListApps(ctx, q)
}

// ListGroupsPage implements store.DirectoryLists.
func (db *DB) ListGroupsPage(ctx context.Context, q store.GroupQuery) ([]store.Group, error) {
	return db.auto().ListGroupsPage(ctx, q)
}

// ListResources implements store.DirectoryLists.
func (db *DB) ListResources(ctx context.Context, q store.ResourceQuery) ([]store.Resource, error) {
	return db.auto().ListResources(ctx, q)
}

// AppClientIDs implements store.DirectoryLists.
func (db *DB) AppClientIDs(ctx context.Context, appID string) (map[string]string, error) {
	return db.auto().AppClientIDs(ctx, appID)
}
