package gateway

import (
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openxaa/xaa/internal/authserver"
)

// TestRevocationTakesEffectAfterOnePoll: a token revoked at the real
// authorization server (its jti), and every token of a (client, sub) pair
// fenced there, stop working at the gateway after exactly one poll, on a
// JWT-verifying route that never calls the authorization server per
// request. Tokens minted after the fence keep working.
func TestRevocationTakesEffectAfterOnePoll(t *testing.T) {
	t.Parallel()
	w := newWorld(t, &worldOptions{noStdio: true})
	call := func(tok, sid string) int {
		return w.post(pathHTTP, tok, sid, callBody(5, "search_customers")).status
	}

	t.Run("jti", func(t *testing.T) {
		tok, other := w.token(pathHTTP, "crm:read"), w.token(pathHTTP, "crm:read")
		sid := w.session(pathHTTP, tok)
		if got := call(tok, sid); got != http.StatusOK {
			t.Fatalf("before revocation: %d", got)
		}
		w.revoke(tok)
		if got := call(tok, sid); got != http.StatusOK {
			t.Fatalf("before the poll the gateway cannot know yet: %d", got)
		}
		w.gw.Poll(t.Context())
		r := w.post(pathHTTP, tok, sid, callBody(6, "search_customers"))
		if r.status != http.StatusUnauthorized || !strings.Contains(r.header.Get("Www-Authenticate"), `error="invalid_token"`) {
			t.Errorf("after one poll: %d %q, want 401 invalid_token", r.status, r.header.Get("Www-Authenticate"))
		}
		if got := call(other, w.session(pathHTTP, other)); got != http.StatusOK {
			t.Errorf("another token of the same user: %d, want 200", got)
		}
	})

	t.Run("fence", func(t *testing.T) {
		carol := func(c claims) { c["sub"] = "carol" }
		tok := w.token(pathHTTP, "crm:read", carol)
		bystander := w.token(pathHTTP, "crm:read") // alice: another subject
		sid := w.session(pathHTTP, tok)
		if got := call(tok, sid); got != http.StatusOK {
			t.Fatalf("before the fence: %d", got)
		}
		f, err := w.as.Fence(t.Context(), appClient, idpIssuer+"|carol", "test: carol's access withdrawn", "test")
		if err != nil {
			t.Fatal(err)
		}
		w.gw.Poll(t.Context())
		if got := call(tok, sid); got != http.StatusUnauthorized {
			t.Errorf("a token issued before the fence: %d, want 401", got)
		}
		if got := call(bystander, w.session(pathHTTP, bystander)); got != http.StatusOK {
			t.Errorf("another subject's token: %d, want 200", got)
		}
		// A token issued at or after not_before is not fenced.
		w.asClock.add(time.Until(f.NotBefore) + time.Second)
		fresh := w.token(pathHTTP, "crm:read", carol)
		if got := call(fresh, w.session(pathHTTP, fresh)); got != http.StatusOK {
			t.Errorf("a token issued after the fence: %d, want 200", got)
		}
	})

	if jtis, fences := w.gw.Revocations(pathHTTP).Size(); jtis != 1 || fences != 1 {
		t.Errorf("the list holds %d jtis and %d fences, want 1 and 1", jtis, fences)
	}
}

