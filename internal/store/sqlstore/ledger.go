package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/openxaa/xaa/internal/store"
)

// The connection ledger: its history, the Security Event Token outbox,
// revocation-list polls, and keyset pages of connections.

// --- History ---

const (
	ledgerColumns = `seq, time, action, connection_id, app_id, user_id, group_name, from_status, to_status,
    actor_id, actor_kind, reason, data`
	insertLedgerSQL = `INSERT INTO ledger_history (time, action, connection_id, app_id, user_id, group_name,
    from_status, to_status, actor_id, actor_kind, reason, data)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING seq`
	ledgerWhere = ` FROM ledger_history
WHERE ($1 = '' OR connection_id = $1) AND ($2 = '' OR app_id = $2) AND ($3 = '' OR user_id = $3)
    AND ($4 = '' OR group_name = $4) AND ($5 = '' OR action = $5)`
	listLedgerSQL   = `SELECT ` + ledgerColumns + ledgerWhere + ` ORDER BY seq LIMIT $6`
	latestLedgerSQL = `SELECT ` + ledgerColumns + ledgerWhere + ` ORDER BY seq DESC LIMIT 1`
)

func ledgerArgs(f store.LedgerFilter) []any {
	return []any{f.ConnectionID, f.AppID, f.UserID, f.Group, f.Action}
}

func scanLedger(s scanner) (store.LedgerEvent, error) {
	var e store.LedgerEvent
	var at int64
	var from, to, data string
	if err := s.Scan(&e.Seq, &at, &e.Action, &e.ConnectionID, &e.AppID, &e.UserID, &e.Group, &from, &to,
		&e.ActorID, &e.ActorKind, &e.Reason, &data); err != nil {
		return store.LedgerEvent{}, err
	}
	e.Time, e.FromStatus, e.ToStatus = fromMS(at), store.ConnectionStatus(from), store.ConnectionStatus(to)
	if err := json.Unmarshal([]byte(data), &e.Data); err != nil {
		return store.LedgerEvent{}, fmt.Errorf("%w: ledger data: %w", errCorrupt, err)
	}
	if len(e.Data) == 0 {
		e.Data = nil
	}
	return e, nil
}

func (o *ops) AppendLedger(ctx context.Context, e *store.LedgerEvent) error {
	if e == nil {
		return fmt.Errorf("%w: nil ledger event", ErrInvalidInput)
	}
	if err := e.Validate(); err != nil {
		return err
	}
	data := e.Data
	if data == nil {
		data = map[string]string{}
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("sqlstore: append ledger: %w", err)
	}
	var seq int64
	err = o.queryRow(ctx, o.w, "append ledger", insertLedgerSQL, []any{ms(e.Time), e.Action, e.ConnectionID, e.AppID,
		e.UserID, e.Group, string(e.FromStatus), string(e.ToStatus), e.ActorID, e.ActorKind, e.Reason, string(raw)}, &seq)
	if err != nil {
		return err
	}
	e.Seq = seq
	return nil
}

