package idp

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/openxaa/xaa/idjag"
	"github.com/openxaa/xaa/internal/audit"
	"github.com/openxaa/xaa/internal/jose"
	"github.com/openxaa/xaa/internal/oauth"
	"github.com/openxaa/xaa/internal/policy"
	"github.com/openxaa/xaa/internal/store"
)

// Rules the exchange decides itself, before or after policy.Decide: they
// are about the request and the subject token, which policy never sees,
// or about minting. They share the audit record's Rule field with
// policy's rules, so they are stable names too.
const (
	ruleRequestInvalid   = "request.invalid"
	ruleSubjectInvalid   = "subject.invalid"
	ruleSubjectUnknown   = "subject.user_unknown"
	ruleResourceInvalid  = "target.resource_invalid"
	ruleNoClientIDAtAS   = "target.no_client_id"
	ruleStoreUnavailable = "store.error"

	// An ID token that verifies but that the token ledger does not hold
	// as an ID token issued to this client for this user, or holds as
	// revoked (a reused authorization code revokes its first
	// redemption's tokens).
	ruleSubjectUnknownToken = "subject.unknown_token"
	ruleSubjectRevoked      = "subject.revoked"
)

// exchangeResponse is the RFC 8693 §2.2.1 response for an ID-JAG.
type exchangeResponse struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in"`
	Scope           string `json:"scope,omitempty"`
	Resource        string `json:"resource,omitempty"`
}

// exchangeParams are the parsed token-exchange parameters.
type exchangeParams struct {
	subjectToken     string
	subjectTokenType string
	audience         string
	resource         string // canonical; "" when absent
	scopes           []string
}

// exchangeGrant is RFC 8693 token exchange for an ID-JAG. Order matters:
// the request is parsed completely, then the subject token is verified,
// then the directory is read fresh and policy.Decide (the one choke point)
// rules; only an Allow mints, and the token reaches the client only after
// its ledger row and audit record are committed. Every other outcome
// writes exactly one denial record.
func (s *Server) exchangeGrant(ctx context.Context, req tokenRequest) (any, error) {
	rec := newExchangeRecord(req)
	rec.address = s.clientIP(req.r)
	resp, err := s.exchange(ctx, req, rec)
	if err != nil {
		s.auditDenial(ctx, rec, err)
		return nil, err
	}
	return resp, nil
}

