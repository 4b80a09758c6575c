package router

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/lookout-dev/lookout/internal/event"
)

// call is the outcome of one backend exchange. The response itself is in
// the fasthttp.Response the call filled: model responses are small JSON, and
// having them whole lets the router extract predictions and retry safely.
type call struct {
	status   int
	latency  time.Duration
	end      time.Time // when the answer (or failure) came: the event's ts
	err      error
	reason   int  // reason* index when failed
	canceled bool // the caller hung up while the backend worked
}

func (c *call) failed() bool { return c.err != nil || c.status >= 500 }

// Handler serves one inference request on the fasthttp listener (see Serve).
func (r *Router) Handler(ctx *fasthttp.RequestCtx) {
	x := acquireExchange()
	x.req, x.resp = &ctx.Request, &ctx.Response
	x.ip = remoteIP(ctx.RemoteAddr())
	x.conn = ctx.Conn()
	r.serve(x)
	releaseExchange(x)
}

// serve routes x.req and leaves the answer in x.resp.
func (r *Router) serve(x *exchange) {
	req, resp := x.req, x.resp
	// The caller's Connection: close concerns its own connection, not ours
	// to the backend (stripped below with the other hop-by-hop headers).
	closeAfter := req.Header.ConnectionClose()
	stripRequestHop(&req.Header)
	req.Header.SetNoDefaultContentType(true) // pass the caller's, or none
	x.ipText = x.ip.AppendTo(x.ipText[:0])
	req.Header.SetCanonical(hdrForwardedFor, x.ipText)
	if r.prefixed {
		x.path = append(x.path[:0], req.URI().PathOriginal()...)
	}
	rt := r.route.Load()
	key := req.Header.Peek(r.keyHeader)
	if len(key) == 0 {
		key = x.ipText
	}
	arm, be := pick(rt, key)
	if arm == armCanary && !be.breaker.allow() {
		r.m.fallbacks.WithLabelValues(be.Name).Inc()
		arm, be = armStable, rt.stable
	}
	r.watch.add(x)
	c := r.do(be, arm, req, resp, x.path, x)
	if c.failed() && !c.canceled && arm == armCanary && r.cfg.RetryOnStable {
		// The canary's failure still counts against it in analysis.
		r.window.observe(event.ArmCanary, false, c.latency, nil)
		r.m.retries.Inc()
		arm, be = armStable, rt.stable
		c = r.do(be, arm, req, resp, x.path, x)
	}
	r.watch.remove(x)
	switch {
	case c.canceled:
		// Counted by the watch; nobody is left to answer.
		resp.SetConnectionClose()
		return
	case c.err != nil:
		code := fasthttp.StatusBadGateway
		if c.reason == reasonTimeout {
			code = fasthttp.StatusGatewayTimeout
		}
		be.arms[arm].codes[codeIndex(code)].Inc()
		resp.Reset()
		resp.SetStatusCode(code)
		resp.Header.SetContentType("text/plain; charset=utf-8")
		resp.SetBodyString("model backend unavailable\n")
	default:
		stripResponseHop(&resp.Header)
		resp.Header.SetCanonical(hdrArm, armHeaderValues[arm])
		resp.Header.SetCanonical(hdrBackend, be.nameBytes)
		be.arms[arm].codes[codeIndex(c.status)].Inc()
	}
	if closeAfter {
		resp.SetConnectionClose()
	}
	if c.err == nil {
		r.after(x, rt, arm, be, &c)
	}
}

// after does the bookkeeping of an answered request: analysis window,
// prediction events, shadow mirror. fasthttp writes the answer when the
// handler returns, so this runs before the caller has it; it is kept to a
// few microseconds (one JSON parse of the response, one of the request).
func (r *Router) after(x *exchange, rt *route, arm int, be *backend, c *call) {
	var outs []Output
	if !c.failed() && c.status < 300 {
		var err error
		if outs, err = r.extract.Extract(x.resp.Body()); err != nil {
			r.m.events.WithLabelValues("unparsed").Inc()
			r.log.Debug("no predictions in response", "backend", be.Name, "err", err)
		}
	}
	r.window.observe(armNames[arm], !c.failed(), c.latency, outs)
	shadow := arm == armStable && rt.canary != nil && rt.ShadowPercent > 0
	if r.pub == nil && !shadow {
		return
	}
	meta := r.meta(x)
	r.emit(outs, meta, be, armNames[arm], rt.RolloutID, c)
	if shadow && shadowPick(meta.reqID, rt.ShadowPercent) {
		r.shadow.enqueue(x, rt, outs, meta)
	}
}

