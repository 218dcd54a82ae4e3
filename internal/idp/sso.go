package idp

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"

	"github.com/openxaa/xaa/internal/directory"
)

// ssoState is what the browser-facing half of the IdP keeps beyond Config.
type ssoState struct {
	// pendingKey MACs the pending-login cookie (derived from AuditKey under
	// its own label, so it authenticates nothing else).
	pendingKey []byte
	limiter    *loginLimiter
	pages      *template.Template
	styleHash  string // CSP hash of the inline stylesheet
	hasher     *directory.PasswordHasher
	secure     bool // cookies carry Secure and the __Host- prefix
	coProtect  *http.CrossOriginProtection
}

func newSSOState(cfg Config) (*ssoState, error) {
	key, err := hkdf.Key(sha256.New, cfg.AuditKey, nil, "openxaa idp pending-login v1", 32)
	if err != nil {
		return nil, fmt.Errorf("derive pending-login key: %w", err)
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	hasher, err := directory.NewPasswordHasher(nil)
	if err != nil {
		return nil, err
	}
	var lim LoginLimit
	if cfg.LoginLimit != nil {
		lim = *cfg.LoginLimit
	}
	sum := sha256.Sum256([]byte(pageCSS))
	return &ssoState{
		pendingKey: key,
		limiter:    newLoginLimiter(lim),
		pages:      pages,
		styleHash:  "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'",
		hasher:     hasher,
		secure:     !(cfg.DevMode && len(cfg.Issuer) > 5 && cfg.Issuer[:5] == "http:"),
		coProtect:  http.NewCrossOriginProtection(),
	}, nil
}

// routesSSO adds the OpenID Connect browser and bearer endpoints.
func (s *Server) routesSSO(mux *http.ServeMux) {
	// POST /authorize is not behind cross-origin protection: an RP's page
	// submitting the request is cross-site by nature (OIDC Core
	// §3.1.2.1), and the POST can do nothing a GET link cannot.
	mux.HandleFunc("GET /authorize", s.handleAuthorize)
	mux.HandleFunc("POST /authorize", s.handleAuthorize)
	mux.HandleFunc("GET /login", s.handleLoginPage)
	mux.Handle("POST /login", s.sso.coProtect.Handler(http.HandlerFunc(s.handleLoginSubmit)))
	mux.HandleFunc("GET /userinfo", s.handleUserinfo)
	mux.HandleFunc("POST /userinfo", s.handleUserinfo)
}

// randomToken returns 256 random bits, base64url: session cookies, codes,
// refresh tokens and CSRF tokens.
func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// digestOf is the form in which a secret is stored and looked up.
func digestOf(secret string) []byte {
	d := sha256.Sum256([]byte(secret))
	return d[:]
}
