package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/openxaa/xaa/internal/store"
)

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// ops implements every aggregate against w (writes) and r (reads). Inside a
// transaction both are the *sql.Tx; in autocommit mode w is the write pool
// and r the read pool. Operations that need more than one statement
// (AppendAudit, UpdateSigningKey) are only reached through a transaction.
type ops struct {
	d    *dialect
	w, r querier
}

// exec runs a write after checking its text arguments, so both dialects
// accept and refuse the same values (PostgreSQL rejects invalid UTF-8 and
// NUL in TEXT, SQLite would store them).
func (o *ops) exec(ctx context.Context, op, query string, args ...any) (int64, error) {
	if err := checkArgs(args); err != nil {
		return 0, fmt.Errorf("sqlstore: %s: %w", op, err)
	}
	res, err := o.w.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, o.d.wrap(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, o.d.wrap(op, err)
	}
	return n, nil
}

// queryRow runs a single-row read on q and scans it into dest.
func (o *ops) queryRow(ctx context.Context, q querier, op, query string, args []any, dest ...any) error {
	if err := checkArgs(args); err != nil {
		return fmt.Errorf("sqlstore: %s: %w", op, err)
	}
	return o.d.wrap(op, q.QueryRowContext(ctx, query, args...).Scan(dest...))
}

