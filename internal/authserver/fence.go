package authserver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/openxaa/xaa/internal/httpserver"
	"github.com/openxaa/xaa/internal/store"
)

// Audit event type and rules of not-before fences.
const (
	AuditFenceRaised = "fence.raised"

	ruleFenceRaised    = "fence.raised"    // the fence was created or raised
	ruleFenceUnchanged = "fence.unchanged" // an equal or later fence already stood
	ruleFenceNotBefore = "fence.not_before"
)

// ErrInvalidFence is returned by Fence for a request it refuses: both
// sides wildcards, no actor, or a value the store cannot hold.
var ErrInvalidFence = errors.New("authserver: invalid fence")

// FenceRequest asks for a not-before fence of (ClientID, Subject).
type FenceRequest struct {
	// ClientID is the client whose tokens die; "" means every client of
	// Subject (the user is disabled).
	ClientID string
	// Subject is the sub of the access tokens that die: this server's
	// local subject, "<idp issuer>|<idp sub>" under DefaultSubject. ""
	// means every subject of ClientID (the app's access is withdrawn).
	// Never both empty.
	Subject string
	// Reason is a human sentence kept with the fence and in the audit
	// record.
	Reason string
	// Actor is who asks, for the audit record: "cli:<os user>", an admin,
	// a SET transmitter.
	Actor string
	// Now is the time of the request; not_before is the first whole
	// second after it.
	Now time.Time
	// NotBefore, when later than that, is the not_before instead: a
	// security event may name a time slightly ahead of this server's
	// clock. It is rounded up to a whole second.
	NotBefore time.Time
}

// Fence raises a not-before fence at this server: every ID-JAG and every
// access token of (clientID, sub) issued before now is dead, at once on
// every instance sharing the database (fences are never cached). It is the
// one domain operation behind `xaa fence add` and, later, the security
// event receiver. A fence is never lowered: asking again raises it to now.
func (s *Server) Fence(ctx context.Context, clientID, sub, reason, actor string) (store.Fence, error) {
	f, _, err := RaiseFence(ctx, s.cfg.Store, s.cfg.Issuer, FenceRequest{
		ClientID: clientID, Subject: sub, Reason: reason, Actor: actor, Now: s.now(),
	})
	return f, err
}

// RaiseFence is Fence without a running Server, for tools that hold only
// the database (the CLI). It writes the fence and its audit record in one
// transaction, and reports whether the fence changed (a fence already at
// or past the new not_before stays as it is; the request is audited
// anyway).
func RaiseFence(ctx context.Context, db store.Transactor, issuer string, req FenceRequest) (store.Fence, bool, error) {
	f, err := newFence(issuer, req)
	if err != nil {
		return store.Fence{}, false, err
	}
	var out store.Fence
	var changed bool
	err = db.InTx(ctx, func(tx store.Tx) (err error) {
		out, changed, err = writeFence(ctx, tx, f, req, nil)
		return err
	})
	if err != nil {
		return store.Fence{}, false, fmt.Errorf("authserver: raise fence: %w", err)
	}
	return out, changed, nil
}

// newFence checks req and returns the fence it asks for.
func newFence(issuer string, req FenceRequest) (store.Fence, error) {
	switch {
	case req.ClientID == "" && req.Subject == "":
		return store.Fence{}, fmt.Errorf("%w: name a client, a subject or both; a fence of every token of every client is not offered", ErrInvalidFence)
	case strings.TrimSpace(req.Actor) == "":
		return store.Fence{}, fmt.Errorf("%w: the actor is required for the audit record", ErrInvalidFence)
	case req.Now.IsZero():
		return store.Fence{}, fmt.Errorf("%w: the request time is required", ErrInvalidFence)
	}
	now := req.Now.UTC()
	nb := fenceNotBefore(now)
	if asked := time.Unix(fenceSeconds(req.NotBefore), 0).UTC(); !req.NotBefore.IsZero() && asked.After(nb) {
		nb = asked
	}
	f := store.Fence{
		Issuer:    issuer,
		ClientID:  req.ClientID,
		Subject:   req.Subject,
		NotBefore: nb,
		Reason:    req.Reason,
		RaisedAt:  now,
	}
	if err := f.Validate(); err != nil {
		return store.Fence{}, fmt.Errorf("%w: %w", ErrInvalidFence, err)
	}
	return f, nil
}

// writeFence raises f in tx and appends its audit record, with extra in
// the record's data.
func writeFence(ctx context.Context, tx store.Tx, f store.Fence, req FenceRequest, extra map[string]string) (store.Fence, bool, error) {
	out, changed, err := tx.RaiseFence(ctx, f)
	if err != nil {
		return store.Fence{}, false, err
	}
	data := map[string]string{
		"issuer":     f.Issuer,
		"not_before": strconv.FormatInt(fenceSeconds(out.NotBefore), 10),
		"cursor":     strconv.FormatInt(out.Cursor, 10),
	}
	for k, v := range extra {
		data[k] = v
	}
	ev := &store.AuditEvent{
		Time:      f.RaisedAt,
		Type:      AuditFenceRaised,
		Actor:     req.Actor,
		Subject:   req.Subject,
		ClientID:  req.ClientID,
		Outcome:   "allow",
		Rule:      ruleFenceRaised,
		Reason:    req.Reason,
		RequestID: httpserver.RequestIDFrom(ctx),
		Data:      data,
	}
	if !changed {
		ev.Outcome, ev.Rule = "info", ruleFenceUnchanged
	}
	if err := tx.AppendAudit(ctx, ev); err != nil {
		return store.Fence{}, false, err
	}
	return out, changed, nil
}

// fenceNotBefore is the not_before of a fence raised at now: the first
// whole second after it. Token iat values have second precision, so every
// token issued up to now, even within now's second, has iat below it.
func fenceNotBefore(now time.Time) time.Time {
	return now.Truncate(time.Second).Add(time.Second)
}

// fenceSeconds is a not_before in whole seconds, rounded up: what the
// revocation list publishes and what iat values are compared with.
func fenceSeconds(nb time.Time) int64 {
	sec := nb.Unix()
	if nb.After(time.Unix(sec, 0)) {
		sec++
	}
	return sec
}

// fenced reports whether a token of (clientID, sub) issued at iat is
// dead under the store's fences. A store failure is returned: the caller
// fails closed.
func (s *Server) fenced(ctx context.Context, clientID, sub string, iat time.Time) (bool, time.Time, error) {
	nb, err := s.cfg.Store.FenceNotBefore(ctx, s.cfg.Issuer, clientID, sub)
	if err != nil || nb.IsZero() {
		return false, time.Time{}, err
	}
	return deadUnder(iat, nb), nb, nil
}

// deadUnder is the fence rule in the whole seconds gateways see: a token
// whose iat second is before the published not_before is dead.
func deadUnder(iat, notBefore time.Time) bool {
	return iat.Unix() < fenceSeconds(notBefore)
}

// fenceVisibleTo is the revocation-list rule for fences: a caller with a
// policy sees the fences of every client (a wildcard), of itself, and of
// the clients that may obtain tokens for a resource its policy lists,
// which are the only tokens it can be shown.
func (s *Server) fenceVisibleTo(caller, fencedClient string) bool {
	p := s.clients[caller]
	switch {
	case p == nil:
		return false
	case fencedClient == "" || fencedClient == caller:
		return true
	}
	q := s.clients[fencedClient]
	return q != nil && slices.ContainsFunc(q.resources, func(r string) bool { return slices.Contains(p.resources, r) })
}
