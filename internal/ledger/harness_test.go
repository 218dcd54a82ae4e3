package ledger

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openxaa/xaa/internal/authserver"
	"github.com/openxaa/xaa/internal/jose"
	"github.com/openxaa/xaa/internal/keyring"
	"github.com/openxaa/xaa/internal/store"
	"github.com/openxaa/xaa/internal/store/sqlstore"
	"github.com/openxaa/xaa/internal/store/storetest"
)

// The test world: an IdP (only its issuer and signing key), one
// authorization server on loopback (the real one, sharing the database,
// as `xaa serve` runs them), a second one nobody serves, a resource on
// each, an app holding a client_id at both, and alice in staff.
const (
	idpIssuer = "https://idp.example.com"
	deadAS    = "https://dead-as.example.com"
	deadRes   = "https://dead.example.com/mcp"
	app       = "assistant"
	appAtAS   = "assistant-at-as"
	appAtDead = "assistant-at-dead"
	gwClient  = "gw-files"
	staff     = "staff"
	aliceName = "alice"
	aliceID   = "u_alice"
)

type harness struct {
	t        testing.TB
	db       *sqlstore.DB
	svc      *Service
	del      *Deliverer
	as       *authserver.Server
	asIssuer string
	resource string
	signer   *jose.LocalSigner
	clock    *clock
	// receiver decides the answer of the SET endpoint; nil serves it.
	receiver atomic.Pointer[func(w http.ResponseWriter, r *http.Request) bool]
	notified atomic.Int64
	srv      *httptest.Server
}

// clock is a settable clock for the ledger and the deliverer.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type keys struct{ s jose.Signer }

func (k keys) Signer() jose.Signer { return k.s }

type harnessOptions struct{ postgres bool }

