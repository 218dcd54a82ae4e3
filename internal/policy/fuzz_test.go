package policy

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fuzzBytes turns fuzz input into choices. Past the end it yields zeros,
// so every byte string is a recipe; zeros choose the ordinary values.
type fuzzBytes struct{ b []byte }

func (f *fuzzBytes) next() byte {
	if len(f.b) == 0 {
		return 0
	}
	c := f.b[0]
	f.b = f.b[1:]
	return c
}

func (f *fuzzBytes) bit() bool { return f.next()&1 == 1 }

// likely is true seven times in eight (and past the end), so that fully
// allowed inputs, which need a dozen conditions at once, are common.
func (f *fuzzBytes) likely() bool { return f.next()%8 != 7 }

func (f *fuzzBytes) pick(xs ...string) string { return xs[int(f.next())%len(xs)] }

// mostly returns good 31 times in 32 (and past the end), else
// one of bad: invalid values must appear, but rarely enough that the rules
// after input validation get most of the runs.
func (f *fuzzBytes) mostly(good string, bad ...string) string {
	if f.next()%32 != 31 {
		return good
	}
	return f.pick(bad...)
}

func mostlyDur(f *fuzzBytes, good []time.Duration, bad ...time.Duration) time.Duration {
	if f.next()%32 != 31 {
		return good[int(f.next())%len(good)]
	}
	return bad[int(f.next())%len(bad)]
}

// some returns up to four values from xs, duplicates possible.
func (f *fuzzBytes) some(xs ...string) []string {
	n := int(f.next() % 5)
	out := make([]string, 0, n)
	for range n {
		out = append(out, f.pick(xs...))
	}
	return out
}

// offset is a signed duration around zero: whole seconds, sometimes with a
// fraction, reaching about two hours either way.
func (f *fuzzBytes) offset() time.Duration {
	d := time.Duration(int8(f.next())) * 57 * time.Second
	if f.bit() {
		d += time.Duration(f.next()) * 4 * time.Millisecond
	}
	if f.next()%4 == 0 {
		d = time.Duration(int8(f.next())) * 100 * time.Millisecond // near the boundaries
	}
	return d
}

// fuzzInput builds an Input deterministically from data.
func fuzzInput(data []byte) Input {
	f := &fuzzBytes{b: data}
	scopePool := []string{"a", "b", "c", "d", "A", ""}
	groupPool := []string{"g1", "g2", "g3", "G1"}
	acrPool := []string{"", ACRPassword, ACRMFA, "urn:x", "urn:y"}

	now := t0
	if f.next() == 0xfe {
		now = time.Time{}
	}
	at := func() time.Time { return now.Add(f.offset()) }
	in := Input{
		Now:            now,
		User:           User{ID: f.mostly("u", ""), Enabled: f.likely(), Groups: f.some(groupPool...)},
		App:            App{ClientID: f.mostly("app", ""), Enabled: f.likely()},
		Audience:       f.mostly("https://as", ""),
		AudienceKnown:  f.likely(),
		Resource:       f.mostly("https://r", ""),
		ResourceKnown:  f.likely(),
		ResourceScopes: f.some(scopePool...),
	}
	in.ResourceGovernedByAudience = in.ResourceKnown && f.likely()
	if f.likely() {
		c := &Connection{
			ID:       f.mostly("c1", ""),
			App:      f.mostly(in.App.ClientID, "other", ""),
			Resource: f.mostly(in.Resource, "https://s", ""),
			Status:   f.mostly(StatusApproved, StatusPending, StatusSuspended, StatusRevoked, "", "Approved", "active"),
			Approver: f.mostly("admin", ""),
			StatusAt: at(),
			IDJAGLifetime: mostlyDur(f, []time.Duration{0, 120 * time.Second, 300 * time.Second, time.Hour, time.Second, 1500 * time.Millisecond},
				500*time.Millisecond, -time.Second),
			GroupScopes: map[string][]string{},
			StepUp:      map[string]StepUp{},
		}
		if f.bit() {
			c.ExpiresAt = at()
		}
		for _, g := range groupPool {
			if f.likely() {
				c.GroupScopes[g] = f.some(scopePool...)
			}
		}
		for _, s := range scopePool {
			if f.next()%4 == 0 {
				c.StepUp[s] = StepUp{
					ACR:    f.pick(acrPool...),
					MaxAge: mostlyDur(f, []time.Duration{0, time.Minute, 5 * time.Minute, time.Hour}, -time.Second, time.Millisecond),
				}
			}
		}
		in.Connection = c
	}
	if f.bit() {
		in.RequestedScopes = f.some(scopePool...)
	}
	in.Auth = Authentication{ACR: f.pick(acrPool...), AMR: f.some("pwd", "otp")}
	if f.likely() {
		in.Auth.Time = at()
	}
	if f.next()%4 == 0 {
		in.Refresh = &RefreshSubject{Scopes: f.some(scopePool...)}
		if f.likely() {
			in.Refresh.ExpiresAt = at()
		}
	}
	return in
}

