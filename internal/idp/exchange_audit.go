package idp

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/openxaa/xaa/idjag"
	"github.com/openxaa/xaa/internal/audit"
	"github.com/openxaa/xaa/internal/httpserver"
	"github.com/openxaa/xaa/internal/oauth"
	"github.com/openxaa/xaa/internal/policy"
	"github.com/openxaa/xaa/internal/store"
)

// Audit event types of the token exchange.
const (
	AuditIDJAGIssued = "idjag.issued"
	AuditIDJAGDenied = "idjag.denied"
)

// exchangeRecord accumulates what one exchange's audit record says. It is
// filled as the exchange learns facts, so a denial at any step records
// everything known up to that step.
type exchangeRecord struct {
	time       time.Time
	client     string
	requestID  string
	address    string
	subject    string
	connection string
	rule       string
	reasons    []string
	data       map[string]string
	allowed    bool // policy allowed, but recording failed
}

func newExchangeRecord(req tokenRequest) *exchangeRecord {
	return &exchangeRecord{
		time:      req.now,
		client:    req.client.Client.ID,
		requestID: httpserver.RequestIDFrom(req.r.Context()),
		data:      map[string]string{},
	}
}

// params records the request, never the subject token itself: only its
// HMAC, so an operator can match a leaked token to its use.
func (r *exchangeRecord) params(p exchangeParams, key []byte) {
	r.data["audience"] = audit.Clip(p.audience)
	r.data["resource"] = p.resource
	r.data["requested_scope"] = audit.Clip(oauth.ScopeString(p.scopes))
	r.data["subject_token_type"] = p.subjectTokenType
	r.data["subject_token_hmac"] = audit.TokenHMAC(key, p.subjectToken)
}

// fail records a denial decided outside policy and returns err.
func (r *exchangeRecord) fail(rule string, err error) error {
	r.rule = rule
	var oe *oauth.Error
	if errors.As(err, &oe) {
		r.reasons = append(r.reasons, oe.Code+": "+oe.Description)
		if oe.Err != nil {
			r.reasons = append(r.reasons, oe.Err.Error())
		}
	} else {
		r.reasons = append(r.reasons, err.Error())
	}
	return err
}

// decision records policy's verdict: its rule and its reasons, which are
// for operators and may name groups and approvers.
func (r *exchangeRecord) decision(d policy.Decision) {
	r.rule = d.Rule
	r.reasons = append(r.reasons, d.Reasons...)
	r.data["outcome"] = d.Outcome.String()
	if d.StepUp != nil {
		r.data["acr_values"] = strings.Join(d.StepUp.ACRValues, " ")
		if d.StepUp.MaxAge != policy.NoMaxAge {
			r.data["max_age"] = strconv.FormatInt(int64(d.StepUp.MaxAge/time.Second), 10)
		}
	}
}

// allowedButFailed marks a decision that allowed but could not be made
// durable: the client gets an error, and the denial record says why.
func (r *exchangeRecord) allowedButFailed() {
	r.allowed = true
}

// issued builds the allow record committed with the ledger row.
func (r *exchangeRecord) issued(c idjag.Claims, clientIDAtAS, token string, key []byte) *store.AuditEvent {
	ev := r.event(AuditIDJAGIssued, "allow")
	ev.Data["granted_scope"] = c.Scope
	ev.Data["jti"] = c.JWTID
	ev.Data["exp"] = strconv.FormatInt(c.Expiry, 10)
	ev.Data["client_id_at_as"] = clientIDAtAS
	ev.Data["token_hmac"] = audit.TokenHMAC(key, token)
	if c.ACR != "" {
		ev.Data["acr"] = c.ACR
	}
	if c.AuthTime != 0 {
		ev.Data["auth_time"] = strconv.FormatInt(c.AuthTime, 10)
	}
	return ev
}

func (r *exchangeRecord) event(typ, outcome string) *store.AuditEvent {
	data := make(map[string]string, len(r.data)+8)
	for k, v := range r.data {
		if v != "" {
			data[k] = v
		}
	}
	if r.connection != "" {
		data["connection"] = r.connection
	}
	if r.address != "" {
		data["address"] = r.address
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

// auditDenial writes the one record of a failed exchange. If the store
// is down this fails too; the error response is sent regardless (it is a
// denial, so nothing was granted that the trail could miss).
func (s *Server) auditDenial(ctx context.Context, r *exchangeRecord, cause error) {
	outcome := "deny"
	var oe *oauth.Error
	if !errors.As(cause, &oe) || oe.HTTPStatus() >= 500 || r.allowed {
		outcome = "error"
		if r.rule == "" || r.allowed {
			r.rule = ruleStoreUnavailable
			r.reasons = append(r.reasons, cause.Error())
		}
	}
	if oe != nil {
		r.data["error"] = oe.Code
	}
	ev := r.event(AuditIDJAGDenied, outcome)
	if err := s.cfg.Store.AppendAudit(context.WithoutCancel(ctx), ev); err != nil {
		s.log.ErrorContext(ctx, "audit token-exchange denial", "err", err, "rule", r.rule, "client_id", r.client)
	}
}

// clientIP is the caller's address for rate limits: Config.ClientIP, or
// the TCP peer with IPv6 reduced to its /64.
func (s *Server) clientIP(r *http.Request) string {
	if s.cfg.ClientIP != nil {
		return s.cfg.ClientIP(r)
	}
	return oauth.RemoteAddress(r)
}
