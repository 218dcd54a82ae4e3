package admin

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openxaa/xaa/internal/audit"
	"github.com/openxaa/xaa/internal/store"
)

// walk pages through a listing with the given limit and returns the value
// of key of every item, in order, and how many pages it took.
func (h *harness) walk(path, key string, limit int) ([]string, int) {
	h.t.Helper()
	var out []string
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	next, pages := "", 0
	for {
		q := sep + "limit=" + strconv.Itoa(limit)
		if next != "" {
			q += "&cursor=" + url.QueryEscape(next)
		}
		a := h.as(RoleAdmin, http.MethodGet, path+q, "")
		if a.status != http.StatusOK {
			h.t.Fatalf("GET %s%s = %d %s", path, q, a.status, a.body)
		}
		m := a.json(h.t)
		pages++
		items, _ := m["items"].([]any)
		for _, it := range items {
			out = append(out, valueAt(it, key))
		}
		next, _ = m["next_cursor"].(string)
		if next == "" {
			return out, pages
		}
		if len(items) != limit || pages > 100 {
			h.t.Fatalf("a page of %d items with a next cursor", len(items))
		}
	}
}

func valueAt(v any, key string) string {
	for _, k := range strings.Split(key, ".") {
		v = v.(map[string]any)[k]
	}
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatInt(int64(x), 10)
	}
	return ""
}

// TestListPaging walks every listing in every order with small pages and
// checks the pages join into the single-page answer: no row lost, none
// repeated, in the documented order.
func TestListPaging(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqliteURL(t))
	for _, c := range []struct {
		path, key string
		orders    []string
	}{
		{"/api/v1/users", "username", []string{"username", "-username", "created", "-created", "updated", "-updated"}},
		{"/api/v1/users?group=staff", "username", []string{"username", "-created"}},
		{"/api/v1/users?disabled=false", "username", []string{"-username"}},
		{"/api/v1/groups", "name", []string{"name", "-name", "created", "-updated"}},
		{"/api/v1/apps", "client_id", []string{"client_id", "-client_id", "name", "-name", "created", "-created"}},
		{"/api/v1/resources", "uri", []string{"uri", "-uri", "name", "created", "-updated"}},
		{"/api/v1/connections", "id", []string{"created", "-created", "updated", "expires", "-expires"}},
		{"/api/v1/audit/records", "id", []string{"id"}},
	} {
		for _, order := range c.orders {
			sep := "?"
			if strings.Contains(c.path, "?") {
				sep = "&"
			}
			path := c.path + sep + "sort=" + order
			all, pages := h.walk(path, c.key, maxLimit)
			if pages != 1 || len(all) < 2 {
				t.Fatalf("%s: %d rows in %d pages; the fixture is too small", path, len(all), pages)
			}
			for _, limit := range []int{1, 2, 3} {
				got, pages := h.walk(path, c.key, limit)
				if !slices.Equal(got, all) {
					t.Errorf("%s with limit %d = %v, want %v", path, limit, got, all)
				}
				if want := (len(all) + limit - 1) / limit; pages != want && pages != want+1 {
					t.Errorf("%s with limit %d: %d pages for %d rows", path, limit, pages, len(all))
				}
			}
			if order == "username" && !slices.IsSorted(all) {
				t.Errorf("%s is not sorted: %v", path, all)
			}
			if order == "-username" && !slices.IsSortedFunc(all, func(a, b string) int { return strings.Compare(b, a) }) {
				t.Errorf("%s is not sorted descending: %v", path, all)
			}
		}
	}
	got, _ := h.walk("/api/v1/users?group=xaa-admins", "username", 1)
	if !slices.Equal(got, []string{"alice", "dave"}) {
		t.Errorf("members of xaa-admins = %v", got)
	}
	got, _ = h.walk("/api/v1/users?disabled=true", "username", 5)
	if !slices.Equal(got, []string{"dave"}) {
		t.Errorf("disabled users = %v", got)
	}
}

// TestShowEndpoints reads one of each aggregate and checks the details
// the listing does not carry.
func TestShowEndpoints(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqliteURL(t))
	get := func(path string, want int) map[string]any {
		t.Helper()
		a := h.as(RoleViewer, http.MethodGet, path, "")
		if a.status != want {
			t.Fatalf("GET %s = %d %s, want %d", path, a.status, a.body, want)
		}
		return a.json(t)
	}
	u := get("/api/v1/users/alice", 200)
	if !slices.Equal(u["admin_roles"].([]any), []any{"admin"}) || !slices.Contains(u["groups"].([]any), any("xaa-admins")) {
		t.Errorf("alice = %v", u)
	}
	get("/api/v1/users/nobody", 404)
	g := get("/api/v1/groups/xaa-admins", 200)
	if g["admin_role"] != "admin" || len(g["members"].([]any)) != 2 || g["members_truncated"] != false {
		t.Errorf("xaa-admins = %v", g)
	}
	get("/api/v1/groups/nosuch", 404)
	a := get("/api/v1/apps/assistant", 200)
	if ids := a["client_ids"].([]any); len(ids) != 1 || ids[0].(map[string]any)["client_id"] != "assistant-at-as" {
		t.Errorf("assistant client ids = %v", a["client_ids"])
	}
	if len(a["connections"].([]any)) != 2 {
		t.Errorf("assistant connections = %v", a["connections"])
	}
	r := get("/api/v1/resources/"+url.PathEscape(resourceURI), 200)
	if r["resource"].(map[string]any)["uri"] != resourceURI || len(r["connections"].([]any)) != 2 {
		t.Errorf("resource = %v", r)
	}
	// The URI is canonicalised: host case and the default port do not matter.
	get("/api/v1/resources/"+url.PathEscape("https://MCP.example.com:443/files"), 200)
	get("/api/v1/resources/"+url.PathEscape("https://mcp.example.com/nothing"), 404)
	get("/api/v1/resources/not-a-uri", 400)
	c := get("/api/v1/connections/"+h.conns["approved"], 200)
	if c["connection"].(map[string]any)["app"] != "assistant" {
		t.Errorf("connection = %v", c)
	}
	get("/api/v1/connections/c_missing", 404)
}

