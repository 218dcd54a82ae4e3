package authserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/openxaa/xaa/internal/audit"
	"github.com/openxaa/xaa/internal/httpserver"
	"github.com/openxaa/xaa/internal/oauth"
	"github.com/openxaa/xaa/internal/store"
)

// Audit event types of the revocation endpoint.
const (
	AuditAccessTokenRevoked          = "accesstoken.revoked"
	AuditAccessTokenRevocationDenied = "accesstoken.revocation_denied"
)

// Rules of the revocation endpoint's audit records.
const (
	ruleRevoked        = "revocation.by_owner"
	ruleRevokeNotOwner = "revocation.not_owner"
)

// Revocation list page sizes.
const (
	DefaultRevocationListLimit = 100
	MaxRevocationListLimit     = 1000
)

// handleRevoke is POST /revoke (RFC 7009). A token that is not a valid
// access token of this server (unknown, expired, malformed, foreign) gets
// 200 and nothing happens (§2.2). A token issued to another client is
// refused with 400 unauthorized_client, as §2.1 requires ("the
// authorization server ... verifies whether the token was issued to the
// client making the revocation request. If this validation fails, the
// request is refused"); the caller already holds the token, so the
// refusal discloses nothing it could not use anyway. Revoking writes the
// ledger and the audit record in one transaction, and a failed write is
// 503 with Retry-After, never 200: a client told "revoked" must be able to
// rely on it.
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	form, err := oauth.ParseTokenForm(r, oauth.DefaultMaxTokenBody)
	if err != nil {
		oauth.WriteError(w, r, err, s.log)
		return
	}
	caller, err := s.auth.Authenticate(r.Context(), r, form)
	if err != nil {
		oauth.WriteError(w, r, err, s.log)
		return
	}
	raw := form.Get("token")
	if raw == "" {
		oauth.WriteError(w, r, oauth.InvalidRequest("the token parameter is required"), s.log)
		return
	}
	// token_type_hint is accepted and ignored (§2.1): access tokens are
	// all this server issues, and an unknown hint must not fail a request.
	if err := s.revoke(r.Context(), caller.Client.ID, raw, s.now()); err != nil {
		oauth.WriteError(w, r, err, s.log)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(http.StatusOK)
}

func (s *Server) revoke(ctx context.Context, clientID, raw string, now time.Time) error {
	// A token past its exp is left alone: it can no longer be used, and
	// revoking it would only grow the gateways' revocation list.
	it, err := s.lookupToken(ctx, raw, now)
	if err != nil {
		return err
	}
	if it == nil {
		return nil
	}
	ev := &store.AuditEvent{
		Time:      now,
		Actor:     clientID,
		Subject:   it.row.Subject,
		ClientID:  clientID,
		RequestID: httpserver.RequestIDFrom(ctx),
		Data: map[string]string{
			"jti":        it.row.JTI,
			"resource":   it.row.Resource,
			"token_hmac": audit.TokenHMAC(s.cfg.AuditKey, raw),
		},
	}
	if it.row.ClientID != clientID {
		ev.Type, ev.Outcome, ev.Rule = AuditAccessTokenRevocationDenied, "deny", ruleRevokeNotOwner
		ev.Reason = "the token was issued to another client"
		ev.Data["token_client_id"] = it.row.ClientID
		if err := s.cfg.Store.AppendAudit(context.WithoutCancel(ctx), ev); err != nil {
			s.log.ErrorContext(ctx, "audit revocation refusal", "err", err, "client_id", clientID)
		}
		return oauth.UnauthorizedClient("the token was not issued to this client")
	}
	ev.Type, ev.Outcome, ev.Rule = AuditAccessTokenRevoked, "allow", ruleRevoked
	err = s.cfg.Store.InTx(ctx, func(tx store.Tx) error {
		if err := tx.RevokeToken(ctx, s.cfg.Issuer, it.row.JTI, now); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, ev)
	})
	if err != nil {
		s.log.ErrorContext(ctx, "revoke access token", "err", err, "client_id", clientID, "jti", it.row.JTI)
		return errUnavailable("the token ledger", err)
	}
	return nil
}

// revokedEntry is one entry of the revocation list.
type revokedEntry struct {
	JTI       string `json:"jti"`
	Resource  string `json:"resource"`
	RevokedAt int64  `json:"revoked_at"`
}

// fenceEntry is one not-before fence of the revocation list: every token
// of (client_id, sub) with iat before not_before is dead; "" is a
// wildcard on that side.
type fenceEntry struct {
	ClientID  string `json:"client_id"`
	Subject   string `json:"sub"`
	NotBefore int64  `json:"not_before"`
}

// revocationList is the response of /revocations. Cursor is where the next
// poll resumes (revoked tokens and fences share it); HasMore says a poll
// right away would return more.
type revocationList struct {
	Revoked []revokedEntry `json:"revoked"`
	Fences  []fenceEntry   `json:"fences"`
	Cursor  int64          `json:"cursor"`
	HasMore bool           `json:"has_more"`
}

