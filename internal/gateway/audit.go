package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/openxaa/xaa/internal/audit"
	"github.com/openxaa/xaa/internal/httpserver"
	"github.com/openxaa/xaa/internal/store"
	"github.com/openxaa/xaa/mcpauth"
)

// AuditToolCall is the audit event type of every tool-call decision.
const AuditToolCall = "gateway.tool_call"

// RuleRevocationsStale is the audit rule of a tool call refused because
// the revocation list is too old to trust.
const RuleRevocationsStale = "revocation.stale"

// ErrAuditUnavailable means a tool-call decision could not be recorded;
// the call is refused (fail closed).
var ErrAuditUnavailable = errors.New("gateway: audit trail unavailable")

// auditTimeout bounds one audit write. The write is detached from the
// client's cancellation so that a client that hangs up cannot erase the
// record of what it asked.
const auditTimeout = 5 * time.Second

// Auditor is where decisions are recorded (a store.Audit).
type Auditor interface {
	AppendAudit(ctx context.Context, e *store.AuditEvent) error
}

// TxAudit returns an Auditor that writes each record in its own
// transaction of db. On SQLite concurrent transactions share one commit
// (group commit), so concurrent tool calls share one fsync instead of
// paying one each; the record is still durable before the call proceeds.
func TxAudit(db store.Transactor) Auditor { return txAudit{db} }

type txAudit struct{ db store.Transactor }

func (a txAudit) AppendAudit(ctx context.Context, e *store.AuditEvent) error {
	return a.db.InTx(ctx, func(tx store.Tx) error { return tx.AppendAudit(ctx, e) })
}

// decisionRecorder is a route's mcpauth OnDecision: it refuses an allowed
// call while the revocation list is stale, and writes one audit record per
// decision. Any failure to write denies the call.
type decisionRecorder struct {
	route, resource string
	audit           Auditor
	revocations     *Revocations // nil: staleness is not enforced (introspection)
	log             *slog.Logger
	now             func() time.Time

	// Refusals of requests without a usable token are recorded at most
	// once per HTTP request and at most anonymousRate per second: they
	// are denied anyway, and an anonymous flood (or one huge batch) must
	// not become a flood of synchronous audit writes. How many were left
	// out is recorded with the next one.
	anonymous *rate.Limiter
	dropped   atomic.Int64
}

// Bounds of anonymous refusal records per route.
const (
	anonymousRate  = 20
	anonymousBurst = 40
)

func newDecisionRecorder(route, resource string, a Auditor, rv *Revocations, log *slog.Logger, now func() time.Time) *decisionRecorder {
	return &decisionRecorder{route: route, resource: resource, audit: a, revocations: rv, log: log, now: now,
		anonymous: rate.NewLimiter(anonymousRate, anonymousBurst)}
}

func (d *decisionRecorder) record(ctx context.Context, dec mcpauth.Decision) error {
	var dropped int64
	if dec.Rule == mcpauth.RuleTokenMissing || dec.Rule == mcpauth.RuleTokenInvalid {
		n, _ := ctx.Value(noteKey{}).(*requestNote)
		if n != nil && !n.anonymousRecorded.CompareAndSwap(false, true) {
			d.dropped.Add(1)
			return nil // this request's refusal is already recorded
		}
		if !d.anonymous.AllowN(d.now(), 1) {
			d.dropped.Add(1)
			return nil
		}
		dropped = d.dropped.Swap(0)
	}
	ev := &store.AuditEvent{
		Time:      dec.Time,
		Type:      AuditToolCall,
		Actor:     audit.Clip(dec.ClientID),
		Subject:   audit.Clip(dec.Subject),
		ClientID:  audit.Clip(dec.ClientID),
		Outcome:   "deny",
		Rule:      dec.Rule,
		Reason:    audit.Clip(dec.Reason),
		RequestID: httpserver.RequestIDFrom(ctx),
		Data: map[string]string{
			"route":    d.route,
			"resource": d.resource,
			"method":   audit.Clip(dec.Method),
			"tool":     audit.Clip(dec.Tool),
			"jti":      audit.Clip(dec.JTI),
			"session":  audit.Clip(dec.SessionID),
		},
	}
	if ev.Time.IsZero() {
		ev.Time = d.now()
	}
	if ev.Actor == "" {
		ev.Actor = "anonymous"
	}
	if dropped > 0 {
		ev.Data["unrecorded_before"] = fmt.Sprintf("%d refusals of requests without a usable token were not recorded before this one (rate limit)", dropped)
	}
	if len(dec.MissingScopes) > 0 {
		ev.Data["missing_scopes"] = audit.Clip(strings.Join(dec.MissingScopes, " "))
	}
	var refuse error
	switch {
	case dec.Allowed && d.revocations != nil && d.revocations.Stale():
		ev.Rule = RuleRevocationsStale
		ev.Reason = fmt.Sprintf("the revocation list was last refreshed at %s, longer ago than the allowed staleness; tool calls fail closed until a poll succeeds",
			formatTime(d.revocations.LastSuccess()))
		refuse = ErrRevocationsStale
	case dec.Allowed:
		ev.Outcome = "allow"
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
	defer cancel()
	if err := d.audit.AppendAudit(actx, ev); err != nil {
		d.log.ErrorContext(ctx, "audit tool call; refusing it", "err", err, "route", d.route, "jti", ev.Data["jti"], "tool", ev.Data["tool"])
		return fmt.Errorf("%w: %w", ErrAuditUnavailable, err)
	}
	if refuse != nil {
		d.log.WarnContext(ctx, "tool call refused: revocation list is stale", "route", d.route, "jti", ev.Data["jti"], "tool", ev.Data["tool"])
		if n, ok := ctx.Value(noteKey{}).(*requestNote); ok {
			n.stale.Store(true)
		}
	}
	return refuse
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}
