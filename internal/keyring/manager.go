// Package keyring manages the signing keys of one of this deployment's own
// issuers: it creates them on first start, keeps their private halves sealed
// at rest in the store, rotates them with a pre-published next key and an
// overlap for tokens already issued, and retires them.
//
// Lifecycle (store.KeyState): a key is created as next and published in the
// JWKS before it ever signs, so relying parties have it cached by the time
// it is used; Rotate makes it active and moves the old active key to
// retiring, still published until every token it signed has expired
// (MaxTokenLifetime + Leeway, plus RefreshInterval when several instances
// share the store); RetireExpired then retires it, which removes
// it from the JWKS and wipes its sealed private key. Every change commits in
// one transaction with its audit event.
//
// Several instances may share one store: writes re-read the keys inside
// their transaction, and Refresh picks up another instance's rotation.
package keyring

import (
	"cmp"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gojose "github.com/go-jose/go-jose/v4"

	"github.com/openxaa/xaa/internal/jose"
	"github.com/openxaa/xaa/internal/store"
)

// DefaultLeeway is the clock-skew allowance added to the retirement delay,
// matching the verification leeway (decisions.md, "Tokens and crypto").
const DefaultLeeway = 30 * time.Second

// Audit event types written in the transaction of each key change.
const (
	EventKeyCreated = "key.created"
	EventKeyRotated = "key.rotated"
	EventKeyRetired = "key.retired"
)

var (
	// ErrInvalidOptions means Options failed validation.
	ErrInvalidOptions = errors.New("keyring: invalid options")
	// ErrNoActiveKey means the store holds no active key for the owner.
	ErrNoActiveKey = errors.New("keyring: no active signing key")
)

// Store is what the Manager needs from a backend: reads outside a
// transaction (Refresh, List) and every write inside one, together with its
// audit event.
type Store interface {
	store.SigningKeys
	store.Transactor
}

// Options configures a Manager.
type Options struct {
	// Owner identifies the issuer the keys belong to (its issuer URL).
	// Required. It is bound into every sealed private key.
	Owner string
	// Algorithm for new keys: "ES256" (default) or "EdDSA". Changing it
	// takes effect with the next key created; existing keys keep theirs.
	Algorithm string
	// WrappingKey seals private keys at rest: 32 bytes, see
	// LoadWrappingKey. Required. The Manager keeps only keys derived from
	// it, so the caller may clear the slice after New returns.
	WrappingKey []byte
	// MaxTokenLifetime is the longest lifetime of any token signed with
	// these keys. A key stays published this long (plus Leeway) after it
	// stops signing. Required.
	MaxTokenLifetime time.Duration
	// Leeway is the verifiers' clock-skew allowance; 0 means DefaultLeeway.
	Leeway time.Duration
	// RefreshInterval is how often the instances sharing the store call
	// Refresh; 0 for a single instance. Another instance keeps signing
	// with the old key until its next Refresh, so the retirement delay
	// grows by this much.
	RefreshInterval time.Duration
	// Actor is recorded in audit events; "" means "system".
	Actor string
	// Now returns the current time; nil means time.Now. Tests set it.
	Now func() time.Time
	// Logger receives lifecycle messages (kids only, never key material);
	// nil discards them.
	Logger *slog.Logger
}

// Manager owns one issuer's signing keys. It is safe for concurrent use.
type Manager struct {
	st          Store
	owner       string
	alg         string
	actor       string
	retireDelay time.Duration
	now         func() time.Time
	log         *slog.Logger
	sealer      *sealer

	// mu serialises the operations that read or write the store, so one
	// Manager never races itself; other instances are handled by the
	// transactions.
	mu sync.Mutex
	// signers caches the unsealed active and next keys by kid; guarded by
	// mu. Retiring keys never sign again, so their private keys are
	// dropped from memory.
	signers map[string]*jose.LocalSigner
	// cur is what signing and verification read, swapped as a whole.
	cur atomic.Pointer[snapshot]
}

