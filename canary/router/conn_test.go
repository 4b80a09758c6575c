package router

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lookout-dev/lookout/internal/testenv"
)

// tcpPair returns the two ends of a loopback TCP connection, the first
// wrapped as a proxyConn with limits lim watched by w.
func tcpPair(t *testing.T, w *watcher, lim *connLimits) (*proxyConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	pc := newProxyConn(c, w, lim)
	t.Cleanup(func() { pc.Close(); peer.Close() })
	return pc, peer
}

// A proxyConn moves bytes exactly as the net package does, including
// writes far larger than the socket buffers (which wait for the reader)
// and the end of stream.
func TestProxyConnCopiesBothWays(t *testing.T) {
	pc, peer := tcpPair(t, newWatcher(), &connLimits{})
	if pc.raw == nil && runtime.GOOS == "linux" {
		t.Fatal("no raw I/O on a TCP connection on Linux")
	}
	big := make([]byte, 8<<20)
	for i := range big {
		big[i] = byte(rand.Uint32())
	}
	got := make(chan []byte)
	go func() { b, _ := io.ReadAll(peer); got <- b }()
	if n, err := pc.Write(big); n != len(big) || err != nil {
		t.Fatalf("write: %d, %v", n, err)
	}
	pc.Conn.(*net.TCPConn).CloseWrite()
	if b := <-got; !bytes.Equal(b, big) {
		t.Fatalf("peer read %d bytes, not the %d written", len(b), len(big))
	}
	go func() { peer.Write(big); peer.Close() }()
	b, err := io.ReadAll(pc)
	if err != nil || !bytes.Equal(b, big) {
		t.Fatalf("read %d bytes (%v), want the %d sent", len(b), err, len(big))
	}
	if n, err := pc.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Errorf("read after end of stream: %d, %v; want 0, EOF", n, err)
	}
	pc.Close()
	if _, err := pc.Read(make([]byte, 10)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("read after Close: %v, want net.ErrClosed", err)
	}
	if _, err := pc.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("write after Close: %v, want net.ErrClosed", err)
	}
}

// The watcher expires a read blocked past its limit with a timeout error,
// and leaves calls within their limit alone.
func TestProxyConnReadTimesOut(t *testing.T) {
	w := newWatcher()
	pc, peer := tcpPair(t, w, &connLimits{busy: 3})
	errc := make(chan error, 1)
	go func() { _, err := pc.Read(make([]byte, 10)); errc <- err }()
	for i := 0; i < 3; i++ {
		time.Sleep(5 * time.Millisecond) // let the read block
		w.check()
	}
	select {
	case err := <-errc:
		t.Fatalf("read ended within its limit: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	w.check() // the 4th tick: more than 3 since the read began
	var err error
	select {
	case err = <-errc:
	case <-time.After(5 * time.Second):
		t.Fatal("the overdue read was not expired")
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: %v, want a timeout", err)
	}
	// The write side still works: a caller can still be told.
	if _, err := pc.Write([]byte("late")); err != nil {
		t.Errorf("write after a read timeout: %v", err)
	}
	b := make([]byte, 4)
	if _, err := io.ReadFull(peer, b); err != nil || string(b) != "late" {
		t.Errorf("peer read %q, %v", b, err)
	}
}

// Callers: a connection idle past the idle limit, and a request that does
// not arrive whole within the busy limit (a slow-loris), are cut; a
// request answered within the limits is not.
func TestCallerTimeouts(t *testing.T) {
	stable, canary := newFakeModel(t, "good"), newFakeModel(t, "good")
	r, err := New(Options{Config: testConfig(stable, canary), Registry: prometheus.NewRegistry(), Log: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	r.callerLimits = connLimits{caller: true, idle: 10, busy: 5, write: 5} // 200 ms, 100 ms
	ctx, cancel := context.WithCancel(context.Background())
	r.Start(ctx)
	srv := serveProxy(t, r)
	t.Cleanup(func() {
		_ = r.Shutdown(context.Background())
		<-srv.done
		cancel()
		r.Wait()
	})
	addr := strings.TrimPrefix(srv.URL, "http://")
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// closedWithin waits for the router to close c and reports how long it took.
	closedWithin := func(c net.Conn) time.Duration {
		start := time.Now()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := io.ReadAll(c)
		if err != nil {
			t.Fatalf("the router did not close the connection: %v", err)
		}
		return time.Since(start)
	}
	// Lower bounds with slack: the watcher's ticks can arrive late on a
	// loaded machine, then catch up.
	if d := closedWithin(dial()); d < 150*time.Millisecond || d > 3*time.Second {
		t.Errorf("idle connection closed after %v, want about 200 ms (150 ms to 3 s)", d)
	}
	slow := dial()
	if _, err := slow.Write([]byte("POST /v1/models/m:predict HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatal(err)
	}
	if d := closedWithin(slow); d < 60*time.Millisecond || d > 3*time.Second {
		t.Errorf("half-sent request cut after %v, want about 100 ms (60 ms to 3 s)", d)
	}
	// Requests within the limits, on one connection, with pauses shorter
	// than the idle limit between them.
	ok := dial()
	body := `{"instances":[{"image_uri":"file:///img/a.png"}]}`
	for i := 0; i < 3; i++ {
		time.Sleep(60 * time.Millisecond)
		req := "POST /v1/models/m:predict HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
		if _, err := ok.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		_ = ok.SetReadDeadline(time.Now().Add(5 * time.Second))
		b := make([]byte, 4096)
		n, err := ok.Read(b)
		if err != nil || !strings.HasPrefix(string(b[:n]), "HTTP/1.1 200") {
			t.Fatalf("request %d: %q, %v", i, b[:n], err)
		}
	}
}
