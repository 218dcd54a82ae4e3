package crm_test

import (
	"context"
	"encoding/csv"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/openxaa/xaa/examples/crm"
)

func session(t *testing.T) *mcp.ClientSession {
	t.Helper()
	ct, st := mcp.NewInMemoryTransports()
	ctx := context.Background()
	ss, err := crm.New(nil).Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ss.Close() })
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func TestSearchAndExport(t *testing.T) {
	t.Parallel()
	cs := session(t)
	ctx := context.Background()
	for _, tc := range []struct {
		query   string
		wantErr bool
		want    int
	}{
		{"grace", false, 1},
		{"EXAMPLE", false, len(crm.Customers)},
		{"nobody", false, 0},
		{"", true, 0},
		{strings.Repeat("x", 201), true, 0},
	} {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "search_customers", Arguments: map[string]any{"query": tc.query}})
		if err != nil {
			t.Fatal(err)
		}
		if res.IsError != tc.wantErr {
			t.Errorf("search %q: IsError = %v", tc.query, res.IsError)
			continue
		}
		if tc.wantErr {
			continue
		}
		got := res.StructuredContent.(map[string]any)["customers"].([]any)
		if len(got) != tc.want {
			t.Errorf("search %q: %d customers, want %d", tc.query, len(got), tc.want)
		}
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "export_customers", Arguments: map[string]any{}})
	if err != nil || res.IsError {
		t.Fatalf("export: %v %v", err, res)
	}
	sc := res.StructuredContent.(map[string]any)
	rows, err := csv.NewReader(strings.NewReader(sc["csv"].(string))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(crm.Customers)+1 || rows[0][0] != "id" {
		t.Fatalf("export rows = %v", rows)
	}
}