// snapshot is one consistent view of the keys.
type snapshot struct {
	signer *jose.LocalSigner
	set    gojose.JSONWebKeySet // active, next and retiring public keys
	keys   *jose.StaticKeySet
}

// New validates opts and calls Ensure, so a returned Manager always has an
// active key to sign with. It fails with ErrWrongWrappingKey when the store
// holds keys sealed under another wrapping key: the process must then
// refuse to start.
func New(ctx context.Context, st Store, opts Options) (*Manager, error) {
	if st == nil {
		return nil, fmt.Errorf("%w: nil store", ErrInvalidOptions)
	}
	if opts.Owner == "" {
		return nil, fmt.Errorf("%w: Owner is required", ErrInvalidOptions)
	}
	alg := cmp.Or(opts.Algorithm, jose.ES256)
	if alg != jose.ES256 && alg != jose.EdDSA {
		return nil, fmt.Errorf("%w: Algorithm %q (want %s or %s)", ErrInvalidOptions, opts.Algorithm, jose.ES256, jose.EdDSA)
	}
	if opts.MaxTokenLifetime <= 0 {
		return nil, fmt.Errorf("%w: MaxTokenLifetime must be positive", ErrInvalidOptions)
	}
	if opts.Leeway < 0 || opts.RefreshInterval < 0 {
		return nil, fmt.Errorf("%w: Leeway and RefreshInterval must not be negative", ErrInvalidOptions)
	}
	s, err := newSealer(opts.WrappingKey)
	if err != nil {
		return nil, fmt.Errorf("%w: WrappingKey: %w", ErrInvalidOptions, err)
	}
	m := &Manager{
		st:          st,
		owner:       opts.Owner,
		alg:         alg,
		actor:       cmp.Or(opts.Actor, "system"),
		retireDelay: opts.MaxTokenLifetime + cmp.Or(opts.Leeway, DefaultLeeway) + opts.RefreshInterval,
		now:         opts.Now,
		log:         cmp.Or(opts.Logger, slog.New(slog.DiscardHandler)),
		sealer:      s,
		signers:     map[string]*jose.LocalSigner{},
	}
	if m.now == nil {
		m.now = time.Now
	}
	m.log = m.log.With("owner", m.owner)
	if err := m.Ensure(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

// maxEnsureAttempts bounds re-reads after losing a creation race.
const maxEnsureAttempts = 3

// Ensure makes sure the owner has an active and a next key, creating what
// is missing, and loads them. It is idempotent and safe when several
// instances start at once: creation re-reads the keys inside its
// transaction, and a conflict (another instance won) leads to a re-read.
func (m *Manager) Ensure(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for attempt := 1; ; attempt++ {
		keys, err := m.st.ListSigningKeys(ctx, m.owner)
		if err != nil {
			return fmt.Errorf("keyring: list keys: %w", err)
		}
		if hasActiveAndNext(keys) {
			return m.load(keys)
		}
		if attempt > maxEnsureAttempts {
			return fmt.Errorf("keyring: keys still incomplete after %d attempts: %w", maxEnsureAttempts, store.ErrConflict)
		}
		var created []store.SigningKey
		err = m.st.InTx(ctx, func(tx store.Tx) (err error) {
			created, err = m.completeTx(ctx, tx)
			return err
		})
		switch {
		case errors.Is(err, store.ErrConflict):
			m.log.InfoContext(ctx, "signing keys changed concurrently; re-reading")
		case err != nil:
			return fmt.Errorf("keyring: create keys: %w", err)
		}
		for _, k := range created {
			m.log.InfoContext(ctx, "signing key created", "kid", k.KID, "alg", k.Algorithm, "state", k.State)
		}
	}
}

// completeTx creates whatever of the active and next keys is missing and
// returns the keys it created.
func (m *Manager) completeTx(ctx context.Context, tx store.Tx) ([]store.SigningKey, error) {
	keys, err := tx.ListSigningKeys(ctx, m.owner)
	if err != nil {
		return nil, err
	}
	actives, nexts := byState(keys, store.KeyActive), byState(keys, store.KeyNext)
	// Prove the wrapping key opens what is there before adding anything
	// sealed under it: a wrong key must not leave a mixed store behind.
	for _, k := range slices.Concat(actives, nexts) {
		if _, err := m.signerFor(k); err != nil {
			return nil, err
		}
	}
	now := m.clock()
	var created []store.SigningKey
	if len(actives) == 0 {
		if len(nexts) > 0 {
			// A next key exists but nothing signs: promote the key that
			// relying parties have already had longest.
			if err := m.activateTx(ctx, tx, nexts[0].KID, now); err != nil {
				return nil, err
			}
			if err := m.auditTx(ctx, tx, now, EventKeyRotated, "next signing key activated; there was no active key",
				map[string]string{"kid": nexts[0].KID, "alg": nexts[0].Algorithm, "previous_kid": ""}); err != nil {
				return nil, err
			}
			nexts = nexts[1:]
		} else {
			k, err := m.createTx(ctx, tx, now, store.KeyActive)
			if err != nil {
				return nil, err
			}
			created = append(created, k)
		}
	}
	if len(nexts) == 0 {
		k, err := m.createTx(ctx, tx, now, store.KeyNext)
		if err != nil {
			return nil, err
		}
		created = append(created, k)
	}
	return created, nil
}

// Rotation describes one Rotate.
type Rotation struct {
	// Previous is the kid that signed until now, retiring at RetireAfter;
	// empty if there was none.
	Previous string
	// Active is the kid that signs from now on (the former next key).
	Active string
	// Next is the freshly created, pre-published key.
	Next string
	// RetireAfter is when Previous may be retired.
	RetireAfter time.Time
}

// Rotate makes the next key active, moves the active key to retiring until
// now + MaxTokenLifetime + Leeway + RefreshInterval, and creates a fresh
// next key, all in one transaction with the audit events. If another
// instance changed the keys concurrently, Rotate fails with an error
// wrapping store.ErrConflict and changes nothing; the caller should Refresh
// rather than rotate again.
//
// The key that becomes active was published when the previous rotation (or
// the first start) created it; rotate no more often than relying parties
// cache the JWKS, so that they already hold it.
func (m *Manager) Rotate(ctx context.Context) (Rotation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var rot Rotation
	err := m.st.InTx(ctx, func(tx store.Tx) error {
		now := m.clock()
		rot = Rotation{RetireAfter: now.Add(m.retireDelay)}
		keys, err := tx.ListSigningKeys(ctx, m.owner)
		if err != nil {
			return err
		}
		actives, nexts := byState(keys, store.KeyActive), byState(keys, store.KeyNext)
		var promote store.SigningKey
		if len(nexts) > 0 {
			promote = nexts[0]
		} else {
			// Only reachable if the next key was lost; the new key signs
			// without having been pre-published.
			m.log.WarnContext(ctx, "no next key to rotate to; activating a key that was never pre-published")
			if promote, err = m.createTx(ctx, tx, now, store.KeyNext); err != nil {
				return err
			}
		}
		// Never make a key active that this instance cannot sign with.
		if _, err := m.signerFor(promote); err != nil {
			return err
		}
		// Retire first: the store may allow only one active key per owner.
		var retiring []string
		for _, k := range actives {
			err := tx.UpdateSigningKey(ctx, m.owner, k.KID, func(k store.SigningKey) (store.SigningKey, error) {
				if k.State != store.KeyActive {
					return k, fmt.Errorf("%w: key %q is %s, not active", store.ErrConflict, k.KID, k.State)
				}
				k.State = store.KeyRetiring
				k.RetireAfter = rot.RetireAfter
				return k, nil
			})
			if err != nil {
				return err
			}
			retiring = append(retiring, k.KID)
		}
		if len(actives) > 0 {
			rot.Previous = pickActive(actives).KID
		}
		if err := m.activateTx(ctx, tx, promote.KID, now); err != nil {
			return err
		}
		rot.Active = promote.KID
		if err := m.auditTx(ctx, tx, now, EventKeyRotated, "signing key rotated; the previous key stays published until it retires",
			map[string]string{
				"kid":          promote.KID,
				"alg":          promote.Algorithm,
				"previous_kid": strings.Join(retiring, " "),
				"retire_after": rot.RetireAfter.Format(time.RFC3339),
			}); err != nil {
			return err
		}
		next, err := m.createTx(ctx, tx, now, store.KeyNext)
		if err != nil {
			return err
		}
		rot.Next = next.KID
		return nil
	})
	if err != nil {
		return Rotation{}, fmt.Errorf("keyring: rotate: %w", err)
	}
	m.log.InfoContext(ctx, "signing key rotated", "kid", rot.Active, "previous_kid", rot.Previous,
		"next_kid", rot.Next, "retire_after", rot.RetireAfter)
	if err := m.refreshLocked(ctx); err != nil {
		return rot, fmt.Errorf("keyring: rotated, but reloading the keys failed: %w", err)
	}
	return rot, nil
}

// RetireExpired retires the retiring keys whose RetireAfter has passed:
// they leave the published set, no longer verify, and their sealed private
// keys are wiped. It returns how many keys it retired. Cheap when there is
// nothing to do, so callers may run it periodically.
func (m *Manager) RetireExpired(ctx context.Context) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock()
	keys, err := m.st.ListSigningKeys(ctx, m.owner)
	if err != nil {
		return 0, fmt.Errorf("keyring: list keys: %w", err)
	}
	if !slices.ContainsFunc(keys, func(k store.SigningKey) bool { return retireDue(k, now) }) {
		return 0, nil
	}
	var retired []string
	err = m.st.InTx(ctx, func(tx store.Tx) error {
		retired = retired[:0]
		keys, err := tx.ListSigningKeys(ctx, m.owner)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if !retireDue(k, now) {
				continue
			}
			changed := false
			err := tx.UpdateSigningKey(ctx, m.owner, k.KID, func(k store.SigningKey) (store.SigningKey, error) {
				// Another instance may have retired it meanwhile: that is
				// the same outcome, not a conflict.
				if !retireDue(k, now) {
					return k, nil
				}
				k.State = store.KeyRetired
				k.SealedPrivate = nil // never needed again
				changed = true
				return k, nil
			})
			if err != nil {
				return err
			}
			if !changed {
				continue
			}
			if err := m.auditTx(ctx, tx, now, EventKeyRetired, "signing key retired: unpublished and its private key wiped",
				map[string]string{"kid": k.KID, "alg": k.Algorithm, "retire_after": k.RetireAfter.Format(time.RFC3339)}); err != nil {
				return err
			}
			retired = append(retired, k.KID)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("keyring: retire keys: %w", err)
	}
	for _, kid := range retired {
		m.log.InfoContext(ctx, "signing key retired", "kid", kid)
	}
	if len(retired) > 0 {
		if err := m.refreshLocked(ctx); err != nil {
			return len(retired), fmt.Errorf("keyring: retired keys, but reloading failed: %w", err)
		}
	}
	return len(retired), nil
}

// Refresh reloads the keys from the store, picking up another instance's
// rotation or retirement. It unseals only keys it has not seen, so running
// it periodically is cheap. On error the previous keys stay in use.
func (m *Manager) Refresh(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.refreshLocked(ctx)
}

func (m *Manager) refreshLocked(ctx context.Context) error {
	keys, err := m.st.ListSigningKeys(ctx, m.owner)
	if err != nil {
		return fmt.Errorf("keyring: list keys: %w", err)
	}
	return m.load(keys)
}

// load builds and installs a snapshot from the owner's keys. mu is held.
func (m *Manager) load(keys []store.SigningKey) error {
	actives := byState(keys, store.KeyActive)
	if len(actives) == 0 {
		return fmt.Errorf("%w for %q", ErrNoActiveKey, m.owner)
	}
	if len(actives) > 1 {
		// Only a store without a one-active-key constraint gets here. All
		// of them stay published; every instance signs with the same one.
		m.log.Warn("several active signing keys; signing with the most recently activated", "count", len(actives))
	}
	active := pickActive(actives)
	signer, err := m.signerFor(active)
	if err != nil {
		return err
	}
	live := map[string]bool{active.KID: true}
	for _, k := range byState(keys, store.KeyNext) {
		// Open next keys now: a key that cannot be opened must be found
		// before a rotation depends on it.
		if _, err := m.signerFor(k); err != nil {
			return err
		}
		live[k.KID] = true
	}
	var set gojose.JSONWebKeySet
	for _, st := range []store.KeyState{store.KeyActive, store.KeyNext, store.KeyRetiring} {
		for _, k := range byState(keys, st) {
			jwk, err := m.publicJWK(k)
			if err != nil {
				return err
			}
			set.Keys = append(set.Keys, jwk)
		}
	}
	ks, err := jose.NewStaticKeySet(set)
	if err != nil {
		return fmt.Errorf("keyring: published keys: %w", err)
	}
	for kid := range m.signers {
		if !live[kid] {
			delete(m.signers, kid)
		}
	}
	m.cur.Store(&snapshot{signer: signer, set: set, keys: ks})
	return nil
}

// signerFor returns the unsealed signer of k, opening it on first use. mu
// is held.
func (m *Manager) signerFor(k store.SigningKey) (*jose.LocalSigner, error) {
	if s, ok := m.signers[k.KID]; ok && s.Algorithm() == k.Algorithm {
		return s, nil
	}
	if k.Owner != m.owner {
		return nil, fmt.Errorf("keyring: key %q belongs to %q, not %q", k.KID, k.Owner, m.owner)
	}
	if len(k.SealedPrivate) == 0 {
		return nil, fmt.Errorf("%w: key %q has no private key", ErrSealedKeyInvalid, k.KID)
	}
	der, err := m.sealer.open(m.owner, k.KID, k.Algorithm, k.SealedPrivate)
	if err != nil {
		return nil, err
	}
	defer clear(der)
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: key %q: not a PKCS#8 private key", ErrSealedKeyInvalid, k.KID)
	}
	cs, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: key %q: %T cannot sign", ErrSealedKeyInvalid, k.KID, priv)
	}
	s, err := jose.NewLocalSigner(cs, k.Algorithm)
	if err != nil {
		return nil, fmt.Errorf("keyring: key %q: %w", k.KID, err)
	}
	if s.KeyID() != k.KID {
		return nil, fmt.Errorf("%w: key %q: private key has thumbprint %q", ErrSealedKeyInvalid, k.KID, s.KeyID())
	}
	m.signers[k.KID] = s
	return s, nil
}

