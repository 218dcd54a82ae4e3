package authserver

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openxaa/xaa/internal/jose"
	"github.com/openxaa/xaa/internal/secevent"
	"github.com/openxaa/xaa/internal/store"
)

// setClaimsFor is a good SET from iss: revoke alice's tokens for client1
// issued before testNow + 1 s.
func setClaimsFor(iss string) claims {
	return claims{
		"iss": iss, "aud": asIssuer, "jti": randomJTI(),
		"iat": testNow.Unix(), "exp": testNow.Add(2 * time.Minute).Unix(),
		"events": map[string]any{secevent.EventAccessRevoked: map[string]any{
			"subject":           map[string]any{"format": "iss_sub", "iss": iss, "sub": "alice"},
			"client_id":         client1,
			"connection_id":     "c_123",
			"not_before":        testNow.Add(time.Second).Unix(),
			"event_timestamp":   testNow.Unix(),
			"initiating_entity": "admin",
			"reason_admin":      map[string]any{"en": "connection revoked"},
		}},
	}
}

// event returns the event object of c for editing.
func event(c claims) map[string]any {
	return c["events"].(map[string]any)[secevent.EventAccessRevoked].(map[string]any)
}

type setResult struct {
	status int
	header http.Header
	body   secevent.DeliveryError
	raw    string
}

func (h *harness) postSET(raw, contentType string) setResult {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.hs.URL+"/set", strings.NewReader(raw))
	if err != nil {
		h.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := setResult{status: resp.StatusCode, header: resp.Header, raw: string(b)}
	if resp.StatusCode == http.StatusBadRequest {
		if err := json.Unmarshal(b, &r.body); err != nil {
			h.t.Fatalf("400 body is not JSON: %q", b)
		}
	}
	return r
}

func (h *harness) fenceOf(clientID, sub string) time.Time {
	h.t.Helper()
	nb, err := h.db.FenceNotBefore(context.Background(), asIssuer, clientID, sub)
	if err != nil {
		h.t.Fatal(err)
	}
	return nb
}

// TestSETReceiverAccepts: a good SET raises the fence its event names, in
// one transaction with its audit record, and the fence then refuses an
// ID-JAG issued before it (issue 7: the authorization server refuses
// ID-JAGs issued before the revocation).
func TestSETReceiverAccepts(t *testing.T) {
	t.Parallel()
	local := idpA + "|alice"
	tests := []struct {
		name       string
		edit       func(claims)
		client     string
		sub        string
		notBefore  time.Time
		wantFenced bool
	}{
		{"subject and client", nil, client1, local, testNow.Add(time.Second), true},
		{"subject only: the user is disabled", func(c claims) { delete(event(c), "client_id") }, "", local, testNow.Add(time.Second), true},
		{"client only: the app's access ends", func(c claims) { delete(event(c), "subject") }, client1, "", testNow.Add(time.Second), true},
		{"not_before in the past: the fence is at receipt", func(c claims) { event(c)["not_before"] = testNow.Add(-time.Hour).Unix() },
			client1, local, testNow.Add(time.Second), true},
		{"not_before slightly ahead of this clock", func(c claims) { event(c)["not_before"] = testNow.Add(20 * time.Second).Unix() },
			client1, local, testNow.Add(20 * time.Second), true},
		{"no reason, no connection", func(c claims) { delete(event(c), "reason_admin"); delete(event(c), "connection_id") },
			client1, local, testNow.Add(time.Second), true},
		{"application/ typ prefix", nil, client1, local, testNow.Add(time.Second), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, nil)
			c := setClaimsFor(idpA)
			if tc.edit != nil {
				tc.edit(c)
			}
			typ := jose.TypeSET
			if strings.HasPrefix(tc.name, "application/") {
				typ = "application/" + jose.TypeSET
			}
			r := h.postSET(h.a.mint(t, c, typ), secevent.ContentType)
			if r.status != http.StatusAccepted {
				t.Fatalf("got %d %s, want 202", r.status, r.raw)
			}
			if got := h.fenceOf(tc.client, tc.sub); !got.Equal(tc.notBefore) {
				t.Errorf("fence of (%q, %q) = %v, want %v", tc.client, tc.sub, got, tc.notBefore)
			}
			evs := h.audit(AuditFenceRaised)
			if len(evs) != 1 || evs[0].Data["set_jti"] != c["jti"] || evs[0].Actor != "secevent:"+idpA || evs[0].Rule != ruleFenceRaised {
				t.Fatalf("audit = %+v, want one fence.raised naming the SET", evs)
			}
			// An ID-JAG issued before the fence is refused, its jti not burned.
			jag := h.good()
			wantError(t, h.post(jb(jag)), http.StatusBadRequest, "invalid_grant")
			if denied := h.audit(AuditAccessTokenDenied); len(denied) != 1 || denied[0].Rule != ruleFenceNotBefore {
				t.Errorf("denial audit = %+v, want rule %s", denied, ruleFenceNotBefore)
			}
		})
	}
}

