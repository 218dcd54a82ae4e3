package xaaclient

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/openxaa/xaa/internal/jose"
)

// maxResponseBody caps every JSON document the client reads.
const maxResponseBody = 1 << 20

// errNotFound is a metadata location that does not exist (404 or 410):
// discovery moves on to the next one.
var errNotFound = errors.New("xaaclient: not found")

// getJSON fetches a metadata document. Redirects are not followed: a
// metadata URL that moves is a misconfiguration the client should not
// paper over (and following one could reach an unchecked origin).
func (c *Client) getJSON(ctx context.Context, what, rawURL string, out any) error {
	if _, err := c.checkURL(what, rawURL); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrDiscovery, what, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.noRedirect().Do(req)
	if err != nil {
		return fmt.Errorf("%w: %s %s: %v", ErrDiscovery, what, rawURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody+1))
	if err != nil {
		return fmt.Errorf("%w: %s %s: %v", ErrDiscovery, what, rawURL, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return fmt.Errorf("%w: %s %s", errNotFound, what, rawURL)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("%w: %s %s answered %d", ErrDiscovery, what, rawURL, resp.StatusCode)
	case len(body) > maxResponseBody:
		return fmt.Errorf("%w: %s %s is larger than %d bytes", ErrDiscovery, what, rawURL, maxResponseBody)
	case !isJSON(resp.Header.Get("Content-Type")):
		return fmt.Errorf("%w: %s %s is %q, not JSON", ErrDiscovery, what, rawURL, clip(resp.Header.Get("Content-Type")))
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%w: %s %s: %v", ErrDiscovery, what, rawURL, err)
	}
	return nil
}

func (c *Client) noRedirect() *http.Client {
	hc := *c.opts.HTTPClient
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &hc
}

func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// oauthErrorBody is RFC 6749 §5.2, plus the RFC 9470 step-up members.
type oauthErrorBody struct {
	Error       string          `json:"error"`
	Description string          `json:"error_description"`
	ACRValues   string          `json:"acr_values"`
	MaxAge      json.RawMessage `json:"max_age"`
}

// tokenError is a non-200 token endpoint answer, before classification.
type tokenError struct {
	endpoint string
	status   int
	body     oauthErrorBody
}

func (e *tokenError) Error() string { return e.oauth().Error() }

func (e *tokenError) oauth() *OAuthError {
	return &OAuthError{Endpoint: e.endpoint, StatusCode: e.status, Code: clip(e.body.Error), Description: clip(e.body.Description)}
}

// postToken authenticates as creds and posts form to a token endpoint of
// the server whose issuer is aud. A 200 JSON body is decoded into out; any
// other answer is a *tokenError (an OAuth error body) or a plain error.
func (c *Client) postToken(ctx context.Context, endpoint, what, aud string, creds Credentials, form url.Values, out any) error {
	if _, err := c.checkURL(what, endpoint); err != nil {
		return err
	}
	header := http.Header{}
	header.Set("Content-Type", "application/x-www-form-urlencoded")
	header.Set("Accept", "application/json")
	switch creds.AuthMethod {
	case AuthMethodSecretBasic:
		// RFC 6749 §2.3.1: both parts form-encoded before Basic.
		basic := url.QueryEscape(creds.ClientID) + ":" + url.QueryEscape(creds.ClientSecret)
		header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(basic)))
	case AuthMethodSecretPost:
		form.Set("client_id", creds.ClientID)
		form.Set("client_secret", creds.ClientSecret)
	case AuthMethodNone:
		form.Set("client_id", creds.ClientID)
	case AuthMethodPrivateKeyJWT:
		assertion, err := c.clientAssertion(ctx, creds, aud)
		if err != nil {
			return err
		}
		form.Set("client_id", creds.ClientID)
		form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		form.Set("client_assertion", assertion)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("xaaclient: %s: %v", what, err)
	}
	req.Header = header
	resp, err := c.noRedirect().Do(req)
	if err != nil {
		// The error names the URL only; the form (and its tokens) is
		// never part of it.
		return fmt.Errorf("xaaclient: %s: %v", what, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody+1))
	if err != nil {
		return fmt.Errorf("xaaclient: %s: reading the response: %v", what, err)
	}
	if len(body) > maxResponseBody {
		return fmt.Errorf("%w: %s answered more than %d bytes", ErrInvalidResponse, what, maxResponseBody)
	}
	if resp.StatusCode != http.StatusOK {
		te := &tokenError{endpoint: what, status: resp.StatusCode}
		if isJSON(resp.Header.Get("Content-Type")) && json.Unmarshal(body, &te.body) == nil && te.body.Error != "" {
			return te
		}
		return fmt.Errorf("%w: %s answered %d without an OAuth error body", ErrInvalidResponse, what, resp.StatusCode)
	}
	if !isJSON(resp.Header.Get("Content-Type")) {
		return fmt.Errorf("%w: %s answered %q, not JSON", ErrInvalidResponse, what, clip(resp.Header.Get("Content-Type")))
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInvalidResponse, what, err)
	}
	return nil
}

// clientAssertion is an RFC 7523 §2.2 private_key_jwt assertion for the
// server whose issuer is aud (draft-ietf-oauth-rfc7523bis: the issuer is
// the audience), valid for one minute and never reused.
func (c *Client) clientAssertion(ctx context.Context, creds Credentials, aud string) (string, error) {
	alg := jose.EdDSA
	if _, ok := creds.PrivateKey.Public().(*ecdsa.PublicKey); ok {
		alg = jose.ES256
	}
	signer, err := jose.NewLocalSigner(creds.PrivateKey, alg)
	if err != nil {
		return "", fmt.Errorf("xaaclient: client assertion key: %w", err)
	}
	now := c.opts.Now()
	claims := map[string]any{
		"iss": creds.ClientID, "sub": creds.ClientID, "aud": aud,
		"jti": rand.Text(), "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(),
	}
	return signer.Sign(ctx, jose.TypeJWT, claims)
}

// expiresIn reads an expires_in member, which some servers send as a
// string. ok is false when it is absent or unusable.
func expiresIn(raw json.RawMessage) (time.Duration, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, false
	}
	s := strings.Trim(string(raw), `"`)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > 366*24*3600 {
		return 0, false
	}
	return time.Duration(n) * time.Second, true
}
