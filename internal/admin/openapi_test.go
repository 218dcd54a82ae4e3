package admin

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestOpenAPIDrift holds the served OpenAPI document, the ServeMux and the
// handlers to each other:
//
//   - the document's operations are exactly the registered mux patterns;
//   - every operation is reachable (no mux 404/405), every documented
//     query parameter is accepted with a value of its schema, and an
//     undocumented one is refused;
//   - each operation's x-openxaa-roles are exactly the roles that get past
//     the role check;
//   - real answers of every operation (reads and one change each) match
//     the documented 200 schema, member for member, and errors the Error
//     schema.
func TestOpenAPIDrift(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqliteURL(t))
	a := h.do(nil, http.MethodGet, OpenAPIPath, "", nil)
	if a.status != http.StatusOK || !strings.HasPrefix(a.header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET %s = %d %s", OpenAPIPath, a.status, a.header.Get("Content-Type"))
	}
	var doc struct {
		OpenAPI    string                               `json:"openapi"`
		Servers    []map[string]string                  `json:"servers"`
		Paths      map[string]map[string]map[string]any `json:"paths"`
		Components struct {
			Schemas map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(a.body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" || len(doc.Servers) != 1 || doc.Servers[0]["url"] != h.base {
		t.Fatalf("openapi %q, servers %v", doc.OpenAPI, doc.Servers)
	}
	v := &validator{schemas: doc.Components.Schemas}

	// The mux and the document list the same operations.
	var docOps, muxOps []string
	for path, item := range doc.Paths {
		for method := range item {
			docOps = append(docOps, strings.ToUpper(method)+" "+path)
		}
	}
	for _, p := range h.admin.patterns {
		method, path, _ := strings.Cut(p, " ")
		muxOps = append(muxOps, method+" "+strings.TrimPrefix(path, h.admin.BasePath()))
	}
	sort.Strings(docOps)
	sort.Strings(muxOps)
	if !slices.Equal(docOps, muxOps) {
		t.Fatalf("document operations %v\ndiffer from mux patterns %v", docOps, muxOps)
	}

	samples := map[string]string{
		"id": h.conns["crm"], "username": "alice", "name": "staff", "client_id": "assistant",
		"uri": url.PathEscape(resourceURI), "jti": "jti-of-nothing",
	}
	fill := func(path string) string {
		return pathParam.ReplaceAllStringFunc(path, func(m string) string { return samples[m[1:len(m)-1]] })
	}
	type operation struct {
		method, path string
		op           map[string]any
	}
	var ops []operation
	for _, o := range docOps {
		method, path, _ := strings.Cut(o, " ")
		ops = append(ops, operation{method, path, doc.Paths[path][strings.ToLower(method)]})
	}

	for _, o := range ops {
		method, path, op := o.method, o.path, o.op
		name := method + " " + path
		_, public := op["security"]
		roles, _ := op["x-openxaa-roles"].([]any)
		if public != (len(roles) == 0) {
			t.Errorf("%s: public %v but roles %v", name, public, roles)
		}
		if public {
			continue
		}
		// The role check, for every role.
		for _, r := range Roles {
			body := ""
			if method == http.MethodPost {
				body = `{"not_a_member":1}`
			}
			a := h.as(r, method, fill(path), body)
			allowed := slices.Contains(roles, any(string(r)))
			switch {
			case a.status == http.StatusNotFound && strings.HasPrefix(a.header.Get("Content-Type"), "text/plain"),
				a.status == http.StatusMethodNotAllowed:
				t.Errorf("%s as %s: the mux does not route it (%d)", name, r, a.status)
			case allowed && a.status == http.StatusForbidden, !allowed && a.status != http.StatusForbidden:
				t.Errorf("%s as %s: status %d, but the document says roles %v", name, r, a.status, roles)
			}
			if a.status >= 400 {
				v.check(t, name+" error", a, map[string]any{"$ref": "#/components/schemas/Error"})
			}
		}
		params, _ := op["parameters"].([]any)
		if method != http.MethodGet {
			continue
		}
		// Every documented query parameter is accepted; others are not.
		for _, p := range params {
			pm := p.(map[string]any)
			if pm["in"] != "query" || pm["name"] == paramCursor {
				continue
			}
			q := url.Values{pm["name"].(string): {sampleFor(pm, h)}}
			if a := h.as(RoleAdmin, method, fill(path)+"?"+q.Encode(), ""); a.status >= 400 && a.status != http.StatusNotFound {
				t.Errorf("%s?%s = %d %s: a documented parameter is refused", name, q.Encode(), a.status, a.body)
			}
		}
		if a := h.as(RoleAdmin, method, fill(path)+"?undocumented=1", ""); a.status != http.StatusBadRequest {
			t.Errorf("%s?undocumented=1 = %d, want 400", name, a.status)
		}
	}

	// Real answers match the documented schemas: every read, then one
	// successful change of every kind, in an order the ledger accepts.
	ok := func(method, path, body string) {
		t.Helper()
		var op map[string]any
		bare, _, _ := strings.Cut(path, "?")
		for _, o := range ops {
			if o.method == method && pathParam.ReplaceAllString(o.path, "X") == pathParam.ReplaceAllString(pathTemplate(bare), "X") {
				op = o.op
			}
		}
		if op == nil {
			t.Fatalf("%s %s: no documented operation", method, path)
		}
		a := h.as(RoleAdmin, method, path, body)
		if a.status != http.StatusOK {
			t.Fatalf("%s %s = %d %s", method, path, a.status, a.body)
		}
		content := op["responses"].(map[string]any)["200"].(map[string]any)["content"].(map[string]any)
		if js, isJSON := content["application/json"].(map[string]any); isJSON && js["schema"] != nil {
			v.check(t, method+" "+path, a, js["schema"].(map[string]any))
		} else {
			for ct := range content {
				if got := a.header.Get("Content-Type"); !strings.HasPrefix(got, ct) {
					t.Errorf("%s %s: Content-Type %q, documented %q", method, path, got, ct)
				}
			}
		}
	}
	for _, o := range ops {
		if _, public := o.op["security"]; o.method == http.MethodGet && !public {
			ok(o.method, fill(o.path), "")
		}
	}
	tok := h.as(RoleAdmin, "POST", "/api/v1/tokens", `{"role":"viewer","ttl":"5m","description":"drift"}`).json(t)
	detail, _ := tok["detail"].(map[string]any)
	id, _ := detail["id"].(string)
	ok("POST", "/api/v1/tokens", `{"role":"auditor","ttl":"5m"}`)
	ok("POST", "/api/v1/tokens/"+id+"/revoke", `{"reason":"drift test"}`)
	ok("POST", "/api/v1/connections/"+h.conns["pending"]+"/approve", `{"note":"ok"}`)
	ok("POST", "/api/v1/connections/"+h.conns["pending-crm"]+"/deny", `{"reason":"not needed"}`)
	ok("POST", "/api/v1/connections/"+h.conns["approved"]+"/suspend", `{"reason":"incident"}`)
	ok("POST", "/api/v1/connections/"+h.conns["approved"]+"/resume", `{}`)
	ok("POST", "/api/v1/connections/"+h.conns["crm"]+"/recertify", `{"until":"`+time.Now().Add(48*time.Hour).UTC().Format(time.RFC3339)+`"}`)
	ok("POST", "/api/v1/connections/"+h.conns["approved"]+"/revoke", `{"reason":"done"}`)
	ok("GET", "/api/v1/connections/"+h.conns["approved"], "")
	ok("POST", "/api/v1/users/eve/disable", `{"reason":"left"}`)
	ok("POST", "/api/v1/groups/staff/remove-member", `{"username":"victor","reason":"moved"}`)
	ok("POST", "/api/v1/apps/agent/revoke", `{"reason":"retired"}`)
	ok("GET", "/api/v1/audit/records?limit=3", "")
	ok("POST", "/api/v1/session/logout", `{}`) // revokes the admin token
	if a := h.as(RoleAdmin, "GET", "/api/v1/session", ""); a.status != http.StatusUnauthorized {
		t.Errorf("the admin token still works after logout: %d", a.status)
	}
}

// pathTemplate turns a concrete path back into one comparable with a
// documented template (every segment after a known collection is an id).
func pathTemplate(p string) string {
	segs := strings.Split(p, "/")
	for i := 1; i < len(segs); i++ {
		switch segs[i-1] {
		case "connections", "users", "groups", "apps", "resources", "trace":
			segs[i] = "{x}"
		case "tokens":
			if strings.HasPrefix(segs[i], "at_") {
				segs[i] = "{x}"
			}
		}
	}
	return strings.Join(segs, "/")
}

// sampleFor returns a value of a documented query parameter's schema.
func sampleFor(p map[string]any, h *harness) string {
	s := p["schema"].(map[string]any)
	if e, ok := s["enum"].([]any); ok {
		return e[len(e)-1].(string)
	}
	switch s["type"] {
	case "boolean":
		return "false"
	case "integer":
		return "10"
	}
	switch s["format"] {
	case "date-time":
		return time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	case "uri":
		if p["name"] == "auth_server" {
			return asIssuer
		}
		return resourceURI
	}
	switch p["name"] {
	case "group":
		return "staff"
	case "return_to":
		return h.admin.BasePath() + "/api/v1/session"
	case "stream":
		return "admin"
	case "type":
		return "admin.token_create"
	}
	return "assistant"
}

// validator checks JSON values against the subset of JSON Schema the
// document uses: type, properties, required, additionalProperties, items,
// enum, format date-time, $ref.
type validator struct{ schemas map[string]any }

func (v *validator) check(t *testing.T, what string, a answer, schema map[string]any) {
	t.Helper()
	var val any
	if err := json.Unmarshal(a.body, &val); err != nil {
		t.Errorf("%s: answer is not JSON: %.200s", what, a.body)
		return
	}
	if err := v.validate("$", val, schema); err != nil {
		t.Errorf("%s: the answer does not match its documented schema: %v\n%.500s", what, err, a.body)
	}
}

var refPrefix = regexp.MustCompile(`^#/components/schemas/`)

func (v *validator) validate(at string, val any, schema map[string]any) error {
	if ref, ok := schema["$ref"].(string); ok {
		s, ok := v.schemas[refPrefix.ReplaceAllString(ref, "")].(map[string]any)
		if !ok {
			return fmt.Errorf("%s: unresolved %s", at, ref)
		}
		return v.validate(at, val, s)
	}
	if e, ok := schema["enum"].([]any); ok && !slices.Contains(e, val) {
		return fmt.Errorf("%s: %v is not one of %v", at, val, e)
	}
	switch schema["type"] {
	case "object":
		m, ok := val.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: %T is not an object", at, val)
		}
		props, _ := schema["properties"].(map[string]any)
		req, _ := schema["required"].([]any)
		for _, r := range req {
			if _, ok := m[r.(string)]; !ok {
				return fmt.Errorf("%s: required member %s is missing", at, r)
			}
		}
		for k, x := range m {
			ps, known := props[k].(map[string]any)
			switch ap := schema["additionalProperties"].(type) {
			case bool:
				if !known && !ap {
					return fmt.Errorf("%s: member %s is not documented", at, k)
				}
			case map[string]any:
				ps, known = ap, true
			}
			if known {
				if err := v.validate(at+"."+k, x, ps); err != nil {
					return err
				}
			}
		}
	case "array":
		xs, ok := val.([]any)
		if !ok {
			return fmt.Errorf("%s: %T is not an array", at, val)
		}
		items, _ := schema["items"].(map[string]any)
		for i, x := range xs {
			if err := v.validate(fmt.Sprintf("%s[%d]", at, i), x, items); err != nil {
				return err
			}
		}
	case "string":
		s, ok := val.(string)
		if !ok {
			return fmt.Errorf("%s: %T is not a string", at, val)
		}
		if schema["format"] == "date-time" {
			if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
				return fmt.Errorf("%s: %q is not a date-time", at, s)
			}
		}
	case "integer":
		f, ok := val.(float64)
		if !ok || f != math.Trunc(f) {
			return fmt.Errorf("%s: %v is not an integer", at, val)
		}
	case "boolean":
		if _, ok := val.(bool); !ok {
			return fmt.Errorf("%s: %T is not a boolean", at, val)
		}
	default:
		return fmt.Errorf("%s: schema without a known type: %v", at, schema)
	}
	return nil
}
