package idp

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/openxaa/xaa/internal/jose"
	"github.com/openxaa/xaa/internal/oauth"
	"github.com/openxaa/xaa/internal/policy"
	"github.com/openxaa/xaa/internal/store"
)

// tokenResponse is the RFC 6749 §5.1 / OIDC Core §3.1.3.3 success body.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	IDToken      string `json:"id_token,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope"`
}

// idTokenClaimsOut are the claims of an ID token this IdP issues.
type idTokenClaimsOut struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience string   `json:"aud"`
	AZP      string   `json:"azp"`
	Expiry   int64    `json:"exp"`
	IssuedAt int64    `json:"iat"`
	AuthTime int64    `json:"auth_time"`
	Nonce    string   `json:"nonce,omitempty"`
	ACR      string   `json:"acr"`
	AMR      []string `json:"amr"`
	SID      string   `json:"sid,omitempty"`
	JTI      string   `json:"jti"`
}

// accessTokenClaims: the IdP's access token is an RFC 9068 at+jwt whose
// only audience is the userinfo endpoint, so it cannot be mistaken for
// anything a resource server or the exchange accepts.
type accessTokenClaims struct {
	Issuer   string `json:"iss"`
	Subject  string `json:"sub"`
	Audience string `json:"aud"`
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
	Expiry   int64  `json:"exp"`
	IssuedAt int64  `json:"iat"`
	JTI      string `json:"jti"`
}

// grantDenial is a refusal decided inside a transaction that must still
// commit (the consumed code, the revocations, the audit record).
type grantDenial struct{ err error }

// codeGrant redeems an authorization code (RFC 6749 §4.1.3, RFC 7636 §4.6).
// The code is consumed by the first attempt that names it, whatever the
// outcome; a second redemption revokes what the first issued.
func (s *Server) codeGrant(ctx context.Context, req tokenRequest) (any, error) {
	client := req.client.Client
	code, redirectURI, verifier := req.form.Get("code"), req.form.Get("redirect_uri"), req.form.Get("code_verifier")
	switch {
	case code == "":
		return nil, oauth.InvalidRequest("the code parameter is required")
	case redirectURI == "":
		return nil, oauth.InvalidRequest("the redirect_uri parameter is required")
	}
	var resp *tokenResponse
	var denial *grantDenial
	err := s.cfg.Store.InTx(ctx, func(tx store.Tx) error {
		resp, denial = nil, nil
		deny := func(typ, subject, reason string, e error, data map[string]string) error {
			denial = &grantDenial{e}
			return tx.AppendAudit(ctx, s.auditEvent(req.r, typ, subject, client.ID, "deny", reason, data))
		}
		ac, err := tx.ConsumeAuthCode(ctx, digestOf(code), req.now)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return deny("token.denied", "", "unknown authorization code", oauth.InvalidGrant("the authorization code is invalid"), nil)
		case errors.Is(err, store.ErrReplay):
			revoked, rerr := s.revokeCodeIssue(ctx, tx, ac, req.now)
			if rerr != nil {
				return rerr
			}
			return deny("token.code_reuse", ac.UserID, "an authorization code was presented again; the tokens of its first redemption are revoked",
				oauth.InvalidGrant("the authorization code was already used"),
				map[string]string{"first_client": ac.ClientID, "refresh_family": ac.RefreshFamily, "revoked": revoked})
		case err != nil:
			return err
		}
		switch {
		case ac.ClientID != client.ID:
			return deny("token.denied", ac.UserID, "the authorization code was issued to another client",
				oauth.InvalidGrant("the authorization code was not issued to this client"), map[string]string{"code_client": ac.ClientID})
		case !req.now.Before(ac.ExpiresAt):
			return deny("token.denied", ac.UserID, "the authorization code expired", oauth.InvalidGrant("the authorization code expired"), nil)
		case ac.RedirectURI != redirectURI:
			return deny("token.denied", ac.UserID, "redirect_uri differs from the authorization request",
				oauth.InvalidGrant("redirect_uri does not match the authorization request"), nil)
		case !pkceMatches(ac.CodeChallenge, verifier):
			return deny("token.denied", ac.UserID, "PKCE verification failed (code_verifier missing or wrong)",
				oauth.InvalidGrant("PKCE verification failed"), nil)
		}
		user, err := tx.GetUser(ctx, ac.UserID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if d, ok := policy.CheckPrincipals(policy.App{ClientID: client.ID, Enabled: !client.Disabled},
			policy.User{ID: ac.UserID, Enabled: err == nil && !user.Disabled}); !ok {
			return deny("token.denied", ac.UserID, d.ClientMessage, oauth.InvalidGrant("the grant is no longer valid"),
				map[string]string{"rule": d.Rule})
		}
		g := issueGrant{
			client: client.ID, user: user, sessionID: ac.SessionID, scope: ac.Scope, nonce: ac.Nonce,
			authTime: ac.AuthTime, acr: ac.ACR, amr: ac.AMR, now: req.now,
		}
		if hasScope(ac.Scope, "offline_access") {
			g.newFamily = true
			g.familyExpires = req.now.Add(s.cfg.RefreshLifetime)
		}
		out, err := s.issueTokens(ctx, tx, g)
		if err != nil {
			return err
		}
		if err := tx.RecordAuthCodeIssue(ctx, ac.Digest, out.family, out.idJTI, out.atJTI); err != nil {
			return err
		}
		resp = &out.resp
		return tx.AppendAudit(ctx, s.auditEvent(req.r, "token.issued", user.ID, client.ID, "allow",
			"authorization code redeemed", map[string]string{
				"grant_type": grantAuthorizationCode, "id_token_jti": out.idJTI, "access_token_jti": out.atJTI,
				"refresh_family": out.family, "scope": ac.Scope,
			}))
	})
	if err != nil {
		return nil, err
	}
	if denial != nil {
		return nil, denial.err
	}
	return resp, nil
}

