package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	gojose "github.com/go-jose/go-jose/v4"
)

// hydraGrant is the body of Hydra's POST /admin/trust/grants/jwt-bearer/issuers
// (oauth2/trust/request.go, createGrantRequest).
type hydraGrant struct {
	Issuer          string            `json:"issuer"`
	Subject         string            `json:"subject,omitempty"`
	AllowAnySubject bool              `json:"allow_any_subject,omitempty"`
	Scope           []string          `json:"scope"`
	JWK             gojose.JSONWebKey `json:"jwk"`
	ExpiresAt       time.Time         `json:"expires_at"`
}

// hydraClient is the subset of Hydra's OAuth2 client that the benchmark
// sets (POST /admin/clients).
type hydraClient struct {
	ClientID                string   `json:"client_id"`
	ClientSecret            string   `json:"client_secret"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	Scope                   string   `json:"scope"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
}

// hydraSetupCmd tells a Hydra admin API to trust the key for jwt-bearer
// assertions from -issuer (any subject, the given scopes) and creates the
// confidential client that presents them. Both calls are idempotent here:
// 409 Conflict (already there) is accepted.
func hydraSetupCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("hydra-setup", flag.ContinueOnError)
	admin := fs.String("admin", "http://127.0.0.1:4445", "Hydra admin API base URL")
	keyPath := fs.String("key", "", "PKCS#8 PEM signing key written by keygen (required)")
	issuer := fs.String("issuer", "", "trusted assertion issuer (required)")
	scope := fs.String("scope", "files:read", "space-separated scopes the trust grant and the client allow")
	clientID := fs.String("client-id", "", "client to create (required)")
	secret := fs.String("client-secret", "", "its secret (required)")
	skipGrant := fs.Bool("skip-grant", false, "only create the client (the grant exists)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *keyPath == "" || *issuer == "" || *clientID == "" || *secret == "" {
		return errors.New("hydra-setup: -key, -issuer, -client-id and -client-secret are required")
	}
	k, err := loadSigningKey(*keyPath)
	if err != nil {
		return err
	}
	c := &http.Client{Timeout: 30 * time.Second}
	if !*skipGrant {
		grant := hydraGrant{
			Issuer:          *issuer,
			AllowAnySubject: true,
			Scope:           strings.Fields(*scope),
			JWK:             k.public,
			ExpiresAt:       time.Now().Add(365 * 24 * time.Hour).UTC().Truncate(time.Second),
		}
		status, err := postJSON(ctx, c, *admin+"/admin/trust/grants/jwt-bearer/issuers", grant)
		if err != nil {
			return fmt.Errorf("hydra-setup: trust grant: %w", err)
		}
		fmt.Fprintf(stdout, "trust grant for %s (kid %s, %s): %d\n", *issuer, k.kid, k.alg, status)
	}
	client := hydraClient{
		ClientID:                *clientID,
		ClientSecret:            *secret,
		GrantTypes:              []string{"urn:ietf:params:oauth:grant-type:jwt-bearer"},
		ResponseTypes:           []string{"token"},
		Scope:                   *scope,
		TokenEndpointAuthMethod: "client_secret_basic",
	}
	status, err := postJSON(ctx, c, *admin+"/admin/clients", client)
	if err != nil {
		return fmt.Errorf("hydra-setup: client: %w", err)
	}
	fmt.Fprintf(stdout, "client %s: %d\n", *clientID, status)
	return nil
}

// postJSON posts v and returns the status: 2xx and 409 are success.
func postJSON(ctx context.Context, c *http.Client, url string, v any) (int, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 == 2 || resp.StatusCode == http.StatusConflict {
		return resp.StatusCode, nil
	}
	return resp.StatusCode, fmt.Errorf("%s: %d %s", url, resp.StatusCode, bytes.TrimSpace(msg))
}