// TestAuditEndpoints: query with typed filters, export as JSON lines that
// verify on their own, verify the database, and trace a token id across
// hops. Exports are audited.
func TestAuditEndpoints(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqliteURL(t))
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	for _, e := range []store.AuditEvent{
		{Time: now, Type: "idjag.issued", Actor: "assistant", Subject: h.users["alice"], ClientID: "assistant", Outcome: "allow",
			Data: map[string]string{"jti": "idjag-1"}},
		{Time: now.Add(time.Millisecond), Type: "accesstoken.issued", Actor: "assistant-at-as", ClientID: "assistant-at-as", Outcome: "allow",
			Data: map[string]string{"jti": "at-1", "idjag_jti": "idjag-1"}},
		{Time: now.Add(2 * time.Millisecond), Type: "gateway.tool_call", Actor: "gw", Outcome: "deny", Data: map[string]string{"jti": "at-1"}},
	} {
		if err := h.db.AppendAudit(ctx, &e); err != nil {
			t.Fatal(err)
		}
	}
	q := h.as(RoleAuditor, http.MethodGet, "/api/v1/audit/records?type=accesstoken.issued", "").json(t)
	items := q["items"].([]any)
	if len(items) != 1 || items[0].(map[string]any)["data"].(map[string]any)["idjag_jti"] != "idjag-1" {
		t.Errorf("query by type = %v", q)
	}
	q = h.as(RoleAuditor, http.MethodGet, "/api/v1/audit/records?outcome=deny&stream=gateway", "").json(t)
	if len(q["items"].([]any)) != 1 {
		t.Errorf("query by outcome and stream = %v", q)
	}
	q = h.as(RoleAuditor, http.MethodGet, "/api/v1/audit/records?since="+url.QueryEscape(now.Add(time.Hour).Format(time.RFC3339)), "").json(t)
	if len(q["items"].([]any)) != 0 {
		t.Errorf("query since the future = %v", q)
	}

	tr := h.as(RoleAuditor, http.MethodGet, "/api/v1/audit/trace/at-1", "").json(t)
	var types []string
	for _, r := range tr["records"].([]any) {
		types = append(types, r.(map[string]any)["type"].(string))
	}
	if !slices.Equal(types, []string{"idjag.issued", "accesstoken.issued", "gateway.tool_call"}) {
		t.Errorf("trace of at-1 = %v", types)
	}

	ex := h.as(RoleAuditor, http.MethodGet, "/api/v1/audit/export", "")
	if ex.status != http.StatusOK || ex.header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("export = %d %s", ex.status, ex.header.Get("Content-Type"))
	}
	lines := 0
	sc := bufio.NewScanner(bytes.NewReader(ex.body))
	sc.Buffer(nil, audit.MaxLine)
	for sc.Scan() {
		if _, err := audit.ParseRecord(sc.Bytes()); err != nil {
			t.Fatalf("export line %d: %v", lines+1, err)
		}
		lines++
	}
	rep, err := audit.VerifyExport(bytes.NewReader(ex.body), "export", nil)
	if err != nil || rep.Err() != nil || rep.Records() != int64(lines) {
		t.Errorf("the export does not verify on its own: %v %v (%d of %d records)", err, rep.Err(), rep.Records(), lines)
	}
	evs, _ := h.db.ListAudit(ctx, store.AuditFilter{Type: "admin.audit_export"})
	if len(evs) != 1 || evs[0].Data["roles"] != "auditor" {
		t.Errorf("the export was not audited: %+v", evs)
	}

	v := h.as(RoleAuditor, http.MethodGet, "/api/v1/audit/verify", "").json(t)
	if v["ok"] != true || v["records"].(float64) < float64(lines) {
		t.Errorf("verify = %v", v)
	}
	v = h.as(RoleAuditor, http.MethodGet, "/api/v1/audit/verify?stream=gateway", "").json(t)
	if v["ok"] != true || v["records"].(float64) != 1 {
		t.Errorf("verify of the gateway stream = %v", v)
	}
}
