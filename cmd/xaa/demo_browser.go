package main

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/openxaa/xaa/internal/directory"
)

var (
	demoCSRF   = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)
	demoAction = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
	demoError  = regexp.MustCompile(`<p class="error" role="alert">([^<]+)</p>`)
)

// demoUser is who the unattended demo signs in as.
type demoUser struct {
	username, password string
	totp               []byte // nil: no second factor
}

// scriptedBrowser stands in for a person at the IdP's login page in
// `xaa demo --check`: it fills in the real form (password, then the TOTP
// code computed from the seeded secret) and follows the redirect back to
// the client's loopback listener, as a browser would.
func scriptedBrowser(u demoUser) func(ctx context.Context, authURL string) error {
	return func(ctx context.Context, authURL string) error {
		// A code is good once (replay protection): when a second demo run
		// signs alice in within the same 30 s step, the next step's code,
		// which the IdP accepts for clock skew, is the one to type.
		step := directory.TOTPStep(time.Now())
		err := signIn(ctx, u, authURL, step)
		if err != nil && u.totp != nil && strings.Contains(err.Error(), "already used") {
			err = signIn(ctx, u, authURL, step+1)
		}
		return err
	}
}

func signIn(ctx context.Context, u demoUser, authURL string, totpStep int64) error {
	start, err := url.Parse(authURL)
	if err != nil {
		return err
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		return err
	}
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if req.URL.Host != start.Host {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	get := func(req *http.Request) (*http.Response, string, error) {
		resp, err := c.Do(req.WithContext(ctx))
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp, string(b), err
	}
	req, _ := http.NewRequest(http.MethodGet, authURL, nil)
	resp, body, err := get(req)
	if err != nil {
		return err
	}
	for step := 0; step < 4; step++ {
		if resp.StatusCode == http.StatusSeeOther || resp.StatusCode == http.StatusFound {
			// Back to the client's redirect URI: deliver it.
			loc, err := resp.Location()
			if err != nil {
				return err
			}
			req, _ := http.NewRequest(http.MethodGet, loc.String(), nil)
			r, _, err := get(req)
			if err != nil {
				return fmt.Errorf("deliver the redirect: %w", err)
			}
			if r.StatusCode >= 400 {
				return fmt.Errorf("the client's redirect listener answered %d", r.StatusCode)
			}
			return nil
		}
		csrf, action := demoCSRF.FindStringSubmatch(body), demoAction.FindStringSubmatch(body)
		if resp.StatusCode != http.StatusOK || csrf == nil || action == nil {
			if m := demoError.FindStringSubmatch(body); m != nil {
				return fmt.Errorf("the IdP said: %s", html.UnescapeString(m[1]))
			}
			return fmt.Errorf("the IdP answered %d without a login form", resp.StatusCode)
		}
		isOTP := strings.Contains(body, `name="otp"`)
		if m := demoError.FindStringSubmatch(body); m != nil && step > 0 {
			return fmt.Errorf("the IdP said: %s", html.UnescapeString(m[1]))
		}
		form := url.Values{"csrf_token": {html.UnescapeString(csrf[1])}}
		if isOTP {
			if u.totp == nil {
				return errors.New("the IdP asks for a one-time code and this user has none")
			}
			form.Set("otp", directory.TOTPCode(u.totp, totpStep))
		} else {
			form.Set("username", u.username)
			form.Set("password", u.password)
		}
		target, err := resp.Request.URL.Parse(html.UnescapeString(action[1]))
		if err != nil {
			return err
		}
		req, _ := http.NewRequest(http.MethodPost, target.String(), strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if resp, body, err = get(req); err != nil {
			return err
		}
	}
	return errors.New("the login did not finish in four steps")
}
