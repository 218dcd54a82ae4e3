package xaaclient

import (
	"context"
	"crypto/rand"
	"fmt"
	"math"
	"time"
)

// externalSession is the session of an ID token the application supplies
// (Options.IDToken). The token is the application's and the IdP verifies
// it at the exchange; the client only reads the claims it keys its cache
// with. rejected is a token the IdP refused: the application is asked
// again, and the same token a second time is ErrLoginRequired.
func (c *Client) externalSession(ctx context.Context, rejected string) (*session, error) {
	raw, err := c.opts.IDToken(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: the application's ID token: %w", ErrLoginRequired, err)
	}
	if raw == "" {
		return nil, fmt.Errorf("%w: the application supplied no ID token", ErrLoginRequired)
	}
	if raw == rejected {
		return nil, fmt.Errorf("%w: the IdP refused the application's ID token and it supplied the same one again", ErrLoginRequired)
	}
	cl, err := peekIDToken(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: the application's ID token: %v", ErrLoginFailed, err)
	}
	if !cl.Expiry.IsZero() && !c.opts.Now().Before(cl.Expiry) {
		return nil, fmt.Errorf("%w: the application's ID token expired at %s", ErrLoginRequired, cl.Expiry.Format(time.RFC3339))
	}
	st, err := c.current()
	if err != nil {
		return nil, err
	}
	if s := st.Session; s != nil && s.IDToken == raw {
		return s, nil
	}
	// No exp: the IdP decides; the client holds it for the default
	// margin only, so the application is asked again soon.
	expiry := cl.Expiry
	if expiry.IsZero() {
		expiry = c.opts.Now().Add(idTokenMargin + time.Minute)
	}
	s := &session{LoginID: rand.Text(), Subject: cl.Subject, IDToken: raw, IDTokenExpiry: expiry, AuthTime: cl.AuthTime, ACR: cl.ACR}
	if err := c.saveSession(s); err != nil {
		return nil, err
	}
	c.log.InfoContext(ctx, "using the application's ID token", "issuer", c.opts.Issuer, "sub", cl.Subject, "id_token_jti", clip(cl.JTI))
	return s, nil
}

// peekIDToken reads, without verifying, the claims of an ID token the
// application supplied. A token without sub, or with a malformed exp,
// auth_time or acr, is refused: the cache would be keyed by nonsense.
func peekIDToken(raw string) (*idClaims, error) {
	_, claims, err := peekJWT(raw)
	if err != nil {
		return nil, fmt.Errorf("not a JWT: %v", err)
	}
	sub, ok := claims["sub"].(string)
	if !ok || sub == "" {
		return nil, fmt.Errorf("no sub claim")
	}
	out := &idClaims{Subject: sub}
	out.JTI, _ = claims["jti"].(string)
	if v, present := claims["acr"]; present {
		if out.ACR, ok = v.(string); !ok {
			return nil, fmt.Errorf("acr is not a string")
		}
	}
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"exp", &out.Expiry}, {"auth_time", &out.AuthTime}} {
		v, present := claims[f.name]
		if !present {
			continue
		}
		n, ok := v.(float64)
		if !ok || n <= 0 || n > 253402300799 || math.IsNaN(n) {
			return nil, fmt.Errorf("%s is not a NumericDate", f.name)
		}
		*f.dst = time.Unix(int64(n), 0).UTC()
	}
	return out, nil
}
