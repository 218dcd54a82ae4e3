package admin

import (
	"context"
	"net/http"

	"github.com/openxaa/xaa/internal/audit"
	"github.com/openxaa/xaa/internal/httpserver"
	"github.com/openxaa/xaa/internal/store"
)

// Audit records of the admin API (stream "admin"): every change an
// administrator makes, each sign-in and sign-out, and each request refused
// because it reached beyond the caller's role. Reads are not recorded.
// Actor is the administrator's user id (OIDC sub) or admin token id; Data
// names the kind, the display name and the roles.

// event returns the audit record of c's action, type "admin."+op.
func (s *Server) event(ctx context.Context, c *call, op, subject, outcome, reason string, data map[string]string) *store.AuditEvent {
	d := map[string]string{}
	for k, v := range data {
		d[k] = audit.Clip(v)
	}
	d["actor_kind"], d["actor_name"], d["roles"] = c.p.kind, audit.Clip(c.p.name), roleNames(c.p.roles)
	if c.p.sessionID != "" {
		d["session"] = c.p.sessionID
	}
	return &store.AuditEvent{
		Time: s.now(), Type: "admin." + op, Actor: c.p.id, Subject: audit.Clip(subject), Outcome: outcome,
		Reason: audit.Clip(reason), RequestID: httpserver.RequestIDFrom(ctx), Data: d,
	}
}

// record appends c's audit record on its own. A failure is returned: an
// action whose record cannot be written must not look successful.
func (s *Server) record(ctx context.Context, c *call, op, subject, outcome, reason string, data map[string]string) error {
	return s.opts.Store.AppendAudit(ctx, s.event(ctx, c, op, subject, outcome, reason, data))
}

// auditDenied records a request refused for the caller's role. Only an
// authenticated caller reaches this, so it cannot be used to flood the
// trail anonymously; a failure to write is logged, and the request is
// refused either way.
func (s *Server) auditDenied(r *http.Request, p *principal, rt *route) {
	c := &call{r: r, p: p}
	ev := s.event(r.Context(), c, "denied", "", "deny",
		"role "+roleNames(p.roles)+" may not "+rt.summaryLower(),
		map[string]string{"operation": rt.op, "method": r.Method, "path": r.URL.Path, "needs": roleNames(rolesWith(rt.perm))})
	ev.Rule = "admin.role"
	if err := s.opts.Store.AppendAudit(r.Context(), ev); err != nil {
		s.log.ErrorContext(r.Context(), "admin: audit a refused request", "err", err)
	}
}
