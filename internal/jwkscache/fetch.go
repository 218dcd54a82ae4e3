package jwkscache

import (
	"context"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/openxaa/xaa/internal/jose"
)

const userAgent = "OpenXAA-jwkscache"

// fetch GETs e's JWKS once and returns the validated keys. Any error means
// no keys: a document is taken whole or not at all. A valid document with
// no usable key is a success with an empty key set (see the package doc).
func (c *Cache) fetch(ctx context.Context, e *entry) (*snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	req.Header.Set("User-Agent", userAgent)
	resp, err := e.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()

	if resp.StatusCode != http.StatusOK {
		// Redirects land here too: they are never followed.
		return nil, fmt.Errorf("%w: %d", ErrStatus, resp.StatusCode)
	}
	if err := checkContentType(resp.Header.Values("Content-Type")); err != nil {
		return nil, err
	}
	if resp.ContentLength > c.maxBytes {
		return nil, fmt.Errorf("%w: Content-Length %d > %d", ErrTooLarge, resp.ContentLength, c.maxBytes)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("jwkscache: reading body: %w", err)
	}
	if int64(len(body)) > c.maxBytes {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, c.maxBytes)
	}
	set, err := jose.ParseJWKS(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidJWKS, err)
	}
	keys, err := jose.NewStaticKeySet(set)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidJWKS, err)
	}
	return &snapshot{keys: keys, count: len(set.Keys), expires: c.now().Add(c.ttl(resp.Header))}, nil
}

// checkContentType accepts exactly one Content-Type of application/json or
// application/jwk-set+json (RFC 7517 §8.5.1), with no charset but UTF-8.
func checkContentType(values []string) error {
	if len(values) != 1 {
		return fmt.Errorf("%w: %d Content-Type headers", ErrContentType, len(values))
	}
	mt, params, err := mime.ParseMediaType(values[0])
	if err != nil {
		return fmt.Errorf("%w: %q", ErrContentType, values[0])
	}
	if mt != "application/json" && mt != "application/jwk-set+json" {
		return fmt.Errorf("%w: %q", ErrContentType, mt)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return fmt.Errorf("%w: charset %q", ErrContentType, cs)
	}
	return nil
}

// ttl is how long a response's keys stay fresh: its max-age less its Age,
// clamped to [MinTTL, MaxTTL]; DefaultTTL without a max-age.
func (c *Cache) ttl(h http.Header) time.Duration {
	d, ok := freshness(h)
	if !ok {
		return c.defaultTTL
	}
	return min(max(d, c.minTTL), c.maxTTL)
}

// freshness reads the response's freshness lifetime from Cache-Control and
// Age (RFC 9111 §4.2). ok is false when the response states none. no-store,
// no-cache and any malformed Cache-Control give (0, true): the caller's
// floor then applies, because refetching on every request is exactly what
// the floor prevents. must-revalidate is ignored: serving stale keys during
// an outage is governed by MaxStale instead.
func freshness(h http.Header) (time.Duration, bool) {
	var (
		maxAge    int64
		hasMaxAge bool
		noCache   bool
	)
	for _, line := range h.Values("Cache-Control") {
		for dir := range strings.SplitSeq(line, ",") {
			dir = strings.TrimSpace(dir)
			if dir == "" {
				continue
			}
			name, value, hasValue := strings.Cut(dir, "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "max-age":
				v, ok := deltaSeconds(strings.Trim(strings.TrimSpace(value), `"`))
				if !hasValue || !ok || hasMaxAge {
					return 0, true // malformed or repeated
				}
				maxAge, hasMaxAge = v, true
			case "no-store", "no-cache":
				noCache = true
			}
		}
	}
	switch {
	case noCache:
		return 0, true
	case !hasMaxAge:
		return 0, false
	}
	if ages := h.Values("Age"); len(ages) == 1 {
		if age, ok := deltaSeconds(strings.TrimSpace(ages[0])); ok {
			maxAge = max(maxAge-age, 0)
		}
	}
	return time.Duration(maxAge) * time.Second, true
}

// deltaSeconds parses RFC 9111 delta-seconds. Values too large to
// represent become 2^31 seconds, as §1.2.2 asks.
func deltaSeconds(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v > math.MaxInt32 {
		return math.MaxInt32 + 1, true
	}
	return v, true
}