func (s *Server) exchange(ctx context.Context, req tokenRequest, rec *exchangeRecord) (*exchangeResponse, error) {
	p, err := parseExchange(req.form)
	if err != nil {
		return nil, rec.fail(ruleRequestInvalid, err)
	}
	rec.params(p, s.cfg.AuditKey)

	subj, err := s.exchangeSubject(ctx, req, p)
	if err != nil {
		return nil, rec.fail(ruleSubjectInvalid, err)
	}
	rec.subject = subj.UserID
	if p.subjectTokenType == idjag.TokenTypeIDToken {
		rec.data["subject_jti"] = audit.Clip(subj.IDTokenJTI)
		if rule, err := s.idTokenInLedger(ctx, subj); err != nil {
			return nil, rec.fail(rule, err)
		}
	}
	user, err := s.cfg.Store.GetUser(ctx, subj.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, rec.fail(ruleSubjectUnknown, oauth.InvalidGrant("the subject token names no known user"))
	} else if err != nil {
		return nil, rec.fail(ruleStoreUnavailable, fmt.Errorf("idp: load user: %w", err))
	}

	rq := resolveRequest{
		Now:      req.now,
		Client:   req.client.Client,
		User:     user,
		Audience: p.audience,
		Resource: p.resource,
		Scopes:   p.scopes,
		Auth:     policy.Authentication{Time: subj.AuthTime, ACR: subj.ACR, AMR: subj.AMR},
	}
	if subj.Refresh != nil {
		rq.Refresh = &policy.RefreshSubject{Scopes: subj.Refresh.Scopes, ExpiresAt: subj.Refresh.ExpiresAt}
	}
	res, err := resolve(ctx, s.cfg.Store, rq)
	if err != nil {
		return nil, rec.fail(ruleStoreUnavailable, err)
	}
	if res.Connection != nil {
		rec.connection = res.Connection.ID
	}
	d := policy.Decide(res.Input)
	rec.decision(d)
	if !d.Allow {
		return nil, decisionError(d)
	}
	if res.ClientIDAtAS == "" {
		// Policy allowed, but the app holds no client_id at the AS, so
		// there is nothing to put in the client_id claim: this audience
		// is not a usable target for this client.
		rec.rule = ruleNoClientIDAtAS
		rec.reasons = append(rec.reasons, fmt.Sprintf("app %q holds no client_id at authorization server %q", req.client.Client.ID, p.audience))
		return nil, oauth.InvalidTarget("the client is not registered at the requested authorization server")
	}

	iat := req.now.Truncate(time.Second)
	exp := iat.Add(d.Lifetime)
	jti, err := newJTI()
	if err != nil {
		return nil, rec.fail(ruleStoreUnavailable, err)
	}
	claims := idjag.Claims{
		Issuer:   s.cfg.Issuer,
		Subject:  user.ID,
		Audience: p.audience,
		ClientID: res.ClientIDAtAS,
		JWTID:    jti,
		IssuedAt: iat.Unix(),
		Expiry:   exp.Unix(),
		Resource: p.resource,
		Scope:    oauth.ScopeString(d.GrantedScopes),
		ACR:      subj.ACR,
		AMR:      subj.AMR,
	}
	if !subj.AuthTime.IsZero() {
		claims.AuthTime = subj.AuthTime.Unix()
	}
	if res.Connection.IncludeEmail {
		claims.Email = user.Email
	}
	token, err := s.cfg.Keys.Signer().Sign(ctx, idjag.JWTType, claims)
	if err != nil {
		return nil, rec.fail(ruleStoreUnavailable, fmt.Errorf("idp: sign ID-JAG: %w", err))
	}
	issued := store.IssuedToken{
		JTI:       jti,
		Kind:      store.TokenKindIDJAG,
		Issuer:    s.cfg.Issuer,
		ClientID:  req.client.Client.ID,
		Subject:   user.ID,
		Audience:  p.audience,
		Resource:  p.resource,
		Scope:     claims.Scope,
		IssuedAt:  iat,
		ExpiresAt: exp,
	}
	ev := rec.issued(claims, res.ClientIDAtAS, token, s.cfg.AuditKey)
	// Durable before visible: the ledger row and the decision commit
	// together, before a single byte of the token is written.
	if err := s.cfg.Store.InTx(ctx, func(tx store.Tx) error {
		if err := tx.RecordToken(ctx, issued); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, ev)
	}); err != nil {
		rec.allowedButFailed()
		return nil, fmt.Errorf("idp: record ID-JAG: %w", err)
	}
	return &exchangeResponse{
		AccessToken:     token,
		IssuedTokenType: idjag.TokenType,
		TokenType:       "N_A",
		ExpiresIn:       int64(d.Lifetime / time.Second),
		Scope:           claims.Scope,
		Resource:        claims.Resource,
	}, nil
}

