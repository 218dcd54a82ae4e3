package admin

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openxaa/xaa/internal/directory"
	"github.com/openxaa/xaa/internal/httpserver"
	"github.com/openxaa/xaa/internal/idp"
	"github.com/openxaa/xaa/internal/keyring"
	"github.com/openxaa/xaa/internal/ledger"
	"github.com/openxaa/xaa/internal/oauth"
	"github.com/openxaa/xaa/internal/store"
	"github.com/openxaa/xaa/internal/store/sqlstore"
	"github.com/openxaa/xaa/internal/store/storetest"
)

// The harness runs the real IdP and the admin API on one loopback HTTP
// server (the IdP at the root, the admin API under /admin, as `xaa serve`
// mounts them) over a real SQLite or PostgreSQL database, seeded with a
// small organisation.

const (
	adminClientID     = "xaa-admin"
	adminClientSecret = "admin-console-secret-0123456789abcdefghijklmnop"
	password          = "correct horse battery staple"
	resourceURI       = "https://mcp.example.com/files"
	asIssuer          = "https://as.example.com"
)

type harness struct {
	t      *testing.T
	dbURL  string
	db     *sqlstore.DB
	admin  *Server
	hs     *httptest.Server
	issuer string // the IdP, at the server's root
	base   string // the admin API's base URL
	users  map[string]string
	tokens map[Role]string
	conns  map[string]string // name -> connection id
	raw    *sql.DB           // a second connection for snapshots
}

// harnessOptions tweak the admin API's options before New.
type harnessOption func(*Options)

func sqliteURL(t *testing.T) string {
	return (&url.URL{Scheme: "sqlite", Path: filepath.Join(t.TempDir(), "xaa.db")}).String()
}

func newHarness(t *testing.T, dbURL string, opts ...harnessOption) *harness {
	t.Helper()
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, dbURL, nil)
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
	idpSrv, err := idp.New(idp.Config{Issuer: issuer, Store: db, Keys: keys, TOTP: box, DevMode: true,
		AuditKey: bytes.Repeat([]byte("k"), 32)})
	if err != nil {
		t.Fatalf("idp.New: %v", err)
	}
	h := &harness{t: t, dbURL: dbURL, db: db, hs: hs, issuer: issuer, base: issuer + "/admin",
		users: map[string]string{}, tokens: map[Role]string{}, conns: map[string]string{}}
	led, err := ledger.New(&ledger.Options{Store: db})
	if err != nil {
		t.Fatal(err)
	}
	cursorKey, _ := keyring.DeriveKey(wk, "admin cursor mac")
	sessionKey, _ := keyring.DeriveKey(wk, "admin session")
	o := &Options{
		URL: h.base, Store: db, Ledger: led, DevMode: true, CursorKey: cursorKey, SessionKey: sessionKey,
		GroupRoles: map[string]Role{"xaa-admins": RoleAdmin, "xaa-approvers": RoleApprover, "xaa-auditors": RoleAuditor, "xaa-viewers": RoleViewer},
		Login:      &LoginOptions{Issuer: issuer, ClientID: adminClientID, ClientSecret: adminClientSecret, Keys: keys.KeySet()},
	}
	for _, f := range opts {
		f(o)
	}
	if h.admin, err = New(o); err != nil {
		t.Fatalf("admin.New: %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", idpSrv.Handler())
	mux.Handle(h.admin.BasePath()+"/", h.admin.Handler())
	hs.Config.Handler = httpserver.RequestID(mux)
	hs.Start()
	t.Cleanup(hs.Close)
	h.seed(ctx)
	return h
}

