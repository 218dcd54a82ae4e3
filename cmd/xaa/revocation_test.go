package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/openxaa/xaa/idjag"
	"github.com/openxaa/xaa/internal/config"
	"github.com/openxaa/xaa/internal/ledger"
	"github.com/openxaa/xaa/internal/store"
	"github.com/openxaa/xaa/internal/store/sqlstore"
	"github.com/openxaa/xaa/internal/testenv"
)

const (
	revAppSecret   = "rev-app-secret-0123456789abcdefghijklmnop"
	revASSecret    = "rev-as-secret-0123456789abcdefghijklmnopq"
	revGWSecret    = "rev-gw-secret-0123456789abcdefghijklmnopq"
	revPassword    = "alice-rev-password-correct-horse"
	revRedirectURI = "http://127.0.0.1/cb"
)

// revWorld is one deployment for revocation tests: an IdP, an
// authorization server and (optionally) a gateway in one `xaa serve`, with
// apps app0..appN-1 that have no connection yet, alice in staff, and one
// resource behind the gateway.
type revWorld struct {
	cfgPath, idp, as, resource string
	apps                       []string
	db                         *sqlstore.DB
	svc                        *ledger.Service
}

func revAtAS(app string) string { return app + "-at-as" }

// revXAA runs the binary in-process, for tests and benchmarks alike.
func revXAA(tb testing.TB, args ...string) (string, error) {
	var out, errOut syncBuffer
	err := run(tb.Context(), append([]string{"xaa"}, args...), func(string) string { return "" }, strings.NewReader(""), &out, &errOut)
	if err != nil {
		return out.String(), fmt.Errorf("%w\n%s", err, errOut.String())
	}
	return out.String(), nil
}

