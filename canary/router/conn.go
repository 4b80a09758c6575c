package router

import (
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// proxyConn is a connection of the proxy, to a caller or to a backend. Its
// timeouts are kept by the router's watcher instead of deadlines set around
// every read and write, as fasthttp and net/http do: each deadline is a
// runtime timer changed per call, four to five per proxied request, ≈ 4% of
// the router's CPU (BENCHMARKS.md). The watcher ticks every watchEvery for
// the hang-up checks anyway; it expires (with a deadline in the past) the
// connections blocked in a read or write for longer than allowed, so a
// timeout fires up to two ticks late. A call that ends at the very moment
// it is expired can leave the connection's next call to time out too; the
// connection is closed after either.
type proxyConn struct {
	net.Conn
	raw *rawIO // nil: the Conn's own Read and Write
	w   *watcher
	lim *connLimits

	// start is the watch tick at which the current request began (a
	// caller's: when its first bytes came; to a backend: when it was sent)
	// or, for a caller between requests, when the last answer was written.
	// Only the goroutine using the connection touches start and inRequest.
	start     int64
	inRequest bool
	// The call in progress may run limit ticks counted from since; limit is
	// 0 when no read or write is in progress. The watcher reads both.
	limit, since atomic.Int64
	writing      atomic.Bool // the call in progress is a write
	closed       atomic.Bool
	prev, next   *proxyConn // the watcher's list, under its connMu
}

// connLimits are a kind of connection's timeouts, in watch ticks (0: none).
type connLimits struct {
	caller bool  // accepted from a caller, else dialled to a backend
	idle   int64 // a caller's connection waiting for its next request
	busy   int64 // a request: from its first byte to its last (caller), or from sending it to the answer's end (backend)
	write  int64 // one write of an answer to a caller
}

// ticks converts d to watch ticks, rounding up; 0 stays "no limit".
func ticks(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + watchEvery - 1) / watchEvery)
}

// newProxyConn wraps c and puts it on w's watch.
func newProxyConn(c net.Conn, w *watcher, lim *connLimits) *proxyConn {
	pc := &proxyConn{Conn: c, raw: newRawIO(c), w: w, lim: lim}
	pc.start = w.now()
	w.addConn(pc)
	return pc
}

// Read reads as net.Conn's Read does, within the connection's limits.
func (c *proxyConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	switch {
	case c.lim.caller && !c.inRequest:
		c.begin(false, c.lim.idle, c.start)
	default:
		c.begin(false, c.lim.busy, c.start)
	}
	n, err := c.read(p)
	c.limit.Store(0)
	if n > 0 && c.lim.caller && !c.inRequest {
		c.inRequest, c.start = true, c.w.now()
	}
	return n, err
}

func (c *proxyConn) read(p []byte) (int, error) {
	if c.raw == nil {
		return c.Conn.Read(p)
	}
	n, err := c.raw.read(p)
	switch {
	case err != nil:
		return n, c.opError("read", err)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// Write writes as net.Conn's Write does, within the connection's limits.
func (c *proxyConn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	now := c.w.now()
	if c.lim.caller {
		c.begin(true, c.lim.write, now)
	} else {
		c.start = now // a request to the backend begins
		c.begin(true, c.lim.busy, now)
	}
	n, err := c.write(p)
	c.limit.Store(0)
	if c.lim.caller {
		c.inRequest, c.start = false, c.w.now()
	}
	return n, err
}

func (c *proxyConn) write(p []byte) (int, error) {
	if c.raw == nil {
		return c.Conn.Write(p)
	}
	n, err := c.raw.write(p)
	if err != nil {
		return n, c.opError("write", err)
	}
	return n, nil
}

// begin announces a read or write that may run limit ticks from since.
// since is stored first: the watcher reads limit, then since, and since
// only grows, so it never pairs a new limit with an older start.
func (c *proxyConn) begin(write bool, limit, since int64) {
	c.writing.Store(write)
	c.since.Store(since)
	c.limit.Store(limit)
}

// overdue reports whether the call in progress has run past its limit at
// watch tick now.
func (c *proxyConn) overdue(now int64) bool {
	limit := c.limit.Load()
	return limit > 0 && now-c.since.Load() > limit
}

// expire makes the read or write in progress, and every later one of its
// kind, fail with a timeout (os.ErrDeadlineExceeded). The other kind still
// works: a caller whose request timed out can still be told so.
func (c *proxyConn) expire() {
	if c.writing.Load() {
		_ = c.Conn.SetWriteDeadline(time.Unix(1, 0))
	} else {
		_ = c.Conn.SetReadDeadline(time.Unix(1, 0))
	}
}

// Close closes the connection and takes it off the watch.
func (c *proxyConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.w.removeConn(c)
	}
	return c.Conn.Close()
}

// SyscallConn gives the hang-up check its peek at the socket.
func (c *proxyConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	return sc.SyscallConn()
}

// opError wraps err as the net package does, so callers that look for
// timeouts (net.Error) or closed connections (net.ErrClosed) still find them.
func (c *proxyConn) opError(op string, err error) error {
	if errno, ok := err.(syscall.Errno); ok {
		err = os.NewSyscallError(op, errno)
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// proxyListener hands out its connections as caller proxyConns.
type proxyListener struct {
	net.Listener
	w   *watcher
	lim *connLimits
}

func (l proxyListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newProxyConn(c, l.w, l.lim), nil
}

// backendDialer returns the dial function of a backend's connection pool.
// fasthttp passes no timeout when the call has none; dialTimeout is used then.
func backendDialer(w *watcher, lim *connLimits, dialTimeout time.Duration) fasthttp.DialFuncWithTimeout {
	return func(addr string, timeout time.Duration) (net.Conn, error) {
		if timeout <= 0 {
			timeout = dialTimeout
		}
		c, err := fasthttp.DialTimeout(addr, timeout)
		if err != nil {
			return nil, err
		}
		return newProxyConn(c, w, lim), nil
	}
}
