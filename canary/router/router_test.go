package router

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lookout-dev/lookout/internal/testenv"
)

func post(t *testing.T, url, key string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", url+"/v1/models/m:predict", strings.NewReader(`{"instances":[{"image_uri":"file:///img/a.png"}]}`))
	if key != "" {
		req.Header.Set("X-Camera-Id", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// The split follows the weight within binomial tolerance, and raising the
// weight only moves keys from stable to canary.
func TestSplitIsStickyAndMonotonic(t *testing.T) {
	stable, canary := newFakeModel(t, "good"), newFakeModel(t, "good")
	r, srv := newTestRouter(t, testConfig(stable, canary), nil)
	const n = 20000
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("cam-%d", i)
	}
	prev := map[string]bool{}
	for _, w := range []float64{5, 10, 25, 50, 100} {
		if err := r.SetRoute(Route{Stable: "stable", Canary: "canary", CanaryPercent: w, RolloutID: "r1"}); err != nil {
			t.Fatal(err)
		}
		onCanary := 0
		for _, k := range keys {
			c := r.Assign(k) == "canary"
			if c {
				onCanary++
			} else if prev[k] {
				t.Fatalf("weight %v: key %s moved back from canary to stable", w, k)
			}
			prev[k] = c
		}
		p := w / 100
		sd := math.Sqrt(n * p * (1 - p))
		if diff := math.Abs(float64(onCanary) - n*p); diff > 5*sd+0.5 {
			t.Errorf("weight %v%%: %d of %d keys on canary, want %.0f ± %.0f (5 sd)", w, onCanary, n, n*p, 5*sd)
		}
	}
	// Through HTTP: each key sticks to one backend at 25%.
	if err := r.SetRoute(Route{Stable: "stable", Canary: "canary", CanaryPercent: 25, RolloutID: "r1"}); err != nil {
		t.Fatal(err)
	}
	hits := 0
	for i := range 200 {
		key := fmt.Sprintf("cam-%d", i)
		want := r.Assign(key)
		for range 2 {
			resp := post(t, srv.URL, key)
			if got := resp.Header.Get("X-Lookout-Arm"); got != want || resp.StatusCode != 200 {
				t.Fatalf("key %s: arm %s status %d, want %s 200", key, got, resp.StatusCode, want)
			}
		}
		if want == "canary" {
			hits += 2
		}
	}
	if int(canary.hits.Load()) != hits {
		t.Errorf("canary backend saw %d requests, want %d", canary.hits.Load(), hits)
	}
}

// Requests without the key header are keyed by client address: one client, one arm.
func TestClientAddressIsTheFallbackKey(t *testing.T) {
	stable, canary := newFakeModel(t, "good"), newFakeModel(t, "good")
	r, srv := newTestRouter(t, testConfig(stable, canary), nil)
	_ = r.SetRoute(Route{Stable: "stable", Canary: "canary", CanaryPercent: 50, RolloutID: "x"})
	want := r.Assign("127.0.0.1")
	for range 20 {
		if got := post(t, srv.URL, "").Header.Get("X-Lookout-Arm"); got != want {
			t.Fatalf("arm %s, want %s for 127.0.0.1", got, want)
		}
	}
}

// A canary that blocks and fails never delays or fails the caller in shadow
// mode; a full shadow queue drops and counts.
func TestShadowNeverAffectsTheCaller(t *testing.T) {
	stable, canary := newFakeModel(t, "good"), newFakeModel(t, "dent")
	canary.block = make(chan struct{})
	canary.status.Store(500)
	cfg := testConfig(stable, canary)
	cfg.ShadowQueue, cfg.ShadowWorkers = 2, 1
	r, srv := newTestRouter(t, cfg, nil)
	_ = r.SetRoute(Route{Stable: "stable", Canary: "canary", CanaryPercent: 0, ShadowPercent: 100, RolloutID: "s"})
	// If mirroring were synchronous these requests would hang on the blocked
	// canary and the test would time out.
	for i := range 50 {
		resp := post(t, srv.URL, fmt.Sprint("cam-", i))
		if resp.StatusCode != 200 || resp.Header.Get("X-Lookout-Backend") != "stable" {
			t.Fatalf("request %d: %d from %s", i, resp.StatusCode, resp.Header.Get("X-Lookout-Backend"))
		}
	}
	if d := testutil.ToFloat64(r.m.shadow.WithLabelValues("dropped_queue_full")); d < 40 {
		t.Errorf("dropped mirrors = %v, want ≥ 40 with a queue of 2 and a blocked worker", d)
	}
	close(canary.block)
}

// Shadow answers are compared with stable's: agreement is counted.
func TestShadowAgreement(t *testing.T) {
	stable, canary := newFakeModel(t, "good"), newFakeModel(t, "good")
	r, srv := newTestRouter(t, testConfig(stable, canary), nil)
	_ = r.SetRoute(Route{Stable: "stable", Canary: "canary", ShadowPercent: 100, RolloutID: "s"})
	for i := range 20 {
		post(t, srv.URL, fmt.Sprint("cam-", i))
	}
	waitFor(t, "20 shadow comparisons", func() bool {
		s, _ := r.Window().Snapshot()
		return s["canary"].ShadowCompared == 20
	})
	s, _ := r.Window().Snapshot()
	if s["canary"].ShadowAgreed != 20 || s["stable"].Requests != 20 {
		t.Errorf("stats %+v", s)
	}
}

// A failing canary is retried on stable, and after breaker_failures its
// breaker opens so it is not called again.
func TestRetryToStableAndBreaker(t *testing.T) {
	stable, canary := newFakeModel(t, "good"), newFakeModel(t, "good")
	canary.status.Store(503)
	cfg := testConfig(stable, canary)
	cfg.BreakerFailures = 3
	r, srv := newTestRouter(t, cfg, nil)
	_ = r.SetRoute(Route{Stable: "stable", Canary: "canary", CanaryPercent: 100, RolloutID: "b"})
	for i := range 10 {
		resp := post(t, srv.URL, fmt.Sprint("cam-", i))
		if resp.StatusCode != 200 || resp.Header.Get("X-Lookout-Backend") != "stable" {
			t.Fatalf("request %d: %d from %s", i, resp.StatusCode, resp.Header.Get("X-Lookout-Backend"))
		}
	}
	if canary.hits.Load() != 3 {
		t.Errorf("canary called %d times, want 3 (then the breaker opens)", canary.hits.Load())
	}
	if got := testutil.ToFloat64(r.m.retries); got != 3 {
		t.Errorf("retries = %v, want 3", got)
	}
	if got := testutil.ToFloat64(r.m.fallbacks.WithLabelValues("canary")); got != 7 {
		t.Errorf("breaker fallbacks = %v, want 7", got)
	}
	// Without retry the caller sees the canary's failure.
	cfg.RetryOnStable = false
	cfg.BreakerFailures = 100
	r2, srv2 := newTestRouter(t, cfg, nil)
	_ = r2.SetRoute(Route{Stable: "stable", Canary: "canary", CanaryPercent: 100, RolloutID: "b"})
	if resp := post(t, srv2.URL, "cam-1"); resp.StatusCode != 503 {
		t.Errorf("without retry: status %d, want 503", resp.StatusCode)
	}
	_ = srv
}

func TestBodyLimit(t *testing.T) {
	stable, canary := newFakeModel(t, "good"), newFakeModel(t, "good")
	cfg := testConfig(stable, canary)
	cfg.MaxBodyBytes = 100
	_, srv := newTestRouter(t, cfg, nil)
	resp, err := http.Post(srv.URL+"/predict", "application/json", strings.NewReader(strings.Repeat("x", 101)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || stable.hits.Load() != 0 {
		t.Errorf("status %d, backend hits %d", resp.StatusCode, stable.hits.Load())
	}
}

// Swapping routes while requests are in flight never fails one.
func TestRouteSwapUnderLoad(t *testing.T) {
	stable, canary := newFakeModel(t, "good"), newFakeModel(t, "good")
	r, srv := newTestRouter(t, testConfig(stable, canary), nil)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("POST", srv.URL+"/p", strings.NewReader(`{"instances":[{}]}`))
				req.Header.Set("X-Camera-Id", fmt.Sprint(w, "-", i))
				resp, err := http.DefaultClient.Do(req)
				if err != nil || resp.StatusCode != 200 {
					mu.Lock()
					failures = append(failures, fmt.Sprint(err, resp))
					mu.Unlock()
				}
				if resp != nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}()
	}
	// Keep swapping until the clients have made plenty of requests.
	for i := 0; stable.hits.Load()+canary.hits.Load() < 400; i++ {
		_ = r.SetRoute(Route{Stable: "stable", Canary: "canary", CanaryPercent: float64(i % 101), RolloutID: "w"})
		runtime.Gosched()
	}
	close(stop)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d requests failed during swaps, first: %s", len(failures), failures[0])
	}
	if stable.hits.Load() == 0 || canary.hits.Load() == 0 {
		t.Errorf("both backends should have served: stable %d canary %d", stable.hits.Load(), canary.hits.Load())
	}
}

// A caller that gives up is not the canary's fault: no breaker trip, no error.
func TestCallerCancelDoesNotCountAgainstTheBackend(t *testing.T) {
	stable, canary := newFakeModel(t, "good"), newFakeModel(t, "good")
	canary.block = make(chan struct{})
	cfg := testConfig(stable, canary)
	cfg.BreakerFailures = 1
	r, srv := newTestRouter(t, cfg, nil)
	_ = r.SetRoute(Route{Stable: "stable", Canary: "canary", CanaryPercent: 100, RolloutID: "c"})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/p", strings.NewReader(`{}`))
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	waitFor(t, "the canary to receive the request", func() bool { return canary.hits.Load() == 1 })
	cancel()
	<-done
	waitFor(t, "the cancellation to be counted", func() bool {
		return testutil.ToFloat64(r.m.requests.WithLabelValues("canary", "canary", "canceled")) == 1
	})
	close(canary.block)
	if r.backends["canary"].breaker.open() || testutil.ToFloat64(r.m.retries) != 0 {
		t.Error("a caller's cancellation tripped the breaker or caused a retry")
	}
	if resp := post(t, srv.URL, "cam-1"); resp.Header.Get("X-Lookout-Backend") != "canary" {
		t.Errorf("next request went to %s, want canary", resp.Header.Get("X-Lookout-Backend"))
	}
}

// The proxy forwards method, path, query, body and end-to-end headers, sets
// X-Forwarded-For and the backend's Host, and strips hop-by-hop headers in
// both directions; the caller's Connection: close closes only its own
// connection.
func TestProxyHeaders(t *testing.T) {
	var got atomic.Pointer[http.Request]
	var gotBody atomic.Value
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		gotBody.Store(string(b))
		got.Store(r)
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-Model", "m1")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(201)
		fmt.Fprint(w, `{"predictions":["good"]}`)
	}))
	defer backend.Close()
	cfg := testConfig(newFakeModel(t, "good"), newFakeModel(t, "good"))
	cfg.Backends[0].URL = backend.URL
	_, srv := newTestRouter(t, cfg, nil)
	req, _ := http.NewRequest("PUT", srv.URL+"/v2/models/m%2Fx/infer?a=1&b=2", strings.NewReader(`{"x":1}`))
	req.Header.Set("X-Camera-Id", "cam-1")
	req.Header.Set("X-Forwarded-For", "6.6.6.6")
	req.Header.Set("Proxy-Authorization", "secret")
	req.Header.Set("Te", "trailers")
	req.Header.Set("Accept-Encoding", "gzip")
	big := strings.Repeat("b", 6000) // over fasthttp's default 4 KiB header buffer
	req.Header.Set("X-Big", big)
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	in := got.Load()
	switch {
	case resp.StatusCode != 201 || string(body) != `{"predictions":["good"]}`:
		t.Errorf("answer %d %q", resp.StatusCode, body)
	case resp.Header.Get("X-Model") != "m1" || resp.Header.Get("Content-Type") != "application/json" ||
		resp.Header.Get("X-Lookout-Arm") != "stable" || resp.Header.Get("X-Lookout-Backend") != "stable":
		t.Errorf("response headers %v", resp.Header)
	case resp.Header.Get("Keep-Alive") != "" || len(resp.Header.Values("Date")) > 1:
		t.Errorf("hop-by-hop or duplicate headers in the answer: %v", resp.Header)
	case !resp.Close:
		t.Error("the caller asked for Connection: close and the router kept its connection open")
	case in == nil:
		t.Fatal("backend not called")
	case in.Method != "PUT" || in.URL.RawPath != "/v2/models/m%2Fx/infer" || in.URL.RawQuery != "a=1&b=2" || gotBody.Load() != `{"x":1}`:
		t.Errorf("backend got %s %s ? %s body %q", in.Method, in.URL.RawPath, in.URL.RawQuery, gotBody.Load())
	case in.Host != strings.TrimPrefix(backend.URL, "http://"):
		t.Errorf("backend got Host %q, want its own", in.Host)
	case in.Header.Get("X-Forwarded-For") != "127.0.0.1" || in.Header.Get("X-Camera-Id") != "cam-1" ||
		in.Header.Get("Accept-Encoding") != "gzip" || in.Header.Get("X-Big") != big:
		t.Errorf("backend got headers %v", in.Header)
	case in.Header.Get("Content-Type") != "" || resp.Header.Get("Server") != "":
		t.Errorf("the router added headers: to the backend %v, to the caller %v", in.Header, resp.Header)
	case in.Header.Get("Proxy-Authorization") != "" || in.Header.Get("Te") != "" || in.Close:
		t.Errorf("hop-by-hop headers reached the backend: %v (close %v)", in.Header, in.Close)
	}
}

