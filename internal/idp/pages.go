package idp

import (
	"embed"
	"html/template"
	"net/http"
	"net/url"
	"strings"
)

//go:embed web/templates/*.html
var templateFS embed.FS

// pageCSS is the only style of the login pages, inlined and allowed by its
// CSP hash: the pages load nothing and run no script.
const pageCSS = `body{font-family:system-ui,sans-serif;max-width:24rem;margin:4rem auto;padding:0 1rem;color:#1b1b1b}` +
	`label{display:block;margin-top:1rem}input{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}` +
	`button{margin-top:1.5rem;padding:.6rem 1.2rem;font-size:1rem}.error{color:#a40000}`

func parsePages() (*template.Template, error) {
	return template.New("").Funcs(template.FuncMap{
		"css": func() template.CSS { return template.CSS(pageCSS) },
	}).ParseFS(templateFS, "web/templates/*.html")
}

type pageData struct {
	Title     string
	Error     string
	CSRF      string
	Action    string
	Username  string
	ClientID  string
	Stage     string
	Message   string
	NeedsTOTP bool
}

// renderPage writes one login page with a strict CSP. formOrigin is the
// origin of the client's redirect URI: Chrome applies form-action to the
// redirects that follow a form submission, so the page must allow the one
// place a successful login redirects to, and nothing else.
func (s *Server) renderPage(w http.ResponseWriter, r *http.Request, status int, name string, d pageData, formOrigin string) {
	csp := "default-src 'none'; style-src " + s.sso.styleHash + "; form-action 'self'"
	if formOrigin != "" {
		csp += " " + formOrigin
	}
	csp += "; frame-ancestors 'none'; base-uri 'none'"
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	if err := s.sso.pages.ExecuteTemplate(w, name, d); err != nil {
		s.log.ErrorContext(r.Context(), "render page", "page", name, "err", err)
	}
}

func (s *Server) renderError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	s.renderPage(w, r, status, "error.html", pageData{Title: "Sign-in error", Message: msg}, "")
}

// origin returns scheme://host of an absolute URI ("" if it has none).
func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" || strings.ContainsAny(u.Host, " ;,'") {
		return ""
	}
	return u.Scheme + "://" + u.Host
}
