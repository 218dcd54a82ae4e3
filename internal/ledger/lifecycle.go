package ledger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/openxaa/xaa/internal/store"
)

// Audit event types of the ledger (stream "admin" for connections,
// "directory" for users, groups and apps).
const (
	AuditRequested     = "connection.requested"
	AuditApproved      = "connection.approved"
	AuditDenied        = "connection.denied"
	AuditSuspended     = "connection.suspended"
	AuditResumed       = "connection.resumed"
	AuditRevoked       = "connection.revoked"
	AuditExpired       = "connection.expired"
	AuditRecertified   = "connection.recertified"
	AuditUserDisabled  = "user.disabled"
	AuditMemberRemoved = "group.member_removed"
	AuditAppRevoked    = "app.revoked"
)

// transition is one step of the lifecycle.
type transition struct {
	action   string
	audit    string
	from     []store.ConnectionStatus
	to       store.ConnectionStatus // "" keeps the status
	required bool                   // a reason is required (access is taken away)
}

var (
	granted = []store.ConnectionStatus{store.ConnectionApproved, store.ConnectionSuspended, store.ConnectionExpired}

	approveStep   = transition{store.LedgerApprove, AuditApproved, []store.ConnectionStatus{store.ConnectionPending}, store.ConnectionApproved, false}
	denyStep      = transition{store.LedgerDeny, AuditDenied, []store.ConnectionStatus{store.ConnectionPending}, store.ConnectionDenied, true}
	suspendStep   = transition{store.LedgerSuspend, AuditSuspended, []store.ConnectionStatus{store.ConnectionApproved}, store.ConnectionSuspended, true}
	resumeStep    = transition{store.LedgerResume, AuditResumed, []store.ConnectionStatus{store.ConnectionSuspended}, store.ConnectionApproved, false}
	revokeStep    = transition{store.LedgerRevoke, AuditRevoked, append([]store.ConnectionStatus{store.ConnectionPending}, granted...), store.ConnectionRevoked, true}
	expireStep    = transition{store.LedgerExpire, AuditExpired, []store.ConnectionStatus{store.ConnectionApproved}, store.ConnectionExpired, true}
	recertifyStep = transition{store.LedgerRecertify, AuditRecertified, []store.ConnectionStatus{store.ConnectionPending, store.ConnectionApproved,
		store.ConnectionSuspended, store.ConnectionExpired}, "", false}
)

