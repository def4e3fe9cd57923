package httpapi

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// unmatchedRoute labels requests to paths no route serves; the raw path
// would let any client create unbounded label values.
const unmatchedRoute = "unmatched"

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg *prometheus.Registry) *metrics {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sealpost_http_requests_total",
		Help: "HTTP requests served, by route pattern, method and status code.",
	}, []string{"route", "method", "code"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "sealpost_http_request_duration_seconds",
		Help:    "Time to serve HTTP requests, by route pattern and method.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"route", "method"})
	return &metrics{
		requests: register(reg, requests),
		duration: register(reg, duration),
	}
}

// register registers c, or returns the collector already registered under
// the same name so that several Servers can share one registry.
func register[C prometheus.Collector](reg *prometheus.Registry, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}

// metricsHandler serves reg; a failing collector costs its own metrics, not
// the whole scrape.
func metricsHandler(reg *prometheus.Registry, log *slog.Logger) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// Methods get fixed label values: anything else a client sends is "other",
// so arbitrary methods cannot create label values either.
var methodLabels = [...]string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete, http.MethodOptions, "other",
}

func methodIndex(method string) int {
	for i, m := range methodLabels[:len(methodLabels)-1] {
		if m == method {
			return i
		}
	}
	return len(methodLabels) - 1
}

// Status codes the API answers with, each given a cache slot below.
var codeSlots = [...]int{200, 201, 204, 400, 401, 403, 404, 405, 413, 429, 500, 503}

func codeIndex(status int) int {
	for i, c := range codeSlots {
		if c == status {
			return i
		}
	}
	return -1
}

// routeMetrics caches, per route, the metric children of each method and
// status as they are first used: resolving a child by label values hashes
// the labels on every call, which the hot path should not pay for. Children
// are created lazily so /metrics lists only combinations that happened.
type routeMetrics struct {
	m       *metrics
	route   string
	methods [len(methodLabels)]methodMetrics
}

type methodMetrics struct {
	duration atomic.Pointer[observerRef]
	codes    [len(codeSlots)]atomic.Pointer[counterRef]
}

type observerRef struct{ prometheus.Observer }
type counterRef struct{ prometheus.Counter }

func (m *metrics) route(pattern string) *routeMetrics {
	return &routeMetrics{m: m, route: pattern}
}

func (rm *routeMetrics) observe(method string, status int, elapsed time.Duration) {
	mi := methodIndex(method)
	mm := &rm.methods[mi]
	o := mm.duration.Load()
	if o == nil {
		// Racing first requests resolve the same child; either store wins.
		o = &observerRef{rm.m.duration.WithLabelValues(rm.route, methodLabels[mi])}
		mm.duration.Store(o)
	}
	o.Observe(elapsed.Seconds())

	ci := codeIndex(status)
	if ci < 0 {
		rm.m.requests.WithLabelValues(rm.route, methodLabels[mi], strconv.Itoa(status)).Inc()
		return
	}
	c := mm.codes[ci].Load()
	if c == nil {
		c = &counterRef{rm.m.requests.WithLabelValues(rm.route, methodLabels[mi], strconv.Itoa(status))}
		mm.codes[ci].Store(c)
	}
	c.Inc()
}
