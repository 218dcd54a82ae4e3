package admin

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestBadInputChangesNothingSQLite and ...Postgres are the acceptance
// test of the admin API's input handling: SQL-looking filters and sort
// keys, forged and misused cursors, a role reaching beyond itself and
// cross-site or non-JSON changes are each refused with a 4xx and a JSON
// error, and the database is unchanged afterwards. The one write a
// refusal makes is the audit record of a role refusal (an authenticated
// administrator tried something their role does not allow).
func TestBadInputChangesNothingSQLite(t *testing.T) {
	t.Parallel()
	testBadInput(t, sqliteURL(t))
}

func TestBadInputChangesNothingPostgres(t *testing.T) {
	t.Parallel()
	testBadInput(t, postgresURL(t))
}

// badCase is one refused request.
type badCase struct {
	name   string
	who    string // a Role (admin token), "session" (alice's cookie) or "" (nobody)
	method string
	path   string
	body   string
	ctype  string // Content-Type; "" means application/json when there is a body
	hdr    map[string]string
	want   int
	audit  int // audit records the refusal writes
}

func testBadInput(t *testing.T, dbURL string) {
	h := newHarness(t, dbURL)
	approved, pending := h.conns["approved"], h.conns["pending"]

	// Real cursors to tamper with.
	page := h.as(RoleAdmin, http.MethodGet, "/api/v1/users?limit=2", "").json(t)
	usersCursor, _ := page["next_cursor"].(string)
	page = h.as(RoleAdmin, http.MethodGet, "/api/v1/users?limit=2&group=staff", "").json(t)
	staffCursor, _ := page["next_cursor"].(string)
	if usersCursor == "" || staffCursor == "" {
		t.Fatalf("no cursors to tamper with: %v", page)
	}
	flipped := flipChar(usersCursor, len(usersCursor)/2)
	lastFlipped := flipChar(usersCursor, len(usersCursor)-1)
	random := base64.RawURLEncoding.EncodeToString([]byte(strings.Repeat("forged cursor bytes ", 5)))
	// A cursor sealed with another key (another deployment, or a guess).
	other := &cursorCodec{key: []byte(strings.Repeat("x", 32))}
	foreign, err := other.seal(cursor{list: "users", sort: "username", pos: position{Text: "a", ID: "u_1"}})
	if err != nil {
		t.Fatal(err)
	}

	// Alice's browser session, for the cross-site cases.
	b, signedIn := h.signIn("alice")
	if signedIn.status != http.StatusOK {
		t.Fatalf("sign-in = %d", signedIn.status)
	}
	csrf, _ := h.do(b, http.MethodGet, "/api/v1/session", "", nil).json(t)["csrf_token"].(string)
	otherCSRF := h.admin.csrfToken("as_someoneelse")
	same := h.origin()
	form := "role=admin&ttl=10m"
	tokenBody := `{"role":"admin","ttl":"10m"}`

	cases := []badCase{
		// SQL-looking filters.
		{name: "quote in a group filter", who: "viewer", method: "GET", path: "/api/v1/users?group=" + url.QueryEscape("staff' OR '1'='1"), want: 400},
		{name: "comment in a group filter", who: "viewer", method: "GET", path: "/api/v1/users?group=" + url.QueryEscape("staff'--"), want: 400},
		{name: "union in an app filter", who: "viewer", method: "GET", path: "/api/v1/connections?app=" + url.QueryEscape("x' UNION SELECT * FROM admin_tokens--"), want: 400},
		{name: "quote in an app filter", who: "viewer", method: "GET", path: "/api/v1/connections?app=" + url.QueryEscape("assistant'"), want: 400},
		{name: "statement in a status filter", who: "viewer", method: "GET", path: "/api/v1/connections?status=" + url.QueryEscape("approved'; DROP TABLE connections; --"), want: 400},
		{name: "raw semicolon", who: "viewer", method: "GET", path: "/api/v1/connections?status=approved;DROP%20TABLE%20connections", want: 400},
		{name: "expression in a boolean", who: "viewer", method: "GET", path: "/api/v1/users?disabled=" + url.QueryEscape("1 OR 1=1"), want: 400},
		{name: "NUL in a filter", who: "viewer", method: "GET", path: "/api/v1/apps?disabled=true%00", want: 400},
		{name: "SQL in a resource filter", who: "viewer", method: "GET", path: "/api/v1/resources?auth_server=" + url.QueryEscape("' OR ''='"), want: 400},
		{name: "SQL in an audit type", who: "auditor", method: "GET", path: "/api/v1/audit/records?type=" + url.QueryEscape("x' OR type LIKE '%"), want: 400},
		{name: "SQL in an audit time", who: "auditor", method: "GET", path: "/api/v1/audit/records?since=" + url.QueryEscape("0 OR 1=1"), want: 400},
		{name: "SQL in an audit jti", who: "auditor", method: "GET", path: "/api/v1/audit/records?jti=" + url.QueryEscape("a\" OR \"1\"=\"1"), want: 400},
		{name: "SQL in a path id", who: "viewer", method: "GET", path: "/api/v1/connections/" + url.PathEscape("x' OR '1'='1"), want: 400},
		{name: "SQL in a path username", who: "viewer", method: "GET", path: "/api/v1/users/" + url.PathEscape("alice'--"), want: 400},
		{name: "SQL in a trace jti", who: "auditor", method: "GET", path: "/api/v1/audit/trace/" + url.PathEscape("x'); DROP TABLE audit_events;--"), want: 400},

		// Sort keys.
		{name: "statement as sort key", who: "viewer", method: "GET", path: "/api/v1/users?sort=" + url.QueryEscape("name; DROP TABLE users"), want: 400},
		{name: "SQL direction in sort", who: "viewer", method: "GET", path: "/api/v1/users?sort=" + url.QueryEscape("username DESC"), want: 400},
		{name: "two sort keys", who: "viewer", method: "GET", path: "/api/v1/users?sort=" + url.QueryEscape("-username,created"), want: 400},
		{name: "column name as sort key", who: "viewer", method: "GET", path: "/api/v1/users?sort=password_hash", want: 400},
		{name: "another list's sort key", who: "viewer", method: "GET", path: "/api/v1/users?sort=client_id", want: 400},
		{name: "subquery as sort key", who: "viewer", method: "GET", path: "/api/v1/connections?sort=" + url.QueryEscape("(SELECT 1)"), want: 400},
		{name: "descending audit", who: "auditor", method: "GET", path: "/api/v1/audit/records?sort=-id", want: 400},
		{name: "limit zero", who: "viewer", method: "GET", path: "/api/v1/users?limit=0", want: 400},
		{name: "limit too large", who: "viewer", method: "GET", path: "/api/v1/users?limit=201", want: 400},
		{name: "limit as expression", who: "viewer", method: "GET", path: "/api/v1/users?limit=" + url.QueryEscape("10; DELETE FROM users"), want: 400},
		{name: "limit with a sign", who: "viewer", method: "GET", path: "/api/v1/users?limit=%2B10", want: 400},

		// Unknown, repeated and empty parameters.
		{name: "unknown parameter", who: "viewer", method: "GET", path: "/api/v1/users?where=1%3D1", want: 400},
		{name: "repeated parameter", who: "viewer", method: "GET", path: "/api/v1/users?group=staff&group=eng", want: 400},
		{name: "empty parameter", who: "viewer", method: "GET", path: "/api/v1/users?group=", want: 400},
		{name: "parameter where none are taken", who: "viewer", method: "GET", path: "/api/v1/session?debug=1", want: 400},
		{name: "filter of another list", who: "viewer", method: "GET", path: "/api/v1/groups?disabled=true", want: 400},

		// Cursors.
		{name: "garbage cursor", who: "viewer", method: "GET", path: "/api/v1/users?limit=2&cursor=garbage", want: 400},
		{name: "random bytes as cursor", who: "viewer", method: "GET", path: "/api/v1/users?limit=2&cursor=" + random, want: 400},
		{name: "cursor with one character changed", who: "viewer", method: "GET", path: "/api/v1/users?limit=2&cursor=" + flipped, want: 400},
		{name: "cursor with its MAC changed", who: "viewer", method: "GET", path: "/api/v1/users?limit=2&cursor=" + lastFlipped, want: 400},
		{name: "cursor sealed with another key", who: "viewer", method: "GET", path: "/api/v1/users?limit=2&cursor=" + foreign, want: 400},
		{name: "cursor of another list", who: "viewer", method: "GET", path: "/api/v1/apps?limit=2&cursor=" + usersCursor, want: 400},
		{name: "cursor of another order", who: "viewer", method: "GET", path: "/api/v1/users?limit=2&sort=created&cursor=" + usersCursor, want: 400},
		{name: "cursor of another direction", who: "viewer", method: "GET", path: "/api/v1/users?limit=2&sort=-username&cursor=" + usersCursor, want: 400},
		{name: "cursor of another filter", who: "viewer", method: "GET", path: "/api/v1/users?limit=2&group=eng&cursor=" + staffCursor, want: 400},
		{name: "cursor without its filter", who: "viewer", method: "GET", path: "/api/v1/users?limit=2&cursor=" + staffCursor, want: 400},
		{name: "cursor with padding", who: "viewer", method: "GET", path: "/api/v1/users?limit=2&cursor=" + usersCursor + "%3D", want: 400},
		{name: "huge cursor", who: "viewer", method: "GET", path: "/api/v1/users?cursor=" + strings.Repeat("A", 3000), want: 400},

		// A role reaching beyond itself: refused, and the attempt audited.
		{name: "viewer approves", who: "viewer", method: "POST", path: "/api/v1/connections/" + pending + "/approve", body: `{}`, want: 403, audit: 1},
		{name: "viewer revokes", who: "viewer", method: "POST", path: "/api/v1/connections/" + approved + "/revoke", body: `{"reason":"x"}`, want: 403, audit: 1},
		{name: "viewer reads the audit trail", who: "viewer", method: "GET", path: "/api/v1/audit/records", want: 403, audit: 1},
		{name: "viewer exports the audit trail", who: "viewer", method: "GET", path: "/api/v1/audit/export", want: 403, audit: 1},
		{name: "auditor suspends", who: "auditor", method: "POST", path: "/api/v1/connections/" + approved + "/suspend", body: `{"reason":"x"}`, want: 403, audit: 1},
		{name: "auditor disables a user", who: "auditor", method: "POST", path: "/api/v1/users/eve/disable", body: `{"reason":"x"}`, want: 403, audit: 1},
		{name: "approver reads the audit trail", who: "approver", method: "GET", path: "/api/v1/audit/verify", want: 403, audit: 1},
		{name: "approver disables a user", who: "approver", method: "POST", path: "/api/v1/users/eve/disable", body: `{"reason":"x"}`, want: 403, audit: 1},
		{name: "approver removes a member", who: "approver", method: "POST", path: "/api/v1/groups/staff/remove-member", body: `{"username":"eve","reason":"x"}`, want: 403, audit: 1},
		{name: "approver revokes an app", who: "approver", method: "POST", path: "/api/v1/apps/assistant/revoke", body: `{"reason":"x"}`, want: 403, audit: 1},
		{name: "approver mints an admin token", who: "approver", method: "POST", path: "/api/v1/tokens", body: tokenBody, want: 403, audit: 1},
		{name: "auditor mints an admin token", who: "auditor", method: "POST", path: "/api/v1/tokens", body: tokenBody, want: 403, audit: 1},
		{name: "viewer lists admin tokens", who: "viewer", method: "GET", path: "/api/v1/tokens", want: 403, audit: 1},
		{name: "nobody", who: "", method: "POST", path: "/api/v1/tokens", body: tokenBody, want: 401},

		// Cross-site and non-JSON changes with the session cookie.
		{name: "cross-site Origin", who: "session", method: "POST", path: "/api/v1/tokens", body: tokenBody,
			hdr: map[string]string{"Origin": "https://evil.example", CSRFHeader: csrf}, want: 403},
		{name: "cross-site Origin on a revocation", who: "session", method: "POST", path: "/api/v1/connections/" + approved + "/revoke", body: `{"reason":"x"}`,
			hdr: map[string]string{"Origin": "https://evil.example", CSRFHeader: csrf}, want: 403},
		{name: "same host, other port", who: "session", method: "POST", path: "/api/v1/tokens", body: tokenBody,
			hdr: map[string]string{"Origin": "http://127.0.0.1:1", CSRFHeader: csrf}, want: 403},
		{name: "Origin null", who: "session", method: "POST", path: "/api/v1/tokens", body: tokenBody,
			hdr: map[string]string{"Origin": "null", CSRFHeader: csrf}, want: 403},
		{name: "no Origin", who: "session", method: "POST", path: "/api/v1/tokens", body: tokenBody,
			hdr: map[string]string{CSRFHeader: csrf}, want: 403},
		{name: "Sec-Fetch-Site cross-site", who: "session", method: "POST", path: "/api/v1/tokens", body: tokenBody,
			hdr: map[string]string{"Origin": same, "Sec-Fetch-Site": "cross-site", CSRFHeader: csrf}, want: 403},
		{name: "Sec-Fetch-Site same-site", who: "session", method: "POST", path: "/api/v1/tokens", body: tokenBody,
			hdr: map[string]string{"Sec-Fetch-Site": "same-site", CSRFHeader: csrf}, want: 403},
		{name: "no CSRF token", who: "session", method: "POST", path: "/api/v1/tokens", body: tokenBody,
			hdr: map[string]string{"Origin": same}, want: 403},
		{name: "another session's CSRF token", who: "session", method: "POST", path: "/api/v1/tokens", body: tokenBody,
			hdr: map[string]string{"Origin": same, CSRFHeader: otherCSRF}, want: 403},
		{name: "cross-site form POST", who: "session", method: "POST", path: "/api/v1/tokens", body: form, ctype: "application/x-www-form-urlencoded",
			hdr: map[string]string{"Origin": "https://evil.example"}, want: 403},
		{name: "cross-site text/plain POST", who: "session", method: "POST", path: "/api/v1/tokens", body: tokenBody, ctype: "text/plain",
			hdr: map[string]string{"Origin": "https://evil.example"}, want: 403},
		{name: "same-origin form POST", who: "session", method: "POST", path: "/api/v1/tokens", body: form, ctype: "application/x-www-form-urlencoded",
			hdr: map[string]string{"Origin": same, CSRFHeader: csrf}, want: 415},
		{name: "form POST with a token", who: "admin", method: "POST", path: "/api/v1/tokens", body: form, ctype: "application/x-www-form-urlencoded", want: 415},
		{name: "multipart POST with a token", who: "admin", method: "POST", path: "/api/v1/tokens", body: "--x--", ctype: "multipart/form-data; boundary=x", want: 415},
		{name: "JSON as text/plain", who: "admin", method: "POST", path: "/api/v1/tokens", body: tokenBody, ctype: "text/plain", want: 415},

		// Bodies.
		{name: "unknown member", who: "admin", method: "POST", path: "/api/v1/tokens", body: `{"role":"admin","ttl":"10m","scope":"all"}`, want: 400},
		{name: "duplicate member", who: "admin", method: "POST", path: "/api/v1/tokens", body: `{"role":"viewer","role":"admin","ttl":"10m"}`, want: 400},
		{name: "case-folded duplicate", who: "admin", method: "POST", path: "/api/v1/tokens", body: `{"role":"viewer","ROLE":"admin","ttl":"10m"}`, want: 400},
		{name: "trailing data", who: "admin", method: "POST", path: "/api/v1/tokens", body: tokenBody + `{}`, want: 400},
		{name: "array body", who: "admin", method: "POST", path: "/api/v1/tokens", body: `[` + tokenBody + `]`, want: 400},
		{name: "unknown role", who: "admin", method: "POST", path: "/api/v1/tokens", body: `{"role":"root","ttl":"10m"}`, want: 400},
		{name: "token lifetime too long", who: "admin", method: "POST", path: "/api/v1/tokens", body: `{"role":"viewer","ttl":"2h"}`, want: 400},
		{name: "token lifetime negative", who: "admin", method: "POST", path: "/api/v1/tokens", body: `{"role":"viewer","ttl":"-1m"}`, want: 400},
		{name: "body too large", who: "admin", method: "POST", path: "/api/v1/tokens", body: `{"role":"viewer","ttl":"10m","description":"` + strings.Repeat("a", 70<<10) + `"}`, want: 413},
	}
	for _, c := range cases {
		before := h.snapshot()
		hdr := map[string]string{}
		var client *http.Client
		switch c.who {
		case "":
		case "session":
			client = b
		default:
			hdr["Authorization"] = "Bearer " + h.tokens[Role(c.who)]
		}
		for k, v := range c.hdr {
			hdr[k] = v
		}
		if c.ctype != "" {
			hdr["Content-Type"] = c.ctype
		}
		a := h.do(client, c.method, c.path, c.body, hdr)
		if a.status != c.want {
			t.Errorf("%s: %s %s = %d %.200s, want %d", c.name, c.method, c.path, a.status, a.body, c.want)
		}
		if m := a.json(t); m["error"] == "" || m["error_description"] == "" {
			t.Errorf("%s: error body %s lacks error and error_description", c.name, a.body)
		}
		h.unchanged(c.name, before, c.audit)
	}
}

// flipChar changes the base64url character at i to another valid one.
func flipChar(s string, i int) string {
	c := byte('A')
	if s[i] == 'A' {
		c = 'B'
	}
	return s[:i] + string(c) + s[i+1:]
}
