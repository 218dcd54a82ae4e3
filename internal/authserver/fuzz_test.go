package authserver

import (
	"bytes"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/openxaa/xaa/idjag"
	"github.com/openxaa/xaa/internal/oauth"
	"github.com/openxaa/xaa/internal/store"
)

// FuzzJWTBearerForm sends arbitrary bodies, as client1 over Basic, through
// the real handler. It must never answer 5xx, and a 200 is allowed only
// for an assertion the harness itself minted (nothing the fuzzer builds
// can carry a valid signature).
func FuzzJWTBearerForm(f *testing.F) {
	h := newHarness(f, nil)
	minted := map[string]bool{}
	good := func(edit ...func(claims)) string {
		tok := h.good(edit...)
		minted[tok] = true
		return tok
	}
	for _, body := range []string{
		jb(good()).Encode(),
		jb(good()).Encode() + "&scope=a+c&code=",
		jb(good()).Encode() + "&resource=" + url.QueryEscape(resMCP),
		jb(good(func(c claims) { c["resource"] = []string{resMCP, resOther} })).Encode(),
		jb(good(func(c claims) { c["client_id"] = client2 })).Encode(),
		"grant_type=" + url.QueryEscape(idjag.GrantTypeJWTBearer) + "&assertion=a.b.c",
		"grant_type=" + url.QueryEscape(idjag.GrantTypeJWTBearer) + "&assertion=x&assertion=y",
		"grant_type=client_credentials",
		"assertion=%ZZ&grant_type=",
		"",
	} {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		h := h.with(t)
		req, err := http.NewRequest(http.MethodPost, h.hs.URL+"/token", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(client1, client1Sec)
		resp, err := h.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		switch {
		case resp.StatusCode >= 500:
			t.Fatalf("status %d for body %q", resp.StatusCode, body)
		case resp.StatusCode == http.StatusOK:
			v, err := url.ParseQuery(string(body))
			if err != nil || !minted[v.Get("assertion")] {
				t.Fatalf("200 for an assertion the harness did not mint: %q", body)
			}
		}
	})
}

// FuzzResourcePolicy asks for arbitrary resource values as each caller.
// A policy is returned only for a resource whose canonical form the
// caller's policy lists, and names exactly that resource; every other
// answer is invalid_request or invalid_target.
func FuzzResourcePolicy(f *testing.F) {
	h := newHarness(f, nil)
	for _, s := range []string{resMCP, resOther, resForeign, "HTTPS://MCP.example.com:443/mcp", resMCP + "#f", "", "/x", "%00", "https://mcp.example.com/mcp/"} {
		f.Add(s, 0)
		f.Add(s, 1)
	}
	callers := []string{client1, client2, clientNoPol, ""}
	f.Fuzz(func(t *testing.T, raw string, who int) {
		caller := callers[uint(who)%uint(len(callers))]
		p, err := h.srv.resourcePolicy(caller, raw)
		if err != nil {
			oe, ok := errors.AsType[*oauth.Error](err)
			if !ok || (oe.Code != oauth.CodeInvalidTarget && oe.Code != oauth.CodeInvalidRequest) {
				t.Fatalf("resourcePolicy(%q, %q) = %v; want invalid_target or invalid_request", caller, raw, err)
			}
			return
		}
		c, cerr := store.CanonicalResource(raw)
		pol := h.cfg.Clients[caller]
		if cerr != nil || p.Resource != c || !slices.Contains(pol.Resources, c) {
			t.Fatalf("caller %q got the policy of %q for %q", caller, p.Resource, raw)
		}
	})
}

// FuzzFenceNotBefore: for any instant a fence is raised, every token
// issued up to that instant is dead under it (iat has second precision,
// so also one issued earlier in the same second), a token issued at the
// published not_before is alive, and not_before is at most a second
// later than the instant.
func FuzzFenceNotBefore(f *testing.F) {
	for _, ns := range []int64{0, 1, 999_999_999, 1_000_000_000, testNow.UnixNano(), testNow.UnixNano() + 1, -1} {
		f.Add(ns, int64(0))
	}
	f.Fuzz(func(t *testing.T, ns, earlier int64) {
		now := time.Unix(0, ns).UTC()
		nb := fenceNotBefore(now)
		pub := fenceSeconds(nb)
		before := now.Add(-time.Duration(uint64(earlier) % uint64(24*time.Hour)))
		switch {
		case !deadUnder(now, nb):
			t.Fatalf("raised at %v: a token issued at that instant survives not_before %d", now, pub)
		case !deadUnder(now.Truncate(time.Second), nb) || !deadUnder(before, nb):
			t.Fatalf("raised at %v: a token issued earlier survives not_before %d", now, pub)
		case deadUnder(time.Unix(pub, 0), nb):
			t.Fatalf("raised at %v: a token issued at the published not_before %d is dead", now, pub)
		case !nb.After(now) || nb.Sub(now) > time.Second || pub != nb.Unix():
			t.Fatalf("raised at %v: not_before %v (published %d) is not the next whole second", now, nb, pub)
		}
	})
}
