// Package files is the demo "files" MCP server: list, read, write and
// delete files under one directory. It knows nothing about authorization;
// the gateway (or mcpauth) in front of it maps list_files and read_file to
// files:read and write_file and delete_file to files:write.
package files

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// MaxFileSize bounds what read_file returns and write_file accepts.
const MaxFileSize = 1 << 20

// ErrBadPath is returned for a path that is absolute, escapes the root or is
// not clean.
var ErrBadPath = errors.New("files: the path must be relative to the root, clean, and stay inside it")

// Options configure the server.
type Options struct {
	// Root is the directory the tools operate in. Required; it must exist.
	Root string
	// Version is reported in the MCP implementation info.
	Version string
}

// New returns the MCP server. Every path a tool receives is resolved with
// os.Root, so neither "..", absolute paths nor symlinks reach outside Root.
func New(opts *Options) (*mcp.Server, error) {
	if opts == nil || opts.Root == "" {
		return nil, errors.New("files: Options.Root is required")
	}
	root, err := os.OpenRoot(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("files: open root: %w", err)
	}
	v := opts.Version
	if v == "" {
		v = "dev"
	}
	s := mcp.NewServer(&mcp.Implementation{Name: "openxaa-demo-files", Version: v}, nil)
	fsrv := &server{root: root}
	mcp.AddTool(s, &mcp.Tool{Name: "list_files", Description: "List the files in a directory (default: the root). Needs files:read."}, fsrv.list)
	mcp.AddTool(s, &mcp.Tool{Name: "read_file", Description: "Read a text file. Needs files:read."}, fsrv.read)
	mcp.AddTool(s, &mcp.Tool{Name: "write_file", Description: "Create or replace a file. Needs files:write."}, fsrv.write)
	mcp.AddTool(s, &mcp.Tool{Name: "delete_file", Description: "Delete a file. Needs files:write."}, fsrv.delete)
	return s, nil
}

type server struct {
	root *os.Root
}

// DirArg names a directory relative to the root; empty means the root.
type DirArg struct {
	Path string `json:"path,omitempty" jsonschema:"a directory relative to the root; omit for the root"`
}

// PathArg names one file relative to the root.
type PathArg struct {
	Path string `json:"path" jsonschema:"a path relative to the root, e.g. notes/todo.txt"`
}

// WriteArgs is write_file's input.
type WriteArgs struct {
	Path    string `json:"path" jsonschema:"a path relative to the root"`
	Content string `json:"content" jsonschema:"the new content of the file (UTF-8 text)"`
}

// Entry is one directory entry.
type Entry struct {
	Name string `json:"name"`
	Dir  bool   `json:"dir"`
	Size int64  `json:"size"`
}

// Listing is list_files' output.
type Listing struct {
	Path    string  `json:"path"`
	Entries []Entry `json:"entries"`
}

// Content is read_file's output.
type Content struct {
	Path    string `json:"path"`
	Content string `json:"content"`
}

// Written is write_file's and delete_file's output.
type Written struct {
	Path  string `json:"path"`
	Bytes int    `json:"bytes,omitempty"`
}

func cleanPath(p string, allowRoot bool) (string, error) {
	if p == "" || p == "." {
		if allowRoot {
			return ".", nil
		}
		return "", ErrBadPath
	}
	if strings.ContainsRune(p, 0) || strings.Contains(p, `\`) || path.IsAbs(p) || path.Clean(p) != p ||
		p == ".." || strings.HasPrefix(p, "../") {
		return "", ErrBadPath
	}
	return p, nil
}

func (s *server) list(_ context.Context, _ *mcp.CallToolRequest, in DirArg) (*mcp.CallToolResult, Listing, error) {
	p, err := cleanPath(in.Path, true)
	if err != nil {
		return nil, Listing{}, err
	}
	entries, err := fs.ReadDir(s.root.FS(), p)
	if err != nil {
		return nil, Listing{}, publicErr(err)
	}
	out := Listing{Path: p, Entries: []Entry{}}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			continue
		}
		size := info.Size()
		if e.IsDir() {
			size = 0
		}
		out.Entries = append(out.Entries, Entry{Name: e.Name(), Dir: e.IsDir(), Size: size})
	}
	slices.SortFunc(out.Entries, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	return nil, out, nil
}

func (s *server) read(_ context.Context, _ *mcp.CallToolRequest, in PathArg) (*mcp.CallToolResult, Content, error) {
	p, err := cleanPath(in.Path, false)
	if err != nil {
		return nil, Content{}, err
	}
	f, err := s.root.Open(p)
	if err != nil {
		return nil, Content{}, publicErr(err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, Content{}, publicErr(err)
	}
	if len(data) > MaxFileSize {
		return nil, Content{}, fmt.Errorf("files: %s is larger than %d bytes", p, MaxFileSize)
	}
	return nil, Content{Path: p, Content: string(data)}, nil
}

func (s *server) write(_ context.Context, _ *mcp.CallToolRequest, in WriteArgs) (*mcp.CallToolResult, Written, error) {
	p, err := cleanPath(in.Path, false)
	if err != nil {
		return nil, Written{}, err
	}
	if len(in.Content) > MaxFileSize {
		return nil, Written{}, fmt.Errorf("files: content is larger than %d bytes", MaxFileSize)
	}
	if err := s.root.WriteFile(p, []byte(in.Content), 0o644); err != nil {
		return nil, Written{}, publicErr(err)
	}
	return nil, Written{Path: p, Bytes: len(in.Content)}, nil
}

func (s *server) delete(_ context.Context, _ *mcp.CallToolRequest, in PathArg) (*mcp.CallToolResult, Written, error) {
	p, err := cleanPath(in.Path, false)
	if err != nil {
		return nil, Written{}, err
	}
	if err := s.root.Remove(p); err != nil {
		return nil, Written{}, publicErr(err)
	}
	return nil, Written{Path: p}, nil
}

// publicErr keeps the server's own directory out of error messages.
func publicErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("files: %s %s: %v", pe.Op, pe.Path, pe.Err)
	}
	return fmt.Errorf("files: %v", err)
}