// TestSETReceiverReplay: a SET whose jti was received already is
// acknowledged again and changes nothing.
func TestSETReceiverReplay(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	raw := h.a.mint(t, setClaimsFor(idpA), jose.TypeSET)
	for i := range 3 {
		if r := h.postSET(raw, secevent.ContentType); r.status != http.StatusAccepted {
			t.Fatalf("delivery %d: %d %s", i+1, r.status, r.raw)
		}
	}
	fences, _, err := h.db.ListFences(context.Background(), asIssuer, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(h.audit(AuditFenceRaised)); n != 1 || len(fences) != 1 || fences[0].Cursor != 1 {
		t.Errorf("%d audit records, fences %+v; want one of each, raised once", n, fences)
	}
}

// TestSETReceiverUnknownSubject: a subject the issuer's subject mapping
// refuses holds no tokens here; the SET is acknowledged and audited, and
// nothing is fenced.
func TestSETReceiverUnknownSubject(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	c := setClaimsFor(idpA)
	event(c)["subject"].(map[string]any)["sub"] = blockedSub
	if r := h.postSET(h.a.mint(t, c, jose.TypeSET), secevent.ContentType); r.status != http.StatusAccepted {
		t.Fatalf("got %d %s", r.status, r.raw)
	}
	evs := h.audit(AuditFenceRaised)
	if len(evs) != 1 || evs[0].Rule != ruleFenceSkipped {
		t.Errorf("audit = %+v, want one %s record", evs, ruleFenceSkipped)
	}
	if nb := h.fenceOf(client1, idpA+"|"+blockedSub); !nb.IsZero() {
		t.Errorf("fence %v for a refused subject", nb)
	}
}

// TestSETReceiverRefuses: every bad SET is refused with RFC 8935's 400
// and the right err code, and nothing is written: no fence, no audit
// record, no replay row (the same jti is accepted afterwards when good).
func TestSETReceiverRefuses(t *testing.T) {
	t.Parallel()
	evil := newIdP(t, idpEvil, jose.ES256)
	stranger := newIdP(t, idpA, jose.ES256) // claims to be A, key unknown to A's set
	off := newIdP(t, idpOff, jose.ES256)
	const (
		badReq  = secevent.ErrCodeInvalidRequest
		badIss  = secevent.ErrCodeInvalidIssuer
		badKey  = secevent.ErrCodeInvalidKey
		badSig  = secevent.ErrCodeAuthenticationFailed
		badAud  = secevent.ErrCodeInvalidAudience
		typeSET = jose.TypeSET
	)
	type sigFn func(h *harness, c claims) string
	signA := func(typ string) sigFn { return func(h *harness, c claims) string { return h.a.mint(t, c, typ) } }
	edit := func(f func(claims)) func(claims) { return f }
	tests := []struct {
		name        string
		contentType string
		edit        func(claims)
		sign        sigFn
		raw         func(h *harness, good string) string
		code        string
	}{
		{name: "content type json", contentType: "application/json", code: badReq},
		{name: "no content type", contentType: "-", code: badReq},
		{name: "empty body", raw: func(*harness, string) string { return "" }, code: badReq},
		{name: "not a JWT", raw: func(*harness, string) string { return "garbage" }, code: badReq},
		{name: "larger than the cap", raw: func(_ *harness, good string) string { return good + strings.Repeat("A", jose.DefaultMaxSize) }, code: badReq},
		{name: "two tokens", raw: func(_ *harness, good string) string { return good + "\n" + good }, code: badReq},
		{name: "typ JWT", sign: signA(jose.TypeJWT), code: badReq},
		{name: "no typ", sign: signA(""), code: badReq},
		{name: "an ID-JAG", sign: signA("oauth-id-jag+jwt"), code: badReq},
		{name: "an access token", sign: signA(jose.TypeAccessToken), code: badReq},
		{name: "untrusted issuer", edit: edit(func(c claims) {
			c["iss"] = idpEvil
			event(c)["subject"].(map[string]any)["iss"] = idpEvil
		}), sign: func(_ *harness, c claims) string { return evil.mint(t, c, typeSET) }, code: badIss},
		{name: "disabled issuer", edit: edit(func(c claims) {
			c["iss"] = idpOff
			event(c)["subject"].(map[string]any)["iss"] = idpOff
		}), sign: func(_ *harness, c claims) string { return off.mint(t, c, typeSET) }, code: badIss},
		{name: "this server's own issuer", edit: edit(func(c claims) { c["iss"] = asIssuer }), code: badIss},
		{name: "key unknown to the issuer", sign: func(_ *harness, c claims) string { return stranger.mint(t, c, typeSET) }, code: badKey},
		{name: "alg the issuer may not use", edit: edit(func(c claims) {
			c["iss"] = idpRSA
			event(c)["subject"].(map[string]any)["iss"] = idpRSA
		}), sign: func(h *harness, c claims) string { return rsaPS256(t, h, c) }, code: badKey},
		{name: "signature tampered", raw: func(_ *harness, good string) string {
			i := strings.LastIndexByte(good, '.')
			sig, _ := base64.RawURLEncoding.DecodeString(good[i+1:])
			sig[3] ^= 1
			return good[:i+1] + base64.RawURLEncoding.EncodeToString(sig)
		}, code: badSig},
		{name: "payload swapped under the signature", raw: func(h *harness, good string) string {
			other := h.a.mint(t, setClaimsFor(idpA), typeSET)
			p := strings.Split(good, ".")
			q := strings.Split(other, ".")
			return p[0] + "." + q[1] + "." + p[2]
		}, code: badSig},
		{name: "another audience", edit: edit(func(c claims) { c["aud"] = "https://other-as.example.com" }), code: badAud},
		{name: "two audiences", edit: edit(func(c claims) { c["aud"] = []string{asIssuer, "https://other-as.example.com"} }), code: badAud},
		{name: "expired", edit: edit(func(c claims) {
			c["iat"], c["exp"] = testNow.Add(-10*time.Minute).Unix(), testNow.Add(-5*time.Minute).Unix()
		}), code: badReq},
		{name: "issued in the future", edit: edit(func(c claims) {
			c["iat"], c["exp"] = testNow.Add(5*time.Minute).Unix(), testNow.Add(6*time.Minute).Unix()
		}), code: badReq},
		{name: "lives an hour", edit: edit(func(c claims) { c["exp"] = testNow.Add(time.Hour).Unix() }), code: badReq},
		{name: "no exp", edit: edit(func(c claims) { delete(c, "exp") }), code: badReq},
		{name: "no jti", edit: edit(func(c claims) { delete(c, "jti") }), code: badReq},
		{name: "top-level sub", edit: edit(func(c claims) { c["sub"] = "alice" }), code: badReq},
		{name: "no events", edit: edit(func(c claims) { delete(c, "events") }), code: badReq},
		{name: "events not an object", edit: edit(func(c claims) { c["events"] = []string{secevent.EventAccessRevoked} }), code: badReq},
		{name: "two events", edit: edit(func(c claims) {
			c["events"].(map[string]any)["https://schemas.openid.net/secevent/caep/event-type/session-revoked"] = map[string]any{}
		}), code: badReq},
		{name: "unknown event", edit: edit(func(c claims) {
			c["events"] = map[string]any{"https://schemas.openid.net/secevent/caep/event-type/session-revoked": event(c)}
		}), code: badReq},
		{name: "unknown event member", edit: edit(func(c claims) { event(c)["scope"] = "all" }), code: badReq},
		{name: "event member in other case", edit: edit(func(c claims) { event(c)["Client_ID"] = client2; delete(event(c), "client_id") }), code: badReq},
		{name: "neither subject nor client", edit: edit(func(c claims) { delete(event(c), "subject"); delete(event(c), "client_id") }), code: badReq},
		{name: "subject of another issuer", edit: edit(func(c claims) { event(c)["subject"].(map[string]any)["iss"] = idpB }), code: badReq},
		{name: "subject by email", edit: edit(func(c claims) {
			event(c)["subject"] = map[string]any{"format": "email", "email": "alice@example.com"}
		}), code: badReq},
		{name: "empty sub", edit: edit(func(c claims) { event(c)["subject"].(map[string]any)["sub"] = "" }), code: badReq},
		{name: "client_id with a space", edit: edit(func(c claims) { event(c)["client_id"] = "client 1" }), code: badReq},
		{name: "client_id not a string", edit: edit(func(c claims) { event(c)["client_id"] = 7 }), code: badReq},
		{name: "not_before an hour ahead", edit: edit(func(c claims) { event(c)["not_before"] = testNow.Add(time.Hour).Unix() }), code: badReq},
		{name: "no not_before", edit: edit(func(c claims) { delete(event(c), "not_before") }), code: badReq},
		{name: "not_before a string", edit: edit(func(c claims) { event(c)["not_before"] = "soon" }), code: badReq},
		{name: "unknown initiating entity", edit: edit(func(c claims) { event(c)["initiating_entity"] = "martians" }), code: badReq},
		{name: "reason with a control character", edit: edit(func(c claims) { event(c)["reason_admin"] = map[string]any{"en": "a\u0007b"} }), code: badReq},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, nil)
			c := setClaimsFor(idpA)
			if tc.edit != nil {
				tc.edit(c)
			}
			sign := tc.sign
			if sign == nil {
				sign = signA(typeSET)
			}
			raw := sign(h, c)
			if tc.raw != nil {
				raw = tc.raw(h, h.a.mint(t, setClaimsFor(idpA), typeSET))
			}
			ct := secevent.ContentType
			switch tc.contentType {
			case "":
			case "-":
				ct = ""
			default:
				ct = tc.contentType
			}
			r := h.postSET(raw, ct)
			if r.status != http.StatusBadRequest || r.body.Err != tc.code || r.body.Description == "" {
				t.Fatalf("got %d %s, want 400 %s", r.status, r.raw, tc.code)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
			if evs := h.audit(AuditFenceRaised); len(evs) != 0 {
				t.Errorf("a refused SET left audit records: %+v", evs)
			}
			fences, _, err := h.db.ListFences(context.Background(), asIssuer, 0, 100)
			if err != nil || len(fences) != 0 {
				t.Errorf("a refused SET left fences %+v (%v)", fences, err)
			}
		})
	}
	t.Run("GET is not allowed", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, nil)
		resp, err := h.client.Get(h.hs.URL + "/set")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("GET /set = %d", resp.StatusCode)
		}
	})
	t.Run("a refused jti is not burned", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, nil)
		c := setClaimsFor(idpA)
		good := h.a.mint(t, c, typeSET)
		bad := claims{}
		for k, v := range c {
			bad[k] = v
		}
		bad["aud"] = "https://other-as.example.com"
		if r := h.postSET(h.a.mint(t, bad, typeSET), secevent.ContentType); r.status != http.StatusBadRequest {
			t.Fatalf("bad SET: %d", r.status)
		}
		if r := h.postSET(good, secevent.ContentType); r.status != http.StatusAccepted {
			t.Fatalf("good SET with the same jti: %d %s", r.status, r.raw)
		}
	})
}

