package sqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/openxaa/xaa/internal/store"
)

// The IdP's single sign-on state (store.Sessions, store.AuthCodes,
// store.RefreshTokens). Single-use transitions (redeeming a code, rotating
// a refresh token) are one conditional UPDATE, so the database picks
// exactly one winner among concurrent callers, across instances on
// PostgreSQL too.

func checkDigest(what string, d []byte) error {
	if len(d) != sha256.Size {
		return fmt.Errorf("%w: %s digest must be %d bytes", ErrInvalidInput, what, sha256.Size)
	}
	return nil
}

func amrJSON(amr []string) (string, error) {
	if amr == nil {
		amr = []string{}
	}
	b, err := json.Marshal(amr)
	if err != nil {
		return "", fmt.Errorf("%w: amr: %v", ErrInvalidInput, err)
	}
	return string(b), nil
}

func parseAMR(raw string) ([]string, error) {
	var amr []string
	if err := json.Unmarshal([]byte(raw), &amr); err != nil {
		return nil, fmt.Errorf("%w: amr: %v", errCorrupt, err)
	}
	if len(amr) == 0 {
		return nil, nil
	}
	return amr, nil
}

// --- Sessions ---

const (
	sessionColumns   = `id, secret_digest, user_id, auth_time, acr, amr, created_at, expires_at, revoked_at`
	insertSessionSQL = `INSERT INTO idp_sessions (` + sessionColumns + `)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING`
	selectSessionSQL = `SELECT ` + sessionColumns + ` FROM idp_sessions WHERE secret_digest = $1`
	revokeSessionSQL = `UPDATE idp_sessions SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1`
)

func (o *ops) CreateSession(ctx context.Context, s store.Session) error {
	if err := checkDigest("session", s.SecretDigest); err != nil {
		return err
	}
	if s.ID == "" || s.UserID == "" || s.AuthTime.IsZero() || s.CreatedAt.IsZero() || s.ExpiresAt.IsZero() {
		return fmt.Errorf("%w: session needs an id, a user, an auth time, a creation time and an expiry", ErrInvalidInput)
	}
	amr, err := amrJSON(s.AMR)
	if err != nil {
		return err
	}
	n, err := o.exec(ctx, "create session", insertSessionSQL, s.ID, s.SecretDigest, s.UserID,
		ms(s.AuthTime), s.ACR, amr, ms(s.CreatedAt), ms(s.ExpiresAt), msOrNull(s.RevokedAt))
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("sqlstore: create session: %w", store.ErrConflict)
	}
	return nil
}

func (o *ops) GetSessionByDigest(ctx context.Context, digest []byte) (store.Session, error) {
	if err := checkDigest("session", digest); err != nil {
		return store.Session{}, err
	}
	var s store.Session
	var authTime, created, expires int64
	var revoked sql.NullInt64
	var amr string
	if err := o.queryRow(ctx, o.r, "get session", selectSessionSQL, []any{digest},
		&s.ID, &s.SecretDigest, &s.UserID, &authTime, &s.ACR, &amr, &created, &expires, &revoked); err != nil {
		return store.Session{}, err
	}
	var err error
	if s.AMR, err = parseAMR(amr); err != nil {
		return store.Session{}, err
	}
	s.AuthTime, s.CreatedAt, s.ExpiresAt, s.RevokedAt = fromMS(authTime), fromMS(created), fromMS(expires), fromNullMS(revoked)
	return s, nil
}

func (o *ops) RevokeSession(ctx context.Context, id string, at time.Time) error {
	if at.IsZero() {
		return fmt.Errorf("%w: revocation time is zero", ErrInvalidInput)
	}
	n, err := o.exec(ctx, "revoke session", revokeSessionSQL, id, ms(at))
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("sqlstore: revoke session: %w", store.ErrNotFound)
	}
	return nil
}

// --- Authorization codes ---

const (
	authCodeColumns = `digest, client_id, redirect_uri, user_id, session_id, scope, nonce, code_challenge,
    auth_time, acr, amr, issued_at, expires_at, consumed_at, refresh_family, id_token_jti, access_token_jti`
	insertAuthCodeSQL = `INSERT INTO idp_auth_codes (` + authCodeColumns + `)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) ON CONFLICT DO NOTHING`
	consumeAuthCodeSQL = `UPDATE idp_auth_codes SET consumed_at = $2 WHERE digest = $1 AND consumed_at IS NULL
RETURNING ` + authCodeColumns
	selectAuthCodeSQL      = `SELECT ` + authCodeColumns + ` FROM idp_auth_codes WHERE digest = $1`
	recordAuthCodeIssueSQL = `UPDATE idp_auth_codes SET refresh_family = $2, id_token_jti = $3, access_token_jti = $4
WHERE digest = $1`
)

