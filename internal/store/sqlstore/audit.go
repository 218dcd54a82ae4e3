package sqlstore

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/openxaa/xaa/internal/store"
)

// GenesisHash is the PrevHash of the first audit event.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// auditHashTag versions the canonical encoding; a new encoding gets a new tag.
const auditHashTag = "openxaa.audit.v1"

const (
	auditColumns = `seq, time, type, actor, subject, client_id, outcome, rule, reason,
    request_id, data, prev_hash, hash`
	selectAuditHeadSQL = `SELECT seq, hash FROM audit_head WHERE id = 1`
	insertAuditSQL     = `INSERT INTO audit_events (` + auditColumns + `)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`
	updateAuditHeadSQL = `UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1`
	allAuditSQL        = `SELECT ` + auditColumns + ` FROM audit_events ORDER BY seq`
)

// Audit list limits (store.AuditFilter.Limit).
const (
	defaultAuditLimit = 100
	maxAuditLimit     = 1000
)

// ErrAuditChainBroken is matched (errors.Is) by every *AuditChainError.
var ErrAuditChainBroken = errors.New("sqlstore: audit chain broken")

// AuditChainError reports the first audit event at which the chain fails to
// verify.
type AuditChainError struct {
	Seq    int64
	Reason string
}

func (e *AuditChainError) Error() string {
	return fmt.Sprintf("sqlstore: audit chain broken at seq %d: %s", e.Seq, e.Reason)
}

func (e *AuditChainError) Unwrap() error { return ErrAuditChainBroken }

// AuditHash returns the hex SHA-256 of the canonical encoding of e, which
// covers every field except Hash. The encoding is, in order:
//
//	tag "openxaa.audit.v1", Seq, Time (Unix ms), Type, Actor, Subject,
//	ClientID, Outcome, Rule, Reason, RequestID, Data, PrevHash
//
// Integers are 8-byte big-endian two's complement. Strings are an 8-byte
// big-endian byte length followed by the bytes. Data is its entry count
// followed by each key and value as strings, keys in ascending byte order.
// Every field is therefore delimited by its length, so no two different
// events encode alike.
func AuditHash(e *store.AuditEvent) string {
	sum := sha256.Sum256(appendAuditEncoding(nil, e))
	return hex.EncodeToString(sum[:])
}

func appendAuditEncoding(b []byte, e *store.AuditEvent) []byte {
	str := func(b []byte, s string) []byte {
		b = binary.BigEndian.AppendUint64(b, uint64(len(s)))
		return append(b, s...)
	}
	b = str(b, auditHashTag)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Seq))
	b = binary.BigEndian.AppendUint64(b, uint64(e.Time.UnixMilli()))
	for _, s := range []string{e.Type, e.Actor, e.Subject, e.ClientID, e.Outcome, e.Rule, e.Reason, e.RequestID} {
		b = str(b, s)
	}
	keys := make([]string, 0, len(e.Data))
	for k := range e.Data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = binary.BigEndian.AppendUint64(b, uint64(len(keys)))
	for _, k := range keys {
		b = str(b, k)
		b = str(b, e.Data[k])
	}
	return str(b, e.PrevHash)
}

