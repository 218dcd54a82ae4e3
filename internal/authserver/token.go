package authserver

import (
	"net/http"
	"time"

	"github.com/openxaa/xaa/idjag"
	"github.com/openxaa/xaa/internal/audit"
	"github.com/openxaa/xaa/internal/httpserver"
	"github.com/openxaa/xaa/internal/oauth"
)

// tokenRequest is one authenticated token request, parsed once.
type tokenRequest struct {
	r      *http.Request
	form   oauth.Form
	client oauth.ClientAuth
	policy *clientPolicy
	now    time.Time
}

// handleToken is POST /token. The order is the spec digest's (§1.7): parse
// strictly, authenticate the client, then check the grant type and that
// the client may use it. Failures before authentication are not audited
// (no client to attribute them to, and a flood must not become a flood of
// audit writes); every failure after it writes exactly one record.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	form, err := oauth.ParseTokenForm(r, oauth.DefaultMaxTokenBody)
	if err != nil {
		oauth.WriteError(w, r, err, s.log)
		return
	}
	client, err := s.auth.Authenticate(r.Context(), r, form)
	if err != nil {
		oauth.WriteError(w, r, err, s.log)
		return
	}
	addr := s.clientIP(r)
	if err := s.limits.Allow(client.Client.ID, addr); err != nil {
		oauth.WriteError(w, r, err, s.log)
		return
	}
	req := tokenRequest{r: r, form: form, client: client, policy: s.clients[client.Client.ID], now: s.now()}
	rec := newRecord(req, addr)
	resp, err := s.token(req, rec)
	if err != nil {
		s.auditDenial(r.Context(), rec, err)
		oauth.WriteError(w, r, err, s.log)
		return
	}
	w.Header().Set("Pragma", "no-cache")
	w.Header().Set("Cache-Control", "no-store")
	if err := httpserver.WriteJSON(w, http.StatusOK, resp); err != nil {
		s.log.ErrorContext(r.Context(), "write token response", "err", err)
	}
}

// token dispatches on grant_type; jwt-bearer is the only grant here.
func (s *Server) token(req tokenRequest, rec *record) (*tokenResponse, error) {
	switch gt := req.form.Get("grant_type"); gt {
	case idjag.GrantTypeJWTBearer:
	case "":
		return nil, rec.fail(ruleGrantType, oauth.InvalidRequest("the grant_type parameter is required"))
	default:
		rec.data["grant_type"] = audit.Clip(gt)
		return nil, rec.fail(ruleGrantType, oauth.UnsupportedGrantType("this token endpoint supports only "+idjag.GrantTypeJWTBearer))
	}
	// A client registered in this realm but given no policy has
	// credentials and nothing it may obtain.
	if req.policy == nil {
		return nil, rec.fail(ruleClientNotAllowed, oauth.UnauthorizedClient("the client may not use the jwt-bearer grant at this server"))
	}
	return s.jwtBearer(req.r.Context(), req, rec)
}
