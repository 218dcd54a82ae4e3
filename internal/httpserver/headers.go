package httpserver

import "net/http"

// SecurityHeadersOptions configures SecurityHeaders. The zero value (or nil)
// sends everything except HSTS.
type SecurityHeadersOptions struct {
	// HSTS adds Strict-Transport-Security. Set it whenever clients reach
	// the server over https, including behind a TLS-terminating proxy;
	// never on a plain-http deployment, where browsers ignore it anyway.
	HSTS bool
}

// Values for API responses. Handlers that serve HTML (login, admin UI)
// replace Content-Security-Policy with their own.
const (
	defaultCSP = "default-src 'none'; frame-ancestors 'none'"
	// Two years without preload: preloading is a commitment an operator
	// makes, not a library default.
	hstsValue = "max-age=63072000; includeSubDomains"
)

// SecurityHeaders sets nosniff, no-referrer, frame denial, a deny-all CSP
// and, when configured, HSTS, before the handler runs; a handler may still
// override any of them.
func SecurityHeaders(opts *SecurityHeadersOptions) Middleware {
	type header struct{ key, value string }
	headers := []header{
		{"X-Content-Type-Options", "nosniff"},
		{"Referrer-Policy", "no-referrer"},
		{"X-Frame-Options", "DENY"},
		{"Content-Security-Policy", defaultCSP},
	}
	if opts != nil && opts.HSTS {
		headers = append(headers, header{"Strict-Transport-Security", hstsValue})
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// One backing array per request instead of one slice per
			// header; each value gets its own capacity-1 window so an
			// Add on one header cannot overwrite its neighbour.
			vals := make([]string, len(headers))
			h := w.Header()
			for i, hd := range headers {
				vals[i] = hd.value
				h[hd.key] = vals[i : i+1 : i+1]
			}
			next.ServeHTTP(w, r)
		})
	}
}
