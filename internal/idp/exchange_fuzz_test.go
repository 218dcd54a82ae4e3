package idp

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/openxaa/xaa/idjag"
	"github.com/openxaa/xaa/internal/store"
)

// FuzzTokenExchangeForm sends arbitrary bodies through the real handler as
// an authenticated client. Invariants: never a 5xx; a 200 only for a body
// that is a valid good exchange (the right grant, token type, audience,
// resource and our own ID token as the subject).
func FuzzTokenExchangeForm(f *testing.F) {
	h := newHarness(f, nil)
	good := h.goodTE(h.idToken(idTokenOpts{}))
	f.Add(good.Encode())
	for _, mut := range []func(url.Values){
		func(v url.Values) { v.Del("resource") },
		func(v url.Values) { v.Set("resource", testResource+"#x") },
		func(v url.Values) { v.Set("audience", testAS+"/") },
		func(v url.Values) { v.Set("subject_token_type", idjag.TokenTypeRefreshToken) },
		func(v url.Values) { v.Set("scope", "files:read files:write admin") },
		func(v url.Values) { v.Set("subject_token", tamper(v.Get("subject_token"))) },
		func(v url.Values) { v.Set("requested_token_type", idjag.TokenTypeIDToken) },
	} {
		v := url.Values{}
		for k, vs := range good {
			v[k] = append([]string(nil), vs...)
		}
		mut(v)
		f.Add(v.Encode())
	}
	f.Add(good.Encode() + "&audience=x")
	f.Add("grant_type=" + url.QueryEscape(idjag.GrantTypeTokenExchange) + "&subject_token=%00")
	f.Add("%zz=1")
	f.Fuzz(func(t *testing.T, body string) {
		h := h.with(t)
		r := h.postRaw(app1, app1Secret, body)
		if r.status >= 500 {
			t.Fatalf("status %d for %q: %s", r.status, body, r.raw)
		}
		if r.status != http.StatusOK {
			return
		}
		v, err := url.ParseQuery(body)
		res, cerr := store.CanonicalResource(v.Get("resource"))
		if err != nil || cerr != nil || res != testResource ||
			v.Get("grant_type") != idjag.GrantTypeTokenExchange ||
			v.Get("requested_token_type") != idjag.TokenType ||
			v.Get("audience") != testAS ||
			v.Get("subject_token_type") != idjag.TokenTypeIDToken ||
			v.Get("subject_token") != good.Get("subject_token") {
			t.Fatalf("200 for a body that is not a good exchange: %q", body)
		}
		h.verifyIDJAG(r.str("access_token"))
	})
}
