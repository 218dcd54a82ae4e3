package admin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/openxaa/xaa/internal/ledger"
	"github.com/openxaa/xaa/internal/store"
)

// Ledger is what the admin API asks of the connection ledger
// (*ledger.Service): the lifecycle of connections and the principal
// changes that take access away. Each of its changes writes the history
// entry, the audit record (actor "kind:id") and the security events in
// one transaction; the admin API adds its own admin.* record naming the
// credential and the role it acted with.
type Ledger interface {
	List(ctx context.Context, f ledger.Filter) ([]ledger.Entry, string, error)
	Get(ctx context.Context, id string) (ledger.Entry, error)
	Approve(ctx context.Context, a ledger.Actor, id, note string) (ledger.Entry, error)
	Deny(ctx context.Context, a ledger.Actor, id, reason string) (ledger.Entry, error)
	Suspend(ctx context.Context, a ledger.Actor, id, reason string) (ledger.Entry, error)
	Resume(ctx context.Context, a ledger.Actor, id, note string) (ledger.Entry, error)
	Revoke(ctx context.Context, a ledger.Actor, id, reason string) (ledger.Entry, error)
	Recertify(ctx context.Context, a ledger.Actor, id string, until time.Time, note string) (ledger.Entry, error)
	DisableUser(ctx context.Context, a ledger.Actor, username, reason string) error
	RemoveMember(ctx context.Context, a ledger.Actor, group, username, reason string) error
	RevokeApp(ctx context.Context, a ledger.Actor, clientID, reason string) error
}

var _ Ledger = (*ledger.Service)(nil)

// ledgerError maps the ledger's vocabulary to answers.
func ledgerError(err error) (*apiError, bool) {
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return notFound("%s", sentence(err)), true
	case errors.Is(err, ledger.ErrInvalid):
		return badRequest("%s", sentence(err)), true
	case errors.Is(err, ledger.ErrConflict):
		return conflict("%s", sentence(err)), true
	}
	return nil, false
}

// actor is the principal as the ledger records it: the IdP user's id (its
// OIDC sub, stable across renames) or the admin token's id.
func (p *principal) actor() ledger.Actor {
	if p.kind == kindHuman {
		return ledger.Actor{ID: p.id, Kind: ledger.ActorHuman}
	}
	return ledger.Actor{ID: p.id, Kind: ledger.ActorToken}
}

// --- views ---

type historyView struct {
	Seq        int64             `json:"seq"`
	Time       time.Time         `json:"time"`
	Action     string            `json:"action"`
	FromStatus string            `json:"from_status,omitempty"`
	ToStatus   string            `json:"to_status,omitempty"`
	Actor      string            `json:"actor"`
	ActorKind  string            `json:"actor_kind"`
	Reason     string            `json:"reason,omitempty"`
	User       string            `json:"user,omitempty"`
	Group      string            `json:"group,omitempty"`
	Data       map[string]string `json:"data,omitempty"`
}

func (historyView) schemaName() string { return "LedgerEvent" }

type enforcementView struct {
	// Kind is idp, authserver or gateway.
	Kind   string     `json:"kind"`
	ID     string     `json:"id"`
	Issuer string     `json:"issuer,omitempty"`
	State  string     `json:"state"`
	At     *time.Time `json:"at,omitempty"`
	Detail string     `json:"detail,omitempty"`
}

func (enforcementView) schemaName() string { return "EnforcementPoint" }