func shadowPick(reqID string, percent float64) bool {
	return Bucket("shadow", reqID) < threshold(percent)
}

// do sends req to be and records metrics and the breaker. x (nil for
// shadow calls) is the caller's exchange, watched for hang-ups.
func (r *Router) do(be *backend, arm int, req *fasthttp.Request, resp *fasthttp.Response, path []byte, x *exchange) call {
	am := be.arms[arm]
	if x != nil {
		x.cur.Store(am)
		x.state.Store(callWaiting)
	}
	start := time.Now()
	err := r.send(be, req, resp, path)
	end := time.Now()
	c := call{latency: end.Sub(start), end: end, err: err, status: resp.StatusCode()}
	if x != nil && !x.state.CompareAndSwap(callWaiting, callAnswered) {
		// The caller went away first: not the backend's fault, so neither
		// the breaker nor the error metrics hear of it.
		c.canceled = true
		return c
	}
	be.breaker.record(!c.failed())
	am.latency.Observe(c.latency.Seconds())
	if c.failed() {
		c.reason = reason5xx
		if err != nil {
			c.reason = reasonOf(err)
		}
		am.errors[c.reason].Inc()
	}
	return c
}

// send points req at be (scheme, host, path prefix) and calls it.
func (r *Router) send(be *backend, req *fasthttp.Request, resp *fasthttp.Response, path []byte) error {
	u := req.URI()
	if be.https {
		u.SetScheme("https")
	} else {
		u.SetScheme("http")
	}
	u.SetHost(be.host)
	if r.prefixed {
		u.SetPath(be.prefix + string(path))
	}
	// The timeout is the connection's (r.backendLimits), not a deadline per call.
	return be.client.Do(req, resp)
}

func reasonOf(err error) int {
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout),
		errors.As(err, &ne) && ne.Timeout():
		return reasonTimeout
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return reasonTooLarge
	}
	return reasonTransport
}

// remoteIP is the caller's address without port (IPv4-mapped addresses unmapped).
func remoteIP(a net.Addr) netip.Addr {
	if t, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(t.IP)
		return ip.Unmap()
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
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

// isHop reports hop-by-hop headers, which a proxy must not forward, and
// Content-Length, which fasthttp recomputes.
func isHop(k []byte) bool {
	switch string(k) {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// stripRequestHop removes hop-by-hop headers from a request. Most messages
// have none, so it looks before it deletes. (Concrete types, not an
// interface: through one, each All iterator was a heap allocation.)
func stripRequestHop(h *fasthttp.RequestHeader) {
	h.ResetConnectionClose()
	for {
		var buf [32]byte
		k := buf[:0]
		for name := range h.All() {
			if isHop(name) {
				k = append(k, name...)
				break
			}
		}
		if len(k) == 0 {
			return
		}
		h.DelBytes(k)
	}
}

// stripResponseHop is stripRequestHop for a response. Written out twice on
// purpose: one generic function over both header types allocated its
// iterators as an interface does (5 allocations per call, measured with
// testing.AllocsPerRun, against 0).
func stripResponseHop(h *fasthttp.ResponseHeader) {
	h.ResetConnectionClose()
	for {
		var buf [32]byte
		k := buf[:0]
		for name := range h.All() {
			if isHop(name) {
				k = append(k, name...)
				break
			}
		}
		if len(k) == 0 {
			return
		}
		h.DelBytes(k)
	}
}

// Header names the router sets, in canonical form so fasthttp need not
// normalise them on every request, and the arm values.
var (
	hdrForwardedFor = []byte("X-Forwarded-For")
	hdrArm          = []byte("X-Lookout-Arm")
	hdrBackend      = []byte("X-Lookout-Backend")
	armHeaderValues = [numArms][]byte{[]byte(armNames[armStable]), []byte(armNames[armCanary]), []byte(armNames[armShadow])}
)

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