// TestStalenessFailsClosed: once the revocation list has not been
// refreshed for longer than the route allows, every tool call is refused
// with 503 and Retry-After, audited, and never forwarded; other MCP
// traffic still flows. A successful poll restores service.
func TestStalenessFailsClosed(t *testing.T) {
	t.Parallel()
	var skew atomic.Int64 // the gateway's clock runs ahead by this much
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	w := newWorld(t, &worldOptions{noStdio: true, edit: func(_ *world, o *Options) {
		o.Now = now
		for i := range o.Routes {
			o.Routes[i].PollInterval, o.Routes[i].MaxStaleness = 10*time.Second, 30*time.Second
		}
	}})
	tok := w.token(pathHTTP, "crm:read")
	sid := w.session(pathHTTP, tok)
	if r := w.post(pathHTTP, tok, sid, callBody(1, "search_customers")); r.status != http.StatusOK {
		t.Fatalf("fresh: %d", r.status)
	}
	introTok := w.token(pathIntro, "crm:read")
	introSID := w.session(pathIntro, introTok)

	skew.Store(int64(31 * time.Second)) // no poll for 31 s
	// Introspection checks every token live: an old list refuses nothing.
	if r := w.post(pathIntro, introTok, introSID, callBody(1, "search_customers")); r.status != http.StatusOK {
		t.Errorf("introspection route while the list is stale: %d, want 200", r.status)
	}
	r := w.post(pathHTTP, tok, sid, callBody(2, "search_customers"))
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "10" {
		t.Errorf("stale: %d Retry-After %q, want 503 and 10", r.status, r.header.Get("Retry-After"))
	}
	if r := w.post(pathHTTP, tok, sid, `{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"crm://readme"}}`); r.status != http.StatusOK {
		t.Errorf("resources/read while stale: %d, want 200 (only tool calls are governed)", r.status)
	}
	w.gw.Poll(t.Context())
	if r := w.post(pathHTTP, tok, sid, callBody(4, "search_customers")); r.status != http.StatusOK {
		t.Errorf("after a successful poll: %d, want 200", r.status)
	}

	if got := w.rec.calledTools(); len(got) != 3 {
		t.Errorf("the upstream ran %v, want the two fresh calls and the introspected one", got)
	}
	var got []string
	for _, ev := range w.toolCallAudits() {
		got = append(got, ev.Data["route"]+" "+ev.Outcome+" "+ev.Rule)
	}
	want := []string{pathHTTP + " allow tool.allowed", pathIntro + " allow tool.allowed", pathHTTP + " deny " + RuleRevocationsStale, pathHTTP + " allow tool.allowed"}
	if !slices.Equal(got, want) {
		t.Errorf("audit = %q, want %q", got, want)
	}
}

// TestToolPolicyRefresh: the tool policy comes from the authorization
// server and follows it at the next poll (here: the server restarted with
// a new policy on the same database).
func TestToolPolicyRefresh(t *testing.T) {
	t.Parallel()
	w := newWorld(t, &worldOptions{noStdio: true})
	tok := w.token(pathHTTP, "crm:read crm:admin")
	sid := w.session(pathHTTP, tok)
	if r := w.post(pathHTTP, tok, sid, callBody(1, "delete_customers")); r.status != http.StatusOK {
		t.Fatalf("before: %d %s", r.status, r.body)
	}
	w.restartAS(func(c *authserver.Config) {
		res := slices.Clone(c.Resources)
		for i := range res {
			tools := maps.Clone(res[i].Tools)
			tools["delete_customers"] = authserver.ToolRule{Scopes: []string{"crm:admin", "crm:export"}}
			delete(tools, "search_customers")
			res[i].Tools = tools
		}
		c.Resources = res
	})
	if r := w.post(pathHTTP, tok, sid, callBody(2, "delete_customers")); r.status != http.StatusOK {
		t.Fatalf("before the poll the old policy holds: %d", r.status)
	}
	w.gw.Poll(t.Context())
	r := w.post(pathHTTP, tok, sid, callBody(3, "delete_customers"))
	if r.status != http.StatusForbidden || !strings.Contains(r.header.Get("Www-Authenticate"), `scope="crm:admin crm:export"`) {
		t.Errorf("after the poll: %d %q, want 403 naming both scopes", r.status, r.header.Get("Www-Authenticate"))
	}
	if r := w.post(pathHTTP, tok, sid, callBody(4, "search_customers")); r.status != http.StatusOK || !strings.Contains(r.body, "-32602") {
		t.Errorf("a tool dropped from the policy: %d %s, want the unknown-tool error", r.status, r.body)
	}
	if !strings.Contains(w.logs.String(), "tool policy updated from the authorization server") {
		t.Error("the policy change was not logged")
	}
}