// parseExchange validates the parameters. Missing or unsupported ones are
// invalid_request (RFC 8693 §2.2.2); a resource that is not an acceptable
// absolute URI is invalid_target (RFC 8707 §2); a malformed scope is
// invalid_scope.
func parseExchange(f oauth.Form) (exchangeParams, error) {
	var p exchangeParams
	switch rt := f.Get("requested_token_type"); rt {
	case idjag.TokenType:
	case "":
		return p, oauth.InvalidRequest("requested_token_type is required")
	default:
		return p, oauth.InvalidRequest("unsupported requested_token_type " + oauth.Excerpt(rt) + "; this IdP issues only " + idjag.TokenType)
	}
	p.subjectToken = f.Get("subject_token")
	p.subjectTokenType = f.Get("subject_token_type")
	switch {
	case p.subjectToken == "":
		return p, oauth.InvalidRequest("subject_token is required")
	case p.subjectTokenType == "":
		return p, oauth.InvalidRequest("subject_token_type is required")
	case p.subjectTokenType != idjag.TokenTypeIDToken && p.subjectTokenType != idjag.TokenTypeRefreshToken:
		return p, oauth.InvalidRequest("unsupported subject_token_type " + oauth.Excerpt(p.subjectTokenType) +
			"; use " + idjag.TokenTypeIDToken + " or " + idjag.TokenTypeRefreshToken)
	}
	// Delegation and rich authorization requests are not implemented;
	// ignoring them would let a client believe it got what it asked for.
	if f.Has("actor_token") || f.Has("actor_token_type") {
		return p, oauth.InvalidRequest("actor_token is not supported")
	}
	if f.Has("authorization_details") {
		return p, oauth.InvalidRequest("authorization_details is not supported")
	}
	p.audience = f.Get("audience")
	if p.audience == "" {
		return p, oauth.InvalidRequest("audience is required: the issuer of the resource's authorization server")
	}
	if raw := f.Get("resource"); raw != "" {
		c, err := store.CanonicalResource(raw)
		if err != nil {
			return p, oauth.InvalidTarget("the resource is not an acceptable resource indicator: an absolute https URI without query or fragment").WithCause(err)
		}
		p.resource = c
	}
	scopes, err := oauth.Scopes(f)
	if err != nil {
		return p, err
	}
	p.scopes = scopes
	return p, nil
}

// exchangeSubject proves the user from the subject token. Every failure to
// do so is invalid_grant (decisions.md: the ID-JAG profile wins over RFC
// 8693's invalid_request), except an oversized token, which is
// invalid_request and never a fallback to some other subject.
func (s *Server) exchangeSubject(ctx context.Context, req tokenRequest, p exchangeParams) (subject, error) {
	client := req.client.Client
	var subj subject
	var err error
	switch p.subjectTokenType {
	case idjag.TokenTypeIDToken:
		subj, err = s.idTokenSubject(ctx, p.subjectToken, client.ID, req.now)
	case idjag.TokenTypeRefreshToken:
		subj, err = s.refreshSubjectFor(ctx, p.subjectToken, client, req.now)
		if err == nil && subj.Refresh == nil {
			err = errors.New("idp: refresh subject without its grant")
		}
	default:
		err = oauth.InvalidRequest("unsupported subject_token_type")
	}
	if err != nil {
		return subject{}, err
	}
	if subj.UserID == "" || (subj.ClientID != "" && subj.ClientID != client.ID) {
		return subject{}, oauth.InvalidGrant("the subject token was not issued to this client")
	}
	return subj, nil
}

// idTokenClaims are the ID token claims the exchange uses beyond the
// registered ones jose.Verify checks. Types are strict: a claim of the
// wrong JSON type fails the whole token.
type idTokenClaims struct {
	AuthTime *float64 `json:"auth_time"`
	ACR      string   `json:"acr"`
	AMR      []string `json:"amr"`
	SID      string   `json:"sid"`
	AZP      string   `json:"azp"`
}

// idTokenSubject verifies an ID token this IdP issued to clientID. The
// IDToken profile refuses any other typ, so an ID-JAG or an RFC 9068 access
// token presented as an ID token fails here, before its claims are read.
func (s *Server) idTokenSubject(ctx context.Context, raw, clientID string, now time.Time) (subject, error) {
	tok, err := jose.Verify(ctx, raw, jose.IDTokenProfile(),
		jose.SingleIssuer{Issuer: s.cfg.Issuer, Keys: s.cfg.Keys.KeySet()},
		jose.Expectations{Audiences: []string{clientID}, Issuer: s.cfg.Issuer, Now: now})
	switch {
	case err == nil:
	case errors.Is(err, jose.ErrTooLarge):
		return subject{}, oauth.InvalidRequest("subject_token is too large").WithCause(err)
	case jose.IsRejection(err):
		return subject{}, oauth.InvalidGrant("the subject token is not a valid ID token issued by this IdP to this client").WithCause(err)
	default:
		return subject{}, fmt.Errorf("idp: verify ID token: %w", err)
	}
	var c idTokenClaims
	if err := tok.Decode(&c); err != nil {
		return subject{}, oauth.InvalidGrant("the ID token has a malformed auth_time, acr, amr, sid or azp claim").WithCause(err)
	}
	// OIDC Core §2: with several audiences, azp names the party the token
	// was issued to; it must be this client.
	if (c.AZP != "" && c.AZP != clientID) || (len(tok.Audience) > 1 && c.AZP == "") {
		return subject{}, oauth.InvalidGrant("the ID token was not issued to this client")
	}
	if tok.Subject == "" {
		return subject{}, oauth.InvalidGrant("the ID token has no sub")
	}
	subj := subject{UserID: tok.Subject, ClientID: clientID, SessionID: c.SID, IDTokenJTI: tok.ID, ACR: c.ACR, AMR: c.AMR}
	if c.AuthTime != nil {
		at := *c.AuthTime
		if at < 0 || at > 253402300799 || math.IsNaN(at) {
			return subject{}, oauth.InvalidGrant("the ID token's auth_time is out of range")
		}
		subj.AuthTime = time.Unix(int64(at), 0).UTC()
	}
	return subj, nil
}

