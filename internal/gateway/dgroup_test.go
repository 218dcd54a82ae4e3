package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDGroupThroughGateway runs the spec digest's checklist group D (MCP
// resource server) against the gateway, end to end: real tokens from the
// real authorization server, a real upstream, raw HTTP so every status and
// challenge parameter is visible. D87 (no token passthrough) has its own
// test, TestD87UpstreamNeverSeesClientToken, and is checked here too:
// nothing a row refuses reaches the upstream.
func TestDGroupThroughGateway(t *testing.T) {
	t.Parallel()
	w := newWorld(t, &worldOptions{noStdio: true})
	prm := w.gwURL + "/.well-known/oauth-protected-resource" + pathHTTP
	read := w.token(pathHTTP, "crm:read")
	sid := w.session(pathHTTP, read)

	// Tokens that must all be refused.
	foreign := w.token(pathForeign, "crm:read")
	w.asClock.add(-time.Hour)
	expired := w.token(pathHTTP, "crm:read")
	w.asClock.add(time.Hour)
	badSig := read[:len(read)-4] + flip(read[len(read)-4:])
	assertion := w.idJAG(w.gwURL+pathHTTP, "crm:read")
	sign := func(typ string, c claims) string {
		tok, err := w.idp.Sign(context.Background(), typ, map[string]any(c))
		if err != nil {
			t.Fatal(err)
		}
		w.remember(tok)
		return tok
	}
	now := time.Now()
	idToken := sign("JWT", claims{"iss": idpIssuer, "sub": alice, "aud": appClient, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
	otherIssuer := sign("at+jwt", claims{"iss": idpIssuer, "sub": alice, "aud": w.gwURL + pathHTTP, "client_id": appClient,
		"jti": randomID(), "scope": "crm:read", "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()})
	forgedAS := sign("at+jwt", claims{"iss": w.asURL, "sub": alice, "aud": w.gwURL + pathHTTP, "client_id": appClient,
		"jti": randomID(), "scope": "crm:read", "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()})
	introRevoked := w.token(pathIntro, "crm:read")
	introSID := w.session(pathIntro, introRevoked)
	w.revoke(introRevoked) // no poll: only introspection can know

	call := callBody(9, "search_customers")
	tests := []struct {
		name        string
		path        string
		token       string
		session     string
		body        string
		query       string
		newSession  bool // the token opens its own session first
		status      int
		challenge   []string // substrings of WWW-Authenticate
		noChallenge []string
	}{
		{name: "D77 no Authorization", path: pathHTTP, session: sid, body: call, status: 401,
			challenge: []string{`Bearer resource_metadata="` + prm + `"`, `scope="`}, noChallenge: []string{"error="}},
		{name: "D79 foreign audience", path: pathHTTP, token: foreign, session: sid, body: call, status: 401,
			challenge: []string{`error="invalid_token"`, `resource_metadata="` + prm + `"`}},
		{name: "D80 expired", path: pathHTTP, token: expired, session: sid, body: call, status: 401, challenge: []string{`error="invalid_token"`}},
		{name: "D80 bad signature", path: pathHTTP, token: badSig, session: sid, body: call, status: 401, challenge: []string{`error="invalid_token"`}},
		{name: "D81 the ID-JAG as bearer", path: pathHTTP, token: assertion, session: sid, body: call, status: 401, challenge: []string{`error="invalid_token"`}},
		{name: "D81 an ID token as bearer", path: pathHTTP, token: idToken, session: sid, body: call, status: 401, challenge: []string{`error="invalid_token"`}},
		{name: "D82 another issuer", path: pathHTTP, token: otherIssuer, session: sid, body: call, status: 401, challenge: []string{`error="invalid_token"`}},
		{name: "D82 the AS issuer forged with another key", path: pathHTTP, token: forgedAS, session: sid, body: call, status: 401, challenge: []string{`error="invalid_token"`}},
		{name: "D83 missing scope", path: pathHTTP, token: read, session: sid, body: callBody(10, "delete_customers"), status: 403,
			challenge: []string{`error="insufficient_scope"`, `scope="crm:admin crm:read"`, `resource_metadata="` + prm + `"`}},
		{name: "D84 token in the query", path: pathHTTP, session: sid, body: call, query: "access_token=" + read, status: 401,
			challenge: []string{`error="invalid_token"`}},
		{name: "D85 step-up: acr", path: pathHTTP, token: w.token(pathHTTP, "crm:read crm:export"), newSession: true, body: callBody(11, "export_customers"), status: 401,
			challenge: []string{`error="insufficient_user_authentication"`, `acr_values="` + acrMFA + `"`, `max_age="300"`, `resource_metadata="` + prm + `"`}},
		{name: "D85 step-up: login too old", path: pathHTTP, token: w.token(pathHTTP, "crm:export", mfa, func(c claims) {
			c["auth_time"] = time.Now().Add(-10 * time.Minute).Unix()
		}), newSession: true, body: callBody(12, "export_customers"), status: 401, challenge: []string{`error="insufficient_user_authentication"`, `max_age="300"`}},
		{name: "D86 introspection says inactive", path: pathIntro, token: introRevoked, session: introSID, body: call, status: 401,
			challenge: []string{`error="invalid_token"`, `resource_metadata="` + w.gwURL + `/.well-known/oauth-protected-resource` + pathIntro + `"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path
			if tt.query != "" {
				path += "?" + tt.query
			}
			session := tt.session
			if tt.newSession {
				session = w.session(tt.path, tt.token)
			}
			r := w.post(path, tt.token, session, tt.body)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d (%s)", r.status, tt.status, r.body)
			}
			www := r.header.Get("Www-Authenticate")
			for _, s := range tt.challenge {
				if !strings.Contains(www, s) {
					t.Errorf("WWW-Authenticate %q lacks %q", www, s)
				}
			}
			for _, s := range tt.noChallenge {
				if strings.Contains(www, s) {
					t.Errorf("WWW-Authenticate %q has %q", www, s)
				}
			}
			if cc := r.header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
				t.Errorf("Cache-Control = %q, want no-store", cc)
			}
			var body struct {
				Error string `json:"error"`
			}
			if json.Unmarshal([]byte(r.body), &body) != nil || body.Error == "" {
				t.Errorf("body %q is not an OAuth error object", r.body)
			}
		})
	}

	t.Run("D78 protected resource metadata", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, prm, nil)
		r := w.do(req)
		var md struct {
			Resource             string   `json:"resource"`
			AuthorizationServers []string `json:"authorization_servers"`
			ScopesSupported      []string `json:"scopes_supported"`
		}
		if r.status != 200 || json.Unmarshal([]byte(r.body), &md) != nil {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if md.Resource != w.gwURL+pathHTTP || !slices.Contains(md.AuthorizationServers, w.asURL) {
			t.Errorf("metadata = %+v", md)
		}
	})

	t.Run("D87 nothing refused reached the upstream", func(t *testing.T) {
		if got := w.rec.calledTools(); len(got) != 0 {
			t.Errorf("the upstream ran %v", got)
		}
	})
}

// flip changes a base64url string without changing its length.
func flip(s string) string {
	b := []byte(s)
	for i := range b {
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
	}
	return string(b)
}