// newRevWorld writes a wrapping key, the config and the seed, and
// migrates the database; upstream "" means no gateway.
func newRevWorld(tb testing.TB, apps int, upstream string, poll time.Duration) *revWorld {
	tb.Helper()
	t := tb
	port := testenv.FreeLoopbackPort(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "wrapping.key")
	if _, err := revXAA(t, "keys", "init", "--out", keyFile); err != nil {
		t.Fatalf("keys init: %v", err)
	}
	path := filepath.Join(dir, "config.yaml")
	w := &revWorld{cfgPath: path,
		idp:      fmt.Sprintf("http://127.0.0.1:%d/idp", port),
		as:       fmt.Sprintf("http://127.0.0.1:%d/as", port),
		resource: fmt.Sprintf("http://127.0.0.1:%d/mcp/files", port),
	}
	var seedApps, clientIDs, asClients strings.Builder
	for i := range apps {
		app := fmt.Sprintf("app%d", i)
		w.apps = append(w.apps, app)
		fmt.Fprintf(&seedApps, "  - client_id: %s\n    name: App %d\n    auth_method: client_secret_basic\n    client_secret: %q\n    redirect_uris: [%q]\n",
			app, i, revAppSecret, revRedirectURI)
		fmt.Fprintf(&clientIDs, "      %s: %s\n", app, revAtAS(app))
		fmt.Fprintf(&asClients, "    - client_id: %s\n      auth_method: client_secret_basic\n      client_secret_sha256: %q\n      resources: [%q]\n",
			revAtAS(app), sha256Hex(revASSecret), w.resource)
	}
	seed := fmt.Sprintf(`groups:
  - name: staff
users:
  - username: alice
    email: alice@example.com
    password: %q
    groups: [staff]
apps:
%sauth_servers:
  - issuer: %q
    name: Files authorization server
    client_ids:
%sresources:
  - uri: %q
    name: Files
    auth_server: %q
    scopes:
      - name: files:read
`, revPassword, seedApps.String(), w.as, clientIDs.String(), w.resource, w.as)
	seedPath := filepath.Join(dir, "seed.yaml")
	if err := os.WriteFile(seedPath, []byte(seed), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`database:
  url: "sqlite:%s"
keys:
  wrapping_key_file: %s
  max_token_lifetime: 10m
log:
  level: warn
listen:
  addr: "127.0.0.1:%d"
  admin_addr: "127.0.0.1:0"
`, filepath.Join(dir, "xaa.db"), keyFile, port) + fmt.Sprintf(`issuers:
  idp: %q
  authserver: %q
dev_mode: true
seed_file: %s
token_rate_limit:
  disabled: true
authserver:
  trusted_issuers:
    - issuer: %q
      jwks_uri: "%s/jwks.json"
      algorithms: [ES256]
  resources:
    - uri: %q
      scopes: [files:read]
      access_token_lifetime: 5m
      tools:
        read_file: {scopes: [files:read]}
  clients:
%s    - client_id: gw-files
      auth_method: client_secret_basic
      client_secret_sha256: %q
      resources: [%q]
`, w.idp, w.as, seedPath, w.idp, w.idp, w.resource, asClients.String(), sha256Hex(revGWSecret), w.resource)
	if upstream != "" {
		secretFile := filepath.Join(dir, "gw.secret")
		if err := os.WriteFile(secretFile, []byte(revGWSecret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg += fmt.Sprintf(`gateway:
  routes:
    - path: /mcp/files
      resource: %q
      authserver:
        issuer: %q
        client_id: gw-files
        client_secret_file: %s
      upstream:
        url: %q
      revocation_poll_interval: %s
      revocation_max_staleness: 30s
`, w.resource, w.as, secretFile, upstream, poll)
	}
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := revXAA(t, "migrate", "--config", path); err != nil {
		t.Fatal(err)
	}
	return w
}

// open gives the test process its own handle on the deployment's
// database and a ledger on it, as the CLI has.
func (w *revWorld) open(t testing.TB) {
	t.Helper()
	c, err := config.Load(w.cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.db, err = openStore(t.Context(), c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.db.Close() })
	if w.svc, err = ledger.New(&ledger.Options{Store: w.db}); err != nil {
		t.Fatal(err)
	}
}

func (w *revWorld) login(t testing.TB, app string) string {
	t.Helper()
	return testenv.OIDCLogin(t, testenv.Login{Issuer: w.idp, ClientID: app, ClientSecret: revAppSecret, RedirectURI: revRedirectURI,
		Username: "alice", Password: revPassword})
}

// revClient bounds every request of the probes.
var revClient = &http.Client{Timeout: 10 * time.Second}

// post sends form with client_secret_basic and decodes the JSON answer;
// it never calls t.Fatal, so probes may run in goroutines.
func post(endpoint, id, secret string, form url.Values) (int, map[string]any, error) {
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := revClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("%s answered %d, not JSON: %.200s", endpoint, resp.StatusCode, body)
	}
	return resp.StatusCode, m, nil
}

func (w *revWorld) exchange(app, idToken string) (int, map[string]any, error) {
	return post(w.idp+"/token", app, revAppSecret, url.Values{
		"grant_type": {idjag.GrantTypeTokenExchange}, "requested_token_type": {idjag.TokenType},
		"subject_token": {idToken}, "subject_token_type": {idjag.TokenTypeIDToken},
		"audience": {w.as}, "resource": {w.resource}, "scope": {"files:read"},
	})
}

func (w *revWorld) redeem(app, jag, resource string) (int, map[string]any, error) {
	return post(w.as+"/token", revAtAS(app), revASSecret, url.Values{
		"grant_type": {idjag.GrantTypeJWTBearer}, "assertion": {jag}, "resource": {resource},
	})
}

// mustExchange mints an ID-JAG or fails.
func (w *revWorld) mustExchange(app, idToken string) (string, error) {
	status, m, err := w.exchange(app, idToken)
	if err != nil {
		return "", err
	}
	jag, _ := m["access_token"].(string)
	if status != http.StatusOK || jag == "" {
		return "", fmt.Errorf("exchange for %s = %d %v: %v", app, status, m["error"], m["error_description"])
	}
	return jag, nil
}

func revStr(m map[string]any, k string) string { s, _ := m[k].(string); return s }

// TestConnectionCLI is issue 7's acceptance from the CLI: request ->
// approve -> exchange works -> revoke -> exchange fails with
// access_denied naming the revocation; and the ID-JAG minted before the
// revocation is refused by the authorization server once the IdP's
// security event has reached it.
func TestConnectionCLI(t *testing.T) {
	t.Parallel()
	w := newRevWorld(t, 1, "", 0)
	base, log, stop := startServe(t, w.cfgPath)
	defer stop()
	waitHealthy(t, base+"/readyz")
	app := w.apps[0]
	idToken := w.login(t, app)
	xaa := func(args ...string) string {
		t.Helper()
		out, errOut, err := runXAA(t, nil, append(args, "--config", w.cfgPath)...)
		if err != nil {
			t.Fatalf("xaa %s: %v\n%s", strings.Join(args, " "), err, errOut)
		}
		return out
	}

	// No connection yet: not a target for this app.
	status, m, err := w.exchange(app, idToken)
	if err != nil || status != http.StatusBadRequest || revStr(m, "error") != "invalid_target" {
		t.Fatalf("exchange without a connection = %d %v (%v)", status, m, err)
	}

	out := xaa("connection", "request", "--app", app, "--resource", w.resource, "--grant", "staff=files:read",
		"--justification", "the assistant reads team files", "--expires", "2160h")
	id := regexp.MustCompile(`requested connection (c_[a-z0-9]+)`).FindStringSubmatch(out)
	if id == nil {
		t.Fatalf("request printed %q", out)
	}
	conn := id[1]
	status, m, _ = w.exchange(app, idToken)
	if status != http.StatusBadRequest || revStr(m, "error") != "access_denied" || !strings.Contains(revStr(m, "error_description"), conn+" from this client to the resource awaits approval") {
		t.Fatalf("exchange while pending = %d %v", status, m)
	}

	if out := xaa("connection", "approve", conn, "--note", "ticket 41"); !strings.Contains(out, "pending -> approved") {
		t.Errorf("approve printed %q", out)
	}
	jag, err := w.mustExchange(app, idToken)
	if err != nil {
		t.Fatalf("exchange after approval: %v", err)
	}
	early, err := w.mustExchange(app, idToken) // kept for after the revocation
	if err != nil {
		t.Fatal(err)
	}
	if status, m, _ := w.redeem(app, jag, w.resource); status != http.StatusOK {
		t.Fatalf("redemption after approval = %d %v", status, m)
	}

	out = xaa("connection", "revoke", conn, "--reason", "vendor offboarded, ticket 42")
	if !strings.Contains(out, "approved -> revoked") || !strings.Contains(out, "1 security event(s) queued") {
		t.Errorf("revoke printed %q", out)
	}
	status, m, _ = w.exchange(app, idToken)
	desc := revStr(m, "error_description")
	if status != http.StatusBadRequest || revStr(m, "error") != "access_denied" ||
		!strings.HasPrefix(desc, "the connection "+conn+" was revoked at ") || !strings.HasSuffix(desc, ": vendor offboarded, ticket 42") {
		t.Fatalf("exchange after revocation = %d %s %q; want access_denied naming the revocation", status, revStr(m, "error"), desc)
	}

	// The IdP in serve pushes the security event; the authorization
	// server then refuses the ID-JAG minted before the revocation. Until
	// the fence stands, presenting the ID-JAG already redeemed is refused
	// as a replay; once it stands, as revoked (the fence is checked first).
	deadline := time.Now().Add(5 * time.Second)
	for {
		status, m, _ := w.redeem(app, jag, w.resource)
		if d := revStr(m, "error_description"); strings.Contains(d, "revoked") {
			break
		} else if !strings.Contains(d, "already been used") || time.Now().After(deadline) {
			t.Fatalf("probe of an ID-JAG minted before the revocation = %d %v", status, m)
		}
		time.Sleep(20 * time.Millisecond)
	}
	status, m, _ = w.redeem(app, early, w.resource)
	if status != http.StatusBadRequest || revStr(m, "error") != "invalid_grant" || !strings.Contains(revStr(m, "error_description"), "revoked") {
		t.Fatalf("redemption of an ID-JAG minted before the revocation = %d %v", status, m)
	}

	// show and list reflect all of it.
	var shown connectionJSON
	if err := json.Unmarshal([]byte(xaa("connection", "show", conn, "--json")), &shown); err != nil {
		t.Fatal(err)
	}
	var acts []string
	for _, h := range shown.History {
		acts = append(acts, h.Action+" by "+h.Actor)
	}
	user := ledgerOperator(&env{getenv: func(string) string { return "" }}).String()
	want := []string{"request by " + user, "approve by " + user, "revoke by " + user}
	if !slices.Equal(acts, want) || shown.Status != "revoked" || shown.Requester != user || len(shown.Deliveries) != 1 ||
		shown.Deliveries[0].Status != "delivered" || shown.StatusReason != "vendor offboarded, ticket 42" {
		t.Errorf("show = %+v; history %v", shown, acts)
	}
	if out := xaa("connection", "show", conn); !strings.Contains(out, "authserver  "+w.as+"  delivered") {
		t.Errorf("show lacks the delivered enforcement point:\n%s", out)
	}
	if out := xaa("connection", "list", "--status", "revoked"); !strings.Contains(out, conn) {
		t.Errorf("list --status revoked lacks %s:\n%s", conn, out)
	}
	// Bad transitions and input are refused and say why.
	for _, args := range [][]string{
		{"connection", "approve", conn},
		{"connection", "resume", conn},
		{"connection", "revoke", "c_nope", "--reason", "x"},
		{"connection", "recertify", conn, "--until", "yesterday"},
		{"connection", "request", "--app", app, "--resource", w.resource, "--grant", "staff"},
	} {
		if _, _, err := runXAA(t, nil, append(args, "--config", w.cfgPath)...); err == nil {
			t.Errorf("xaa %s succeeded", strings.Join(args, " "))
		}
	}
	stop()
	for _, secret := range []string{revAppSecret, revASSecret, idToken, jag, early} {
		if strings.Contains(log.String(), secret) {
			t.Error("serve's log holds a secret or token")
		}
	}
}

// --- time to effect, with real processes ---

// revChildEnv names the config the serve child of the time-to-effect
// test runs with.
const revChildEnv = "XAA_REVOCATION_CHILD_CONFIG"

// TestRevocationServeChild is the `xaa serve` process of the
// time-to-effect test and benchmark; it serves until interrupted.
func TestRevocationServeChild(t *testing.T) {
	cfg := os.Getenv(revChildEnv)
	if cfg == "" {
		t.Skip("run by TestRevocationTimeToEffect only")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	if err := run(ctx, []string{"xaa", "serve", "--config", cfg}, func(string) string { return "" }, strings.NewReader(""), os.Stdout, os.Stderr); err != nil {
		t.Fatal(err)
	}
}

// startRevChild starts `xaa serve` in a child process and returns its
// base URL once it is ready.
func startRevChild(tb testing.TB, cfg string) string {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestRevocationServeChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), revChildEnv+"="+cfg)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			tb.Errorf("serve child did not stop on SIGINT; stderr:\n%s", stderr.String())
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
			tb.Fatalf("serve child exited without serving; stderr:\n%s", stderr.String())
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			resp, err := revClient.Get(base + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return base
				}
			}
			if time.Now().After(deadline) {
				tb.Fatalf("serve child not ready; stderr:\n%s", stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	case <-time.After(60 * time.Second):
		tb.Fatalf("serve child did not announce its address; stderr:\n%s", stderr.String())
		return ""
	}
}

