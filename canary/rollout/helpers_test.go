package rollout

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lookout-dev/lookout/canary/router"
	"github.com/lookout-dev/lookout/internal/config"
	"github.com/lookout-dev/lookout/internal/testenv"
)

// model is a real HTTP model server whose answer can change during a test.
type model struct {
	srv    *httptest.Server
	status atomic.Int64
	mu     sync.Mutex
	class  string
	conf   float64
}

func newModel(t *testing.T, class string, conf float64) *model {
	m := &model{class: class, conf: conf}
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if s := m.status.Load(); s != 0 {
			http.Error(w, "boom", int(s))
			return
		}
		m.mu.Lock()
		c, p := m.class, m.conf
		m.mu.Unlock()
		other := "good"
		if c == "good" {
			other = "dent"
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"predictions": []any{map[string]any{"probs": map[string]float64{c: p, other: 1 - p}}}})
	}))
	t.Cleanup(m.srv.Close)
	return m
}

type env struct {
	t      *testing.T
	cfg    config.Canary
	conn   driver.Conn
	db     string
	audit  *ClickHouseAudit
	router *router.Router
	proxy  string // base URL of the router's listener
	stop   func() // stops the router's listener
	c      *Controller
	now    time.Time
	mu     sync.Mutex
}

func testCanaryConfig(stable, canary *model) config.Canary {
	c := config.Default().Canary
	c.Backends = []config.CanaryBackend{
		{Name: "v1", URL: stable.srv.URL, Version: "v1"},
		{Name: "v2", URL: canary.srv.URL, Version: "v2"},
	}
	c.Stable = "v1"
	c.RetryOnStable = true
	c.BreakerFailures = 1000
	c.Rollout.Steps = []float64{50, 100}
	c.Rollout.StepPause = 0
	c.Rollout.MinSamples = 30
	c.Rollout.MinLabelled = 30
	c.Rollout.FailureLimit = 2
	c.Rollout.RollbackApprovalTTL = time.Hour
	// Latency on a loaded test machine is noise; analyse's own test covers p99.
	c.Rollout.MaxP99Increase = time.Minute
	return c
}

func newEnv(t *testing.T, cfg config.Canary) *env {
	conn, chCfg := testenv.ClickHouse(t)
	e := &env{t: t, cfg: cfg, conn: conn, db: chCfg.Database, now: time.Now()}
	e.audit = NewClickHouseAudit(conn, chCfg.Database)
	e.restart()
	return e
}

// restart builds a fresh router and controller on the same audit table, as
// a restarted process would.
func (e *env) restart() {
	t := e.t
	if e.stop != nil {
		e.stop()
	}
	r, err := router.New(router.Options{Config: e.cfg, Registry: prometheus.NewRegistry(), Log: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.Start(ctx)
	t.Cleanup(func() { cancel(); r.Wait() })
	e.router = r
	e.proxy, e.stop = serveProxy(t, r)
	t.Cleanup(e.stop)
	c, err := New(context.Background(), Options{Config: e.cfg, Router: r, Audit: e.audit,
		Accuracy: NewClickHouseAccuracy(e.conn, e.db), Log: testenv.Logger(t), Now: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	e.c = c
}

// serveProxy serves r on a loopback port as `lookout router` does; stop
// shuts it down (calling it again does nothing).
func serveProxy(t *testing.T, r *router.Router) (url string, stop func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Serve(ln) }()
	var once sync.Once
	return "http://" + ln.Addr().String(), func() {
		once.Do(func() {
			if err := r.Shutdown(context.Background()); err != nil {
				t.Error(err)
			}
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
	}
}

func (e *env) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
}

func (e *env) advance(d time.Duration) {
	e.mu.Lock()
	e.now = e.now.Add(d)
	e.mu.Unlock()
}

// traffic sends n requests from n different cameras and returns the arms seen.
func (e *env) traffic(n int) map[string]int {
	arms := map[string]int{}
	for i := range n {
		req, _ := http.NewRequest("POST", e.proxy+"/v1/models/m:predict", strings.NewReader(`{"instances":[{}]}`))
		req.Header.Set("X-Camera-Id", fmt.Sprint("cam-", i))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			e.t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		arms[resp.Header.Get("X-Lookout-Backend")]++
	}
	return arms
}

func (e *env) tick() {
	e.t.Helper()
	if err := e.c.Tick(context.Background()); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) actions() []string {
	entries, err := e.audit.List(context.Background(), 100)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for i := len(entries) - 1; i >= 0; i-- {
		out = append(out, entries[i].Action)
	}
	return out
}
