// Package httpserver is the HTTP shell every OpenXAA role (IdP,
// authorization server, gateway, admin) runs inside: the middleware chain,
// the listener lifecycle with graceful shutdown, health and readiness probes,
// Prometheus metrics on a separate admin listener, and the JSON helpers used
// at the HTTP edge.
//
// The shape follows Mat Ryer's "How I write HTTP services in Go": handlers
// are plain http.Handler values routed by the standard ServeMux, middleware
// is func(http.Handler) http.Handler, and tests start a real Server on
// 127.0.0.1:0 and poll /healthz.
//
// The chain Server installs, outermost first:
//
//	RequestID -> AccessLog -> Metrics -> Recover -> SecurityHeaders -> LimitBody -> routes
//
// AccessLog and Metrics sit outside Recover so they observe the 500 that
// Recover writes for a panic. Nothing between Metrics and the ServeMux clones
// the request, so the Pattern the mux records on it is visible to Metrics
// (and to AccessLog) once the handler returns.
package httpserver