// publicJWK parses and checks the stored public key of k: it must be a
// public key whose thumbprint is the kid.
func (m *Manager) publicJWK(k store.SigningKey) (gojose.JSONWebKey, error) {
	var jwk gojose.JSONWebKey
	if err := jwk.UnmarshalJSON(k.PublicJWK); err != nil {
		return gojose.JSONWebKey{}, fmt.Errorf("keyring: key %q: public JWK: %w", k.KID, err)
	}
	if !jwk.IsPublic() {
		return gojose.JSONWebKey{}, fmt.Errorf("keyring: key %q: stored public JWK is not a public key", k.KID)
	}
	tp, err := jose.Thumbprint(jwk.Key)
	if err != nil {
		return gojose.JSONWebKey{}, fmt.Errorf("keyring: key %q: %w", k.KID, err)
	}
	if tp != k.KID || (jwk.KeyID != "" && jwk.KeyID != k.KID) {
		return gojose.JSONWebKey{}, fmt.Errorf("keyring: key %q: stored public JWK has thumbprint %q", k.KID, tp)
	}
	return gojose.JSONWebKey{Key: jwk.Key, KeyID: k.KID, Algorithm: k.Algorithm, Use: "sig"}, nil
}

// createTx generates, seals and inserts a key in state st, with its audit
// event.
func (m *Manager) createTx(ctx context.Context, tx store.Tx, now time.Time, st store.KeyState) (store.SigningKey, error) {
	k, err := m.generate(now, st)
	if err != nil {
		return store.SigningKey{}, err
	}
	if err := tx.CreateSigningKey(ctx, k); err != nil {
		return store.SigningKey{}, err
	}
	reason := "signing key created and pre-published as the next key"
	if st == store.KeyActive {
		reason = "signing key created as the active key"
	}
	if err := m.auditTx(ctx, tx, now, EventKeyCreated, reason,
		map[string]string{"kid": k.KID, "alg": k.Algorithm, "state": string(st)}); err != nil {
		return store.SigningKey{}, err
	}
	return k, nil
}

