package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxASBody caps every document read from an authorization server: a
// revocation page of 1000 entries is about 150 KiB.
const maxASBody = 4 << 20

// asClient is the gateway's client at one authorization server. It sends
// client_secret_basic (RFC 6749 §2.3.1: id and secret form-encoded before
// base64) and never follows redirects, so the credentials go only to the
// endpoints the metadata named.
type asClient struct {
	http     *http.Client
	clientID string
	secret   string
}

// defaultASClient is the HTTP client for authorization-server calls: no
// proxy from the environment, no redirects, bounded time.
func defaultASClient() *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			Proxy:                 nil,
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: 10 * time.Second,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       90 * time.Second,
			ForceAttemptHTTP2:     true,
		},
		CheckRedirect: noRedirects,
	}
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// oauthError is an authorization server's error answer. Its text comes
// from the server, clipped; it never holds our credentials.
type oauthError struct {
	Status      int
	Code        string
	Description string
}

func (e *oauthError) Error() string {
	msg := fmt.Sprintf("HTTP %d", e.Status)
	if e.Code != "" {
		msg += " " + e.Code
	}
	if e.Description != "" {
		msg += ": " + e.Description
	}
	return msg
}

// getJSON fetches u (with client authentication when auth is set) and
// decodes a 200 JSON answer into v.
func (c *asClient) getJSON(ctx context.Context, u string, auth bool, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if auth {
		req.SetBasicAuth(url.QueryEscape(c.clientID), url.QueryEscape(c.secret))
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxASBody+1))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if len(body) > maxASBody {
		return fmt.Errorf("answer larger than %d bytes", maxASBody)
	}
	if resp.StatusCode != http.StatusOK {
		e := &oauthError{Status: resp.StatusCode}
		var oe struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if json.Unmarshal(body, &oe) == nil {
			e.Code, e.Description = clip(oe.Error, 64), clip(oe.Description, 256)
		}
		return e
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return fmt.Errorf("answer is %s, not application/json", clip(ct, 64))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("answer is not the expected JSON: %w", err)
	}
	return nil
}

// clip bounds a server-supplied string for logs and errors, and drops
// control characters.
func clip(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// errNotLoopback is returned for an http endpoint that is not on loopback.
var errNotLoopback = errors.New("gateway: plain http is allowed only to loopback hosts in development")
