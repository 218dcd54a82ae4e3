package keyring

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gojose "github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"

	"github.com/openxaa/xaa/internal/jose"
	"github.com/openxaa/xaa/internal/store"
)

const (
	testOwner    = "https://as.example.com"
	testAudience = "https://mcp.example.com"
	testLifetime = 5 * time.Minute
)

// clock is a controllable Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock {
	return &clock{t: time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newWrappingKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, WrappingKeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func testOptions(t testing.TB, wk []byte, c *clock) Options {
	return Options{
		Owner:            testOwner,
		WrappingKey:      wk,
		MaxTokenLifetime: testLifetime,
		Now:              c.Now,
		Logger:           slog.New(slog.NewTextHandler(t.Output(), nil)),
	}
}

func newManager(t testing.TB, st Store, opts Options) *Manager {
	t.Helper()
	m, err := New(t.Context(), st, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m
}

// keyStates returns kid -> state of the owner's keys.
func keyStates(t *testing.T, m *Manager) map[string]store.KeyState {
	t.Helper()
	infos, err := m.List(t.Context())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	out := map[string]store.KeyState{}
	for _, k := range infos {
		out[k.KID] = k.State
	}
	return out
}

func kidsIn(t *testing.T, m *Manager, st store.KeyState) []string {
	t.Helper()
	infos, err := m.List(t.Context())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var out []string
	for _, k := range infos {
		if k.State == st {
			out = append(out, k.KID)
		}
	}
	return out
}

func publishedKIDs(t *testing.T, m *Manager) []string {
	t.Helper()
	set, err := m.PublicKeys(t.Context())
	if err != nil {
		t.Fatalf("PublicKeys: %v", err)
	}
	var out []string
	for _, k := range set.Keys {
		if !k.IsPublic() {
			t.Errorf("published key %q is not public", k.KeyID)
		}
		out = append(out, k.KeyID)
	}
	return out
}

// auditTrail returns "type kid" for each keyring audit event.
func auditTrail(t *testing.T, a store.Audit) []string {
	t.Helper()
	events, err := a.ListAudit(t.Context(), store.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatalf("ListAudit: %v", err)
	}
	var out []string
	for _, e := range events {
		if e.Data["owner"] != testOwner || e.Actor == "" || e.Outcome != "info" || e.Reason == "" {
			t.Errorf("audit event %d is incomplete: %+v", e.Seq, e)
		}
		out = append(out, e.Type+" "+e.Data["kid"])
	}
	return out
}

// signAccessToken signs an RFC 9068 access token issued at now.
func signAccessToken(t testing.TB, s jose.Signer, now time.Time) string {
	t.Helper()
	raw, err := s.Sign(context.Background(), jose.TypeAccessToken, accessTokenClaims(now))
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return raw
}

func accessTokenClaims(now time.Time) map[string]any {
	return map[string]any{
		"iss":       testOwner,
		"sub":       "alice",
		"aud":       testAudience,
		"client_id": "agent",
		"scope":     "tools.read",
		"jti":       rand.Text(),
		"iat":       now.Unix(),
		"exp":       now.Add(testLifetime).Unix(),
	}
}

// verify checks raw with the strict verifier against the manager's own
// key set, at time at.
func verify(ks jose.KeySet, raw string, at time.Time) (*jose.Token, error) {
	return jose.Verify(context.Background(), raw, jose.AccessTokenProfile(),
		jose.SingleIssuer{Issuer: testOwner, Keys: ks},
		jose.Expectations{Audiences: []string{testAudience}, Now: at})
}

func TestFirstStartCreatesActiveAndNext(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{"", jose.ES256, jose.EdDSA} {
		t.Run("alg="+alg, func(t *testing.T) {
			t.Parallel()
			st := newTestStore(t)
			c := newClock()
			opts := testOptions(t, newWrappingKey(t), c)
			opts.Algorithm = alg
			m := newManager(t, st, opts)

			infos, err := m.List(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			wantAlg := alg
			if wantAlg == "" {
				wantAlg = jose.ES256
			}
			if len(infos) != 2 {
				t.Fatalf("got %d keys, want 2: %+v", len(infos), infos)
			}
			var active, next KeyInfo
			for _, k := range infos {
				switch k.State {
				case store.KeyActive:
					active = k
				case store.KeyNext:
					next = k
				}
			}
			want := []KeyInfo{
				{KID: active.KID, Algorithm: wantAlg, State: store.KeyActive, CreatedAt: c.Now(), ActivatedAt: c.Now()},
				{KID: next.KID, Algorithm: wantAlg, State: store.KeyNext, CreatedAt: c.Now()},
			}
			if diff := cmp.Diff(want, []KeyInfo{active, next}); diff != "" {
				t.Errorf("keys (-want +got):\n%s", diff)
			}
			if s := m.Signer(); s.KeyID() != active.KID || s.Algorithm() != wantAlg {
				t.Errorf("signer kid %q alg %q, want %q %q", s.KeyID(), s.Algorithm(), active.KID, wantAlg)
			}
			if diff := cmp.Diff([]string{active.KID, next.KID}, publishedKIDs(t, m)); diff != "" {
				t.Errorf("published (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{"key.created " + active.KID, "key.created " + next.KID}, auditTrail(t, st)); diff != "" {
				t.Errorf("audit (-want +got):\n%s", diff)
			}

			// The kid is the RFC 7638 thumbprint, and a token verifies.
			set, _ := m.PublicKeys(t.Context())
			if tp, _ := jose.Thumbprint(set.Keys[0].Key); tp != active.KID {
				t.Errorf("kid %q is not the thumbprint %q", active.KID, tp)
			}
			if set.Keys[0].Algorithm != wantAlg || set.Keys[0].Use != "sig" {
				t.Errorf("published alg %q use %q", set.Keys[0].Algorithm, set.Keys[0].Use)
			}
			raw := signAccessToken(t, m.Signer(), c.Now())
			tok, err := verify(m.KeySet(), raw, c.Now())
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if tok.Header.KeyID != active.KID || tok.Header.Algorithm != wantAlg {
				t.Errorf("token header %+v", tok.Header)
			}
		})
	}
}

func TestPrivateKeysAreSealedAtRest(t *testing.T) {
	t.Parallel()
	st := newTestStore(t)
	wk := newWrappingKey(t)
	newManager(t, st, testOptions(t, wk, newClock()))
	keys, err := st.ListSigningKeys(t.Context(), testOwner)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if len(k.SealedPrivate) < sealOverhead || k.SealedPrivate[0] != sealV1 {
			t.Errorf("key %s: sealed private key has no v1 header", k.KID)
		}
		var pub gojose.JSONWebKey
		if err := pub.UnmarshalJSON(k.PublicJWK); err != nil || !pub.IsPublic() {
			t.Errorf("key %s: stored public JWK is not a public key (%v)", k.KID, err)
		}
		// Under the seal: PKCS#8 DER of the private half of this kid.
		der, err := newTestSealer(t, wk).open(testOwner, k.KID, k.Algorithm, k.SealedPrivate)
		if err != nil {
			t.Fatalf("key %s: open: %v", k.KID, err)
		}
		priv, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			t.Fatalf("key %s: not PKCS#8: %v", k.KID, err)
		}
		if tp, _ := jose.Thumbprint(priv.(crypto.Signer).Public()); tp != k.KID {
			t.Errorf("key %s: sealed private key has thumbprint %s", k.KID, tp)
		}
	}
}

// TestPublishedJWKSMembers pins the exact members each published key has,
// so that nothing private ("d") or unexpected can slip into the JWKS.
func TestPublishedJWKSMembers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		alg  string
		want []string
	}{
		{jose.ES256, []string{"alg", "crv", "kid", "kty", "use", "x", "y"}},
		{jose.EdDSA, []string{"alg", "crv", "kid", "kty", "use", "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.alg, func(t *testing.T) {
			t.Parallel()
			opts := testOptions(t, newWrappingKey(t), newClock())
			opts.Algorithm = tt.alg
			m := newManager(t, newTestStore(t), opts)
			set, err := m.PublicKeys(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			raw, err := json.Marshal(set)
			if err != nil {
				t.Fatal(err)
			}
			var doc struct {
				Keys []map[string]any `json:"keys"`
			}
			if err := json.Unmarshal(raw, &doc); err != nil {
				t.Fatal(err)
			}
			if len(doc.Keys) != 2 {
				t.Fatalf("%d keys published, want 2", len(doc.Keys))
			}
			for _, k := range doc.Keys {
				got := slices.Sorted(maps.Keys(k))
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("members of %v (-want +got):\n%s", k["kid"], diff)
				}
				if k["use"] != "sig" || k["alg"] != tt.alg {
					t.Errorf("use %v alg %v", k["use"], k["alg"])
				}
			}
		})
	}
}

