package router

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

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

// BenchmarkRouter measures one routed request end to end over loopback HTTP
// (client → router → backend), with event extraction and encoding.
//
//	go test -run '^$' -bench Router -benchtime 20000x ./canary/router/
func BenchmarkRouter(b *testing.B) {
	t := &testing.T{}
	stable, canary := newFakeModel(t, "good"), newFakeModel(t, "dent")
	defer stable.srv.Close()
	defer canary.srv.Close()
	cfg := testConfig(stable, canary)
	pub := &discardPublisher{}
	r, err := New(Options{Config: cfg, Publisher: pub, Registry: prometheus.NewRegistry(), Log: testenv.Logger(b)})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r.Start(ctx)
	_ = r.SetRoute(Route{Stable: "stable", Canary: "canary", CanaryPercent: 10, RolloutID: "bench"})
	srv := newServer(r)
	defer srv.Close()
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
