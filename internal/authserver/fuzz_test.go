package authserver

import (
	"bytes"
	"net/http"
	"net/url"
	"testing"

	"github.com/openxaa/xaa/idjag"
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
