package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/openxaa/xaa/internal/audit"
	"github.com/openxaa/xaa/internal/store"
)

// Audit records live in audit_events, one hash chain per stream (see
// internal/audit and docs/audit-schema.md). Each stream's head row in
// audit_heads is locked by an append until its transaction ends, so
// appends to one stream take consecutive seqs and chain correctly across
// transactions and instances, while appends to different streams proceed
// in parallel.

const (
	auditColumns = `id, stream, seq, time, type, actor, subject, client_id, outcome, rule, reason,
    request_id, data, prev_hash, hash`
	// upsertAuditHeadSQL claims the stream's next seq and returns it with
	// the previous record's hash, creating the head at the genesis hash on
	// a stream's first record. It locks the head row (the UPDATE's row
	// lock on PostgreSQL, the write lock on SQLite) until the transaction
	// ends.
	upsertAuditHeadSQL = `INSERT INTO audit_heads (stream, seq, hash) VALUES ($1, 1, $2)
ON CONFLICT (stream) DO UPDATE SET seq = audit_heads.seq + 1
RETURNING seq, hash`
	insertAuditSQL = `INSERT INTO audit_events (stream, seq, time, type, actor, subject, client_id, outcome, rule,
    reason, request_id, data, prev_hash, hash, jti, parent_jti)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
RETURNING id`
	updateAuditHeadSQL = `UPDATE audit_heads SET hash = $2 WHERE stream = $1`
	auditHeadsSQL      = `SELECT stream, seq, hash FROM audit_heads ORDER BY stream`
	// verifyAuditSQL reads every record with its index columns, each
	// stream in seq order.
	verifyAuditSQL = `SELECT ` + auditColumns + `, jti, parent_jti FROM audit_events ORDER BY stream, seq`
	// exportStartsSQL finds, per stream, the first record at or after a
	// time, so an export from then on holds each stream contiguously.
	exportStartsSQL = `SELECT stream, MIN(seq), MIN(id) FROM audit_events WHERE time >= $1 GROUP BY stream`
	auditIDSQL      = `SELECT id FROM audit_events WHERE stream = $1 AND seq = $2`
)

// Audit list limits (store.AuditFilter.Limit).
const (
	defaultAuditLimit = 100
	maxAuditLimit     = 1000
)

// ErrAuditChainBroken is matched (errors.Is) by every *AuditChainError.
var ErrAuditChainBroken = audit.ErrChainBroken

// AuditChainError reports the first record at which a stream fails to
// verify.
type AuditChainError = audit.ChainError