func scanAuthCode(s scanner) (store.AuthCode, error) {
	var c store.AuthCode
	var authTime, issued, expires int64
	var consumed sql.NullInt64
	var amr string
	if err := s.Scan(&c.Digest, &c.ClientID, &c.RedirectURI, &c.UserID, &c.SessionID, &c.Scope, &c.Nonce,
		&c.CodeChallenge, &authTime, &c.ACR, &amr, &issued, &expires, &consumed,
		&c.RefreshFamily, &c.IDTokenJTI, &c.AccessTokenJTI); err != nil {
		return store.AuthCode{}, err
	}
	var err error
	if c.AMR, err = parseAMR(amr); err != nil {
		return store.AuthCode{}, err
	}
	c.AuthTime, c.IssuedAt, c.ExpiresAt, c.ConsumedAt = fromMS(authTime), fromMS(issued), fromMS(expires), fromNullMS(consumed)
	return c, nil
}

func (o *ops) CreateAuthCode(ctx context.Context, c store.AuthCode) error {
	if err := checkDigest("authorization code", c.Digest); err != nil {
		return err
	}
	if c.ClientID == "" || c.RedirectURI == "" || c.UserID == "" || c.CodeChallenge == "" ||
		c.AuthTime.IsZero() || c.IssuedAt.IsZero() || c.ExpiresAt.IsZero() {
		return fmt.Errorf("%w: authorization code needs a client, a redirect URI, a user, a code challenge and its times", ErrInvalidInput)
	}
	amr, err := amrJSON(c.AMR)
	if err != nil {
		return err
	}
	n, err := o.exec(ctx, "create authorization code", insertAuthCodeSQL, c.Digest, c.ClientID, c.RedirectURI,
		c.UserID, c.SessionID, c.Scope, c.Nonce, c.CodeChallenge, ms(c.AuthTime), c.ACR, amr,
		ms(c.IssuedAt), ms(c.ExpiresAt), msOrNull(c.ConsumedAt), c.RefreshFamily, c.IDTokenJTI, c.AccessTokenJTI)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("sqlstore: create authorization code: %w", store.ErrConflict)
	}
	return nil
}

// ConsumeAuthCode is one conditional UPDATE ... RETURNING on the write
// connection; only when it matches nothing does a second read tell a used
// code from an unknown one.
func (o *ops) ConsumeAuthCode(ctx context.Context, digest []byte, at time.Time) (store.AuthCode, error) {
	if err := checkDigest("authorization code", digest); err != nil {
		return store.AuthCode{}, err
	}
	if at.IsZero() {
		return store.AuthCode{}, fmt.Errorf("%w: consumption time is zero", ErrInvalidInput)
	}
	c, err := scanAuthCode(o.w.QueryRowContext(ctx, consumeAuthCodeSQL, digest, ms(at)))
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return store.AuthCode{}, o.d.wrap("consume authorization code", err)
	}
	c, err = scanAuthCode(o.w.QueryRowContext(ctx, selectAuthCodeSQL, digest))
	if err != nil {
		return store.AuthCode{}, o.d.wrap("consume authorization code", err)
	}
	return c, fmt.Errorf("sqlstore: consume authorization code: %w", store.ErrReplay)
}

func (o *ops) RecordAuthCodeIssue(ctx context.Context, digest []byte, refreshFamily, idTokenJTI, accessTokenJTI string) error {
	if err := checkDigest("authorization code", digest); err != nil {
		return err
	}
	n, err := o.exec(ctx, "record authorization code issue", recordAuthCodeIssueSQL, digest, refreshFamily, idTokenJTI, accessTokenJTI)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("sqlstore: record authorization code issue: %w", store.ErrNotFound)
	}
	return nil
}

// --- Refresh tokens ---

const (
	refreshColumns = `digest, family_id, client_id, user_id, session_id, scope, auth_time, acr, amr,
    issued_at, expires_at, superseded_at, revoked_at`
	insertRefreshSQL = `INSERT INTO idp_refresh_tokens (` + refreshColumns + `)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT DO NOTHING`
	selectRefreshSQL    = `SELECT ` + refreshColumns + ` FROM idp_refresh_tokens WHERE digest = $1`
	supersedeRefreshSQL = `UPDATE idp_refresh_tokens SET superseded_at = $2
WHERE digest = $1 AND superseded_at IS NULL AND revoked_at IS NULL`
	refreshExistsSQL    = `SELECT 1 FROM idp_refresh_tokens WHERE digest = $1`
	revokeRefreshFamSQL = `UPDATE idp_refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL`
)

