package authserver

import (
	"net/http"
	"time"

	"github.com/openxaa/xaa/internal/jose"
)

// Handler returns the server's routes relative to the issuer's path: mount
// it under that path. Metadata at the RFC 8414 path-inserted location is
// served by MetadataHandler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /.well-known/oauth-authorization-server", s.MetadataHandler())
	mux.Handle("GET /.well-known/openid-configuration", s.MetadataHandler())
	mux.Handle("GET /jwks.json", jose.JWKSHandler(s.cfg.Keys.PublicKeys, 5*time.Minute))
	mux.HandleFunc("POST /token", s.handleToken)
	mux.HandleFunc("POST /introspect", s.handleIntrospect)
	mux.HandleFunc("POST /revoke", s.handleRevoke)
	mux.HandleFunc("GET /revocations", s.handleRevocations)
	mux.HandleFunc("POST /revocations", s.handleRevocations)
	mux.HandleFunc("GET /resource-policy", s.handleResourcePolicy)
	mux.HandleFunc("POST /resource-policy", s.handleResourcePolicy)
	mux.HandleFunc("POST /set", s.handleSET)
	return mux
}
