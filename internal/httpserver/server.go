package httpserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/singleflight"
)

// Defaults for Options; the threat model fixes the timeouts and header cap.
const (
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 10 * time.Second
	DefaultWriteTimeout      = 15 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultMaxHeaderBytes    = 16 << 10
	DefaultShutdownTimeout   = 10 * time.Second
	DefaultReadyTimeout      = 2 * time.Second
)

var (
	// ErrInvalidOptions wraps every configuration error from New and
	// NewMetrics.
	ErrInvalidOptions = errors.New("httpserver: invalid options")
	// ErrLifecycle means Listen or Serve was called out of order or twice.
	ErrLifecycle = errors.New("httpserver: Listen then Serve, each once")
)

// Options configures a Server. Zero durations and sizes mean the defaults
// above; negative ones are rejected.
type Options struct {
	// Name is the server role ("idp", "authserver", "gateway", "admin").
	// It labels logs and metrics, so it must be short: 1-64 characters
	// from [A-Za-z0-9._-].
	Name string

	// Addr is the public listen address; "127.0.0.1:0" picks a free port,
	// readable from Server.Addr after Listen. Listener, when set, is used
	// instead (exactly one of the two): `xaa demo` binds first so that it
	// knows its issuer URLs before it builds the handlers. The Server owns
	// Listener once New succeeds.
	Addr     string
	Listener net.Listener

	// Handler serves the public routes, usually a *http.ServeMux. The
	// Server answers GET /healthz and GET /readyz before it; every request
	// goes through the middleware chain described in the package doc.
	Handler http.Handler

	// AdminAddr (or AdminListener) enables a second, plain-http listener
	// for operators: GET /metrics, /healthz and /readyz. Bind it to
	// loopback or a private network; metrics never appear on the public
	// listener.
	AdminAddr     string
	AdminListener net.Listener

	// Registry receives the HTTP metrics and is what /metrics exposes.
	// Nil disables metrics. The caller registers process and Go
	// collectors if it wants them, once per registry.
	Registry *prometheus.Registry

	// Logger receives access logs, panics and lifecycle events; nil
	// discards them.
	Logger *slog.Logger

	// Ready reports whether the dependencies are usable (e.g. a database
	// ping). Nil means always ready. It gets a context bounded by
	// ReadyTimeout; concurrent probes share one call.
	Ready        func(context.Context) error
	ReadyTimeout time.Duration

	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	// WriteTimeout also bounds streaming responses; a streaming handler
	// extends its own deadline with http.ResponseController.
	WriteTimeout    time.Duration
	IdleTimeout     time.Duration
	MaxHeaderBytes  int
	ShutdownTimeout time.Duration

	// BodyLimit caps every request body (DefaultBodyLimit when 0).
	// Routes can tighten it with LimitBody, never loosen it.
	BodyLimit int64

	// TLSCertFile and TLSKeyFile, both or neither, serve the public
	// listener over TLS 1.2+. They are loaded by New, so a bad pair fails
	// at startup.
	TLSCertFile string
	TLSKeyFile  string

	// HSTS sends Strict-Transport-Security. It is implied by TLS files;
	// set it when a TLS-terminating proxy serves an https issuer.
	HSTS bool
}

type lifecycle int

const (
	stateNew lifecycle = iota
	stateListening
	stateServing
)

// Server runs one role's public listener and optional admin listener.
// Use Listen then Serve, or Run for both.
type Server struct {
	name            string
	log             *slog.Logger
	addr, adminAddr string
	tls             bool
	public, admin   *http.Server // admin is nil without an admin listener
	handler         http.Handler
	shutdownTimeout time.Duration

	ready        func(context.Context) error
	readyTimeout time.Duration
	readyCalls   singleflight.Group
	draining     atomic.Bool

	mu           sync.Mutex
	state        lifecycle
	ln, adminLn  net.Listener
	givenLn      net.Listener
	givenAdminLn net.Listener
}

