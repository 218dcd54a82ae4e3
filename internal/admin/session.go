package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/openxaa/xaa/internal/store"
)

// The caller's own session, and admin tokens.

func (s *Server) showSession(_ context.Context, c *call) (any, error) {
	v := sessionView{Kind: c.p.kind, ID: c.p.id, Name: c.p.name, Roles: []string{}, ExpiresAt: c.p.expiresAt}
	for _, r := range c.p.roles {
		v.Roles = append(v.Roles, string(r))
	}
	if c.p.kind == kindHuman {
		v.CSRFToken = s.csrfToken(c.p.sessionID)
	}
	return v, nil
}

// logout ends the caller's session, or revokes the caller's admin token.
func (s *Server) logout(ctx context.Context, c *call) (any, error) {
	now := s.now()
	var done string
	err := s.opts.Store.InTx(ctx, func(tx store.Tx) error {
		ev := s.event(ctx, c, "logout", c.p.id, "allow", "", nil)
		if c.p.kind == kindHuman {
			if err := tx.RevokeAdminSession(ctx, c.p.sessionID, now); err != nil {
				return err
			}
			ev.Reason, done = "administrator signed out", "signed out"
		} else {
			if err := tx.RevokeAdminToken(ctx, c.p.id, now); err != nil {
				return err
			}
			ev.Reason, done = "admin token revoked by its bearer", "admin token "+c.p.id+" revoked"
		}
		return tx.AppendAudit(ctx, ev)
	})
	if err != nil {
		return nil, err
	}
	if c.p.kind == kindHuman {
		s.clearCookie(c.w, s.cookieName(), http.SameSiteStrictMode)
	}
	return doneView{Done: done}, nil
}

func (s *Server) listTokens(ctx context.Context, _ *call) (any, error) {
	ts, err := s.opts.Store.ListAdminTokens(ctx, s.now())
	if err != nil {
		return nil, err
	}
	out := listPage[tokenView]{Items: []tokenView{}}
	for _, t := range ts {
		out.Items = append(out.Items, newTokenView(t))
	}
	return out, nil
}

func (s *Server) createToken(ctx context.Context, c *call) (any, error) {
	b := c.body.(*createTokenBody)
	role, err := ParseRole(b.Role)
	if err != nil {
		return nil, badRequest("%s", sentence(err))
	}
	ttl, err := time.ParseDuration(b.TTL)
	if err != nil {
		return nil, badRequest("ttl must be a duration such as \"15m\", at most %s", MaxTokenTTL)
	}
	t, err := CreateToken(ctx, s.opts.Store, TokenRequest{
		Role: role, TTL: ttl, Description: b.Description, Actor: c.p.id, ActorKind: c.p.kind, Now: s.now(),
	})
	if err != nil {
		return nil, err
	}
	return newTokenAnswer{Token: t.Value, Detail: newTokenView(t.AdminToken)}, nil
}

func (s *Server) revokeToken(ctx context.Context, c *call) (any, error) {
	id := c.path("id")
	if !strings.HasPrefix(id, "at_") || !validID(id) {
		return nil, badRequest("%s is not an admin token id", quote(id))
	}
	reason, err := requireReason(c.body.(*reasonBody).Reason)
	if err != nil {
		return nil, err
	}
	err = s.opts.Store.InTx(ctx, func(tx store.Tx) error {
		if err := tx.RevokeAdminToken(ctx, id, s.now()); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, s.event(ctx, c, "token_revoke", id, "allow", reason, map[string]string{"token_id": id}))
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("there is no admin token %s", quote(id))
	}
	if err != nil {
		return nil, err
	}
	return doneView{Done: fmt.Sprintf("admin token %s revoked", id)}, nil
}

// requireReason checks a reason the ledger and the audit trail keep.
func requireReason(r string) (string, error) {
	r = strings.TrimSpace(r)
	switch {
	case r == "":
		return "", badRequest("give a reason: it is kept in the ledger and the audit trail")
	case len(r) > 1024:
		return "", badRequest("the reason is longer than 1024 bytes")
	}
	return r, nil
}
