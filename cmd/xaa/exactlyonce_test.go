package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver

	"github.com/openxaa/xaa/idjag"
	"github.com/openxaa/xaa/internal/authserver"
	"github.com/openxaa/xaa/internal/jose"
	"github.com/openxaa/xaa/internal/store"
	"github.com/openxaa/xaa/internal/store/storetest"
)

// exactlyOnceChildEnv names the config the serve child of
// TestExactlyOnceAcrossInstances runs with.
const exactlyOnceChildEnv = "XAA_EXACTLYONCE_CHILD_CONFIG"

const (
	eoIDJAGs        = 1000
	eoPresentations = 8
	eoWorkers       = 16
	// eoClientID is the one client presenting every ID-JAG. The instances
	// run with token_rate_limit disabled, so the run measures replay
	// protection, never the rate limiter, however fast it goes.
	eoClientID   = "eo-client"
	eoIdPIssuer  = "https://idp.exactly-once.example"
	eoASIssuer   = "http://127.0.0.1/as" // both instances, on different ports
	eoResource   = "https://mcp.example.com/files"
	eoClientPass = "exactly-once-secret-0123456789abcdefghij"
)

// TestExactlyOnceAcrossInstances: two authorization-server processes share
// nothing but one PostgreSQL database. 1,000 distinct ID-JAGs are each
// presented 8 times at once, 4 times to each instance; exactly one
// presentation of each succeeds, the other 7,000 get invalid_grant, and
// the database holds exactly 1,000 issued access tokens and 1,000
// "accesstoken.issued" audit records. A replay cache that fell back to
// per-process memory would let one presentation per instance through.
func TestExactlyOnceAcrossInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns two server processes and makes 8,000 requests")
	}
	dbURL := storetest.PostgresURL(t) // skips, or fails under XAA_CI=1, without PostgreSQL

	// The test is the trusted IdP: it holds the signing key and serves the
	// public half on loopback (dev mode allows an http jwks_uri there).
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	idpSigner, err := jose.NewLocalSigner(key, jose.ES256)
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := json.Marshal(jose.PublicJWKS(idpSigner.PublicKey()))
	if err != nil {
		t.Fatal(err)
	}
	jwksSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks)
	}))
	defer jwksSrv.Close()

	cfg := eoDeployment(t, dbURL, jwksSrv.URL+"/jwks.json")
	if out, _, err := runXAA(t, nil, "migrate", "--config", cfg); err != nil {
		t.Fatalf("migrate = %q, %v", out, err)
	}
	// One after the other: the first creates the signing keys, the second
	// loads them, as a rolling deployment would.
	bases := []string{startServeChild(t, cfg), startServeChild(t, cfg)}

	// Mint every ID-JAG before the first request, so the presentations
	// of one ID-JAG race each other rather than the minting.
	now := time.Now()
	jags := make([]string, eoIDJAGs)
	for i := range jags {
		jags[i], err = idpSigner.Sign(t.Context(), idjag.JWTType, idjag.Claims{
			Issuer:   eoIdPIssuer,
			Subject:  fmt.Sprintf("user-%d", i),
			Audience: eoASIssuer,
			ClientID: eoClientID,
			JWTID:    fmt.Sprintf("eo-%d-%s", i, rand.Text()),
			IssuedAt: now.Unix(),
			Expiry:   now.Add(300 * time.Second).Unix(),
			Resource: eoResource,
			Scope:    "files:read",
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	// One keep-alive HTTP client with a connection per worker and host.
	// Idle connections are dropped well before the server's 60 s idle
	// timeout, so a POST never goes out on a connection the server is
	// closing.
	tr := &http.Transport{MaxIdleConnsPerHost: eoWorkers, IdleConnTimeout: 10 * time.Second}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	type job struct{ jag, n int }
	type outcome struct {
		jag    int
		status int
		errorC string
		token  bool
		took   time.Duration
		err    error
	}
	// The 8 presentations of an ID-JAG are queued next to each other and
	// alternate between the instances, so the workers send them at once.
	jobs := make(chan job)
	results := make(chan outcome, eoWorkers)
	var wg sync.WaitGroup
	start := time.Now()
	for range eoWorkers {
		wg.Go(func() {
			for j := range jobs {
				o := outcome{jag: j.jag}
				t0 := time.Now()
				o.status, o.errorC, o.token, o.err = eoRedeem(t.Context(), client, bases[j.n%2], jags[j.jag])
				o.took = time.Since(t0)
				results <- o
			}
		})
	}
	go func() {
		for i := range eoIDJAGs {
			for n := range eoPresentations {
				jobs <- job{i, n}
			}
		}
		close(jobs)
		wg.Wait()
		close(results)
	}()

	successes, replays := 0, 0
	perJAG := make([]int, eoIDJAGs)
	unexpected := map[string]int{}
	var slowest time.Duration
	for o := range results {
		slowest = max(slowest, o.took)
		switch {
		case o.err != nil:
			unexpected["transport error: "+o.err.Error()]++
		case o.status == http.StatusOK && o.token:
			successes++
			perJAG[o.jag]++
		case o.status == http.StatusBadRequest && o.errorC == "invalid_grant":
			replays++
		default:
			unexpected[fmt.Sprintf("%d %q (token %v)", o.status, o.errorC, o.token)]++
		}
	}
	t.Logf("%d presentations to 2 instances in %s; slowest %s", eoIDJAGs*eoPresentations, time.Since(start).Round(time.Millisecond), slowest.Round(time.Millisecond))
	if len(unexpected) > 0 {
		t.Errorf("unexpected responses: %v", unexpected)
	}
	if successes != eoIDJAGs || replays != eoIDJAGs*(eoPresentations-1) {
		t.Errorf("%d successes and %d invalid_grant; want %d and %d", successes, replays, eoIDJAGs, eoIDJAGs*(eoPresentations-1))
	}
	for i, n := range perJAG {
		if n != 1 {
			t.Errorf("ID-JAG %d was redeemed %d times, want exactly once", i, n)
		}
	}

	// What the database holds, read directly rather than through the store.
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	count := func(query string, args ...any) int {
		t.Helper()
		var n int
		if err := db.QueryRowContext(t.Context(), query, args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		return n
	}
	if n := count(`SELECT count(*) FROM tokens WHERE issuer = $1 AND kind = $2`, eoASIssuer, store.TokenKindAccessToken); n != eoIDJAGs {
		t.Errorf("issued access-token rows = %d, want %d", n, eoIDJAGs)
	}
	if n := count(`SELECT count(DISTINCT parent_jti) FROM tokens WHERE issuer = $1 AND kind = $2`, eoASIssuer, store.TokenKindAccessToken); n != eoIDJAGs {
		t.Errorf("access tokens come from %d distinct ID-JAGs, want %d", n, eoIDJAGs)
	}
	if n := count(`SELECT count(*) FROM audit_events WHERE type = $1`, authserver.AuditAccessTokenIssued); n != eoIDJAGs {
		t.Errorf("%q audit records = %d, want %d", authserver.AuditAccessTokenIssued, n, eoIDJAGs)
	}
}

// eoRedeem presents one ID-JAG with client_secret_basic and reports the
// status, the OAuth error code and whether an access token came back.
func eoRedeem(ctx context.Context, c *http.Client, base, jag string) (status int, errCode string, token bool, err error) {
	form := url.Values{"grant_type": {idjag.GrantTypeJWTBearer}, "assertion": {jag}, "resource": {eoResource}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/as/token", strings.NewReader(form.Encode()))
	if err != nil {
		return 0, "", false, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(eoClientID), url.QueryEscape(eoClientPass))
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", false, err
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return resp.StatusCode, "", false, fmt.Errorf("status %d, body not JSON: %w", resp.StatusCode, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, body.Error, body.AccessToken != "", nil
}

// eoDeployment writes a config for the authorization-server role alone on
// the PostgreSQL database at dbURL, trusting the test IdP, with the one
// client and token rate limits off; both instances run from it.
func eoDeployment(t *testing.T, dbURL, jwksURI string) string {
	t.Helper()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "wrapping.key")
	if _, _, err := runXAA(t, nil, "keys", "init", "--out", keyFile); err != nil {
		t.Fatalf("keys init: %v", err)
	}
	cfg := fmt.Sprintf(`database:
  url: %q
keys:
  wrapping_key_file: %s
  max_token_lifetime: 10m
log:
  level: error
listen:
  addr: "127.0.0.1:0"
  admin_addr: "127.0.0.1:0"
issuers:
  authserver: %q
dev_mode: true
authserver:
  trusted_issuers:
    - issuer: %q
      jwks_uri: %q
      algorithms: [ES256]
  resources:
    - uri: %q
      scopes: [files:read, files:write]
      access_token_lifetime: 5m
  clients:
    - client_id: %s
      auth_method: client_secret_basic
      client_secret_sha256: %q
      resources: [%q]
      scopes: [files:read]
token_rate_limit:
  disabled: true
`, dbURL, keyFile, eoASIssuer, eoIdPIssuer, jwksURI, eoResource, eoClientID, sha256Hex(eoClientPass), eoResource)
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startServeChild runs `xaa serve --authserver` on cfg in a child process
// (this test binary, re-entered through TestExactlyOnceServeChild), waits
// until it is healthy and returns its base URL. It is interrupted and
// waited for when the test ends.
func startServeChild(t *testing.T, cfg string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestExactlyOnceServeChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), exactlyOnceChildEnv+"="+cfg)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("serve child: %v; stderr:\n%s", err, stderr.String())
			}
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("serve child did not shut down on SIGINT; stderr:\n%s", stderr.String())
		}
	})

	announced := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			if base, ok := strings.CutPrefix(sc.Text(), "serving on "); ok && !sent {
				announced <- base
				sent = true
			}
		}
		close(announced)
	}()
	select {
	case base, ok := <-announced:
		if !ok {
			t.Fatalf("serve child exited without serving; stderr:\n%s", stderr.String())
		}
		waitHealthy(t, base+"/healthz")
		return base
	case <-time.After(60 * time.Second):
		t.Fatalf("serve child did not announce its address; stderr:\n%s", stderr.String())
		return ""
	}
}

// TestExactlyOnceServeChild is the server process TestExactlyOnceAcrossInstances
// starts twice; it serves until interrupted.
func TestExactlyOnceServeChild(t *testing.T) {
	cfg := os.Getenv(exactlyOnceChildEnv)
	if cfg == "" {
		t.Skip("run by TestExactlyOnceAcrossInstances only")
	}
	// Bounded in case the parent dies without interrupting it.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	err := run(ctx, []string{"xaa", "serve", "--authserver", "--config", cfg}, func(string) string { return "" }, strings.NewReader(""), os.Stdout, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
}
