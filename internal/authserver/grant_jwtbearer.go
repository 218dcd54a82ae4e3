package authserver

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/openxaa/xaa/internal/audit"
	"github.com/openxaa/xaa/internal/jose"
	"github.com/openxaa/xaa/internal/oauth"
	"github.com/openxaa/xaa/internal/store"
)

// namespaceIDJAGReuse holds, for issuers with AllowReuse, the digest of
// (client_id, ID-JAG bytes) of each first redemption: a later presentation
// is a permitted reuse only if its digest is already there.
const namespaceIDJAGReuse = "id-jag-reuse"

// tokenResponse is the RFC 6749 §5.1 response, with the -05 resource.
// There is never a refresh_token (spec digest §1.8).
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope"`
	Resource    string `json:"resource"`
}

// accessTokenClaims is the RFC 9068 claim set of an issued access token.
type accessTokenClaims struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience string   `json:"aud"`
	ClientID string   `json:"client_id"`
	Scope    string   `json:"scope"`
	JWTID    string   `json:"jti"`
	IssuedAt int64    `json:"iat"`
	Expiry   int64    `json:"exp"`
	AuthTime int64    `json:"auth_time,omitempty"`
	ACR      string   `json:"acr,omitempty"`
	AMR      []string `json:"amr,omitempty"`
}

// assertionClaims are the ID-JAG claims beyond the registered ones
// jose.Verify checks. Types are strict: a claim of the wrong JSON type
// refuses the whole assertion.
type assertionClaims struct {
	ClientID *string         `json:"client_id"`
	Scope    *string         `json:"scope"`
	Resource json.RawMessage `json:"resource"`
	AuthTime *float64        `json:"auth_time"`
	ACR      string          `json:"acr"`
	AMR      []string        `json:"amr"`
}