func checkArgs(args []any) error {
	for _, a := range args {
		if s, ok := a.(string); ok {
			if err := checkText(s); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkText(s string) error {
	if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
		return fmt.Errorf("%w: text is not valid UTF-8 or contains NUL", ErrInvalidInput)
	}
	return nil
}

// ms encodes a required time as Unix milliseconds.
func ms(t time.Time) int64 { return t.UnixMilli() }

// msOrNull encodes an optional time: the zero time is NULL.
func msOrNull(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

func fromNullMS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMS(v.Int64)
}

// bytesOrNull keeps nil distinct from empty: nil is stored as NULL.
func bytesOrNull(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

// jsonOrNull stores JSON bytes as TEXT, nil as NULL.
func jsonOrNull(b []byte) any {
	if b == nil {
		return nil
	}
	return string(b)
}

// --- Replay ---

const (
	insertReplaySQL = `INSERT INTO replay (namespace, issuer, jti, expires_at)
VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`
	pruneReplaySQL = `DELETE FROM replay WHERE expires_at < $1`
)

// RecordOnce inserts the entry unless it exists. ON CONFLICT DO NOTHING
// makes the database pick exactly one winner among concurrent callers, on
// PostgreSQL across instances too; the loser sees zero rows affected. It does
// not abort an enclosing PostgreSQL transaction.
func (o *ops) RecordOnce(ctx context.Context, e store.ReplayEntry) error {
	if e.Namespace == "" || e.JTI == "" {
		return fmt.Errorf("%w: replay entry needs a namespace and a jti", ErrInvalidInput)
	}
	if e.ExpiresAt.IsZero() {
		// A zero expiry would be pruned at once and reopen the replay window.
		return fmt.Errorf("%w: replay entry needs an expiry", ErrInvalidInput)
	}
	n, err := o.exec(ctx, "record once", insertReplaySQL, e.Namespace, e.Issuer, e.JTI, ms(e.ExpiresAt))
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("sqlstore: record once: %w", store.ErrReplay)
	}
	return nil
}

// PruneReplay deletes expired entries. Until pruned, an expired entry still
// rejects its jti, which is the safe direction.
func (o *ops) PruneReplay(ctx context.Context, before time.Time) (int64, error) {
	return o.exec(ctx, "prune replay", pruneReplaySQL, ms(before))
}

// --- Tokens ---

const (
	insertTokenSQL = `INSERT INTO tokens (issuer, jti, kind, client_id, subject, audience, resource,
    scope, parent_jti, issued_at, expires_at, revoked_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING`
	selectTokenSQL = `SELECT kind, client_id, subject, audience, resource, scope, parent_jti,
    issued_at, expires_at, revoked_at
FROM tokens WHERE issuer = $1 AND jti = $2`
	// COALESCE keeps the first revocation time and cursor; a matched row
	// counts as affected on both databases even when nothing changes.
	// SQLite runs one writer at a time, so MAX + 1 is assigned and
	// committed in order. The sequence is shared with fences (0005).
	revokeTokenSQLite = `UPDATE tokens SET revoked_at = COALESCE(revoked_at, $3),
    revocation_seq = COALESCE(revocation_seq, ` + nextRevocationSeqSQLite + `)
WHERE issuer = $1 AND jti = $2`
	// On PostgreSQL the cursor comes from revocation_counter, whose row
	// lock the transaction holds until it commits: a second revoker waits,
	// so a larger cursor never commits before a smaller one (a sequence
	// could, and a poller past it would miss the smaller). The counter
	// moves only for a token not yet revoked; a concurrent revocation of
	// the same token leaves a gap, which is harmless.
	revokeTokenPostgres = `WITH c AS (
    UPDATE revocation_counter SET n = n + 1
    WHERE id = 1 AND EXISTS (SELECT 1 FROM tokens WHERE issuer = $1 AND jti = $2 AND revocation_seq IS NULL)
    RETURNING n)
UPDATE tokens SET revoked_at = COALESCE(revoked_at, $3),
    revocation_seq = COALESCE(revocation_seq, (SELECT n FROM c))
WHERE issuer = $1 AND jti = $2`
	listRevokedTokensSQL = `SELECT jti, resource, revoked_at, revocation_seq FROM tokens
WHERE revocation_seq > $2 AND issuer = $1 AND kind = 'access_token'
ORDER BY revocation_seq LIMIT $3`
)

// Revocation list page sizes.
const (
	defaultRevokedLimit = 100
	maxRevokedLimit     = 1000
)

// RecordToken uses ON CONFLICT DO NOTHING rather than catching a unique
// violation so a duplicate does not abort an enclosing PostgreSQL
// transaction.
func (o *ops) RecordToken(ctx context.Context, t store.IssuedToken) error {
	if t.JTI == "" || t.IssuedAt.IsZero() || t.ExpiresAt.IsZero() {
		return fmt.Errorf("%w: token needs a jti, an issue time and an expiry", ErrInvalidInput)
	}
	n, err := o.exec(ctx, "record token", insertTokenSQL,
		t.Issuer, t.JTI, t.Kind, t.ClientID, t.Subject, t.Audience, t.Resource,
		t.Scope, t.ParentJTI, ms(t.IssuedAt), ms(t.ExpiresAt), msOrNull(t.RevokedAt))
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("sqlstore: record token: %w", store.ErrConflict)
	}
	return nil
}

func (o *ops) GetToken(ctx context.Context, issuer, jti string) (store.IssuedToken, error) {
	t := store.IssuedToken{Issuer: issuer, JTI: jti}
	var iat, exp int64
	var revoked sql.NullInt64
	err := o.queryRow(ctx, o.r, "get token", selectTokenSQL, []any{issuer, jti},
		&t.Kind, &t.ClientID, &t.Subject, &t.Audience, &t.Resource, &t.Scope, &t.ParentJTI,
		&iat, &exp, &revoked)
	if err != nil {
		return store.IssuedToken{}, err
	}
	t.IssuedAt, t.ExpiresAt, t.RevokedAt = fromMS(iat), fromMS(exp), fromNullMS(revoked)
	return t, nil
}

func (o *ops) RevokeToken(ctx context.Context, issuer, jti string, at time.Time) error {
	if at.IsZero() {
		// NULL would leave the token looking unrevoked.
		return fmt.Errorf("%w: revocation time is zero", ErrInvalidInput)
	}
	n, err := o.exec(ctx, "revoke token", o.d.revokeToken, issuer, jti, ms(at))
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("sqlstore: revoke token: %w", store.ErrNotFound)
	}
	return nil
}