// Request records a request for a connection (status pending). The
// actor becomes its requester.
func (s *Service) Request(ctx context.Context, a Actor, in RequestInput) (Entry, error) {
	if err := a.check(); err != nil {
		return Entry{}, err
	}
	uri, err := store.CanonicalResource(in.Resource)
	if err != nil {
		return Entry{}, fmt.Errorf("%w: resource: %w", ErrInvalid, err)
	}
	just, err := checkReason("justification", in.Justification, false)
	if err != nil {
		return Entry{}, err
	}
	now := s.clock()
	if !in.ExpiresAt.IsZero() && !in.ExpiresAt.After(now) {
		return Entry{}, fmt.Errorf("%w: the recertification date %s is not in the future", ErrInvalid, ts(in.ExpiresAt))
	}
	id, err := store.NewConnectionID()
	if err != nil {
		return Entry{}, err
	}
	c := store.Connection{
		ID: id, AppID: in.App, ResourceURI: uri,
		GroupScopes: in.GroupScopes, StepUp: in.StepUp,
		IDJAGLifetime: in.IDJAGLifetime, AccessTokenLifetime: in.AccessTokenLifetime, IncludeEmail: in.IncludeEmail,
		Status: store.ConnectionPending, Justification: just, Requester: a.String(),
		CreatedAt: now, UpdatedAt: now, ExpiresAt: in.ExpiresAt.UTC().Truncate(time.Millisecond),
	}
	if c.IDJAGLifetime == 0 {
		c.IDJAGLifetime = store.DefaultIDJAGLifetime
	}
	if c.AccessTokenLifetime == 0 {
		c.AccessTokenLifetime = max(store.DefaultAccessTokenLifetime, c.IDJAGLifetime)
	}
	err = s.st.InTx(ctx, func(tx store.Tx) error {
		if live, err := tx.FindConnection(ctx, c.AppID, c.ResourceURI); err == nil {
			return fmt.Errorf("%w: app %s already has connection %s (%s) to %s; change that one instead",
				ErrConflict, c.AppID, live.ID, live.Status, c.ResourceURI)
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err := tx.CreateConnection(ctx, c); err != nil {
			return err
		}
		_, err := s.record(ctx, tx, a, now, c, "", transition{action: store.LedgerRequest, audit: AuditRequested}, just, nil)
		return err
	})
	if err != nil {
		return Entry{}, mapErr(err)
	}
	return s.Get(ctx, id)
}

// Approve approves a pending connection; the actor becomes its approver.
// It must grant scopes to at least one group, and its recertification
// date, if any, must still be ahead.
func (s *Service) Approve(ctx context.Context, a Actor, id, note string) (Entry, error) {
	return s.change(ctx, a, id, approveStep, note, func(c *store.Connection, now time.Time) error {
		if !c.ExpiresAt.IsZero() && !c.ExpiresAt.After(now) {
			return fmt.Errorf("%w: connection %s's recertification date %s has passed; recertify it with a new date first", ErrConflict, c.ID, ts(c.ExpiresAt))
		}
		c.Approver = a.String()
		return nil
	}, nil)
}

// Deny refuses a pending connection, for good.
func (s *Service) Deny(ctx context.Context, a Actor, id, reason string) (Entry, error) {
	return s.change(ctx, a, id, denyStep, reason, nil, nil)
}

// Suspend stops an approved connection until it is resumed. Tokens
// issued under it before now are revoked at every hop.
func (s *Service) Suspend(ctx context.Context, a Actor, id, reason string) (Entry, error) {
	return s.change(ctx, a, id, suspendStep, reason, nil, nil)
}

// Resume approves a suspended connection again; the actor is recorded as
// an approver. Its recertification date must still be ahead.
func (s *Service) Resume(ctx context.Context, a Actor, id, note string) (Entry, error) {
	return s.change(ctx, a, id, resumeStep, note, func(c *store.Connection, now time.Time) error {
		if !c.ExpiresAt.IsZero() && !c.ExpiresAt.After(now) {
			return fmt.Errorf("%w: connection %s's recertification date %s has passed; recertify it instead", ErrConflict, c.ID, ts(c.ExpiresAt))
		}
		c.Approver = a.String()
		return nil
	}, nil)
}

// Revoke ends a connection for good. Tokens issued under it before now
// are revoked at every hop.
func (s *Service) Revoke(ctx context.Context, a Actor, id, reason string) (Entry, error) {
	return s.change(ctx, a, id, revokeStep, reason, nil, nil)
}

// Recertify sets a new recertification date. An expired connection is
// approved again (the actor is recorded as an approver); a pending or
// suspended one keeps its status.
func (s *Service) Recertify(ctx context.Context, a Actor, id string, until time.Time, note string) (Entry, error) {
	until = until.UTC().Truncate(time.Millisecond)
	return s.change(ctx, a, id, recertifyStep, note, func(c *store.Connection, now time.Time) error {
		if !until.After(now) {
			return fmt.Errorf("%w: the new recertification date %s is not in the future", ErrInvalid, ts(until))
		}
		c.ExpiresAt = until
		if c.Status == store.ConnectionExpired || c.Status == store.ConnectionApproved {
			c.Status, c.Approver = store.ConnectionApproved, a.String()
		}
		return nil
	}, map[string]string{"until": ts(until)})
}

// ExpireDue marks every approved connection whose recertification date
// has passed as expired, each with its history, audit record and
// security events, and returns how many it expired. The IdP refuses such
// a connection from the moment its date passes whether or not this has
// run; running it makes the expiry visible and revokes what was issued.
func (s *Service) ExpireDue(ctx context.Context) (int, error) {
	n := 0
	seen := map[string]bool{}
	for {
		now := s.clock()
		page, err := s.st.QueryConnections(ctx, store.ConnectionQuery{Status: store.ConnectionApproved, Sort: store.ConnectionSortExpires, Limit: claimableSets})
		if err != nil {
			return n, mapErr(err)
		}
		progress := false
		for _, c := range page {
			if c.ExpiresAt.IsZero() || c.ExpiresAt.After(now) {
				return n, nil
			}
			if seen[c.ID] {
				continue
			}
			seen[c.ID], progress = true, true
			reason := "its recertification date " + ts(c.ExpiresAt) + " passed"
			_, err := s.change(ctx, systemActor, c.ID, expireStep, reason, func(x *store.Connection, now time.Time) error {
				if x.ExpiresAt.IsZero() || x.ExpiresAt.After(now) {
					return fmt.Errorf("%w: connection %s was recertified", ErrConflict, x.ID)
				}
				return nil
			}, map[string]string{"expires_at": ts(c.ExpiresAt)})
			switch {
			case err == nil:
				n++
			case errors.Is(err, ErrConflict): // another instance, or a recertification, came first
			default:
				s.log.ErrorContext(ctx, "expire connection", "connection", c.ID, "err", err)
			}
		}
		if len(page) < claimableSets || !progress {
			return n, nil
		}
	}
}

// change applies t to connection id in one transaction with its history,
// audit record and security events, then returns the entry.
func (s *Service) change(ctx context.Context, a Actor, id string, t transition, reason string,
	edit func(c *store.Connection, now time.Time) error, data map[string]string) (Entry, error) {
	if err := a.check(); err != nil {
		return Entry{}, err
	}
	what := "note"
	if t.required {
		what = "reason"
	}
	reason, err := checkReason(what, reason, t.required)
	if err != nil {
		return Entry{}, err
	}
	if !validID(id) {
		return Entry{}, fmt.Errorf("%w: there is no connection %q", ErrNotFound, clip(id))
	}
	now := s.clock()
	queued := 0
	err = s.st.InTx(ctx, func(tx store.Tx) error {
		var from store.ConnectionStatus
		var after store.Connection
		err := tx.UpdateConnection(ctx, id, func(c store.Connection) (store.Connection, error) {
			if !slices.Contains(t.from, c.Status) {
				return c, fmt.Errorf("%w: connection %s is %s; %s applies only to a connection that is %s",
					ErrConflict, c.ID, c.Status, t.action, statusList(t.from))
			}
			from = c.Status
			if t.to != "" {
				c.Status = t.to
			}
			if t.to == store.ConnectionRevoked {
				c.RevokedAt = now
			}
			if edit != nil {
				if err := edit(&c, now); err != nil {
					return c, err
				}
			}
			if c.Status != from {
				c.StatusReason = reason
			}
			c.UpdatedAt = now
			after = c
			return c, nil
		})
		if err != nil {
			return err
		}
		queued, err = s.record(ctx, tx, a, now, after, from, t, reason, data)
		return err
	})
	if err != nil {
		return Entry{}, mapErr(err)
	}
	if queued > 0 {
		s.notify()
	}
	return s.Get(ctx, id)
}

// record appends the history entry and audit record of a connection
// change and, when the change takes granted access away, queues the
// security event for the resource's authorization server. It returns
// how many events it queued.
func (s *Service) record(ctx context.Context, tx store.Tx, a Actor, now time.Time, c store.Connection, from store.ConnectionStatus,
	t transition, reason string, data map[string]string) (int, error) {
	e := &store.LedgerEvent{
		Time: now, Action: t.action, ConnectionID: c.ID, AppID: c.AppID,
		FromStatus: from, ToStatus: c.Status, ActorID: a.String(), ActorKind: a.Kind, Reason: reason, Data: data,
	}
	if err := tx.AppendLedger(ctx, e); err != nil {
		return 0, err
	}
	queued := 0
	if slices.Contains(granted, from) && c.Status != store.ConnectionApproved {
		n, err := s.queueConnection(ctx, tx, e.Seq, now, c, "", reason)
		if err != nil {
			return 0, err
		}
		queued = n
	}
	ev := &store.AuditEvent{
		Time: now, Type: t.audit, Actor: a.String(), ClientID: c.AppID, Outcome: "allow", Rule: "ledger." + t.action,
		Reason: reason,
		Data: map[string]string{
			"connection_id": c.ID, "resource": c.ResourceURI, "from": string(from), "to": string(c.Status),
			"ledger_seq": strconv.FormatInt(e.Seq, 10), "sets_queued": strconv.Itoa(queued),
		},
	}
	for k, v := range data {
		ev.Data[k] = v
	}
	return queued, tx.AppendAudit(ctx, ev)
}

// queueConnection queues the security event that revokes connection c's
// tokens (of subject, or of every user when subject is "") at the
// authorization server governing its resource. An app that holds no
// client_id there can hold no token there: nothing is queued.
func (s *Service) queueConnection(ctx context.Context, tx store.Tx, seq int64, now time.Time, c store.Connection, subject, reason string) (int, error) {
	r, err := tx.GetResource(ctx, c.ResourceURI)
	if err != nil {
		return 0, err
	}
	there, err := tx.AppClientID(ctx, r.AuthServerIssuer, c.AppID)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	return 1, s.enqueue(ctx, tx, seq, now, r.AuthServerIssuer, subject, there, c.ID, reason)
}

// enqueue writes one security event to the outbox.
func (s *Service) enqueue(ctx context.Context, tx store.Tx, seq int64, now time.Time, audience, subject, clientID, connID, reason string) error {
	jti, err := newJTI()
	if err != nil {
		return err
	}
	return tx.EnqueueSET(ctx, &store.SETDelivery{
		JTI: jti, Audience: audience, Subject: subject, ClientID: clientID, ConnectionID: connID, Reason: reason,
		NotBefore: notBefore(now), CreatedAt: now, LedgerSeq: seq,
		Status: store.SETPending, NextAttemptAt: now,
	})
}

func statusList(ss []store.ConnectionStatus) string {
	out := ""
	for i, st := range ss {
		switch {
		case i == 0:
		case i == len(ss)-1:
			out += " or "
		default:
			out += ", "
		}
		out += string(st)
	}
	return out
}

// validID accepts what can be a connection, user or app id: 1-255
// printable ASCII characters without spaces.
func validID(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}
