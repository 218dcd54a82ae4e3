package ledger

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/openxaa/xaa/internal/store"
)

// Get returns the connection with its history, approvers, enforcement
// points and security event deliveries.
func (s *Service) Get(ctx context.Context, id string) (Entry, error) {
	if !validID(id) {
		return Entry{}, fmt.Errorf("%w: there is no connection %q", ErrNotFound, clip(id))
	}
	c, err := s.st.GetConnection(ctx, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return Entry{}, fmt.Errorf("%w: there is no connection %s", ErrNotFound, id)
		}
		return Entry{}, mapErr(err)
	}
	e := Entry{Connection: c}
	if e.History, err = s.st.ListLedger(ctx, store.LedgerFilter{ConnectionID: id, Limit: maxHistory}); err != nil {
		return Entry{}, mapErr(err)
	}
	if e.Deliveries, err = s.st.ListSETs(ctx, store.SETFilter{ConnectionID: id, Limit: maxHistory}); err != nil {
		return Entry{}, mapErr(err)
	}
	for _, h := range e.History {
		switch h.Action {
		case store.LedgerApprove, store.LedgerResume, store.LedgerRecertify:
			if h.ToStatus == store.ConnectionApproved && !slices.Contains(e.Approvers, h.ActorID) {
				e.Approvers = append(e.Approvers, h.ActorID)
			}
		}
	}
	if c.Approver != "" && !slices.Contains(e.Approvers, c.Approver) {
		e.Approvers = append([]string{c.Approver}, e.Approvers...) // approved before the ledger (a seed)
	}
	if e.EnforcementPoints, err = s.points(ctx, c, e.Deliveries); err != nil {
		return Entry{}, err
	}
	return e, nil
}

// points lists where c is enforced and how far its latest revocation got.
func (s *Service) points(ctx context.Context, c store.Connection, sets []store.SETDelivery) ([]EnforcementPoint, error) {
	now := s.clock()
	idp := EnforcementPoint{Kind: PointIdP, ID: "idp", State: StateRefusing, At: c.UpdatedAt,
		Detail: "the IdP reads the ledger on every token exchange and refuses new ID-JAGs for this connection"}
	if c.Status == store.ConnectionApproved && (c.ExpiresAt.IsZero() || c.ExpiresAt.After(now)) {
		idp.State, idp.Detail = StateMinting, "the IdP mints ID-JAGs for this connection, deciding each exchange on the current ledger"
	}
	points := []EnforcementPoint{idp}
	r, err := s.st.GetResource(ctx, c.ResourceURI)
	if errors.Is(err, store.ErrNotFound) {
		return points, nil
	} else if err != nil {
		return nil, mapErr(err)
	}
	as := EnforcementPoint{Kind: PointAuthServer, ID: r.AuthServerIssuer, State: StateNone,
		Detail: "no change has taken access away yet, so no security event was sent"}
	var last *store.SETDelivery
	for i := range sets {
		if sets[i].Audience == r.AuthServerIssuer {
			last = &sets[i]
		}
	}
	if last != nil {
		as.State, as.At = string(last.Status), last.CreatedAt
		switch last.Status {
		case store.SETDelivered:
			as.At = last.DeliveredAt
			as.Detail = fmt.Sprintf("the security event %s was delivered after %d attempt(s); the server refuses ID-JAGs and tokens issued before %s",
				last.JTI, last.Attempts, ts(last.NotBefore))
		case store.SETFailed:
			as.Detail = fmt.Sprintf("delivery of the security event %s failed after %d attempt(s): %s", last.JTI, last.Attempts, last.LastError)
		default:
			as.Detail = fmt.Sprintf("the security event %s is queued (%d attempt(s) so far", last.JTI, last.Attempts)
			if last.LastError != "" {
				as.Detail += "; last error: " + last.LastError
			}
			as.Detail += ")"
		}
	}
	points = append(points, as)
	polls, err := s.st.ListRevocationPolls(ctx, r.AuthServerIssuer)
	if err != nil {
		return nil, mapErr(err)
	}
	for _, p := range polls {
		if len(p.Resources) > 0 && !slices.Contains(p.Resources, c.ResourceURI) {
			continue
		}
		g := EnforcementPoint{Kind: PointGateway, ID: p.ClientID, Issuer: p.Issuer, State: StatePolling, At: p.PolledAt,
			Detail: fmt.Sprintf("last read the revocation list at %s (cursor %d)", ts(p.PolledAt), p.Cursor)}
		if last != nil && last.Status == store.SETDelivered {
			if p.PolledAt.Before(last.DeliveredAt) {
				g.State = StateBehind
				g.Detail += ", before the security event was delivered"
			} else {
				g.State = StateReached
				g.Detail += ", after the security event was delivered: it enforces the fence"
			}
		}
		points = append(points, g)
	}
	return points, nil
}

