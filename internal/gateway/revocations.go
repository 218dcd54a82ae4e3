package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/openxaa/xaa/internal/store"
	"github.com/openxaa/xaa/mcpauth"
)

// forgetAfter is how long a revocation or fence is kept: no access token
// lives longer than store.MaxAccessTokenLifetime, and the margin covers
// clock skew between the authorization server and the gateway (entries
// carry no exp, only the time they were revoked).
const forgetAfter = store.MaxAccessTokenLifetime + 5*time.Minute

// Revocation-list paging.
const (
	revocationPageSize = 1000
	// maxPagesPerPoll bounds one poll; a poll that stops there has not
	// caught up and does not count as a success.
	maxPagesPerPoll = 1000
)

// ErrRevocationsStale means the revocation list has not been refreshed
// within the route's maximum staleness: the gateway cannot know whether a
// token was revoked, so tool calls fail closed.
var ErrRevocationsStale = errors.New("gateway: revocation list is stale")

// revocationPage is one answer of the revocation list endpoint.
type revocationPage struct {
	Revoked []struct {
		JTI       string `json:"jti"`
		Resource  string `json:"resource"`
		RevokedAt int64  `json:"revoked_at"`
	} `json:"revoked"`
	Fences []struct {
		ClientID  string `json:"client_id"`
		Sub       string `json:"sub"`
		NotBefore int64  `json:"not_before"`
	} `json:"fences"`
	Cursor  int64 `json:"cursor"`
	HasMore bool  `json:"has_more"`
}

type fenceKey struct{ clientID, sub string }

// Revocations is one route's view of its authorization server's revocation
// list: revoked access-token jtis and (client_id, sub) not-before fences.
// It implements mcpauth.Revocations. Poll refreshes it; Stale reports
// whether it is too old to be trusted.
type Revocations struct {
	client       *asClient
	endpoint     string
	maxStaleness time.Duration
	now          func() time.Time

	pollMu sync.Mutex // one poll at a time; cursor belongs to it
	cursor int64

	mu          sync.RWMutex
	jtis        map[string]time.Time   // jti -> when to forget it
	fences      map[fenceKey]time.Time // -> not_before (the highest seen)
	lastSuccess time.Time
}

var _ mcpauth.Revocations = (*Revocations)(nil)

func newRevocations(c *asClient, endpoint string, maxStaleness time.Duration, now func() time.Time) *Revocations {
	return &Revocations{
		client:       c,
		endpoint:     endpoint,
		maxStaleness: maxStaleness,
		now:          now,
		jtis:         make(map[string]time.Time),
		fences:       make(map[fenceKey]time.Time),
	}
}

// Revoked reports whether t's jti was revoked, or t was issued before a
// fence of its (client_id, sub), of its sub (every client), or of its
// client (every sub). A token without iat counts as issued at the epoch,
// so any fence covers it.
func (r *Revocations) Revoked(t *mcpauth.TokenInfo) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if _, ok := r.jtis[t.JTI]; ok {
		return true
	}
	if len(r.fences) == 0 {
		return false
	}
	for _, k := range [...]fenceKey{{t.ClientID, t.Subject}, {"", t.Subject}, {t.ClientID, ""}} {
		if k.clientID == "" && k.sub == "" {
			continue
		}
		if nb, ok := r.fences[k]; ok && t.IssuedAt.Before(nb) {
			return true
		}
	}
	return false
}

// Stale reports whether the last successful poll is older than the
// route's maximum staleness (or there was none).
func (r *Revocations) Stale() bool {
	r.mu.RLock()
	last := r.lastSuccess
	r.mu.RUnlock()
	return last.IsZero() || r.now().Sub(last) > r.maxStaleness
}

// LastSuccess is when the list was last brought up to date.
func (r *Revocations) LastSuccess() time.Time {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.lastSuccess
}

// Size reports how many revoked jtis and fences are held.
func (r *Revocations) Size() (jtis, fences int) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.jtis), len(r.fences)
}

// Poll reads the list from the cursor until the authorization server says
// there is no more, applies it, and forgets entries whose tokens have all
// expired. Entries are applied page by page, so a poll that fails half way
// keeps what it learned; only a poll that caught up counts as a success.
func (r *Revocations) Poll(ctx context.Context) error {
	r.pollMu.Lock()
	defer r.pollMu.Unlock()
	for range maxPagesPerPoll {
		page, err := r.fetch(ctx, r.cursor)
		if err != nil {
			return err
		}
		if page.Cursor < r.cursor {
			return fmt.Errorf("revocation list cursor went back from %d to %d; not applying it", r.cursor, page.Cursor)
		}
		if page.HasMore && page.Cursor == r.cursor {
			return fmt.Errorf("revocation list says has_more but its cursor did not move from %d", r.cursor)
		}
		r.apply(page)
		r.cursor = page.Cursor
		if !page.HasMore {
			now := r.now()
			r.mu.Lock()
			r.lastSuccess = now
			r.forgetLocked(now)
			r.mu.Unlock()
			return nil
		}
	}
	return fmt.Errorf("revocation list still has more after %d pages; continuing at the next poll", maxPagesPerPoll)
}

func (r *Revocations) fetch(ctx context.Context, cursor int64) (*revocationPage, error) {
	u, err := url.Parse(r.endpoint)
	if err != nil {
		return nil, err
	}
	q := u.Query()
	q.Set("cursor", strconv.FormatInt(cursor, 10))
	q.Set("limit", strconv.Itoa(revocationPageSize))
	u.RawQuery = q.Encode()
	var page revocationPage
	if err := r.client.getJSON(ctx, u.String(), true, &page); err != nil {
		return nil, fmt.Errorf("poll the revocation list: %w", err)
	}
	return &page, nil
}

func (r *Revocations) apply(p *revocationPage) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range p.Revoked {
		if e.JTI == "" {
			continue
		}
		forget := now.Add(forgetAfter)
		if e.RevokedAt > 0 {
			if at := time.Unix(e.RevokedAt, 0).Add(forgetAfter); at.Before(forget) {
				forget = at
			}
		}
		if forget.After(now) {
			r.jtis[e.JTI] = forget
		}
	}
	for _, f := range p.Fences {
		if f.ClientID == "" && f.Sub == "" {
			continue // never both empty, per the contract; not a fence on everyone
		}
		k := fenceKey{f.ClientID, f.Sub}
		nb := time.Unix(f.NotBefore, 0)
		if cur, ok := r.fences[k]; !ok || nb.After(cur) {
			r.fences[k] = nb
		}
	}
}

// forgetLocked drops revocations and fences that can no longer match a
// live token.
func (r *Revocations) forgetLocked(now time.Time) {
	for jti, at := range r.jtis {
		if !at.After(now) {
			delete(r.jtis, jti)
		}
	}
	for k, nb := range r.fences {
		if !nb.Add(forgetAfter).After(now) {
			delete(r.fences, k)
		}
	}
}