// New validates opts and builds the Server without touching the network.
func New(opts Options) (*Server, error) {
	if !validName(opts.Name) {
		return nil, fmt.Errorf("%w: Name must be 1-64 characters of [A-Za-z0-9._-], got %q", ErrInvalidOptions, opts.Name)
	}
	if opts.Handler == nil {
		return nil, fmt.Errorf("%w: Handler is required", ErrInvalidOptions)
	}
	if (opts.Addr == "") == (opts.Listener == nil) {
		return nil, fmt.Errorf("%w: set exactly one of Addr and Listener", ErrInvalidOptions)
	}
	if opts.AdminAddr != "" && opts.AdminListener != nil {
		return nil, fmt.Errorf("%w: set at most one of AdminAddr and AdminListener", ErrInvalidOptions)
	}
	timeouts := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"ReadHeaderTimeout", &opts.ReadHeaderTimeout, DefaultReadHeaderTimeout},
		{"ReadTimeout", &opts.ReadTimeout, DefaultReadTimeout},
		{"WriteTimeout", &opts.WriteTimeout, DefaultWriteTimeout},
		{"IdleTimeout", &opts.IdleTimeout, DefaultIdleTimeout},
		{"ShutdownTimeout", &opts.ShutdownTimeout, DefaultShutdownTimeout},
		{"ReadyTimeout", &opts.ReadyTimeout, DefaultReadyTimeout},
	}
	for _, t := range timeouts {
		switch {
		case *t.v < 0:
			return nil, fmt.Errorf("%w: %s is negative", ErrInvalidOptions, t.name)
		case *t.v == 0:
			*t.v = t.def
		}
	}
	switch {
	case opts.MaxHeaderBytes < 0:
		return nil, fmt.Errorf("%w: MaxHeaderBytes is negative", ErrInvalidOptions)
	case opts.MaxHeaderBytes == 0:
		opts.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if opts.BodyLimit < 0 {
		return nil, fmt.Errorf("%w: BodyLimit is negative", ErrInvalidOptions)
	}
	var tlsConfig *tls.Config
	if (opts.TLSCertFile == "") != (opts.TLSKeyFile == "") {
		return nil, fmt.Errorf("%w: set both TLSCertFile and TLSKeyFile, or neither", ErrInvalidOptions)
	}
	if opts.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(opts.TLSCertFile, opts.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: TLS key pair: %w", ErrInvalidOptions, err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With(slog.String("server", opts.Name))

	s := &Server{
		name:            opts.Name,
		log:             log,
		addr:            opts.Addr,
		adminAddr:       opts.AdminAddr,
		tls:             tlsConfig != nil,
		shutdownTimeout: opts.ShutdownTimeout,
		ready:           opts.Ready,
		readyTimeout:    opts.ReadyTimeout,
		givenLn:         opts.Listener,
		givenAdminLn:    opts.AdminListener,
	}

	chain := []Middleware{RequestID, AccessLog(log)}
	if opts.Registry != nil {
		metrics, err := NewMetrics(opts.Registry, opts.Name)
		if err != nil {
			return nil, err
		}
		chain = append(chain, metrics)
	}
	chain = append(chain,
		Recover(log),
		SecurityHeaders(&SecurityHeadersOptions{HSTS: opts.HSTS || s.tls}),
		LimitBody(opts.BodyLimit),
	)
	routes := http.NewServeMux()
	routes.HandleFunc("GET /healthz", healthz)
	routes.HandleFunc("GET /readyz", s.readyz)
	routes.Handle("/", opts.Handler)
	s.handler = Chain(routes, chain...)
	s.public = s.httpServer(opts, s.handler)
	s.public.TLSConfig = tlsConfig

	if opts.AdminAddr != "" || opts.AdminListener != nil {
		admin := http.NewServeMux()
		admin.HandleFunc("GET /healthz", healthz)
		admin.HandleFunc("GET /readyz", s.readyz)
		if opts.Registry != nil {
			admin.Handle("GET /metrics", promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{
				ErrorLog:            slog.NewLogLogger(log.Handler(), slog.LevelWarn),
				ErrorHandling:       promhttp.ContinueOnError,
				MaxRequestsInFlight: 4,
			}))
		}
		// No access log: scrapes and probes every few seconds are noise.
		s.admin = s.httpServer(opts, Chain(admin,
			Recover(log), SecurityHeaders(nil), LimitBody(opts.BodyLimit)))
	}
	return s, nil
}

func (s *Server) httpServer(opts Options, h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: opts.ReadHeaderTimeout,
		ReadTimeout:       opts.ReadTimeout,
		WriteTimeout:      opts.WriteTimeout,
		IdleTimeout:       opts.IdleTimeout,
		MaxHeaderBytes:    opts.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// Handler returns the public handler with the whole middleware chain and the
// probe routes, for tests that prefer httptest.NewServer.
func (s *Server) Handler() http.Handler { return s.handler }

// Listen binds the listeners (or adopts the given ones). Afterwards Addr and
// AdminAddr report the bound addresses and connections queue until Serve.
// A Server that listened must be served (Serve with a cancelled context
// just closes it).
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != stateNew {
		return ErrLifecycle
	}
	ln, err := listen(s.givenLn, s.addr)
	if err != nil {
		s.closeGiven()
		return fmt.Errorf("httpserver %s: listen: %w", s.name, err)
	}
	var adminLn net.Listener
	if s.admin != nil {
		adminLn, err = listen(s.givenAdminLn, s.adminAddr)
		if err != nil {
			_ = ln.Close()
			s.closeGiven()
			return fmt.Errorf("httpserver %s: listen admin: %w", s.name, err)
		}
	}
	s.ln, s.adminLn = ln, adminLn
	s.state = stateListening
	return nil
}

func listen(given net.Listener, addr string) (net.Listener, error) {
	if given != nil {
		return given, nil
	}
	return net.Listen("tcp", addr)
}

func (s *Server) closeGiven() {
	for _, l := range []net.Listener{s.givenLn, s.givenAdminLn} {
		if l != nil {
			_ = l.Close()
		}
	}
}