func TestRestartLoadsSameActiveKey(t *testing.T) {
	t.Parallel()
	st := newTestStore(t)
	c := newClock()
	wk := newWrappingKey(t)
	first := newManager(t, st, testOptions(t, wk, c))
	raw := signAccessToken(t, first.Signer(), c.Now())

	c.Advance(time.Minute)
	second := newManager(t, st, testOptions(t, wk, c))
	if got, want := second.Signer().KeyID(), first.Signer().KeyID(); got != want {
		t.Errorf("after restart active kid %q, want %q", got, want)
	}
	if n := len(keyStates(t, second)); n != 2 {
		t.Errorf("restart changed the number of keys to %d", n)
	}
	if n := len(auditTrail(t, st)); n != 2 {
		t.Errorf("restart wrote audit events: %d in total", n)
	}
	if _, err := verify(second.KeySet(), raw, c.Now()); err != nil {
		t.Errorf("token from before the restart: %v", err)
	}
	// Ensure on a complete store is a no-op.
	if err := second.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := len(keyStates(t, second)); n != 2 {
		t.Errorf("Ensure changed the number of keys to %d", n)
	}
}

func TestWrongWrappingKeyRefusesToStart(t *testing.T) {
	t.Parallel()
	st := newTestStore(t)
	c := newClock()
	newManager(t, st, testOptions(t, newWrappingKey(t), c))
	before, _ := st.ListSigningKeys(t.Context(), testOwner)

	_, err := New(t.Context(), st, testOptions(t, newWrappingKey(t), c))
	if !errors.Is(err, ErrWrongWrappingKey) {
		t.Fatalf("New with another wrapping key: %v, want ErrWrongWrappingKey", err)
	}
	after, _ := st.ListSigningKeys(t.Context(), testOwner)
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("a failed start changed the keys (-before +after):\n%s", diff)
	}
}