func (h *harness) seed(ctx context.Context) {
	t := h.t
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("seed: %v", err)
		}
	}
	now := time.Now().UTC().Truncate(time.Second)
	for _, c := range []store.Client{
		{Realm: store.RealmIdP, ID: adminClientID, Name: "Admin console", AuthMethod: oauth.AuthMethodSecretBasic,
			SecretDigest: oauth.HashSecret(adminClientSecret), RedirectURIs: []string{h.admin.RedirectURI()}, CreatedAt: now},
		{Realm: store.RealmIdP, ID: "assistant", Name: "Assistant", AuthMethod: oauth.AuthMethodSecretBasic,
			SecretDigest: oauth.HashSecret("assistant-secret"), RedirectURIs: []string{"http://127.0.0.1/cb"}, CreatedAt: now},
		{Realm: store.RealmIdP, ID: "agent", Name: "Agent", AuthMethod: oauth.AuthMethodSecretBasic,
			SecretDigest: oauth.HashSecret("agent-secret"), RedirectURIs: []string{"http://127.0.0.1/cb"}, CreatedAt: now.Add(time.Second)},
	} {
		must(h.db.CreateClient(ctx, c))
	}
	hasher, err := directory.NewPasswordHasher(nil)
	must(err)
	hash, err := hasher.HashPassword(password)
	must(err)
	for _, g := range []string{"staff", "eng", "xaa-admins", "xaa-approvers", "xaa-auditors", "xaa-viewers"} {
		must(h.db.CreateGroup(ctx, store.Group{Name: g, Description: "the " + g, CreatedAt: now, UpdatedAt: now}))
	}
	for i, u := range []struct {
		name     string
		groups   []string
		disabled bool
	}{
		{"alice", []string{"staff", "xaa-admins"}, false},
		{"amos", []string{"staff", "xaa-approvers"}, false},
		{"audrey", []string{"staff", "xaa-auditors"}, false},
		{"victor", []string{"staff", "xaa-viewers"}, false},
		{"eve", []string{"staff", "eng"}, false},
		{"dave", []string{"staff", "xaa-admins"}, true},
	} {
		id, err := store.NewUserID()
		must(err)
		at := now.Add(time.Duration(i) * time.Second)
		must(h.db.CreateUser(ctx, store.User{ID: id, Username: u.name, Email: u.name + "@example.com", PasswordHash: hash,
			Disabled: u.disabled, CreatedAt: at, UpdatedAt: at}))
		for _, g := range u.groups {
			must(h.db.AddMember(ctx, g, id))
		}
		h.users[u.name] = id
	}
	must(h.db.CreateAuthServer(ctx, store.AuthServer{Issuer: asIssuer, Name: "AS",
		ClientIDs: map[string]string{"assistant": "assistant-at-as", "agent": "agent-at-as"}, CreatedAt: now, UpdatedAt: now}))
	for _, uri := range []string{resourceURI, "https://mcp.example.com/crm"} {
		must(h.db.CreateResource(ctx, store.Resource{URI: uri, Name: uri[strings.LastIndex(uri, "/")+1:], AuthServerIssuer: asIssuer,
			Scopes: []store.ResourceScope{{Name: "read", Description: "read"}, {Name: "write", Sensitive: true}}, CreatedAt: now, UpdatedAt: now}))
	}
	for _, c := range []struct {
		name, app, resource string
		status              store.ConnectionStatus
	}{
		{"approved", "assistant", resourceURI, store.ConnectionApproved},
		{"pending", "agent", resourceURI, store.ConnectionPending},
		{"crm", "assistant", "https://mcp.example.com/crm", store.ConnectionApproved},
		{"pending-crm", "agent", "https://mcp.example.com/crm", store.ConnectionPending},
	} {
		id, err := store.NewConnectionID()
		must(err)
		conn := store.Connection{ID: id, AppID: c.app, ResourceURI: c.resource, Status: c.status,
			GroupScopes:   []store.GroupScopes{{Group: "staff", Scopes: []string{"read"}}},
			IDJAGLifetime: store.DefaultIDJAGLifetime, AccessTokenLifetime: store.DefaultAccessTokenLifetime,
			Justification: "needed", CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(90 * 24 * time.Hour)}
		if c.status == store.ConnectionApproved {
			conn.Approver = "security@example.com"
		}
		must(h.db.CreateConnection(ctx, conn))
		h.conns[c.name] = id
	}
	for _, r := range Roles {
		tok, err := CreateToken(ctx, h.db, TokenRequest{Role: r, TTL: 30 * time.Minute, Description: "test " + string(r),
			Actor: "cli:test", ActorKind: "cli"})
		must(err)
		h.tokens[r] = tok.Value
	}
}

