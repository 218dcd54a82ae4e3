// Command xaa-conformance-client is the OpenXAA client library (xaaclient)
// as the MCP conformance suite's client under test:
//
//	conformance client --scenario auth/enterprise-managed-authorization \
//		--command "xaa-conformance-client"
//
// The suite starts a mock enterprise IdP, authorization server and MCP
// server, puts MCP_CONFORMANCE_CONTEXT (JSON) in the environment and
// appends the MCP server's URL as the last argument. For the enterprise
// scenario the context holds the user's ID token, the IdP's issuer and
// token endpoint, the app's client_id at the IdP (a public client there:
// the suite hands out no secret for it) and its client_id and secret at
// the authorization server. The command connects with the go-sdk MCP client
// and xaaclient as its auth.OAuthHandler: discovery, RFC 8693 exchange of
// the ID token for an ID-JAG, RFC 7523 jwt-bearer grant, then tools/list
// and a call of the first tool.
//
// Every other auth scenario of the suite exercises an OAuth flow this
// client deliberately does not run (authorization code at the MCP server's
// authorization server, dynamic or CIMD registration, client credentials).
// For those the command runs xaaclient's discovery all the same (PRM and
// its resource check, authorization server metadata and its issuer check)
// and exits 2 where the client stops: at an authorization server without
// the ID-JAG grant, or for want of an ID token. No token request is made.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/openxaa/xaa/xaaclient"
)

// exitNotXAA is the exit status for a scenario that is not Cross App
// Access.
const exitNotXAA = 2

// scenarioContext is MCP_CONFORMANCE_CONTEXT for the enterprise scenario.
type scenarioContext struct {
	Name             string `json:"name"`
	ClientID         string `json:"client_id"`     // the app at the authorization server
	ClientSecret     string `json:"client_secret"` // its secret there
	IdPClientID      string `json:"idp_client_id"` // the app at the IdP (public)
	IdPIDToken       string `json:"idp_id_token"`
	IdPIssuer        string `json:"idp_issuer"`
	IdPTokenEndpoint string `json:"idp_token_endpoint"`
}

// errNotXAA marks a scenario whose context carries no enterprise IdP.
var errNotXAA = errors.New("not a Cross App Access scenario")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	if errors.Is(err, xaaclient.ErrNotXAA) && !errors.Is(err, errNotXAA) {
		err = fmt.Errorf("%w: %v (xaaclient obtains tokens only by ID-JAG and never falls back to another OAuth flow)", errNotXAA, err)
	}
	switch {
	case errors.Is(err, errNotXAA):
		fmt.Fprintf(os.Stderr, "xaa-conformance-client: %v\n", err)
		os.Exit(exitNotXAA)
	case err != nil:
		fmt.Fprintf(os.Stderr, "xaa-conformance-client: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("xaa-conformance-client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	verbose := fs.Bool("v", false, "log what xaaclient does to stderr (never a token)")
	timeout := fs.Duration("timeout", 25*time.Second, "give up after this long (the suite's own limit is 30 s)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() < 1 {
		return errors.New("usage: xaa-conformance-client [-v] MCP-URL (the conformance suite appends the URL)")
	}
	endpoint := fs.Arg(fs.NArg() - 1)
	scenario := getenv("MCP_CONFORMANCE_SCENARIO")

	var sc scenarioContext
	if raw := getenv("MCP_CONFORMANCE_CONTEXT"); raw != "" {
		if err := json.Unmarshal([]byte(raw), &sc); err != nil {
			return fmt.Errorf("MCP_CONFORMANCE_CONTEXT is not the expected JSON: %v", err)
		}
	}
	enterprise := sc.IdPIDToken != "" && sc.IdPIssuer != "" && sc.IdPTokenEndpoint != "" && sc.IdPClientID != ""
	if !enterprise {
		// Not an XAA scenario: the client still runs its discovery (PRM
		// with the resource check, authorization server metadata with
		// the issuer check) and stops where it finds no ID-JAG grant or
		// has no IdP. The IdP below is never contacted: the exchange
		// needs an ID token, and there is none.
		sc.IdPIssuer, sc.IdPTokenEndpoint, sc.IdPClientID = "https://idp.invalid", "https://idp.invalid/token", "conformance"
		if sc.ClientID == "" || sc.ClientSecret == "" {
			// Never sent: nothing reaches a token endpoint without an ID-JAG.
			sc.ClientID, sc.ClientSecret = "conformance", "unused-no-token-request-is-made-without-an-id-jag"
		}
	}
	if sc.ClientID == "" || sc.ClientSecret == "" {
		return errors.New("MCP_CONFORMANCE_CONTEXT has no client_id and client_secret for the authorization server")
	}
	idToken := func(context.Context) (string, error) {
		if !enterprise {
			return "", fmt.Errorf("%w: scenario %q hands the client no enterprise IdP and no ID token", errNotXAA, scenario)
		}
		return sc.IdPIDToken, nil
	}

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	hc := &http.Client{Timeout: 10 * time.Second}

	// The suite hands out the app's credentials at "the" authorization
	// server without naming it: bind them to the authorization server the
	// resource's metadata names. xaaclient itself never sends credentials
	// to an issuer it was not configured with; this is the trust decision
	// the suite makes for the client by launching both servers.
	asIssuer, err := authorizationServerOf(ctx, hc, endpoint)
	if err != nil {
		return err
	}
	// http only on loopback hosts, where the suite runs; https elsewhere.
	loopback := isLoopbackURL(endpoint)
	client, err := xaaclient.New(&xaaclient.Options{
		Issuer: sc.IdPIssuer,
		Client: xaaclient.Credentials{ClientID: sc.IdPClientID, AuthMethod: xaaclient.AuthMethodNone},
		AuthServers: map[string]xaaclient.Credentials{
			asIssuer: {ClientID: sc.ClientID, ClientSecret: sc.ClientSecret, AuthMethod: xaaclient.AuthMethodSecretBasic},
		},
		IDToken:                      idToken,
		IdPTokenEndpoint:             sc.IdPTokenEndpoint,
		AllowExchangeWithoutResource: true, // the suite's mock IdP predates ID-JAG -05
		MemoryOnly:                   true,
		AllowLoopbackHTTP:            loopback,
		NonInteractive:               true,
		HTTPClient:                   hc,
		Logger:                       logger,
	})
	if err != nil {
		return err
	}
	h, err := client.Handler(endpoint)
	if err != nil {
		return err
	}
	cl := mcp.NewClient(&mcp.Implementation{Name: "xaa-conformance-client", Version: "0"}, nil)
	cs, err := cl.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, OAuthHandler: h, DisableStandaloneSSE: true, HTTPClient: hc}, nil)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", endpoint, err)
	}
	defer cs.Close()
	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		return fmt.Errorf("tools/list: %w", err)
	}
	fmt.Fprintf(stdout, "connected to %s with an ID-JAG-based access token; %d tool(s)\n", endpoint, len(tools.Tools))
	if len(tools.Tools) == 0 {
		return nil
	}
	name := tools.Tools[0].Name
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: map[string]any{}})
	if err != nil {
		return fmt.Errorf("tools/call %s: %w", name, err)
	}
	if res.IsError {
		return fmt.Errorf("tools/call %s: the tool reported an error", name)
	}
	fmt.Fprintf(stdout, "called %s: %d content block(s)\n", name, len(res.Content))
	return nil
}

