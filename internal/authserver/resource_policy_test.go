package authserver

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// getPolicy sends GET /resource-policy with the raw query and c's
// credentials in HTTP Basic.
func (h *harness) getPolicy(c creds, rawQuery string) result {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodGet, h.hs.URL+"/resource-policy?"+rawQuery, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	if c.id != "" {
		req.SetBasicAuth(url.QueryEscape(c.id), url.QueryEscape(c.secret))
	}
	return h.send(req)
}

const mcpPolicyJSON = `{"resource":"https://mcp.example.com/mcp","scopes":["a","b","c"],"access_token_lifetime":300,` +
	`"tools":{"export/all":{"scopes":["a","b"],"acr_values":["urn:openxaa:acr:mfa","urn:openxaa:acr:phr"],"max_age":300},` +
	`"search":{"scopes":["a"]}}}`

func TestResourcePolicy(t *testing.T) {
	t.Parallel()
	base := newHarness(t, nil)

	t.Run("get_basic", func(t *testing.T) {
		t.Parallel()
		h := base.with(t)
		r := h.getPolicy(asClient1, "resource="+url.QueryEscape(resMCP))
		if r.status != http.StatusOK || strings.TrimSpace(r.raw) != mcpPolicyJSON {
			t.Errorf("got %d %s\nwant %s", r.status, r.raw, mcpPolicyJSON)
		}
		if cc := r.header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control = %q, want no-store", cc)
		}
	})
	t.Run("post_basic", func(t *testing.T) {
		t.Parallel()
		h := base.with(t)
		r := h.call("/resource-policy", asClient1, url.Values{"resource": {resMCP}})
		if r.status != http.StatusOK || strings.TrimSpace(r.raw) != mcpPolicyJSON || r.header.Get("Cache-Control") != "no-store" {
			t.Errorf("got %d %s %v", r.status, r.raw, r.header)
		}
	})
	t.Run("post_client_secret_post_no_tools", func(t *testing.T) {
		t.Parallel()
		h := base.with(t)
		req, _ := http.NewRequest(http.MethodPost, h.hs.URL+"/resource-policy", strings.NewReader(url.Values{
			"resource": {resOther}, "client_id": {client2}, "client_secret": {client2Sec},
		}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r := h.send(req)
		want := `{"resource":"https://other.example.com/mcp","scopes":["a","x"],"access_token_lifetime":600,"tools":{}}`
		if r.status != http.StatusOK || strings.TrimSpace(r.raw) != want {
			t.Errorf("got %d %s\nwant %s", r.status, r.raw, want)
		}
	})
	t.Run("non_canonical_resource", func(t *testing.T) {
		t.Parallel()
		h := base.with(t)
		r := h.getPolicy(asClient1, "resource="+url.QueryEscape("HTTPS://MCP.Example.com:443/mcp"))
		if r.status != http.StatusOK || r.str("resource") != resMCP {
			t.Errorf("got %d %s", r.status, r.raw)
		}
	})

	// Every refusal, by GET and where it applies by POST. "Not governed"
	// and "not yours" must be the same answer.
	notYours := base.getPolicy(asClient1, "resource="+url.QueryEscape(resOther))
	for _, tc := range []struct {
		name   string
		do     func(h *harness) result
		status int
		code   string
	}{
		{"not_governed", func(h *harness) result {
			return h.getPolicy(asClient1, "resource="+url.QueryEscape(resForeign))
		}, 400, "invalid_target"},
		{"governed_not_in_policy", func(h *harness) result {
			return h.getPolicy(asClient1, "resource="+url.QueryEscape(resOther))
		}, 400, "invalid_target"},
		{"caller_without_policy", func(h *harness) result {
			return h.getPolicy(asNoPol, "resource="+url.QueryEscape(resMCP))
		}, 400, "invalid_target"},
		{"post_not_in_policy", func(h *harness) result {
			return h.call("/resource-policy", asClient1, url.Values{"resource": {resOther}})
		}, 400, "invalid_target"},
		{"resource_with_fragment", func(h *harness) result {
			return h.getPolicy(asClient1, "resource="+url.QueryEscape(resMCP+"#x"))
		}, 400, "invalid_target"},
		{"resource_relative", func(h *harness) result {
			return h.getPolicy(asClient1, "resource=%2Fmcp")
		}, 400, "invalid_target"},
		{"resource_missing", func(h *harness) result { return h.getPolicy(asClient1, "") }, 400, "invalid_request"},
		{"resource_empty", func(h *harness) result { return h.getPolicy(asClient1, "resource=") }, 400, "invalid_request"},
		{"post_resource_missing", func(h *harness) result {
			return h.call("/resource-policy", asClient1, url.Values{})
		}, 400, "invalid_request"},
		{"resource_twice", func(h *harness) result {
			return h.getPolicy(asClient1, "resource="+url.QueryEscape(resMCP)+"&resource="+url.QueryEscape(resMCP))
		}, 400, "invalid_request"},
		{"post_resource_twice", func(h *harness) result {
			return h.call("/resource-policy", asClient1, url.Values{"resource": {resMCP, resMCP}})
		}, 400, "invalid_request"},
		{"unknown_query_parameter", func(h *harness) result {
			return h.getPolicy(asClient1, "resource="+url.QueryEscape(resMCP)+"&x=1")
		}, 400, "invalid_request"},
		{"secret_in_query", func(h *harness) result {
			return h.getPolicy(anonymous, "resource="+url.QueryEscape(resMCP)+"&client_id="+client1+"&client_secret="+client1Sec)
		}, 400, "invalid_request"},
		{"malformed_query", func(h *harness) result { return h.getPolicy(asClient1, "resource=%zz") }, 400, "invalid_request"},
		{"no_credentials", func(h *harness) result {
			return h.getPolicy(anonymous, "resource="+url.QueryEscape(resMCP))
		}, 401, "invalid_client"},
		{"wrong_secret", func(h *harness) result {
			return h.getPolicy(creds{client1, "wrong"}, "resource="+url.QueryEscape(resMCP))
		}, 401, "invalid_client"},
		{"unknown_client", func(h *harness) result {
			return h.getPolicy(creds{"nobody", "x"}, "resource="+url.QueryEscape(resMCP))
		}, 401, "invalid_client"},
		{"post_no_credentials", func(h *harness) result {
			return h.call("/resource-policy", anonymous, url.Values{"resource": {resMCP}})
		}, 401, "invalid_client"},
		{"post_wrong_content_type", func(h *harness) result {
			req, _ := http.NewRequest(http.MethodPost, h.hs.URL+"/resource-policy", strings.NewReader(`{"resource":"x"}`))
			req.Header.Set("Content-Type", "application/json")
			req.SetBasicAuth(client1, client1Sec)
			return h.send(req)
		}, 400, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := base.with(t)
			r := tc.do(h)
			wantError(t, r, tc.status, tc.code)
			if _, ok := r.body["tools"]; ok {
				t.Error("a refusal carries the policy")
			}
			if tc.code == "invalid_target" {
				if d := cmp.Diff(notYours.body, r.body); d != "" {
					t.Errorf("refusal differs from the not-in-policy one, so it tells them apart (-want +got):\n%s", d)
				}
				if !strings.Contains(r.str("error_description"), "may not read the policy") {
					t.Errorf("error_description = %q", r.str("error_description"))
				}
			}
		})
	}
}

// TestResourcePolicyIsACopy: New keeps its own copy of the tool map, so
// a caller editing its map later cannot change what gateways are told.
func TestResourcePolicyIsACopy(t *testing.T) {
	t.Parallel()
	rule := ToolRule{Scopes: []string{"a"}, ACRValues: []string{"acr1"}, MaxAge: time.Minute}
	m := map[string]ToolRule{"t": rule}
	h := newHarness(t, &harnessOptions{edit: func(c *Config) { c.Resources[0].Tools = m }})
	m["t2"] = ToolRule{Scopes: []string{"b"}}
	rule.Scopes[0], rule.ACRValues[0] = "c", "acr2"
	r := h.getPolicy(asClient1, "resource="+url.QueryEscape(resMCP))
	want := map[string]any{"t": map[string]any{"scopes": []any{"a"}, "acr_values": []any{"acr1"}, "max_age": float64(60)}}
	if d := cmp.Diff(want, r.body["tools"]); d != "" {
		t.Errorf("tools (-want +got):\n%s", d)
	}
}