// Backend timeouts answer 504, unreachable backends 502; both count as the
// backend's errors.
func TestBackendFailures(t *testing.T) {
	stable, canary := newFakeModel(t, "good"), newFakeModel(t, "good")
	stable.block = make(chan struct{})
	cfg := testConfig(stable, canary)
	cfg.Timeout = 200 * time.Millisecond
	r, srv := newTestRouter(t, cfg, nil)
	if resp := post(t, srv.URL, "cam-1"); resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("slow backend: status %d, want 504", resp.StatusCode)
	}
	if got := testutil.ToFloat64(r.m.errors.WithLabelValues("stable", "stable", "timeout")); got != 1 {
		t.Errorf("timeout errors = %v, want 1", got)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	cfg.Backends[0].URL = dead
	r2, srv2 := newTestRouter(t, cfg, nil)
	if resp := post(t, srv2.URL, "cam-1"); resp.StatusCode != http.StatusBadGateway {
		t.Errorf("unreachable backend: status %d, want 502", resp.StatusCode)
	}
	if got := testutil.ToFloat64(r2.m.errors.WithLabelValues("stable", "stable", "transport")); got != 1 {
		t.Errorf("transport errors = %v, want 1", got)
	}
}

// Shutdown lets the request in flight finish and answers it, then returns.
func TestShutdownDrainsInFlight(t *testing.T) {
	stable, canary := newFakeModel(t, "good"), newFakeModel(t, "good")
	stable.block = make(chan struct{})
	r, err := New(Options{Config: testConfig(stable, canary), Registry: prometheus.NewRegistry(), Log: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	srv := serveProxy(t, r)
	status := make(chan int, 1)
	go func() {
		resp, err := http.Post(srv.URL+"/p", "application/json", strings.NewReader(`{}`))
		if err != nil {
			status <- 0
			return
		}
		resp.Body.Close()
		status <- resp.StatusCode
	}()
	waitFor(t, "the backend to receive the request", func() bool { return stable.hits.Load() == 1 })
	shut := make(chan error, 1)
	go func() { shut <- r.Shutdown(context.Background()) }()
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) with a request in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(stable.block)
	if got := <-status; got != 200 {
		t.Errorf("request in flight at shutdown: status %d, want 200", got)
	}
	if err := <-shut; err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if err := <-srv.done; err != nil {
		t.Errorf("serve: %v", err)
	}
	if _, err := http.Post(srv.URL+"/p", "application/json", strings.NewReader(`{}`)); err == nil {
		t.Error("the proxy still accepts requests after Shutdown")
	}
}

// A slow backend with the caller still waiting is answered normally: the
// hang-up watch (which starts after watchAfter) must not take a waiting
// caller for a gone one.
func TestSlowBackendIsNotMistakenForAHangUp(t *testing.T) {
	stable, canary := newFakeModel(t, "good"), newFakeModel(t, "good")
	stable.block = make(chan struct{})
	r, srv := newTestRouter(t, testConfig(stable, canary), nil)
	go func() {
		for stable.hits.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(4 * watchAfter) // several watch checks while the caller waits
		close(stable.block)
	}()
	if resp := post(t, srv.URL, "cam-1"); resp.StatusCode != 200 {
		t.Errorf("status %d, want 200", resp.StatusCode)
	}
	if got := testutil.ToFloat64(r.m.requests.WithLabelValues("stable", "stable", "canceled")); got != 0 {
		t.Errorf("canceled = %v, want 0", got)
	}
	if got := testutil.ToFloat64(r.m.requests.WithLabelValues("stable", "stable", "2xx")); got != 1 {
		t.Errorf("2xx = %v, want 1", got)
	}
}
