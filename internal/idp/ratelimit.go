package idp

import (
	"hash/maphash"
	"sync"
	"time"
)

// LoginLimit configures the lockout after failed logins (threat model
// item 20, issue item 6). Zero fields take the defaults. Failures count per
// username (a wrong password or a wrong one-time code) and per source
// address; reaching the limit locks that key for Block. The state is per
// process, like the token endpoint's client limiter.
type LoginLimit struct {
	UserFailures int           // per username in Window; default 5
	IPFailures   int           // per source address in Window; default 20
	Window       time.Duration // default 15 min
	Block        time.Duration // default 15 min
	MaxKeys      int           // tracked keys; default 65536
}

func (c LoginLimit) withDefaults() LoginLimit {
	if c.UserFailures <= 0 {
		c.UserFailures = 5
	}
	if c.IPFailures <= 0 {
		c.IPFailures = 20
	}
	if c.Window <= 0 {
		c.Window = 15 * time.Minute
	}
	if c.Block <= 0 {
		c.Block = 15 * time.Minute
	}
	if c.MaxKeys <= 0 {
		c.MaxKeys = 1 << 16
	}
	return c
}

type loginEntry struct {
	start        time.Time
	fails        int
	blockedUntil time.Time
}

// loginLimiter is a fixed-window failure counter keyed by seeded hashes, so
// an entry's size does not depend on attacker-chosen usernames.
type loginLimiter struct {
	cfg  LoginLimit
	seed maphash.Seed

	mu      sync.Mutex
	entries map[uint64]*loginEntry
}

func newLoginLimiter(cfg LoginLimit) *loginLimiter {
	return &loginLimiter{cfg: cfg.withDefaults(), seed: maphash.MakeSeed(), entries: map[uint64]*loginEntry{}}
}

func (l *loginLimiter) key(kind, s string) uint64 { return maphash.String(l.seed, kind+"\x00"+s) }

// blocked returns how long the longest of keys stays locked, or 0.
func (l *loginLimiter) blocked(now time.Time, keys ...uint64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var wait time.Duration
	for _, k := range keys {
		if e, ok := l.entries[k]; ok && now.Before(e.blockedUntil) {
			wait = max(wait, e.blockedUntil.Sub(now))
		}
	}
	return wait
}

// fail counts one failure against k, whose limit is limit, and reports
// whether this failure locked it.
func (l *loginLimiter) fail(now time.Time, k uint64, limit int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.entries[k]
	if !ok {
		if len(l.entries) >= l.cfg.MaxKeys {
			l.sweep(now)
		}
		e = &loginEntry{start: now}
		l.entries[k] = e
	}
	if now.Sub(e.start) >= l.cfg.Window {
		e.start, e.fails = now, 0
	}
	e.fails++
	if e.fails >= limit && !now.Before(e.blockedUntil) {
		e.blockedUntil = now.Add(l.cfg.Block)
		e.start, e.fails = now, 0
		return true
	}
	return false
}

// sweep drops entries that are neither counting nor locked; if none can go,
// it drops everything unlocked-or-not rather than grow without bound.
func (l *loginLimiter) sweep(now time.Time) {
	for k, e := range l.entries {
		if now.Sub(e.start) >= l.cfg.Window && !now.Before(e.blockedUntil) {
			delete(l.entries, k)
		}
	}
	if len(l.entries) >= l.cfg.MaxKeys {
		for k, e := range l.entries {
			if !now.Before(e.blockedUntil) {
				delete(l.entries, k)
			}
		}
	}
}
