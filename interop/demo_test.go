package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth/extauth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/oauth2"

	"github.com/openxaa/xaa/internal/directory"
	"github.com/openxaa/xaa/internal/testenv"
)

// demoReadyLine is what `xaa demo` prints once every part is up.
const demoReadyLine = "OpenXAA demo is running"

// demo is `xaa demo` running as its own process on a free loopback port,
// with its state (database, keys, generated secrets, client profile) in a
// temp dir.
type demo struct {
	xaa, dir, base      string
	idp, as, files, crm string
	profile             string
	appSecret           string
	alice, bob, dana    user
	proc                *process
	secretsForLogsCheck []string
}

func startDemo(t *testing.T, ctx context.Context, xaa string) *demo {
	t.Helper()
	port := testenv.FreeLoopbackPort(t)
	d := &demo{xaa: xaa, dir: filepath.Join(t.TempDir(), "state"), base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	d.idp, d.as, d.files, d.crm = d.base+"/idp", d.base+"/as", d.base+"/mcp/files", d.base+"/mcp/crm"
	d.profile = filepath.Join(d.dir, "client.yaml")
	cmd := exec.Command(xaa, "demo", "--port", fmt.Sprint(port), "--state-dir", d.dir)
	cmd.Env = append(os.Environ(), "XAA_NO_BROWSER=1")
	d.proc, _ = startProcess(t, ctx, cmd, false, func(line string) (string, bool) {
		return "", strings.Contains(line, demoReadyLine)
	})
	raw, err := os.ReadFile(filepath.Join(d.dir, "secrets.json"))
	if err != nil {
		t.Fatalf("the demo's secrets: %v", err)
	}
	var s struct {
		AppSecret     string `json:"app_secret"`
		AlicePassword string `json:"alice_password"`
		BobPassword   string `json:"bob_password"`
		DanaPassword  string `json:"dana_password"`
		AliceTOTP     string `json:"alice_totp"`
	}
	if err := json.Unmarshal(raw, &s); err != nil || s.AppSecret == "" || s.AliceTOTP == "" {
		t.Fatalf("the demo's secrets.json: %v", err)
	}
	totp, err := directory.ParseTOTPSecret(s.AliceTOTP)
	if err != nil {
		t.Fatal(err)
	}
	d.appSecret = s.AppSecret
	d.alice = user{name: "alice", password: s.AlicePassword, totp: totp}
	d.bob = user{name: "bob", password: s.BobPassword}
	d.dana = user{name: "dana", password: s.DanaPassword}
	// The demo prints the users' passwords in its guide, on purpose; the
	// app's secret and every token must stay out of its output.
	d.secretsForLogsCheck = []string{s.AppSecret}
	return d
}

// The demo's requesting app "assistant" is registered at the IdP and at
// the authorization server with the same client_id and secret, and with
// this redirect URI (any loopback port).
const demoRedirectURI = "http://127.0.0.1/callback"

func (d *demo) checkLogs(t *testing.T, tokens ...string) {
	t.Helper()
	log := d.proc.log.String()
	for _, s := range append(slices.Clone(d.secretsForLogsCheck), tokens...) {
		if s != "" && strings.Contains(log, s) {
			t.Errorf("the demo's output holds a secret or token (%d bytes)", len(s))
		}
	}
}

// TestDemoEndToEndXAAClientAndGoSDK (issue 6): against `xaa demo` as a
// process, two independent clients each complete IdP -> authorization
// server -> gateway -> tool call: our CLI (`xaa call` with the demo's
// client profile; the login form is driven like a person would, from the
// URL the CLI prints), and the go-sdk's extauth.EnterpriseHandler as the
// OAuthHandler of an mcp.StreamableClientTransport.
func TestDemoEndToEndXAAClientAndGoSDK(t *testing.T) {
	if testing.Short() && !required() {
		t.Skip("-short: skipping the demo end-to-end test (builds xaa and starts the demo)")
	}
	xaa := buildXAA(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	d := startDemo(t, ctx, xaa)

	t.Run("xaa call", func(t *testing.T) {
		cmd := exec.Command(xaa, "call", "--profile", d.profile, d.files, "read_file", "path=welcome.txt")
		cmd.Env = append(os.Environ(), "XAA_NO_BROWSER=1")
		p, authURL := startProcess(t, ctx, cmd, true, func(line string) (string, bool) {
			l := strings.TrimSpace(line)
			return l, strings.HasPrefix(l, d.idp+"/authorize?")
		})
		loc, err := signIn(ctx, authURL, d.bob)
		if err != nil {
			t.Fatalf("sign in at the URL xaa printed: %v", err)
		}
		if !strings.HasPrefix(loc.String(), "http://127.0.0.1:") || loc.Query().Get("code") == "" {
			t.Fatalf("the IdP sent the browser to %s, not to the CLI's loopback listener with a code", loc.Redacted())
		}
		resp, err := http.Get(loc.String()) // the browser lands on the CLI's listener
		if err != nil {
			t.Fatalf("deliver the redirect to xaa: %v", err)
		}
		resp.Body.Close()
		select {
		case <-p.done:
		case <-ctx.Done():
			t.Fatalf("xaa call did not finish: %s", p.log.String())
		}
		out := p.log.String()
		if p.err != nil || !strings.Contains(out, "Welcome to the OpenXAA demo") {
			t.Fatalf("xaa call: %v; want welcome.txt's text; output:\n%s", p.err, out)
		}
	})

	t.Run("go-sdk EnterpriseHandler", func(t *testing.T) {
		idToken := oidcLogin(t, ctx, d.idp, "assistant", d.appSecret, demoRedirectURI, d.dana)
		creds := &oauthex.ClientCredentials{ClientID: "assistant", ClientSecretAuth: &oauthex.ClientSecretAuth{ClientSecret: d.appSecret}}
		h, err := extauth.NewEnterpriseHandler(&extauth.EnterpriseHandlerConfig{
			IdPIssuerURL:     d.idp,
			IdPCredentials:   creds,
			MCPAuthServerURL: d.as,
			MCPResourceURI:   d.crm,
			MCPCredentials:   creds,
			MCPScopes:        []string{"crm:read"},
			IDTokenFetcher: func(context.Context) (*oauth2.Token, error) {
				return (&oauth2.Token{}).WithExtra(map[string]any{"id_token": idToken}), nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		cl := mcp.NewClient(&mcp.Implementation{Name: "openxaa-interop-go", Version: "0"}, nil)
		cs, err := cl.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: d.crm, OAuthHandler: h, DisableStandaloneSSE: true}, nil)
		if err != nil {
			t.Fatalf("connect with the go-sdk enterprise handler: %v", err)
		}
		defer cs.Close()
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "search_customers", Arguments: map[string]any{"query": "grace"}})
		if err != nil || res.IsError {
			t.Fatalf("search_customers: %v %+v", err, res)
		}
		if text := toolText(res); !strings.Contains(text, "Grace Hopper") {
			t.Errorf("search_customers answered %q; want Grace Hopper's row", clipLine(text, 200))
		}
		d.checkLogs(t, idToken)
	})
	d.checkLogs(t)
}

func toolText(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// TestDemoEndToEndTypeScriptSDK (issues 5 and 6): the official TypeScript
// SDK v2 (crossapp.mjs: StreamableHTTPClientTransport with
// CrossAppAccessProvider) against `xaa demo` as a process. alice (eng,
// signed in with password and TOTP) searches the CRM with the token the
// SDK got for the gateway's challenge scope (crm:read), then exports it:
// export_customers needs crm:export, the gateway answers 403
// insufficient_scope, and the SDK re-authorizes with the union
// crm:read crm:export, which the IdP grants (eng, fresh MFA login). A
// recording proxy in front of the IdP's token endpoint shows both
// exchanges and their scopes; the SDK's fetch records the challenges.
func TestDemoEndToEndTypeScriptSDK(t *testing.T) {
	node := requireNode(t)
	xaa := buildXAA(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	d := startDemo(t, ctx, xaa)
	idToken := oidcLogin(t, ctx, d.idp, "assistant", d.appSecret, demoRedirectURI, d.alice)

	// The recording proxy: every token request to the IdP, by scope.
	var mu sync.Mutex
	var exchanges []url.Values
	target, _ := url.Parse(d.base)
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target) }}
	idpProxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		form, _ := url.ParseQuery(string(body))
		mu.Lock()
		exchanges = append(exchanges, form)
		mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		rp.ServeHTTP(w, r)
	}))
	defer idpProxy.Close()

	// The SDK's metadata schema (2.4.0) insists on authorization_endpoint
	// and response_types_supported. While our jwt-bearer-only
	// authorization server publishes neither, crossapp.mjs fills them in
	// (and says so); everything else is the SDK's own flow.
	shim := asMetadataLacksCodeFlowMembers(t, ctx, d.as)
	if shim {
		t.Logf("KNOWN GAP: %s's metadata has no authorization_endpoint or response_types_supported, which the TS SDK 2.4.0 requires; crossapp.mjs adds them (XAA_AS_METADATA_SHIM=1)", d.as)
	}

	calls := `[{"tool":"search_customers","arguments":{"query":"grace"}},{"tool":"export_customers","arguments":{}}]`
	cmd := exec.CommandContext(ctx, node, "crossapp.mjs")
	cmd.Env = []string{
		"PATH=" + filepath.Dir(node) + string(os.PathListSeparator) + os.Getenv("PATH"),
		"XAA_MCP_URL=" + d.crm,
		"XAA_ID_TOKEN=" + idToken,
		"XAA_IDP_TOKEN_ENDPOINT=" + idpProxy.URL + "/idp/token",
		"XAA_IDP_CLIENT_ID=assistant",
		"XAA_IDP_CLIENT_SECRET=" + d.appSecret,
		"XAA_AS_ISSUER=" + d.as,
		"XAA_AS_CLIENT_ID=assistant",
		"XAA_AS_CLIENT_SECRET=" + d.appSecret,
		"XAA_CALLS=" + calls,
	}
	if shim {
		cmd.Env = append(cmd.Env, "XAA_AS_METADATA_SHIM=1")
	}
	cmd.WaitDelay = 5 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	t.Logf("crossapp.mjs:\n%s%s", out, stderr.String())
	if err != nil {
		t.Fatalf("crossapp.mjs: %v", err)
	}
	type line struct {
		Tool       string `json:"tool"`
		OK         bool   `json:"ok"`
		Text       string `json:"text"`
		Error      string `json:"error"`
		Done       bool   `json:"done"`
		Challenges []struct {
			Status          int    `json:"status"`
			WWWAuthenticate string `json:"www_authenticate"`
		} `json:"challenges"`
		Assertions []struct{ Scope, Granted string } `json:"assertions"`
		Shimmed    []struct {
			URL   string   `json:"url"`
			Added []string `json:"added"`
		} `json:"shimmed"`
	}
	var results []line
	var done *line
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var v line
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("crossapp.mjs printed %q: %v", l, err)
		}
		if v.Done {
			done = &v
			continue
		}
		results = append(results, v)
	}
	if len(results) != 2 || done == nil {
		t.Fatalf("crossapp.mjs printed %d results and done=%v; want 2 and a summary", len(results), done != nil)
	}
	for _, sh := range done.Shimmed {
		if !strings.HasPrefix(sh.URL, d.base+"/.well-known/oauth-authorization-server") {
			t.Errorf("crossapp.mjs changed metadata at %s", sh.URL)
		}
		t.Logf("crossapp.mjs added %v to %s", sh.Added, sh.URL)
	}
	if r := results[0]; !r.OK || !strings.Contains(r.Text, "Grace Hopper") {
		t.Errorf("search_customers through the TS SDK: %+v", r)
	}
	if r := results[1]; !r.OK || !strings.Contains(r.Text, "Grace Hopper") {
		t.Errorf("export_customers through the TS SDK after the scope step-up: %+v", r)
	}

	// The 403 insufficient_scope, as the SDK's fetch saw it.
	var sawScopeChallenge bool
	for _, c := range done.Challenges {
		if c.Status == http.StatusForbidden && strings.Contains(c.WWWAuthenticate, `error="insufficient_scope"`) &&
			strings.Contains(c.WWWAuthenticate, `scope="crm:export"`) {
			sawScopeChallenge = true
		}
	}
	if !sawScopeChallenge {
		t.Errorf("the gateway's 403 insufficient_scope scope=\"crm:export\" is not among the challenges the SDK received: %+v", done.Challenges)
	}

	// At the IdP: one exchange for the challenge's scope, then one for
	// the union.
	mu.Lock()
	defer mu.Unlock()
	var scopes []string
	for _, f := range exchanges {
		if f.Get("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange" {
			t.Errorf("unexpected request at the IdP token endpoint: grant_type %q", f.Get("grant_type"))
			continue
		}
		fields := strings.Fields(f.Get("scope"))
		slices.Sort(fields)
		scopes = append(scopes, strings.Join(fields, " "))
		if f.Get("resource") != d.crm || f.Get("audience") != d.as {
			t.Errorf("exchange for resource %q audience %q; want %s and %s", f.Get("resource"), f.Get("audience"), d.crm, d.as)
		}
	}
	if want := []string{"crm:read", "crm:export crm:read"}; !slices.Equal(scopes, want) {
		t.Errorf("token exchanges at the IdP asked for scopes %q; want %q (the challenge's, then the union)", scopes, want)
	}
	if len(done.Assertions) != 2 || done.Assertions[1].Granted == "" || !strings.Contains(done.Assertions[1].Granted, "crm:export") {
		t.Errorf("the IdP's grants as the SDK saw them: %+v; want crm:export granted the second time", done.Assertions)
	}
	d.checkLogs(t, idToken)
}

// asMetadataLacksCodeFlowMembers reports whether the authorization
// server's RFC 8414 metadata omits authorization_endpoint or
// response_types_supported.
func asMetadataLacksCodeFlowMembers(t *testing.T, ctx context.Context, issuer string) bool {
	t.Helper()
	u, err := url.Parse(issuer)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u.Scheme+"://"+u.Host+"/.well-known/oauth-authorization-server"+u.Path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var md map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil || resp.StatusCode != http.StatusOK || md["issuer"] != issuer {
		t.Fatalf("authorization server metadata of %s: %d %v", issuer, resp.StatusCode, err)
	}
	_, hasAuthz := md["authorization_endpoint"]
	_, hasTypes := md["response_types_supported"]
	return !hasAuthz || !hasTypes
}
