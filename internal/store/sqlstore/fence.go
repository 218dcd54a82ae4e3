package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/openxaa/xaa/internal/store"
)

// --- Fences ---

const (
	// nextRevocationSeqSQLite is the next cursor of the revocation list on
	// SQLite: one sequence over revoked tokens and fences, assigned under
	// the single write lock, hence committed in order.
	nextRevocationSeqSQLite = `(SELECT MAX(s) + 1 FROM (
        SELECT COALESCE(MAX(revocation_seq), 0) AS s FROM tokens WHERE revocation_seq IS NOT NULL
        UNION ALL SELECT COALESCE(MAX(seq), 0) FROM fences) AS m)`

	// The upsert raises and never lowers: the DO UPDATE applies only to
	// a later not_before, and otherwise no row is affected.
	raiseFenceUpsert = `ON CONFLICT (issuer, client_id, subject) DO UPDATE SET
    not_before = excluded.not_before, reason = excluded.reason,
    raised_at = excluded.raised_at, seq = excluded.seq
WHERE fences.not_before < excluded.not_before`
	raiseFenceSQLite = `INSERT INTO fences (issuer, client_id, subject, not_before, reason, created_at, raised_at, seq)
VALUES ($1, $2, $3, $4, $5, $6, $7, ` + nextRevocationSeqSQLite + `)
` + raiseFenceUpsert
	// On PostgreSQL the cursor comes from revocation_counter, whose row
	// lock is held until commit (see revokeTokenPostgres). The counter
	// moves even when the fence is not raised; the gap is harmless.
	raiseFencePostgres = `WITH c AS (UPDATE revocation_counter SET n = n + 1 WHERE id = 1 RETURNING n)
INSERT INTO fences (issuer, client_id, subject, not_before, reason, created_at, raised_at, seq)
VALUES ($1, $2, $3, $4, $5, $6, $7, (SELECT n FROM c))
` + raiseFenceUpsert

	fenceColumns      = `client_id, subject, not_before, reason, created_at, raised_at, seq`
	selectFenceSQL    = `SELECT ` + fenceColumns + ` FROM fences WHERE issuer = $1 AND client_id = $2 AND subject = $3`
	listFencesSQL     = `SELECT ` + fenceColumns + ` FROM fences WHERE seq > $2 AND issuer = $1 ORDER BY seq LIMIT $3`
	fenceNotBeforeSQL = `SELECT COALESCE(MAX(not_before), 0) FROM (
    SELECT not_before FROM fences WHERE issuer = $1 AND client_id = $2 AND subject = $3
    UNION ALL SELECT not_before FROM fences WHERE issuer = $4 AND client_id = '' AND subject = $5
    UNION ALL SELECT not_before FROM fences WHERE issuer = $6 AND client_id = $7 AND subject = '') AS f`

	// listRevocationsSQL merges revoked tokens and fences in one statement,
	// so both are read from one snapshot: two queries could see a later
	// fence but miss an earlier revocation committed in between, and the
	// returned cursor would skip it. Each side is limited first so that
	// neither is scanned past the page.
	listRevocationsSQL = `SELECT entry, seq, a, b, at, reason, created, raised FROM (
    SELECT * FROM (SELECT 0 AS entry, revocation_seq AS seq, jti AS a, resource AS b, revoked_at AS at,
            '' AS reason, 0 AS created, 0 AS raised
        FROM tokens WHERE revocation_seq > $2 AND issuer = $1 AND kind = 'access_token'
        ORDER BY revocation_seq LIMIT $3) AS t
    UNION ALL
    SELECT * FROM (SELECT 1 AS entry, seq, client_id AS a, subject AS b, not_before AS at,
            reason, created_at AS created, raised_at AS raised
        FROM fences WHERE seq > $5 AND issuer = $4
        ORDER BY seq LIMIT $6) AS f
) AS r ORDER BY seq LIMIT $7`
)

