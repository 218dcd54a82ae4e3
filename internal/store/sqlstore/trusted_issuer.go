package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/openxaa/xaa/internal/store"
)

// --- Trusted issuers ---

const (
	trustedIssuerColumns = `realm, issuer, jwks_uri, algorithms, max_assertion_lifetime_ms, allow_reuse, disabled,
    created_at, updated_at`
	insertTrustedIssuerSQL = `INSERT INTO trusted_issuers (` + trustedIssuerColumns + `)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING`
	selectTrustedIssuerSQL = `SELECT ` + trustedIssuerColumns + ` FROM trusted_issuers WHERE realm = $1 AND issuer = $2`
	listTrustedIssuersSQL  = `SELECT ` + trustedIssuerColumns + ` FROM trusted_issuers WHERE realm = $1 ORDER BY issuer`
	updateTrustedIssuerSQL = `UPDATE trusted_issuers SET jwks_uri = $3, algorithms = $4, max_assertion_lifetime_ms = $5,
    allow_reuse = $6, disabled = $7, updated_at = $8
WHERE realm = $1 AND issuer = $2`
)

// trustedIssuerArgs are the columns after realm and issuer, validated.
func trustedIssuerArgs(t store.TrustedIssuer) ([]any, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	algs := t.Algorithms
	if algs == nil {
		algs = []string{}
	}
	aj, err := json.Marshal(algs)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: trusted issuer algorithms: %w", err)
	}
	return []any{t.JWKSURI, string(aj), t.MaxAssertionLifetime.Milliseconds(), t.AllowReuse, t.Disabled}, nil
}

func (o *ops) CreateTrustedIssuer(ctx context.Context, t store.TrustedIssuer) error {
	args, err := trustedIssuerArgs(t)
	if err != nil {
		return err
	}
	n, err := o.exec(ctx, "create trusted issuer", insertTrustedIssuerSQL,
		append(append([]any{t.Realm, t.Issuer}, args...), ms(t.CreatedAt), ms(t.UpdatedAt))...)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("sqlstore: create trusted issuer: %w", store.ErrConflict)
	}
	return nil
}

func scanTrustedIssuer(s scanner) (store.TrustedIssuer, error) {
	var t store.TrustedIssuer
	var algs string
	var life, created, updated int64
	if err := s.Scan(&t.Realm, &t.Issuer, &t.JWKSURI, &algs, &life, &t.AllowReuse, &t.Disabled, &created, &updated); err != nil {
		return store.TrustedIssuer{}, err
	}
	if err := json.Unmarshal([]byte(algs), &t.Algorithms); err != nil {
		return store.TrustedIssuer{}, fmt.Errorf("%w: trusted issuer algorithms: %w", errCorrupt, err)
	}
	if len(t.Algorithms) == 0 {
		t.Algorithms = nil
	}
	t.MaxAssertionLifetime = time.Duration(life) * time.Millisecond
	t.CreatedAt, t.UpdatedAt = fromMS(created), fromMS(updated)
	return t, nil
}

func (o *ops) GetTrustedIssuer(ctx context.Context, realm, issuer string) (store.TrustedIssuer, error) {
	if err := checkArgs([]any{realm, issuer}); err != nil {
		return store.TrustedIssuer{}, err
	}
	t, err := scanTrustedIssuer(o.r.QueryRowContext(ctx, selectTrustedIssuerSQL, realm, issuer))
	if err != nil {
		return store.TrustedIssuer{}, o.d.wrap("get trusted issuer", err)
	}
	return t, nil
}

func (o *ops) ListTrustedIssuers(ctx context.Context, realm string) ([]store.TrustedIssuer, error) {
	var out []store.TrustedIssuer
	err := o.queryRows(ctx, "list trusted issuers", listTrustedIssuersSQL, []any{realm}, func(s scanner) error {
		t, err := scanTrustedIssuer(s)
		if err != nil {
			return err
		}
		out = append(out, t)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UpdateTrustedIssuer reads the row (locking it on PostgreSQL), applies fn
// and writes the result, inside the caller's transaction.
func (o *ops) UpdateTrustedIssuer(ctx context.Context, realm, issuer string, fn func(store.TrustedIssuer) (store.TrustedIssuer, error)) error {
	if err := checkArgs([]any{realm, issuer}); err != nil {
		return err
	}
	cur, err := scanTrustedIssuer(o.w.QueryRowContext(ctx, o.lock(selectTrustedIssuerSQL), realm, issuer))
	if err != nil {
		return o.d.wrap("update trusted issuer", err)
	}
	next, err := fn(cur)
	if err != nil {
		return err
	}
	switch {
	case next.Realm != cur.Realm || next.Issuer != cur.Issuer:
		return immutable("trusted issuer's realm or issuer")
	case !next.CreatedAt.Equal(cur.CreatedAt):
		return immutable("trusted issuer's creation time")
	}
	args, err := trustedIssuerArgs(next)
	if err != nil {
		return err
	}
	_, err = o.exec(ctx, "update trusted issuer", updateTrustedIssuerSQL,
		append(append([]any{realm, issuer}, args...), ms(next.UpdatedAt))...)
	return err
}

// CreateTrustedIssuer implements store.TrustedIssuers.
func (db *DB) CreateTrustedIssuer(ctx context.Context, t store.TrustedIssuer) error {
	return db.auto().CreateTrustedIssuer(ctx, t)
}

// GetTrustedIssuer implements store.TrustedIssuers.
func (db *DB) GetTrustedIssuer(ctx context.Context, realm, issuer string) (store.TrustedIssuer, error) {
	return db.auto().GetTrustedIssuer(ctx, realm, issuer)
}

// ListTrustedIssuers implements store.TrustedIssuers.
func (db *DB) ListTrustedIssuers(ctx context.Context, realm string) ([]store.TrustedIssuer, error) {
	return db.auto().ListTrustedIssuers(ctx, realm)
}

// UpdateTrustedIssuer implements store.TrustedIssuers in its own write
// transaction.
func (db *DB) UpdateTrustedIssuer(ctx context.Context, realm, issuer string, fn func(store.TrustedIssuer) (store.TrustedIssuer, error)) error {
	return db.InTx(ctx, func(tx store.Tx) error { return tx.UpdateTrustedIssuer(ctx, realm, issuer, fn) })
}