func (o *ops) ListRevokedTokens(ctx context.Context, issuer string, afterCursor int64, limit int) ([]store.RevokedToken, int64, error) {
	if limit <= 0 {
		limit = defaultRevokedLimit
	}
	limit = min(limit, maxRevokedLimit)
	if err := checkText(issuer); err != nil {
		return nil, afterCursor, fmt.Errorf("sqlstore: list revoked tokens: %w", err)
	}
	rows, err := o.r.QueryContext(ctx, listRevokedTokensSQL, issuer, afterCursor, limit)
	if err != nil {
		return nil, afterCursor, o.d.wrap("list revoked tokens", err)
	}
	defer rows.Close()
	next := afterCursor
	var out []store.RevokedToken
	for rows.Next() {
		var t store.RevokedToken
		var at int64
		if err := rows.Scan(&t.JTI, &t.Resource, &at, &t.Cursor); err != nil {
			return nil, afterCursor, o.d.wrap("list revoked tokens", err)
		}
		t.RevokedAt = fromMS(at)
		next = t.Cursor
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, afterCursor, o.d.wrap("list revoked tokens", err)
	}
	return out, next, nil
}

// --- Signing keys ---

const (
	signingKeyColumns = `kid, owner, algorithm, state, public_jwk, sealed_private,
    created_at, activated_at, retire_after`
	insertKeySQL = `INSERT INTO signing_keys (` + signingKeyColumns + `)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING`
	listKeysSQL  = `SELECT ` + signingKeyColumns + ` FROM signing_keys WHERE owner = $1 ORDER BY created_at, kid`
	selectKeySQL = `SELECT ` + signingKeyColumns + ` FROM signing_keys WHERE owner = $1 AND kid = $2`
	updateKeySQL = `UPDATE signing_keys SET algorithm = $3, state = $4, public_jwk = $5,
    sealed_private = $6, created_at = $7, activated_at = $8, retire_after = $9
WHERE owner = $1 AND kid = $2`
)

func validKey(k store.SigningKey) error {
	switch {
	case k.KID == "" || k.Owner == "":
		return fmt.Errorf("%w: signing key needs a kid and an owner", ErrInvalidInput)
	case k.CreatedAt.IsZero():
		return fmt.Errorf("%w: signing key needs a creation time", ErrInvalidInput)
	case !json.Valid(k.PublicJWK):
		return fmt.Errorf("%w: signing key public JWK is not JSON", ErrInvalidInput)
	}
	switch k.State {
	case store.KeyNext, store.KeyActive, store.KeyRetiring, store.KeyRetired:
		return nil
	}
	return fmt.Errorf("%w: unknown signing key state %q", ErrInvalidInput, k.State)
}

// CreateSigningKey returns store.ErrConflict if the kid exists, or if k is
// active while the owner already has an active key.
func (o *ops) CreateSigningKey(ctx context.Context, k store.SigningKey) error {
	if err := validKey(k); err != nil {
		return err
	}
	n, err := o.exec(ctx, "create signing key", insertKeySQL,
		k.KID, k.Owner, k.Algorithm, string(k.State), string(k.PublicJWK), bytesOrNull(k.SealedPrivate),
		ms(k.CreatedAt), msOrNull(k.ActivatedAt), msOrNull(k.RetireAfter))
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("sqlstore: create signing key: %w", store.ErrConflict)
	}
	return nil
}

type scanner interface{ Scan(dest ...any) error }

func scanKey(s scanner) (store.SigningKey, error) {
	var k store.SigningKey
	var state, jwk string
	var created int64
	var activated, retire sql.NullInt64
	if err := s.Scan(&k.KID, &k.Owner, &k.Algorithm, &state, &jwk, &k.SealedPrivate,
		&created, &activated, &retire); err != nil {
		return store.SigningKey{}, err
	}
	k.State = store.KeyState(state)
	k.PublicJWK = []byte(jwk)
	k.CreatedAt, k.ActivatedAt, k.RetireAfter = fromMS(created), fromNullMS(activated), fromNullMS(retire)
	return k, nil
}

func (o *ops) ListSigningKeys(ctx context.Context, owner string) ([]store.SigningKey, error) {
	if err := checkText(owner); err != nil {
		return nil, err
	}
	rows, err := o.r.QueryContext(ctx, listKeysSQL, owner)
	if err != nil {
		return nil, o.d.wrap("list signing keys", err)
	}
	defer rows.Close()
	var keys []store.SigningKey
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, o.d.wrap("list signing keys", err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, o.d.wrap("list signing keys", err)
	}
	return keys, nil
}