// AppendAudit claims the stream's next seq by locking its head row, so
// appends to one stream from any number of transactions and instances are
// serialized, take consecutive seqs and chain correctly. The head lock is
// held until the transaction ends: keep audited transactions short, and
// append last. Appends to different streams do not wait for each other.
func (o *ops) AppendAudit(ctx context.Context, e *store.AuditEvent) error {
	if e == nil {
		return fmt.Errorf("%w: nil audit event", ErrInvalidInput)
	}
	ev := *e
	if ev.Stream == "" {
		ev.Stream = audit.StreamOf(ev.Type)
	} else if err := audit.CheckStream(ev.Stream); err != nil {
		return fmt.Errorf("%w: append audit: %w", ErrInvalidInput, err)
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	ev.Time = fromMS(ev.Time.UnixMilli()) // the stored precision, so e matches what ListAudit returns
	for k, v := range ev.Data {
		if err := checkArgs([]any{k, v}); err != nil {
			// json.Marshal would replace invalid UTF-8, and the stored data
			// would no longer match the hash.
			return fmt.Errorf("sqlstore: append audit: data: %w", err)
		}
	}
	data := []byte("{}")
	if len(ev.Data) > 0 {
		var err error
		if data, err = json.Marshal(ev.Data); err != nil {
			return fmt.Errorf("sqlstore: append audit: %w", err)
		}
	}
	// Check every value before claiming a seq: a refused value must not
	// leave the head moved without its record.
	if err := checkArgs([]any{ev.Type, ev.Actor, ev.Subject, ev.ClientID, ev.Outcome, ev.Rule, ev.Reason, ev.RequestID}); err != nil {
		return fmt.Errorf("sqlstore: append audit: %w", err)
	}
	if err := o.queryRow(ctx, o.w, "append audit", upsertAuditHeadSQL, []any{ev.Stream, audit.GenesisHash}, &ev.Seq, &ev.PrevHash); err != nil {
		return err
	}
	ev.Hash = audit.Hash(&ev)
	if err := o.queryRow(ctx, o.w, "append audit", insertAuditSQL, []any{
		ev.Stream, ev.Seq, ms(ev.Time), ev.Type, ev.Actor, ev.Subject, ev.ClientID, ev.Outcome, ev.Rule, ev.Reason,
		ev.RequestID, string(data), ev.PrevHash, ev.Hash, ev.Data[audit.DataJTI], ev.Data[audit.DataIDJAGJTI],
	}, &ev.ID); err != nil {
		return err
	}
	if _, err := o.exec(ctx, "append audit", updateAuditHeadSQL, ev.Stream, ev.Hash); err != nil {
		return err
	}
	*e = ev
	return nil
}

func (o *ops) ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error) {
	limit := f.Limit
	switch {
	case limit <= 0:
		limit = defaultAuditLimit
	case limit > maxAuditLimit:
		limit = maxAuditLimit
	}
	query, args, err := listAuditQuery(f, limit)
	if err != nil {
		return nil, err
	}
	if err := checkArgs(args); err != nil {
		return nil, fmt.Errorf("sqlstore: list audit: %w", err)
	}
	rows, err := o.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, o.d.wrap("list audit", err)
	}
	defer rows.Close()
	var out []store.AuditEvent
	for rows.Next() {
		ev, err := scanAudit(rows)
		if err != nil {
			return nil, o.d.wrap("list audit", err)
		}
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, o.d.wrap("list audit", err)
	}
	return out, nil
}

// AuditHeads returns every stream's head, in stream name order.
func (o *ops) AuditHeads(ctx context.Context) ([]store.AuditHead, error) {
	return auditHeads(ctx, o.d, o.r)
}

func auditHeads(ctx context.Context, d *dialect, q querier) ([]store.AuditHead, error) {
	rows, err := q.QueryContext(ctx, auditHeadsSQL)
	if err != nil {
		return nil, d.wrap("audit heads", err)
	}
	defer rows.Close()
	heads := []store.AuditHead{}
	for rows.Next() {
		var h store.AuditHead
		if err := rows.Scan(&h.Stream, &h.Seq, &h.Hash); err != nil {
			return nil, d.wrap("audit heads", err)
		}
		heads = append(heads, h)
	}
	if err := rows.Err(); err != nil {
		return nil, d.wrap("audit heads", err)
	}
	return heads, nil
}

