package router

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/lookout-dev/lookout/internal/config"
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

// backend is one model server with its connection pool, breaker and
// metric handles.
type backend struct {
	config.CanaryBackend
	client *fasthttp.HostClient
	// host is the Host header and URI host sent; prefix is the base URL's
	// path, prepended to the caller's path (empty when the base is "/").
	host, prefix string
	https        bool
	breaker      *breaker
	arms         [numArms]*armMetrics
	nameBytes    []byte // Name, for the X-Lookout-Backend header
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
}

// Router is the canary reverse proxy. Its proxy listener runs on fasthttp
// (Serve, Shutdown, Handler): at thousands of requests per second the
// net/http server and client cost several times nginx's CPU per request.
type Router struct {
	cfg      config.Canary
	backends map[string]*backend
	route    atomic.Pointer[route]
	pub      Publisher
	extract  Extractor
	window   *Window
	shadow   *shadowPool
	watch    *watcher
	watchWG  sync.WaitGroup
	m        *metrics
	log      *slog.Logger
	server   *fasthttp.Server
	// srvMu guards listeners and closing, so Shutdown also stops a Serve
	// that started just before it.
	srvMu     sync.Mutex
	listeners []net.Listener
	closing   bool
	// prefixed: some backend URL has a path, so the caller's path is kept
	// aside to build each backend's.
	prefixed bool
	// Timeouts of the connections from callers and to backends.
	callerLimits, backendLimits connLimits
	// Header names, resolved once.
	keyHeader, sourceHeader, imageHeader, idHeader string
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
		watch:    newWatcher(),
		m:        newMetrics(o.Registry),
		log:      o.Log,
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	// The whole request must arrive, and the answer be taken, within
	// callerLimit; keep-alive connections may idle longer.
	callerLimit := ticks(max(10*time.Second, o.Config.Timeout))
	r.callerLimits = connLimits{caller: true, idle: ticks(2 * time.Minute), busy: callerLimit, write: callerLimit}
	r.backendLimits = connLimits{busy: ticks(o.Config.Timeout)}
	r.keyHeader, r.sourceHeader = o.Config.KeyHeader, o.Config.SourceHeader
	r.imageHeader, r.idHeader = o.Config.ImageURIHeader, o.Config.EventIDHeader
	for _, b := range o.Config.Backends {
		be, err := r.newBackend(b)
		if err != nil {
			return nil, err
		}
		r.backends[b.Name] = be
		r.prefixed = r.prefixed || be.prefix != ""
	}
	r.server = r.newServer()
	r.shadow = newShadowPool(r, o.Config.ShadowQueue, o.Config.ShadowWorkers)
	if err := r.SetRoute(Route{Stable: o.Config.Stable}); err != nil {
		return nil, err
	}
	return r, nil
}

// Start runs the shadow workers and the watch for callers that hang up
// during slow backend calls until ctx is cancelled; it returns at once.
func (r *Router) Start(ctx context.Context) {
	r.shadow.start(ctx)
	r.watchWG.Add(1)
	go func() { defer r.watchWG.Done(); r.watch.run(ctx) }()
}

// Wait blocks until the goroutines of Start have stopped after cancellation.
func (r *Router) Wait() {
	r.shadow.wait()
	r.watchWG.Wait()
}

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

// pick chooses the arm (armStable or armCanary) for key under rt.
func pick[K string | []byte](rt *route, key K) (int, *backend) {
	if rt.canary != nil && rt.bound > 0 && bucket(rt.RolloutID, key) < rt.bound {
		return armCanary, rt.canary
	}
	return armStable, rt.stable
}

// Assign reports the arm the current route gives key (for tests and the admin API).
func (r *Router) Assign(key string) string {
	arm, _ := pick(r.route.Load(), key)
	return armNames[arm]
}

