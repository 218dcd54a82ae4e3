package xaaclient

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/openxaa/xaa/idjag"
)

// idJAG is an ID-JAG the IdP just issued. It lives only on the stack
// between the exchange and the one redemption that consumes it: it is
// never cached, logged or presented twice (checklist E92).
type idJAG struct {
	raw    string
	jti    string   // for logs only
	scopes []string // what the IdP granted
}

// exchangeResponse is the RFC 8693 §2.2.1 answer, with the -05 resource.
type exchangeResponse struct {
	AccessToken     string          `json:"access_token"`
	IssuedTokenType string          `json:"issued_token_type"`
	TokenType       string          `json:"token_type"`
	ExpiresIn       json.RawMessage `json:"expires_in"`
	Scope           *string         `json:"scope"`
	Resource        json.RawMessage `json:"resource"`
}

// exchange trades the session's ID token for an ID-JAG for t (ID-JAG
// §4.3, EMA): audience is the authorization server's issuer, resource the
// PRM resource. The answer is checked before anything uses it (checklist
// E91): the issued token type, token_type N_A, and a resource that is
// exactly the one asked for, both in the response and in the ID-JAG.
func (c *Client) exchange(ctx context.Context, s *session, t *target, scopes []string) (*idJAG, error) {
	meta, err := c.idp(ctx)
	if err != nil {
		return nil, err
	}
	form := url.Values{
		"grant_type":           {idjag.GrantTypeTokenExchange},
		"requested_token_type": {idjag.TokenType},
		"audience":             {t.asIssuer},
		"resource":             {t.resource},
		"subject_token":        {s.IDToken},
		"subject_token_type":   {idjag.TokenTypeIDToken},
	}
	if len(scopes) > 0 {
		form.Set("scope", strings.Join(scopes, " "))
	}
	var r exchangeResponse
	if err := c.postToken(ctx, meta.TokenEndpoint, "IdP token endpoint", c.opts.Issuer, c.opts.Client, form, &r); err != nil {
		return nil, err
	}
	bad := func(format string, args ...any) (*idJAG, error) {
		c.log.WarnContext(ctx, "discarding the IdP's token exchange response", "resource", t.resource, "reason", fmt.Sprintf(format, args...))
		return nil, fmt.Errorf("%w: token exchange: "+format, append([]any{ErrInvalidResponse}, args...)...)
	}
	switch {
	case r.IssuedTokenType != idjag.TokenType:
		return bad("issued_token_type is %q, not %s", clip(r.IssuedTokenType), idjag.TokenType)
	case !strings.EqualFold(r.TokenType, "N_A"):
		return bad("token_type is %q, not N_A", clip(r.TokenType))
	case r.AccessToken == "":
		return bad("no ID-JAG in access_token")
	}
	header, claims, err := peekJWT(r.AccessToken)
	if err != nil {
		return bad("the ID-JAG is not a JWT: %v", err)
	}
	if typ, _ := header["typ"].(string); !mediaTypeIs(typ, idjag.JWTType) {
		return bad("the issued token has typ %q, not %s", clip(typ), idjag.JWTType)
	}
	// -05 §4.3.4: the response's resource is required iff the ID-JAG has
	// the claim, and both must be exactly what the client asked for.
	respRes, hasResp, err := resourceSet(r.Resource)
	if err != nil {
		return bad("resource: %v", err)
	}
	claimRes, hasClaim, err := resourceSet(rawJSON(claims["resource"]))
	if err != nil {
		return bad("the ID-JAG's resource claim: %v", err)
	}
	switch {
	case hasResp && !onlyResource(respRes, t.resource):
		return bad("resource %q is not the requested %q", strings.Join(clipAll(respRes), " "), t.resource)
	case hasClaim && !onlyResource(claimRes, t.resource):
		return bad("the ID-JAG is for resource %q, not the requested %q", strings.Join(clipAll(claimRes), " "), t.resource)
	case hasClaim && !hasResp && !c.opts.AllowExchangeWithoutResource:
		return bad("the ID-JAG has a resource claim but the response has no resource")
	case hasResp && !hasClaim:
		return bad("the response names a resource the ID-JAG does not carry")
	}
	granted := scopes
	if r.Scope != nil {
		granted = scopesOf(*r.Scope)
	}
	jti, _ := claims["jti"].(string)
	c.log.InfoContext(ctx, "token exchange: the IdP issued an ID-JAG", "audience", t.asIssuer, "resource", t.resource,
		"scope", strings.Join(granted, " "), "id_jag_jti", clip(jti))
	return &idJAG{raw: r.AccessToken, jti: jti, scopes: granted}, nil
}

// tokenGrantResponse is the authorization server's RFC 6749 §5.1 answer.
type tokenGrantResponse struct {
	AccessToken string          `json:"access_token"`
	TokenType   string          `json:"token_type"`
	ExpiresIn   json.RawMessage `json:"expires_in"`
	Scope       *string         `json:"scope"`
	Resource    json.RawMessage `json:"resource"`
}

