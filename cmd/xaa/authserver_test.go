package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/openxaa/xaa/internal/config"
	"github.com/openxaa/xaa/internal/store"
	"github.com/openxaa/xaa/internal/testenv"
)

// TestServeResourcePolicyAndFences: the configured tool policy reaches
// /resource-policy through serve, and a fence added with the CLI against
// the same database appears at once in the running server's revocation
// list.
func TestServeResourcePolicyAndFences(t *testing.T) {
	t.Parallel()
	port := testenv.FreeLoopbackPort(t)
	cfg := asDeployment(t, fmt.Sprintf("127.0.0.1:%d", port), port)
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	withTools := strings.Replace(string(data), "      access_token_lifetime: 5m\n", `      access_token_lifetime: 5m
      tools:
        read_file: {scopes: [files:read]}
        write_file: {scopes: [files:write], acr_values: [urn:openxaa:acr:mfa], max_age: 10m}
`, 1)
	if err := os.WriteFile(cfg, []byte(withTools), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runXAA(t, nil, "migrate", "--config", cfg); err != nil {
		t.Fatal(err)
	}
	base, _, stop := startServe(t, cfg)
	defer stop()
	waitHealthy(t, base+"/healthz")

	get := func(path string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth(url.QueryEscape(asClientID), url.QueryEscape(asClientSecret))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(body))
	}

	code, body := get("/as/resource-policy?resource=" + url.QueryEscape("http://127.0.0.1/mcp/files"))
	want := `{"resource":"http://127.0.0.1/mcp/files","scopes":["files:read","files:write"],"access_token_lifetime":300,` +
		`"tools":{"read_file":{"scopes":["files:read"]},"write_file":{"scopes":["files:write"],"acr_values":["urn:openxaa:acr:mfa"],"max_age":600}}}`
	if code != http.StatusOK || body != want {
		t.Errorf("resource policy = %d %s\nwant %s", code, body, want)
	}

	if _, _, err := runXAA(t, nil, "fence", "add", "--config", cfg, "--sub", "http://127.0.0.1/idp|alice", "--reason", "offboarded"); err != nil {
		t.Fatalf("fence add: %v", err)
	}
	code, body = get("/as/revocations")
	if code != http.StatusOK || !strings.Contains(body, `"fences":[{"client_id":"","sub":"http://127.0.0.1/idp|alice","not_before":`) {
		t.Errorf("revocation list = %d %s; want the fence", code, body)
	}
}

// TestSyncTrustedIssuers: the config is the one source of the stored
// trusted issuers: rows are created, updated when the config changes,
// left alone when it does not, and disabled when the config drops them.
func TestSyncTrustedIssuers(t *testing.T) {
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
	ctx := t.Context()
	db, err := openStore(ctx, cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const realm = "https://as.example.com"
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	row := func(iss string, at time.Time) store.TrustedIssuer {
		return store.TrustedIssuer{Realm: realm, Issuer: iss, JWKSURI: iss + "/jwks.json", CreatedAt: at, UpdatedAt: at}
	}
	a, b := row("https://idp-a.example.com", t0), row("https://idp-b.example.com", t0)
	b.Algorithms = []string{"EdDSA"}
	list := func() []store.TrustedIssuer {
		t.Helper()
		got, err := db.ListTrustedIssuers(ctx, realm)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}

	if err := syncTrustedIssuers(ctx, db, realm, []store.TrustedIssuer{a, b}, logger); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]store.TrustedIssuer{a, b}, list()); d != "" {
		t.Fatalf("first sync (-want +got):\n%s", d)
	}

	// A restart with the same config changes nothing, not even times.
	t1 := t0.Add(time.Hour)
	if err := syncTrustedIssuers(ctx, db, realm, []store.TrustedIssuer{row(a.Issuer, t1), func() store.TrustedIssuer {
		r := row(b.Issuer, t1)
		r.Algorithms = []string{"EdDSA"}
		return r
	}()}, logger); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]store.TrustedIssuer{a, b}, list()); d != "" {
		t.Fatalf("a restart changed rows (-want +got):\n%s", d)
	}

	// The config disables B and drops A: B follows, A is disabled.
	t2 := t0.Add(2 * time.Hour)
	b2 := row(b.Issuer, t2)
	b2.Disabled = true
	if err := syncTrustedIssuers(ctx, db, realm, []store.TrustedIssuer{b2}, logger); err != nil {
		t.Fatal(err)
	}
	got := list()
	if len(got) != 2 || !got[0].Disabled || got[0].Issuer != a.Issuer || !got[1].Disabled || got[1].Algorithms != nil ||
		!got[1].UpdatedAt.Equal(t2) || !got[1].CreatedAt.Equal(t0) {
		t.Errorf("after the config changed: %+v", got)
	}

	// Instances starting together on a fresh realm all succeed.
	const other = "https://as2.example.com"
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			r := row("https://idp-c.example.com", t0)
			r.Realm = other
			errs <- syncTrustedIssuers(ctx, db, other, []store.TrustedIssuer{r}, logger)
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Errorf("concurrent sync: %v", err)
		}
	}
}
