package router

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lookout-dev/lookout/internal/config"
	"github.com/lookout-dev/lookout/internal/testenv"
)

// fakeModel is a real HTTP model server answering KServe v1 requests with
// one prediction per instance.
type fakeModel struct {
	srv    *httptest.Server
	hits   atomic.Int64
	status atomic.Int64  // 0 → 200
	class  atomic.Value  // string
	block  chan struct{} // when non-nil, requests wait for it to close
}

func newFakeModel(t testing.TB, class string) *fakeModel {
	m := &fakeModel{}
	m.class.Store(class)
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.hits.Add(1)
		if m.block != nil {
			<-m.block
		}
		if s := m.status.Load(); s != 0 {
			http.Error(w, "boom", int(s))
			return
		}
		var req struct {
			Instances []json.RawMessage `json:"instances"`
		}
		body, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(body, &req)
		n := max(len(req.Instances), 1)
		c := m.class.Load().(string)
		other := "good"
		if c == "good" {
			other = "dent"
		}
		preds := make([]map[string]any, n)
		for i := range preds {
			preds[i] = map[string]any{"probs": map[string]float64{c: 0.9, other: 0.1}}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"predictions": preds})
	}))
	t.Cleanup(func() {
		if m.block != nil {
			select {
			case <-m.block:
			default:
				close(m.block)
			}
		}
		m.srv.Close()
	})
	return m
}

func testConfig(stable, canary *fakeModel) config.Canary {
	c := config.Default().Canary
	c.Backends = []config.CanaryBackend{
		{Name: "stable", URL: stable.srv.URL, Version: "v1"},
		{Name: "canary", URL: canary.srv.URL, Version: "v2"},
	}
	c.Stable = "stable"
	c.Timeout = 10 * time.Second
	c.BreakerOpenFor = time.Hour
	return c
}

// proxyServer is a router serving on a real loopback listener, as
// `lookout router` runs it.
type proxyServer struct {
	URL  string
	done chan error
}

// newTestRouter starts a router on its fasthttp listener; tests call it with
// net/http clients, as real callers would.
func newTestRouter(t testing.TB, cfg config.Canary, pub Publisher) (*Router, *proxyServer) {
	t.Helper()
	r, err := New(Options{Config: cfg, Publisher: pub, Registry: prometheus.NewRegistry(), Log: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.Start(ctx)
	srv := serveProxy(t, r)
	t.Cleanup(func() {
		shutdown, stop := context.WithTimeout(context.Background(), 10*time.Second)
		defer stop()
		if err := r.Shutdown(shutdown); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-srv.done; err != nil {
			t.Errorf("serve: %v", err)
		}
		cancel()
		r.Wait()
	})
	return r, srv
}

func serveProxy(t testing.TB, r *Router) *proxyServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &proxyServer{URL: "http://" + ln.Addr().String(), done: make(chan error, 1)}
	go func() { srv.done <- r.Serve(ln) }()
	return srv
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, what, cond)
}
