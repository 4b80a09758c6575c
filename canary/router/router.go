package router

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lookout-dev/lookout/internal/config"
	"github.com/lookout-dev/lookout/internal/event"
)

// Route says where traffic goes. The zero Canary means "stable only".
type Route struct {
	Stable string `json:"stable"`
	Canary string `json:"canary,omitempty"`
	// CanaryPercent of routing keys go to the canary.
	CanaryPercent float64 `json:"canary_percent"`
	// ShadowPercent of requests served by stable are mirrored to the canary.
	ShadowPercent float64 `json:"shadow_percent"`
	RolloutID     string  `json:"rollout_id,omitempty"`
}

// backend is one model server with its breaker.
type backend struct {
	config.CanaryBackend
	base    *url.URL
	breaker *breaker
}

// route is a Route resolved to backends; it is immutable once published.
type route struct {
	Route
	stable, canary *backend
	bound          int
}

// Options configures a Router.
type Options struct {
	Config    config.Canary
	Publisher Publisher // nil: no events
	Registry  prometheus.Registerer
	Log       *slog.Logger
	// Transport overrides the HTTP transport to the backends (tests, benchmarks).
	Transport http.RoundTripper
}

// Router is the canary reverse proxy. It is an http.Handler.
type Router struct {
	cfg      config.Canary
	backends map[string]*backend
	route    atomic.Pointer[route]
	client   *http.Client
	pub      Publisher
	extract  Extractor
	window   *Window
	shadow   *shadowPool
	m        *metrics
	log      *slog.Logger
}