// filesUpstream is the MCP server behind the gateway, in the test process.
func filesUpstream(tb testing.TB) string {
	s := mcp.NewServer(&mcp.Implementation{Name: "files", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "read_file"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "contents"}}}, nil, nil
	})
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	tb.Cleanup(srv.Close)
	return srv.URL + "/mcp"
}

// revTrial is one revocation's time to effect at each hop.
type revTrial struct {
	exchange, redemption, toolCall time.Duration
}

// Bounds of issue 7's acceptance, with revPoll the gateway's revocation
// poll interval.
const (
	revPoll             = time.Second
	revExchangeBound    = time.Second
	revRedemptionBound  = time.Second
	revToolCallBound    = revPoll + time.Second
	revProbeEvery       = 10 * time.Millisecond
	revProbeGiveUpAfter = 10 * time.Second
)

// runRevocationTrials runs n trials over lanes apps at once (trials of
// one app are sequential: a revocation fences the app until the next
// second) against a serve child, and returns their times.
func runRevocationTrials(tb testing.TB, n, lanes int) []revTrial {
	w := newRevWorld(tb, lanes, filesUpstream(tb), revPoll)
	w.open(tb)
	startRevChild(tb, w.cfgPath)
	var mu sync.Mutex
	var out []revTrial
	var failures []string
	var wg sync.WaitGroup
	per := (n + lanes - 1) / lanes
	for i, app := range w.apps {
		count := min(per, n-i*per)
		if count <= 0 {
			break
		}
		idToken := w.login(tb, app)
		wg.Go(func() {
			for k := range count {
				r, err := w.trial(app, idToken, k)
				mu.Lock()
				if err != nil {
					failures = append(failures, fmt.Sprintf("%s trial %d: %v", app, k, err))
				} else {
					out = append(out, r)
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	if len(failures) > 0 {
		tb.Fatalf("%d trial(s) failed:\n%s", len(failures), strings.Join(failures, "\n"))
	}
	return out
}

// trial: a fresh connection for app; an ID-JAG held back, an access token
// in use through the gateway; then the revocation, and three probes that
// each retry until the hop refuses: a new exchange at the IdP, a
// redemption of the held-back ID-JAG at the authorization server, a tool
// call with the access token through the gateway.
func (w *revWorld) trial(app, idToken string, k int) (revTrial, error) {
	ctx := context.Background()
	actor := ledger.Actor{Kind: ledger.ActorCLI, ID: "time-to-effect"}
	// Tokens of the new connection must be issued after the previous
	// revocation's fence (whole seconds).
	nb, err := w.db.FenceNotBefore(ctx, w.as, revAtAS(app), "")
	if err != nil {
		return revTrial{}, err
	}
	if wait := time.Until(nb); wait > 0 {
		time.Sleep(wait + 10*time.Millisecond)
	}
	e, err := w.svc.Request(ctx, actor, ledger.RequestInput{App: app, Resource: w.resource,
		GroupScopes: []store.GroupScopes{{Group: "staff", Scopes: []string{"files:read"}}}})
	if err != nil {
		return revTrial{}, err
	}
	if _, err := w.svc.Approve(ctx, actor, e.ID, ""); err != nil {
		return revTrial{}, err
	}
	held, err := w.mustExchange(app, idToken)
	if err != nil {
		return revTrial{}, err
	}
	jag, err := w.mustExchange(app, idToken)
	if err != nil {
		return revTrial{}, err
	}
	status, m, err := w.redeem(app, jag, w.resource)
	access := revStr(m, "access_token")
	if err != nil || status != http.StatusOK || access == "" {
		return revTrial{}, fmt.Errorf("redemption before the revocation = %d %v (%v)", status, m, err)
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "probe", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: w.resource, MaxRetries: -1,
		HTTPClient: &http.Client{Timeout: 10 * time.Second, Transport: gwBearer{access, http.DefaultTransport}}}, nil)
	if err != nil {
		return revTrial{}, fmt.Errorf("connect through the gateway: %w", err)
	}
	defer cs.Close()
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "read_file", Arguments: map[string]any{}}); err != nil {
		return revTrial{}, fmt.Errorf("tool call before the revocation: %w", err)
	}

	start := time.Now()
	if _, err := w.svc.Revoke(ctx, actor, e.ID, fmt.Sprintf("time-to-effect trial %d", k)); err != nil {
		return revTrial{}, err
	}
	probe := func(refused func() (bool, error)) (time.Duration, error) {
		for {
			ok, err := refused()
			if err != nil {
				return 0, err
			}
			if ok {
				return time.Since(start), nil
			}
			if time.Since(start) > revProbeGiveUpAfter {
				return 0, fmt.Errorf("still accepted %s after the revocation", revProbeGiveUpAfter)
			}
			time.Sleep(revProbeEvery)
		}
	}
	var r revTrial
	var errs [3]error
	var wg sync.WaitGroup
	wg.Go(func() {
		r.exchange, errs[0] = probe(func() (bool, error) {
			status, m, err := w.exchange(app, idToken)
			switch {
			case err != nil:
				return false, err
			case status == http.StatusOK:
				return false, nil
			case status == http.StatusBadRequest && revStr(m, "error") == "access_denied" &&
				strings.HasPrefix(revStr(m, "error_description"), "the connection "+e.ID+" was revoked at "):
				return true, nil
			}
			return false, fmt.Errorf("exchange = %d %v", status, m)
		})
	})
	wg.Go(func() {
		// The ID-JAG redeemed before the revocation is presented again:
		// the authorization server checks fences before replays, so the
		// refusal flips from "already used" to "revoked" the moment the
		// fence stands, and the probe uses nothing up. A real redemption
		// of the held-back, never used ID-JAG then confirms it.
		r.redemption, errs[1] = probe(func() (bool, error) {
			status, m, err := w.redeem(app, jag, w.resource)
			d := revStr(m, "error_description")
			switch {
			case err != nil:
				return false, err
			case status == http.StatusBadRequest && strings.Contains(d, "already been used"):
				return false, nil
			case status == http.StatusBadRequest && revStr(m, "error") == "invalid_grant" && strings.Contains(d, "revoked"):
				return true, nil
			}
			return false, fmt.Errorf("redemption probe = %d %v", status, m)
		})
		if errs[1] == nil {
			if status, m, _ := w.redeem(app, held, w.resource); status != http.StatusBadRequest || revStr(m, "error") != "invalid_grant" {
				errs[1] = fmt.Errorf("a real redemption after the fence = %d %v", status, m)
			}
		}
	})
	wg.Go(func() {
		r.toolCall, errs[2] = probe(func() (bool, error) {
			_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "read_file", Arguments: map[string]any{}})
			if err == nil {
				return false, nil
			}
			if strings.Contains(err.Error(), "Unauthorized") || strings.Contains(err.Error(), "401") {
				return true, nil
			}
			return false, fmt.Errorf("tool call failed for another reason: %w", err)
		})
	})
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		return revTrial{}, err
	}
	return r, nil
}

