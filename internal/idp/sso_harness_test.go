package idp

import (
	"context"
	"crypto/rand"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openxaa/xaa/internal/directory"
	"github.com/openxaa/xaa/internal/keyring"
	"github.com/openxaa/xaa/internal/oauth"
	"github.com/openxaa/xaa/internal/store"
	"github.com/openxaa/xaa/internal/store/sqlstore"
)

const (
	rp1         = "rp1"
	rp1Secret   = "rp1-secret-0123456789abcdefghijklmnopqrstuvwxyz"
	rp2         = "rp2"
	rp2Secret   = "rp2-secret-0123456789abcdefghijklmnopqrstuvwxyz"
	rpRedirect  = "https://rp.example.com/cb"
	rpLoopback  = "http://127.0.0.1/cb"
	ssoPassword = "correct horse battery staple"
)

type ssoHarness struct {
	t       *testing.T
	db      *sqlstore.DB
	srv     *Server
	hs      *httptest.Server
	issuer  string
	totpKey []byte // bob's TOTP secret
	users   map[string]string
	clock   *testClock // the server's clock
}

// testClock is the wall clock plus an offset a test moves forward, for
// expiries over real HTTP (where testing/synctest's fake clock cannot
// reach: the loopback listener is not durably blocking).
type testClock struct{ offset atomic.Int64 }

func (c *testClock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *testClock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// newSSOHarness runs the IdP over real loopback HTTP on a real SQLite
// store, in DevMode (http issuer; cookies without Secure).
func newSSOHarness(t *testing.T, limit *LoginLimit, opts ...func(*Config)) *ssoHarness {
	t.Helper()
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "xaa.db"), nil)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	hs := httptest.NewUnstartedServer(nil)
	issuer := "http://" + hs.Listener.Addr().String()
	wk := make([]byte, 32)
	_, _ = rand.Read(wk)
	keys, err := keyring.New(ctx, db, keyring.Options{Owner: issuer, WrappingKey: wk, MaxTokenLifetime: time.Hour})
	if err != nil {
		t.Fatalf("keyring: %v", err)
	}
	box, err := keyring.NewSecretBox(wk, directory.TOTPSealPurpose)
	if err != nil {
		t.Fatal(err)
	}
	clock := &testClock{}
	cfg := Config{
		Issuer: issuer, Store: db, Keys: keys, TOTP: box, DevMode: true,
		AuditKey: []byte("0123456789abcdef0123456789abcdef"), LoginLimit: limit, Now: clock.now,
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("idp.New: %v", err)
	}
	hs.Config.Handler = srv.Handler()
	hs.Start()
	t.Cleanup(hs.Close)
	h := &ssoHarness{t: t, db: db, srv: srv, hs: hs, issuer: issuer, users: map[string]string{}, clock: clock}
	h.seed(ctx, box)
	return h
}

func (h *ssoHarness) seed(ctx context.Context, box *keyring.SecretBox) {
	t := h.t
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("seed: %v", err)
		}
	}
	now := time.Now().UTC().Truncate(time.Second)
	for _, c := range []store.Client{
		{Realm: Realm, ID: rp1, AuthMethod: oauth.AuthMethodSecretBasic, SecretDigest: oauth.HashSecret(rp1Secret),
			RedirectURIs: []string{rpRedirect, rpLoopback}, CreatedAt: now},
		{Realm: Realm, ID: rp2, AuthMethod: oauth.AuthMethodSecretBasic, SecretDigest: oauth.HashSecret(rp2Secret),
			RedirectURIs: []string{rpRedirect}, CreatedAt: now},
	} {
		must(h.db.CreateClient(ctx, c))
	}
	hasher, err := directory.NewPasswordHasher(nil)
	must(err)
	hash, err := hasher.HashPassword(ssoPassword)
	must(err)
	must(h.db.CreateGroup(ctx, store.Group{Name: "staff", CreatedAt: now, UpdatedAt: now}))
	for _, u := range []struct {
		name     string
		disabled bool
		totp     bool
	}{{"alice", false, false}, {"bob", false, true}, {"carol", true, false}} {
		id, err := store.NewUserID()
		must(err)
		user := store.User{ID: id, Username: u.name, Email: u.name + "@example.com", DisplayName: strings.ToUpper(u.name[:1]) + u.name[1:],
			PasswordHash: hash, Disabled: u.disabled, CreatedAt: now, UpdatedAt: now}
		if u.totp {
			h.totpKey, err = directory.GenerateTOTPSecret()
			must(err)
			user.TOTPSealed, err = directory.SealTOTPSecret(box, id, h.totpKey)
			must(err)
		}
		must(h.db.CreateUser(ctx, user))
		must(h.db.AddMember(ctx, "staff", id))
		h.users[u.name] = id
	}
}

// browser is a cookie-keeping client that stops at the client's redirect
// URI instead of following it.
func (h *ssoHarness) browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if !strings.HasPrefix(req.URL.String(), h.issuer) {
			return http.ErrUseLastResponse
		}
		return nil
	}}
}

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// page is a response with its body read.
type page struct {
	status int
	header http.Header
	body   string
	url    *url.URL
}

func do(t *testing.T, c *http.Client, req *http.Request) page {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return page{status: resp.StatusCode, header: resp.Header, body: string(b), url: resp.Request.URL}
}

func get(t *testing.T, c *http.Client, u string) page {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return do(t, c, req)
}

func postForm(t *testing.T, c *http.Client, u string, v url.Values) page {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return do(t, c, req)
}

func csrf(t *testing.T, p page) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no CSRF token in page (status %d): %.300s", p.status, p.body)
	}
	return html.UnescapeString(m[1])
}

// login drives the login form for an authorization URL and returns the
// final redirect to the client (its Location).
func (h *ssoHarness) login(t *testing.T, c *http.Client, authURL, user, otp string) *url.URL {
	t.Helper()
	p := get(t, c, authURL)
	if loc := p.header.Get("Location"); loc != "" {
		u, _ := url.Parse(loc)
		return u
	}
	p = postForm(t, c, h.issuer+"/login", url.Values{"csrf_token": {csrf(t, p)}, "username": {user}, "password": {ssoPassword}})
	if otp != "" {
		p = postForm(t, c, h.issuer+"/login", url.Values{"csrf_token": {csrf(t, p)}, "otp": {otp}})
	}
	loc := p.header.Get("Location")
	if p.status != http.StatusSeeOther || loc == "" {
		t.Fatalf("login ended with %d, no redirect: %.300s", p.status, p.body)
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (h *ssoHarness) audit(t *testing.T, typ string) []store.AuditEvent {
	t.Helper()
	evs, err := h.db.ListAudit(t.Context(), store.AuditFilter{Type: typ, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func (h *ssoHarness) tokenCount(t *testing.T) int {
	t.Helper()
	evs, err := h.db.ListAudit(t.Context(), store.AuditFilter{Type: "token.issued", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(evs)
}