// List returns one page of connections, and the cursor of the next page
// ("" on the last one). Entries carry the connection only; Get has the
// rest.
func (s *Service) List(ctx context.Context, f Filter) ([]Entry, string, error) {
	q := store.ConnectionQuery{AppID: f.App, ResourceURI: f.Resource, Status: f.Status, Sort: f.Sort, Desc: f.Desc}
	if q.Sort == "" {
		q.Sort = SortCreated
	}
	switch q.Sort {
	case SortCreated, SortUpdated, SortExpires:
	default:
		return nil, "", fmt.Errorf("%w: sort %q is not created, updated or expires", ErrInvalid, clip(f.Sort))
	}
	switch f.Status {
	case "", store.ConnectionPending, store.ConnectionApproved, store.ConnectionDenied, store.ConnectionSuspended,
		store.ConnectionRevoked, store.ConnectionExpired:
	default:
		return nil, "", fmt.Errorf("%w: status %q is not pending, approved, denied, suspended, revoked or expired", ErrInvalid, clip(string(f.Status)))
	}
	limit := f.Limit
	switch {
	case limit == 0:
		limit = defaultPage
	case limit < 0 || limit > maxPage:
		return nil, "", fmt.Errorf("%w: limit must be from 1 to %d", ErrInvalid, maxPage)
	}
	if f.After != "" {
		c, err := decodeCursor(f.After, q.Sort, q.Desc)
		if err != nil {
			return nil, "", err
		}
		q.After = &c
	}
	q.Limit = limit + 1
	rows, err := s.st.QueryConnections(ctx, q)
	if err != nil {
		return nil, "", mapErr(err)
	}
	next := ""
	if len(rows) > limit {
		rows = rows[:limit]
		last := rows[limit-1]
		next = encodeCursor(q.Sort, q.Desc, store.ConnectionCursor{Key: store.ConnectionSortKey(last, q.Sort), ID: last.ID})
	}
	out := make([]Entry, len(rows))
	for i, c := range rows {
		out[i] = Entry{Connection: c}
	}
	return out, next, nil
}

// A cursor names the listing it belongs to (sort and direction) and the
// last row returned. It is opaque to callers but not secret; the admin
// API seals it with a MAC before it leaves the server.
const cursorVersion = "c1"

func encodeCursor(sort string, desc bool, c store.ConnectionCursor) string {
	raw := strings.Join([]string{cursorVersion, sort, strconv.FormatBool(desc), strconv.FormatInt(c.Key, 10), c.ID}, "|")
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

func decodeCursor(s, sort string, desc bool) (store.ConnectionCursor, error) {
	bad := fmt.Errorf("%w: the cursor does not belong to this listing (sort %s, desc %v); start again without it", ErrInvalid, sort, desc)
	raw, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(raw) > 512 {
		return store.ConnectionCursor{}, bad
	}
	parts := strings.Split(string(raw), "|")
	if len(parts) != 5 || parts[0] != cursorVersion || parts[1] != sort || parts[2] != strconv.FormatBool(desc) || !validID(parts[4]) {
		return store.ConnectionCursor{}, bad
	}
	key, err := strconv.ParseInt(parts[3], 10, 64)
	if err != nil {
		return store.ConnectionCursor{}, bad
	}
	return store.ConnectionCursor{Key: key, ID: parts[4]}, nil
}
