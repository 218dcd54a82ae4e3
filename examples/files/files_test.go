package files_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/openxaa/xaa/examples/files"
)

func connect(t *testing.T, root string) *mcp.ClientSession {
	t.Helper()
	s, err := files.New(&files.Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	ct, st := mcp.NewInMemoryTransports()
	ctx := context.Background()
	ss, err := s.Connect(ctx, st, nil)
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

func call(t *testing.T, cs *mcp.ClientSession, tool string, args map[string]any) (string, bool) {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String(), res.IsError
}

func TestToolsRoundTrip(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	cs := connect(t, root)
	tools, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
	}
	if diff := cmp.Diff([]string{"delete_file", "list_files", "read_file", "write_file"}, names); diff != "" {
		t.Errorf("tools (-want +got):\n%s", diff)
	}
	if out, isErr := call(t, cs, "write_file", map[string]any{"path": "notes.txt", "content": "hello"}); isErr {
		t.Fatalf("write_file: %s", out)
	}
	if out, isErr := call(t, cs, "read_file", map[string]any{"path": "notes.txt"}); isErr || !strings.Contains(out, `"content":"hello"`) {
		t.Fatalf("read_file = %s (error %v)", out, isErr)
	}
	if out, isErr := call(t, cs, "list_files", map[string]any{}); isErr || !strings.Contains(out, `"name":"notes.txt"`) {
		t.Fatalf("list_files = %s (error %v)", out, isErr)
	}
	if out, isErr := call(t, cs, "delete_file", map[string]any{"path": "notes.txt"}); isErr {
		t.Fatalf("delete_file: %s", out)
	}
	if _, err := os.Stat(filepath.Join(root, "notes.txt")); !os.IsNotExist(err) {
		t.Fatalf("file still there after delete: %v", err)
	}
}

// TestPathsStayInsideRoot: no path reaches outside the root, whatever its
// spelling, and the error never reveals where the root is.
func TestPathsStayInsideRoot(t *testing.T) {
	t.Parallel()
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret.txt"), []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if err := os.Symlink(filepath.Join(outside, "secret.txt"), filepath.Join(root, "link.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "linkdir")); err != nil {
		t.Fatal(err)
	}
	cs := connect(t, root)
	for _, tc := range []struct {
		tool string
		args map[string]any
	}{
		{"read_file", map[string]any{"path": "../secret.txt"}},
		{"read_file", map[string]any{"path": filepath.Join(outside, "secret.txt")}},
		{"read_file", map[string]any{"path": "a/../../secret.txt"}},
		{"read_file", map[string]any{"path": "./link.txt"}},
		{"read_file", map[string]any{"path": "link.txt"}},
		{"read_file", map[string]any{"path": "linkdir/secret.txt"}},
		{"read_file", map[string]any{"path": `..\secret.txt`}},
		{"read_file", map[string]any{"path": "x\x00y"}},
		{"read_file", map[string]any{"path": ""}},
		{"list_files", map[string]any{"path": ".."}},
		{"list_files", map[string]any{"path": "linkdir"}},
		{"write_file", map[string]any{"path": "linkdir/new.txt", "content": "x"}},
		{"write_file", map[string]any{"path": "../new.txt", "content": "x"}},
		{"delete_file", map[string]any{"path": "linkdir/secret.txt"}},
		{"delete_file", map[string]any{"path": "."}},
	} {
		out, isErr := call(t, cs, tc.tool, tc.args)
		if !isErr {
			t.Errorf("%s(%v) succeeded: %s", tc.tool, tc.args, out)
		}
		if strings.Contains(out, "s3cret") || strings.Contains(out, outside) || strings.Contains(out, root) {
			t.Errorf("%s(%v) leaked: %s", tc.tool, tc.args, out)
		}
	}
	if b, err := os.ReadFile(filepath.Join(outside, "secret.txt")); err != nil || string(b) != "s3cret" {
		t.Fatalf("outside file changed: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(outside, "new.txt")); !os.IsNotExist(err) {
		t.Fatal("a file was written outside the root")
	}
}

func TestNewNeedsRoot(t *testing.T) {
	t.Parallel()
	if _, err := files.New(nil); err == nil {
		t.Error("New(nil) succeeded")
	}
	if _, err := files.New(&files.Options{Root: filepath.Join(t.TempDir(), "missing")}); err == nil {
		t.Error("New with a missing root succeeded")
	}
}
