package gateway

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"time"

	"github.com/openxaa/xaa/internal/store"
	"github.com/openxaa/xaa/mcpauth"
)

// maxPolicyTools bounds a fetched policy, so a broken authorization server
// cannot make the gateway hold an unbounded map.
const maxPolicyTools = 10000

// resourcePolicy is the resource-policy endpoint's answer.
type resourcePolicy struct {
	Resource            string                `json:"resource"`
	Scopes              []string              `json:"scopes"`
	AccessTokenLifetime int64                 `json:"access_token_lifetime"`
	Tools               map[string]policyTool `json:"tools"`
}

type policyTool struct {
	Scopes    []string `json:"scopes"`
	ACRValues []string `json:"acr_values"`
	MaxAge    int64    `json:"max_age"` // whole seconds; 0 or absent: no limit
}

// fetchTools reads the tool policy of resource from the authorization
// server's resource-policy endpoint and checks it as strictly as the
// config's own tool rules.
func fetchTools(ctx context.Context, c *asClient, endpoint, resource string) (map[string]mcpauth.ToolRule, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, err
	}
	q := u.Query()
	q.Set("resource", resource)
	u.RawQuery = q.Encode()
	var p resourcePolicy
	if err := c.getJSON(ctx, u.String(), true, &p); err != nil {
		return nil, fmt.Errorf("fetch the tool policy of %s: %w", resource, err)
	}
	return policyTools(&p, resource)
}

// policyTools checks a resource-policy answer for resource and converts
// its tools.
func policyTools(p *resourcePolicy, resource string) (map[string]mcpauth.ToolRule, error) {
	if p.Resource != resource {
		return nil, fmt.Errorf("the resource policy answered for %q, not %q", clip(p.Resource, 200), resource)
	}
	if len(p.Tools) > maxPolicyTools {
		return nil, fmt.Errorf("the resource policy of %s lists %d tools, more than %d", resource, len(p.Tools), maxPolicyTools)
	}
	tools := make(map[string]mcpauth.ToolRule, len(p.Tools))
	for name, t := range p.Tools {
		if t.MaxAge < 0 || t.MaxAge > int64(store.MaxToolMaxAge/time.Second) {
			return nil, fmt.Errorf("the resource policy of %s: tool %q: max_age %d is not 0 to %d seconds", resource, clip(name, 130), t.MaxAge, int64(store.MaxToolMaxAge/time.Second))
		}
		rule, err := toolRule(name, t.Scopes, t.ACRValues, time.Duration(t.MaxAge)*time.Second)
		if err != nil {
			return nil, fmt.Errorf("the resource policy of %s: %w", resource, err)
		}
		tools[name] = rule
	}
	return tools, nil
}

// toolRule checks one tool's rule (the rules the authorization server
// applies to its own config) and copies it.
func toolRule(name string, scopes, acr []string, maxAge time.Duration) (mcpauth.ToolRule, error) {
	if store.CheckToolName(name) != nil {
		return mcpauth.ToolRule{}, fmt.Errorf("%q is not an MCP tool name", clip(name, 130))
	}
	if len(scopes) == 0 {
		return mcpauth.ToolRule{}, fmt.Errorf("tool %q requires no scope", name)
	}
	for _, s := range scopes {
		if store.CheckScope(s) != nil {
			return mcpauth.ToolRule{}, fmt.Errorf("tool %q: %q is not a valid scope", name, clip(s, 130))
		}
	}
	for _, a := range acr {
		if store.CheckACRValue(a) != nil {
			return mcpauth.ToolRule{}, fmt.Errorf("tool %q: %q is not a valid acr value", name, clip(a, 130))
		}
	}
	if maxAge < 0 || maxAge > store.MaxToolMaxAge {
		return mcpauth.ToolRule{}, fmt.Errorf("tool %q: max_age %s is not 0 to %s", name, maxAge, store.MaxToolMaxAge)
	}
	return mcpauth.ToolRule{Scopes: slices.Clone(scopes), ACRValues: slices.Clone(acr), MaxAge: maxAge}, nil
}

// sameTools reports whether two policies are equal, so a refresh that
// changes nothing is not logged.
func sameTools(a, b map[string]mcpauth.ToolRule) bool {
	return maps.EqualFunc(a, b, func(x, y mcpauth.ToolRule) bool {
		return slices.Equal(x.Scopes, y.Scopes) && slices.Equal(x.ACRValues, y.ACRValues) && x.MaxAge == y.MaxAge
	})
}