// answer is one HTTP exchange's result.
type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("answer %d is not a JSON object: %.300s", a.status, a.body)
	}
	return m
}

// do sends a request to the admin API (path relative to the base).
func (h *harness) do(c *http.Client, method, path string, body string, hdr map[string]string) answer {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.base+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	if c == nil {
		c = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

// as sends a request with role's admin token.
func (h *harness) as(r Role, method, path, body string) answer {
	h.t.Helper()
	return h.do(nil, method, path, body, map[string]string{"Authorization": "Bearer " + h.tokens[r]})
}

// browser is a cookie-keeping client that follows redirects, as a
// browser does.
func newBrowser(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 10 * time.Second}
}

var csrfField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// signIn signs username in at the admin API through the IdP's real login
// form and returns the browser and the answer of the callback page.
func (h *harness) signIn(username string) (*http.Client, answer) {
	h.t.Helper()
	b := newBrowser(h.t)
	a := h.do(b, http.MethodGet, "/auth/login", "", nil)
	m := csrfField.FindSubmatch(a.body)
	if a.status != http.StatusOK || m == nil {
		h.t.Fatalf("GET /auth/login ended with %d and no IdP login form: %.300s", a.status, a.body)
	}
	form := url.Values{"csrf_token": {html.UnescapeString(string(m[1]))}, "username": {username}, "password": {password}}
	req, _ := http.NewRequest(http.MethodPost, h.issuer+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := b.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return b, answer{status: resp.StatusCode, header: resp.Header, body: body}
}

// --- database snapshots ---

// snapshot returns every row of every table except the audit trail's,
// and the audit records separately, so a test can prove a refused
// request changed nothing.
type snapshot struct {
	tables map[string][]string
	audit  []string
}

func (h *harness) snapshot() snapshot {
	h.t.Helper()
	driver, dsn := "pgx", h.dbURL
	if strings.HasPrefix(h.dbURL, "sqlite:") {
		u, _ := url.Parse(h.dbURL)
		driver, dsn = "sqlite", "file:"+u.Path+"?mode=ro"
	}
	if h.raw == nil {
		db, err := sql.Open(driver, dsn)
		if err != nil {
			h.t.Fatal(err)
		}
		h.t.Cleanup(func() { _ = db.Close() })
		h.raw = db
	}
	db := h.raw
	listSQL := `SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`
	if driver == "pgx" {
		listSQL = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY table_name`
	}
	names := queryStrings(h.t, db, listSQL)
	s := snapshot{tables: map[string][]string{}}
	for _, n := range names {
		n = strings.TrimSuffix(n, "|")
		// Table names come from the catalog, never from input.
		rows := queryStrings(h.t, db, `SELECT * FROM `+n)
		slices.Sort(rows)
		switch n {
		case "audit_events":
			s.audit = rows
		case "audit_heads":
		default:
			s.tables[n] = rows
		}
	}
	return s
}

func queryStrings(t *testing.T, db *sql.DB, q string) []string {
	t.Helper()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, v := range vals {
			if bs, ok := v.([]byte); ok {
				v = hex.EncodeToString(bs)
			}
			fmt.Fprintf(&b, "%v|", v)
		}
		out = append(out, b.String())
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// unchanged fails unless every table except the audit trail equals before,
// and the audit trail gained exactly wantAudit records.
func (h *harness) unchanged(what string, before snapshot, wantAudit int) {
	h.t.Helper()
	after := h.snapshot()
	for n, rows := range before.tables {
		if !slices.Equal(rows, after.tables[n]) {
			h.t.Errorf("%s changed table %s:\nbefore %q\nafter  %q", what, n, rows, after.tables[n])
		}
	}
	if got := len(after.audit) - len(before.audit); got != wantAudit {
		h.t.Errorf("%s added %d audit records, want %d", what, got, wantAudit)
	}
}

func postgresURL(t *testing.T) string { return storetest.PostgresURL(t) }