// activateTx moves the next key kid to active.
func (m *Manager) activateTx(ctx context.Context, tx store.Tx, kid string, now time.Time) error {
	return tx.UpdateSigningKey(ctx, m.owner, kid, func(k store.SigningKey) (store.SigningKey, error) {
		if k.State != store.KeyNext {
			return k, fmt.Errorf("%w: key %q is %s, not next", store.ErrConflict, k.KID, k.State)
		}
		k.State = store.KeyActive
		k.ActivatedAt = now
		return k, nil
	})
}

func (m *Manager) auditTx(ctx context.Context, tx store.Tx, now time.Time, typ, reason string, data map[string]string) error {
	data["owner"] = m.owner
	return tx.AppendAudit(ctx, &store.AuditEvent{
		Time:    now,
		Type:    typ,
		Actor:   m.actor,
		Outcome: "info",
		Reason:  reason,
		Data:    data,
	})
}

// generate creates a key pair of the configured algorithm and seals its
// PKCS#8 encoding for its row.
func (m *Manager) generate(now time.Time, st store.KeyState) (store.SigningKey, error) {
	var priv crypto.Signer
	var err error
	switch m.alg {
	case jose.EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("keyring: generate key: %w", err)
	}
	s, err := jose.NewLocalSigner(priv, m.alg)
	if err != nil {
		return store.SigningKey{}, err
	}
	pub, err := s.PublicKey().MarshalJSON()
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("keyring: encode public key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("keyring: encode private key: %w", err)
	}
	defer clear(der)
	sealed, err := m.sealer.seal(m.owner, s.KeyID(), m.alg, der)
	if err != nil {
		return store.SigningKey{}, err
	}
	k := store.SigningKey{
		KID:           s.KeyID(),
		Owner:         m.owner,
		Algorithm:     m.alg,
		State:         st,
		PublicJWK:     pub,
		SealedPrivate: sealed,
		CreatedAt:     now,
	}
	if st == store.KeyActive {
		k.ActivatedAt = now
	}
	return k, nil
}

