package authserver

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/openxaa/xaa/internal/httpserver"
	"github.com/openxaa/xaa/internal/oauth"
	"github.com/openxaa/xaa/internal/store"
)

// Audit event types of the jwt-bearer grant.
const (
	AuditAccessTokenIssued = "accesstoken.issued"
	AuditAccessTokenDenied = "accesstoken.denied"
)

// Rules: stable names in the audit record's Rule field, one per reason a
// redemption ends.
const (
	ruleIssued            = "jwt_bearer.issued"
	ruleReused            = "jwt_bearer.reused" // AllowReuse let a known presentation through
	ruleGrantType         = "request.grant_type"
	ruleClientNotAllowed  = "client.not_allowed"
	ruleRequestInvalid    = "request.invalid"
	ruleServerDisabled    = "server.disabled"
	ruleAssertionInvalid  = "assertion.invalid"
	ruleClientMismatch    = "assertion.client_id_mismatch"
	ruleSubjectUnknown    = "assertion.subject_unknown"
	ruleResourceInvalid   = "assertion.resource_invalid"
	ruleResourceMismatch  = "request.resource_mismatch"
	ruleResourceForbidden = "client.resource_not_allowed"
	ruleScopeEmpty        = "scope.none_granted"
	ruleReplay            = "assertion.replayed"
	ruleStoreUnavailable  = "store.error"
)

// record accumulates what one redemption's audit record says, filled as
// facts are learned, so a denial at any step records all that was known.
type record struct {
	time      time.Time
	client    string
	requestID string
	subject   string
	rule      string
	reasons   []string
	data      map[string]string
	allowed   bool // every check passed, but recording failed
}

func newRecord(req tokenRequest, address string) *record {
	r := &record{
		time:      req.now,
		client:    req.client.Client.ID,
		requestID: httpserver.RequestIDFrom(req.r.Context()),
		data:      map[string]string{},
	}
	if address != "" {
		r.data["address"] = address
	}
	return r
}

// fail records a denial and returns err.
func (r *record) fail(rule string, err error) error {
	r.rule = rule
	if oe, ok := errors.AsType[*oauth.Error](err); ok {
		r.reasons = append(r.reasons, oe.Code+": "+oe.Description)
		if oe.Err != nil {
			r.reasons = append(r.reasons, oe.Err.Error())
		}
	} else {
		r.reasons = append(r.reasons, err.Error())
	}
	return err
}

func (r *record) event(typ, outcome string) *store.AuditEvent {
	data := make(map[string]string, len(r.data)+1)
	for k, v := range r.data {
		if v != "" {
			data[k] = v
		}
	}
	return &store.AuditEvent{
		Time:      r.time,
		Type:      typ,
		Actor:     r.client,
		Subject:   r.subject,
		ClientID:  r.client,
		Outcome:   outcome,
		Rule:      r.rule,
		Reason:    strings.Join(r.reasons, "; "),
		RequestID: r.requestID,
		Data:      data,
	}
}

// auditDenial writes the one record of a failed redemption. If the store
// is down this fails too; the error response is sent regardless, since
// nothing was granted that the trail could miss.
func (s *Server) auditDenial(ctx context.Context, r *record, cause error) {
	outcome := "deny"
	oe, isOAuth := errors.AsType[*oauth.Error](cause)
	if !isOAuth || oe.HTTPStatus() >= 500 || r.allowed || errors.Is(cause, store.ErrUnavailable) {
		outcome = "error"
		if r.rule == "" || r.allowed {
			r.rule = ruleStoreUnavailable
			r.reasons = append(r.reasons, cause.Error())
		}
	}
	if isOAuth {
		r.data["error"] = oe.Code
	}
	ev := r.event(AuditAccessTokenDenied, outcome)
	if err := s.cfg.Store.AppendAudit(context.WithoutCancel(ctx), ev); err != nil {
		s.log.ErrorContext(ctx, "audit jwt-bearer denial", "err", err, "rule", r.rule, "client_id", r.client)
	}
}
