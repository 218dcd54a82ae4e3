package admin

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openxaa/xaa/internal/store"
)

// TestConnectionLifecycle drives connections through the ledger with an
// approver's token: every change answers the connection with its history,
// approvers, enforcement points and queued security events, bad
// transitions are 409, and each change is audited twice: by the ledger
// (the change) and by the admin API (the credential and role).
func TestConnectionLifecycle(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqliteURL(t))
	pending, approved, crm := h.conns["pending"], h.conns["approved"], h.conns["crm"]

	list := h.as(RoleViewer, http.MethodGet, "/api/v1/connections?status=pending&resource="+resourceURI, "").json(t)
	if items, _ := list["items"].([]any); len(items) != 1 || items[0].(map[string]any)["id"] != pending {
		t.Fatalf("pending connections to %s = %v", resourceURI, list)
	}

	step := func(method, path, body string, want int) map[string]any {
		t.Helper()
		a := h.as(RoleApprover, method, path, body)
		if a.status != want {
			t.Fatalf("%s %s = %d %s, want %d", method, path, a.status, a.body, want)
		}
		return a.json(t)
	}
	conn := func(m map[string]any) map[string]any { return m["connection"].(map[string]any) }

	d := step("POST", "/api/v1/connections/"+pending+"/approve", `{"note":"reviewed"}`, 200)
	if conn(d)["status"] != "approved" {
		t.Errorf("after approve: %v", conn(d))
	}
	if ap, _ := d["approvers"].([]any); len(ap) == 0 || !strings.HasPrefix(ap[len(ap)-1].(string), "token:at_") {
		t.Errorf("approvers = %v, want the approver's token", d["approvers"])
	}

	d = step("POST", "/api/v1/connections/"+approved+"/suspend", `{"reason":"incident 42"}`, 200)
	if conn(d)["status"] != "suspended" || conn(d)["status_reason"] != "incident 42" {
		t.Errorf("after suspend: %v", conn(d))
	}
	sets, _ := d["set_deliveries"].([]any)
	if len(sets) == 0 || sets[0].(map[string]any)["audience"] != asIssuer {
		t.Errorf("suspension queued no security event for %s: %v", asIssuer, d["set_deliveries"])
	}
	if pts, _ := d["enforcement_points"].([]any); len(pts) == 0 {
		t.Errorf("no enforcement points: %v", d)
	}
	step("POST", "/api/v1/connections/"+approved+"/resume", `{}`, 200)
	step("POST", "/api/v1/connections/"+approved+"/revoke", `{}`, 400) // a reason is required
	d = step("POST", "/api/v1/connections/"+approved+"/revoke", `{"reason":"no longer needed"}`, 200)
	if conn(d)["status"] != "revoked" || conn(d)["revoked_at"] == nil {
		t.Errorf("after revoke: %v", conn(d))
	}
	hist, _ := d["history"].([]any)
	var actions []string
	for _, e := range hist {
		actions = append(actions, e.(map[string]any)["action"].(string))
	}
	if !slices.Equal(actions[len(actions)-3:], []string{"suspend", "resume", "revoke"}) {
		t.Errorf("history actions = %v", actions)
	}
	step("POST", "/api/v1/connections/"+approved+"/revoke", `{"reason":"again"}`, 409)
	step("POST", "/api/v1/connections/"+approved+"/approve", `{}`, 409)
	step("POST", "/api/v1/connections/c_nosuchconnection/suspend", `{"reason":"x"}`, 404)

	until := time.Now().Add(30 * 24 * time.Hour).UTC().Truncate(time.Second)
	d = step("POST", "/api/v1/connections/"+crm+"/recertify", `{"until":"`+until.Format(time.RFC3339)+`","note":"q3 review"}`, 200)
	if got, _ := time.Parse(time.RFC3339, conn(d)["expires_at"].(string)); !got.Equal(until) {
		t.Errorf("expires_at after recertify = %v, want %v", conn(d)["expires_at"], until)
	}
	step("POST", "/api/v1/connections/"+crm+"/recertify", `{"note":"no date"}`, 400)

	// The show answer agrees with the change answers.
	d = step("GET", "/api/v1/connections/"+approved, "", 200)
	if conn(d)["status"] != "revoked" {
		t.Errorf("show after revoke: %v", conn(d))
	}

	ctx := context.Background()
	admin, err := h.db.ListAudit(ctx, store.AuditFilter{Type: "admin.connection_revoke"})
	if err != nil {
		t.Fatal(err)
	}
	var allowed, denied int
	for _, e := range admin {
		if !strings.HasPrefix(e.Actor, "at_") || e.Data["actor_kind"] != "token" || e.Data["roles"] != "approver" || e.Subject != approved {
			t.Errorf("admin record %+v does not name the token, its role and the connection", e)
		}
		switch e.Outcome {
		case "allow":
			allowed++
		case "deny":
			denied++
		}
	}
	if allowed != 1 || denied != 2 {
		t.Errorf("admin.connection_revoke records: %d allowed, %d denied; want 1 and 2 (no reason, already revoked)", allowed, denied)
	}
	byLedger, err := h.db.ListAudit(ctx, store.AuditFilter{Stream: "admin", ClientID: "assistant"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(byLedger, func(e store.AuditEvent) bool {
		return e.Data["connection_id"] == approved && e.Data["to"] == "revoked" && strings.HasPrefix(e.Actor, "token:at_")
	}) {
		t.Errorf("the ledger did not audit the revocation with the token as actor: %+v", byLedger)
	}
}

// TestPrincipalChanges: disabling a user, removing a member and revoking
// an app go through the ledger, need the admin role, and show in the
// directory at once.
func TestPrincipalChanges(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqliteURL(t))
	must := func(a answer, want int) map[string]any {
		t.Helper()
		if a.status != want {
			t.Fatalf("status %d %s, want %d", a.status, a.body, want)
		}
		return a.json(t)
	}
	must(h.as(RoleAdmin, "POST", "/api/v1/users/eve/disable", `{"reason":"left the company"}`), 200)
	u := must(h.as(RoleViewer, "GET", "/api/v1/users/eve", ""), 200)
	if u["user"].(map[string]any)["disabled"] != true {
		t.Errorf("eve after disable: %v", u)
	}
	must(h.as(RoleAdmin, "POST", "/api/v1/users/eve/disable", `{"reason":"again"}`), 409)
	must(h.as(RoleAdmin, "POST", "/api/v1/users/nobody/disable", `{"reason":"x"}`), 404)
	must(h.as(RoleAdmin, "POST", "/api/v1/users/victor/disable", `{}`), 400)

	must(h.as(RoleAdmin, "POST", "/api/v1/groups/staff/remove-member", `{"username":"victor","reason":"moved teams"}`), 200)
	u = must(h.as(RoleViewer, "GET", "/api/v1/users/victor", ""), 200)
	if groups, _ := u["groups"].([]any); slices.Contains(groups, any("staff")) {
		t.Errorf("victor still in staff: %v", u)
	}
	must(h.as(RoleAdmin, "POST", "/api/v1/groups/staff/remove-member", `{"username":"victor","reason":"again"}`), 404)
	must(h.as(RoleAdmin, "POST", "/api/v1/groups/nosuchgroup/remove-member", `{"username":"alice","reason":"x"}`), 404)

	must(h.as(RoleAdmin, "POST", "/api/v1/apps/agent/revoke", `{"reason":"compromised"}`), 200)
	a := must(h.as(RoleViewer, "GET", "/api/v1/apps/agent", ""), 200)
	if a["app"].(map[string]any)["disabled"] != true {
		t.Errorf("agent after revoke: %v", a)
	}

	evs, err := h.db.ListAudit(context.Background(), store.AuditFilter{Stream: "admin", Outcome: "allow"})
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range []string{"admin.user_disable", "admin.group_remove_member", "admin.app_revoke"} {
		if !slices.ContainsFunc(evs, func(e store.AuditEvent) bool { return e.Type == op && e.Data["roles"] == "admin" }) {
			t.Errorf("no allowed %s record with role admin", op)
		}
	}
}
