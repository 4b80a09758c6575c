package router

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
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