// revokeCodeIssue revokes what the first redemption of ac issued.
func (s *Server) revokeCodeIssue(ctx context.Context, tx store.Tx, ac store.AuthCode, now time.Time) (string, error) {
	n := int64(0)
	if ac.RefreshFamily != "" {
		var err error
		if n, err = tx.RevokeRefreshFamily(ctx, ac.RefreshFamily, now); err != nil {
			return "", err
		}
	}
	for _, jti := range []string{ac.IDTokenJTI, ac.AccessTokenJTI} {
		if jti == "" {
			continue
		}
		if err := tx.RevokeToken(ctx, s.cfg.Issuer, jti, now); err != nil && !errors.Is(err, store.ErrNotFound) {
			return "", err
		}
	}
	return fmt.Sprintf("%d refresh tokens, id token %q, access token %q", n, ac.IDTokenJTI, ac.AccessTokenJTI), nil
}

// pkceMatches is RFC 7636 §4.6 for S256, with the §4.1 verifier syntax.
func pkceMatches(challenge, verifier string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	for i := 0; i < len(verifier); i++ {
		c := verifier[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	sum := sha256.Sum256([]byte(verifier))
	got := base64.RawURLEncoding.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(got), []byte(challenge)) == 1
}

func hasScope(scope, want string) bool {
	scopes, _ := oauth.ParseScope(scope)
	return oauth.Contains(scopes, want)
}

// issueGrant is what a code or refresh redemption mints tokens for.
type issueGrant struct {
	client, sessionID, scope, nonce string
	user                            store.User
	authTime                        time.Time
	acr                             string
	amr                             []string
	now                             time.Time
	// newFamily starts a refresh family ending at familyExpires; rotate
	// continues family (superseding the token with rotateDigest).
	newFamily     bool
	family        string
	familyExpires time.Time
	rotateDigest  []byte
}

type issued struct {
	resp                 tokenResponse
	idJTI, atJTI, family string
}

// issueTokens signs the ID and access tokens, records them in the ledger
// and creates (or rotates) the refresh token, all in tx.
func (s *Server) issueTokens(ctx context.Context, tx store.Tx, g issueGrant) (issued, error) {
	var out issued
	exp := g.now.Add(s.cfg.IDTokenLifetime)
	out.idJTI, out.atJTI = randomToken()[:22], randomToken()[:22]
	idt, err := s.cfg.Keys.Signer().Sign(ctx, jose.TypeJWT, idTokenClaimsOut{
		Issuer: s.cfg.Issuer, Subject: g.user.ID, Audience: g.client, AZP: g.client,
		Expiry: exp.Unix(), IssuedAt: g.now.Unix(), AuthTime: g.authTime.Unix(), Nonce: g.nonce,
		ACR: g.acr, AMR: g.amr, SID: g.sessionID, JTI: out.idJTI,
	})
	if err != nil {
		return issued{}, fmt.Errorf("idp: sign ID token: %w", err)
	}
	userinfo := endpoint(s.cfg.Issuer, "/userinfo")
	at, err := s.cfg.Keys.Signer().Sign(ctx, jose.TypeAccessToken, accessTokenClaims{
		Issuer: s.cfg.Issuer, Subject: g.user.ID, Audience: userinfo, ClientID: g.client, Scope: g.scope,
		Expiry: exp.Unix(), IssuedAt: g.now.Unix(), JTI: out.atJTI,
	})
	if err != nil {
		return issued{}, fmt.Errorf("idp: sign access token: %w", err)
	}
	for _, t := range []store.IssuedToken{
		{JTI: out.idJTI, Kind: store.TokenKindIDToken, Audience: g.client},
		{JTI: out.atJTI, Kind: store.TokenKindAccessToken, Audience: userinfo, ParentJTI: out.idJTI},
	} {
		t.Issuer, t.ClientID, t.Subject, t.Scope, t.IssuedAt, t.ExpiresAt = s.cfg.Issuer, g.client, g.user.ID, g.scope, g.now, exp
		if err := tx.RecordToken(ctx, t); err != nil {
			return issued{}, err
		}
	}
	out.resp = tokenResponse{AccessToken: at, TokenType: "Bearer", ExpiresIn: int64(s.cfg.IDTokenLifetime / time.Second),
		IDToken: idt, Scope: g.scope}
	if g.newFamily || g.rotateDigest != nil {
		family := g.family
		if g.newFamily {
			family = randomToken()[:22]
		}
		rt := randomToken()
		row := store.RefreshToken{
			Digest: digestOf(rt), FamilyID: family, ClientID: g.client, UserID: g.user.ID, SessionID: g.sessionID,
			Scope: g.scope, AuthTime: g.authTime, ACR: g.acr, AMR: g.amr, IssuedAt: g.now, ExpiresAt: g.familyExpires,
		}
		if g.rotateDigest != nil {
			err = tx.RotateRefreshToken(ctx, g.rotateDigest, row, g.now)
		} else {
			err = tx.CreateRefreshToken(ctx, row)
		}
		if err != nil {
			return issued{}, err
		}
		out.family, out.resp.RefreshToken = family, rt
	}
	return out, nil
}
