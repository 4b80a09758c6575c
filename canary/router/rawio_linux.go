package router

import (
	"net"
	"syscall"
	"unsafe"
)

// rawIO reads and writes a TCP socket with raw system calls, waiting through
// Go's poller only when the socket is not ready. The net package announces
// every read and write to the scheduler (entersyscall/exitsyscall); on a
// busy machine the runtime's sysmon then finds the processor "in a system
// call", hands it to another thread and keeps polling every 20 µs, and the
// connection's thread must queue for a processor when its call returns. For
// a proxy making four short socket calls per request that thread traffic
// cost more CPU than the calls themselves (BENCHMARKS.md). A call on a
// non-blocking socket never blocks, so the announcement buys nothing here.
type rawIO struct {
	rc syscall.RawConn
	// The arguments and results of the read or write in progress, in
	// fields so the functions handed to rc are made once per connection.
	// A connection has one reader and one writer at a time (net.Conn's own
	// rule, which fasthttp follows).
	rbuf, wbuf      []byte
	rn, wn          int
	rerr, werr      syscall.Errno
	readFn, writeFn func(fd uintptr) bool
}

// newRawIO returns raw I/O for c, or nil when c is not a TCP connection.
func newRawIO(c net.Conn) *rawIO {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	r := &rawIO{rc: rc}
	r.readFn, r.writeFn = r.readOnce, r.writeOnce
	return r
}

// read is net.Conn's Read for a non-empty p, but errors are not yet wrapped
// in *net.OpError and end of stream is (0, nil).
func (r *rawIO) read(p []byte) (int, error) {
	r.rbuf, r.rn, r.rerr = p, 0, 0
	err := r.rc.Read(r.readFn)
	r.rbuf = nil
	if err == nil && r.rerr != 0 {
		err = r.rerr
	}
	return r.rn, err
}

// readOnce is one attempt of read; false means "not ready, wait".
func (r *rawIO) readOnce(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&r.rbuf[0])), uintptr(len(r.rbuf)))
		switch e {
		case 0:
			r.rn = int(n)
			return true
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			r.rerr = e
			return true
		}
	}
}

// write writes all of a non-empty p, with errors as read's.
func (r *rawIO) write(p []byte) (int, error) {
	r.wbuf, r.wn, r.werr = p, 0, 0
	err := r.rc.Write(r.writeFn)
	r.wbuf = nil
	if err == nil && r.werr != 0 {
		err = r.werr
	}
	return r.wn, err
}

// writeOnce writes what is left of wbuf; false means "socket full, wait".
func (r *rawIO) writeOnce(fd uintptr) bool {
	for r.wn < len(r.wbuf) {
		rest := r.wbuf[r.wn:]
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&rest[0])), uintptr(len(rest)))
		switch e {
		case 0:
			r.wn += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			r.werr = e
			return true
		}
	}
	return true
}