// authorizationServerOf reads the protected resource metadata of endpoint
// (from its 401 challenge's resource_metadata, else the RFC 9728
// locations: path-inserted, then the root) and returns its first
// authorization server.
func authorizationServerOf(ctx context.Context, hc *http.Client, endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("MCP URL %q is not an absolute URL", endpoint)
	}
	origin := u.Scheme + "://" + u.Host
	candidates := []string{origin + "/.well-known/oauth-protected-resource" + strings.TrimSuffix(u.EscapedPath(), "/"),
		origin + "/.well-known/oauth-protected-resource"}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(`{"jsonrpc":"2.0","id":0,"method":"ping"}`))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("probe %s: %w", endpoint, err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		if cs, err := xaaclient.ParseChallenges(resp.Header.Values("WWW-Authenticate")); err == nil {
			for _, c := range cs {
				if c.Scheme == "bearer" && c.Params["resource_metadata"] != "" {
					candidates = []string{c.Params["resource_metadata"]}
				}
			}
		}
	}
	for _, prmURL := range candidates {
		as, err := firstAuthorizationServer(ctx, hc, prmURL)
		if err == nil {
			return as, nil
		}
		if !errors.Is(err, errNoMetadata) || prmURL == candidates[len(candidates)-1] {
			return "", err
		}
	}
	return "", errNoMetadata // unreachable: candidates is never empty
}

var errNoMetadata = errors.New("no protected resource metadata")

func firstAuthorizationServer(ctx context.Context, hc *http.Client, prmURL string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, prmURL, nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("protected resource metadata %s: %w", prmURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return "", fmt.Errorf("%w at %s", errNoMetadata, prmURL)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("protected resource metadata %s answered %d", prmURL, resp.StatusCode)
	}
	var prm struct {
		AuthorizationServers []string `json:"authorization_servers"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&prm); err != nil || len(prm.AuthorizationServers) == 0 {
		return "", fmt.Errorf("protected resource metadata %s names no authorization server", prmURL)
	}
	return prm.AuthorizationServers[0], nil
}

func isLoopbackURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	switch h := u.Hostname(); h {
	case "localhost", "::1":
		return true
	default:
		return strings.HasPrefix(h, "127.")
	}
}