type deliveryView struct {
	JTI           string     `json:"jti"`
	Audience      string     `json:"audience"`
	Subject       string     `json:"subject,omitempty"`
	ClientID      string     `json:"client_id,omitempty"`
	Reason        string     `json:"reason,omitempty"`
	NotBefore     time.Time  `json:"not_before"`
	CreatedAt     time.Time  `json:"created_at"`
	Status        string     `json:"status"`
	Attempts      int        `json:"attempts"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	LastError     string     `json:"last_error,omitempty"`
	DeliveredAt   *time.Time `json:"delivered_at,omitempty"`
}

func (deliveryView) schemaName() string { return "SETDelivery" }

type connectionDetail struct {
	Connection connectionView `json:"connection"`
	// Approvers are everyone who approved, resumed or recertified it.
	Approvers         []string          `json:"approvers"`
	History           []historyView     `json:"history"`
	EnforcementPoints []enforcementView `json:"enforcement_points"`
	// SETDeliveries are the Security Event Tokens its changes queued for
	// authorization servers, with their delivery state.
	SETDeliveries []deliveryView `json:"set_deliveries"`
}

func (connectionDetail) schemaName() string { return "ConnectionDetail" }

func newConnectionDetail(e ledger.Entry) connectionDetail {
	d := connectionDetail{Connection: newConnectionView(e.Connection), Approvers: append([]string{}, e.Approvers...),
		History: []historyView{}, EnforcementPoints: []enforcementView{}, SETDeliveries: []deliveryView{}}
	for _, h := range e.History {
		d.History = append(d.History, historyView{Seq: h.Seq, Time: h.Time, Action: h.Action, FromStatus: string(h.FromStatus),
			ToStatus: string(h.ToStatus), Actor: h.ActorID, ActorKind: h.ActorKind, Reason: h.Reason, User: h.UserID,
			Group: h.Group, Data: h.Data})
	}
	for _, p := range e.EnforcementPoints {
		d.EnforcementPoints = append(d.EnforcementPoints, enforcementView{Kind: p.Kind, ID: p.ID, Issuer: p.Issuer,
			State: p.State, At: optTime(p.At), Detail: p.Detail})
	}
	for _, x := range e.Deliveries {
		d.SETDeliveries = append(d.SETDeliveries, deliveryView{JTI: x.JTI, Audience: x.Audience, Subject: x.Subject,
			ClientID: x.ClientID, Reason: x.Reason, NotBefore: x.NotBefore, CreatedAt: x.CreatedAt, Status: string(x.Status),
			Attempts: x.Attempts, NextAttemptAt: optTime(x.NextAttemptAt), LastError: x.LastError, DeliveredAt: optTime(x.DeliveredAt)})
	}
	return d
}

// --- handlers ---

func (s *Server) showConnection(ctx context.Context, c *call) (any, error) {
	id, err := pathConnectionID(c)
	if err != nil {
		return nil, err
	}
	e, err := s.opts.Ledger.Get(ctx, id)
	if err != nil {
		return nil, notFoundConnection(err, id)
	}
	return newConnectionDetail(e), nil
}

// changeConnection runs one lifecycle change through the ledger and
// records the admin action.
func (s *Server) changeConnection(ctx context.Context, c *call, op, text string,
	do func(l Ledger, a ledger.Actor, id string) (ledger.Entry, error)) (any, error) {
	id, err := pathConnectionID(c)
	if err != nil {
		return nil, err
	}
	e, err := do(s.opts.Ledger, c.p.actor(), id)
	s.recordChange(ctx, c, op, id, text, err, map[string]string{"connection_id": id})
	if err != nil {
		return nil, notFoundConnection(err, id)
	}
	return newConnectionDetail(e), nil
}

// recordChange writes the admin.* record of a change the ledger made (or
// refused). The ledger has already audited the change itself in its own
// transaction, so a failure here is logged, not returned: the change is
// in the trail either way.
func (s *Server) recordChange(ctx context.Context, c *call, op, subject, text string, err error, data map[string]string) {
	outcome, reason := "allow", text
	if err != nil {
		outcome, reason = "error", text+" refused: "+sentence(err)
		if ae, ok := toAPIError(err); ok && ae.status < 500 {
			outcome = "deny"
		}
	}
	if rerr := s.record(ctx, c, op, subject, outcome, reason, data); rerr != nil {
		s.log.ErrorContext(ctx, "admin: audit an admin action", "op", op, "err", rerr)
	}
}

func (s *Server) approveConnection(ctx context.Context, c *call) (any, error) {
	note := c.body.(*noteBody).Note
	return s.changeConnection(ctx, c, "connection_approve", "connection approved", func(l Ledger, a ledger.Actor, id string) (ledger.Entry, error) {
		return l.Approve(ctx, a, id, note)
	})
}

func (s *Server) denyConnection(ctx context.Context, c *call) (any, error) {
	reason := c.body.(*reasonBody).Reason
	return s.changeConnection(ctx, c, "connection_deny", "connection denied", func(l Ledger, a ledger.Actor, id string) (ledger.Entry, error) {
		return l.Deny(ctx, a, id, reason)
	})
}

func (s *Server) suspendConnection(ctx context.Context, c *call) (any, error) {
	reason := c.body.(*reasonBody).Reason
	return s.changeConnection(ctx, c, "connection_suspend", "connection suspended", func(l Ledger, a ledger.Actor, id string) (ledger.Entry, error) {
		return l.Suspend(ctx, a, id, reason)
	})
}

func (s *Server) resumeConnection(ctx context.Context, c *call) (any, error) {
	note := c.body.(*noteBody).Note
	return s.changeConnection(ctx, c, "connection_resume", "connection resumed", func(l Ledger, a ledger.Actor, id string) (ledger.Entry, error) {
		return l.Resume(ctx, a, id, note)
	})
}

func (s *Server) revokeConnection(ctx context.Context, c *call) (any, error) {
	reason := c.body.(*reasonBody).Reason
	return s.changeConnection(ctx, c, "connection_revoke", "connection revoked", func(l Ledger, a ledger.Actor, id string) (ledger.Entry, error) {
		return l.Revoke(ctx, a, id, reason)
	})
}

func (s *Server) recertifyConnection(ctx context.Context, c *call) (any, error) {
	b := c.body.(*recertifyBody)
	if b.Until.IsZero() {
		return nil, badRequest("until is required: the new recertification date (RFC 3339)")
	}
	return s.changeConnection(ctx, c, "connection_recertify", "connection recertified until "+b.Until.UTC().Format(time.RFC3339),
		func(l Ledger, a ledger.Actor, id string) (ledger.Entry, error) {
			return l.Recertify(ctx, a, id, b.Until, b.Note)
		})
}

func (s *Server) disableUser(ctx context.Context, c *call) (any, error) {
	u, err := s.pathUser(ctx, c)
	if err != nil {
		return nil, err
	}
	reason := c.body.(*reasonBody).Reason
	err = s.opts.Ledger.DisableUser(ctx, c.p.actor(), u.Username, reason)
	s.recordChange(ctx, c, "user_disable", u.ID, "user "+u.Username+" disabled", err, map[string]string{"username": u.Username})
	if err != nil {
		return nil, err
	}
	return doneView{Done: fmt.Sprintf("user %s disabled: new exchanges fail now, and the authorization servers are told", u.Username)}, nil
}

func (s *Server) removeMember(ctx context.Context, c *call) (any, error) {
	g, err := s.pathGroup(ctx, c)
	if err != nil {
		return nil, err
	}
	b := c.body.(*removeMemberBody)
	if store.CheckUsername(b.Username) != nil {
		return nil, badRequest("username %s is not a username", quote(b.Username))
	}
	err = s.opts.Ledger.RemoveMember(ctx, c.p.actor(), g.Name, b.Username, b.Reason)
	s.recordChange(ctx, c, "group_remove_member", g.Name, "user "+b.Username+" removed from group "+g.Name, err,
		map[string]string{"group": g.Name, "username": b.Username})
	if err != nil {
		return nil, err
	}
	return doneView{Done: fmt.Sprintf("user %s removed from group %s", b.Username, g.Name)}, nil
}

func (s *Server) revokeApp(ctx context.Context, c *call) (any, error) {
	a, err := s.pathApp(ctx, c)
	if err != nil {
		return nil, err
	}
	reason := c.body.(*reasonBody).Reason
	err = s.opts.Ledger.RevokeApp(ctx, c.p.actor(), a.ID, reason)
	s.recordChange(ctx, c, "app_revoke", a.ID, "app "+a.ID+" revoked", err, map[string]string{"client_id": a.ID})
	if err != nil {
		return nil, err
	}
	return doneView{Done: fmt.Sprintf("app %s revoked: new exchanges fail now, and the authorization servers are told", a.ID)}, nil
}
