package idp

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/openxaa/xaa/internal/oauth"
	"github.com/openxaa/xaa/internal/policy"
	"github.com/openxaa/xaa/internal/store"
)

// maxRefreshTokenLen bounds a presented refresh token before hashing; ours
// are 43 characters.
const maxRefreshTokenLen = 256

// refreshGrant rotates a refresh token (RFC 6749 §6, RFC 9700 §4.14.2):
// the presented token is superseded by a new one of the same family, which
// keeps the family's absolute expiry. Presenting a superseded token revokes
// the whole family.
func (s *Server) refreshGrant(ctx context.Context, req tokenRequest) (any, error) {
	client := req.client.Client
	raw := req.form.Get("refresh_token")
	if raw == "" || len(raw) > maxRefreshTokenLen {
		return nil, oauth.InvalidRequest("the refresh_token parameter is missing or malformed")
	}
	var narrowed []string
	if req.form.Has("scope") {
		var err error
		if narrowed, err = oauth.Scopes(req.form); err != nil {
			return nil, err
		}
	}
	var resp *tokenResponse
	var denial *grantDenial
	err := s.cfg.Store.InTx(ctx, func(tx store.Tx) error {
		resp, denial = nil, nil
		deny := func(typ, subject, reason string, e error, data map[string]string) error {
			denial = &grantDenial{e}
			return tx.AppendAudit(ctx, s.auditEvent(req.r, typ, subject, client.ID, "deny", reason, data))
		}
		rt, err := tx.GetRefreshToken(ctx, digestOf(raw))
		if errors.Is(err, store.ErrNotFound) {
			return deny("token.denied", "", "unknown refresh token", oauth.InvalidGrant("the refresh token is invalid"), nil)
		} else if err != nil {
			return err
		}
		if reason, d := s.checkRefresh(rt, client.ID, req.now); d != nil {
			if errors.Is(d, errRefreshReused) {
				n, err := tx.RevokeRefreshFamily(ctx, rt.FamilyID, req.now)
				if err != nil {
					return err
				}
				return deny("token.refresh_reuse", rt.UserID, reason, oauth.InvalidGrant("the refresh token is invalid"),
					map[string]string{"refresh_family": rt.FamilyID, "revoked": itoa(n)})
			}
			return deny("token.denied", rt.UserID, reason, oauth.InvalidGrant("the refresh token is invalid"),
				map[string]string{"refresh_family": rt.FamilyID})
		}
		scopes, _ := oauth.ParseScope(rt.Scope)
		for _, sc := range narrowed {
			if !oauth.Contains(scopes, sc) {
				return deny("token.denied", rt.UserID, "refresh requested scope beyond the original grant",
					oauth.InvalidScope("the requested scope exceeds the original grant"), nil)
			}
		}
		user, err := tx.GetUser(ctx, rt.UserID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		// A disabled user is refused without revoking the family: disabled
		// is a state every path reads live, so re-enabling restores the
		// grant, whether or not a client tried to refresh in between.
		if d, ok := policy.CheckPrincipals(policy.App{ClientID: client.ID, Enabled: !client.Disabled},
			policy.User{ID: rt.UserID, Enabled: err == nil && !user.Disabled}); !ok {
			return deny("token.denied", rt.UserID, d.ClientMessage, oauth.InvalidGrant("the refresh token is invalid"),
				map[string]string{"rule": d.Rule})
		}
		g := issueGrant{
			client: client.ID, user: user, sessionID: rt.SessionID, scope: rt.Scope,
			authTime: rt.AuthTime, acr: rt.ACR, amr: rt.AMR, now: req.now,
			family: rt.FamilyID, familyExpires: rt.ExpiresAt, rotateDigest: rt.Digest,
		}
		out, err := s.issueTokens(ctx, tx, g)
		if errors.Is(err, store.ErrReplay) {
			// Lost a race with a concurrent rotation of the same token:
			// that is reuse too.
			if _, err := tx.RevokeRefreshFamily(ctx, rt.FamilyID, req.now); err != nil {
				return err
			}
			return deny("token.refresh_reuse", rt.UserID, "concurrent reuse of a refresh token; family revoked",
				oauth.InvalidGrant("the refresh token is invalid"), map[string]string{"refresh_family": rt.FamilyID})
		}
		if err != nil {
			return err
		}
		if narrowed != nil {
			out.resp.Scope = oauth.ScopeString(narrowed)
		}
		resp = &out.resp
		return tx.AppendAudit(ctx, s.auditEvent(req.r, "token.issued", user.ID, client.ID, "allow",
			"refresh token rotated", map[string]string{
				"grant_type": grantRefreshToken, "id_token_jti": out.idJTI, "access_token_jti": out.atJTI,
				"refresh_family": out.family, "scope": rt.Scope,
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

var (
	errRefreshReused  = errors.New("idp: superseded refresh token presented")
	errRefreshInvalid = errors.New("idp: refresh token not usable")
)

// checkRefresh returns nil if rt may be used by clientID at now, else an
// error (errRefreshReused for a superseded token) and a reason for audit.
func (s *Server) checkRefresh(rt store.RefreshToken, clientID string, now time.Time) (reason string, err error) {
	switch {
	case rt.ClientID != clientID:
		return "the refresh token was issued to another client", errRefreshInvalid
	case !rt.RevokedAt.IsZero():
		return "the refresh token's family is revoked", errRefreshInvalid
	case !rt.SupersededAt.IsZero():
		return "a superseded refresh token was presented; its family is revoked", errRefreshReused
	case !now.Before(rt.ExpiresAt):
		return "the refresh token expired", errRefreshInvalid
	}
	return "", nil
}

// refreshSubjectFor validates token as a refresh token issued to client and
// returns its subject WITHOUT rotating it: a refresh token presented as a
// token-exchange subject proves the user, it is not redeemed. A superseded
// token still revokes its family (it is reuse wherever it shows up); the
// caller's denial record covers the audit, and the revocation is logged.
// Whether the user is still enabled is Decide's to check.
func (s *Server) refreshSubjectFor(ctx context.Context, token string, client store.Client, now time.Time) (subject, error) {
	if token == "" || len(token) > maxRefreshTokenLen {
		return subject{}, oauth.InvalidGrant("the subject token is not a valid refresh token")
	}
	rt, err := s.cfg.Store.GetRefreshToken(ctx, digestOf(token))
	if errors.Is(err, store.ErrNotFound) {
		return subject{}, oauth.InvalidGrant("the subject token is not a valid refresh token").WithCause(err)
	} else if err != nil {
		return subject{}, err
	}
	if reason, bad := s.checkRefresh(rt, client.ID, now); bad != nil {
		if errors.Is(bad, errRefreshReused) {
			if _, err := s.cfg.Store.RevokeRefreshFamily(ctx, rt.FamilyID, now); err != nil {
				return subject{}, err
			}
			s.log.WarnContext(ctx, "superseded refresh token presented as a subject token; family revoked",
				"family", rt.FamilyID, "client", client.ID)
		}
		return subject{}, oauth.InvalidGrant("the subject token is not a valid refresh token").WithCause(errors.New(reason))
	}
	scopes, _ := oauth.ParseScope(rt.Scope)
	return subject{
		UserID: rt.UserID, ClientID: rt.ClientID, SessionID: rt.SessionID,
		AuthTime: rt.AuthTime, ACR: rt.ACR, AMR: rt.AMR,
		Refresh: &refreshSubject{Scopes: scopes, ExpiresAt: rt.ExpiresAt, FamilyID: rt.FamilyID},
	}, nil
}

func itoa(n int64) string {
	return strconv.FormatInt(n, 10)
}
