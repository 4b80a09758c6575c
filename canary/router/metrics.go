package router

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lookout-dev/lookout/internal/event"
)

// metrics are the router's Prometheus series. Labels are bounded: arm is
// stable|canary|shadow, backend comes from configuration, outcome and reason
// are fixed words.
type metrics struct {
	requests  *prometheus.CounterVec
	errors    *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	retries   prometheus.Counter
	fallbacks *prometheus.CounterVec
	shadow    *prometheus.CounterVec
	breaker   *prometheus.GaugeVec
	weight    prometheus.Gauge
	events    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lookout_router_requests_total",
			Help: "Requests through the router by arm, backend and outcome (2xx, 3xx, 4xx, 5xx, canceled by the caller).",
		}, []string{"arm", "backend", "code"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lookout_router_errors_total",
			Help: "Failed backend calls by arm, backend and reason (timeout, transport, status_5xx, too_large).",
		}, []string{"arm", "backend", "reason"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "lookout_router_request_duration_seconds",
			Help:    "Backend call latency by arm and backend.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"arm", "backend"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lookout_router_retries_total",
			Help: "Requests re-sent to stable after the canary failed.",
		}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lookout_router_breaker_fallbacks_total",
			Help: "Requests assigned to the canary but sent to stable because its circuit breaker was open.",
		}, []string{"backend"}),
		shadow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lookout_router_shadow_requests_total",
			Help: "Mirrored requests by outcome (sent, failed, dropped_queue_full).",
		}, []string{"outcome"}),
		breaker: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lookout_router_breaker_open",
			Help: "1 while a backend's circuit breaker refuses calls.",
		}, []string{"backend"}),
		weight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lookout_router_canary_weight_percent",
			Help: "Share of routing keys currently assigned to the canary, in percent.",
		}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lookout_router_events_total",
			Help: "Prediction events by outcome (queued, dropped_queue_full, invalid, unparsed, published, failed).",
		}, []string{"outcome"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.errors, m.latency, m.retries, m.fallbacks, m.shadow, m.breaker, m.weight, m.events)
	}
	return m
}

// Arm indexes: the per-backend metric handles are kept in arrays so the hot
// path looks nothing up by label.
const (
	armStable = iota
	armCanary
	armShadow
	numArms
)

var armNames = [numArms]string{event.ArmStable, event.ArmCanary, event.ArmShadow}

// Outcome indexes of lookout_router_requests_total and reason indexes of
// lookout_router_errors_total.
const (
	code2xx = iota
	code3xx
	code4xx
	code5xx
	codeCanceled
	numCodes
)

var codeNames = [numCodes]string{"2xx", "3xx", "4xx", "5xx", "canceled"}

const (
	reasonTimeout = iota
	reasonTransport
	reason5xx
	reasonTooLarge
	numReasons
)

var reasonNames = [numReasons]string{"timeout", "transport", "status_5xx", "too_large"}

// armMetrics are the series of one arm × backend. Children are created on
// first use, so /metrics only lists what happened.
type armMetrics struct {
	latency prometheus.Observer
	codes   [numCodes]lazyCounter
	errors  [numReasons]lazyCounter
}

func newArmMetrics(m *metrics, arm, backend string) *armMetrics {
	a := &armMetrics{latency: m.latency.WithLabelValues(arm, backend)}
	for i := range a.codes {
		a.codes[i] = lazyCounter{vec: m.requests, labels: []string{arm, backend, codeNames[i]}}
	}
	for i := range a.errors {
		a.errors[i] = lazyCounter{vec: m.errors, labels: []string{arm, backend, reasonNames[i]}}
	}
	return a
}

// lazyCounter is one child of a CounterVec, resolved on first use.
type lazyCounter struct {
	vec    *prometheus.CounterVec
	labels []string
	c      atomic.Pointer[prometheus.Counter]
}

func (l *lazyCounter) Inc() {
	c := l.c.Load()
	if c == nil {
		cc := l.vec.WithLabelValues(l.labels...)
		c = &cc
		l.c.Store(c)
	}
	(*c).Inc()
}

// codeIndex maps an HTTP status to its outcome index.
func codeIndex(code int) int {
	switch {
	case code >= 500:
		return code5xx
	case code >= 400:
		return code4xx
	case code >= 300:
		return code3xx
	default:
		return code2xx
	}
}
