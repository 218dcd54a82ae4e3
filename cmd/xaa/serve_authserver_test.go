package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/openxaa/xaa/idjag"
	"github.com/openxaa/xaa/internal/config"
	"github.com/openxaa/xaa/internal/store"
	"github.com/openxaa/xaa/internal/testenv"
)

const (
	asClientID     = "assistant-at-files" // as in examples/seed.yaml
	asClientSecret = "test-secret-0123456789abcdefghijklmnop"
)

var cmpIgnoreCreated = cmpopts.IgnoreFields(store.Client{}, "CreatedAt")

func sha256Hex(s string) string {
	d := sha256.Sum256([]byte(s))
	return hex.EncodeToString(d[:])
}

// asDeployment is deployment() with both roles on listen, the
// authorization server trusting the IdP of the same process (its JWKS at
// the real port) and one registered client.
func asDeployment(t *testing.T, listen string, port int) string {
	t.Helper()
	path := deployment(t, listen)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	base, _, _ := strings.Cut(string(data), "authserver:\n  trusted_issuers:")
	cfg := base + fmt.Sprintf(`authserver:
  trusted_issuers:
    - issuer: "http://127.0.0.1/idp"
      jwks_uri: "http://127.0.0.1:%d/idp/jwks.json"
      algorithms: [ES256]
  resources:
    - uri: "http://127.0.0.1/mcp/files"
      scopes: [files:read, files:write]
      access_token_lifetime: 5m
  clients:
    - client_id: %s
      auth_method: client_secret_basic
      client_secret_sha256: %q
      resources: ["http://127.0.0.1/mcp/files"]
      scopes: [files:read]
`, port, asClientID, sha256Hex(asClientSecret))
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestServeAuthServer(t *testing.T) {
	t.Parallel()
	port := testenv.FreeLoopbackPort(t)
	cfg := asDeployment(t, fmt.Sprintf("127.0.0.1:%d", port), port)
	if _, _, err := runXAA(t, nil, "migrate", "--config", cfg); err != nil {
		t.Fatal(err)
	}
	base, log, stop := startServe(t, cfg)
	defer stop()
	waitHealthy(t, base+"/healthz")

	t.Run("metadata", func(t *testing.T) {
		// Under the issuer, and at the RFC 8414 §3.1 path-inserted location.
		for _, path := range []string{"/as/.well-known/oauth-authorization-server", "/.well-known/oauth-authorization-server/as", "/.well-known/openid-configuration/as"} {
			resp, err := http.Get(base + path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s = %d %s", path, resp.StatusCode, body)
			}
			var md struct {
				Issuer        string   `json:"issuer"`
				TokenEndpoint string   `json:"token_endpoint"`
				GrantTypes    []string `json:"grant_types_supported"`
				Profiles      []string `json:"authorization_grant_profiles_supported"`
			}
			if err := json.Unmarshal(body, &md); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if md.Issuer != "http://127.0.0.1/as" || md.TokenEndpoint != "http://127.0.0.1/as/token" {
				t.Errorf("%s: issuer %q, token_endpoint %q", path, md.Issuer, md.TokenEndpoint)
			}
			if !slices.Contains(md.GrantTypes, "urn:ietf:params:oauth:grant-type:jwt-bearer") {
				t.Errorf("%s: grant_types_supported = %q, want the jwt-bearer URN", path, md.GrantTypes)
			}
			if !slices.Contains(md.Profiles, idjag.GrantProfile) {
				t.Errorf("%s: authorization_grant_profiles_supported = %q, want %q", path, md.Profiles, idjag.GrantProfile)
			}
			// Never disclose which issuers are trusted.
			if strings.Contains(string(body), "/idp") {
				t.Errorf("%s discloses a trusted issuer: %s", path, body)
			}
		}
		// The IdP's metadata is still its own.
		resp, err := http.Get(base + "/.well-known/oauth-authorization-server/idp")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("IdP metadata = %d", resp.StatusCode)
		}
	})

	token := func(t *testing.T, id, secret string) (int, string) {
		t.Helper()
		form := url.Values{
			"grant_type": {idjag.GrantTypeJWTBearer},
			"assertion":  {"eyJhbGciOiJFUzI1NiJ9.eyJ4IjoxfQ.c2ln"},
			"resource":   {"http://127.0.0.1/mcp/files"},
		}
		req, err := http.NewRequest(http.MethodPost, base+"/as/token", strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e struct {
			Error string `json:"error"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
			t.Fatalf("token response: %v", err)
		}
		return resp.StatusCode, e.Error
	}
	t.Run("registered client, garbage assertion", func(t *testing.T) {
		// The client authenticated (it was registered from the config),
		// so the grant itself is judged: invalid_grant, not invalid_client.
		if code, e := token(t, asClientID, asClientSecret); code != http.StatusBadRequest || e != "invalid_grant" {
			t.Errorf("token = %d %q, want 400 invalid_grant", code, e)
		}
	})
	t.Run("wrong secret", func(t *testing.T) {
		if code, e := token(t, asClientID, "wrong-secret-0123456789abcdefghijkl"); code != http.StatusUnauthorized || e != "invalid_client" {
			t.Errorf("token = %d %q, want 401 invalid_client", code, e)
		}
	})
	t.Run("unknown client", func(t *testing.T) {
		if code, e := token(t, "nobody", asClientSecret); code != http.StatusUnauthorized || e != "invalid_client" {
			t.Errorf("token = %d %q, want 401 invalid_client", code, e)
		}
	})
	stop()
	if strings.Contains(log.String(), asClientSecret) {
		t.Error("the log holds the client secret")
	}
}

// TestServeAuthServerNeedsResources: the role refuses to start without
// the section rather than running a server that can grant nothing.
func TestServeAuthServerNeedsResources(t *testing.T) {
	t.Parallel()
	cfg := deployment(t, "127.0.0.1:0")
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	base, _, _ := strings.Cut(string(data), "authserver:\n  trusted_issuers:")
	if err := os.WriteFile(cfg, []byte(base), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runXAA(t, nil, "migrate", "--config", cfg); err != nil {
		t.Fatal(err)
	}
	_, _, err = runXAA(t, nil, "serve", "--authserver", "--config", cfg)
	if err == nil || !strings.Contains(err.Error(), "authserver.resources is empty") {
		t.Errorf("serve --authserver = %v; want the missing resources named", err)
	}
}

func TestRegisterClients(t *testing.T) {
	t.Parallel()
	cfgPath := deployment(t, "127.0.0.1:0")
	if _, _, err := runXAA(t, nil, "migrate", "--config", cfgPath); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	db, err := openStore(ctx, cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const realm = "http://127.0.0.1/as"

	jwksFile := t.TempDir() + "/client.jwks.json"
	const jwks = `{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"k1"}]}`
	if err := os.WriteFile(jwksFile, []byte(jwks), 0o600); err != nil {
		t.Fatal(err)
	}
	clients := []config.ASClient{
		{ClientID: "a", AuthMethod: "client_secret_basic", ClientSecretSHA256: sha256Hex("one")},
		{ClientID: "b", AuthMethod: "private_key_jwt", JWKSFile: jwksFile},
	}
	get := func(id string) store.Client {
		t.Helper()
		c, err := db.GetClient(ctx, realm, id)
		if err != nil {
			t.Fatalf("GetClient %s: %v", id, err)
		}
		return c
	}
	digest := func(s string) []byte { d := sha256.Sum256([]byte(s)); return d[:] }

	// First start creates both.
	if err := registerClients(ctx, db, realm, clients, logger); err != nil {
		t.Fatal(err)
	}
	a := get("a")
	if diff := cmp.Diff(store.Client{ID: "a", Name: "a", Realm: realm, AuthMethod: "client_secret_basic", SecretDigest: digest("one")},
		a, cmpIgnoreCreated); diff != "" {
		t.Errorf("client a (-want +got):\n%s", diff)
	}
	if b := get("b"); b.AuthMethod != "private_key_jwt" || string(b.JWKS) != jwks || b.SecretDigest != nil {
		t.Errorf("client b = %+v", b)
	}

	// A restart changes nothing.
	if err := registerClients(ctx, db, realm, clients, logger); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, get("a")); diff != "" {
		t.Errorf("a restart changed client a:\n%s", diff)
	}

	// An operator disables a; the config rotates its secret and method.
	if err := db.UpdateClient(ctx, realm, "a", func(c store.Client) (store.Client, error) { c.Disabled = true; return c, nil }); err != nil {
		t.Fatal(err)
	}
	clients[0].ClientSecretSHA256, clients[0].AuthMethod = sha256Hex("two"), "client_secret_post"
	if err := registerClients(ctx, db, realm, clients, logger); err != nil {
		t.Fatal(err)
	}
	if got := get("a"); !got.Disabled || got.AuthMethod != "client_secret_post" || string(got.SecretDigest) != string(digest("two")) {
		t.Errorf("after the config changed, client a = %+v; want the new credentials and still disabled", got)
	}

	// The IdP realm is a different namespace.
	if _, err := db.GetClient(ctx, store.RealmIdP, "a"); err == nil {
		t.Error("client a registered in the IdP realm")
	}
}

func TestRegisterClientsErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	private := dir + "/private.jwks.json"
	if err := os.WriteFile(private, []byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := dir + "/empty.jwks.json"
	if err := os.WriteFile(empty, []byte(`{"keys":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		c    config.ASClient
		want string
	}{
		{"missing jwks file", config.ASClient{ClientID: "x", AuthMethod: "private_key_jwt", JWKSFile: dir + "/nope"}, "jwks_file"},
		{"private key in jwks file", config.ASClient{ClientID: "x", AuthMethod: "private_key_jwt", JWKSFile: private}, "holds a private key"},
		{"empty jwks", config.ASClient{ClientID: "x", AuthMethod: "private_key_jwt", JWKSFile: empty}, "at least one key"},
		{"bad digest", config.ASClient{ClientID: "x", AuthMethod: "client_secret_basic", ClientSecretSHA256: "zz"}, "64 hex digits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := asStoreClient("https://as.example.com", tt.c)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("asStoreClient = %v; want an error containing %q", err, tt.want)
			}
		})
	}
}