// clock returns the current time at millisecond precision, which every
// backend keeps, so times in a Rotation equal those read back from the store.
func (m *Manager) clock() time.Time { return m.now().UTC().Truncate(time.Millisecond) }

// Signer returns a signer that always signs with the current active key,
// following rotations and refreshes. KeyID and Algorithm report the key at
// the moment of the call; the kid a token carries is the one Sign used.
func (m *Manager) Signer() jose.Signer { return activeSigner{m} }

type activeSigner struct{ m *Manager }

func (s activeSigner) Sign(ctx context.Context, typ string, claims any) (string, error) {
	return s.m.cur.Load().signer.Sign(ctx, typ, claims)
}
func (s activeSigner) Algorithm() string { return s.m.cur.Load().signer.Algorithm() }
func (s activeSigner) KeyID() string     { return s.m.cur.Load().signer.KeyID() }

// PublicKeys returns the published set for the JWKS endpoint: the active,
// next and retiring public keys, never retired ones. It reads memory only;
// run Refresh periodically to follow other instances.
func (m *Manager) PublicKeys(_ context.Context) (gojose.JSONWebKeySet, error) {
	return gojose.JSONWebKeySet{Keys: slices.Clone(m.cur.Load().set.Keys)}, nil
}

// KeySet returns the published set as a KeySet for verifying this issuer's
// own tokens. An unknown kid does not trigger a store read: the next key is
// already in the set, so another instance's rotation is covered until
// Refresh, and a flood of made-up kids costs nothing.
func (m *Manager) KeySet() jose.KeySet { return ownKeySet{m} }

