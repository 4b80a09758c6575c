package router

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	"github.com/valyala/fasthttp"

	"github.com/lookout-dev/lookout/internal/event"
	"github.com/lookout-dev/lookout/internal/testenv"
)

type discardPublisher struct{ n atomic.Int64 }

func (d *discardPublisher) Publish(p event.Prediction) bool {
	if _, err := p.Encode(); err != nil {
		return false
	}
	d.n.Add(1)
	return true
}

// discardWriter is a MessageWriter that drops what it is given.
type discardWriter struct{}

func (discardWriter) WriteMessages(context.Context, ...kafka.Message) error { return nil }

// BenchmarkRouter measures one routed request end to end over loopback HTTP
// (net/http client → router's fasthttp listener → backend), with event
// extraction and encoding.
//
//	go test -run '^$' -bench Router -benchtime 20000x ./canary/router/
func BenchmarkRouter(b *testing.B) {
	stable, canary := newFakeModel(b, "good"), newFakeModel(b, "dent")
	pub := &discardPublisher{}
	r, srv := newTestRouter(b, testConfig(stable, canary), pub)
	_ = r.SetRoute(Route{Stable: "stable", Canary: "canary", CanaryPercent: 10, RolloutID: "bench"})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var n atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			req, _ := http.NewRequest("POST", srv.URL+"/v1/models/m:predict",
				strings.NewReader(`{"instances":[{"image_uri":"file:///images/part.png"}]}`))
			req.Header.Set("X-Camera-Id", fmt.Sprint("cam-", i%1000))
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

// BenchmarkBookkeeping measures what the router does per request beyond
// proxying: extracting predictions, reading the image URI, building,
// validating and encoding the event.
//
//	go test -run '^$' -bench Bookkeeping -benchmem ./canary/router/
func BenchmarkBookkeeping(b *testing.B) {
	cfg := testConfig(newFakeModel(b, "good"), newFakeModel(b, "good"))
	kp := NewKafkaPublisher(discardWriter{}, 100000, nil, testenv.Logger(b))
	ctx, cancel := context.WithCancel(context.Background())
	go kp.Run(ctx)
	defer func() { cancel(); <-kp.Done() }()
	r, _ := newTestRouter(b, cfg, kp)
	_ = r.SetRoute(Route{Stable: "stable", Canary: "canary", CanaryPercent: 10, RolloutID: "bench"})
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	req.Header.SetMethod("POST")
	req.SetRequestURI("/v1/models/m:predict")
	req.Header.Set("X-Camera-Id", "cam-7")
	req.SetBodyString(`{"instances":[{"image_uri":"file:///images/part.png"}]}`)
	resp.SetBodyString(`{"predictions":[{"probs":{"good":0.9,"dent":0.1}}]}`)
	x := &exchange{req: req, resp: resp}
	rt, be := r.route.Load(), r.backends["stable"]
	c := call{status: 200, latency: time.Millisecond, end: time.Now()}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		r.after(x, rt, armStable, be, &c)
	}
	b.StopTimer()
	// Measure the path of a published event, not of a refused one.
	if got := testutil.ToFloat64(kp.queued); got != float64(b.N) {
		b.Fatalf("%v events queued, want %d", got, b.N)
	}
}