// jwtBearer redeems an ID-JAG (spec digest §1.7). Everything that can
// refuse the assertion runs first, the signature before anything reads the
// replay store; only then, in one transaction, the jti is recorded, the
// access token's ledger row written and the decision audited. A replay
// rolls that transaction back whole.
func (s *Server) jwtBearer(ctx context.Context, req tokenRequest, rec *record) (*tokenResponse, error) {
	assertion := req.form.Get("assertion")
	if assertion == "" {
		return nil, rec.fail(ruleRequestInvalid, oauth.InvalidRequest("the assertion parameter is required"))
	}
	rec.data["assertion_hmac"] = audit.TokenHMAC(s.cfg.AuditKey, assertion)
	requested, err := oauth.Scopes(req.form)
	if err != nil {
		return nil, rec.fail(ruleRequestInvalid, err)
	}
	rec.data["requested_scope"] = audit.Clip(oauth.ScopeString(requested))
	var wantResource string
	if raw := req.form.Get("resource"); raw != "" {
		c, err := store.CanonicalResource(raw)
		if err != nil {
			return nil, rec.fail(ruleRequestInvalid, oauth.InvalidTarget("the resource parameter is not an acceptable resource indicator").WithCause(err))
		}
		wantResource = c
		rec.data["requested_resource"] = c
	}
	if s.cfg.Disabled {
		return nil, rec.fail(ruleServerDisabled, oauth.InvalidGrant("this authorization server does not accept assertions at the moment").
			WithCause(errors.New("the server-wide switch is off")))
	}

	tok, ti, err := s.verifyAssertion(ctx, assertion, req.now)
	if err != nil {
		return nil, rec.fail(ruleAssertionInvalid, err)
	}
	rec.data["idjag_iss"] = tok.Issuer
	rec.data["idjag_jti"] = audit.Clip(tok.ID)
	rec.data["idjag_sub"] = audit.Clip(tok.Subject)
	var c assertionClaims
	if err := tok.Decode(&c); err != nil {
		return nil, rec.fail(ruleAssertionInvalid, oauth.InvalidGrant("the assertion has a malformed client_id, scope, resource, auth_time, acr or amr claim").WithCause(err))
	}
	// The client_id claim binds the grant to one client (MUST, §4.4.1).
	switch {
	case c.ClientID == nil || *c.ClientID == "":
		return nil, rec.fail(ruleClientMismatch, oauth.InvalidGrant("the assertion has no client_id"))
	case *c.ClientID != req.client.Client.ID:
		return nil, rec.fail(ruleClientMismatch, oauth.InvalidGrant("the assertion was not issued to this client").
			WithCause(fmt.Errorf("client_id claim %q, authenticated client %q", audit.Clip(*c.ClientID), req.client.Client.ID)))
	}
	authTime, err := authTimeOf(c.AuthTime)
	if err != nil {
		return nil, rec.fail(ruleAssertionInvalid, err)
	}

	if tok.Subject == "" {
		return nil, rec.fail(ruleSubjectUnknown, oauth.InvalidGrant("the assertion has no sub"))
	}
	local, err := ti.subjects(ctx, tok.Issuer, tok.Subject)
	switch {
	case errors.Is(err, ErrUnknownSubject):
		return nil, rec.fail(ruleSubjectUnknown, oauth.InvalidGrant("the assertion's subject is not known here").WithCause(err))
	case err != nil:
		return nil, rec.fail(ruleStoreUnavailable, fmt.Errorf("authserver: resolve subject: %w", err))
	case local == "":
		return nil, rec.fail(ruleStoreUnavailable, errors.New("authserver: subject mapping returned an empty subject"))
	}
	rec.subject = local

	res, err := s.pickResource(c.Resource, wantResource, req.policy, rec)
	if err != nil {
		return nil, err
	}
	rec.data["resource"] = res.uri

	var grantScopes []string
	if c.Scope != nil {
		if grantScopes, err = oauth.ParseScope(*c.Scope); err != nil {
			return nil, rec.fail(ruleAssertionInvalid, oauth.InvalidGrant("the assertion's scope claim is malformed").WithCause(err))
		}
	}
	rec.data["idjag_scope"] = audit.Clip(oauth.ScopeString(grantScopes))
	// granted = requested ∩ ID-JAG ∩ client policy ∩ resource (spec digest
	// §6 item 4): scope only ever narrows. No request scope asks for all
	// of the ID-JAG's.
	if requested == nil {
		requested = grantScopes
	}
	sets := [][]string{requested, grantScopes, res.scopes}
	if req.policy.scopes != nil {
		sets = append(sets, req.policy.scopes)
	}
	granted := oauth.Intersect(sets...)
	if len(granted) == 0 {
		return nil, rec.fail(ruleScopeEmpty, oauth.InvalidScope("none of the requested scopes can be granted"))
	}

	iat := req.now.Truncate(time.Second)
	exp := iat.Add(res.lifetime)
	jti, err := newJTI()
	if err != nil {
		return nil, rec.fail(ruleStoreUnavailable, err)
	}
	claims := accessTokenClaims{
		Issuer:   s.cfg.Issuer,
		Subject:  local,
		Audience: res.uri,
		ClientID: req.client.Client.ID,
		Scope:    oauth.ScopeString(granted),
		JWTID:    jti,
		IssuedAt: iat.Unix(),
		Expiry:   exp.Unix(),
		ACR:      c.ACR,
		AMR:      c.AMR,
	}
	if !authTime.IsZero() {
		claims.AuthTime = authTime.Unix()
	}
	token, err := s.cfg.Keys.Signer().Sign(ctx, jose.TypeAccessToken, claims)
	if err != nil {
		return nil, rec.fail(ruleStoreUnavailable, fmt.Errorf("authserver: sign access token: %w", err))
	}
	rec.data["granted_scope"] = claims.Scope
	rec.data["jti"] = jti
	rec.data["exp"] = strconv.FormatInt(claims.Expiry, 10)
	rec.data["token_hmac"] = audit.TokenHMAC(s.cfg.AuditKey, token)
	if claims.ACR != "" {
		rec.data["acr"] = audit.Clip(claims.ACR)
	}

	replayUntil := tok.Expiry.Add(jose.DefaultLeeway)
	issued := store.IssuedToken{
		JTI:       jti,
		Kind:      store.TokenKindAccessToken,
		Issuer:    s.cfg.Issuer,
		ClientID:  req.client.Client.ID,
		Subject:   local,
		Audience:  res.uri,
		Resource:  res.uri,
		Scope:     claims.Scope,
		ParentJTI: tok.ID,
		IssuedAt:  iat,
		ExpiresAt: exp,
	}
	errReplay := oauth.InvalidGrant("the assertion has already been used")
	// Durable before visible: replay row, ledger row and audit record
	// commit together before a byte of the token leaves.
	fenceRule := false
	err = s.cfg.Store.InTx(ctx, func(tx store.Tx) error {
		rec.rule, fenceRule = ruleIssued, false
		// A not-before fence of (client, local subject) kills every ID-JAG
		// issued before it. Read in the transaction that would record the
		// jti, so a fence committed a moment ago is seen, and a refused
		// assertion burns nothing (the savepoint rolls back).
		nb, err := tx.FenceNotBefore(ctx, s.cfg.Issuer, req.client.Client.ID, local)
		if err != nil {
			return err
		}
		if !nb.IsZero() && deadUnder(tok.IssuedAt, nb) {
			fenceRule = true
			rec.data["fence_not_before"] = strconv.FormatInt(fenceSeconds(nb), 10)
			return oauth.InvalidGrant("the assertion was issued before access for this user and client was revoked").
				WithCause(fmt.Errorf("iat %d is before the fence's not_before %d", tok.IssuedAt.Unix(), fenceSeconds(nb)))
		}
		err = tx.RecordOnce(ctx, store.ReplayEntry{Namespace: store.NamespaceIDJAG, Issuer: tok.Issuer, JTI: tok.ID, ExpiresAt: replayUntil})
		switch {
		case errors.Is(err, store.ErrReplay) && ti.allowReuse:
			// A permitted reuse is the same client presenting the same
			// bytes: its digest row exists. A new digest row means a
			// different presentation of a used jti, and returning an
			// error rolls that row back.
			err = tx.RecordOnce(ctx, reuseEntry(tok, req.client.Client.ID, assertion, replayUntil))
			if err == nil {
				return errReplay.WithCause(errors.New("jti already used by another client or with other bytes"))
			}
			if !errors.Is(err, store.ErrReplay) {
				return err
			}
			rec.rule = ruleReused
		case errors.Is(err, store.ErrReplay):
			return errReplay.WithCause(err)
		case err != nil:
			return err
		case ti.allowReuse:
			if err := tx.RecordOnce(ctx, reuseEntry(tok, req.client.Client.ID, assertion, replayUntil)); err != nil {
				return err
			}
		}
		if err := tx.RecordToken(ctx, issued); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, rec.event(AuditAccessTokenIssued, "allow"))
	})
	if err != nil {
		if _, ok := errors.AsType[*oauth.Error](err); ok {
			if fenceRule {
				return nil, rec.fail(ruleFenceNotBefore, err)
			}
			return nil, rec.fail(ruleReplay, err)
		}
		rec.allowed = true
		if errors.Is(err, store.ErrUnavailable) {
			return nil, rec.fail(ruleStoreUnavailable, errUnavailable("the token ledger", err))
		}
		return nil, rec.fail(ruleStoreUnavailable, fmt.Errorf("authserver: record access token: %w", err))
	}
	return &tokenResponse{
		AccessToken: token,
		TokenType:   "Bearer",
		ExpiresIn:   int64(res.lifetime / time.Second),
		Scope:       claims.Scope,
		Resource:    res.uri,
	}, nil
}