// rsaPS256 signs c with the RSA IdP's key as PS256, which the issuer's
// allowlist (RS256) refuses.
func rsaPS256(t *testing.T, h *harness, c claims) string {
	t.Helper()
	header := `{"alg":"PS256","kid":"` + h.rsaKID + `","typ":"secevent+jwt"}`
	input := compact(header, mustJSON(map[string]any(c)), nil)
	input = input[:len(input)-1]
	d := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPSS(rand.Reader, h.rsaKey, crypto.SHA256, d[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	if err != nil {
		t.Fatal(err)
	}
	return compact(header, mustJSON(map[string]any(c)), sig)
}

// FuzzSETReceiver: whatever the body, the receiver answers 202, a 400
// with an RFC 8935 code, or fails closed; and a refusal writes nothing.
func FuzzSETReceiver(f *testing.F) {
	h := newHarness(f, nil)
	good := h.a.mint(f, setClaimsFor(idpA), jose.TypeSET)
	f.Add(good)
	f.Add(h.a.mint(f, claims{"iss": idpA, "aud": asIssuer, "jti": "x", "iat": testNow.Unix(), "exp": testNow.Add(time.Minute).Unix(),
		"events": map[string]any{secevent.EventAccessRevoked: map[string]any{"client_id": client1, "not_before": 1, "initiating_entity": "admin"}}}, jose.TypeSET))
	f.Add(h.good())
	f.Add("")
	f.Add("a.b.c")
	codes := map[string]bool{secevent.ErrCodeInvalidRequest: true, secevent.ErrCodeInvalidKey: true, secevent.ErrCodeInvalidIssuer: true,
		secevent.ErrCodeInvalidAudience: true, secevent.ErrCodeAuthenticationFailed: true}
	f.Fuzz(func(t *testing.T, raw string) {
		count := func() int {
			evs, err := h.db.ListAudit(context.Background(), store.AuditFilter{Type: AuditFenceRaised, Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			return len(evs)
		}
		before := count()
		err := h.srv.receiveSET(context.Background(), raw, testNow)
		after := count()
		var se *setError
		switch {
		case err == nil:
			if _, verr := jose.Verify(context.Background(), raw, jose.SETProfile(), h.srv.trust,
				jose.Expectations{Audiences: []string{asIssuer}, Now: testNow}); verr != nil {
				t.Fatalf("accepted a SET that does not verify: %v", verr)
			}
		case errors.As(err, &se):
			if !codes[se.code] || se.desc == "" {
				t.Fatalf("refusal %q %q", se.code, se.desc)
			}
			if after != before {
				t.Fatalf("a refused SET wrote %d audit records", after-before)
			}
		default:
			t.Fatalf("not a refusal and not accepted: %v", err)
		}
	})
}