func (o *ops) CreateRefreshToken(ctx context.Context, t store.RefreshToken) error {
	if err := checkDigest("refresh token", t.Digest); err != nil {
		return err
	}
	if t.FamilyID == "" || t.ClientID == "" || t.UserID == "" || t.AuthTime.IsZero() || t.IssuedAt.IsZero() || t.ExpiresAt.IsZero() {
		return fmt.Errorf("%w: refresh token needs a family, a client, a user and its times", ErrInvalidInput)
	}
	amr, err := amrJSON(t.AMR)
	if err != nil {
		return err
	}
	n, err := o.exec(ctx, "create refresh token", insertRefreshSQL, t.Digest, t.FamilyID, t.ClientID, t.UserID,
		t.SessionID, t.Scope, ms(t.AuthTime), t.ACR, amr, ms(t.IssuedAt), ms(t.ExpiresAt),
		msOrNull(t.SupersededAt), msOrNull(t.RevokedAt))
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("sqlstore: create refresh token: %w", store.ErrConflict)
	}
	return nil
}

func (o *ops) GetRefreshToken(ctx context.Context, digest []byte) (store.RefreshToken, error) {
	if err := checkDigest("refresh token", digest); err != nil {
		return store.RefreshToken{}, err
	}
	var t store.RefreshToken
	var authTime, issued, expires int64
	var superseded, revoked sql.NullInt64
	var amr string
	if err := o.queryRow(ctx, o.r, "get refresh token", selectRefreshSQL, []any{digest},
		&t.Digest, &t.FamilyID, &t.ClientID, &t.UserID, &t.SessionID, &t.Scope, &authTime, &t.ACR, &amr,
		&issued, &expires, &superseded, &revoked); err != nil {
		return store.RefreshToken{}, err
	}
	var err error
	if t.AMR, err = parseAMR(amr); err != nil {
		return store.RefreshToken{}, err
	}
	t.AuthTime, t.IssuedAt, t.ExpiresAt = fromMS(authTime), fromMS(issued), fromMS(expires)
	t.SupersededAt, t.RevokedAt = fromNullMS(superseded), fromNullMS(revoked)
	return t, nil
}

// RotateRefreshToken needs two statements; outside a transaction the *DB
// wrapper runs it in one.
func (o *ops) RotateRefreshToken(ctx context.Context, digest []byte, next store.RefreshToken, at time.Time) error {
	if err := checkDigest("refresh token", digest); err != nil {
		return err
	}
	if at.IsZero() {
		return fmt.Errorf("%w: rotation time is zero", ErrInvalidInput)
	}
	n, err := o.exec(ctx, "rotate refresh token", supersedeRefreshSQL, digest, ms(at))
	if err != nil {
		return err
	}
	if n == 0 {
		found, err := o.exists(ctx, "rotate refresh token", refreshExistsSQL, digest)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("sqlstore: rotate refresh token: %w", store.ErrNotFound)
		}
		return fmt.Errorf("sqlstore: rotate refresh token: %w", store.ErrReplay)
	}
	return o.CreateRefreshToken(ctx, next)
}

func (o *ops) RevokeRefreshFamily(ctx context.Context, familyID string, at time.Time) (int64, error) {
	if familyID == "" || at.IsZero() {
		return 0, fmt.Errorf("%w: family revocation needs a family and a time", ErrInvalidInput)
	}
	return o.exec(ctx, "revoke refresh family", revokeRefreshFamSQL, familyID, ms(at))
}

// --- Pruning ---

// pruneBatch bounds one DELETE, so that pruning a backlog never holds
// SQLite's single writer (or PostgreSQL row locks) for long: outside a
// transaction each batch commits on its own.
const pruneBatch = 1000

const (
	pruneSessionsSQL = `DELETE FROM idp_sessions WHERE id IN
    (SELECT id FROM idp_sessions WHERE expires_at < $1 LIMIT $2)`
	pruneAuthCodesSQL = `DELETE FROM idp_auth_codes WHERE digest IN
    (SELECT digest FROM idp_auth_codes WHERE expires_at < $1 LIMIT $2)`
	pruneRefreshSQL = `DELETE FROM idp_refresh_tokens WHERE digest IN
    (SELECT digest FROM idp_refresh_tokens WHERE expires_at < $1 LIMIT $2)`
)

