package main

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strconv"
	"sync"
	"time"

	gojose "github.com/go-jose/go-jose/v4"

	"github.com/openxaa/xaa/idjag"
)

// assertionSpec is what every minted assertion says; only sub (one of
// Subjects) and jti (unique) vary from one to the next.
type assertionSpec struct {
	Issuer    string
	Audience  string
	ClientID  string // the client_id claim (an ID-JAG carries it; others ignore it)
	SubPrefix string // sub is SubPrefix + (i mod Subjects)
	Subjects  int
	Resource  string // resource claim, omitted when empty
	Scope     string // scope claim, omitted when empty
	Type      string // JWS typ header, omitted when empty
	Lifetime  time.Duration
}

// minter signs assertions. jti is a per-minter random prefix plus the
// request's sequence number, so no two requests of one run, nor of two
// runs, share a jti.
type minter struct {
	spec   assertionSpec
	signer gojose.Signer
	prefix string
	form   url.Values // grant_type and the extra parameters; assertion is added per request
	now    func() time.Time
}

func newMinter(k *signingKey, spec assertionSpec, params url.Values) (*minter, error) {
	if spec.Issuer == "" || spec.Audience == "" {
		return nil, errors.New("the assertion needs an issuer and an audience")
	}
	if spec.Subjects < 1 {
		return nil, errors.New("subjects must be at least 1")
	}
	if spec.Lifetime <= 0 {
		return nil, errors.New("lifetime must be positive")
	}
	opts := (&gojose.SignerOptions{}).WithHeader(gojose.HeaderKey("kid"), k.kid)
	if spec.Type != "" {
		opts = opts.WithType(gojose.ContentType(spec.Type))
	}
	signer, err := gojose.NewSigner(gojose.SigningKey{Algorithm: k.alg, Key: k.key}, opts)
	if err != nil {
		return nil, err
	}
	form := url.Values{}
	for name, vals := range params {
		form[name] = append([]string(nil), vals...)
	}
	form.Set("grant_type", idjag.GrantTypeJWTBearer)
	return &minter{spec: spec, signer: signer, prefix: "bench-" + rand.Text() + "-", form: form, now: time.Now}, nil
}

// assertion signs the i-th assertion, issued now.
func (m *minter) assertion(i int) (string, error) {
	now := m.now()
	payload, err := json.Marshal(idjag.Claims{
		Issuer:   m.spec.Issuer,
		Subject:  m.spec.SubPrefix + strconv.Itoa(i%m.spec.Subjects),
		Audience: m.spec.Audience,
		ClientID: m.spec.ClientID,
		JWTID:    m.prefix + strconv.Itoa(i),
		IssuedAt: now.Unix(),
		Expiry:   now.Add(m.spec.Lifetime).Unix(),
		Resource: m.spec.Resource,
		Scope:    m.spec.Scope,
	})
	if err != nil {
		return "", err
	}
	obj, err := m.signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return obj.CompactSerialize()
}

// body is the i-th token request's form body.
func (m *minter) body(i int) (string, error) {
	a, err := m.assertion(i)
	if err != nil {
		return "", err
	}
	// Encode sorts the keys; the copy keeps m.form shared and unchanged.
	f := make(url.Values, len(m.form)+1)
	for k, v := range m.form {
		f[k] = v
	}
	f["assertion"] = []string{a}
	return f.Encode(), nil
}

// bodies mints bodies first..first+n-1 on every core, before any load is
// sent, so the signing does not compete with the server for CPU.
func (m *minter) bodies(first, n int) ([]string, error) {
	out := make([]string, n)
	workers := min(runtime.GOMAXPROCS(0), max(n, 1))
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs error
	)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				b, err := m.body(first + i)
				if err != nil {
					mu.Lock()
					errs = errors.Join(errs, fmt.Errorf("mint %d: %w", first+i, err))
					mu.Unlock()
					return
				}
				out[i] = b
			}
		})
	}
	wg.Wait()
	return out, errs
}