// verifyAssertion runs jose.Verify with the ID-JAG profile against the
// enabled trusted issuers (alg allowlists applied per issuer), then the
// issuer's own lifetime cap. Token rejections are invalid_grant; a key set
// that cannot be read is 503, a misconfiguration 500.
func (s *Server) verifyAssertion(ctx context.Context, raw string, now time.Time) (*jose.Token, *trustedIssuer, error) {
	tok, err := jose.Verify(ctx, raw, jose.IDJAGProfile(), s.trust, jose.Expectations{Audiences: []string{s.cfg.Issuer}, Now: now})
	switch {
	case err == nil:
	case jose.IsRejection(err):
		return nil, nil, oauth.InvalidGrant("the assertion is not a valid ID-JAG for this authorization server").WithCause(err)
	case errors.Is(err, jose.ErrMisconfigured):
		return nil, nil, fmt.Errorf("authserver: verify assertion: %w", err)
	default:
		return nil, nil, oauth.TemporarilyUnavailable("the issuer's keys cannot be read; retry later").WithCause(err)
	}
	ti, err := s.trust.lookup(ctx, tok.Issuer)
	switch {
	case err != nil:
		return nil, nil, oauth.TemporarilyUnavailable("the trusted issuers cannot be read; retry later").WithCause(err)
	case ti == nil: // disabled in the store since Verify looked it up
		return nil, nil, oauth.InvalidGrant("the assertion is not a valid ID-JAG for this authorization server")
	}
	if life := tok.Expiry.Sub(tok.IssuedAt); life > ti.maxLifetime {
		return nil, nil, oauth.InvalidGrant("the assertion is not a valid ID-JAG for this authorization server").
			WithCause(fmt.Errorf("%w: lives %s, this issuer's limit is %s", jose.ErrLifetimeTooLong, life, ti.maxLifetime))
	}
	if tok.ID == "" { // the profile requires it; never record an empty key
		return nil, nil, oauth.InvalidGrant("the assertion has no jti")
	}
	return tok, ti, nil
}

