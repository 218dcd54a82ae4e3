package gateway

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestTransparentSession drives a whole go-sdk client session through
// each route: initialize, the standalone GET stream, tools/list (filtered),
// an allowed call, resources and prompts. The session keeps its id across
// requests, and every allowed call reaches the upstream.
func TestTransparentSession(t *testing.T) {
	t.Parallel()
	w := newWorld(t, nil)
	for _, path := range []string{pathHTTP, pathStdio, pathIntro} {
		t.Run(strings.TrimPrefix(path, "/mcp/"), func(t *testing.T) {
			tok := w.token(path, "crm:read")
			cs := w.connect(t, path, tok)
			if cs.ID() == "" {
				t.Fatal("no session id")
			}
			if got := cs.InitializeResult().ServerInfo.Name; got != "crm-test" {
				t.Errorf("server name = %q", got)
			}

			lt, err := cs.ListTools(t.Context(), nil)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, tool := range lt.Tools {
				names = append(names, tool.Name)
			}
			slices.Sort(names)
			// crm:read only: the export and delete tools need more scopes,
			// and secret_tool is in no policy.
			if diff := cmp.Diff([]string{"pid", "search_customers", "slow"}, names); diff != "" {
				t.Errorf("tools/list (-want +got):\n%s", diff)
			}

			for range 3 { // the session survives many requests
				res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "search_customers", Arguments: map[string]any{"query": "acme"}})
				if err != nil {
					t.Fatal(err)
				}
				if got := res.Content[0].(*mcp.TextContent).Text; got != "search_customers:acme" {
					t.Errorf("result = %q", got)
				}
			}
			rr, err := cs.ReadResource(t.Context(), &mcp.ReadResourceParams{URI: "crm://readme"})
			if err != nil || rr.Contents[0].Text != "hello" {
				t.Errorf("resources/read = %v, %v", rr, err)
			}
			gp, err := cs.GetPrompt(t.Context(), &mcp.GetPromptParams{Name: "greet"})
			if err != nil || len(gp.Messages) != 1 {
				t.Errorf("prompts/get = %v, %v", gp, err)
			}
		})
	}
	if got := w.rec.calledTools(); len(got) != 6 { // 3 on /mcp/crm + 3 on /mcp/intro
		t.Errorf("the HTTP upstream saw tool calls %v, want 6 search_customers", got)
	}
}
