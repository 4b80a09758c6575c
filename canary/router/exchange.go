package router

import (
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
// nearly all of them, never pay for the check.
const (
	watchAfter = 50 * time.Millisecond
	watchEvery = 20 * time.Millisecond
)

// exchange is the state of one proxied request. Exchanges are pooled with
// their scratch buffers and the timer of their hang-up watch.
type exchange struct {
	req  *fasthttp.Request
	resp *fasthttp.Response
	ip   netip.Addr
	// target is what the watch checks; published to it through watched.
	target  watchTarget
	watched atomic.Pointer[watchTarget]

	state atomic.Int32
	cur   atomic.Pointer[armMetrics] // the arm × backend being called
	timer *time.Timer
	armed bool
	done  atomic.Bool
	stop  chan struct{}
	ended chan struct{}

	ipText []byte
	path   []byte
}

// watchTarget is how to tell that the caller hung up: its fasthttp
// connection was closed.
type watchTarget struct {
	conn net.Conn
}

var exchanges = sync.Pool{New: func() any {
	x := &exchange{stop: make(chan struct{}, 1), ended: make(chan struct{}, 1)}
	x.timer = time.AfterFunc(time.Hour, x.watch)
	x.timer.Stop()
	return x
}}

func acquireExchange() *exchange { return exchanges.Get().(*exchange) }

func releaseExchange(x *exchange) {
	x.req, x.resp, x.target = nil, nil, watchTarget{}
	x.watched.Store(nil)
	x.cur.Store(nil)
	exchanges.Put(x)
}

// startWatch arms the hang-up watch for the calls that follow.
func (x *exchange) startWatch() {
	if x.target.conn == nil {
		return
	}
	x.watched.Store(&x.target)
	x.done.Store(false)
	x.armed = true
	x.timer.Reset(watchAfter)
}

// stopWatch disarms the watch and, if it had started, waits for it to end,
// so the exchange can be reused.
func (x *exchange) stopWatch() {
	if !x.armed {
		return
	}
	x.armed = false
	x.done.Store(true)
	if x.timer.Stop() {
		return
	}
	select {
	case x.stop <- struct{}{}:
	default:
	}
	<-x.ended
	select { // a stop the watch did not consume must not end the next one
	case <-x.stop:
	default:
	}
}

// watch runs (in the timer's goroutine) while a backend call is slow and
// counts the request as canceled as soon as its caller has gone.
func (x *exchange) watch() {
	defer func() { x.ended <- struct{}{} }()
	t := x.watched.Load()
	if t == nil {
		return
	}
	tick := time.NewTicker(watchEvery)
	defer tick.Stop()
	for !x.done.Load() {
		if t.gone() {
			if x.state.CompareAndSwap(callWaiting, callCanceled) {
				x.cur.Load().codes[codeCanceled].Inc()
			}
			return
		}
		select {
		case <-x.stop:
			return
		case <-tick.C:
		}
	}
}

func (t *watchTarget) gone() bool { return connClosed(t.conn) }