// handleRevocations is GET or POST /revocations: the access tokens revoked
// and the not-before fences raised since cursor (exclusive), for gateways
// that enforce revocation without introspecting every request.
// Parameters: cursor (default 0) and limit (default 100, at most 1000,
// counting both kinds), in the query for GET (which then admits only
// client_secret_basic) or in the form body for POST. A caller sees the
// revocations of the resources its policy lists and the fences of the
// clients that may obtain tokens for them (see fenceVisibleTo); the cursor
// moves past the others too, so polling never stalls on them. Expired
// tokens stay listed; a gateway may forget an entry once the token's exp
// has passed. Fences stay listed at their latest cursor.
func (s *Server) handleRevocations(w http.ResponseWriter, r *http.Request) {
	form, params, err := readParams(r, "cursor", "limit")
	if err != nil {
		oauth.WriteError(w, r, err, s.log)
		return
	}
	caller, err := s.auth.Authenticate(r.Context(), r, form)
	if err != nil {
		oauth.WriteError(w, r, err, s.log)
		return
	}
	cursor, limit, err := listParams(params)
	if err != nil {
		oauth.WriteError(w, r, err, s.log)
		return
	}
	resp, err := s.revocations(r.Context(), caller.Client.ID, cursor, limit)
	if err != nil {
		oauth.WriteError(w, r, err, s.log)
		return
	}
	s.recordPoll(r.Context(), caller.Client.ID, resp.Cursor)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	if err := httpserver.WriteJSON(w, http.StatusOK, resp); err != nil {
		s.log.ErrorContext(r.Context(), "write revocation list", "err", err)
	}
}

// readParams reads the parameters of an authenticated read endpoint
// (/revocations, /resource-policy): from the form body for POST, which
// then admits every client authentication method, or from the URL query
// for GET, which admits only the keys named, each at most once, so that
// the only way to authenticate a GET is the Authorization header
// (client_secret_basic): a secret never travels in a URL.
func readParams(r *http.Request, keys ...string) (oauth.Form, url.Values, error) {
	params := url.Values{}
	if r.Method == http.MethodPost {
		f, err := oauth.ParseTokenForm(r, oauth.DefaultMaxTokenBody)
		if err != nil {
			return oauth.Form{}, nil, err
		}
		for _, k := range keys {
			if f.Has(k) {
				params.Set(k, f.Get(k))
			}
		}
		return f, params, nil
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return oauth.Form{}, nil, oauth.InvalidRequest("the URL query is malformed")
	}
	for k, v := range q {
		if !slices.Contains(keys, k) || len(v) != 1 {
			return oauth.Form{}, nil, oauth.InvalidRequest("the query may hold only one of each of: " + strings.Join(keys, ", "))
		}
	}
	return oauth.Form{}, q, nil
}

func listParams(v url.Values) (cursor int64, limit int, err error) {
	limit = DefaultRevocationListLimit
	if c := v.Get("cursor"); c != "" {
		cursor, err = strconv.ParseInt(c, 10, 64)
		if err != nil || cursor < 0 {
			return 0, 0, oauth.InvalidRequest("cursor must be a non-negative integer")
		}
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > MaxRevocationListLimit {
			return 0, 0, oauth.InvalidRequest(fmt.Sprintf("limit must be an integer in [1, %d]", MaxRevocationListLimit))
		}
		limit = n
	}
	return cursor, limit, nil
}

func (s *Server) revocations(ctx context.Context, clientID string, cursor int64, limit int) (*revocationList, error) {
	rows, next, err := s.cfg.Store.ListRevocations(ctx, s.cfg.Issuer, cursor, limit)
	if err != nil {
		if !errors.Is(err, store.ErrUnavailable) {
			s.log.ErrorContext(ctx, "list revocations", "err", err)
		}
		return nil, errUnavailable("the token ledger", err)
	}
	out := &revocationList{Revoked: []revokedEntry{}, Fences: []fenceEntry{}, Cursor: next, HasMore: len(rows) == limit}
	for _, r := range rows {
		switch {
		case r.Token != nil && s.maySeeResource(clientID, r.Token.Resource):
			out.Revoked = append(out.Revoked, revokedEntry{JTI: r.Token.JTI, Resource: r.Token.Resource, RevokedAt: r.Token.RevokedAt.Unix()})
		case r.Fence != nil && s.fenceVisibleTo(clientID, r.Fence.ClientID):
			out.Fences = append(out.Fences, fenceEntry{ClientID: r.Fence.ClientID, Subject: r.Fence.Subject, NotBefore: fenceSeconds(r.Fence.NotBefore)})
		}
	}
	return out, nil
}

// pollRecorder remembers, per client, the last revocation-list read it
// wrote to the store, so that a gateway polling every second costs one
// write per pollRecordEvery unless something new was listed.
type pollRecorder struct {
	mu   sync.Mutex
	last map[string]recordedPoll
}

type recordedPoll struct {
	at     time.Time
	cursor int64
}

// pollRecordEvery bounds how often an unchanged poll is written.
const pollRecordEvery = time.Second

// recordPoll stores when the client last read the revocation list and up
// to which cursor: the ledger shows it as evidence that a gateway has
// picked up a fence. It is best effort; the poll's answer never depends
// on it.
func (s *Server) recordPoll(ctx context.Context, clientID string, cursor int64) {
	now := s.now()
	s.polls.mu.Lock()
	prev, ok := s.polls.last[clientID]
	if ok && prev.cursor == cursor && now.Sub(prev.at) < pollRecordEvery {
		s.polls.mu.Unlock()
		return
	}
	if s.polls.last == nil {
		s.polls.last = make(map[string]recordedPoll)
	}
	s.polls.last[clientID] = recordedPoll{at: now, cursor: cursor}
	s.polls.mu.Unlock()
	var resources []string
	if p := s.clients[clientID]; p != nil {
		resources = slices.Clone(p.resources)
	}
	err := s.cfg.Store.RecordRevocationPoll(context.WithoutCancel(ctx), store.RevocationPoll{
		Issuer: s.cfg.Issuer, ClientID: clientID, Resources: resources, PolledAt: now, Cursor: cursor,
	})
	if err != nil {
		s.log.WarnContext(ctx, "record revocation poll", "err", err, "client_id", clientID)
	}
}
