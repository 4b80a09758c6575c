package router

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// States of the backend call in flight; the watch and the handler race to
// move it out of callWaiting, and whoever wins decides how it is counted.
const (
	callWaiting int32 = iota
	callAnswered
	callCanceled
)

// watchAfter is how long a backend call runs before the router starts
// checking whether the caller is still there (every watchEvery): fast calls,
// nearly all of them, never pay for the check. One goroutine (the watcher)
// does the checks for all exchanges, counting its ticks, so a call is
// first checked after between watchAfter and watchAfter+watchEvery.
const (
	watchAfter = 40 * time.Millisecond
	watchEvery = 20 * time.Millisecond
	// watchTicks: a call registered just before a tick is older than
	// watchAfter at the watchTicks-th tick after it.
	watchTicks = int64(watchAfter/watchEvery) + 1
)

// exchange is the state of one proxied request. Exchanges are pooled with
// their scratch buffers.
type exchange struct {
	req  *fasthttp.Request
	resp *fasthttp.Response
	ip   netip.Addr
	// conn is the caller's connection, which the watcher checks.
	conn net.Conn

	state atomic.Int32
	cur   atomic.Pointer[armMetrics] // the arm × backend being called
	// The watcher's list of exchanges in a backend call, guarded by its mutex.
	prev, next *exchange
	since      int64 // the watcher's tick when the call began
	watched    bool

	ipText []byte
	path   []byte
	// Scratch of meta: the request's strings before their one allocation,
	// their end offsets, and the image URIs sliced from it.
	scratch []byte
	ends    []int
	uris    []string
}

var exchanges = sync.Pool{New: func() any { return &exchange{} }}

func acquireExchange() *exchange { return exchanges.Get().(*exchange) }

func releaseExchange(x *exchange) {
	x.req, x.resp, x.conn = nil, nil, nil
	x.cur.Store(nil)
	clear(x.uris) // do not keep the last request's strings alive
	x.uris = x.uris[:0]
	exchanges.Put(x)
}

// watcher notices callers that hang up while their backend call is slow,
// and keeps the connections' timeouts (see proxyConn). Registering an
// exchange costs a mutex and a few pointer writes: no timer, no goroutine
// and no clock read per request.
type watcher struct {
	ticks atomic.Int64 // watchEvery periods since the watch began

	mu   sync.Mutex
	head exchange // sentinel of a circular list of exchanges in a backend call

	connMu sync.Mutex
	conns  proxyConn // sentinel of a circular list of open connections
}

func newWatcher() *watcher {
	w := &watcher{}
	w.head.prev, w.head.next = &w.head, &w.head
	w.conns.prev, w.conns.next = &w.conns, &w.conns
	return w
}

// now is the current watch tick.
func (w *watcher) now() int64 { return w.ticks.Load() }

// add puts x on the watch list for the calls that follow.
func (w *watcher) add(x *exchange) {
	if x.conn == nil {
		return
	}
	w.mu.Lock()
	x.since = w.now()
	x.prev, x.next = w.head.prev, &w.head
	w.head.prev.next = x
	w.head.prev = x
	w.mu.Unlock()
	x.watched = true
}

// remove takes x off the list; once it returns, the watcher no longer
// touches x, so x can be reused.
func (w *watcher) remove(x *exchange) {
	if !x.watched {
		return
	}
	x.watched = false
	w.mu.Lock()
	x.prev.next, x.next.prev = x.next, x.prev
	x.prev, x.next = nil, nil
	w.mu.Unlock()
}

// run checks the list every watchEvery until ctx is cancelled.
func (w *watcher) run(ctx context.Context) {
	tick := time.NewTicker(watchEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			w.check()
		}
	}
}

// addConn puts c on the watch until removeConn.
func (w *watcher) addConn(c *proxyConn) {
	w.connMu.Lock()
	c.prev, c.next = w.conns.prev, &w.conns
	w.conns.prev.next = c
	w.conns.prev = c
	w.connMu.Unlock()
}

func (w *watcher) removeConn(c *proxyConn) {
	w.connMu.Lock()
	c.prev.next, c.next.prev = c.next, c.prev
	c.prev, c.next = nil, nil
	w.connMu.Unlock()
}

// check advances the watch by a tick and looks at the calls in progress.
func (w *watcher) check() {
	now := w.ticks.Add(1)
	w.checkCalls(now)
	w.checkConns(now)
}

// checkConns expires the connections whose read or write is overdue.
func (w *watcher) checkConns(now int64) {
	w.connMu.Lock()
	defer w.connMu.Unlock()
	for c := w.conns.next; c != &w.conns; c = c.next {
		if c.overdue(now) {
			c.expire()
		}
	}
}

// checkCalls counts as canceled every call older than watchAfter whose
// caller has gone. The list is in registration order, so it stops at the
// first call that is too young.
func (w *watcher) checkCalls(now int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for x := w.head.next; x != &w.head; x = x.next {
		if now-x.since < watchTicks {
			return
		}
		if x.state.Load() == callWaiting && connClosed(x.conn) &&
			x.state.CompareAndSwap(callWaiting, callCanceled) {
			x.cur.Load().codes[codeCanceled].Inc()
		}
	}
}
