package mcpauth

import (
	"sync"
	"time"
)

// principal is who a session belongs to.
type principal struct{ issuer, subject, clientID string }

func principalOf(ti *TokenInfo) principal {
	return principal{ti.Issuer, ti.Subject, ti.ClientID}
}

// Limits of the session table.
const (
	maxSessions     = 1 << 17
	maxListIDs      = 32 // tools/list ids remembered per session
	sweepEveryBinds = 1024
)

type sessionState int

const (
	sessionUnknown sessionState = iota
	sessionMismatch
	sessionOK
)

type sessionEntry struct {
	who     principal
	expires time.Time
	// listIDs are idKeys of recent tools/list requests, so a response
	// replayed on a GET stream (Last-Event-ID) is filtered too.
	listIDs []string
}

// sessions binds MCP session ids to the principal whose response created
// them. Expiry slides: SessionTTL after the last use.
type sessions struct {
	ttl time.Duration

	mu    sync.Mutex
	m     map[string]*sessionEntry
	binds int
}

func newSessions(ttl time.Duration) *sessions {
	return &sessions{ttl: ttl, m: make(map[string]*sessionEntry)}
}

// check reports whether id is bound to who, and extends its life if so.
func (s *sessions) check(id string, who principal, now time.Time) sessionState {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[id]
	if !ok {
		return sessionUnknown
	}
	if !now.Before(e.expires) {
		delete(s.m, id)
		return sessionUnknown
	}
	if e.who != who {
		return sessionMismatch
	}
	e.expires = now.Add(s.ttl)
	return sessionOK
}

// bind records that id belongs to who. It returns false when id is already
// bound to someone else: the binding is never moved.
func (s *sessions) bind(id string, who principal, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[id]; ok && now.Before(e.expires) {
		if e.who != who {
			return false
		}
		e.expires = now.Add(s.ttl)
		return true
	}
	s.binds++
	if s.binds%sweepEveryBinds == 0 || len(s.m) >= maxSessions {
		for k, e := range s.m {
			if !now.Before(e.expires) {
				delete(s.m, k)
			}
		}
	}
	if len(s.m) >= maxSessions {
		// Full of live sessions: refuse rather than evict someone's, so
		// the flood fails and established sessions keep working.
		return false
	}
	s.m[id] = &sessionEntry{who: who, expires: now.Add(s.ttl)}
	return true
}

func (s *sessions) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}

// rememberList records tools/list ids sent on session id.
func (s *sessions) rememberList(id string, keys []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[id]
	if !ok {
		return
	}
	e.listIDs = append(e.listIDs, keys...)
	if n := len(e.listIDs); n > maxListIDs {
		e.listIDs = append([]string(nil), e.listIDs[n-maxListIDs:]...)
	}
}

// listIDs returns the remembered tools/list ids of session id.
func (s *sessions) listIDs(id string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[id]; ok {
		return append([]string(nil), e.listIDs...)
	}
	return nil
}
