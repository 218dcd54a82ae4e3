// Package crm is the demo "crm" MCP server: search customers (crm:read)
// and export the whole customer list (crm:export, which the demo's policy
// guards with a fresh MFA login). The data is a fixed, fictional set.
package crm

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Customer is one row of the fictional customer list.
type Customer struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Company string `json:"company"`
	Email   string `json:"email"`
	Tier    string `json:"tier"`
}

// Customers is the fixed data set.
var Customers = []Customer{
	{ID: "c-1001", Name: "Ada Byron", Company: "Analytical Engines Ltd", Email: "ada@engines.example", Tier: "gold"},
	{ID: "c-1002", Name: "Grace Hopper", Company: "Compiler Works", Email: "grace@compiler.example", Tier: "platinum"},
	{ID: "c-1003", Name: "Alan Turing", Company: "Bletchley Logic", Email: "alan@bletchley.example", Tier: "silver"},
	{ID: "c-1004", Name: "Katherine Johnson", Company: "Orbital Math Inc", Email: "kj@orbital.example", Tier: "gold"},
	{ID: "c-1005", Name: "Edsger Dijkstra", Company: "Shortest Path BV", Email: "ewd@path.example", Tier: "silver"},
	{ID: "c-1006", Name: "Barbara Liskov", Company: "Substitution Systems", Email: "barbara@liskov.example", Tier: "platinum"},
}

// Options configure the server.
type Options struct {
	// Version is reported in the MCP implementation info.
	Version string
}

// New returns the MCP server.
func New(opts *Options) *mcp.Server {
	v := "dev"
	if opts != nil && opts.Version != "" {
		v = opts.Version
	}
	s := mcp.NewServer(&mcp.Implementation{Name: "openxaa-demo-crm", Version: v}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "search_customers", Description: "Find customers whose name, company or email contains the query. Needs crm:read."}, search)
	mcp.AddTool(s, &mcp.Tool{Name: "export_customers", Description: "Export every customer as CSV. Needs crm:export and a recent MFA login."}, export)
	return s
}

// SearchArgs is search_customers' input.
type SearchArgs struct {
	Query string `json:"query" jsonschema:"text to look for in name, company or email (case-insensitive)"`
}

// SearchResult is search_customers' output.
type SearchResult struct {
	Customers []Customer `json:"customers"`
}

// ExportResult is export_customers' output.
type ExportResult struct {
	Rows int    `json:"rows"`
	CSV  string `json:"csv"`
}

func search(_ context.Context, _ *mcp.CallToolRequest, in SearchArgs) (*mcp.CallToolResult, SearchResult, error) {
	q := strings.ToLower(strings.TrimSpace(in.Query))
	if q == "" || utf8.RuneCountInString(q) > 200 {
		return nil, SearchResult{}, errors.New("crm: query must be 1 to 200 characters")
	}
	out := SearchResult{Customers: []Customer{}}
	for _, c := range Customers {
		if strings.Contains(strings.ToLower(c.Name), q) || strings.Contains(strings.ToLower(c.Company), q) ||
			strings.Contains(strings.ToLower(c.Email), q) {
			out.Customers = append(out.Customers, c)
		}
	}
	return nil, out, nil
}

func export(_ context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, ExportResult, error) {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write([]string{"id", "name", "company", "email", "tier"})
	for _, c := range Customers {
		_ = w.Write([]string{c.ID, c.Name, c.Company, c.Email, c.Tier})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return nil, ExportResult{}, err
	}
	return nil, ExportResult{Rows: len(Customers), CSV: buf.String()}, nil
}