// redeem presents the ID-JAG once, with the jwt-bearer grant (RFC 7523,
// ID-JAG §4.4) at the authorization server, authenticated with the app's
// credentials there. A failure is not retried with the same ID-JAG. The
// returned resource, when present, must be exactly the requested one.
func (c *Client) redeem(ctx context.Context, t *target, jag *idJAG, requested []string, s *session) (*storedToken, error) {
	form := url.Values{
		"grant_type": {idjag.GrantTypeJWTBearer},
		"assertion":  {jag.raw},
		"resource":   {t.resource},
	}
	// No scope parameter: the ID-JAG's scope claim is what the IdP
	// granted, and asking for it again could only narrow it further.
	var r tokenGrantResponse
	if err := c.postToken(ctx, t.asToken, "authorization server token endpoint", t.asIssuer, t.asCreds, form, &r); err != nil {
		if te, ok := errTokenAs(err); ok {
			if isDenial(te.body.Error) && te.body.Error != "unauthorized_client" {
				return nil, &DeniedError{Code: te.body.Error, Description: clip(te.body.Description), Resource: t.resource}
			}
			return nil, te.oauth()
		}
		return nil, err
	}
	bad := func(format string, args ...any) (*storedToken, error) {
		c.log.WarnContext(ctx, "discarding the authorization server's token response", "resource", t.resource,
			"reason", fmt.Sprintf(format, args...))
		return nil, fmt.Errorf("%w: jwt-bearer grant: "+format, append([]any{ErrInvalidResponse}, args...)...)
	}
	switch {
	case !strings.EqualFold(r.TokenType, "Bearer"):
		return bad("token_type is %q; only Bearer tokens are supported", clip(r.TokenType))
	case r.AccessToken == "":
		return bad("no access_token")
	}
	res, hasRes, err := resourceSet(r.Resource)
	if err != nil {
		return bad("resource: %v", err)
	}
	if hasRes && !onlyResource(res, t.resource) {
		return bad("the token is for resource %q, not the requested %q", strings.Join(clipAll(res), " "), t.resource)
	}
	now := c.opts.Now()
	lifetime, ok := expiresIn(r.ExpiresIn)
	if !ok {
		lifetime = defaultTokenLifetime
	}
	granted := jag.scopes
	if r.Scope != nil {
		granted = scopesOf(*r.Scope)
	}
	c.log.InfoContext(ctx, "jwt-bearer grant: access token issued", "authorization_server", t.asIssuer, "resource", t.resource,
		"scope", strings.Join(granted, " "), "expires_in", int64(lifetime/time.Second), "id_jag_jti", clip(jag.jti))
	return &storedToken{
		Resource: t.resource, Scopes: normScopes(requested), Granted: granted, AuthServer: t.asIssuer,
		AccessToken: r.AccessToken, ExpiresAt: now.Add(lifetime), Subject: s.Subject, LoginID: s.LoginID,
	}, nil
}

// rawJSON re-encodes a decoded JSON value; nil stays absent.
func rawJSON(v any) json.RawMessage {
	if v == nil {
		return nil
	}
	b, _ := json.Marshal(v)
	return b
}

func errTokenAs(err error) (*tokenError, bool) {
	te, ok := err.(*tokenError)
	return te, ok
}

// resourceSet reads a resource member: a string or a non-empty array of
// unique strings (-05 §4.3.4). ok is false when absent.
func resourceSet(raw json.RawMessage) ([]string, bool, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, false, nil
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		if one == "" {
			return nil, false, fmt.Errorf("empty")
		}
		return []string{one}, true, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, false, fmt.Errorf("neither a string nor an array of strings")
	}
	if len(many) == 0 {
		return nil, false, fmt.Errorf("an empty array")
	}
	for i, r := range many {
		if r == "" || slices.Contains(many[:i], r) {
			return nil, false, fmt.Errorf("an empty or duplicated value")
		}
	}
	return many, true, nil
}

// onlyResource reports whether set is exactly {want}, compared after
// canonicalisation: the client asks for one resource, so anything else is
// a token for something it did not ask for.
func onlyResource(set []string, want string) bool {
	return len(set) == 1 && sameResource(set[0], want)
}

// peekJWT decodes a compact JWS's header and payload without verifying
// it. The client is not the ID-JAG's audience and cannot verify it; it
// reads it only to check that the IdP's response is consistent.
func peekJWT(raw string) (header, claims map[string]any, err error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, nil, fmt.Errorf("%d segments, want 3", len(parts))
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			return nil, nil, fmt.Errorf("segment %d is not base64url", i+1)
		}
		if err := json.Unmarshal(b, dst); err != nil || *dst == nil {
			return nil, nil, fmt.Errorf("segment %d is not a JSON object", i+1)
		}
	}
	return header, claims, nil
}

// mediaTypeIs compares JOSE typ values per RFC 7515 §4.1.9.
func mediaTypeIs(typ, want string) bool {
	t := typ
	if len(t) >= len("application/") && strings.EqualFold(t[:len("application/")], "application/") {
		t = t[len("application/"):]
	}
	return strings.EqualFold(t, want)
}

// stepUpFromIdP reads the RFC 9470 members of an IdP error.
func stepUpFromIdP(te *tokenError, resource string) (*StepUpChallenge, error) {
	ch := &StepUpChallenge{ACRValues: strings.Fields(te.body.ACRValues), MaxAge: NoMaxAge,
		Description: clip(te.body.Description), Resource: resource, FromIdP: true}
	if raw := strings.Trim(string(te.body.MaxAge), `"`); raw != "" && raw != "null" {
		d, _, err := maxAgeOf(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: the IdP's step-up answer: %v", ErrInvalidResponse, err)
		}
		ch.MaxAge = d
	}
	return ch, nil
}