// TestWrongWrappingKeyWritesNothing covers a store that lacks a next key:
// the manager must prove it can open the active key before it seals a new
// next key under the wrong wrapping key.
func TestWrongWrappingKeyWritesNothing(t *testing.T) {
	t.Parallel()
	st := newTestStore(t)
	c := newClock()
	m := newManager(t, st, testOptions(t, newWrappingKey(t), c))
	next := kidsIn(t, m, store.KeyNext)[0]
	setState(t, st, next, store.KeyRetired)

	_, err := New(t.Context(), st, testOptions(t, newWrappingKey(t), c))
	if !errors.Is(err, ErrWrongWrappingKey) {
		t.Fatalf("New: %v, want ErrWrongWrappingKey", err)
	}
	if n := len(kidsIn(t, m, store.KeyNext)); n != 0 {
		t.Errorf("a next key was created under the wrong wrapping key")
	}
}

// setState forces a key's state behind the manager's back.
func setState(t *testing.T, st Store, kid string, s store.KeyState) {
	t.Helper()
	err := st.InTx(t.Context(), func(tx store.Tx) error {
		return tx.UpdateSigningKey(t.Context(), testOwner, kid, func(k store.SigningKey) (store.SigningKey, error) {
			k.State = s
			return k, nil
		})
	})
	if err != nil {
		t.Fatalf("set state of %s: %v", kid, err)
	}
}

// TestTamperedKeyRowsRefuseToStart edits the rows behind the manager's back;
// every edit must stop a restart with the right error.
func TestTamperedKeyRowsRefuseToStart(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		tamper func(active, next *store.SigningKey, other store.SigningKey)
		want   error
	}{
		{
			name: "sealed blobs swapped between rows",
			tamper: func(a, n *store.SigningKey, _ store.SigningKey) {
				a.SealedPrivate, n.SealedPrivate = n.SealedPrivate, a.SealedPrivate
			},
			want: ErrSealedKeyInvalid,
		},
		{
			name: "sealed blob copied from another owner's key",
			tamper: func(a, _ *store.SigningKey, o store.SigningKey) {
				a.SealedPrivate = o.SealedPrivate
			},
			want: ErrSealedKeyInvalid,
		},
		{
			name: "next key's sealed blob swapped with the active one's",
			tamper: func(a, n *store.SigningKey, _ store.SigningKey) {
				n.SealedPrivate = a.SealedPrivate
			},
			want: ErrSealedKeyInvalid,
		},
		{
			name: "sealed blob truncated",
			tamper: func(a, _ *store.SigningKey, _ store.SigningKey) {
				a.SealedPrivate = a.SealedPrivate[:len(a.SealedPrivate)-1]
			},
			want: ErrSealedKeyInvalid,
		},
		{
			name:   "sealed blob wiped",
			tamper: func(a, _ *store.SigningKey, _ store.SigningKey) { a.SealedPrivate = nil },
			want:   ErrSealedKeyInvalid,
		},
		{
			name: "ciphertext bit flipped",
			tamper: func(a, _ *store.SigningKey, _ store.SigningKey) {
				a.SealedPrivate[len(a.SealedPrivate)-20] ^= 1
			},
			want: ErrSealedKeyInvalid,
		},
		{
			name:   "unknown format version",
			tamper: func(a, _ *store.SigningKey, _ store.SigningKey) { a.SealedPrivate[0] = 0x02 },
			want:   ErrSealedKeyInvalid,
		},
		{
			name:   "algorithm relabelled",
			tamper: func(a, _ *store.SigningKey, _ store.SigningKey) { a.Algorithm = jose.EdDSA },
			want:   ErrSealedKeyInvalid,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := newTestStore(t)
			c := newClock()
			wk := newWrappingKey(t)
			newManager(t, st, testOptions(t, wk, c))
			otherOpts := testOptions(t, wk, c)
			otherOpts.Owner = "https://idp.example.com"
			newManager(t, st, otherOpts)
			otherKeys, _ := st.ListSigningKeys(t.Context(), otherOpts.Owner)

			keys, _ := st.ListSigningKeys(t.Context(), testOwner)
			var active, next store.SigningKey
			for _, k := range keys {
				switch k.State {
				case store.KeyActive:
					active = k
				case store.KeyNext:
					next = k
				}
			}
			tt.tamper(&active, &next, otherKeys[0])
			err := st.InTx(t.Context(), func(tx store.Tx) error {
				for _, k := range []store.SigningKey{active, next} {
					if err := tx.UpdateSigningKey(t.Context(), testOwner, k.KID, func(store.SigningKey) (store.SigningKey, error) {
						return k, nil
					}); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatalf("tamper: %v", err)
			}
			_, err = New(t.Context(), st, testOptions(t, wk, c))
			if !errors.Is(err, tt.want) {
				t.Fatalf("New after tampering: %v, want %v", err, tt.want)
			}
			if errors.Is(err, ErrWrongWrappingKey) {
				t.Errorf("tampering reported as a wrong wrapping key: %v", err)
			}
		})
	}
}