func fuzzSeeds() [][]byte {
	return [][]byte{
		nil,
		bytes.Repeat([]byte{0xff}, 128),
		bytes.Repeat([]byte{0x01}, 128),
		bytes.Repeat([]byte{0x07}, 128),
		bytes.Repeat([]byte{0x5a, 0x13, 0x77}, 64),
		[]byte("the quick brown fox jumps over the lazy dog; policy decides who may reach which MCP server"),
	}
}

// FuzzDecide checks the properties every decision has, whatever the input.
func FuzzDecide(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 32 {
		b := make([]byte, 192)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkInvariants(t, data)
	})
}

func checkInvariants(t *testing.T, data []byte) Decision {
	t.Helper()
	in := fuzzInput(data)
	d := Decide(in)
	if diff := cmp.Diff(fuzzInput(data), in); diff != "" {
		t.Fatalf("Decide modified its input:\n%s", diff)
	}
	if again := Decide(fuzzInput(data)); !cmp.Equal(d, again) {
		t.Fatalf("not deterministic:\n%s\n%s", d.Explain(), again.Explain())
	}
	if d.Allow != (d.Outcome == Allow) {
		t.Fatalf("Allow %v with outcome %v", d.Allow, d.Outcome)
	}
	if len(d.Reasons) == 0 || slices.Contains(d.Reasons, "") {
		t.Fatalf("empty reasons:\n%s", d.Explain())
	}
	if (d.StepUp != nil) != (d.Outcome == StepUpRequired) {
		t.Fatalf("StepUp %v with outcome %v", d.StepUp, d.Outcome)
	}
	if !d.Allow {
		if len(d.GrantedScopes) != 0 || d.Lifetime != 0 || d.Rule == "" || d.Rule == RuleAllow || d.ClientMessage == "" {
			t.Fatalf("denial grants something or is unnamed:\n%s", d.Explain())
		}
		if d.Outcome < InvalidInput || d.Outcome > StepUpRequired {
			t.Fatalf("outcome %v", d.Outcome)
		}
		if c := d.StepUp; c != nil && (len(c.ACRValues) > 1 || (c.MaxAge != NoMaxAge && c.MaxAge <= 0) || (len(c.ACRValues) == 0 && c.MaxAge == NoMaxAge)) {
			t.Fatalf("challenge %+v", *c)
		}
		return d
	}

	// Allowed: who and what.
	c := in.Connection
	if d.Rule != RuleAllow || in.Now.IsZero() || !in.User.Enabled || !in.App.Enabled || in.User.ID == "" ||
		!in.AudienceKnown || in.Audience == "" || in.Resource == "" || !in.ResourceKnown || !in.ResourceGovernedByAudience ||
		c == nil || c.ID == "" || c.App != in.App.ClientID || c.Resource != in.Resource ||
		c.Status != StatusApproved || c.Approver == "" {
		t.Fatalf("allowed an input that must be denied: %+v\n%s", in, d.Explain())
	}
	// Scopes: non-empty, no duplicates, ⊆ requested ∩ resource ∩ groups (∩ refresh).
	if len(d.GrantedScopes) == 0 {
		t.Fatal("allowed with no scope")
	}
	for i, s := range d.GrantedScopes {
		if slices.Contains(d.GrantedScopes[:i], s) {
			t.Fatalf("duplicate %q in %q", s, d.GrantedScopes)
		}
		if len(in.RequestedScopes) > 0 && !slices.Contains(in.RequestedScopes, s) {
			t.Fatalf("granted %q, not requested %q", s, in.RequestedScopes)
		}
		if !slices.Contains(in.ResourceScopes, s) {
			t.Fatalf("granted %q, not a resource scope %q", s, in.ResourceScopes)
		}
		if !slices.ContainsFunc(in.User.Groups, func(g string) bool { return slices.Contains(c.GroupScopes[g], s) }) {
			t.Fatalf("granted %q, which none of the user's groups %q gets", s, in.User.Groups)
		}
		if in.Refresh != nil && !slices.Contains(in.Refresh.Scopes, s) {
			t.Fatalf("granted %q outside the refresh token's %q", s, in.Refresh.Scopes)
		}
		// Step-up: every granted scope's rule is met.
		if r := c.StepUp[s]; r.ACR != "" || r.MaxAge > 0 {
			age := in.Now.Sub(in.Auth.Time)
			if !ACRSatisfies(in.Auth.ACR, r.ACR) ||
				(r.MaxAge > 0 && (in.Auth.Time.IsZero() || age > r.MaxAge || age < -AuthTimeLeeway)) {
				t.Fatalf("granted %q without its step-up %+v (auth %+v)", s, r, in.Auth)
			}
		}
	}
	// Lifetime: whole seconds in (0, configured], never past an expiry.
	limit := c.IDJAGLifetime
	if limit == 0 {
		limit = DefaultLifetime
	}
	end := in.Now.Add(d.Lifetime)
	if d.Lifetime < MinLifetime || d.Lifetime%time.Second != 0 || d.Lifetime > min(limit, MaxLifetime) ||
		(!c.ExpiresAt.IsZero() && end.After(c.ExpiresAt)) ||
		(in.Refresh != nil && (in.Refresh.ExpiresAt.IsZero() || end.After(in.Refresh.ExpiresAt))) {
		t.Fatalf("lifetime %v out of bounds: %+v", d.Lifetime, in)
	}
	if d.StepUp != nil || d.ClientMessage != "" {
		t.Fatalf("allow with a challenge or a client message:\n%s", d.Explain())
	}

	// Choke point: taking away any one entitlement denies the very same request.
	for name, revoke := range map[string]func(*Input){
		"user disabled":      func(in *Input) { in.User.Enabled = false },
		"app disabled":       func(in *Input) { in.App.Enabled = false },
		"connection revoked": func(in *Input) { in.Connection.Status = StatusRevoked },
		"connection expired": func(in *Input) { in.Connection.ExpiresAt = in.Now },
		"user left groups":   func(in *Input) { in.User.Groups = nil },
	} {
		in := fuzzInput(data)
		revoke(&in)
		if Decide(in).Allow {
			t.Fatalf("still allowed after %s", name)
		}
	}
	return d
}

// TestFuzzInputsReachEveryOutcome keeps the generator honest: if it could
// not produce allows and each kind of denial, FuzzDecide would prove little.
func TestFuzzInputsReachEveryOutcome(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	seen := map[Outcome]int{}
	rules := map[string]bool{}
	b := make([]byte, 192)
	for range 20000 {
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		d := checkInvariants(t, b)
		seen[d.Outcome]++
		rules[d.Rule] = true
	}
	for o := InvalidInput; o <= StepUpRequired; o++ {
		if seen[o] == 0 {
			t.Errorf("no %v decision in 20000 inputs (%v)", o, seen)
		}
	}
	for _, r := range []string{RuleAllow, RuleStepUpACR, RuleStepUpMaxAge, RuleScopeNoneAllowed, RuleUserNotInGroup, RuleConnectionExpired, RuleSubjectExpired} {
		if !rules[r] {
			t.Errorf("rule %s never decided", r)
		}
	}
	t.Logf("outcomes: %v", seen)
}
