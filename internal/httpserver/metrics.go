package httpserver

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// unmatchedRoute labels requests no ServeMux pattern matched (404, 405),
// keeping the label set bounded whatever paths clients send.
const unmatchedRoute = "unmatched"

// NewMetrics returns middleware that counts requests and observes their
// latency by route pattern, method and status class, with the server role as
// a constant "server" label. Several roles may share one registry; building
// the middleware twice for the same role reuses the registered collectors.
//
// The route is read from r.Pattern after the handler returns, because the
// ServeMux sets it during routing; requests without one are labelled
// "unmatched". Only the standard methods get their own label value, others
// count as "OTHER".
func NewMetrics(reg prometheus.Registerer, role string) (Middleware, error) {
	if reg == nil {
		return nil, fmt.Errorf("%w: metrics need a registry", ErrInvalidOptions)
	}
	if !validName(role) {
		return nil, fmt.Errorf("%w: invalid server role %q", ErrInvalidOptions, role)
	}
	labels := prometheus.Labels{"server": role}
	requests, err := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace:   "xaa",
		Subsystem:   "http",
		Name:        "requests_total",
		Help:        "HTTP requests served, by route pattern, method and status class.",
		ConstLabels: labels,
	}, []string{"pattern", "method", "status_class"}))
	if err != nil {
		return nil, err
	}
	duration, err := register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace:   "xaa",
		Subsystem:   "http",
		Name:        "request_duration_seconds",
		Help:        "Time to serve HTTP requests, by route pattern, method and status class.",
		ConstLabels: labels,
		// From 1 ms: a token endpoint answers in a few milliseconds, and
		// the default buckets would lump all of that together.
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"pattern", "method", "status_class"}))
	if err != nil {
		return nil, err
	}
	inflight, err := register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace:   "xaa",
		Subsystem:   "http",
		Name:        "requests_in_flight",
		Help:        "HTTP requests currently being served.",
		ConstLabels: labels,
	}))
	if err != nil {
		return nil, err
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			inflight.Inc()
			rec := recorderFor(w)
			completed := false
			defer func() {
				inflight.Dec()
				status := rec.status
				switch {
				case !completed:
					// A panic unwound through here (Recover is not
					// inside, or the handler aborted): the client got
					// no proper response.
					status = http.StatusInternalServerError
				case status == 0:
					status = http.StatusOK
				}
				pattern := r.Pattern
				if pattern == "" {
					pattern = unmatchedRoute
				}
				method, class := methodLabel(r.Method), statusClass(status)
				requests.WithLabelValues(pattern, method, class).Inc()
				duration.WithLabelValues(pattern, method, class).Observe(time.Since(start).Seconds())
			}()
			next.ServeHTTP(rec, r)
			completed = true
		})
	}, nil
}

// register adds c to reg, or returns the collector already registered under
// the same description.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		var zero C
		return zero, fmt.Errorf("httpserver: register metrics: %w", err)
	}
	return c, nil
}

func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}

func statusClass(code int) string {
	switch code / 100 {
	case 1:
		return "1xx"
	case 2:
		return "2xx"
	case 3:
		return "3xx"
	case 4:
		return "4xx"
	case 5:
		return "5xx"
	}
	return "other"
}