func TestTamperedPublicKeyRefusesToStart(t *testing.T) {
	t.Parallel()
	st := newTestStore(t)
	c := newClock()
	wk := newWrappingKey(t)
	m := newManager(t, st, testOptions(t, wk, c))
	keys, _ := st.ListSigningKeys(t.Context(), testOwner)
	// Publish the next key's public half under the active kid: verifiers
	// would accept tokens the active kid never signed.
	var nextJWK []byte
	for _, k := range keys {
		if k.State == store.KeyNext {
			nextJWK = k.PublicJWK
		}
	}
	active := m.Signer().KeyID()
	err := st.InTx(t.Context(), func(tx store.Tx) error {
		return tx.UpdateSigningKey(t.Context(), testOwner, active, func(k store.SigningKey) (store.SigningKey, error) {
			k.PublicJWK = nextJWK
			return k, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(t.Context(), st, testOptions(t, wk, c)); err == nil {
		t.Fatal("New accepted a public key whose thumbprint is not its kid")
	}
}

func TestRotationOverlapAndRetirement(t *testing.T) {
	t.Parallel()
	st := newTestStore(t)
	c := newClock()
	wk := newWrappingKey(t)
	m := newManager(t, st, testOptions(t, wk, c))
	oldKID := m.Signer().KeyID()
	nextKID := kidsIn(t, m, store.KeyNext)[0]
	issued := c.Now()
	oldToken := signAccessToken(t, m.Signer(), issued)

	c.Advance(time.Minute)
	rot, err := m.Rotate(t.Context())
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	retireAfter := c.Now().Add(testLifetime + DefaultLeeway)
	want := Rotation{Previous: oldKID, Active: nextKID, Next: rot.Next, RetireAfter: retireAfter}
	if diff := cmp.Diff(want, rot); diff != "" {
		t.Errorf("rotation (-want +got):\n%s", diff)
	}
	if rot.Next == "" || rot.Next == oldKID || rot.Next == nextKID {
		t.Errorf("fresh next kid %q", rot.Next)
	}
	if got := m.Signer().KeyID(); got != nextKID {
		t.Errorf("signer kid after rotation %q, want the former next key %q", got, nextKID)
	}
	wantStates := map[string]store.KeyState{oldKID: store.KeyRetiring, nextKID: store.KeyActive, rot.Next: store.KeyNext}
	if diff := cmp.Diff(wantStates, keyStates(t, m)); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
	infos, _ := m.List(t.Context())
	for _, k := range infos {
		if k.KID == oldKID && !k.RetireAfter.Equal(retireAfter) {
			t.Errorf("retire after %v, want %v", k.RetireAfter, retireAfter)
		}
		if k.KID == nextKID && !k.ActivatedAt.Equal(c.Now()) {
			t.Errorf("activated at %v, want %v", k.ActivatedAt, c.Now())
		}
	}

	// Overlap: the old key is still published and its tokens verify.
	if diff := cmp.Diff([]string{nextKID, rot.Next, oldKID}, publishedKIDs(t, m)); diff != "" {
		t.Errorf("published during overlap (-want +got):\n%s", diff)
	}
	if _, err := verify(m.KeySet(), oldToken, c.Now()); err != nil {
		t.Errorf("old token during overlap: %v", err)
	}
	newToken := signAccessToken(t, m.Signer(), c.Now())
	if tok, err := verify(m.KeySet(), newToken, c.Now()); err != nil || tok.Header.KeyID != nextKID {
		t.Errorf("new token: %v (kid %v)", err, tok)
	}

	// Not yet due: nothing happens, one second before RetireAfter.
	c.Advance(retireAfter.Sub(c.Now()) - time.Second)
	if n, err := m.RetireExpired(t.Context()); err != nil || n != 0 {
		t.Fatalf("RetireExpired before RetireAfter = %d, %v; want 0", n, err)
	}
	if got := keyStates(t, m)[oldKID]; got != store.KeyRetiring {
		t.Errorf("state before RetireAfter %q", got)
	}

	c.Advance(time.Second)
	if n, err := m.RetireExpired(t.Context()); err != nil || n != 1 {
		t.Fatalf("RetireExpired at RetireAfter = %d, %v; want 1", n, err)
	}
	if diff := cmp.Diff([]string{nextKID, rot.Next}, publishedKIDs(t, m)); diff != "" {
		t.Errorf("published after retirement (-want +got):\n%s", diff)
	}
	// Verify at issue time so that only the key's removal can fail it.
	if _, err := verify(m.KeySet(), oldToken, issued); !errors.Is(err, jose.ErrUnknownKey) {
		t.Errorf("old token after retirement: %v, want ErrUnknownKey", err)
	}
	keys, _ := st.ListSigningKeys(t.Context(), testOwner)
	for _, k := range keys {
		if k.KID == oldKID && (k.State != store.KeyRetired || k.SealedPrivate != nil) {
			t.Errorf("retired key: state %q, sealed private %d bytes; want retired and wiped", k.State, len(k.SealedPrivate))
		}
	}
	if n, err := m.RetireExpired(t.Context()); err != nil || n != 0 {
		t.Errorf("second RetireExpired = %d, %v; want 0", n, err)
	}
	// A restart still works: a retired key without private material is fine.
	if _, err := New(t.Context(), st, testOptions(t, wk, c)); err != nil {
		t.Errorf("restart after retirement: %v", err)
	}

	wantAudit := []string{
		"key.created " + oldKID,
		"key.created " + nextKID,
		"key.rotated " + nextKID,
		"key.created " + rot.Next,
		"key.retired " + oldKID,
	}
	if diff := cmp.Diff(wantAudit, auditTrail(t, st)); diff != "" {
		t.Errorf("audit (-want +got):\n%s", diff)
	}
}

func TestRotationAuditData(t *testing.T) {
	t.Parallel()
	st := newTestStore(t)
	c := newClock()
	opts := testOptions(t, newWrappingKey(t), c)
	opts.Actor = "admin:cli"
	m := newManager(t, st, opts)
	old := m.Signer().KeyID()
	rot, err := m.Rotate(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	events, err := st.ListAudit(t.Context(), store.AuditFilter{Type: EventKeyRotated})
	if err != nil || len(events) != 1 {
		t.Fatalf("rotated events: %d, %v", len(events), err)
	}
	e := events[0]
	want := map[string]string{
		"owner":        testOwner,
		"kid":          rot.Active,
		"alg":          jose.ES256,
		"previous_kid": old,
		"retire_after": rot.RetireAfter.Format(time.RFC3339),
	}
	if diff := cmp.Diff(want, e.Data); diff != "" {
		t.Errorf("rotated data (-want +got):\n%s", diff)
	}
	if e.Actor != "admin:cli" || !e.Time.Equal(c.Now()) {
		t.Errorf("actor %q time %v", e.Actor, e.Time)
	}
}

// TestRefreshFollowsAnotherInstance runs two managers on one store, as two
// instances behind a load balancer.
func TestRefreshFollowsAnotherInstance(t *testing.T) {
	t.Parallel()
	st := newTestStore(t)
	c := newClock()
	wk := newWrappingKey(t)
	a := newManager(t, st, testOptions(t, wk, c))
	b := newManager(t, st, testOptions(t, wk, c))
	old := b.Signer().KeyID()

	rot, err := a.Rotate(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// Before B refreshes it still signs with the old key, which A still
	// publishes, and it already verifies A's new tokens: the new active key
	// was pre-published as next.
	if got := b.Signer().KeyID(); got != old {
		t.Errorf("b signs with %q before refresh, want %q", got, old)
	}
	if _, err := verify(a.KeySet(), signAccessToken(t, b.Signer(), c.Now()), c.Now()); err != nil {
		t.Errorf("a verifies b's token: %v", err)
	}
	if _, err := verify(b.KeySet(), signAccessToken(t, a.Signer(), c.Now()), c.Now()); err != nil {
		t.Errorf("b verifies a's token before refresh: %v", err)
	}

	if err := b.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := b.Signer().KeyID(); got != rot.Active {
		t.Errorf("b signs with %q after refresh, want %q", got, rot.Active)
	}
	if diff := cmp.Diff(publishedKIDs(t, a), publishedKIDs(t, b)); diff != "" {
		t.Errorf("published sets differ (-a +b):\n%s", diff)
	}

	// B retires what A rotated out; A's refresh drops it too.
	c.Advance(testLifetime + DefaultLeeway)
	if n, err := b.RetireExpired(t.Context()); err != nil || n != 1 {
		t.Fatalf("b.RetireExpired = %d, %v", n, err)
	}
	if n, err := a.RetireExpired(t.Context()); err != nil || n != 0 {
		t.Fatalf("a.RetireExpired after b = %d, %v; want 0", n, err)
	}
	if err := a.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{rot.Active, rot.Next}, publishedKIDs(t, a)); diff != "" {
		t.Errorf("a published after b retired (-want +got):\n%s", diff)
	}
}

// TestConcurrentFirstStart starts eight instances at once on an empty
// database, sharing one handle and with a handle each (as separate
// processes would), on SQLite and on PostgreSQL, where READ COMMITTED lets
// two creators race into the one-active-key constraint.
func TestConcurrentFirstStart(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		for _, perInstance := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/handle per instance=%v", b.name, perInstance), func(t *testing.T) {
				t.Parallel()
				shared, another := b.open(t)
				const instances = 8
				stores := make([]Store, instances)
				for i := range stores {
					stores[i] = shared
					if perInstance {
						stores[i] = another()
					}
				}
				c := newClock()
				wk := newWrappingKey(t)
				managers := make([]*Manager, instances)
				errs := make([]error, instances)
				var wg sync.WaitGroup
				start := make(chan struct{})
				for i := range instances {
					wg.Go(func() {
						<-start
						managers[i], errs[i] = New(t.Context(), stores[i], testOptions(t, wk, c))
					})
				}
				close(start)
				wg.Wait()
				for i, err := range errs {
					if err != nil {
						t.Fatalf("instance %d: %v", i, err)
					}
				}
				actives := kidsIn(t, managers[0], store.KeyActive)
				nexts := kidsIn(t, managers[0], store.KeyNext)
				if len(actives) != 1 || len(nexts) != 1 {
					t.Fatalf("got %d active and %d next keys, want 1 and 1", len(actives), len(nexts))
				}
				for i, m := range managers {
					if got := m.Signer().KeyID(); got != actives[0] {
						t.Errorf("instance %d signs with %q, want %q", i, got, actives[0])
					}
				}
				if n := len(auditTrail(t, shared)); n != 2 {
					t.Errorf("%d audit events, want 2 key.created", n)
				}
			})
		}
	}
}

// TestConcurrentRotate rotates from four instances at once. Each Rotate
// either wins or fails with store.ErrConflict; whatever the interleaving,
// the result is one active key, one next key, and one retiring key per
// successful rotation.
func TestConcurrentRotate(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			shared, another := b.open(t)
			c := newClock()
			wk := newWrappingKey(t)
			const instances = 4
			managers := make([]*Manager, instances)
			for i := range managers {
				managers[i] = newManager(t, another(), testOptions(t, wk, c))
			}
			var wg sync.WaitGroup
			results := make([]error, instances)
			start := make(chan struct{})
			for i, m := range managers {
				wg.Go(func() {
					<-start
					_, results[i] = m.Rotate(t.Context())
				})
			}
			close(start)
			wg.Wait()
			won := 0
			for i, err := range results {
				switch {
				case err == nil:
					won++
				case !errors.Is(err, store.ErrConflict):
					t.Errorf("instance %d: %v, want nil or ErrConflict", i, err)
				}
			}
			if won == 0 {
				t.Fatal("no rotation succeeded")
			}
			m := managers[0]
			if err := m.Refresh(t.Context()); err != nil {
				t.Fatal(err)
			}
			counts := map[store.KeyState]int{}
			for _, st := range keyStates(t, m) {
				counts[st]++
			}
			want := map[store.KeyState]int{store.KeyActive: 1, store.KeyNext: 1, store.KeyRetiring: won}
			if diff := cmp.Diff(want, counts); diff != "" {
				t.Errorf("key states after %d successful rotations (-want +got):\n%s", won, diff)
			}
			rotated := 0
			for _, e := range auditTrail(t, shared) {
				if strings.HasPrefix(e, EventKeyRotated) {
					rotated++
				}
			}
			if rotated != won {
				t.Errorf("%d key.rotated events for %d rotations", rotated, won)
			}
		})
	}
}

