package idp

import (
	"net/http"
	"time"

	"github.com/openxaa/xaa/internal/jose"
)

// Handler returns the IdP's routes, relative to the issuer's path: mount it
// under that path (cmd/xaa does). Metadata at the RFC 8414 path-inserted
// location is served by MetadataHandler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /.well-known/openid-configuration", s.MetadataHandler())
	mux.Handle("GET /.well-known/oauth-authorization-server", s.MetadataHandler())
	mux.Handle("GET /jwks.json", jose.JWKSHandler(s.cfg.Keys.PublicKeys, 5*time.Minute))
	mux.HandleFunc("POST /token", s.handleToken)
	s.routesSSO(mux)
	return mux
}