func (o *ops) ListLedger(ctx context.Context, f store.LedgerFilter) ([]store.LedgerEvent, error) {
	var out []store.LedgerEvent
	err := o.queryRows(ctx, "list ledger", listLedgerSQL, append(ledgerArgs(f), pageLimit(f.Limit)), func(s scanner) error {
		e, err := scanLedger(s)
		out = append(out, e)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (o *ops) LatestLedger(ctx context.Context, f store.LedgerFilter) (store.LedgerEvent, error) {
	args := ledgerArgs(f)
	if err := checkArgs(args); err != nil {
		return store.LedgerEvent{}, fmt.Errorf("sqlstore: latest ledger: %w", err)
	}
	e, err := scanLedger(o.r.QueryRowContext(ctx, latestLedgerSQL, args...))
	if errors.Is(err, errCorrupt) {
		return store.LedgerEvent{}, err
	}
	return e, o.d.wrap("latest ledger", err)
}

// --- SET outbox ---

const (
	setColumns = `id, jti, audience, subject, client_id, connection_id, reason, not_before, created_at, ledger_seq,
    status, attempts, next_attempt_at, last_error, delivered_at`
	insertSETSQL = `INSERT INTO set_outbox (jti, audience, subject, client_id, connection_id, reason, not_before,
    created_at, ledger_seq, status, attempts, next_attempt_at, last_error, delivered_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT DO NOTHING RETURNING id`
	anyDueSETSQL = `SELECT 1 FROM set_outbox WHERE status = 'pending' AND next_attempt_at <= $1 LIMIT 1`
	dueSETsSQL   = `SELECT ` + setColumns + ` FROM set_outbox WHERE status = 'pending' AND next_attempt_at <= $1
ORDER BY next_attempt_at, id LIMIT $2`
	leaseSETSQL  = `UPDATE set_outbox SET next_attempt_at = $2 WHERE id = $1 AND status = 'pending'`
	updateSETSQL = `UPDATE set_outbox SET status = $2, attempts = $3, next_attempt_at = $4, last_error = $5, delivered_at = $6
WHERE id = $1 AND status = 'pending'`
	setExistsSQL = `SELECT 1 FROM set_outbox WHERE id = $1`
	listSETsSQL  = `SELECT ` + setColumns + ` FROM set_outbox
WHERE ($1 = '' OR connection_id = $1) AND ($2 = '' OR audience = $2) AND ($3 = '' OR subject = $3)
    AND ($4 = '' OR client_id = $4) AND ($5 = '' OR status = $5)
ORDER BY id LIMIT $6`
)

func scanSET(s scanner) (store.SETDelivery, error) {
	var d store.SETDelivery
	var nb, created, next int64
	var status string
	var delivered sql.NullInt64
	if err := s.Scan(&d.ID, &d.JTI, &d.Audience, &d.Subject, &d.ClientID, &d.ConnectionID, &d.Reason, &nb, &created,
		&d.LedgerSeq, &status, &d.Attempts, &next, &d.LastError, &delivered); err != nil {
		return store.SETDelivery{}, err
	}
	d.NotBefore, d.CreatedAt, d.NextAttemptAt = fromMS(nb), fromMS(created), fromMS(next)
	d.Status, d.DeliveredAt = store.SETStatus(status), fromNullMS(delivered)
	return d, nil
}

func (o *ops) EnqueueSET(ctx context.Context, d *store.SETDelivery) error {
	if d == nil {
		return fmt.Errorf("%w: nil security event token", ErrInvalidInput)
	}
	if err := d.Validate(); err != nil {
		return err
	}
	var id int64
	err := o.queryRow(ctx, o.w, "enqueue security event token", insertSETSQL, []any{d.JTI, d.Audience, d.Subject, d.ClientID,
		d.ConnectionID, d.Reason, ms(d.NotBefore), ms(d.CreatedAt), d.LedgerSeq, string(d.Status), d.Attempts,
		ms(d.NextAttemptAt), d.LastError, msOrNull(d.DeliveredAt)}, &id)
	if errors.Is(err, store.ErrNotFound) { // ON CONFLICT DO NOTHING returned no row
		return fmt.Errorf("sqlstore: enqueue security event token: %w (jti exists)", store.ErrConflict)
	}
	if err != nil {
		return err
	}
	d.ID = id
	return nil
}

func (o *ops) ClaimSETs(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]store.SETDelivery, error) {
	const op = "claim security event tokens"
	if lease <= 0 {
		return nil, fmt.Errorf("%w: the claim lease must be positive", ErrInvalidInput)
	}
	// On PostgreSQL, instances claiming at once skip each other's rows
	// instead of waiting for them; SQLite has one writer anyway.
	query := dueSETsSQL
	if o.d.name == DialectPostgres {
		query += " FOR UPDATE SKIP LOCKED"
	}
	var due []store.SETDelivery
	err := o.queryRows(ctx, op, query, []any{ms(now), pageLimit(limit)}, func(s scanner) error {
		d, err := scanSET(s)
		due = append(due, d)
		return err
	})
	if err != nil {
		return nil, err
	}
	until := now.Add(lease)
	for i := range due {
		if _, err := o.exec(ctx, op, leaseSETSQL, due[i].ID, ms(until)); err != nil {
			return nil, err
		}
		due[i].NextAttemptAt = fromMS(ms(until))
	}
	return due, nil
}

func (o *ops) UpdateSET(ctx context.Context, d store.SETDelivery) error {
	const op = "update security event token"
	if err := d.Validate(); err != nil {
		return err
	}
	n, err := o.exec(ctx, op, updateSETSQL, d.ID, string(d.Status), d.Attempts, ms(d.NextAttemptAt), d.LastError, msOrNull(d.DeliveredAt))
	if err != nil || n > 0 {
		return err
	}
	if ok, err := o.exists(ctx, op, setExistsSQL, d.ID); err != nil || !ok {
		return notFoundUnless(err, op, "security event token %d", d.ID)
	}
	return fmt.Errorf("sqlstore: %s: %w (it is no longer pending)", op, store.ErrConflict)
}

func (o *ops) ListSETs(ctx context.Context, f store.SETFilter) ([]store.SETDelivery, error) {
	var out []store.SETDelivery
	args := []any{f.ConnectionID, f.Audience, f.Subject, f.ClientID, string(f.Status), pageLimit(f.Limit)}
	err := o.queryRows(ctx, "list security event tokens", listSETsSQL, args, func(s scanner) error {
		d, err := scanSET(s)
		out = append(out, d)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// --- Revocation polls ---

const (
	recordPollSQL = `INSERT INTO revocation_polls (issuer, client_id, resources, polled_at, cursor)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (issuer, client_id) DO UPDATE SET resources = excluded.resources, polled_at = excluded.polled_at,
    cursor = excluded.cursor
WHERE revocation_polls.polled_at <= excluded.polled_at`
	listPollsSQL = `SELECT client_id, resources, polled_at, cursor FROM revocation_polls WHERE issuer = $1 ORDER BY client_id`
)

func (o *ops) RecordRevocationPoll(ctx context.Context, p store.RevocationPoll) error {
	if p.Issuer == "" || p.ClientID == "" || p.PolledAt.IsZero() {
		return fmt.Errorf("%w: a revocation poll needs an issuer, a client_id and a time", ErrInvalidInput)
	}
	res := p.Resources
	if res == nil {
		res = []string{}
	}
	raw, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("sqlstore: record revocation poll: %w", err)
	}
	_, err = o.exec(ctx, "record revocation poll", recordPollSQL, p.Issuer, p.ClientID, string(raw), ms(p.PolledAt), p.Cursor)
	return err
}

func (o *ops) ListRevocationPolls(ctx context.Context, issuer string) ([]store.RevocationPoll, error) {
	var out []store.RevocationPoll
	err := o.queryRows(ctx, "list revocation polls", listPollsSQL, []any{issuer}, func(s scanner) error {
		p := store.RevocationPoll{Issuer: issuer}
		var raw string
		var at int64
		if err := s.Scan(&p.ClientID, &raw, &at, &p.Cursor); err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(raw), &p.Resources); err != nil {
			return fmt.Errorf("%w: revocation poll resources: %w", errCorrupt, err)
		}
		p.PolledAt = fromMS(at)
		out = append(out, p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// --- Connection pages ---

// connectionSortKeys are the only sort expressions a query may use: the
// SQL text of every page comes from this table, never from the caller.
var connectionSortKeys = map[string]string{
	store.ConnectionSortCreated: `created_at`,
	store.ConnectionSortUpdated: `updated_at`,
	store.ConnectionSortExpires: `COALESCE(expires_at, 253402300799999)`,
}

func queryConnectionsSQL(key string, desc bool) string {
	cmp, dir := ">", ""
	if desc {
		cmp, dir = "<", " DESC"
	}
	return `SELECT ` + connectionColumns + ` FROM connections
WHERE ($1 = '' OR app_id = $1) AND ($2 = '' OR resource_uri = $2) AND ($3 = '' OR status = $3)
    AND ($4 = 0 OR ` + key + ` ` + cmp + ` $5 OR (` + key + ` = $5 AND id ` + cmp + ` $6))
ORDER BY ` + key + dir + `, id` + dir + ` LIMIT $7`
}

// Connection page sizes.
const (
	defaultConnectionPage = 50
	maxConnectionPage     = 1000
)

func (o *ops) QueryConnections(ctx context.Context, q store.ConnectionQuery) ([]store.Connection, error) {
	sort := q.Sort
	if sort == "" {
		sort = store.ConnectionSortCreated
	}
	key, ok := connectionSortKeys[sort]
	if !ok {
		return nil, fmt.Errorf("%w: unknown connection sort key %q (want created, updated or expires)", store.ErrInvalid, clipText(sort))
	}
	switch q.Status {
	case "", store.ConnectionPending, store.ConnectionApproved, store.ConnectionDenied, store.ConnectionSuspended,
		store.ConnectionRevoked, store.ConnectionExpired:
	default:
		return nil, fmt.Errorf("%w: unknown connection status %q", store.ErrInvalid, clipText(string(q.Status)))
	}
	limit := q.Limit
	switch {
	case limit <= 0:
		limit = defaultConnectionPage
	case limit > maxConnectionPage:
		limit = maxConnectionPage
	}
	after, afterKey, afterID := 0, int64(0), ""
	if q.After != nil {
		after, afterKey, afterID = 1, q.After.Key, q.After.ID
	}
	var out []store.Connection
	args := []any{q.AppID, q.ResourceURI, string(q.Status), after, afterKey, afterID, limit}
	err := o.queryRows(ctx, "query connections", queryConnectionsSQL(key, q.Desc), args, func(s scanner) error {
		c, err := scanConnection(s)
		out = append(out, c)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// clipText shortens caller input echoed in an error.
func clipText(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// --- *DB ---

// AppendLedger implements store.Ledger.
func (db *DB) AppendLedger(ctx context.Context, e *store.LedgerEvent) error {
	if e == nil {
		return fmt.Errorf("%w: nil ledger event", ErrInvalidInput)
	}
	ev := *e
	if err := db.InTx(ctx, func(tx store.Tx) error { return tx.AppendLedger(ctx, &ev) }); err != nil {
		return err
	}
	*e = ev
	return nil
}

// ListLedger implements store.Ledger.
func (db *DB) ListLedger(ctx context.Context, f store.LedgerFilter) ([]store.LedgerEvent, error) {
	return db.auto().ListLedger(ctx, f)
}

// LatestLedger implements store.Ledger.
func (db *DB) LatestLedger(ctx context.Context, f store.LedgerFilter) (store.LedgerEvent, error) {
	return db.auto().LatestLedger(ctx, f)
}

// EnqueueSET implements store.SETOutbox.
func (db *DB) EnqueueSET(ctx context.Context, d *store.SETDelivery) error {
	if d == nil {
		return fmt.Errorf("%w: nil security event token", ErrInvalidInput)
	}
	v := *d
	if err := db.InTx(ctx, func(tx store.Tx) error { return tx.EnqueueSET(ctx, &v) }); err != nil {
		return err
	}
	*d = v
	return nil
}

// ClaimSETs implements store.SETOutbox in its own write transaction. It
// looks on the read pool first, so that an idle outbox, polled often,
// never takes the write lock.
func (db *DB) ClaimSETs(ctx context.Context, now time.Time, lease time.Duration, limit int) (out []store.SETDelivery, err error) {
	if lease <= 0 {
		return nil, fmt.Errorf("%w: the claim lease must be positive", ErrInvalidInput)
	}
	if ok, err := db.auto().exists(ctx, "claim security event tokens", anyDueSETSQL, ms(now)); err != nil || !ok {
		return nil, err
	}
	err = db.InTx(ctx, func(tx store.Tx) (err error) {
		out, err = tx.ClaimSETs(ctx, now, lease, limit)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UpdateSET implements store.SETOutbox.
func (db *DB) UpdateSET(ctx context.Context, d store.SETDelivery) error {
	return db.InTx(ctx, func(tx store.Tx) error { return tx.UpdateSET(ctx, d) })
}

// ListSETs implements store.SETOutbox.
func (db *DB) ListSETs(ctx context.Context, f store.SETFilter) ([]store.SETDelivery, error) {
	return db.auto().ListSETs(ctx, f)
}

// RecordRevocationPoll implements store.RevocationPolls.
func (db *DB) RecordRevocationPoll(ctx context.Context, p store.RevocationPoll) error {
	return db.auto().RecordRevocationPoll(ctx, p)
}

// ListRevocationPolls implements store.RevocationPolls.
func (db *DB) ListRevocationPolls(ctx context.Context, issuer string) ([]store.RevocationPoll, error) {
	return db.auto().ListRevocationPolls(ctx, issuer)
}
