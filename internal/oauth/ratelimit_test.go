package oauth

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"
)

// failN records n failures for key at the bubble's current time and returns
// the lockout one of them started, if any.
func failN(l *failureLimiter, k limitKey, n int) (time.Duration, bool) {
	for range n {
		if block, locked := l.fail(k, time.Now()); locked {
			return block, true
		}
	}
	return 0, false
}

func TestFailureLimiterLocksAfterThreshold(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := newFailureLimiter(FailureLimit{})
		k := l.key(keyClient, "app")
		if _, locked := failN(l, k, 19); locked {
			t.Fatal("locked after 19 failures")
		}
		if _, blocked := l.blocked(k, time.Now()); blocked {
			t.Fatal("blocked after 19 failures")
		}
		block, locked := failN(l, k, 1)
		if !locked || block != time.Minute {
			t.Fatalf("20th failure: locked %v for %v, want 1m", locked, block)
		}
		if wait, blocked := l.blocked(k, time.Now()); !blocked || wait != time.Minute {
			t.Fatalf("blocked %v, wait %v", blocked, wait)
		}
		if _, blocked := l.blocked(l.key(keyIP, "app"), time.Now()); blocked {
			t.Fatal("a key of another kind with the same text is blocked")
		}
		time.Sleep(time.Minute)
		if _, blocked := l.blocked(k, time.Now()); blocked {
			t.Fatal("still blocked after the block")
		}
	})
}

func TestFailureLimiterSlidingWindow(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := newFailureLimiter(FailureLimit{})
		k := l.key(keyIP, "192.0.2.1")
		// Bursts of 10 failures a little more than a minute apart: never
		// 20 within a sliding minute.
		for range 10 {
			failN(l, k, 10)
			if _, blocked := l.blocked(k, time.Now()); blocked {
				t.Fatal("locked at 10 failures per minute")
			}
			time.Sleep(61 * time.Second)
		}
		// 15 late in one fixed window and 15 early in the next are 30 in
		// a sliding minute: locked, though neither fixed window saw 20.
		k = l.key(keyIP, "192.0.2.2")
		failN(l, k, 1) // opens this key's first fixed window
		time.Sleep(50 * time.Second)
		failN(l, k, 14)
		time.Sleep(15 * time.Second)
		if _, locked := failN(l, k, 15); !locked {
			t.Fatal("30 failures within 15 s across a window boundary did not lock")
		}
	})
}

func TestFailureLimiterBackoff(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := newFailureLimiter(FailureLimit{Failures: 5, Block: time.Minute, MaxBlock: 5 * time.Minute})
		k := l.key(keyClient, "app")
		for i, want := range []time.Duration{1, 2, 4, 5, 5} {
			block, locked := failN(l, k, 5)
			if !locked || block != want*time.Minute {
				t.Fatalf("lockout %d: %v for %v, want %v", i+1, locked, block, want*time.Minute)
			}
			// Failures while locked are refused before they are counted.
			if _, again := l.fail(k, time.Now()); again {
				t.Fatal("a failure during the lockout started another")
			}
			time.Sleep(block)
		}
		// Quiet for longer than MaxBlock: the backoff is forgotten.
		time.Sleep(6 * time.Minute)
		if block, locked := failN(l, k, 5); !locked || block != time.Minute {
			t.Fatalf("after a quiet period: %v for %v, want 1m", locked, block)
		}
	})
}

func TestFailureLimiterBoundedMemory(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := newFailureLimiter(FailureLimit{Failures: 2, MaxKeys: 8})
		locked := l.key(keyIP, "locked")
		failN(l, locked, 2)
		for i := range 100 {
			l.fail(l.key(keyClient, fmt.Sprint("spray-", i)), time.Now())
			if n := l.size(); n > 8 {
				t.Fatalf("%d keys tracked, cap 8", n)
			}
		}
		if _, blocked := l.blocked(locked, time.Now()); !blocked {
			t.Fatal("a locked key was evicted to make room")
		}
		// A table full of locked keys stops tracking new ones rather than
		// dropping locks.
		for i := range 8 {
			failN(l, l.key(keyClient, fmt.Sprint("lock-", i)), 2)
		}
		if _, blocked := l.blocked(locked, time.Now()); !blocked {
			t.Fatal("a locked key was evicted")
		}
		if n := l.size(); n > 8 {
			t.Fatalf("%d keys tracked, cap 8", n)
		}
		// Once the locks expire and go idle, a sweep frees the table.
		time.Sleep(20 * time.Minute)
		l.fail(l.key(keyClient, "late"), time.Now())
		if n := l.size(); n != 1 {
			t.Fatalf("%d keys after everything went idle, want 1", n)
		}
	})
}