// New returns a router sending everything to cfg.Stable until SetRoute says
// otherwise. Start must run for shadow mirroring to work.
func New(o Options) (*Router, error) {
	r := &Router{
		cfg:      o.Config,
		backends: map[string]*backend{},
		pub:      o.Publisher,
		extract:  Extractor{Classes: o.Config.Classes, OutputName: o.Config.OutputName},
		window:   NewWindow(),
		m:        newMetrics(o.Registry),
		log:      o.Log,
	}
	for _, b := range o.Config.Backends {
		u, err := url.Parse(b.URL)
		if err != nil {
			return nil, fmt.Errorf("backend %s: %w", b.Name, err)
		}
		r.backends[b.Name] = &backend{CanaryBackend: b, base: u,
			breaker: newBreaker(o.Config.BreakerFailures, o.Config.BreakerOpenFor)}
	}
	tr := o.Transport
	if tr == nil {
		tr = &http.Transport{
			// Never an environment proxy: backends are addressed directly.
			Proxy: nil,
			// Pass Accept-Encoding through untouched instead of negotiating gzip.
			DisableCompression:  true,
			DialContext:         (&net.Dialer{Timeout: o.Config.Timeout, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: 512,
			IdleConnTimeout:     90 * time.Second,
		}
	}
	r.client = &http.Client{Transport: tr, Timeout: o.Config.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r.shadow = newShadowPool(r, o.Config.ShadowQueue, o.Config.ShadowWorkers)
	if err := r.SetRoute(Route{Stable: o.Config.Stable}); err != nil {
		return nil, err
	}
	return r, nil
}

// Start runs the shadow workers until ctx is cancelled; it returns at once.
func (r *Router) Start(ctx context.Context) { r.shadow.start(ctx) }

// Wait blocks until the shadow workers have stopped after cancellation.
func (r *Router) Wait() { r.shadow.wait() }

// SetRoute swaps the route atomically. Requests already in flight finish on
// the route they read; new requests see the new one.
func (r *Router) SetRoute(rt Route) error {
	st, ok := r.backends[rt.Stable]
	if !ok {
		return fmt.Errorf("stable backend %q is not configured", rt.Stable)
	}
	res := &route{Route: rt, stable: st}
	if rt.Canary != "" {
		cb, ok := r.backends[rt.Canary]
		if !ok {
			return fmt.Errorf("canary backend %q is not configured", rt.Canary)
		}
		if cb == st {
			return fmt.Errorf("canary and stable are both %q", rt.Canary)
		}
		res.canary = cb
	}
	if rt.CanaryPercent < 0 || rt.CanaryPercent > 100 || rt.ShadowPercent < 0 || rt.ShadowPercent > 100 {
		return fmt.Errorf("weights must be within [0,100]: canary %v shadow %v", rt.CanaryPercent, rt.ShadowPercent)
	}
	if res.canary == nil {
		res.CanaryPercent, res.ShadowPercent = 0, 0
	}
	res.bound = threshold(res.CanaryPercent)
	r.route.Store(res)
	r.m.weight.Set(res.CanaryPercent)
	return nil
}

// SetPublisher sets where prediction events go. Call it before serving.
func (r *Router) SetPublisher(p Publisher) { r.pub = p }

// Route returns the current route.
func (r *Router) Route() Route { return r.route.Load().Route }

// Window returns the per-arm observations used by rollout analysis.
func (r *Router) Window() *Window { return r.window }

// EventsCounter returns the router's event-outcome counter so a publisher can share it.
func (r *Router) EventsCounter() *prometheus.CounterVec { return r.m.events }

// Backend returns the configuration of the named backend.
func (r *Router) Backend(name string) (config.CanaryBackend, bool) {
	b, ok := r.backends[name]
	if !ok {
		return config.CanaryBackend{}, false
	}
	return b.CanaryBackend, true
}

// pick chooses the arm for key under rt.
func (rt *route) pick(key string) (string, *backend) {
	if rt.canary != nil && rt.bound > 0 && Bucket(rt.RolloutID, key) < rt.bound {
		return event.ArmCanary, rt.canary
	}
	return event.ArmStable, rt.stable
}

// Assign reports the arm the current route gives key (for tests and the admin API).
func (r *Router) Assign(key string) string {
	arm, _ := r.route.Load().pick(key)
	return arm
}

// call is one backend exchange, buffered: model responses are small JSON and
// reading them whole lets the router extract predictions and retry safely.
type call struct {
	status  int
	header  http.Header
	body    []byte
	latency time.Duration
	err     error
	reason  string
}

func (c *call) failed() bool { return c.err != nil || c.status >= 500 }

// ServeHTTP routes one inference request.
func (r *Router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, r.cfg.MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "read request body", http.StatusBadRequest)
		return
	}
	rt := r.route.Load()
	key := r.key(req)
	arm, be := rt.pick(key)
	if arm == event.ArmCanary && !be.breaker.allow() {
		r.m.fallbacks.WithLabelValues(be.Name).Inc()
		arm, be = event.ArmStable, rt.stable
	}
	c := r.do(req.Context(), be, arm, req, body)
	if c.reason == "canceled" {
		r.m.requests.WithLabelValues(arm, be.Name, "canceled").Inc()
		return
	}
	if c.failed() && arm == event.ArmCanary && r.cfg.RetryOnStable {
		// The canary's failure still counts against it in analysis.
		r.window.observe(arm, false, c.latency, nil)
		r.m.retries.Inc()
		arm, be = event.ArmStable, rt.stable
		c = r.do(req.Context(), be, arm, req, body)
	}
	if c.err != nil {
		code := http.StatusBadGateway
		if c.reason == "timeout" {
			code = http.StatusGatewayTimeout
		}
		r.m.requests.WithLabelValues(arm, be.Name, codeClass(code)).Inc()
		http.Error(w, "model backend unavailable", code)
		return
	}
	r.respond(w, arm, be, c)
	// Hand the answer to the caller now; the bookkeeping below (events,
	// analysis, shadow) must not add to its latency.
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	r.m.requests.WithLabelValues(arm, be.Name, codeClass(c.status)).Inc()
	r.after(req, body, rt, arm, be, key, c)
}

// after does the bookkeeping once the caller has its answer.
func (r *Router) after(req *http.Request, body []byte, rt *route, arm string, be *backend, key string, c *call) {
	var outs []Output
	if !c.failed() && c.status < 300 {
		var err error
		if outs, err = r.extract.Extract(c.body); err != nil {
			r.m.events.WithLabelValues("unparsed").Inc()
			r.log.Debug("no predictions in response", "backend", be.Name, "err", err)
		}
	}
	r.window.observe(arm, !c.failed(), c.latency, outs)
	reqID := r.requestID(req)
	meta := r.meta(req, body, key)
	r.emit(outs, meta, reqID, be, arm, rt.RolloutID, c.latency)
	if arm == event.ArmStable && rt.canary != nil && rt.ShadowPercent > 0 && shadowPick(reqID, rt.ShadowPercent) {
		r.shadow.enqueue(shadowJob{req: req.Clone(context.Background()), body: body, rt: rt, stable: outs,
			meta: meta, reqID: reqID})
	}
}

func shadowPick(reqID string, percent float64) bool {
	return Bucket("shadow", reqID) < threshold(percent)
}

func (r *Router) respond(w http.ResponseWriter, arm string, be *backend, c *call) {
	h := w.Header()
	for k, vs := range c.header {
		if hopHeader(k) {
			continue
		}
		h[k] = vs
	}
	h.Set("X-Lookout-Arm", arm)
	h.Set("X-Lookout-Backend", be.Name)
	h.Set("Content-Length", fmt.Sprint(len(c.body)))
	w.WriteHeader(c.status)
	_, _ = w.Write(c.body)
}

// do sends the buffered request to be and records metrics and the breaker.
func (r *Router) do(ctx context.Context, be *backend, arm string, in *http.Request, body []byte) *call {
	start := time.Now()
	c := r.send(ctx, be, in, body)
	c.latency = time.Since(start)
	if c.err != nil && ctx.Err() != nil {
		// The caller went away: not the backend's fault, so neither the
		// breaker nor the error metrics hear of it.
		c.reason = "canceled"
		return c
	}
	be.breaker.record(!c.failed())
	r.m.breaker.WithLabelValues(be.Name).Set(b2f(be.breaker.open()))
	r.m.latency.WithLabelValues(arm, be.Name).Observe(c.latency.Seconds())
	if c.failed() {
		if c.reason == "" {
			c.reason = "status_5xx"
		}
		r.m.errors.WithLabelValues(arm, be.Name, c.reason).Inc()
	}
	return c
}

func (r *Router) send(ctx context.Context, be *backend, in *http.Request, body []byte) *call {
	u := *be.base
	u.Path = strings.TrimSuffix(u.Path, "/") + in.URL.Path
	u.RawQuery = in.URL.RawQuery
	out, err := http.NewRequestWithContext(ctx, in.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		return &call{err: err, reason: "transport"}
	}
	for k, vs := range in.Header {
		if !hopHeader(k) {
			out.Header[k] = vs
		}
	}
	if ip, _, err := net.SplitHostPort(in.RemoteAddr); err == nil {
		out.Header.Set("X-Forwarded-For", ip)
	}
	resp, err := r.client.Do(out)
	if err != nil {
		reason := "transport"
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
			reason = "timeout"
		}
		return &call{err: err, reason: reason}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, r.cfg.MaxBodyBytes+1))
	switch {
	case err != nil:
		return &call{err: err, reason: "transport"}
	case int64(len(b)) > r.cfg.MaxBodyBytes:
		return &call{err: errors.New("response too large"), reason: "too_large"}
	}
	return &call{status: resp.StatusCode, header: resp.Header, body: b}
}

// key is the sticky routing key: the configured header, else the client address.
func (r *Router) key(req *http.Request) string {
	if k := req.Header.Get(r.cfg.KeyHeader); k != "" {
		return k
	}
	if host, _, err := net.SplitHostPort(req.RemoteAddr); err == nil {
		return host
	}
	return req.RemoteAddr
}

// idPrefix makes generated request ids unique across processes and restarts;
// a counter makes them unique within one, without a random read per request.
var (
	idPrefix  = randomPrefix()
	idCounter atomic.Uint64
)

func randomPrefix() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b) + "-"
}

func (r *Router) requestID(req *http.Request) string {
	if id := req.Header.Get(r.cfg.EventIDHeader); id != "" && len(id) <= 200 {
		return id
	}
	return idPrefix + strconv.FormatUint(idCounter.Add(1), 36)
}

var hopHeaders = map[string]bool{
	"Connection": true, "Proxy-Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
	"Content-Length": true,
}

func hopHeader(k string) bool { return hopHeaders[http.CanonicalHeaderKey(k)] }

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