// quantiles returns p50, p90, p99 and max of ds.
func quantiles(ds []time.Duration) [4]time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(p float64) time.Duration {
		i := int(p*float64(len(s))+0.999999) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return [4]time.Duration{at(0.50), at(0.90), at(0.99), s[len(s)-1]}
}

func revDistribution(trials []revTrial) (rows [3][4]time.Duration, table string) {
	var ex, re, tc []time.Duration
	for _, r := range trials {
		ex, re, tc = append(ex, r.exchange), append(re, r.redemption), append(tc, r.toolCall)
	}
	rows = [3][4]time.Duration{quantiles(ex), quantiles(re), quantiles(tc)}
	var b strings.Builder
	fmt.Fprintf(&b, "time to effect over %d revocations (gateway poll %s):\n", len(trials), revPoll)
	fmt.Fprintf(&b, "  %-34s %8s %8s %8s %8s %8s\n", "hop", "p50", "p90", "p99", "max", "bound")
	for i, name := range []string{"new exchange (IdP)", "redemption of older ID-JAG (AS)", "tool call, older token (gateway)"} {
		bound := []time.Duration{revExchangeBound, revRedemptionBound, revToolCallBound}[i]
		q := rows[i]
		fmt.Fprintf(&b, "  %-34s %8s %8s %8s %8s %8s\n", name, ms3(q[0]), ms3(q[1]), ms3(q[2]), ms3(q[3]), bound)
	}
	return rows, b.String()
}