// listAuditQuery assembles the query from constant fragments, one
// "AND column <op> $N" per set filter, so each combination can use its
// index. Filter values only ever travel as bound parameters. limit 0
// means no LIMIT.
func listAuditQuery(f store.AuditFilter, limit int) (string, []any, error) {
	if f.AfterSeq != 0 && f.Stream == "" {
		return "", nil, fmt.Errorf("%w: list audit: AfterSeq needs a Stream (sequences are per stream)", ErrInvalidInput)
	}
	var b strings.Builder
	b.WriteString(`SELECT ` + auditColumns + ` FROM audit_events WHERE id > $1`)
	args := []any{max(f.AfterID, 0)}
	add := func(cond string, v any) {
		args = append(args, v)
		b.WriteString(" AND " + cond + " $" + strconv.Itoa(len(args)))
	}
	if f.Stream != "" {
		add("stream =", f.Stream)
		if f.AfterSeq > 0 {
			add("seq >", f.AfterSeq)
		}
	}
	for _, c := range []struct{ column, value string }{
		{"type", f.Type},
		{"subject", f.Subject},
		{"client_id", f.ClientID},
		{"outcome", f.Outcome},
	} {
		if c.value != "" {
			add(c.column+" =", c.value)
		}
	}
	// "<> ''" lets the planner use the partial indexes.
	if f.JTI != "" {
		b.WriteString(" AND jti <> ''")
		add("jti =", f.JTI)
	}
	if f.ParentJTI != "" {
		b.WriteString(" AND parent_jti <> ''")
		add("parent_jti =", f.ParentJTI)
	}
	if !f.Since.IsZero() {
		add("time >=", ms(f.Since))
	}
	if !f.Until.IsZero() {
		add("time <", ms(f.Until))
	}
	b.WriteString(" ORDER BY id")
	if limit > 0 {
		args = append(args, int64(limit))
		b.WriteString(" LIMIT $" + strconv.Itoa(len(args)))
	}
	return b.String(), args, nil
}

func scanAudit(s scanner, extra ...any) (store.AuditEvent, error) {
	var ev store.AuditEvent
	var t int64
	var data string
	dest := append([]any{&ev.ID, &ev.Stream, &ev.Seq, &t, &ev.Type, &ev.Actor, &ev.Subject, &ev.ClientID, &ev.Outcome,
		&ev.Rule, &ev.Reason, &ev.RequestID, &data, &ev.PrevHash, &ev.Hash}, extra...)
	if err := s.Scan(dest...); err != nil {
		return store.AuditEvent{}, err
	}
	ev.Time = fromMS(t)
	if err := json.Unmarshal([]byte(data), &ev.Data); err != nil {
		return ev, fmt.Errorf("audit record id %d: data: %w", ev.ID, err)
	}
	if len(ev.Data) == 0 {
		ev.Data = nil
	}
	return ev, nil
}

// VerifyAudit recomputes every stream's chain from one consistent
// snapshot, holding it to opts' checkpoints, and checks each stream's head
// row and the index columns. It returns an error only when the database
// could not be read; a broken chain is in the report (Report.Err).
//
// The chains detect edits by anyone who cannot rewrite every later record;
// checkpoints signed with a key outside the database (audit.Checkpointer)
// extend that to an attacker with full write access, and show a
// truncated tail.
func (db *DB) VerifyAudit(ctx context.Context, opts *audit.VerifyOptions) (*audit.Report, error) {
	tx, err := db.read.BeginTx(ctx, db.d.snapshot)
	if err != nil {
		return nil, db.d.wrap("verify audit", err)
	}
	defer func() { _ = tx.Rollback() }()
	heads, err := auditHeads(ctx, db.d, tx)
	if err != nil {
		return nil, err
	}
	rows, err := tx.QueryContext(ctx, verifyAuditSQL)
	if err != nil {
		return nil, db.d.wrap("verify audit", err)
	}
	defer rows.Close()
	v := audit.NewVerifier(opts)
	for rows.Next() {
		var jti, parent string
		ev, err := scanAudit(rows, &jti, &parent)
		switch {
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			return nil, err
		case err != nil && ev.Stream != "":
			v.Fail(ev.Stream, ev.Seq, ev.ID, "its data column is not a JSON object of strings: the record was changed")
			continue
		case err != nil:
			return nil, db.d.wrap("verify audit", err)
		case jti != ev.Data[audit.DataJTI] || parent != ev.Data[audit.DataIDJAGJTI]:
			v.Fail(ev.Stream, ev.Seq, ev.ID, "the indexed jti columns do not match the record's data: a trace would be misled")
		}
		v.Add(&ev)
	}
	if err := rows.Err(); err != nil {
		return nil, db.d.wrap("verify audit", err)
	}
	return v.Finish(heads), nil
}

