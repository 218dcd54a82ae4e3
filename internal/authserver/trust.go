package authserver

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	gojose "github.com/go-jose/go-jose/v4"

	"github.com/openxaa/xaa/internal/audit"
	"github.com/openxaa/xaa/internal/jose"
)

// trustSet is the jose.TrustedIssuers of the jwt-bearer grant: it binds an
// ID-JAG's iss to exactly one configured issuer before any key is chosen,
// and hands jose.Verify that issuer's keys filtered by its alg allowlist.
// Issuers given in Config come first; then, if there is a store, the
// issuers stored for this server's realm.
type trustSet struct {
	own      string // the server's issuer, normalised
	byIssuer map[string]*trustedIssuer
	stored   *storedIssuers // nil without Config.IssuerStore
}

// trustedIssuer is a validated TrustedIssuer.
type trustedIssuer struct {
	issuer      string
	keys        jose.KeySet
	algs        []string
	maxLifetime time.Duration
	disabled    bool
	allowReuse  bool
	subjects    func(ctx context.Context, iss, sub string) (string, error)
}

func newTrustSet(own string, list []TrustedIssuer) (*trustSet, error) {
	ts := &trustSet{own: normalizeIssuer(own), byIssuer: make(map[string]*trustedIssuer, len(list))}
	profile := jose.IDJAGProfile()
	for _, ti := range list {
		if ts.byIssuer[ti.Issuer] != nil {
			return nil, fmt.Errorf("trusted issuer %q is listed twice", ti.Issuer)
		}
		t, err := ts.validate(ti, profile.Algorithms)
		if err != nil {
			return nil, err
		}
		ts.byIssuer[ti.Issuer] = t
	}
	return ts, nil
}

// validate turns a TrustedIssuer into its checked form.
func (ts *trustSet) validate(ti TrustedIssuer, profileAlgs []string) (*trustedIssuer, error) {
	switch {
	case ti.Issuer == "":
		return nil, errors.New("a trusted issuer has no issuer")
	case ti.Keys == nil:
		return nil, fmt.Errorf("trusted issuer %q has no key set", ti.Issuer)
	case strings.Contains(ti.Issuer, "|"):
		return nil, fmt.Errorf("trusted issuer %q contains \"|\"", ti.Issuer)
	case normalizeIssuer(ti.Issuer) == ts.own:
		// decisions.md, cross-domain rule: the AS never redeems
		// ID-JAGs of its own trust domain.
		return nil, fmt.Errorf("trusted issuer %q is this server's own issuer (cross-domain rule)", ti.Issuer)
	}
	algs := ti.Algorithms
	if len(algs) == 0 {
		algs = profileAlgs
	}
	for _, a := range algs {
		if !slices.Contains(profileAlgs, a) {
			return nil, fmt.Errorf("trusted issuer %q: alg %q is not allowed for ID-JAGs (use %s)", ti.Issuer, a, strings.Join(profileAlgs, ", "))
		}
	}
	lt := ti.MaxAssertionLifetime
	if lt == 0 {
		lt = DefaultMaxAssertionLifetime
	}
	if lt < time.Second || lt > MaxAssertionLifetimeCap {
		return nil, fmt.Errorf("trusted issuer %q: maximum assertion lifetime %s must be in [1s, %s]", ti.Issuer, lt, MaxAssertionLifetimeCap)
	}
	subjects := ti.Subjects
	if subjects == nil {
		subjects = DefaultSubject
	}
	return &trustedIssuer{
		issuer:      ti.Issuer,
		keys:        ti.Keys,
		algs:        slices.Clone(algs),
		maxLifetime: lt,
		disabled:    ti.Disabled,
		allowReuse:  ti.AllowReuse,
		subjects:    subjects,
	}, nil
}

// lookup returns the enabled trusted issuer named iss exactly, or nil. The
// own-issuer check repeats New's, so no configuration path can undo it.
// An error means the stored issuers could not be read: the caller fails
// closed with a retryable error.
func (ts *trustSet) lookup(ctx context.Context, iss string) (*trustedIssuer, error) {
	ti := ts.byIssuer[iss]
	if ti == nil && ts.stored != nil {
		var err error
		if ti, err = ts.stored.get(ctx, iss); err != nil {
			return nil, err
		}
	}
	if ti == nil || ti.disabled || normalizeIssuer(iss) == ts.own {
		return nil, nil
	}
	return ti, nil
}

// KeySet implements jose.TrustedIssuers. Unknown, disabled and own issuers
// are all the same rejection: the client learns nothing about the list.
func (ts *trustSet) KeySet(ctx context.Context, iss string) (jose.KeySet, error) {
	ti, err := ts.lookup(ctx, iss)
	if err != nil {
		return nil, err
	}
	if ti == nil {
		return nil, fmt.Errorf("%w: %q is not an enabled trusted issuer", jose.ErrUnknownIssuer, audit.Clip(iss))
	}
	return algFilter{keys: ti.keys, algs: ti.algs}, nil
}

// algFilter narrows an issuer's key set to its alg allowlist. jose.Verify
// requires the key's alg to equal the header's, so refusing the key refuses
// the token's alg for this issuer even though the profile allows it.
type algFilter struct {
	keys jose.KeySet
	algs []string
}

func (f algFilter) Key(ctx context.Context, kid string) (*gojose.JSONWebKey, error) {
	k, err := f.keys.Key(ctx, kid)
	if err != nil {
		return nil, err
	}
	if k == nil || !slices.Contains(f.algs, k.Algorithm) {
		alg := ""
		if k != nil {
			alg = k.Algorithm
		}
		return nil, fmt.Errorf("%w: alg %q of key %q is not allowed for this issuer", jose.ErrAlgorithm, alg, audit.Clip(kid))
	}
	return k, nil
}

// normalizeIssuer folds the spellings of one issuer that decisions.md
// treats as equal when comparing roles: scheme and host case, a default
// port, a trailing slash.
func normalizeIssuer(iss string) string {
	u, err := url.Parse(iss)
	if err != nil || u.Host == "" {
		return strings.TrimSuffix(iss, "/")
	}
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host + strings.TrimSuffix(u.EscapedPath(), "/")
}
