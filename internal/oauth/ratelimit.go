package oauth

import (
	"hash/maphash"
	"sync"
	"time"
)

// FailureLimit configures the lockout that slows down guessing of client
// credentials (threat model item 20). Zero fields take the defaults.
//
// Every invalid_client answer counts one failure against the claimed
// client_id (even one that does not exist, so probing unknown ids costs the
// same) and one against the source IP. When either key reaches Failures
// within a sliding Window, that key is locked for Block; each further
// lockout of the same key doubles the block, up to MaxBlock. A key that
// stays quiet long enough is forgotten, and with it its backoff.
//
// The sliding window is approximated with two fixed windows, the previous
// one weighted by its overlap (constant memory per key). It is exact for
// bursts; failures bunched at the end of one fixed window and the start of
// the next can reach up to twice Failures before the lockout.
//
// The state is per process: N instances behind a load balancer allow up to
// N times the configured failures. With >= 256-bit generated secrets the
// limit is not what keeps secrets safe; it bounds the load a guesser can
// cause and makes probing visible.
//
// Locking by client_id lets anyone who knows a client_id lock that client
// out for a while by sending wrong secrets. That is the accepted price of
// the rule; such an attack is loud (every lockout is logged at WARN).
type FailureLimit struct {
	Failures int           // failures that trigger a lockout; default 20
	Window   time.Duration // sliding window they are counted in; default 60 s
	Block    time.Duration // first lockout; default 60 s
	MaxBlock time.Duration // cap of the doubling lockout; default 15 min
	MaxKeys  int           // tracked keys (bounds memory); default 65536
}

func (c FailureLimit) withDefaults() FailureLimit {
	if c.Failures <= 0 {
		c.Failures = 20
	}
	if c.Window <= 0 {
		c.Window = time.Minute
	}
	if c.Block <= 0 {
		c.Block = time.Minute
	}
	if c.MaxBlock <= 0 {
		c.MaxBlock = 15 * time.Minute
	}
	if c.MaxBlock < c.Block {
		c.MaxBlock = c.Block
	}
	if c.MaxKeys <= 0 {
		c.MaxKeys = 1 << 16
	}
	return c
}

// Kinds of limiter keys.
const (
	keyClient byte = 'c'
	keyIP     byte = 'i'
)

// limitKey identifies a client_id or an IP by a seeded 64-bit hash, so an
// entry has a fixed size however long the attacker-chosen client_id is. The
// seed is per process, so collisions cannot be chosen.
type limitKey struct {
	kind byte
	hash uint64
}

func (k limitKey) kindName() string {
	if k.kind == keyClient {
		return "client_id"
	}
	return "source IP"
}

// limitEntry approximates a sliding window with two fixed windows (the
// current count plus the previous one weighted by how much of it still
// overlaps the sliding window), which needs constant space per key.
type limitEntry struct {
	windowStart  time.Time
	cur, prev    int
	blockedUntil time.Time
	strikes      int       // lockouts so far; the next one lasts Block << strikes
	last         time.Time // last failure
}

// failureLimiter is safe for concurrent use.
type failureLimiter struct {
	cfg  FailureLimit
	seed maphash.Seed

	mu        sync.Mutex
	entries   map[limitKey]*limitEntry
	lastSweep time.Time
	saturated time.Time // when makeRoom last found every entry locked
}

func newFailureLimiter(cfg FailureLimit) *failureLimiter {
	return &failureLimiter{
		cfg:     cfg.withDefaults(),
		seed:    maphash.MakeSeed(),
		entries: make(map[limitKey]*limitEntry),
	}
}

func (l *failureLimiter) key(kind byte, s string) limitKey {
	return limitKey{kind: kind, hash: maphash.String(l.seed, s)}
}

// blocked reports whether k is locked at now, and for how much longer.
func (l *failureLimiter) blocked(k limitKey, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.entries[k]
	if !ok || !now.Before(e.blockedUntil) {
		return 0, false
	}
	return e.blockedUntil.Sub(now), true
}

// fail records one failure for k and reports whether it started a lockout,
// and how long that lockout lasts.
func (l *failureLimiter) fail(k limitKey, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.entries[k]
	if !ok {
		if !l.makeRoom(now) {
			// Every tracked key is locked: an attack large enough to fill
			// the table. New keys go untracked rather than evicting locks;
			// credentials are still checked on every request.
			return 0, false
		}
		e = &limitEntry{windowStart: now}
		l.entries[k] = e
	}
	if now.Before(e.blockedUntil) {
		return 0, false // already locked; attempts while locked are refused earlier
	}
	if l.idle(e, now) {
		*e = limitEntry{windowStart: now} // quiet long enough: backoff forgotten
	}
	e.advance(now, l.cfg.Window)
	e.cur++
	e.last = now
	if e.estimate(now, l.cfg.Window) < float64(l.cfg.Failures) {
		return 0, false
	}
	block := l.cfg.Block << min(e.strikes, 30)
	if block <= 0 || block > l.cfg.MaxBlock {
		block = l.cfg.MaxBlock
	}
	e.blockedUntil = now.Add(block)
	e.strikes++
	e.cur, e.prev = 0, 0
	e.windowStart = e.blockedUntil
	return block, true
}

// advance moves the fixed windows forward to the one containing now.
func (e *limitEntry) advance(now time.Time, window time.Duration) {
	elapsed := now.Sub(e.windowStart)
	if elapsed < window {
		return
	}
	if elapsed < 2*window {
		e.prev = e.cur
	} else {
		e.prev = 0
	}
	e.cur = 0
	e.windowStart = e.windowStart.Add(elapsed / window * window)
}

// estimate is the failure count over the sliding window ending at now.
func (e *limitEntry) estimate(now time.Time, window time.Duration) float64 {
	overlap := 1 - float64(now.Sub(e.windowStart))/float64(window)
	return float64(e.prev)*max(overlap, 0) + float64(e.cur)
}

// idle reports whether e can be forgotten: it is not locked, its failures
// have left the window, and after a lockout it has been quiet for MaxBlock.
// Forgetting is how the doubling backoff decays, whether the entry is swept
// or meets its next failure.
func (l *failureLimiter) idle(e *limitEntry, now time.Time) bool {
	if now.Before(e.blockedUntil) {
		return false
	}
	quiet := 2 * l.cfg.Window
	if e.strikes > 0 {
		quiet = max(quiet, l.cfg.MaxBlock)
	}
	return now.Sub(e.last) > quiet && now.Sub(e.blockedUntil) > quiet
}

// makeRoom ensures there is space for one more entry. When the table is
// full it drops idle entries (a full sweep at most once a second, so a
// flood of new keys cannot make every request pay O(n)), and otherwise
// evicts one arbitrary unlocked entry. It reports false when every entry is
// locked, and then keeps reporting false for a second without scanning.
func (l *failureLimiter) makeRoom(now time.Time) bool {
	if len(l.entries) < l.cfg.MaxKeys {
		return true
	}
	if now.Sub(l.saturated) < time.Second {
		return false
	}
	if now.Sub(l.lastSweep) >= time.Second {
		l.lastSweep = now
		for k, e := range l.entries {
			if l.idle(e, now) {
				delete(l.entries, k)
			}
		}
		if len(l.entries) < l.cfg.MaxKeys {
			return true
		}
	}
	for k, e := range l.entries {
		if !now.Before(e.blockedUntil) {
			delete(l.entries, k)
			return true
		}
	}
	l.saturated = now
	return false
}

// size returns the number of tracked keys (for tests).
func (l *failureLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}