// idTokenInLedger accepts a verified ID token only if the token ledger
// holds it as an ID token this IdP issued to this client for this user,
// not revoked. The signature cannot tell: revocation (of a reused
// authorization code's first redemption) lives only in the ledger, and
// a token signed with our key but never recorded was not issued by the
// code or refresh grant. It returns the audit rule with the error.
func (s *Server) idTokenInLedger(ctx context.Context, subj subject) (string, error) {
	notIssued := func(cause error) error {
		return oauth.InvalidGrant("the subject token is not a valid ID token issued by this IdP to this client").WithCause(cause)
	}
	if subj.IDTokenJTI == "" {
		return ruleSubjectUnknownToken, notIssued(errors.New("the ID token has no jti, and every ID token this IdP issues has one"))
	}
	t, err := s.cfg.Store.GetToken(ctx, s.cfg.Issuer, subj.IDTokenJTI)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return ruleSubjectUnknownToken, notIssued(errors.New("the ID token's jti is not in the token ledger"))
	case err != nil:
		return ruleStoreUnavailable, fmt.Errorf("idp: look up the subject ID token: %w", err)
	case t.Kind != store.TokenKindIDToken || t.Subject != subj.UserID || t.ClientID != subj.ClientID:
		return ruleSubjectUnknownToken, notIssued(fmt.Errorf("the ledger row of the ID token's jti is a %s for user %q and client %q",
			t.Kind, t.Subject, t.ClientID))
	case !t.RevokedAt.IsZero():
		return ruleSubjectRevoked, oauth.InvalidGrant("the subject token has been revoked").
			WithCause(fmt.Errorf("the ID token was revoked at %s", t.RevokedAt.UTC().Format(time.RFC3339)))
	}
	return "", nil
}

// decisionError maps a policy outcome to the OAuth error the client gets.
// The description is Decision.ClientMessage only: Reasons name groups,
// approvers and connections, and stay in the audit log.
func decisionError(d policy.Decision) error {
	msg := d.ClientMessage
	switch d.Outcome {
	case policy.DenyTarget:
		return oauth.InvalidTarget(msg)
	case policy.DenyScope:
		return oauth.InvalidScope(msg)
	case policy.DenyAccess:
		return oauth.AccessDenied(msg)
	case policy.DenySubject:
		return oauth.InvalidGrant(msg)
	case policy.StepUpRequired:
		var acr []string
		maxAge := oauth.NoMaxAge
		if d.StepUp != nil {
			acr = d.StepUp.ACRValues
			if d.StepUp.MaxAge != policy.NoMaxAge {
				maxAge = d.StepUp.MaxAge
			}
		}
		return oauth.InsufficientUserAuthentication(msg, acr, maxAge)
	default:
		return oauth.ServerError("the server could not evaluate policy for this request").
			WithCause(fmt.Errorf("idp: policy input invalid: %s", strings.Join(d.Reasons, "; ")))
	}
}

// newJTI returns 128 random bits, base64url.
func newJTI() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("idp: generate jti: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}