func ms3(d time.Duration) string { return d.Round(time.Millisecond).String() }

// TestRevocationTimeToEffect is issue 7's acceptance, measured over 100
// trials with real processes (`xaa serve` in a child: IdP, authorization
// server and gateway; the revocations made in this process through the
// ledger on the shared database, as the CLI does): after a revocation, new
// exchanges fail within 1 s, redemptions of ID-JAGs issued before it fail
// within 1 s, and tool calls with access tokens issued before it fail
// within the gateway's poll interval + 1 s. These are protocol deadlines
// (the IdP reads the ledger on every exchange; the SET is pushed within
// the deliverer's poll; the gateway polls every second), not speed
// targets. -short runs 20 trials.
func TestRevocationTimeToEffect(t *testing.T) {
	if os.Getenv(revChildEnv) != "" {
		t.Skip("in the serve child")
	}
	// Not parallel: it runs before the parallel tests start, so that
	// the deadlines are measured on a machine not busy with them.
	n, lanes := 100, 10
	if testing.Short() {
		n = 20
	}
	if raceDetector {
		n, lanes = 10, 2
	}
	trials := runRevocationTrials(t, n, lanes)
	if len(trials) != n {
		t.Fatalf("%d trials, want %d", len(trials), n)
	}
	rows, table := revDistribution(trials)
	t.Log(table)
	if raceDetector {
		t.Log("-race: the deadlines are not asserted; run without -race to check them")
		return
	}
	for i, bound := range []time.Duration{revExchangeBound, revRedemptionBound, revToolCallBound} {
		if max := rows[i][3]; max > bound {
			t.Errorf("hop %d: the slowest of %d trials took %s, more than %s", i, n, max, bound)
		}
	}
}

// BenchmarkRevocationTimeToEffect prints the distribution of 100 trials
// per iteration and reports the quantiles as metrics:
//
//	go test ./cmd/xaa -run '^$' -bench BenchmarkRevocationTimeToEffect -benchtime 1x
func BenchmarkRevocationTimeToEffect(b *testing.B) {
	var all []revTrial
	for b.Loop() {
		all = append(all, runRevocationTrials(b, 100, 10)...)
	}
	rows, table := revDistribution(all)
	b.Log("\n" + table)
	for i, hop := range []string{"exchange", "redemption", "toolcall"} {
		for j, q := range []string{"p50", "p90", "p99", "max"} {
			b.ReportMetric(float64(rows[i][j].Microseconds())/1000, hop+"-"+q+"-ms")
		}
	}
}