// VerifyAuditChain verifies every stream without checkpoints and returns
// how many records verified and the first broken stream's
// *AuditChainError (or all of them, joined).
func (db *DB) VerifyAuditChain(ctx context.Context) (checked int64, err error) {
	rep, err := db.VerifyAudit(ctx, nil)
	if err != nil {
		return 0, err
	}
	return rep.Records(), rep.Err()
}

// ScanAudit calls fn with every record f selects, in ID order (each
// stream in seq order), from one consistent snapshot, without a limit:
// an export sees every stream as a gapless run. f.Limit, f.AfterID and
// f.AfterSeq are not used. With f.Since set, each stream is read from its
// first record at or after Since to its end (later records are included
// whatever their time), or, for a stream with no record since, from its
// last record: each stream's part is contiguous and verifies as a partial
// export, and every stream is represented, so checkpoints can still show
// a stream cut short. fn's error stops the scan and is returned.
func (db *DB) ScanAudit(ctx context.Context, f store.AuditFilter, fn func(*store.AuditEvent) error) error {
	tx, err := db.read.BeginTx(ctx, db.d.snapshot)
	if err != nil {
		return db.d.wrap("scan audit", err)
	}
	defer func() { _ = tx.Rollback() }()
	var starts map[string]int64
	var fromID int64
	if !f.Since.IsZero() {
		if starts, fromID, err = exportStarts(ctx, db.d, tx, f.Since, f.Stream); err != nil {
			return err
		}
		if len(starts) == 0 {
			return nil
		}
	}
	sel := store.AuditFilter{AfterID: max(fromID-1, 0), Stream: f.Stream, Type: f.Type, Subject: f.Subject,
		ClientID: f.ClientID, Outcome: f.Outcome, JTI: f.JTI, ParentJTI: f.ParentJTI, Until: f.Until}
	query, args, err := listAuditQuery(sel, 0)
	if err != nil {
		return err
	}
	if err := checkArgs(args); err != nil {
		return fmt.Errorf("sqlstore: scan audit: %w", err)
	}
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return db.d.wrap("scan audit", err)
	}
	defer rows.Close()
	for rows.Next() {
		ev, err := scanAudit(rows)
		if err != nil {
			return db.d.wrap("scan audit", err)
		}
		if starts != nil {
			if first, ok := starts[ev.Stream]; !ok || ev.Seq < first {
				continue
			}
		}
		if err := fn(&ev); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return db.d.wrap("scan audit", err)
	}
	return nil
}

// exportStarts returns, per stream (or only stream, if set), the seq an
// export since a time starts at, and the smallest ID among those records.
func exportStarts(ctx context.Context, d *dialect, q querier, since time.Time, stream string) (map[string]int64, int64, error) {
	starts := map[string]int64{}
	var fromID int64
	note := func(s string, seq, id int64) {
		if stream != "" && s != stream {
			return
		}
		starts[s] = seq
		if fromID == 0 || id < fromID {
			fromID = id
		}
	}
	rows, err := q.QueryContext(ctx, exportStartsSQL, ms(since))
	if err != nil {
		return nil, 0, d.wrap("scan audit", err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		var seq, id int64
		if err := rows.Scan(&s, &seq, &id); err != nil {
			return nil, 0, d.wrap("scan audit", err)
		}
		note(s, seq, id)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, d.wrap("scan audit", err)
	}
	heads, err := auditHeads(ctx, d, q)
	if err != nil {
		return nil, 0, err
	}
	for _, h := range heads {
		if _, ok := starts[h.Stream]; ok || (stream != "" && h.Stream != stream) {
			continue
		}
		var id int64
		err := q.QueryRowContext(ctx, auditIDSQL, h.Stream, h.Seq).Scan(&id)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			// The head's record is gone: export nothing of the stream, and
			// let its checkpoints tell.
		case err != nil:
			return nil, 0, d.wrap("scan audit", err)
		default:
			note(h.Stream, h.Seq, id)
		}
	}
	return starts, fromID, nil
}