// Addr is the bound public address ("127.0.0.1:41234"), or "" before
// Listen.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// AdminAddr is the bound admin address, or "" before Listen or without an
// admin listener.
func (s *Server) AdminAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.adminLn == nil {
		return ""
	}
	return s.adminLn.Addr().String()
}

// Run is Listen followed by Serve.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	return s.Serve(ctx)
}

// Serve serves the listeners until ctx is done or one of them fails, then
// shuts down gracefully: listeners close at once, /readyz turns 503, and
// in-flight requests get ShutdownTimeout to finish before their connections
// are closed. It returns nil after a clean shutdown on cancellation.
// Request contexts are not derived from ctx, so cancelling it does not
// cancel in-flight requests.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	if s.state != stateListening {
		s.mu.Unlock()
		return ErrLifecycle
	}
	s.state = stateServing
	type listener struct {
		srv *http.Server
		ln  net.Listener
		tls bool
	}
	listeners := []listener{{s.public, s.ln, s.tls}}
	if s.admin != nil {
		listeners = append(listeners, listener{s.admin, s.adminLn, false})
	}
	s.mu.Unlock()

	errc := make(chan error, len(listeners))
	for _, l := range listeners {
		go func() {
			if l.tls {
				errc <- l.srv.ServeTLS(l.ln, "", "")
			} else {
				errc <- l.srv.Serve(l.ln)
			}
		}()
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "http server listening",
		slog.String("addr", s.Addr()), slog.String("admin_addr", s.AdminAddr()), slog.Bool("tls", s.tls))

	pending := len(listeners)
	var serveErr error
	select {
	case <-ctx.Done():
	case err := <-errc:
		pending--
		serveErr = fmt.Errorf("httpserver %s: serve: %w", s.name, err)
	}

	s.draining.Store(true)
	s.log.LogAttrs(ctx, slog.LevelInfo, "http server shutting down", slog.Duration("timeout", s.shutdownTimeout))
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.shutdownTimeout)
	defer cancel()
	shutdownErrs := make([]error, len(listeners))
	var wg sync.WaitGroup
	for i, l := range listeners {
		wg.Go(func() {
			if err := l.srv.Shutdown(shutdownCtx); err != nil {
				// Deadline passed with requests still running: cut them off.
				_ = l.srv.Close()
				shutdownErrs[i] = fmt.Errorf("httpserver %s: graceful shutdown: %w", s.name, err)
			}
		})
	}
	wg.Wait()
	for ; pending > 0; pending-- {
		if err := <-errc; !errors.Is(err, http.ErrServerClosed) && serveErr == nil {
			serveErr = fmt.Errorf("httpserver %s: serve: %w", s.name, err)
		}
	}
	err := errors.Join(append([]error{serveErr}, shutdownErrs...)...)
	if err != nil {
		s.log.LogAttrs(ctx, slog.LevelError, "http server stopped", slog.String("error", err.Error()))
	} else {
		s.log.LogAttrs(ctx, slog.LevelInfo, "http server stopped")
	}
	return err
}

type statusBody struct {
	Status string `json:"status"`
}

// healthz is liveness: the process serves HTTP. It never consults
// dependencies, so a database outage does not get the process restarted.
func healthz(w http.ResponseWriter, _ *http.Request) {
	_ = WriteJSON(w, http.StatusOK, statusBody{"ok"})
}

// readyz is readiness. Failure details go to the log only: the endpoint is
// unauthenticated and a dependency error can name hosts or users.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	err := s.checkReady(r.Context())
	if err != nil {
		if r.Context().Err() != nil {
			return // the prober went away
		}
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "not ready",
			slog.String("error", err.Error()), slog.String("request_id", RequestIDFrom(r.Context())))
		_ = WriteJSON(w, http.StatusServiceUnavailable, statusBody{"unavailable"})
		return
	}
	_ = WriteJSON(w, http.StatusOK, statusBody{"ok"})
}

// checkReady runs Ready at most once at a time, however many probes arrive
// (the endpoint is public, and each probe would otherwise cost a database
// round trip), and stops waiting after readyTimeout even if Ready ignores
// its context.
func (s *Server) checkReady(ctx context.Context) error {
	if s.draining.Load() {
		return errors.New("shutting down")
	}
	if s.ready == nil {
		return nil
	}
	ch := s.readyCalls.DoChan("ready", func() (any, error) {
		// Shared by every waiting probe, so not tied to this one's
		// connection.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.readyTimeout)
		defer cancel()
		return nil, s.ready(ctx)
	})
	timer := time.NewTimer(s.readyTimeout)
	defer timer.Stop()
	select {
	case res := <-ch:
		return res.Err
	case <-timer.C:
		return fmt.Errorf("readiness check did not finish within %s", s.readyTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// validName accepts the same alphabet as request ids: safe in a log line and
// a metric label.
func validName(s string) bool { return validRequestID(s) }
