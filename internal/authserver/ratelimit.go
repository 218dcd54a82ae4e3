package authserver

import (
	"net/http"

	"github.com/openxaa/xaa/internal/oauth"
)

// clientIP is the caller's address for rate limits: Config.ClientIP, or
// the TCP peer with IPv6 reduced to its /64.
func (s *Server) clientIP(r *http.Request) string {
	if s.cfg.ClientIP != nil {
		return s.cfg.ClientIP(r)
	}
	return oauth.RemoteAddress(r)
}