// newBackend resolves a configured backend to its connection pool.
func (r *Router) newBackend(b config.CanaryBackend) (*backend, error) {
	u, err := url.Parse(b.URL)
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", b.Name, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("backend %s: url %q is not http(s)://host[:port][/path]", b.Name, b.URL)
	}
	addr := u.Host
	if u.Port() == "" {
		addr += map[string]string{"http": ":80", "https": ":443"}[u.Scheme]
	}
	be := &backend{CanaryBackend: b, host: u.Host, prefix: strings.TrimSuffix(u.Path, "/"), https: u.Scheme == "https",
		breaker:   newBreaker(r.cfg.BreakerFailures, r.cfg.BreakerOpenFor, r.m.breaker.WithLabelValues(b.Name)),
		nameBytes: []byte(b.Name)}
	for i := range be.arms {
		be.arms[i] = newArmMetrics(r.m, armNames[i], b.Name)
	}
	be.client = &fasthttp.HostClient{
		Addr:  addr,
		IsTLS: be.https,
		// A proxy passes what it got: no User-Agent of its own, the path
		// as sent.
		NoDefaultUserAgentHeader: true,
		DisablePathNormalizing:   true,
		MaxConns:                 1024,
		MaxConnWaitTimeout:       r.cfg.Timeout,
		MaxIdleConnDuration:      30 * time.Second,
		DialTimeout:              backendDialer(r.watch, &r.backendLimits, r.cfg.Timeout),
		MaxResponseBodySize:      int(r.cfg.MaxBodyBytes),
		ReadBufferSize:           8 << 10, // response headers up to 8 KiB
		// One resend, and only when a kept-alive connection turned out to be
		// closed by the backend before it answered (it idled out): the
		// request is buffered, and inference has no side effects.
		MaxIdemponentCallAttempts: 2,
		RetryIfErr: func(_ *fasthttp.Request, _ int, err error) (bool, bool) {
			return false, errors.Is(err, fasthttp.ErrConnectionClosed) || errors.Is(err, io.EOF)
		},
	}
	return be, nil
}

// newServer returns the fasthttp server for the proxy listener.
func (r *Router) newServer() *fasthttp.Server {
	return &fasthttp.Server{
		Handler: r.Handler,
		// Request headers up to 8 KiB, as nginx's default; fasthttp's is 4.
		ReadBufferSize:     8 << 10,
		MaxRequestBodySize: int(r.cfg.MaxBodyBytes),
		// No ReadTimeout, WriteTimeout or IdleTimeout: the connections keep
		// their own (r.callerLimits, see proxyConn).
		// Backend answers carry their own headers; do not add ours.
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
		NoDefaultDate:         true,
		// The handler never asks for the request's time: skip the clock read.
		LazyRequestTime:              true,
		DisablePreParseMultipartForm: true,
		ErrorHandler:                 serverError,
		Logger:                       slogLogger{r.log},
	}
}

// serverError answers requests fasthttp refused before the handler ran.
func serverError(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		ctx.Error("request body too large", fasthttp.StatusRequestEntityTooLarge)
	case errors.As(err, &small):
		ctx.Error("request header too large", fasthttp.StatusRequestHeaderFieldsTooLarge)
	default:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			ctx.Error("request timeout", fasthttp.StatusRequestTimeout)
			return
		}
		ctx.Error("bad request", fasthttp.StatusBadRequest)
	}
}

// slogLogger routes fasthttp's own messages (connection errors) to slog at
// debug level: they are the caller's problems, not the router's.
type slogLogger struct{ log *slog.Logger }

func (l slogLogger) Printf(format string, args ...any) {
	l.log.Debug("proxy server", "msg", fmt.Sprintf(format, args...))
}

// Serve accepts inference requests on ln until Shutdown; it returns nil
// after Shutdown.
func (r *Router) Serve(ln net.Listener) error {
	r.srvMu.Lock()
	if r.closing {
		r.srvMu.Unlock()
		return ln.Close()
	}
	r.listeners = append(r.listeners, ln)
	r.srvMu.Unlock()
	err := r.server.Serve(proxyListener{ln, r.watch, &r.callerLimits})
	r.srvMu.Lock()
	closing := r.closing
	r.srvMu.Unlock()
	if err != nil && !(closing && errors.Is(err, net.ErrClosed)) {
		return fmt.Errorf("serve proxy on %s: %w", ln.Addr(), err)
	}
	return nil
}

// Shutdown stops accepting requests and waits, up to ctx, for the requests
// in flight to finish; idle keep-alive connections are closed.
func (r *Router) Shutdown(ctx context.Context) error {
	r.srvMu.Lock()
	r.closing = true
	lns := r.listeners
	r.srvMu.Unlock()
	err := r.server.ShutdownWithContext(ctx)
	// A Serve that had not yet handed its listener to fasthttp would miss
	// the shutdown: closing the listener stops it too.
	for _, ln := range lns {
		_ = ln.Close()
	}
	if err != nil {
		return fmt.Errorf("shut down proxy: %w", err)
	}
	return nil
}