// RaiseFence runs inside the caller's transaction: the upsert, then a read
// of the row as it now stands.
func (o *ops) RaiseFence(ctx context.Context, f store.Fence) (store.Fence, bool, error) {
	if err := f.Validate(); err != nil {
		return store.Fence{}, false, fmt.Errorf("sqlstore: raise fence: %w", err)
	}
	n, err := o.exec(ctx, "raise fence", o.d.raiseFence,
		f.Issuer, f.ClientID, f.Subject, ms(f.NotBefore), f.Reason, ms(f.RaisedAt), ms(f.RaisedAt))
	if err != nil {
		return store.Fence{}, false, err
	}
	cur, err := scanFence(o.w.QueryRowContext(ctx, selectFenceSQL, f.Issuer, f.ClientID, f.Subject))
	if err != nil {
		return store.Fence{}, false, o.d.wrap("raise fence", err)
	}
	cur.Issuer = f.Issuer
	return cur, n > 0, nil
}

func scanFence(s scanner) (store.Fence, error) {
	var f store.Fence
	var nb, created, raised int64
	if err := s.Scan(&f.ClientID, &f.Subject, &nb, &f.Reason, &created, &raised, &f.Cursor); err != nil {
		return store.Fence{}, err
	}
	f.NotBefore, f.CreatedAt, f.RaisedAt = fromMS(nb), fromMS(created), fromMS(raised)
	return f, nil
}

func (o *ops) FenceNotBefore(ctx context.Context, issuer, clientID, subject string) (time.Time, error) {
	var nb int64
	err := o.queryRow(ctx, o.r, "fence not before", fenceNotBeforeSQL,
		[]any{issuer, clientID, subject, issuer, subject, issuer, clientID}, &nb)
	if err != nil {
		return time.Time{}, err
	}
	if nb == 0 {
		return time.Time{}, nil
	}
	return fromMS(nb), nil
}

func pageLimit(limit int) int {
	if limit <= 0 {
		return defaultRevokedLimit
	}
	return min(limit, maxRevokedLimit)
}

func (o *ops) ListFences(ctx context.Context, issuer string, afterCursor int64, limit int) ([]store.Fence, int64, error) {
	if err := checkText(issuer); err != nil {
		return nil, afterCursor, fmt.Errorf("sqlstore: list fences: %w", err)
	}
	rows, err := o.r.QueryContext(ctx, listFencesSQL, issuer, afterCursor, pageLimit(limit))
	if err != nil {
		return nil, afterCursor, o.d.wrap("list fences", err)
	}
	defer rows.Close()
	next := afterCursor
	var out []store.Fence
	for rows.Next() {
		f, err := scanFence(rows)
		if err != nil {
			return nil, afterCursor, o.d.wrap("list fences", err)
		}
		f.Issuer = issuer
		next = f.Cursor
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, afterCursor, o.d.wrap("list fences", err)
	}
	return out, next, nil
}

func (o *ops) ListRevocations(ctx context.Context, issuer string, afterCursor int64, limit int) ([]store.Revocation, int64, error) {
	if err := checkText(issuer); err != nil {
		return nil, afterCursor, fmt.Errorf("sqlstore: list revocations: %w", err)
	}
	limit = pageLimit(limit)
	rows, err := o.r.QueryContext(ctx, listRevocationsSQL, issuer, afterCursor, limit, issuer, afterCursor, limit, limit)
	if err != nil {
		return nil, afterCursor, o.d.wrap("list revocations", err)
	}
	defer rows.Close()
	next := afterCursor
	var out []store.Revocation
	for rows.Next() {
		var entry int
		var r store.Revocation
		var a, b, reason string
		var at, created, raised int64
		if err := rows.Scan(&entry, &r.Cursor, &a, &b, &at, &reason, &created, &raised); err != nil {
			return nil, afterCursor, o.d.wrap("list revocations", err)
		}
		if entry == 0 {
			r.Token = &store.RevokedToken{JTI: a, Resource: b, RevokedAt: fromMS(at), Cursor: r.Cursor}
		} else {
			r.Fence = &store.Fence{Issuer: issuer, ClientID: a, Subject: b, NotBefore: fromMS(at), Reason: reason,
				CreatedAt: fromMS(created), RaisedAt: fromMS(raised), Cursor: r.Cursor}
		}
		next = r.Cursor
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, afterCursor, o.d.wrap("list revocations", err)
	}
	return out, next, nil
}
