package mcpauth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/openxaa/xaa/internal/jose"
	"github.com/openxaa/xaa/mcpauth"
)

// Example puts a go-sdk MCP server behind the middleware: search needs
// crm:read, export needs crm:export and a fresh MFA login, and the
// unlisted admin tool is denied to everyone.
func Example() {
	const (
		issuer   = "https://as.example.com"
		resource = "https://crm.example.com/mcp"
	)
	// The authorization server's key. A real deployment sets JWKSURL to the
	// AS's jwks_uri instead of a static JWKS.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	as, _ := jose.NewLocalSigner(key, jose.ES256)
	jwks, _ := json.Marshal(jose.PublicJWKS(as.PublicKey()))

	verifier, err := mcpauth.NewJWTVerifier(&mcpauth.JWTOptions{Issuer: issuer, Resource: resource, JWKS: jwks})
	if err != nil {
		log.Fatal(err)
	}
	m, err := mcpauth.New(&mcpauth.Options{
		Resource:             resource,
		AuthorizationServers: []string{issuer},
		Verifier:             verifier,
		Tools: map[string]mcpauth.ToolRule{
			"search": {Scopes: []string{"crm:read"}},
			"export": {Scopes: []string{"crm:export"}, ACRValues: []string{"urn:openxaa:acr:mfa"}, MaxAge: 5 * time.Minute},
		},
		OnDecision: func(_ context.Context, d mcpauth.Decision) error {
			fmt.Printf("decision: %s %s allowed=%v rule=%s\n", d.Method, d.Tool, d.Allowed, d.Rule)
			return nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}

	server := mcp.NewServer(&mcp.Implementation{Name: "crm", Version: "v1"}, nil)
	for _, name := range []string{"search", "export", "admin"} {
		server.AddTool(&mcp.Tool{Name: name, InputSchema: map[string]any{"type": "object"}},
			func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: name + " ran"}}}, nil
			})
	}
	mux := http.NewServeMux()
	mux.Handle("/mcp", m.Wrap(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)))
	mux.Handle(m.MetadataPath(), m.MetadataHandler())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	// A client holding a crm:read token (as the AS would mint it).
	now := time.Now()
	token, _ := as.Sign(context.Background(), jose.TypeAccessToken, map[string]any{
		"iss": issuer, "aud": resource, "sub": "alice", "client_id": "app1", "scope": "crm:read",
		"jti": rand.Text(), "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
	})
	client := mcp.NewClient(&mcp.Implementation{Name: "app1", Version: "v1"}, nil)
	cs, err := client.Connect(context.Background(), &mcp.StreamableClientTransport{
		Endpoint:   srv.URL + "/mcp",
		HTTPClient: &http.Client{Transport: bearer(token)},
	}, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer cs.Close()

	tools, _ := cs.ListTools(context.Background(), nil)
	for _, t := range tools.Tools {
		fmt.Println("listed:", t.Name)
	}
	res, _ := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "search"})
	fmt.Println(res.Content[0].(*mcp.TextContent).Text)
	_, err = cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "admin"})
	fmt.Println("admin:", err != nil)

	// Output:
	// listed: search
	// decision: tools/call search allowed=true rule=tool.allowed
	// search ran
	// decision: tools/call admin allowed=false rule=tool.unknown
	// admin: true
}

// bearer adds the token to every request.
type bearer string

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+string(b))
	return http.DefaultTransport.RoundTrip(r)
}