// UpdateSigningKey reads the row (locking it on PostgreSQL), applies fn and
// writes the result. It runs inside the caller's transaction, so an error
// from fn or from the write leaves the row as it was once the transaction
// rolls back.
func (o *ops) UpdateSigningKey(ctx context.Context, owner, kid string, fn func(store.SigningKey) (store.SigningKey, error)) error {
	if err := checkArgs([]any{owner, kid}); err != nil {
		return err
	}
	cur, err := scanKey(o.w.QueryRowContext(ctx, o.d.selectKeyForUpdate, owner, kid))
	if err != nil {
		return o.d.wrap("update signing key", err)
	}
	next, err := fn(cur)
	if err != nil {
		return err
	}
	if next.KID != cur.KID || next.Owner != cur.Owner {
		return fmt.Errorf("%w: UpdateSigningKey cannot change a key's kid or owner", ErrInvalidInput)
	}
	if err := validKey(next); err != nil {
		return err
	}
	n, err := o.exec(ctx, "update signing key", updateKeySQL,
		owner, kid, next.Algorithm, string(next.State), string(next.PublicJWK), bytesOrNull(next.SealedPrivate),
		ms(next.CreatedAt), msOrNull(next.ActivatedAt), msOrNull(next.RetireAfter))
	if err != nil {
		return err
	}
	if n != 1 {
		return fmt.Errorf("sqlstore: update signing key: %w", store.ErrNotFound)
	}
	return nil
}

// --- Clients ---

const (
	insertClientSQL = `INSERT INTO clients (realm, id, name, auth_method, secret_digest, jwks,
    redirect_uris, disabled, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING`
	selectClientSQL = `SELECT name, auth_method, secret_digest, jwks, redirect_uris, disabled, created_at
FROM clients WHERE realm = $1 AND id = $2`
)

func (o *ops) CreateClient(ctx context.Context, c store.Client) error {
	switch {
	case c.ID == "":
		return fmt.Errorf("%w: client needs an id", ErrInvalidInput)
	case c.CreatedAt.IsZero():
		return fmt.Errorf("%w: client needs a creation time", ErrInvalidInput)
	case c.SecretDigest != nil && len(c.SecretDigest) != 32:
		// Catches a plaintext secret passed by mistake.
		return fmt.Errorf("%w: client secret digest must be 32 bytes (SHA-256)", ErrInvalidInput)
	case c.JWKS != nil && !json.Valid(c.JWKS):
		return fmt.Errorf("%w: client JWKS is not JSON", ErrInvalidInput)
	}
	uris := c.RedirectURIs
	if uris == nil {
		uris = []string{}
	}
	for _, u := range uris {
		if err := checkText(u); err != nil {
			return err
		}
	}
	urisJSON, err := json.Marshal(uris)
	if err != nil {
		return fmt.Errorf("sqlstore: create client: %w", err)
	}
	n, err := o.exec(ctx, "create client", insertClientSQL,
		c.Realm, c.ID, c.Name, c.AuthMethod, bytesOrNull(c.SecretDigest), jsonOrNull(c.JWKS),
		string(urisJSON), c.Disabled, ms(c.CreatedAt))
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("sqlstore: create client: %w", store.ErrConflict)
	}
	return nil
}

func (o *ops) GetClient(ctx context.Context, realm, id string) (store.Client, error) {
	c := store.Client{Realm: realm, ID: id}
	var jwks sql.NullString
	var uris string
	var created int64
	err := o.queryRow(ctx, o.r, "get client", selectClientSQL, []any{realm, id},
		&c.Name, &c.AuthMethod, &c.SecretDigest, &jwks, &uris, &c.Disabled, &created)
	if err != nil {
		return store.Client{}, err
	}
	if jwks.Valid {
		c.JWKS = []byte(jwks.String)
	}
	if err := json.Unmarshal([]byte(uris), &c.RedirectURIs); err != nil {
		return store.Client{}, fmt.Errorf("sqlstore: get client: redirect URIs: %w", err)
	}
	if len(c.RedirectURIs) == 0 {
		c.RedirectURIs = nil
	}
	c.CreatedAt = fromMS(created)
	return c, nil
}