type ownKeySet struct{ m *Manager }

func (s ownKeySet) Key(ctx context.Context, kid string) (*gojose.JSONWebKey, error) {
	return s.m.cur.Load().keys.Key(ctx, kid)
}

// KeyInfo describes a key for operators; it never carries private material.
type KeyInfo struct {
	KID         string         `json:"kid"`
	Algorithm   string         `json:"alg"`
	State       store.KeyState `json:"state"`
	CreatedAt   time.Time      `json:"created_at"`
	ActivatedAt time.Time      `json:"activated_at,omitzero"`
	RetireAfter time.Time      `json:"retire_after,omitzero"`
}

// List returns all the owner's keys, retired ones included, oldest first.
func (m *Manager) List(ctx context.Context) ([]KeyInfo, error) {
	return ListKeys(ctx, m.st, m.owner)
}

// ListKeys is List without a Manager, for tools that must not need the
// wrapping key (such as `xaa keys list`).
func ListKeys(ctx context.Context, st store.SigningKeys, owner string) ([]KeyInfo, error) {
	keys, err := st.ListSigningKeys(ctx, owner)
	if err != nil {
		return nil, fmt.Errorf("keyring: list keys: %w", err)
	}
	out := make([]KeyInfo, 0, len(keys))
	for _, k := range keys {
		out = append(out, KeyInfo{
			KID:         k.KID,
			Algorithm:   k.Algorithm,
			State:       k.State,
			CreatedAt:   k.CreatedAt,
			ActivatedAt: k.ActivatedAt,
			RetireAfter: k.RetireAfter,
		})
	}
	return out, nil
}

// byState returns the keys in state st, in store order (oldest first).
func byState(keys []store.SigningKey, st store.KeyState) []store.SigningKey {
	var out []store.SigningKey
	for _, k := range keys {
		if k.State == st {
			out = append(out, k)
		}
	}
	return out
}

func hasActiveAndNext(keys []store.SigningKey) bool {
	return slices.ContainsFunc(keys, func(k store.SigningKey) bool { return k.State == store.KeyActive }) &&
		slices.ContainsFunc(keys, func(k store.SigningKey) bool { return k.State == store.KeyNext })
}

// pickActive chooses deterministically among active keys, so every instance
// signs with the same one: the most recently activated, then the largest kid.
func pickActive(actives []store.SigningKey) store.SigningKey {
	return slices.MaxFunc(actives, func(a, b store.SigningKey) int {
		return cmp.Or(a.ActivatedAt.Compare(b.ActivatedAt), strings.Compare(a.KID, b.KID))
	})
}

func retireDue(k store.SigningKey, now time.Time) bool {
	return k.State == store.KeyRetiring && !now.Before(k.RetireAfter)
}