// pickResource chooses the resource of the access token: the one the
// assertion's resource claim names (a string, or an array the request's
// resource parameter picks from). Every value of the claim must be governed
// here (invalid_grant, §4.4.1); a resource parameter the claim does not
// name, or a resource the client's policy does not allow, is invalid_target.
func (s *Server) pickResource(raw json.RawMessage, want string, policy *clientPolicy, rec *record) (*resource, error) {
	notGoverned := func(cause error) error {
		return rec.fail(ruleResourceInvalid, oauth.InvalidGrant("the assertion's resource is not governed by this authorization server").WithCause(cause))
	}
	var values []string
	if len(raw) > 0 && raw[0] == '[' {
		if err := json.Unmarshal(raw, &values); err != nil {
			return nil, notGoverned(err)
		}
	} else if len(raw) > 0 && string(raw) != "null" {
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, notGoverned(err)
		}
		values = []string{v}
	}
	if len(values) == 0 {
		return nil, rec.fail(ruleResourceInvalid, oauth.InvalidGrant("the assertion names no resource, and this authorization server requires one"))
	}
	named := make([]*resource, 0, len(values))
	for _, v := range values {
		c, err := store.CanonicalResource(v)
		if err != nil {
			return nil, notGoverned(err)
		}
		r := s.resources[c]
		if r == nil {
			return nil, notGoverned(fmt.Errorf("resource %q is not configured", audit.Clip(c)))
		}
		named = append(named, r)
	}
	var res *resource
	switch {
	case want != "":
		i := slices.IndexFunc(named, func(r *resource) bool { return r.uri == want })
		if i < 0 {
			return nil, rec.fail(ruleResourceMismatch, oauth.InvalidTarget("the resource parameter is not a resource the assertion grants"))
		}
		res = named[i]
	case len(named) == 1:
		res = named[0]
	default:
		return nil, rec.fail(ruleResourceMismatch, oauth.InvalidTarget("the assertion names several resources; send resource to choose one"))
	}
	if !slices.Contains(policy.resources, res.uri) {
		return nil, rec.fail(ruleResourceForbidden, oauth.InvalidTarget("the client may not obtain tokens for this resource").
			WithCause(fmt.Errorf("resource %q is not in the client's policy", res.uri)))
	}
	return res, nil
}

// authTimeOf reads an optional auth_time NumericDate.
func authTimeOf(v *float64) (time.Time, error) {
	if v == nil {
		return time.Time{}, nil
	}
	if at := *v; at < 0 || at > 253402300799 || math.IsNaN(at) {
		return time.Time{}, oauth.InvalidGrant("the assertion's auth_time is out of range")
	}
	return time.Unix(int64(*v), 0).UTC(), nil
}

// reuseEntry is the replay row that lets AllowReuse recognise the first
// presentation: per issuer, keyed by SHA-256 of client_id and the bytes.
func reuseEntry(tok *jose.Token, clientID, assertion string, until time.Time) store.ReplayEntry {
	h := sha256.New()
	h.Write([]byte(clientID))
	h.Write([]byte{0})
	h.Write([]byte(assertion))
	return store.ReplayEntry{Namespace: namespaceIDJAGReuse, Issuer: tok.Issuer, JTI: hex.EncodeToString(h.Sum(nil)), ExpiresAt: until}
}

// newJTI returns 128 random bits, base64url.
func newJTI() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("authserver: generate jti: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}