// prune runs a batched DELETE until a batch comes back short. It returns
// how many rows it deleted, on error too.
func (o *ops) prune(ctx context.Context, op, query string, before time.Time) (int64, error) {
	if before.IsZero() {
		return 0, fmt.Errorf("%w: %s: the cutoff time is zero", ErrInvalidInput, op)
	}
	var total int64
	for {
		n, err := o.exec(ctx, op, query, ms(before), pruneBatch)
		total += n
		if err != nil || n < pruneBatch {
			return total, err
		}
	}
}

func (o *ops) PruneSessions(ctx context.Context, before time.Time) (int64, error) {
	return o.prune(ctx, "prune sessions", pruneSessionsSQL, before)
}

func (o *ops) PruneAuthCodes(ctx context.Context, before time.Time) (int64, error) {
	return o.prune(ctx, "prune authorization codes", pruneAuthCodesSQL, before)
}

func (o *ops) PruneRefreshTokens(ctx context.Context, before time.Time) (int64, error) {
	return o.prune(ctx, "prune refresh tokens", pruneRefreshSQL, before)
}

// --- autocommit wrappers ---

// CreateSession implements store.Sessions.
func (db *DB) CreateSession(ctx context.Context, s store.Session) error {
	return db.auto().CreateSession(ctx, s)
}

// GetSessionByDigest implements store.Sessions.
func (db *DB) GetSessionByDigest(ctx context.Context, digest []byte) (store.Session, error) {
	return db.auto().GetSessionByDigest(ctx, digest)
}

// RevokeSession implements store.Sessions.
func (db *DB) RevokeSession(ctx context.Context, id string, at time.Time) error {
	return db.auto().RevokeSession(ctx, id, at)
}

// CreateAuthCode implements store.AuthCodes.
func (db *DB) CreateAuthCode(ctx context.Context, c store.AuthCode) error {
	return db.auto().CreateAuthCode(ctx, c)
}

// ConsumeAuthCode implements store.AuthCodes.
func (db *DB) ConsumeAuthCode(ctx context.Context, digest []byte, at time.Time) (store.AuthCode, error) {
	return db.auto().ConsumeAuthCode(ctx, digest, at)
}

// RecordAuthCodeIssue implements store.AuthCodes.
func (db *DB) RecordAuthCodeIssue(ctx context.Context, digest []byte, refreshFamily, idTokenJTI, accessTokenJTI string) error {
	return db.auto().RecordAuthCodeIssue(ctx, digest, refreshFamily, idTokenJTI, accessTokenJTI)
}

// CreateRefreshToken implements store.RefreshTokens.
func (db *DB) CreateRefreshToken(ctx context.Context, t store.RefreshToken) error {
	return db.auto().CreateRefreshToken(ctx, t)
}

// GetRefreshToken implements store.RefreshTokens.
func (db *DB) GetRefreshToken(ctx context.Context, digest []byte) (store.RefreshToken, error) {
	return db.auto().GetRefreshToken(ctx, digest)
}

// RotateRefreshToken implements store.RefreshTokens in its own write
// transaction.
func (db *DB) RotateRefreshToken(ctx context.Context, digest []byte, next store.RefreshToken, at time.Time) error {
	return db.InTx(ctx, func(tx store.Tx) error { return tx.RotateRefreshToken(ctx, digest, next, at) })
}

// RevokeRefreshFamily implements store.RefreshTokens.
func (db *DB) RevokeRefreshFamily(ctx context.Context, familyID string, at time.Time) (int64, error) {
	return db.auto().RevokeRefreshFamily(ctx, familyID, at)
}

// PruneSessions implements store.Sessions, committing batch by batch.
func (db *DB) PruneSessions(ctx context.Context, before time.Time) (int64, error) {
	return db.auto().PruneSessions(ctx, before)
}

// PruneAuthCodes implements store.AuthCodes, committing batch by batch.
func (db *DB) PruneAuthCodes(ctx context.Context, before time.Time) (int64, error) {
	return db.auto().PruneAuthCodes(ctx, before)
}

// PruneRefreshTokens implements store.RefreshTokens, committing batch by
// batch.
func (db *DB) PruneRefreshTokens(ctx context.Context, before time.Time) (int64, error) {
	return db.auto().PruneRefreshTokens(ctx, before)
}

var (
	_ store.Sessions      = (*DB)(nil)
	_ store.AuthCodes     = (*DB)(nil)
	_ store.RefreshTokens = (*DB)(nil)
)