func TestRetireExpiredWithNothingToDo(t *testing.T) {
	t.Parallel()
	st := newTestStore(t)
	c := newClock()
	m := newManager(t, st, testOptions(t, newWrappingKey(t), c))
	c.Advance(365 * 24 * time.Hour)
	if n, err := m.RetireExpired(t.Context()); err != nil || n != 0 {
		t.Fatalf("RetireExpired without retiring keys = %d, %v", n, err)
	}
	if n := len(auditTrail(t, st)); n != 2 {
		t.Errorf("%d audit events, want 2", n)
	}
}

func TestRetireAfterHonoursOptions(t *testing.T) {
	t.Parallel()
	st := newTestStore(t)
	c := newClock()
	opts := testOptions(t, newWrappingKey(t), c)
	opts.MaxTokenLifetime = time.Hour
	opts.Leeway = 2 * time.Minute
	opts.RefreshInterval = 10 * time.Second
	m := newManager(t, st, opts)
	rot, err := m.Rotate(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if want := c.Now().Add(time.Hour + 2*time.Minute + 10*time.Second); !rot.RetireAfter.Equal(want) {
		t.Errorf("RetireAfter %v, want %v", rot.RetireAfter, want)
	}
}

// TestRepairsIncompleteKeys covers stores left without a next or an active
// key (by an operator, or a failed older version).
func TestRepairsIncompleteKeys(t *testing.T) {
	t.Parallel()
	t.Run("no next key: Ensure creates one", func(t *testing.T) {
		t.Parallel()
		st := newTestStore(t)
		c := newClock()
		wk := newWrappingKey(t)
		m := newManager(t, st, testOptions(t, wk, c))
		active := m.Signer().KeyID()
		setState(t, st, kidsIn(t, m, store.KeyNext)[0], store.KeyRetired)
		if err := m.Ensure(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got := kidsIn(t, m, store.KeyActive); len(got) != 1 || got[0] != active {
			t.Errorf("active keys %v, want [%s]", got, active)
		}
		if got := kidsIn(t, m, store.KeyNext); len(got) != 1 {
			t.Errorf("next keys %v, want one", got)
		}
	})
	t.Run("no active key: Ensure promotes the next key", func(t *testing.T) {
		t.Parallel()
		st := newTestStore(t)
		c := newClock()
		wk := newWrappingKey(t)
		m := newManager(t, st, testOptions(t, wk, c))
		next := kidsIn(t, m, store.KeyNext)[0]
		setState(t, st, m.Signer().KeyID(), store.KeyRetired)
		if err := m.Ensure(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got := m.Signer().KeyID(); got != next {
			t.Errorf("signs with %q, want the promoted next key %q", got, next)
		}
		if got := kidsIn(t, m, store.KeyNext); len(got) != 1 || got[0] == next {
			t.Errorf("next keys %v, want one fresh key", got)
		}
	})
	t.Run("no next key: Rotate activates a fresh key", func(t *testing.T) {
		t.Parallel()
		st := newTestStore(t)
		c := newClock()
		m := newManager(t, st, testOptions(t, newWrappingKey(t), c))
		old := m.Signer().KeyID()
		setState(t, st, kidsIn(t, m, store.KeyNext)[0], store.KeyRetired)
		rot, err := m.Rotate(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if rot.Previous != old || rot.Active == "" || rot.Next == "" || rot.Active == rot.Next {
			t.Errorf("rotation %+v", rot)
		}
		if got := m.Signer().KeyID(); got != rot.Active {
			t.Errorf("signs with %q, want %q", got, rot.Active)
		}
	})
	t.Run("refresh without an active key keeps the last good keys", func(t *testing.T) {
		t.Parallel()
		st := newTestStore(t)
		c := newClock()
		m := newManager(t, st, testOptions(t, newWrappingKey(t), c))
		active := m.Signer().KeyID()
		setState(t, st, active, store.KeyRetired)
		if err := m.Refresh(t.Context()); !errors.Is(err, ErrNoActiveKey) {
			t.Errorf("Refresh: %v, want ErrNoActiveKey", err)
		}
		if got := m.Signer().KeyID(); got != active {
			t.Errorf("signs with %q after a failed refresh, want %q", got, active)
		}
	})
}

func TestNewValidatesOptions(t *testing.T) {
	t.Parallel()
	good := func() Options { return testOptions(t, newWrappingKey(t), newClock()) }
	tests := []struct {
		name   string
		modify func(*Options)
		want   error
	}{
		{"no owner", func(o *Options) { o.Owner = "" }, ErrInvalidOptions},
		{"RS256", func(o *Options) { o.Algorithm = jose.RS256 }, ErrInvalidOptions},
		{"HS256", func(o *Options) { o.Algorithm = "HS256" }, ErrInvalidOptions},
		{"none", func(o *Options) { o.Algorithm = "none" }, ErrInvalidOptions},
		{"lower-case es256", func(o *Options) { o.Algorithm = "es256" }, ErrInvalidOptions},
		{"no max token lifetime", func(o *Options) { o.MaxTokenLifetime = 0 }, ErrInvalidOptions},
		{"negative max token lifetime", func(o *Options) { o.MaxTokenLifetime = -time.Second }, ErrInvalidOptions},
		{"negative leeway", func(o *Options) { o.Leeway = -time.Second }, ErrInvalidOptions},
		{"negative refresh interval", func(o *Options) { o.RefreshInterval = -time.Second }, ErrInvalidOptions},
		{"no wrapping key", func(o *Options) { o.WrappingKey = nil }, ErrInvalidWrappingKey},
		{"short wrapping key", func(o *Options) { o.WrappingKey = o.WrappingKey[:16] }, ErrInvalidWrappingKey},
		{"zero wrapping key", func(o *Options) { o.WrappingKey = make([]byte, 32) }, ErrInvalidWrappingKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := newTestStore(t)
			opts := good()
			tt.modify(&opts)
			_, err := New(t.Context(), st, opts)
			if !errors.Is(err, tt.want) || !errors.Is(err, ErrInvalidOptions) {
				t.Fatalf("New: %v, want %v", err, tt.want)
			}
			if keys, _ := st.ListSigningKeys(t.Context(), testOwner); len(keys) != 0 {
				t.Errorf("invalid options created %d keys", len(keys))
			}
		})
	}
	t.Run("nil store", func(t *testing.T) {
		t.Parallel()
		if _, err := New(t.Context(), nil, good()); !errors.Is(err, ErrInvalidOptions) {
			t.Fatalf("New: %v", err)
		}
	})
}

// TestSignDuringRotation signs from many goroutines while keys rotate and
// refresh (run with -race): every token must carry a published kid and
// verify.
func TestSignDuringRotation(t *testing.T) {
	t.Parallel()
	st := newTestStore(t)
	c := newClock()
	m := newManager(t, st, testOptions(t, newWrappingKey(t), c))
	signer, keys := m.Signer(), m.KeySet()
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				raw, err := signer.Sign(ctx, jose.TypeAccessToken, accessTokenClaims(c.Now()))
				if err == nil {
					_, err = verify(keys, raw, c.Now())
				}
				if err != nil {
					errc <- err
					return
				}
			}
		})
	}
	for range 5 {
		if _, err := m.Rotate(t.Context()); err != nil {
			t.Error(err)
		}
		if err := m.Refresh(t.Context()); err != nil {
			t.Error(err)
		}
	}
	cancel()
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Errorf("sign/verify during rotation: %v", err)
	}
}