func newHarness(t testing.TB, o *harnessOptions) *harness {
	t.Helper()
	ctx := context.Background()
	url := "sqlite:" + filepath.Join(t.TempDir(), "xaa.db")
	if o != nil && o.postgres {
		url = storetest.PostgresURL(t)
	}
	db, err := sqlstore.Open(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, err := jose.NewLocalSigner(k, jose.ES256)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, db: db, signer: signer, clock: &clock{t: time.Now().UTC().Truncate(time.Millisecond)}}

	// The authorization server, mounted once its URL is known.
	var inner atomic.Pointer[http.Handler]
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/set" {
			if f := h.receiver.Load(); f != nil && (*f)(w, r) {
				return
			}
		}
		(*inner.Load()).ServeHTTP(w, r)
	}))
	t.Cleanup(h.srv.Close)
	h.asIssuer, h.resource = h.srv.URL, h.srv.URL+"/mcp"
	wk := make([]byte, 32)
	_, _ = rand.Read(wk)
	asKeys, err := keyring.New(ctx, db, keyring.Options{Owner: h.asIssuer, WrappingKey: wk, MaxTokenLifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	idpKeys, err := jose.NewStaticKeySet(jose.PublicJWKS(signer.PublicKey()))
	if err != nil {
		t.Fatal(err)
	}
	gwSecret := sha256.Sum256([]byte("gw-secret"))
	if err := db.CreateClient(ctx, store.Client{ID: gwClient, Realm: h.asIssuer, AuthMethod: "client_secret_basic", SecretDigest: gwSecret[:], CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	h.as, err = authserver.New(authserver.Config{
		Issuer: h.asIssuer, Store: db, Keys: asKeys, DevMode: true,
		TrustedIssuers: []authserver.TrustedIssuer{{Issuer: idpIssuer, Keys: idpKeys}},
		Resources:      []authserver.Resource{{URI: h.resource, Scopes: []string{"files:read", "files:write"}}},
		Clients: map[string]authserver.ClientPolicy{
			appAtAS:  {Resources: []string{h.resource}},
			gwClient: {Resources: []string{h.resource}},
		},
		AuditKey: []byte("0123456789abcdef0123456789abcdef"),
		Now:      h.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	handler := h.as.Handler()
	inner.Store(&handler)

	h.seed(ctx)
	h.svc, err = New(&Options{Store: db, Now: h.clock.Now, Notify: func() { h.notified.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	h.del, err = NewDeliverer(&DelivererOptions{
		Store: db, Issuer: idpIssuer, Keys: keys{signer}, HTTPClient: h.srv.Client(), AllowLoopbackHTTP: true,
		Now: h.clock.Now, MinBackoff: time.Second, MaxBackoff: 8 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) seed(ctx context.Context) {
	must := func(err error) {
		h.t.Helper()
		if err != nil {
			h.t.Fatal(err)
		}
	}
	now := time.Now().UTC()
	secret := sha256.Sum256([]byte("app-secret"))
	must(h.db.CreateClient(ctx, store.Client{ID: app, Name: "Assistant", Realm: store.RealmIdP, AuthMethod: "client_secret_basic",
		SecretDigest: secret[:], CreatedAt: now}))
	must(h.db.CreateClient(ctx, store.Client{ID: "other-app", Name: "Other", Realm: store.RealmIdP, AuthMethod: "client_secret_basic",
		SecretDigest: secret[:], CreatedAt: now}))
	must(h.db.CreateGroup(ctx, store.Group{Name: staff, CreatedAt: now, UpdatedAt: now}))
	must(h.db.CreateGroup(ctx, store.Group{Name: "eng", CreatedAt: now, UpdatedAt: now}))
	must(h.db.CreateUser(ctx, store.User{ID: aliceID, Username: aliceName, CreatedAt: now, UpdatedAt: now}))
	must(h.db.CreateUser(ctx, store.User{ID: "u_bob", Username: "bob", CreatedAt: now, UpdatedAt: now}))
	must(h.db.AddMember(ctx, staff, aliceID))
	must(h.db.AddMember(ctx, "eng", aliceID))
	must(h.db.CreateAuthServer(ctx, store.AuthServer{Issuer: h.asIssuer, Name: "AS", ClientIDs: map[string]string{app: appAtAS}, CreatedAt: now, UpdatedAt: now}))
	must(h.db.CreateAuthServer(ctx, store.AuthServer{Issuer: deadAS, Name: "Dead AS", ClientIDs: map[string]string{app: appAtDead}, CreatedAt: now, UpdatedAt: now}))
	scopes := []store.ResourceScope{{Name: "files:read"}, {Name: "files:write"}}
	must(h.db.CreateResource(ctx, store.Resource{URI: h.resource, Name: "Files", AuthServerIssuer: h.asIssuer, Scopes: scopes, CreatedAt: now, UpdatedAt: now}))
	must(h.db.CreateResource(ctx, store.Resource{URI: deadRes, Name: "Dead", AuthServerIssuer: deadAS, Scopes: scopes, CreatedAt: now, UpdatedAt: now}))
}

var (
	carol = Actor{ID: "carol", Kind: ActorHuman}
	dana  = Actor{ID: "dana", Kind: ActorHuman}
	cli   = Actor{ID: "root", Kind: ActorCLI}
)

// request asks for the app's connection to resource with staff reading.
func (h *harness) request(resource string) Entry {
	h.t.Helper()
	e, err := h.svc.Request(context.Background(), dana, RequestInput{
		App: app, Resource: resource, Justification: "the assistant reads team files",
		GroupScopes: []store.GroupScopes{{Group: staff, Scopes: []string{"files:read"}}},
	})
	if err != nil {
		h.t.Fatalf("Request: %v", err)
	}
	return e
}

// approved is a connection requested by dana and approved by carol.
func (h *harness) approved(resource string) Entry {
	h.t.Helper()
	e := h.request(resource)
	e, err := h.svc.Approve(context.Background(), carol, e.ID, "looks fine")
	if err != nil {
		h.t.Fatalf("Approve: %v", err)
	}
	return e
}

func (h *harness) sets(f store.SETFilter) []store.SETDelivery {
	h.t.Helper()
	ds, err := h.db.ListSETs(context.Background(), f)
	if err != nil {
		h.t.Fatal(err)
	}
	return ds
}

func (h *harness) audit(typ string) []store.AuditEvent {
	h.t.Helper()
	evs, err := h.db.ListAudit(context.Background(), store.AuditFilter{Type: typ, Limit: 1000})
	if err != nil {
		h.t.Fatal(err)
	}
	return evs
}

func (h *harness) fence(clientID, sub string) time.Time {
	h.t.Helper()
	nb, err := h.db.FenceNotBefore(context.Background(), h.asIssuer, clientID, sub)
	if err != nil {
		h.t.Fatal(err)
	}
	return nb
}