// AppendAudit locks the chain head (FOR UPDATE on PostgreSQL, the write
// lock on SQLite), so appends from any number of transactions and instances
// are serialized, take consecutive sequence numbers and chain correctly. The
// head lock is held until the transaction ends: keep audited transactions
// short.
func (o *ops) AppendAudit(ctx context.Context, e *store.AuditEvent) error {
	if e == nil {
		return fmt.Errorf("%w: nil audit event", ErrInvalidInput)
	}
	ev := *e
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
	if err := o.queryRow(ctx, o.w, "append audit", o.d.selectAuditHeadForUpdate, nil, &ev.Seq, &ev.PrevHash); err != nil {
		return err
	}
	ev.Seq++
	ev.Hash = AuditHash(&ev)
	if _, err := o.exec(ctx, "append audit", insertAuditSQL,
		ev.Seq, ms(ev.Time), ev.Type, ev.Actor, ev.Subject, ev.ClientID, ev.Outcome, ev.Rule, ev.Reason,
		ev.RequestID, string(data), ev.PrevHash, ev.Hash); err != nil {
		return err
	}
	if _, err := o.exec(ctx, "append audit", updateAuditHeadSQL, ev.Seq, ev.Hash); err != nil {
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
	query, args := listAuditQuery(f, limit)
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

// listAuditQuery assembles the query from constant fragments, one
// "AND column = $N" per non-empty filter, so each combination can use its
// (column, seq) index. Filter values only ever travel as bound parameters.
func listAuditQuery(f store.AuditFilter, limit int) (string, []any) {
	var b strings.Builder
	b.WriteString(`SELECT ` + auditColumns + ` FROM audit_events WHERE seq > $1`)
	args := []any{max(f.AfterSeq, 0)}
	for _, c := range []struct{ column, value string }{
		{"type", f.Type},
		{"subject", f.Subject},
		{"client_id", f.ClientID},
	} {
		if c.value != "" {
			args = append(args, c.value)
			b.WriteString(" AND " + c.column + " = $" + strconv.Itoa(len(args)))
		}
	}
	args = append(args, int64(limit))
	b.WriteString(" ORDER BY seq LIMIT $" + strconv.Itoa(len(args)))
	return b.String(), args
}

func scanAudit(s scanner) (store.AuditEvent, error) {
	var ev store.AuditEvent
	var t int64
	var data string
	if err := s.Scan(&ev.Seq, &t, &ev.Type, &ev.Actor, &ev.Subject, &ev.ClientID, &ev.Outcome, &ev.Rule,
		&ev.Reason, &ev.RequestID, &data, &ev.PrevHash, &ev.Hash); err != nil {
		return store.AuditEvent{}, err
	}
	ev.Time = fromMS(t)
	if err := json.Unmarshal([]byte(data), &ev.Data); err != nil {
		return store.AuditEvent{}, fmt.Errorf("audit event %d: data: %w", ev.Seq, err)
	}
	if len(ev.Data) == 0 {
		ev.Data = nil
	}
	return ev, nil
}

// VerifyAuditChain recomputes the whole chain from one consistent snapshot
// and returns how many events verified. It reports, as an *AuditChainError,
// the first event that is missing, out of order, edited or not linked to its
// predecessor, and a chain head that does not match the last event (events
// deleted from the end).
//
// The chain detects edits by anyone who cannot rewrite every later event;
// anchoring the head outside the database (a log line, a signed export)
// extends that to an attacker with full write access.
func (db *DB) VerifyAuditChain(ctx context.Context) (checked int64, err error) {
	tx, err := db.read.BeginTx(ctx, db.d.snapshot)
	if err != nil {
		return 0, db.d.wrap("verify audit chain", err)
	}
	defer func() { _ = tx.Rollback() }()

	var headSeq int64
	var headHash string
	if err := tx.QueryRowContext(ctx, selectAuditHeadSQL).Scan(&headSeq, &headHash); err != nil {
		return 0, db.d.wrap("verify audit chain", err)
	}
	rows, err := tx.QueryContext(ctx, allAuditSQL)
	if err != nil {
		return 0, db.d.wrap("verify audit chain", err)
	}
	defer rows.Close()
	prev := GenesisHash
	for rows.Next() {
		ev, err := scanAudit(rows)
		if err != nil {
			return checked, &AuditChainError{Seq: checked + 1, Reason: err.Error()}
		}
		switch {
		case ev.Seq != checked+1:
			return checked, &AuditChainError{Seq: checked + 1, Reason: fmt.Sprintf("missing (next stored seq is %d)", ev.Seq)}
		case ev.PrevHash != prev:
			return checked, &AuditChainError{Seq: ev.Seq, Reason: "prev_hash does not match the previous event's hash"}
		case AuditHash(&ev) != ev.Hash:
			return checked, &AuditChainError{Seq: ev.Seq, Reason: "hash does not match the event's contents"}
		}
		prev = ev.Hash
		checked++
	}
	if err := rows.Err(); err != nil {
		return checked, db.d.wrap("verify audit chain", err)
	}
	switch {
	case headSeq != checked:
		return checked, &AuditChainError{Seq: checked + 1,
			Reason: fmt.Sprintf("chain head is at seq %d but the last stored event is %d", headSeq, checked)}
	case headHash != prev:
		return checked, &AuditChainError{Seq: checked, Reason: "chain head hash does not match the last event"}
	}
	return checked, nil
}