func TestListKeysNeedsNoWrappingKey(t *testing.T) {
	t.Parallel()
	st := newTestStore(t)
	c := newClock()
	m := newManager(t, st, testOptions(t, newWrappingKey(t), c))
	want, err := m.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	got, err := ListKeys(t.Context(), st, testOwner)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ListKeys (-List +ListKeys):\n%s", diff)
	}
	if others, err := ListKeys(t.Context(), st, "https://other.example.com"); err != nil || len(others) != 0 {
		t.Errorf("another owner's keys: %v, %v", others, err)
	}
}

// BenchmarkSignerSign signs an RFC 9068 access token through the Manager's
// signer. The "direct" case signs with the same key without the Manager, so
// the difference is the cost of following rotations.
func BenchmarkSignerSign(b *testing.B) {
	for _, alg := range []string{jose.ES256, jose.EdDSA} {
		st := newTestStore(b)
		c := newClock()
		opts := testOptions(b, newWrappingKey(b), c)
		opts.Algorithm, opts.Logger = alg, nil
		m := newManager(b, st, opts)
		claims := accessTokenClaims(c.Now())
		m.mu.Lock()
		direct := m.signers[m.Signer().KeyID()]
		m.mu.Unlock()
		for _, bc := range []struct {
			name string
			s    jose.Signer
		}{{"manager", m.Signer()}, {"direct", direct}} {
			b.Run(alg+"/"+bc.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := bc.s.Sign(b.Context(), jose.TypeAccessToken, claims); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		b.Run(alg+"/manager-parallel", func(b *testing.B) {
			s := m.Signer()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.Sign(context.Background(), jose.TypeAccessToken, claims); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
